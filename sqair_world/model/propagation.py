"""PROP: propagation of the objects of frame t-1 to frame t (paper Alg. 2, reference §2.4) with the
propagation prior's terms (§3.2).

Per object: a proposal glimpse near the old position, a relation RNN across the objects of the
frame (so objects can explain each other), a where update, a masked glimpse at the new position,
the temporal GRU, a gated what update and a presence decision. Everything that depends only on
frame t-1 is batched over the N slots; the relation RNN makes the rest sequential over slots, and each slot's
log q and log p are computed beside its samples.

Axes: B batch, K particles, R = B*K rows (row = b*K + k), N slots, D = n_what, H = n_hidden.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sqair_world.model import probes
from sqair_world.model.config import SQAIRConfig
from sqair_world.model.distributions import (
    as_float32,
    bernoulli_log_prob,
    mask_logit,
    mvn_tril_log_prob,
    normal_log_prob,
    sample_bernoulli,
    sample_normal,
)
from sqair_world.model.glimpse import GlimpseEncoder, StepsPredictor, StochasticTransformParam
from sqair_world.model.grid import continuity_loss
from sqair_world.model.nn import (
    MLP,
    GRUCell,
    VanillaRNNCell,
    linear,
    linear_blocks,
    softplus_std,
)
from sqair_world.model.priors import PropagationPrior
from sqair_world.model.spatial import cap_scale, centre_inside, row_glimpses, where_to_box
from sqair_world.model.subsets import ObjectSubset, RowSubset
from sqair_world.model.types import Slots


class PropagationOutput(NamedTuple):
    what: Tensor  #: [R, N, D]
    where: Tensor  #: [R, N, 4]
    pres: Tensor  #: [R, N] (never 1 where the slot was absent at t-1)
    h_temporal: Tensor  #: [R, N, H] new temporal state
    h_prior: Tensor  #: [R, N, H] new prior state
    prior_pres_logit: Tensor  #: [R, N] (for the discovery prior's summary e)
    log_q: Tensor  #: [R]
    log_p: Tensor  #: [R]
    log_q_pres: Tensor  #: [R] discrete part of log_q
    aux_loss: Tensor | None = None  #: [R] self-supervised continuity loss (grid discovery's targets), else None


class Propagation(nn.Module):
    def __init__(self, cfg: SQAIRConfig, glimpse_encoder: GlimpseEncoder) -> None:
        super().__init__()
        self.cfg = cfg
        H, D, Hs = cfg.n_hidden, cfg.n_what, cfg.n_hidden_small
        gh, gw = cfg.glimpse_size
        self.glimpse_encoder = glimpse_encoder  # shared with discovery
        self.where_bias = MLP(H, [Hs], 4)
        self.glimpse_mask = MLP(H, [Hs], gh * gw, out_bias=cfg.mask_logit_bias)
        self.relation_rnn = VanillaRNNCell(D + 2 * (D + 4 + 1) + H, H)
        self.h_relation0 = nn.Parameter(torch.zeros(H))
        self.where_param = StochasticTransformParam(2 * H + 4, cfg)
        if cfg.prop_where_full_cov:  # §8.5: one global learned Cholesky factor (10 numbers), as released
            self.cholesky = nn.Parameter(torch.empty(10))
            nn.init.uniform_(self.cholesky, -((6 / 20) ** 0.5), (6 / 20) ** 0.5)  # TF glorot on a 4x4 variable
            self.register_buffer("tril_idx", torch.tril_indices(4, 4), persistent=False)
        self.temporal_rnn = GRUCell(H + 4 + 2 * D, H)
        self.h_temporal0 = nn.Parameter(torch.zeros(H))
        self.what_head = linear(H, 2 * D)
        self.gates = linear(H, 3 * D, bias_init=1.0)
        self.pres_predictor = StepsPredictor(2 * H + D, Hs, cfg.prop_step_bias)
        self.prior = PropagationPrior(cfg)

    def _unit_tril(self) -> Tensor:
        """L + I ``[4, 4]``: the learned lower-triangular factor (or I without full covariance)."""
        eye = torch.eye(4, dtype=self.h_relation0.dtype, device=self.h_relation0.device)
        if not self.cfg.prop_where_full_cov:
            return eye
        return self.cholesky.new_zeros(4, 4).index_put((self.tril_idx[0], self.tril_idx[1]), self.cholesky) + eye

    def _glimpse(
        self, image: Tensor, where: Tensor, mask: Tensor, K: int, rows: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Masked glimpses at ``where [R or A, M, 4]`` (A: the rows listed in ``rows``) encoded to (loc, std)
        ``[R or A, M, D]``."""
        g = row_glimpses(image, where, K, self.cfg.glimpse_size, rows)  # [R or A, M, C, h, w]
        return self.glimpse_encoder(g * mask.view(*mask.shape[:2], 1, *self.cfg.glimpse_size))

    def _merged(self, where: Tensor, earlier_where: list[Tensor], earlier_pres: list[Tensor]) -> Tensor:
        """1. where the box centre of ``where [A, 4]`` lies within ``prop_merge_distance`` of a present object of
        the earlier slots (``[A, 4]`` and ``[A]`` each), else 0.: ``[A]``."""
        with torch.no_grad():
            centre = where_to_box(where)[:, :2]
            others = where_to_box(torch.stack(earlier_where, 1))[..., :2]  # [A, i, 2]
            near = (others - centre.unsqueeze(1)).norm(dim=-1) < self.cfg.prop_merge_distance
            return (near & (torch.stack(earlier_pres, 1) > 0)).any(1).to(where.dtype)

    def forward(
        self,
        image: Tensor,
        prev: Slots,
        h_temporal: Tensor,
        h_prior: Tensor,
        sample: bool = True,
        action: Tensor | None = None,
        blobs: tuple[Tensor, Tensor] | None = None,
    ) -> PropagationOutput:
        """Propagate the slots of frame t-1.

        :param image: ``[B, C, H_img, W_img]`` frame t (shared by the K particles)
        :param prev: slots of frame t-1, ``[R, N, ...]``
        :param h_temporal: ``[R, N, H]`` temporal GRU states; ``h_prior``: ``[R, N, H]`` prior GRU states
        :param action: ``[R]`` int64 action taken after frame t-1, for an action-conditioned prior (else None)
        """
        cfg = self.cfg
        R, N, H = h_temporal.shape
        K = R // image.shape[0]
        # --- batched over the objects of frame t-1, as (row, slot) pairs: everything that depends on t-1 only ---
        D = cfg.n_what
        objs = ObjectSubset(prev.pres)  # eager: absent slots are not computed (model.subsets)
        h_o, where_o = objs.take(h_temporal), objs.take(prev.where)  # [R*N or A, ...]
        mask_o = torch.sigmoid(self.glimpse_mask(h_o))  # [A, h*w]
        proposal_where = where_o + cfg.where_bias_scale * self.where_bias(h_o)
        proposal, _ = self._glimpse(image, proposal_where.unsqueeze(1), mask_o.unsqueeze(1), K, objs.row_idx)  # loc
        prior = self.prior(prev.what, prev.where, prev.pres, h_prior, action)

        # The relation RNN's and the where MLP's terms of the inputs known before the loop (proposal, and the
        # slot's own what/where/pres/h_temporal at t-1), computed for all slots at once (nn.linear_blocks)
        W_prop, W_carry, W_own, W_rel = linear_blocks(self.relation_rnn.cell, [D, D + 5, D + 5 + H, H])
        own = torch.cat([objs.take(prev.what), where_o, objs.take(prev.pres).unsqueeze(-1), h_o], -1)  # [A, D+5+H]
        # back to [R, N, ...], zeros for absent slots
        rel_static = objs.put(proposal.squeeze(1) @ W_prop + own @ W_own + self.relation_rnn.cell.bias, 0.0)
        first = self.where_param.mlp[0]
        W_where_rel, W_where_own = linear_blocks(first, [H, 4 + H])
        where_static = objs.put(torch.cat([where_o, h_o], -1) @ W_where_own + first.bias, 0.0)  # [R, N, H]
        mask = objs.put(mask_o, 0.0)  # [R, N, h*w]
        # the what head and the gates read the same new temporal state: one product per slot for both
        W_out = torch.cat([self.what_head.weight, self.gates.weight])
        b_out = torch.cat([self.what_head.bias, self.gates.bias])

        # --- sequential over slots: the relation RNN ---
        h_rel = self.h_relation0.expand(R, H)
        carry = h_temporal.new_zeros(R, cfg.n_what + 4 + 1)  # (what, where, pres) of the previous slot at time t
        unit_tril = self._unit_tril()
        steps = []  # per slot: the new (what, where, pres, temporal state) on all R rows
        # per slot: (raw presence logit, alive, where mean) on all R rows, for the continuity targets (training only)
        targets = blobs is not None
        logits = []
        # log q and log p of the propagated latents, slot by slot beside their samples; objects that disappear pay
        # only the Bernoulli terms (reference §3.3)
        log_q_pres = log_q_cont = log_p = h_temporal.new_zeros(R)
        # noise for every row and slot, drawn up front: runs that skip rows or slots use the same random numbers
        noise = (
            (*h_rel.new_empty(R, N, 4 + D).normal_().split([4, D], -1), h_rel.new_empty(R, N).uniform_())
            if sample
            else None
        )
        for i in range(N):
            # slot i is propagated only in the rows where it was present at t-1; elsewhere it stays absent, keeps its
            # old values and adds nothing to the weights (every row, or only those rows: model.subsets)
            rows = RowSubset(prev.pres[:, i] > 0)
            if rows.empty:
                break  # present slots are packed first: the remaining ones are absent in every row
            take = rows.take
            eps_where, eps_what, u = (None,) * 3 if noise is None else (take(a[:, i]) for a in noise)
            what_p, where_p, pres_p, h_t = (take(a[:, i]) for a in (prev.what, prev.where, prev.pres, h_temporal))
            # h_rel = tanh(W [proposal, carry, what_p, where_p, pres_p, h_t, h_rel] + b), the known terms precomputed
            pre = torch.addmm(torch.addmm(take(rel_static[:, i]), take(carry), W_carry), take(h_rel), W_rel)
            h_rel_a = torch.tanh(pre)
            # where: residual update with a full-covariance posterior; the MLP's input is [h_rel, where_p, h_t]
            delta, raw = self.where_param.from_first_layer(torch.addmm(take(where_static[:, i]), h_rel_a, W_where_rel))
            std = softplus_std(raw + cfg.prop_where_std_shift, cfg.min_std)
            loc = cap_scale(where_p + cfg.where_update_scale * delta, cfg.max_scale)
            scale_tril = std.unsqueeze(-1) * unit_tril  # diag(std) (L + I)
            where = loc + (scale_tril * eps_where.unsqueeze(-2)).sum(-1) if sample else loc
            (where,) = as_float32(where)
            # what: masked glimpse at the new position, temporal GRU, gated update
            g_loc, g_std = self._glimpse(image, where.unsqueeze(1), take(mask[:, i]).unsqueeze(1), K, rows.idx)
            g_loc, g_std = g_loc.squeeze(1), g_std.squeeze(1)
            h_t_new = self.temporal_rnn(torch.cat([h_rel_a, where, g_loc, g_std], -1), h_t)
            t_loc, t_raw, gate_raw = F.linear(h_t_new, W_out, b_out).split([D, D, 3 * D], -1)
            t_std = softplus_std(t_raw, cfg.min_std)
            f, g_in, g_t = (torch.sigmoid(gate_raw) * cfg.gate_scale).chunk(3, -1)
            what_loc = f * what_p + (1 - g_in) * g_loc + (1 - g_t) * t_loc
            what_std = (1 - g_in) * g_std + (1 - g_t) * t_std
            what = sample_normal(what_loc, what_std, sample, eps_what)
            # presence: uses the *old* temporal state (reference §2.4 step 5); an object parked at the border
            # has left the frame and is masked like an absent one (SQAIRConfig.exit_margin)
            alive = pres_p * centre_inside(where.detach(), cfg.exit_margin) if cfg.exit_margin > 0 else pres_p
            if cfg.prop_merge_distance > 0 and steps:  # a second track on an older track's object (config)
                alive = alive * (
                    1 - self._merged(where, [take(step[1]) for step in steps], [take(step[2]) for step in steps])
                )
            raw_logit = self.pres_predictor(torch.cat([h_rel_a, h_t, what], -1))
            logit = mask_logit(raw_logit, alive, cfg.mask_logit)
            if probes.active():
                on = alive > 0
                probes.record("prop/pres_prob", torch.sigmoid(raw_logit)[on])
                probes.record("prop/prior_pres_prob", torch.sigmoid(take(prior.pres_logit[:, i]))[on])
                probes.record("prop/where_std", std[on])
            pres = sample_bernoulli(logit, sample, u) * alive
            # the densities of this slot's samples: q as above, p from the propagation prior of slot i
            kept = pres_p * pres
            lq_pres = pres_p * bernoulli_log_prob(pres, logit)
            lq_cont = kept * (
                mvn_tril_log_prob(where, loc, scale_tril) + normal_log_prob(what, what_loc, what_std).sum(-1)
            )
            p_where = normal_log_prob(where, take(prior.where_mu[:, i]), take(prior.where_std[:, i])).sum(-1)
            p_what = normal_log_prob(what, take(prior.what_mu[:, i]), take(prior.what_std[:, i])).sum(-1)
            lp = kept * (p_where + p_what) + pres_p * bernoulli_log_prob(pres, take(prior.pres_logit[:, i]))
            if probes.active():  # per kept object: the sampled KL terms of where and what
                k = kept > 0
                probes.record("prop/kl_where", (mvn_tril_log_prob(where, loc, scale_tril) - p_where)[k])
                probes.record("prop/kl_what", (normal_log_prob(what, what_loc, what_std).sum(-1) - p_what)[k])
            # back to all R rows (if gathered, inactive rows keep their old latents and states and add nothing)
            log_q_pres, log_q_cont = log_q_pres + rows.put(lq_pres, 0.0), log_q_cont + rows.put(lq_cont, 0.0)
            log_p = log_p + rows.put(lp, 0.0)
            what, where = rows.put(what, prev.what[:, i]), rows.put(where, prev.where[:, i])
            if targets:
                logits.append((rows.put(raw_logit, 0.0), rows.put(alive, 0.0), rows.put(loc, prev.where[:, i])))
            pres, h_rel = rows.put(pres, 0.0), rows.put(h_rel_a, h_rel)
            carry = torch.cat([what, where, pres.unsqueeze(-1)], -1)
            steps.append((what, where, pres, rows.put(h_t_new, h_temporal[:, i])))

        n = len(steps)  # slots computed; the skipped ones are absent and keep their old values
        what, where, pres, h_new = prev.what, prev.where, prev.pres, h_temporal
        if n:
            what, where, pres, h_new = (
                torch.cat([torch.stack(a, 1), old[:, n:]], 1)
                for a, old in zip(zip(*steps), (prev.what, prev.where, prev.pres, h_temporal))
            )
        if probes.active():
            probes.record("prop/kl", log_q_cont + log_q_pres - log_p)
        aux = None
        if targets and n:
            raw_logits, alive, locs = (torch.stack(a, 1) for a in zip(*logits))
            aux = continuity_loss(blobs, locs, raw_logits, alive, K, cfg.grid_size, cfg.grid_continuity_exclusive)
        return PropagationOutput(
            what, where, pres, h_new, prior.h, prior.pres_logit, log_q_cont + log_q_pres, log_p, log_q_pres, aux
        )


def prior_presence_summary(prior_pres_logit: Tensor, n_slots: int) -> Tensor:
    """e = sum_i (sigmoid(l_i) - 0.5) / N, the discovery prior's view of the propagation prior: ``[R, N]`` ->
    ``[R, 1]``.

    An absent slot (logit -88) contributes -1/(2N) (reference §3.1).
    """
    return ((torch.sigmoid(prior_pres_logit) - 0.5).sum(-1, keepdim=True)) / n_slots


__all__ = ["Propagation", "PropagationOutput", "prior_presence_summary"]
