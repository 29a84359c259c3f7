"""The data side of the moving-MNIST preview (``python -m sqair_world.preview`` draws it): which sequences to show
and their ground-truth boxes in the drawing convention, (x_min, y_min, width, height) in pixels."""

from __future__ import annotations

import numpy as np

from sqair_world.data.moving_mnist import SequenceSet


def busiest_sequences(data: SequenceSet, n: int) -> np.ndarray:
    """Indices of the ``n`` sequences with the most digits, ties in data order (the preview shows them first)."""
    return np.argsort(-data.num_digits, kind="stable")[:n]


def visible_tracks(data: SequenceSet, t: int, s: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``t`` of sequence ``s``: the visible part of each digit's box, float32 ``[M, 4]`` (x_min, y_min, width,
    height) in pixels, and its track id, int64 ``[M]``, -1 where the slot is empty or the digit out of view."""
    boxes = data.visible_boxes[t, s][:, [1, 0, 3, 2]]  # (y, x, h, w) -> (x, y, w, h)
    ids = np.where(data.visible_frac[t, s] > 0, data.track_ids[s], -1)
    return boxes, ids
