"""64x64 regions of the downscaled frames, people counted per region and frame, and sequences of 5: the rules of the
authors' DukeMTMC preprocessing (``scripts/preprocess.py``), vectorised over frames, regions and boxes.

- A box counts in a region if **more than** ``threshold`` (0.25) of its area lies inside it.
- A frame is *invalid* for a region if more than ``max_objects`` (3) boxes count, and *empty* if none counts or the
  counted boxes' in-region fractions sum to less than 1 (only parts of people inside).
- The kept frames are walked in time order: an invalid frame closes the open sequence; an empty frame is appended
  while fewer than ``max_empty`` (1) empty frames have been (the counter is reset only when a sequence closes),
  else it closes the sequence; a sequence opened right after a closing empty frame starts with that frame.
- Each sequence is cut into non-overlapping chunks of ``length`` (5) frames; a shorter rest is dropped.

One deliberate difference: the authors' walk never closes the sequence still open at the last frame (it is lost);
here it is kept.
"""

from __future__ import annotations

import numpy as np


def region_positions(extent: int, size: int = 64, stride: int = 32) -> np.ndarray:
    """Region offsets along one axis: ``0, stride, 2 stride, ...`` and ``extent - size``, so the last one touches
    the frame's edge. int64 ``[n]``."""
    if extent < size:
        raise ValueError(f"a {size}-pixel region does not fit a frame side of {extent} pixels")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    pos = np.arange(0, extent - size + 1, stride, dtype=np.int64)
    return pos if pos[-1] == extent - size else np.append(pos, extent - size)


def region_grid(height: int, width: int, size: int = 64, stride: int = 32) -> np.ndarray:
    """Top-left corners (y, x) of a grid of ``size x size`` regions covering a ``height x width`` frame,
    int64 ``[R, 2]`` in row-major order (a 180x240 frame with stride 32 gives 5 x 7 = 35 regions)."""
    ys, xs = region_positions(height, size, stride), region_positions(width, size, stride)
    return np.stack(np.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)


def box_fractions(boxes: np.ndarray, regions: np.ndarray, size: int = 64) -> np.ndarray:
    """Fraction of each box's area inside each region.

    ``boxes [..., K, 4]`` (left, top, width, height) and ``regions [R, 2]`` (y, x) top-left, pixels of the same
    frame -> float64 ``[..., R, K]``. Zero-area boxes give 0."""
    boxes = np.asarray(boxes, dtype=np.float64)[..., None, :, :]  # [..., 1, K, 4]
    ry = np.asarray(regions, dtype=np.float64)[:, 0, None]  # [R, 1]
    rx = np.asarray(regions, dtype=np.float64)[:, 1, None]
    left, top, w, h = np.moveaxis(boxes, -1, 0)
    iw = np.clip(np.minimum(left + w, rx + size) - np.maximum(left, rx), 0, None)
    ih = np.clip(np.minimum(top + h, ry + size) - np.maximum(top, ry), 0, None)
    area = w * h
    return np.divide(iw * ih, area, out=np.zeros_like(area * iw), where=area > 0)


def count_in_regions(
    boxes: np.ndarray, valid: np.ndarray, regions: np.ndarray, size: int = 64, threshold: float = 0.25
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """People per frame and region.

    ``boxes [F, K, 4]`` (left, top, width, height) with ``valid [F, K]`` marking real boxes, ``regions [R, 2]``.
    Returns ``counts`` int64 ``[F, R]`` (boxes with more than ``threshold`` of their area inside), ``fraction_sum``
    float64 ``[F, R]`` (their in-region fractions summed) and ``inside`` bool ``[F, R, K]`` (which boxes count)."""
    frac = box_fractions(boxes, regions, size)
    inside = (frac > threshold) & np.asarray(valid, bool)[:, None, :]
    return inside.sum(-1), np.where(inside, frac, 0.0).sum(-1), inside


def frame_status(counts: np.ndarray, fraction_sum: np.ndarray, max_objects: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(invalid, empty), bool like ``counts``: more than ``max_objects`` people; nobody, or less than one person's
    worth of area inside (the authors' rule)."""
    return counts > max_objects, (counts == 0) | (fraction_sum < 1.0)


def sequence_runs(
    invalid: np.ndarray, empty: np.ndarray, max_empty: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The authors' walk over ``F`` kept frames, for ``R`` independent streams (regions) at once.

    ``invalid``, ``empty``: bool ``[F, R]``. Returns runs of consecutive frames as ``stream``, ``start``, ``stop``
    (int64 ``[N]``, frames ``start .. stop - 1`` of that stream), ordered by stream, then start."""
    invalid, empty = np.asarray(invalid, bool), np.asarray(empty, bool)
    if invalid.shape != empty.shape or invalid.ndim != 2:
        raise ValueError(f"invalid and empty must both be [F, R], got {invalid.shape} and {empty.shape}")
    F, R = invalid.shape
    start = np.full(R, -1, dtype=np.int64)  # first frame of the open sequence, -1 when none is open
    n_empty = np.zeros(R, dtype=np.int64)
    last_empty = np.zeros(R, dtype=bool)
    runs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for t in range(F):
        inv, emp, is_open = invalid[t], empty[t] & ~invalid[t], start >= 0
        append_empty = emp & is_open & (n_empty < max_empty)
        close = (inv | (emp & ~append_empty)) & is_open
        opens = ~inv & ~is_open  # a frame that closes a sequence does not open one
        if close.any():
            r = np.flatnonzero(close)
            runs.append((r, start[r], np.full(len(r), t)))
        n_empty = np.where(inv | close, 0, n_empty + append_empty)
        # a sequence opened by a non-empty frame right after an empty one starts with that empty frame
        start = np.where(close, -1, np.where(opens, np.where(~emp & last_empty & (t > 0), t - 1, t), start))
        last_empty = emp
    r = np.flatnonzero(start >= 0)
    runs.append((r, start[r], np.full(len(r), F)))  # the sequences still open at the end (the authors drop them)
    stream, first, stop = (np.concatenate(c).astype(np.int64) for c in zip(*runs))
    order = np.lexsort((first, stream))
    return stream[order], first[order], stop[order]


def chunk_runs(
    stream: np.ndarray, start: np.ndarray, stop: np.ndarray, length: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping chunks of ``length`` frames of each run (a shorter rest is dropped): ``stream``, ``start``
    int64 ``[S]``; chunk s covers frames ``start[s] .. start[s] + length - 1``."""
    n = (np.asarray(stop) - np.asarray(start)) // length
    run = np.repeat(np.arange(len(n)), n)
    offset = np.arange(len(run)) - np.repeat(np.cumsum(n) - n, n)
    return np.asarray(stream)[run], np.asarray(start)[run] + offset * length


__all__ = [
    "box_fractions",
    "chunk_runs",
    "count_in_regions",
    "frame_status",
    "region_grid",
    "region_positions",
    "sequence_runs",
]
