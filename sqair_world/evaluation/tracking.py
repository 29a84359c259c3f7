"""Identity tracking of a slot-wrapped env against known ground-truth tracks, on recorded arrays.

:func:`sqair_world.envs.rollouts.play_moving_mnist` records a :class:`TrackRollout` of the moving-MNIST env (the
digits' visible boxes as the truth); :func:`sqair_world.evaluation.metrics.tracking_scores` scores it
(``python -m sqair_world.evaluate tracking`` runs both).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np


class TrackRollout(NamedTuple):
    """Episodes, time-major with a batch axis B of episodes: the layout and argument order of
    :func:`sqair_world.evaluation.metrics.tracking_scores`."""

    gt_boxes: np.ndarray  #: float ``[T, B, M, 4]`` (x, y, w, h) pixels of the visible digits
    gt_ids: np.ndarray  #: int ``[T, B, M]``, -1 where a digit is absent or invisible
    pred_boxes: np.ndarray  #: float ``[T, B, N, 4]`` (x, y, w, h) pixels of the slots
    pred_ids: np.ndarray  #: int ``[T, B, N]``, -1 for empty slots


def concat_rollouts(rolls: Sequence[TrackRollout]) -> TrackRollout:
    """Episodes side by side on the batch axis, cut to the shortest one."""
    T = min(len(r.gt_ids) for r in rolls)
    return TrackRollout(*(np.concatenate([r[k][:T] for r in rolls], 1) for k in range(4)))


def identity_violations(ids: np.ndarray) -> int:
    """Identity bookkeeping errors in slot ids ``[T, N]`` (-1 empty): an id shown twice in one frame, or an id
    that comes back after it was dropped (a track, once lost, must get a new id)."""
    errors, seen, alive = 0, set(), set()
    for row in ids:
        present = [int(i) for i in row if i >= 0]
        errors += len(present) - len(set(present))
        now = set(present)
        errors += len((now - alive) & seen)
        seen |= now
        alive = now
    return errors
