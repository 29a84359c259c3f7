"""Catch with object slots: a tiny seeded env where the agent must read object state (tests and demos).

A ball falls one row per step from the top of a ``size`` x ``size`` grid, from a random column, drifting one
column per step left or right when ``drift`` (bouncing off the walls); the agent moves a paddle on the bottom row
(actions: 0 left, 1 stay, 2 right). Reward +1 when the ball reaches the bottom row on the paddle, -1 otherwise; the
episode ends there. The observation is the slot dict of the SQAIR envs built from the env state: slot order is
shuffled at every step, so only the content (class code and box) says which slot is which.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class CatchSlots(gym.Env):
    """Catch (see the module docstring); ``num_slots`` >= 2 slots (paddle, ball, then empty), ``what_size`` >= 2
    dims of class code (one-hot: paddle, ball)."""

    metadata = {"render_modes": []}

    def __init__(self, size: int = 8, drift: bool = True, num_slots: int = 3, what_size: int = 4) -> None:
        if size < 3 or num_slots < 2 or what_size < 2:
            raise ValueError(
                f"size must be >= 3, num_slots >= 2 and what_size >= 2, got {size}, {num_slots} and {what_size}"
            )
        self.size, self.drift = size, drift
        self.action_space = gym.spaces.Discrete(3)
        self.observation_space = gym.spaces.Dict(
            {
                "pres": gym.spaces.Box(0.0, 1.0, (num_slots,), np.float32),
                "where": gym.spaces.Box(0.0, 1.0, (num_slots, 4), np.float32),
                "what": gym.spaces.Box(-np.inf, np.inf, (num_slots, what_size), np.float32),
                "id": gym.spaces.Box(-1, 2**31 - 1, (num_slots,), np.int64),
            }
        )
        self._what = np.eye(2, what_size, dtype=np.float32)
        self._ball = np.zeros(2, np.int64)  # (column, row)
        self._vx, self._paddle = 0, 0

    def _obs(self) -> dict[str, np.ndarray]:
        n, s = self.observation_space["pres"].shape[0], self.size
        cells = np.array([[self._paddle, s - 1], self._ball], np.float32)  # paddle, ball
        where = np.concatenate([(cells + 0.5) / s, np.full((2, 2), 1.0 / s, np.float32)], -1)
        order = self.np_random.permutation(n)  # slot of each object (and of the empty ones)
        obs = {
            "pres": np.zeros(n, np.float32),
            "where": np.zeros((n, 4), np.float32),
            "what": np.zeros((n, self._what.shape[1]), np.float32),
            "id": np.full(n, -1, np.int64),
        }
        for k in range(2):
            obs["pres"][order[k]], obs["where"][order[k]] = 1.0, where[k]
            obs["what"][order[k]], obs["id"][order[k]] = self._what[k], k
        return obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._ball = np.array([self.np_random.integers(self.size), 0])
        self._vx = int(self.np_random.choice([-1, 1])) if self.drift else 0
        self._paddle = self.size // 2
        return self._obs(), {}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action must be 0 (left), 1 (stay) or 2 (right), got {action!r}")
        self._paddle = int(np.clip(self._paddle + int(action) - 1, 0, self.size - 1))
        x = self._ball[0] + self._vx
        if not 0 <= x < self.size:  # bounce off the wall
            self._vx = -self._vx
            x = self._ball[0] + self._vx
        self._ball = np.array([x, self._ball[1] + 1])
        done = bool(self._ball[1] == self.size - 1)
        reward = (1.0 if self._ball[0] == self._paddle else -1.0) if done else 0.0
        return self._obs(), reward, done, False, {}
