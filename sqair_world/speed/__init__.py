"""Speed devices, kept apart from the model's maths and applied to it from outside.

- :mod:`~sqair_world.speed.precision`: denormal flushing, bfloat16 detection, autocast, reduced-precision matmuls;
- :mod:`~sqair_world.speed.compile`: ``torch.compile`` of the per-frame step (with discovery skipped by
  ``torch.cond`` where it cannot find anything);
- :func:`row_compaction`: whether eager slot steps gather the rows where the slot exists
  (:mod:`sqair_world.model.subsets`; on by default for big sparse CPU steps, off on CUDA and when compiled).
"""

from sqair_world.model.subsets import RowCompaction, row_compaction
from sqair_world.speed.compile import accelerate, skip_full_discovery
from sqair_world.speed.precision import (
    cpu_has_native_bf16,
    flush_denormals,
    mixed_precision,
    reduced_precision_matmul,
    require_native_bf16,
)

__all__ = [
    "RowCompaction",
    "accelerate",
    "cpu_has_native_bf16",
    "flush_denormals",
    "mixed_precision",
    "reduced_precision_matmul",
    "require_native_bf16",
    "row_compaction",
    "skip_full_discovery",
]
