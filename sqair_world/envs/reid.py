"""Re-identification for the online tracker: a track that reappears soon after it was lost gets its old identity.

SQAIR propagates an object only from one frame to the next; once its track ends (an Atari sprite sent back to its
start by a life loss, a ghost that flickers off for a few frames), the object comes back under a new identity. On
the Atari games that, more than anything the model does, keeps IDF1 low: scored with one identity per life instead
of per episode, the same tracks give IDF1 0.73 (Ms. Pac-Man) and 0.77 (Pac-Man) instead of 0.43 and 0.39
(docs/atari.md). Here every ended track is remembered for ``window`` steps with its mean appearance code
(``z_what`` averaged over the track's life) and last box centre; a new track takes the identity of the remembered
one nearest in the joint space of appearance and ``position_weight`` x centre (fractions of the frame side), if
nearer than ``max_distance``, one to one (greedy by distance), else a fresh identity. The mean, not the last code,
because a track often ends on its least typical frame (a flicker, a stack, a death animation): remembering the mean
gained IDF1 on both games' tuning and held-out seeds (docs/atari.md). The centre term is there because one frame's
appearance barely tells the Atari ghosts apart: their ``z_what`` lie as far from each other as from themselves a few
steps later, and most tracks come back within a few steps of where they were lost (``scripts/reid_study.py``).

Vectorised over the envs (numpy); the loop runs over slots. Axes: E envs, N slots, L remembered tracks, D what.
"""

from __future__ import annotations

import numpy as np


