"""The classical reference for Atari object slots: what a user would try before a learned model.

Median background, thresholded difference, connected components, Hungarian-matched identities (issue 18): the row
beside the model's in ``python -m sqair_world.evaluate atari``. It sees the same pre-processed frames as the model.

    >>> import numpy as np
    >>> frames = np.zeros((3, 84, 84, 3), np.uint8)
    >>> frames[:, 10:16, 20:24] = 255
    >>> tracker = ClassicalTracker(background=np.zeros((84, 84, 3), np.uint8))
    >>> out = tracker.track(frames)
    >>> out.ids[:, 0].tolist(), out.pres.sum(1).tolist()
    ([0, 0, 0], [1.0, 1.0, 1.0])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment


class ClassicalSlots(NamedTuple):
    """Per frame t, N slots (the same arrays as the slot observation)."""

    pres: np.ndarray  #: float ``[T, N]``
    where: np.ndarray  #: float ``[T, N, 4]`` (x_centre, y_centre, w, h) fractions of the frame
    ids: np.ndarray  #: int ``[T, N]``, -1 for empty slots


@dataclass
class ClassicalTracker:
    """Connected components of ``|frame - background| > threshold`` (max over channels), at least ``min_area``
    pixels, as boxes; identities carried by Hungarian matching of centres between consecutive frames (at most
    ``max_step`` pixels apart), new identities otherwise. ``background`` None: the median of the tracked frames."""

    background: np.ndarray | None = None
    threshold: int = 40
    min_area: int = 2
    max_step: float = 6.0
    num_slots: int = 8

    def boxes(self, frame: np.ndarray, background: np.ndarray) -> np.ndarray:
        """``[M, 4]`` pixel boxes (x_centre, y_centre, w, h) of the foreground blobs of ``frame [H, W, C]``."""
        diff = np.abs(frame.astype(np.int16) - background.astype(np.int16)).max(-1) > self.threshold
        n, _, stats, centroids = cv2.connectedComponentsWithStats(diff.astype(np.uint8), connectivity=8)
        keep = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= self.min_area) + 1
        wh = stats[keep][:, [cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT]].astype(np.float64)
        return np.concatenate([centroids[keep], wh], 1)

    def track(self, frames: np.ndarray) -> ClassicalSlots:
        """uint8 ``frames [T, H, W, C]`` -> slots, the largest blobs first when there are more than ``num_slots``."""
        T, H, W = frames.shape[:3]
        background = self.background if self.background is not None else np.median(frames, axis=0)
        N = self.num_slots
        pres, where, ids = np.zeros((T, N), np.float32), np.zeros((T, N, 4), np.float32), np.full((T, N), -1)
        prev_xy, prev_ids, next_id = np.zeros((0, 2)), np.zeros(0, int), 0
        for t in range(T):
            b = self.boxes(frames[t], background)
            b = b[np.argsort(-(b[:, 2] * b[:, 3]), kind="stable")][:N]
            cur = np.full(len(b), -1)
            if len(b) and len(prev_xy):
                d = np.linalg.norm(b[:, None, :2] - prev_xy[None], axis=-1)
                rows, cols = linear_sum_assignment(np.where(d <= self.max_step, d, 1e6))
                ok = d[rows, cols] <= self.max_step
                cur[rows[ok]] = prev_ids[cols[ok]]
            fresh = cur < 0
            cur[fresh] = next_id + np.arange(fresh.sum())
            next_id += int(fresh.sum())
            m = len(b)
            pres[t, :m] = 1.0
            where[t, :m] = b / [W, H, W, H]
            ids[t, :m] = cur
            prev_xy, prev_ids = b[:, :2], cur
        return ClassicalSlots(pres, where, ids)


__all__ = ["ClassicalSlots", "ClassicalTracker"]
