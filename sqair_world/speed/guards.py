"""Skipping dynamo's guard evaluation on the compiled online step of a single env.

Before each call of a compiled function, dynamo evaluates its guards (about a thousand here: module attributes,
every tensor's shape and dtype) to pick the compiled graph that fits. A single env's tracker always sees the
same shapes, so once its tracking graph exists those guards always pass, and evaluating them is pure overhead
on a step of hundreds of tiny kernels. ``torch.compiler.set_stance(skip_guard_eval_unsafe=True)`` then
evaluates only the guards that tell the compiled graphs apart (first frame or tracking).

Unsafe in general, as its name says: it is correct only while the inputs keep the shapes, dtypes and devices
the graphs were compiled for. Not for vector envs, whose row subsets change the shapes; do not move the model
while the env runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


class GuardSkippingStep:
    """``step_fn(state, x, sample=..., action=...)`` (a compiled model's ``online_step``) with dynamo's guards
    skipped once the tracking graph has run with its guards evaluated.

    ``state`` is the tracker state (a :class:`~sqair_world.model.types.TrackState`, whose ``t`` tells a first
    frame from a tracking step). When an input fits no compiled graph, dynamo refuses before running anything;
    the step then evaluates guards (and recompiles) from that call on.

    Example:
        >>> step = GuardSkippingStep(model.online_step)  # doctest: +SKIP
        >>> out = step(state, x, sample=False)  # doctest: +SKIP
    """

    def __init__(self, step_fn: Callable[..., Any]) -> None:
        self.step_fn = step_fn
        self.enabled = True  #: False once an input fitted no graph: guards are evaluated from then on
        self.skipping = False  #: whether the next call skips guard evaluation
        self.with_action: bool | None = None  #: whether the last call had an action (another graph if it changes)

    def __call__(self, state: Any, x: torch.Tensor, sample: bool = False, action: torch.Tensor | None = None) -> Any:
        same_kind = self.with_action == (action is not None)
        self.with_action = action is not None
        if self.skipping and same_kind:
            try:
                with torch.compiler.set_stance("default", skip_guard_eval_unsafe=True):
                    return self.step_fn(state, x, sample=sample, action=action)
            except RuntimeError as err:
                if "skip_guard_eval_unsafe" not in str(err):
                    raise
                self.enabled = self.skipping = False
        tracking = self.enabled and bool((state.t > 0).all())
        out = self.step_fn(state, x, sample=sample, action=action)
        self.skipping = tracking  # the tracking graph was compiled, or found by its guards, just now
        return out


__all__ = ["GuardSkippingStep"]
