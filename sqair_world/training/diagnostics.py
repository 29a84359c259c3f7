"""Training diagnostics: what the objective's terms do to the gradient, and whether propagation is alive.

:func:`diagnose` runs one extra forward pass on a batch under :func:`sqair_world.model.probes.probing` and
separates the gradient of the surrogate loss (``objective.iwae_vimco_loss``) into its two terms:

- ``grad/iwae``: the reparameterised part, the gradient of -IWAE / T through the log-weights;
- ``grad/vimco``: the score-function part for the discrete presences, -(sum_k signal_k log q_k) / T;

each as a global norm, and per module group (discovery, propagation, the rest). Beside them it reports the
probes the model records (presence probabilities and where-stds of discovery and propagation, the prior's
presence probability, per-frame KL of each), the effective sample size and the VIMCO signal's scale.

:class:`CollapseGuard` watches the propagated objects per frame in the training statistics and warns once, with
the step, when it falls to a small fraction of its running peak: the model has stopped propagating and
rediscovers every object on every frame (it has become AIR and keeps no identities).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from sqair_world.model import probes
from sqair_world.model.objective import iwae_bound, vimco_learning_signal, vimco_score_term


def _group(name: str) -> str:
    return name.split(".")[0] if name.split(".")[0] in ("discovery", "propagation") else "other"


def _norms(grads: tuple[Tensor | None, ...], names: list[str], prefix: str) -> dict[str, float]:
    out: dict[str, float] = {}
    sq: dict[str, float] = {}
    for g, n in zip(grads, names):
        if g is not None:
            sq[_group(n)] = sq.get(_group(n), 0.0) + float(g.pow(2).sum())
    out[prefix] = math.sqrt(sum(sq.values()))
    for group, v in sq.items():
        out[f"{prefix}/{group}"] = math.sqrt(v)
    return out


def diagnose(model: nn.Module, x: Tensor, k: int | None = None, actions: Tensor | None = None) -> dict[str, float]:
    """Diagnostics of one batch ``x [T, B, C, H, W]`` (floats in [0, 1]) with ``k`` particles (default: the
    model's) and, for an action-conditioned model, its ``actions [T, B]``. Gradients are computed with
    ``torch.autograd.grad``: the parameters' ``.grad`` is left untouched."""
    K = k or model.cfg.k_particles
    T = x.shape[0]
    with probes.probing() as rec:
        out = model(x, k=K) if actions is None else model(x, k=K, actions=actions)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = [p for p in model.parameters() if p.requires_grad]
    stats: dict[str, float] = {}
    iwae_term = -iwae_bound(out.log_weights).mean() / T
    stats.update(
        _norms(torch.autograd.grad(iwae_term, params, retain_graph=True, allow_unused=True), names, "grad/iwae")
    )
    if out.log_q_discrete is not None and K > 1:
        signal = vimco_learning_signal(out.log_weights, model.cfg.vimco_signal)
        vimco_term = -vimco_score_term(out.log_weights, out.log_q_discrete, model.cfg.vimco_signal).mean() / T
        grads = torch.autograd.grad(vimco_term, params, allow_unused=True)
        stats.update(_norms(grads, names, "grad/vimco"))
        stats["vimco/signal_abs_mean"] = float(signal.abs().mean())
        stats["vimco/signal_abs_max"] = float(signal.abs().max())
    stats["ess"] = float(out.ess.detach().mean())
    spread = out.log_weights.detach()
    stats["log_w/spread"] = float((spread.max(-1).values - spread.min(-1).values).mean())
    for name, values in rec.items():
        v = torch.cat(values) if values else torch.zeros(0)
        stats[f"{name}/mean"] = float(v.mean()) if v.numel() else float("nan")
    if out.num_prop is not None:
        w = out.weights.detach().unsqueeze(0)
        stats["num_prop"] = float((out.num_prop * w).sum(-1).mean())
        stats["num_disc"] = float((out.num_disc * w).sum(-1).mean())
    return stats


class PropagationCollapseWarning(UserWarning):
    """Propagation has stopped: the model rediscovers every object on every frame."""


@dataclass
class CollapseGuard:
    """Warns once when ``num_prop`` (propagated objects per frame, a running mean over ``window`` steps) falls below
    ``fraction`` of its peak, after the peak reached ``min_peak``."""

    window: int = 50
    fraction: float = 0.2
    min_peak: float = 0.3
    _recent: list[float] = field(default_factory=list)
    peak: float = 0.0
    fired_at: int | None = None

    def update(self, step: int, num_prop: float) -> bool:
        """Feed one training step; returns True at the step it warns."""
        self._recent = (self._recent + [num_prop])[-self.window :]
        if len(self._recent) < self.window:
            return False
        mean = sum(self._recent) / len(self._recent)
        self.peak = max(self.peak, mean)
        if self.fired_at is None and self.peak >= self.min_peak and mean < self.fraction * self.peak:
            self.fired_at = step
            warnings.warn(
                f"propagation collapse at step {step}: {mean:.2f} propagated objects per frame (mean of the last "
                f"{self.window} steps) against a peak of {self.peak:.2f}; every object is being rediscovered on every "
                "frame, so identities are lost (docs/moving_mnist.md, 'Stability')",
                PropagationCollapseWarning,
                stacklevel=2,
            )
            return True
        return False


__all__ = ["CollapseGuard", "PropagationCollapseWarning", "diagnose"]
