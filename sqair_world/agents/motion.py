"""The motion feature of slot observations: each slot's displacement since the previous step, matched by track id.

A single frame of slots has no velocity (pixel agents get it from a stack of 4 frames). These wrappers add the key
``"motion"``, float32 ``[N, 2]``: (dx, dy) of the box centre since the previous step for the slot's track id, as
fractions of the frame width and height; 0 for a track new at this step, for empty slots and after a reset.

- :class:`SlotMotion`: a Gymnasium wrapper of one slot env (``SQAIR-Wrapped/*``, ``SQAIR-Oracle/*``);
- :class:`VecSlotMotion`: an SB3 ``VecEnv`` wrapper (after :class:`~sqair_world.agents.vec_env.SQAIRVecEnv`, or a
  ``DummyVecEnv`` of slot envs), which also completes ``info["terminal_observation"]``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnvWrapper

SLOT_KEYS = ("pres", "where", "id")


def displacement(prev_where: np.ndarray, prev_id: np.ndarray, where: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Centre displacement ``[..., N, 2]`` of each slot since the previous step, matched by id.

    ``prev_where``/``where``: ``[..., N, 4]`` boxes (x, y, w, h); ``prev_id``/``ids``: ``[..., N]`` int, -1 empty.
    A slot whose id (>= 0) was not present at the previous step gets 0."""
    same = (ids[..., :, None] == prev_id[..., None, :]) & (ids[..., :, None] >= 0)  # [..., N, N_prev]
    matched = same.any(-1)
    j = same.argmax(-1)  # the previous slot of the same id (ids are unique within a step)
    prev_xy = np.take_along_axis(prev_where[..., :2], j[..., None], axis=-2)
    return np.where(matched[..., None], where[..., :2] - prev_xy, 0.0).astype(np.float32)


def motion_space(space: gym.spaces.Dict) -> gym.spaces.Dict:
    """The slot space with the ``"motion"`` key added; refuses a space without ``pres``, ``where`` and ``id``."""
    if not isinstance(space, gym.spaces.Dict) or any(k not in space.spaces for k in SLOT_KEYS):
        raise ValueError(
            f"the motion wrapper needs a slot observation (a Dict space with {list(SLOT_KEYS)}, e.g. "
            f"SQAIR-Wrapped/Pacman or SQAIR-Oracle/Pacman), got {space}"
        )
    n = space["pres"].shape[-1]
    return gym.spaces.Dict({**space.spaces, "motion": gym.spaces.Box(-1.0, 1.0, (n, 2), np.float32)})


class SlotMotion(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Adds ``"motion"`` (see the module docstring) to the observations of one slot env."""

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        self.observation_space = motion_space(env.observation_space)
        self._prev: dict[str, np.ndarray] | None = None

    def reset(self, **kwargs: Any):
        self._prev = None
        return super().reset(**kwargs)

    def observation(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._prev is None:
            motion = np.zeros((*obs["id"].shape, 2), np.float32)
        else:
            motion = displacement(self._prev["where"], self._prev["id"], obs["where"], obs["id"])
        self._prev = {"where": obs["where"].copy(), "id": obs["id"].copy()}
        return {**obs, "motion": motion}


class VecSlotMotion(VecEnvWrapper):
    """Adds ``"motion"`` to the observations of an SB3 ``VecEnv`` of slots; rows that reset get 0 motion."""

    def __init__(self, venv) -> None:
        super().__init__(venv, observation_space=motion_space(venv.observation_space))
        self._where = self._id = None

    def _with_motion(self, obs: dict[str, np.ndarray], motion: np.ndarray) -> dict[str, np.ndarray]:
        self._where, self._id = obs["where"].copy(), obs["id"].copy()
        return {**obs, "motion": motion}

    def reset(self):
        obs = self.venv.reset()
        return self._with_motion(obs, np.zeros((*obs["id"].shape, 2), np.float32))

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        motion = displacement(self._where, self._id, obs["where"], obs["id"])
        for i in np.flatnonzero(dones):
            terminal = infos[i].get("terminal_observation")
            if isinstance(terminal, dict):  # the last frame of the episode moved on from the previous step
                d = displacement(self._where[i], self._id[i], terminal["where"], terminal["id"])
                infos[i]["terminal_observation"] = {**terminal, "motion": d}
            motion[i] = 0.0  # the row shows the reset frame: a new episode
        return self._with_motion(obs, motion), rewards, dones, infos
