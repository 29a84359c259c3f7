"""Probes: named intermediate tensors that the model reports while a :func:`probing` block is open.

The training diagnostics (``sqair_world.training.diagnostics``) need quantities that the model's outputs do not
carry (propagation's presence logits before masking, where-stds, per-module KL terms). The model calls
:func:`record` where they are computed; outside a :func:`probing` block, and inside compiled graphs, that is a
no-op, so the maths and its speed do not change.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import Tensor

_SINK: ContextVar[dict[str, list[Tensor]] | None] = ContextVar("sqair_probes", default=None)


def active() -> bool:
    """Whether a :func:`probing` block is open (so that the caller computes a probe's value only then)."""
    # compiling first: dynamo cannot trace ContextVar.get (inside torch.cond, say), and graphs record nothing
    return not torch.compiler.is_compiling() and _SINK.get() is not None


def record(name: str, value: Tensor) -> None:
    """Keep a detached copy of ``value`` under ``name`` if a :func:`probing` block is open (else do nothing)."""
    if torch.compiler.is_compiling():
        return
    sink = _SINK.get()
    if sink is None:
        return
    sink.setdefault(name, []).append(value.detach().float().reshape(-1))


@contextmanager
def probing() -> Iterator[dict[str, list[Tensor]]]:
    """Collect every :func:`record` made within the block: ``{name: [flattened tensors, one per call]}``."""
    sink: dict[str, list[Tensor]] = {}
    token = _SINK.set(sink)
    try:
        yield sink
    finally:
        _SINK.reset(token)


__all__ = ["active", "probing", "record"]
