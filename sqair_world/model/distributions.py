"""Log-densities and samplers used by the posteriors and priors, written out so the maths stays visible.

Everything is element-wise over leading axes; callers sum over latent dimensions and mask absent slots.
Inputs are promoted to float32 (a no-op for float32 tensors): under bfloat16 autocast
(``TrainConfig.autocast``) the networks' outputs are bfloat16, but samples and log-densities are not.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def as_float32(*xs: Tensor) -> tuple[Tensor, ...]:
    """The inputs in float32 (a Python check, not a dispatched ``.float()``, for the usual float32 case)."""
    return tuple(x if x.dtype == torch.float32 else x.float() for x in xs)


def normal_log_prob(x: Tensor, mu: Tensor, std: Tensor) -> Tensor:
    """log N(x | mu, std^2), element-wise."""
    x, mu, std = as_float32(x, mu, std)
    return -0.5 * ((x - mu) / std).pow(2) - std.log() - _HALF_LOG_2PI


def std_normal_log_prob(x: Tensor) -> Tensor:
    """log N(x | 0, 1), element-wise."""
    (x,) = as_float32(x)
    return -0.5 * x.pow(2) - _HALF_LOG_2PI


def log_sigmoid(x: Tensor) -> Tensor:
    """log sigmoid(x) = -softplus(-x). ``F.logsigmoid`` takes milliseconds on small tensors with 2 CPU threads
    in torch 2.13 (measured 10 ms on [160, 3] against 3 us for softplus), so we use the identity."""
    return -F.softplus(-x)


def bernoulli_log_prob(value: Tensor, logit: Tensor) -> Tensor:
    """log Bernoulli(value | sigmoid(logit)), stable in the logit."""
    (logit,) = as_float32(logit)
    return value * log_sigmoid(logit) + (1 - value) * log_sigmoid(-logit)


def mask_logit(logit: Tensor, prev_pres: Tensor, bound: float = 88.0) -> Tensor:
    """logit <- p_prev * logit + (p_prev - 1) * bound: an absent predecessor forces p ~ 0 (reference §2.3)."""
    return prev_pres * logit + (prev_pres - 1) * bound


def sample_normal(mu: Tensor, std: Tensor, sample: bool, eps: Tensor | None = None) -> Tensor:
    """Reparameterised sample mu + std * eps (or the mean when ``sample`` is False); ``eps`` standard normal
    noise drawn by the caller, or None to draw it here."""
    mu, std = as_float32(mu, std)
    if not sample:
        return mu
    return mu + std * (torch.randn_like(mu) if eps is None else eps)


def sample_bernoulli(logit: Tensor, sample: bool, u: Tensor | None = None) -> Tensor:
    """Bernoulli draw as a float tensor (no gradient): u < sigmoid(logit) with ``u`` uniform on [0, 1) (drawn by
    the caller or here); the mode p > 0.5 when ``sample`` is False."""
    with torch.no_grad():
        (logit,) = as_float32(logit)
        if sample:
            return ((torch.rand_like(logit) if u is None else u) < torch.sigmoid(logit)).to(logit.dtype)
        return (logit > 0).to(logit.dtype)


def mvn_tril_log_prob(x: Tensor, loc: Tensor, scale_tril: Tensor) -> Tensor:
    """log N(x | loc, L L^T) with lower-triangular ``scale_tril [..., D, D]``; returns ``[...]``."""
    x, loc, scale_tril = as_float32(x, loc, scale_tril)
    diff = (x - loc).unsqueeze(-1)
    z = torch.linalg.solve_triangular(scale_tril, diff, upper=False).squeeze(-1)
    log_det = scale_tril.diagonal(dim1=-2, dim2=-1).abs().log().sum(-1)
    return -0.5 * z.pow(2).sum(-1) - log_det - x.shape[-1] * _HALF_LOG_2PI


def gaussian_image_log_lik(x: Tensor, canvas: Tensor, std: float) -> Tensor:
    """sum over C, H, W of log N(x | canvas, std^2): ``[..., C, H, W]`` -> ``[...]`` (reference §1)."""
    x, canvas = as_float32(x, canvas)
    n_pix = canvas.shape[-3] * canvas.shape[-2] * canvas.shape[-1]
    return -0.5 * ((x - canvas) / std).pow(2).flatten(-3).sum(-1) - n_pix * (math.log(std) + _HALF_LOG_2PI)
