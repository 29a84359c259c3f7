"""Schedules as pure functions of the training step (no module anneals itself)."""

from __future__ import annotations

from collections.abc import Sequence


def curriculum_length(step: int, start: int = 3, every: int = 100_000, maximum: int = 10) -> int:
    """Sequence length at ``step``: ``start`` frames, one more every ``every`` steps, at most ``maximum``
    (the authors' curriculum: 3 + step // 100k up to 10, reference §4; "it doesn't train without it")."""
    if every <= 0:
        return maximum
    return int(min(maximum, start + step // every))


def piecewise_constant(step: int, boundaries: Sequence[int], values: Sequence[float]) -> float:
    """``values[i]`` for ``boundaries[i-1] <= step < boundaries[i]``; ``len(values) == len(boundaries) + 1``."""
    if len(values) != len(boundaries) + 1:
        raise ValueError("piecewise_constant needs one more value than boundaries")
    for b, v in zip(boundaries, values):
        if step < b:
            return float(v)
    return float(values[-1])


def authors_learning_rate(step: int, base: float = 1e-5, total: int = 2_000_000) -> float:
    """``base`` until 20% of ``total``, /3 until 50%, /9 after: for the released 2M steps 1e-5 to 400k,
    3.33e-6 to 1M, 1.11e-6 to 2M (reference §4)."""
    return piecewise_constant(step, [int(0.2 * total), int(0.5 * total)], [base, base / 3, base / 9])


def warmup_constant(step: int, base: float, warmup: int = 200) -> float:
    """Linear warm-up over ``warmup`` steps, then constant: the fast CPU recipe's learning rate."""
    return base * min(1.0, (step + 1) / max(1, warmup))


def linear_decay(step: int, start: float, steps: int) -> float:
    """``start`` at step 0, falling linearly to 0 at ``steps`` (0 throughout when ``steps`` <= 0)."""
    if steps <= 0:
        return 0.0
    return start * max(0.0, 1.0 - step / steps)
