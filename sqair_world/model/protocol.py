"""The interfaces the rest of the package relies on, so that a model missing a method fails when it is built
(:func:`sqair_world.model.registry.build_model`) and in a test, not in a user's run.

- :class:`SequenceModel`: every model of the registry (SQAIR, AIR, the VRNNs): the training/evaluation pass over
  a sequence and its background. The trainer and the moving-MNIST evaluation need nothing else.
- :class:`ObjectTracker`: the object-slot models (SQAIR, AIR) on top of that: online tracking, rendering and
  imagination, which the Gymnasium wrappers and the figures use.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from sqair_world.model.types import Imagined, SequenceOutput, Slots, StepOutput, TrackState


@runtime_checkable
class SequenceModel(Protocol):
    cfg: Any
    """The frozen config dataclass the model was built from (``k_particles`` is its one K)."""

    def forward(self, x: Tensor, k: int | None = None, sample: bool = True) -> SequenceOutput:
        """IWAE bound and surrogate loss for frames ``x [T, B, C, H, W]`` in [0, 1] with ``k`` particles."""

    def set_background(self, image: Tensor, trainable: bool = True) -> None:
        """Initialise the mean image ``[C, H, W]``; ``trainable=False`` freezes it."""

    def num_parameters(self) -> int:
        """Number of parameters."""


@runtime_checkable
class ObjectTracker(SequenceModel, Protocol):
    def initial_state(self, rows: int, device: Any = None) -> TrackState:
        """Empty slots for ``rows`` rows."""

    def online_step(self, state: TrackState | None, x_t: Tensor, sample: bool = False) -> StepOutput:
        """Track one frame ``x_t [B, C, H, W]``."""

    def reset_rows(self, state: TrackState, done: Tensor) -> TrackState:
        """Clear the rows where ``done [R]`` is True."""

    def render(self, z: Slots) -> Tensor:
        """Canvas ``[*, C, H, W]`` of slots ``z [*, N, ...]``."""

    def imagine(self, state: TrackState, horizon: int, num_samples: int = 1, render: bool = False) -> Imagined:
        """Roll the learned priors ``horizon`` steps from ``state``."""


def protocol_mismatches(obj: Any, protocol: type) -> list[str]:
    """What ``obj`` lacks of ``protocol``: missing members, and methods whose parameters do not accept the
    protocol's (by name, in order). Empty when it conforms."""
    problems = []
    for name, member in vars(protocol).items():
        if name.startswith("_") or not callable(member):
            continue
        impl = getattr(obj, name, None)
        if impl is None or not callable(impl):
            problems.append(f"missing method {name}()")
            continue
        want = [p for p in inspect.signature(member).parameters if p != "self"]
        have = list(inspect.signature(impl).parameters)
        if have[: len(want)] != want:
            problems.append(f"{name}{inspect.signature(impl)} does not take the parameters ({', '.join(want)})")
    for base in protocol.__mro__[1:]:
        if base is not Protocol and getattr(base, "_is_protocol", False):
            problems += protocol_mismatches(obj, base)
    missing_attrs = [a for a in getattr(protocol, "__annotations__", {}) if not hasattr(obj, a)]
    return problems + [f"missing attribute {a}" for a in missing_attrs]


def check_conforms(obj: Any, protocol: type) -> None:
    """Raise ``TypeError`` naming what ``obj`` lacks of ``protocol``."""
    problems = protocol_mismatches(obj, protocol)
    if problems:
        raise TypeError(f"{type(obj).__name__} does not implement {protocol.__name__}: {'; '.join(problems)}")


__all__ = ["ObjectTracker", "SequenceModel", "check_conforms", "protocol_mismatches"]