class ReIdentifier:
    """Maps the model's track ids ``[E, N]`` to shown ids, re-identifying lost tracks by appearance.

    :param window: agent steps a lost track is remembered (0: never; the shown ids are then the model's)
    :param max_distance: largest Euclidean distance between the codes of a re-identified pair
    :param position_weight: weight of the box centre (fractions of the frame side) in the code; 0: appearance only

    Example:
        >>> reid = ReIdentifier(num_envs=1, num_slots=2, what_dim=1, window=10, max_distance=1.0)
        >>> reid(np.array([[0, 1]]), np.array([[[0.0], [5.0]]])).tolist()
        [[0, 1]]
        >>> reid(np.array([[0, -1]]), np.array([[[0.0], [0.0]]])).tolist()  # track 1 is lost
        [[0, -1]]
        >>> reid(np.array([[0, 2]]), np.array([[[0.0], [5.2]]])).tolist()  # the model's new track 2 looks like 1
        [[0, 1]]
    """

    def __init__(
        self,
        num_envs: int,
        num_slots: int,
        what_dim: int,
        window: int,
        max_distance: float,
        position_weight: float = 0.0,
    ) -> None:
        if window < 0 or max_distance <= 0 or position_weight < 0:
            raise ValueError(
                f"window must be >= 0 steps, max_distance > 0 and position_weight >= 0, got {window}, "
                f"{max_distance} and {position_weight}"
            )
        self.window, self.max_distance, self.position_weight = window, max_distance, position_weight
        E, N, L = num_envs, num_slots, 2 * num_slots  # a life loss ends every track at once
        self.what_dim = what_dim
        code_dim = what_dim + (2 if position_weight else 0)  # the code: mean z_what, then the weighted last centre
        self.prev_ids = np.full((E, N), -1)  # the model's ids at the last step
        self.prev_shown = np.full((E, N), -1)  # the ids shown for them
        self.prev_what = np.zeros((E, N, code_dim))  # their codes
        self.prev_steps = np.zeros((E, N), int)  # how many steps each has lived: the weight of its mean
        self.lost_id = np.full((E, L), -1)  # remembered shown ids (-1: free)
        self.lost_what = np.zeros((E, L, code_dim))
        self.lost_age = np.zeros((E, L), int)
        self.next_id = np.zeros(E, int)  # the next fresh shown id per env

    def reset_rows(self, done: np.ndarray) -> None:
        """Forget everything of the envs ``done [E]`` (bool), as their model states restart."""
        for a in (self.prev_ids, self.prev_shown, self.lost_id):
            a[done] = -1
        self.next_id[done] = 0

    def show(self, ids: np.ndarray) -> np.ndarray:
        """The shown ids of the model's track ids ``ids [E, ...]`` as of the last call (-1 for a track not shown
        then, such as an object a rollout imagines): for the ids of imagined slots."""
        flat = ids.reshape(len(ids), -1)
        same = (flat[:, :, None] == self.prev_ids[:, None, :]) & (flat >= 0)[:, :, None]
        shown = np.where(same.any(2), np.take_along_axis(self.prev_shown, same.argmax(2), 1), -1)
        return shown.reshape(ids.shape)

    def __call__(
        self, ids: np.ndarray, what: np.ndarray, rows: np.ndarray | None = None, centre: np.ndarray | None = None
    ) -> np.ndarray:
        """``ids [e, N]`` (the model's, -1 absent), ``what [e, N, D]`` and, with a ``position_weight``, the box
        centres ``centre [e, N, 2]`` (fractions of the frame side) of the envs ``rows`` (default all) -> the shown
        ids ``[e, N]``."""
        if self.position_weight and centre is None:
            raise ValueError("this ReIdentifier has a position_weight: pass the box centres [e, N, 2]")
        if what.shape[-1] != self.what_dim:
            raise ValueError(f"what must be [e, N, {self.what_dim}] (the what_dim given), got {what.shape}")
        sel = slice(None) if rows is None else np.asarray(rows)
        prev_ids, prev_shown, prev_what = self.prev_ids[sel], self.prev_shown[sel], self.prev_what[sel]
        lost_id, lost_what, lost_age = self.lost_id[sel], self.lost_what[sel], self.lost_age[sel] + 1
        next_id = self.next_id[sel]
        e_idx = np.arange(len(ids))
        live = ids >= 0
        # a track that goes on keeps its shown id
        same = (ids[:, :, None] == prev_ids[:, None, :]) & live[:, :, None] & (prev_ids >= 0)[:, None, :]
        kept = same.any(2)
        src = same.argmax(2)  # [e, N] the slot each kept track was in
        shown = np.where(kept, np.take_along_axis(prev_shown, src, 1), -1)
        # its code: the running mean of its appearance, then its last centre
        steps = np.where(kept, np.take_along_axis(self.prev_steps[sel], src, 1), 0)
        mean = np.take_along_axis(prev_what[..., : self.what_dim], src[..., None], 1)
        mean = np.where(kept[..., None], mean + (what - mean) / (steps + 1)[..., None], what)
        code = mean if not self.position_weight else np.concatenate([mean, self.position_weight * centre], -1)
        # tracks that ended are remembered, in free memory first, then over the oldest
        lost_id = np.where(lost_age > self.window, -1, lost_id)
        gone = (prev_ids >= 0) & ~same.any(1)
        order = np.argsort(np.where(lost_id < 0, -np.inf, -lost_age), axis=1, kind="stable")
        dest = np.take_along_axis(order, np.clip(np.cumsum(gone, 1) - 1, 0, order.shape[1] - 1), 1)
        r, c = np.nonzero(gone)
        lost_id[r, dest[r, c]], lost_what[r, dest[r, c]], lost_age[r, dest[r, c]] = prev_shown[r, c], prev_what[r, c], 0
        # new tracks take the nearest remembered appearance, one to one, greedy by distance
        new = live & ~kept
        cost = np.linalg.norm(code[:, :, None] - lost_what[:, None], axis=-1)  # [e, N, L]
        cost[~new] = np.inf
        cost[(lost_id < 0)[:, None, :].repeat(ids.shape[1], 1)] = np.inf
        cost[cost >= self.max_distance] = np.inf
        for _ in range(ids.shape[1]):
            best = cost.reshape(len(ids), -1).argmin(1)
            i, j = np.divmod(best, cost.shape[2])
            ok = np.isfinite(cost[e_idx, i, j])
            if not ok.any():
                break
            e, i, j = e_idx[ok], i[ok], j[ok]
            shown[e, i] = lost_id[e, j]
            lost_id[e, j] = -1
            cost[e, i, :] = np.inf
            cost[e, :, j] = np.inf
        # the rest get fresh ids, in slot order
        fresh = live & (shown < 0)
        shown = np.where(fresh, next_id[:, None] + np.cumsum(fresh, 1) - 1, shown)
        self.next_id[sel] = next_id + fresh.sum(1)
        self.prev_ids[sel], self.prev_shown[sel], self.prev_what[sel] = ids, shown, code
        self.prev_steps[sel] = np.where(live, steps + 1, 0)
        self.lost_id[sel], self.lost_what[sel], self.lost_age[sel] = lost_id, lost_what, lost_age
        return shown
