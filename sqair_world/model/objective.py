"""The IWAE bound and the VIMCO surrogate, as pure functions of per-particle log-weights.

Shapes: B batch, K particles. Models compute ``log_w: [B, K]`` (reference §4: log w = sum_t
[log p(x_t|z_t) - (log q - log p)]) and ``log_q_discrete: [B, K]`` (the log-probability of the
non-reparameterisable presence samples); the functions here turn them into the bound and the loss.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
from torch import Tensor


def iwae_bound(log_w: Tensor) -> Tensor:
    """IWAE = logsumexp_k log w_k - log K. ``log_w: [B, K]`` -> ``[B]``."""
    return torch.logsumexp(log_w, -1) - math.log(log_w.shape[-1])


def effective_sample_size(log_w: Tensor) -> Tensor:
    """ESS = 1 / sum_k w~_k^2 of the normalised weights, in [1, K]. ``[B, K]`` -> ``[B]``."""
    return 1.0 / log_w.softmax(-1).pow(2).sum(-1)


def importance_weighted(values: Tensor, log_w: Tensor) -> Tensor:
    """sum_k w~_k values_k with normalised weights (no gradient through the weights), ``[B, K]`` -> ``[B]``.

    The authors' reconstruction and KL are logged this way (reference §5).
    """
    return (log_w.detach().softmax(-1) * values).sum(-1)


def vimco_control_variates(log_w: Tensor) -> Tensor:
    """Leave-one-out baselines of Mnih & Rezende (2016), ``[B, K]`` -> ``[B, K]``.

    cv_j = log( (sum_{i != j} w_i + exp(mean_{i != j} log w_i)) / K ): particle j's weight is
    replaced by the geometric mean of the others. Computed in log space; needs K >= 2.
    """
    k = log_w.shape[-1]
    if k < 2:
        raise ValueError(f"VIMCO needs at least 2 particles, got K={k}; set k_particles >= 2")
    log_w = log_w.detach()
    mean_others = (log_w.sum(-1, keepdim=True) - log_w) / (k - 1)  # [B, K]
    # [B, K, K]: row j holds log w with entry j replaced by mean_{i != j} log w_i
    eye = torch.eye(k, dtype=torch.bool, device=log_w.device)
    swapped = torch.where(eye, mean_others.unsqueeze(-1), log_w.unsqueeze(-2))
    return torch.logsumexp(swapped, -1) - math.log(k)


def vimco_learning_signal(log_w: Tensor, kind: Literal["standard", "code"] = "standard") -> Tensor:
    """Per-particle learning signal for the score-function term, ``[B, K]``, no gradient.

    "standard" (Mnih & Rezende): L - cv_j, with L the IWAE bound; "code" (the released SQAIR,
    reference §4 and §8.3): log w_j - cv_j.
    """
    cv = vimco_control_variates(log_w)
    log_w = log_w.detach()
    if kind == "standard":
        return iwae_bound(log_w).unsqueeze(-1) - cv
    if kind == "code":
        return log_w - cv
    raise ValueError(f"unknown VIMCO signal {kind!r}; use 'standard' or 'code'")


def vimco_score_term(log_w: Tensor, log_q_discrete: Tensor, signal: Literal["standard", "code"] = "standard") -> Tensor:
    """The score-function surrogate ``[B]`` whose gradient is VIMCO's for the discrete latents: ``signal_j *
    log q_j`` summed over particles ("standard") or averaged as the released code does ("code", §8.3)."""
    score = vimco_learning_signal(log_w, signal) * log_q_discrete
    return score.sum(-1) if signal == "standard" else score.mean(-1)


class Objective(NamedTuple):
    loss: Tensor  #: [] surrogate to minimise
    iwae: Tensor  #: [B]


def iwae_vimco_loss(
    log_w: Tensor, log_q_discrete: Tensor | None, seq_len: int, signal: Literal["standard", "code"] = "standard"
) -> Objective:
    """Surrogate whose gradient is the IWAE gradient with VIMCO for the discrete latents.

    - Reparameterised latents: the gradient of the IWAE bound flows through ``log_w``.
    - Discrete latents: ``signal_j * log q_j`` per particle. "standard" sums over K (an unbiased
      estimator of d IWAE); "code" averages over K as the released code does (an extra 1/K, §8.3).
    - The loss is averaged over B and divided by T, as the authors do (reference §4).

    With K = 1 there are no leave-one-out baselines; the score term is then dropped (the caller's
    gradient for the discrete latents is zero) and the bound is the ELBO.
    """
    iwae = iwae_bound(log_w)
    loss = -iwae
    if log_q_discrete is not None and log_w.shape[-1] > 1:
        loss = loss - vimco_score_term(log_w, log_q_discrete, signal)
    return Objective(loss=loss.mean() / seq_len, iwae=iwae)
