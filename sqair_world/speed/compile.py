"""``torch.compile`` of a model's per-frame step, applied from outside the model.

The compiled step fuses the few hundred small element-wise ops of a frame into a few dozen kernels. For SQAIR it
also skips discovery where it cannot find anything: without gradients, a frame whose slots propagation has
filled in every row needs no discovery step (the cap makes every discovered slot absent, so skipping is exact),
which for a tracker is most frames. Eagerly, ``Discovery.forward`` skips by itself (its row subsets are empty);
compiled, the branch must be a ``torch.cond`` (both sides in the graph, no graph break).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


def skip_full_discovery(discovery: nn.Module) -> None:
    """Wrap ``discovery``'s forward (in place, on the instance; ``state_dict`` is unchanged) so that a compiled
    no-grad step runs no discovery step when ``max_allowed`` is 0 in every row."""
    plain: Callable[..., tuple[Tensor, ...]] = type(discovery).forward.__get__(discovery)

    def forward(image, image_features, c, e, t_positive, max_allowed, sample=True, steps=None):
        if max_allowed is None or steps is not None or torch.is_grad_enabled() or not torch.compiler.is_compiling():
            return plain(image, image_features, c, e, t_positive, max_allowed, sample, steps)

        def run(*args: Tensor) -> tuple[Tensor, ...]:
            return tuple(plain(*args, sample))

        def skip(*args: Tensor) -> tuple[Tensor, ...]:
            return tuple(plain(*args, sample, 0))

        args = (image, image_features, c, e, t_positive, max_allowed)
        return type(plain(*args, sample, 0))(*torch.cond(max_allowed.any(), run, skip, args))

    discovery.forward = forward


def accelerate(model: nn.Module, dynamic: bool | None = False, cpp_wrapper: bool = False) -> nn.Module:
    """``torch.compile`` the model's ``step``, the per-frame function its ``forward`` and ``online_step`` call, in
    place; returns the model.

    ``dynamic=False`` (training): one graph per batch size, plus one for the first frame, compiled on first use
    (inductor caches the kernels on disk). ``None`` (env wrappers, whose row subsets vary): torch's automatic
    dynamic shapes after the first recompilation. ``cpp_wrapper`` (CPU inference, the env wrappers): inductor
    calls its kernels from generated C++ instead of Python, which matters for a step of hundreds of tiny kernels.
    ``state_dict`` is unchanged: the compiled step is an instance attribute over the plain method.
    """
    if getattr(model, "discovery", None) is not None and not getattr(model, "grid", False):
        skip_full_discovery(model.discovery)
    options = {"cpp_wrapper": True} if cpp_wrapper else None
    model.step = torch.compile(type(model).step.__get__(model), dynamic=dynamic, options=options)
    return model


__all__ = ["accelerate", "skip_full_discovery"]
