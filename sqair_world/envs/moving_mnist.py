"""A moving-MNIST environment with known tracks (tests, demos): one sequence per episode, no actions."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from sqair_world.data import MovingMNISTConfig, load_embedded_mnist, make_moving_mnist

_POOLS: dict[str, tuple[np.ndarray, np.ndarray]] = {}


class MovingMNISTEnv(gym.Env):
    """Frames uint8 ``[50, 50, 1]`` of a moving multi-MNIST sequence (reference §1 generator); the single
    action does nothing. ``info`` holds the ground truth of the current frame: ``boxes`` ``[M, 4]`` (x, y, w, h
    pixels of the visible part), ``track_ids`` ``[M]`` (-1 absent or invisible), ``labels`` ``[M]``,
    ``visible_frac`` ``[M]``, ``num_digits``.

    Example:
        >>> env = MovingMNISTEnv(seq_len=20)
        >>> obs, info = env.reset(seed=0)
        >>> obs.shape, info["boxes"].shape
        ((50, 50, 1), (2, 4))
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(
        self, seq_len: int = 20, max_digits: int = 2, split: str = "eval", render_mode: str | None = None
    ) -> None:
        if seq_len < 2:  # reset returns the first frame, and a step ends the episode at the last
            raise ValueError(f"seq_len (frames per episode) must be >= 2, got {seq_len}")
        self.cfg = MovingMNISTConfig(seq_len=seq_len, max_digits=max_digits)
        if split not in ("train", "eval"):
            raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
        self.split = split
        size = self.cfg.canvas_size
        self.observation_space = gym.spaces.Box(0, 255, (size, size, 1), np.uint8)
        self.action_space = gym.spaces.Discrete(1)
        self.render_mode = render_mode
        self._seq = None
        self._t = 0

    def _info(self) -> dict[str, Any]:
        s, t = self._seq, self._t
        vis = s.visible_frac[t, 0] > 0
        return {
            "boxes": s.visible_boxes[t, 0][:, [1, 0, 3, 2]].copy(),
            "track_ids": np.where(vis, s.track_ids[0], -1),
            "labels": s.labels[0].copy(),
            "visible_frac": s.visible_frac[t, 0].copy(),
            "num_digits": int(s.num_digits[0]),
        }

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if self.split not in _POOLS:
            _POOLS[self.split] = load_embedded_mnist(self.split)
        self._seq = make_moving_mnist(*_POOLS[self.split], 1, self.cfg, self.np_random)
        self._t = 0
        return self._seq.frames[0, 0, :, :, None], self._info()

    def step(self, action):
        if self._seq is None:
            raise RuntimeError("call reset() before step()")
        if self._t >= self.cfg.seq_len - 1:
            raise RuntimeError("the episode has ended (terminated=True); call reset() before step()")
        self._t += 1
        terminated = self._t >= self.cfg.seq_len - 1
        return self._seq.frames[self._t, 0, :, :, None], 0.0, terminated, False, self._info()

    def render(self):
        if self._seq is None:
            return None
        return np.repeat(self._seq.frames[self._t, 0, :, :, None], 3, -1)
