"""DISC: discovery of new objects (paper Alg. 3, reference §2.5) and its prior terms (§3.1).

An AIR-style sequential pass over N slots: where, then a glimpse, then what and presence, with a
stopping chain on presence. It is conditioned on the propagated objects (a set encoding ``c``) so it
does not rediscover them. MLP-AIR is this module alone, applied to every frame.

Axes: B batch, K particles, R = B*K rows (row = b*K + k), N slots, D = n_what, H = n_hidden.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from sqair_world.model import probes
from sqair_world.model.config import SQAIRConfig
from sqair_world.model.distributions import (
    bernoulli_log_prob,
    mask_logit,
    normal_log_prob,
    sample_bernoulli,
    sample_normal,
    std_normal_log_prob,
)
from sqair_world.model.glimpse import GlimpseEncoder, StepsPredictor, StochasticTransformParam
from sqair_world.model.nn import MLP, VanillaRNNCell, softplus_std
from sqair_world.model.priors import DiscoveryPrior
from sqair_world.model.spatial import cap_scale, row_glimpses
from sqair_world.model.subsets import ObjectSubset, RowSubset
from sqair_world.model.types import Slots


class DiscoveryOutput(NamedTuple):
    what: Tensor  #: [R, N, D]
    where: Tensor  #: [R, N, 4]
    pres: Tensor  #: [R, N] packed: present slots first (stopping chain)
    log_q: Tensor  #: [R] log q of every discovery latent (what, where of present slots + count)
    log_p: Tensor  #: [R] log p^D of the same
    log_q_pres: Tensor  #: [R] log q(number discovered), the discrete part


class Discovery(nn.Module):
    def __init__(self, cfg: SQAIRConfig, glimpse_encoder: GlimpseEncoder) -> None:
        super().__init__()
        self.cfg = cfg
        H, D = cfg.n_hidden, cfg.n_what
        self.glimpse_encoder = glimpse_encoder  # shared with propagation
        self.latent_encoder = MLP(D + 4, [H, H])
        self.rnn = VanillaRNNCell(H + H + D + 4 + 1, H)
        self.h0 = nn.Parameter(torch.zeros(H))
        self.where_param = StochasticTransformParam(H, cfg, cfg.disc_where_bias)
        self.pres_predictor = StepsPredictor(H + D, cfg.n_hidden_small, cfg.disc_step_bias)
        self.prior = DiscoveryPrior(cfg)
        # added to the presence logits of q only, set by the trainer from a schedule (TrainConfig.presence_warmup):
        # keeps objects on while the decoder is still painting noise, so presence does not collapse to "nothing"
        self.register_buffer("presence_offset", torch.zeros(()), persistent=False)

    def condition(self, prop: Slots) -> Tensor:
        """c = sum_i pres_i * MLP([what, where]_i) over the propagated objects: ``[R, N, ...]`` -> ``[R, H]``."""
        objs = ObjectSubset(prop.pres)  # eager: absent slots are not computed (model.subsets)
        enc = objs.put(self.latent_encoder(objs.take(torch.cat([prop.what, prop.where], -1))), 0.0)
        return (enc * prop.pres.unsqueeze(-1)).sum(1)

    def forward(
        self,
        image: Tensor,
        image_features: Tensor,
        c: Tensor,
        e: Tensor,
        t_positive: Tensor,
        max_allowed: Tensor | None,
        sample: bool = True,
        steps: int | None = None,
    ) -> DiscoveryOutput:
        """Discover up to N new objects in each row.

        :param image: ``[B, C, H_img, W_img]`` the frame (shared by the K particles of each sequence)
        :param image_features: ``[R, H]`` image encoding; computed once per frame, not per step (§8.10)
        :param c: ``[R, H]`` encoding of the propagated objects
        :param e: ``[R, 1]`` summary of the propagation prior's presence (reference §3.1)
        :param t_positive: ``[R]`` 1. after the first frame, else 0.
        :param max_allowed: ``[R]`` N - number propagated (the paper's cap) or None (released code)
        :param steps: run at most this many slot steps (None: N); ``speed.compile.skip_full_discovery`` passes 0
            in the compiled branch where ``max_allowed`` is 0 in every row
        """
        cfg = self.cfg
        R, B = c.shape[0], image.shape[0]
        K = R // B
        N, D = cfg.max_objects, cfg.n_what
        h = self.h0.expand(R, -1)
        what, where = c.new_zeros(R, D), c.new_zeros(R, 4)
        pres = c.new_ones(R)
        whats, wheres, press = [], [], []
        # log q of every discovery latent: the stopping chain's Bernoulli terms while it runs (log q of the
        # "modified geometric" count), plus where and what of the present slots
        log_q_pres = log_q_cont = c.new_zeros(R)
        # noise for every row and slot, drawn up front: runs that skip rows or slots use the same random numbers
        noise = (
            (*c.new_empty(R, N, 4 + D).normal_().split([4, D], -1), c.new_empty(R, N).uniform_()) if sample else None
        )
        for j in range(N if steps is None else min(steps, N)):
            # slot j exists in the rows whose chain still runs and, with the paper's cap, where j < N - n_propagated
            active = pres > 0 if max_allowed is None else (pres > 0) & (max_allowed > j)
            rows = RowSubset(active)  # every row, or only the active ones (model.subsets)
            if rows.empty:
                break  # the remaining slots are absent in every row
            take = rows.take
            eps_where, eps_what, u = (None,) * 3 if noise is None else (take(a[:, j]) for a in noise)
            x = torch.cat([take(image_features), take(c), take(what), take(where), take(pres).unsqueeze(-1)], -1)
            h_a = self.rnn(x, take(h))
            # where ~ q(where | h), then a glimpse there, what ~ q(what | glimpse), pres ~ q(pres | h, what)
            where_loc, raw = self.where_param(h_a)
            where_loc = cap_scale(where_loc, cfg.max_scale)
            where_std = softplus_std(raw, cfg.min_std)
            where_a = sample_normal(where_loc, where_std, sample, eps_where)
            glimpse = row_glimpses(image, where_a, K, cfg.glimpse_size, rows.idx)  # [R or A, C, h, w]
            what_loc, what_std = self.glimpse_encoder(glimpse)
            what_a = sample_normal(what_loc, what_std, sample, eps_what)
            logit = self.pres_predictor(torch.cat([h_a, what_a], -1)) + self.presence_offset
            is_on = take(active).to(logit.dtype)
            if probes.active():
                on = is_on > 0
                probes.record("disc/pres_prob", torch.sigmoid(logit)[on])
                probes.record("disc/where_std", where_std[on])
            logit = mask_logit(logit, is_on, cfg.mask_logit)  # a stopped or capped slot is absent
            new_pres = sample_bernoulli(logit, sample, u) * is_on
            lq_pres = take(pres) * bernoulli_log_prob(new_pres, logit)
            lq_cont = new_pres * (
                normal_log_prob(where_a, where_loc, where_std).sum(-1)
                + normal_log_prob(what_a, what_loc, what_std).sum(-1)
            )
            # back to all R rows (if gathered, inactive rows get zero latents and add nothing to log q)
            log_q_pres, log_q_cont = log_q_pres + rows.put(lq_pres, 0.0), log_q_cont + rows.put(lq_cont, 0.0)
            h, pres = rows.put(h_a, h), rows.put(new_pres, 0.0)
            what, where = rows.put(what_a, 0.0), rows.put(where_a, 0.0)
            whats.append(what), wheres.append(where), press.append(pres)
        n = len(whats)  # slots computed; the skipped ones are absent
        what_s = torch.stack(whats + [c.new_zeros(R, D)] * (N - n), 1)
        where_s = torch.stack(wheres + [c.new_zeros(R, 4)] * (N - n), 1)
        pres_s = torch.stack(press + [c.new_zeros(R)] * (N - n), 1)

        # log p^D: the count prior, then the autoregressive where prior and N(0, I) what of the present slots
        n_disc = pres_s.sum(-1).long()  # [R]
        count_lp = self.prior.count_log_probs(e, t_positive, max_allowed).gather(-1, n_disc.unsqueeze(-1)).squeeze(-1)
        log_p = count_lp + (
            pres_s * (self.prior.where_log_prob(where_s, c, e) + std_normal_log_prob(what_s).sum(-1))
        ).sum(-1)
        if probes.active():
            probes.record("disc/kl", log_q_cont + log_q_pres - log_p)
            probes.record("disc/count", n_disc.float())
        return DiscoveryOutput(what_s, where_s, pres_s, log_q_cont + log_q_pres, log_p, log_q_pres)
