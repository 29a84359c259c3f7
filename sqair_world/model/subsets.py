"""Which rows a slot step computes: every row (the maths as written), or only the rows where the slot exists.

A slot that is absent in a row (a discovery chain that has stopped or is capped, an object that was absent at
t-1) adds nothing to that row's weights, renders nothing and gets no gradient, so computing it is waste: in a
training batch, most rows of most slot steps after the first frame. The model's steps are written once, over
``rows.take(x)`` and ``rows.put(y, fill)``: with every row computed both pass tensors through, and the code is
the dense maths of the paper's algorithms. Gathering the active rows is a speed device chosen from outside, per
context, with :func:`row_compaction` (re-exported by :mod:`sqair_world.speed`); both give the same bound, samples
of the present objects and gradients (tests/test_speed.py).

Gathering is used only eagerly, on the CPU, for steps over at least ``min_rows`` rows of which at most
``max_active`` are active: it costs a few small ops per step, which a training batch (B*K = 160 rows) repays but
tracking a few envs does not, nor a step where nearly every row is active; compiled steps need static shapes,
and on CUDA finding the active rows would wait for the device at every slot step.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class RowCompaction:
    """When :class:`RowSubset` gathers: steps over at least ``min_rows`` rows (None: never) with at most a fraction
    ``max_active`` of them active (docs/benchmarks.md has the measurements behind the defaults)."""

    min_rows: int | None = 128
    max_active: float = 0.8


DENSE = RowCompaction(min_rows=None)
_POLICY: ContextVar[RowCompaction] = ContextVar("sqair_row_compaction", default=RowCompaction())  # noqa: B039 (frozen)


def current_row_compaction() -> RowCompaction:
    """The policy in force in this context."""
    return _POLICY.get()


@contextmanager
def row_compaction(min_rows: int | None = 128, max_active: float = 0.8) -> Iterator[RowCompaction]:
    """Within the block, slot steps gather their active rows by the given policy (``min_rows=None``: compute every
    row). Restored on exit, also when the block raises."""
    if not 0.0 <= max_active <= 1.0:
        raise ValueError(f"max_active is a fraction of the rows, in [0, 1]; got {max_active}")
    token = _POLICY.set(RowCompaction(min_rows, max_active))
    try:
        yield _POLICY.get()
    finally:
        _POLICY.reset(token)


class RowSubset:
    """The rows of ``R`` that one step over slots has to compute: those where ``active [R]`` is True.

    ``take`` gives the inputs of the computed rows, ``put`` scatters the step's outputs back over a fill (zeros,
    or the old values). With every row computed both pass tensors through and the inactive rows hold values
    that their zero presence masks everywhere.
    """

    def __init__(self, active: Tensor) -> None:
        self.idx: Tensor | None = None  # gathered rows; None: every row is computed
        self.rows = active.numel()
        self.empty = False  # no row is active (known only where the step may sync): the step can be skipped
        if torch.compiler.is_compiling() or active.device.type != "cpu":
            return
        policy = _POLICY.get()
        if policy.min_rows is not None and self.rows >= policy.min_rows:
            idx = active.nonzero().squeeze(1)
            n = idx.numel()
            self.idx = None if n > policy.max_active * self.rows or n == self.rows else idx
            self.empty = n == 0
        else:
            self.empty = not bool(active.any())

    def take(self, x: Tensor | None) -> Tensor | None:
        """The computed rows of ``x [R, ...]``."""
        return x if self.idx is None or x is None else x.index_select(0, self.idx)

    def put(self, x: Tensor, fill: Tensor | float) -> Tensor:
        """``[R, ...]``: the step's output ``x`` on the computed rows, ``fill`` (broadcast to ``[R, ...]``)
        elsewhere; ``x`` itself when every row was computed."""
        if self.idx is None:
            return x
        shape = (self.rows, *x.shape[1:])
        if not isinstance(fill, Tensor):
            return x.new_full(shape, fill).index_copy_(0, self.idx, x)  # in place on the new tensor: no clone
        dtype = torch.promote_types(x.dtype, fill.dtype)  # a float32 state, a bfloat16 autocast output
        return fill.expand(shape).to(dtype).index_copy(0, self.idx, x.to(dtype))


class ObjectSubset(RowSubset):
    """:class:`RowSubset` over the (row, slot) pairs of ``pres [R, N]`` that hold an object, for steps batched over
    slots: ``take`` maps ``[R, N, ...]`` to ``[R*N or A, ...]``, ``put`` maps back."""

    def __init__(self, pres: Tensor) -> None:
        super().__init__(pres.reshape(-1) > 0)
        self.slots = pres.shape[-1]

    @property
    def row_idx(self) -> Tensor | None:
        """The row of each gathered pair ``[A]`` (None: every pair is computed)."""
        return None if self.idx is None else self.idx // self.slots

    def take(self, x: Tensor) -> Tensor:
        return super().take(x.reshape(self.rows, *x.shape[2:]))

    def put(self, x: Tensor, fill: Tensor | float) -> Tensor:
        if isinstance(fill, Tensor):
            fill = fill.reshape(self.rows, *fill.shape[2:])
        return super().put(x, fill).view(-1, self.slots, *x.shape[1:])

    def sum_slots(self, x: Tensor) -> Tensor:
        """Per row of ``pres``, the sum of ``x [R*N or A, ...]`` over its computed pairs: ``[R, ...]`` (the absent
        pairs add nothing, as zeros would)."""
        if self.idx is None:
            return x.view(-1, self.slots, *x.shape[1:]).sum(1)
        return x.new_zeros(self.rows // self.slots, *x.shape[1:]).index_add_(0, self.row_idx, x)


__all__ = ["DENSE", "ObjectSubset", "RowCompaction", "RowSubset", "current_row_compaction", "row_compaction"]
