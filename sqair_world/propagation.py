"""PROP: propagation of the objects of frame t-1 to frame t (paper Alg. 2, reference §2.4) with the
propagation prior's terms (§3.2).

Per object: a proposal glimpse near the old position, a relation RNN across the objects of the
frame (so objects can explain each other), a where update, a masked glimpse at the new position,
the temporal GRU, a gated what update and a presence decision. Everything that depends only on
frame t-1 is batched over the N slots; the relation RNN makes the rest sequential over slots, except the
log-densities, which are computed once for all slots after the loop.

Axes: B batch, K particles, R = B*K rows (row = b*K + k), N slots, D = n_what, H = n_hidden.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sqair_world.config import SQAIRConfig
from sqair_world.distributions import (as_float32, bernoulli_log_prob, mask_logit, mvn_tril_log_prob, normal_log_prob,
                                       sample_bernoulli, sample_normal)
from sqair_world.glimpse import GlimpseEncoder, StepsPredictor, StochasticTransformParam
from sqair_world.nn import GRUCell, MLP, VanillaRNNCell, eager_inference, linear, linear_blocks, softplus_std
from sqair_world.priors import PropagationPrior
from sqair_world.spatial import cap_scale, centre_inside, image_to_glimpse
from sqair_world.types import Slots


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
            nn.init.uniform_(self.cholesky, -(6 / 20) ** 0.5, (6 / 20) ** 0.5)  # TF glorot on a 4x4 variable
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

    def _glimpse(self, image: Tensor, where: Tensor, mask: Tensor, K: int) -> tuple[Tensor, Tensor]:
        """Masked glimpses at ``where [R, M, 4]`` encoded to (loc, std) ``[R, M, D]``."""
        R, M = where.shape[:2]
        B = image.shape[0]
        g = image_to_glimpse(image, where.reshape(B, K * M, 4), self.cfg.glimpse_size)  # [B, K*M, C, h, w]
        g = g.reshape(R, M, *g.shape[-3:]) * mask.view(R, M, 1, *self.cfg.glimpse_size)
        return self.glimpse_encoder(g)

    def forward(self, image: Tensor, prev: Slots, h_temporal: Tensor, h_prior: Tensor,
                sample: bool = True) -> PropagationOutput:
        """Propagate the slots of frame t-1.

        :param image: ``[B, C, H_img, W_img]`` frame t (shared by the K particles)
        :param prev: slots of frame t-1, ``[R, N, ...]``
        :param h_temporal: ``[R, N, H]`` temporal GRU states; ``h_prior``: ``[R, N, H]`` prior GRU states
        """
        cfg = self.cfg
        R, N, H = h_temporal.shape
        K = R // image.shape[0]
        # --- batched over slots: everything that depends on frame t-1 only ---
        mask = torch.sigmoid(self.glimpse_mask(h_temporal))  # [R, N, h*w]
        proposal_where = prev.where + cfg.where_bias_scale * self.where_bias(h_temporal)
        proposal, _ = self._glimpse(image, proposal_where, mask, K)  # [R, N, D] (loc only)
        prior = self.prior(prev.what, prev.where, prev.pres, h_prior)

        # The relation RNN's and the where MLP's terms of the inputs known before the loop (proposal, and the
        # slot's own what/where/pres/h_temporal at t-1), computed for all slots at once (nn.linear_blocks)
        D = cfg.n_what
        W_prop, W_carry, W_own, W_rel = linear_blocks(self.relation_rnn.cell, [D, D + 5, D + 5 + H, H])
        own = torch.cat([prev.what, prev.where, prev.pres.unsqueeze(-1), h_temporal], -1)  # [R, N, D+5+H]
        rel_static = proposal @ W_prop + own @ W_own + self.relation_rnn.cell.bias  # [R, N, H]
        first = self.where_param.mlp[0]
        W_where_rel, W_where_own = linear_blocks(first, [H, 4 + H])
        where_static = torch.cat([prev.where, h_temporal], -1) @ W_where_own + first.bias  # [R, N, H]
        # the what head and the gates read the same new temporal state: one product per slot for both
        W_out = torch.cat([self.what_head.weight, self.gates.weight])
        b_out = torch.cat([self.what_head.bias, self.gates.bias])

        # --- sequential over slots: the relation RNN ---
        h_rel = self.h_relation0.expand(R, H)
        carry = h_temporal.new_zeros(R, cfg.n_what + 4 + 1)  # (what, where, pres) of the previous slot at time t
        # Slots absent at t-1 stay absent and add nothing to the weights; present slots are packed first, so
        # without gradients (tracking, evaluation) we stop after the last slot present in any row (not when
        # compiled: a data-dependent loop length would break the graph).
        n_active = int(prev.pres.sum(-1).max()) if eager_inference() else N
        unit_tril = self._unit_tril()
        steps = []  # per slot: what the log-densities below need
        for i in range(n_active):
            what_p, where_p, pres_p, h_t = prev.what[:, i], prev.where[:, i], prev.pres[:, i], h_temporal[:, i]
            # h_rel = tanh(W [proposal, carry, what_p, where_p, pres_p, h_t, h_rel] + b), the known terms precomputed
            h_rel = torch.tanh(torch.addmm(torch.addmm(rel_static[:, i], carry, W_carry), h_rel, W_rel))
            # where: residual update with a full-covariance posterior; the MLP's input is [h_rel, where_p, h_t]
            delta, raw = self.where_param.from_first_layer(torch.addmm(where_static[:, i], h_rel, W_where_rel))
            std = softplus_std(raw + cfg.prop_where_std_shift, cfg.min_std)
            loc = cap_scale(where_p + cfg.where_update_scale * delta, cfg.max_scale)
            scale_tril = std.unsqueeze(-1) * unit_tril  # diag(std) (L + I)
            where = loc + (scale_tril * torch.randn_like(loc).unsqueeze(-2)).sum(-1) if sample else loc
            where, = as_float32(where)
            # what: masked glimpse at the new position, temporal GRU, gated update
            g_loc, g_std = self._glimpse(image, where.unsqueeze(1), mask[:, i:i + 1], K)
            g_loc, g_std = g_loc.squeeze(1), g_std.squeeze(1)
            h_t_new = self.temporal_rnn(torch.cat([h_rel, where, g_loc, g_std], -1), h_t)
            t_loc, t_raw, gate_raw = F.linear(h_t_new, W_out, b_out).split([D, D, 3 * D], -1)
            t_std = softplus_std(t_raw, cfg.min_std)
            f, g_in, g_t = (torch.sigmoid(gate_raw) * cfg.gate_scale).chunk(3, -1)
            what_loc = f * what_p + (1 - g_in) * g_loc + (1 - g_t) * t_loc
            what_std = (1 - g_in) * g_std + (1 - g_t) * t_std
            what = sample_normal(what_loc, what_std, sample)
            # presence: uses the *old* temporal state (reference §2.4 step 5); an object parked at the border
            # has left the frame and is masked like an absent one (SQAIRConfig.exit_margin)
            alive = pres_p * centre_inside(where.detach(), cfg.exit_margin) if cfg.exit_margin > 0 else pres_p
            logit = mask_logit(self.pres_predictor(torch.cat([h_rel, h_t, what], -1)), alive, cfg.mask_logit)
            pres = sample_bernoulli(logit, sample) * alive
            carry = torch.cat([what, where, pres.unsqueeze(-1)], -1)
            steps.append((what, where, pres, h_t_new, logit, loc, scale_tril, what_loc, what_std))

        # --- batched over the propagated slots again: the log-densities, one call each instead of one per slot ---
        n = n_active
        log_q_pres = log_q_cont = log_p_cont = h_temporal.new_zeros(R)
        what, where, pres, h_new = prev.what, prev.where, prev.pres, h_temporal
        if n:
            what_n, where_n, pres_n, h_n, logit, loc, scale_tril, what_loc, what_std = (torch.stack(a, 1) for a in zip(*steps))
            pres_p = prev.pres[:, :n]
            kept = pres_p * pres_n
            log_q_pres = (pres_p * bernoulli_log_prob(pres_n, logit)).sum(-1)
            log_q_cont = (kept * (mvn_tril_log_prob(where_n, loc, scale_tril)
                                  + normal_log_prob(what_n, what_loc, what_std).sum(-1))).sum(-1)
            log_p_cont = (kept * (normal_log_prob(where_n, prior.where_mu[:, :n], prior.where_std[:, :n]).sum(-1)
                                  + normal_log_prob(what_n, prior.what_mu[:, :n], prior.what_std[:, :n]).sum(-1))).sum(-1)
            what, where, pres, h_new = what_n, where_n, pres_n, h_n
            if n < N:  # skipped absent slots keep their old values
                what, where = torch.cat([what, prev.what[:, n:]], 1), torch.cat([where, prev.where[:, n:]], 1)
                pres, h_new = torch.cat([pres, prev.pres[:, n:]], 1), torch.cat([h_new, h_temporal[:, n:]], 1)
        # objects that disappear pay only the Bernoulli term (reference §3.3)
        log_p_pres = (prev.pres * bernoulli_log_prob(pres, prior.pres_logit)).sum(-1)
        return PropagationOutput(what, where, pres, h_new, prior.h, prior.pres_logit,
                                 log_q_cont + log_q_pres, log_p_cont + log_p_pres, log_q_pres)


def prior_presence_summary(prior_pres_logit: Tensor, n_slots: int) -> Tensor:
    """e = sum_i (sigmoid(l_i) - 0.5) / N, the discovery prior's view of the propagation prior: ``[R, N]`` -> ``[R, 1]``.

    An absent slot (logit -88) contributes -1/(2N) (reference §3.1).
    """
    return ((torch.sigmoid(prior_pres_logit) - 0.5).sum(-1, keepdim=True)) / n_slots


__all__ = ["Propagation", "PropagationOutput", "prior_presence_summary"]
