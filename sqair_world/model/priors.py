"""Learned priors of SQAIR (paper §3, reference §3): p^D for discovery and p^P for propagation.

Axes: R rows (B*K), N slots, D = n_what, H = n_hidden.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sqair_world.model.config import SQAIRConfig
from sqair_world.model.distributions import mask_logit, normal_log_prob
from sqair_world.model.nn import MLP, GRUCell, linear, softplus_std
from sqair_world.model.subsets import ObjectSubset
from sqair_world.model.types import TrackState

# the velocity gain is tanh(VELOCITY_RATE * p): Adam moves p by about lr per step, and at rate 1 the gain was still
# moving after a whole fine-tune, up from 0 (to 0.37) and down from 0.8 (to 0.68) (docs/imagination.md)
VELOCITY_RATE = 10.0


class PropPriorOutput(NamedTuple):
    h: Tensor  #: [R, N, H] new prior-GRU state
    pres_logit: Tensor  #: [R, N] presence logit, masked by the previous presence
    where_mu: Tensor  #: [R, N, 4]
    where_std: Tensor  #: [R, N, 4]
    what_mu: Tensor  #: [R, N, D]
    what_std: Tensor  #: [R, N, D]


class PropagationPrior(nn.Module):
    """p^P(z_t | z_{t-1}): a per-object GRU over [what, where]_{t-1} -> Linear(1 + 2*4 + 2*D) (reference §3.2).

    The where/what priors are absolute Gaussians evaluated at z_t (not residual), as in the released code.
    With ``SQAIRConfig.prop_prior="markov"`` an MLP over [what_{t-1}, where_{t-1}, where_{t-1} - where_{t-2}, seen]
    replaces the GRU; its state ``h`` then only carries ``[where_{t-1}, 1, 0, ...]`` to the next step (``seen`` = 0
    for a track's first step, whose displacement is unknown and set to zero). Its head's weights start at zero.
    ``prop_prior_velocity`` adds ``tanh(10 g) * (where_{t-1} - where_{t-2})`` to its where mean, ``g [4]`` learned
    from zero; ``prop_prior_action_velocity`` adds an MLP of [features, one-hot action] to ``10 g``, per object.
    With ``SQAIRConfig.num_actions > 0`` an action effect, an MLP over [GRU state, one-hot action a_{t-1}], adds to
    the head's output; its last layer starts at zero, so an action-conditioned prior starts as the unconditional
    one (and fine-tunes from its checkpoint).
    """

    def __init__(self, cfg: SQAIRConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.gru = self.markov = None
        if cfg.prop_prior == "markov":
            self.markov = MLP(cfg.n_what + 4 + 4 + 1, [cfg.n_hidden, cfg.n_hidden])
            self.register_buffer("h0", torch.zeros(cfg.n_hidden), persistent=False)  # "not seen": no displacement
        else:
            self.gru = GRUCell(cfg.n_what + 4, cfg.n_hidden)
            self.h0 = nn.Parameter(torch.zeros(cfg.n_hidden))
        self.velocity_gain = nn.Parameter(torch.zeros(4)) if cfg.prop_prior_velocity else None  # see VELOCITY_RATE
        self.action_gain = None  # per object and action, added to the gain's pre-activation; starts at zero
        if cfg.prop_prior_action_velocity:
            if cfg.num_actions < 1:  # not in SQAIRConfig's checks: pretrain sets num_actions after parsing the flags
                raise ValueError(
                    "prop_prior_action_velocity makes the velocity gain depend on the action, but num_actions is 0: "
                    "train on data with actions (pretrain atari), or leave it off"
                )
            self.action_gain = MLP(cfg.n_hidden + cfg.num_actions, [cfg.n_hidden_small], 4)
            nn.init.zeros_(self.action_gain[-1].weight), nn.init.zeros_(self.action_gain[-1].bias)
        self.head = linear(cfg.n_hidden, 1 + 8 + 2 * cfg.n_what)
        if self.markov is not None:  # starts as "stay as you were" (with prop_prior_residual), wide, whatever the MLP
            nn.init.zeros_(self.head.weight)
        self.action_effect = None
        if cfg.num_actions > 0:
            self.action_effect = MLP(cfg.n_hidden + cfg.num_actions, [cfg.n_hidden_small], 1 + 8 + 2 * cfg.n_what)
            nn.init.zeros_(self.action_effect[-1].weight), nn.init.zeros_(self.action_effect[-1].bias)

    def forward(
        self, what: Tensor, where: Tensor, pres: Tensor, h: Tensor, action: Tensor | None = None
    ) -> PropPriorOutput:
        """``what [R, N, D]``, ``where [R, N, 4]``, ``pres [R, N]``, ``h [R, N, H]`` of frame t-1, and ``action
        [R]`` (int64, the action taken after frame t-1; None: unknown, an all-zero code) for an action-conditioned
        prior."""
        objs = ObjectSubset(pres)  # eager: absent slots are not computed (model.subsets)
        if self.markov is None:
            h_o = self.gru(objs.take(torch.cat([what, where], -1)), objs.take(h))
            h_new = objs.put(h_o, h)  # absent slots keep their state
        else:
            seen = h[..., 4:5]
            moved = (where - h[..., :4]) * seen
            h_o = self.markov(objs.take(torch.cat([what, where, moved, seen], -1)))
            h_new = torch.cat([where, torch.ones_like(seen), h[..., 5:]], -1)
            h_new = torch.where(pres.unsqueeze(-1) > 0, h_new, h)
        head = self.head(h_o)
        if self.action_effect is not None:
            code = h_o.new_zeros(*pres.shape, self.cfg.num_actions)
            if action is not None:
                code = F.one_hot(action, self.cfg.num_actions).to(h_o.dtype).unsqueeze(1).expand_as(code)
            acted = torch.cat([h_o, objs.take(code)], -1)
            head = head + self.action_effect(acted)
        out = objs.put(head, 0.0)  # absent: masked below, or weighted by zero presence
        d = self.cfg.n_what
        logit, w_mu, w_raw, z_mu, z_raw = out.split([1, 4, 4, d, d], -1)
        logit = mask_logit(logit.squeeze(-1) + self.cfg.prop_prior_step_bias, pres, self.cfg.mask_logit)
        if self.cfg.prop_prior_residual:  # a tracker's prior: objects stay where and as they were, plus a change
            w_mu, z_mu = where + w_mu, what + z_mu
        if self.velocity_gain is not None:  # damped constant velocity; |g| < 1 keeps rollouts from blowing up
            gain = VELOCITY_RATE * self.velocity_gain
            if self.action_gain is not None:
                gain = gain + objs.put(self.action_gain(acted), 0.0)
            w_mu = w_mu + torch.tanh(gain) * moved * pres.unsqueeze(-1)
        s = self.cfg.min_std
        return PropPriorOutput(h_new, logit, w_mu, softplus_std(w_raw, s), z_mu, softplus_std(z_raw, s))


class DiscoveryPrior(nn.Module):
    """p^D: number of new objects (categorical), autoregressive where, and what ~ N(0, I) (reference §3.1)."""

    def __init__(self, cfg: SQAIRConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n = cfg.max_objects + 1
        self.count_bias = nn.Parameter(torch.zeros(n))
        self.count_bias_t = nn.Parameter(torch.tensor([cfg.disc_prior_zero_bias] + [0.0] * (n - 1)))
        self.count_mlp = MLP(1, [10], n)
        # where: fixed context s = ELU(Linear([init 4, c, e])), then per slot tanh(W_in where_{j-1} + W_hh s + b) -> 8
        self.where_init = nn.Parameter(torch.zeros(4))
        self.context = linear(4 + cfg.n_hidden + 1, cfg.n_hidden_small)
        self.in_to_hidden = linear(4, 4)
        self.hidden_to_hidden = nn.Linear(cfg.n_hidden_small, 4)  # Sonnet Linear: with bias
        nn.init.xavier_uniform_(self.hidden_to_hidden.weight), nn.init.zeros_(self.hidden_to_hidden.bias)
        self.where0 = nn.Parameter(torch.zeros(4))
        self.out = linear(4, 8, bias_init=cfg.where_prior_bias)

    def count_log_probs(self, e: Tensor, t_positive: Tensor, max_allowed: Tensor | None) -> Tensor:
        """log p(n new objects) for n = 0..N: ``e [R, 1]``, ``t_positive [R]`` -> ``[R, N + 1]``.

        logits = ELU(b + [t > 0] b_t + MLP(e)). With the discovery cap, counts above ``max_allowed [R]`` get
        probability 0 (the paper's Alg. 3; the released code does not cap, reference §2.5).
        """
        logits = F.elu(self.count_bias + t_positive.unsqueeze(-1) * self.count_bias_t + self.count_mlp(e))
        if max_allowed is not None:
            n = torch.arange(logits.shape[-1], device=logits.device)
            logits = logits.masked_fill(n > max_allowed.unsqueeze(-1), -1e4)
        return logits.log_softmax(-1)

    def where_log_prob(self, where: Tensor, c: Tensor, e: Tensor) -> Tensor:
        """Teacher-forced autoregressive log p(where_j | where_{<j}) for each discovery slot: ``where [R, N, 4]``
        -> ``[R, N]``.

        §8.4: the released code never threads the context between slots, so each slot sees the fixed
        context and its predecessor's where; we keep that (it is what the learned shapes fit, and the
        autoregression on where_{j-1} remains).
        """
        s = F.elu(self.context(torch.cat([self.where_init.expand(c.shape[0], 4), c, e], -1)))  # [R, 128]
        prev = torch.cat([self.where0.expand(where.shape[0], 1, 4), where[:, :-1]], 1)  # [R, N, 4]
        h = torch.tanh(self.in_to_hidden(prev) + self.hidden_to_hidden(s).unsqueeze(1))
        mu, raw = self.out(h).chunk(2, -1)
        return normal_log_prob(where, mu, softplus_std(raw, self.cfg.min_std)).sum(-1)

    def sample_where(self, c: Tensor, e: Tensor, n_slots: int) -> Tensor:
        """Ancestral sample of where for ``n_slots`` slots: ``[R, n_slots, 4]``."""
        s = F.elu(self.context(torch.cat([self.where_init.expand(c.shape[0], 4), c, e], -1)))
        hs = self.hidden_to_hidden(s)
        prev, out = self.where0.expand(c.shape[0], 4), []
        for _ in range(n_slots):
            mu, raw = self.out(torch.tanh(self.in_to_hidden(prev) + hs)).chunk(2, -1)
            prev = mu + softplus_std(raw, self.cfg.min_std) * torch.randn_like(mu)
            out.append(prev)
        return torch.stack(out, 1)


def prior_rollout_loss(
    prior: PropagationPrior, states: list[TrackState], actions: list[Tensor | None], steps: int
) -> Tensor:
    """Multi-step error of the propagation prior's mean rollout, scored like its one-step where term: ``[]``.

    From the posterior state after each frame t (``states[t]``, rows R; detached: only the prior learns), the prior's
    means are fed back for k = 1..``steps`` frames with ``actions[t + k]`` (``[R]``, the action that led to frame
    t + k, or None). At k >= 2, every object still tracked at t + k (same identity) pays
    -log N(where_{t+k} | mu_k, std_k) with std_k detached, so the means learn to predict k steps ahead and the stds
    keep their one-step meaning. Summed over objects, k and t, divided by R * T: a per-frame figure, as the ELBO's.
    """
    T, R = len(states), states[0].t.shape[0]
    total = states[0].z.where.new_zeros(())
    for t in range(T - 2):
        z, h = states[t].z, states[t].h_prior.detach()
        what, where = z.what.detach(), z.where.detach()
        for k in range(1, min(steps, T - 1 - t) + 1):
            out = prior(what, where, z.pres, h, actions[t + k])
            what, where, h = out.what_mu, out.where_mu, out.h
            if k < 2:
                continue
            later = states[t + k].z  # the same identity, present at both ends: [R, N (start), N (later)]
            same = (
                (z.id.unsqueeze(-1) == later.id.unsqueeze(-2))
                & (z.pres > 0).unsqueeze(-1)
                & (later.pres > 0).unsqueeze(-2)
            )
            target = same.to(where.dtype) @ later.where.detach()
            nll = -normal_log_prob(target, where, out.where_std.detach()).sum(-1)
            total = total + (nll * same.any(-1)).sum()
    return total / (R * T)
