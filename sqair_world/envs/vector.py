"""Batched slot observations for many envs: one model call per step on the device.

- :class:`SQAIRVectorObservation`: a gymnasium 1.x ``VectorWrapper``. Under next-step autoreset (the
  default) the step after an episode ends returns the reset frame of that env, so its tracker row is
  cleared on that step; under same-step autoreset it is cleared on the step that ends the episode; with
  autoreset disabled, ``reset(options={"reset_mask": mask})`` clears and re-tracks only the masked envs.
The SB3 counterpart is :class:`sqair_world.agents.vec_env.SQAIRVecEnv`. Both use
:class:`~sqair_world.envs.slots.SlotEncoder`, so they give the same slots as per-env
:class:`~sqair_world.envs.slots.SQAIRObservation` wrappers.
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper
from torch import nn

from sqair_world.envs.slots import SlotEncoder, resolve_model, slot_space


class SQAIRVectorObservation(VectorWrapper, gym.utils.RecordConstructorArgs):
    """Gymnasium vector env of frames -> vector env of slot dicts (``single_observation_space`` as the single-env
    wrapper). ``model``: a SQAIR model or the path of its checkpoint.

    Example:
        >>> import gymnasium as gym, sqair_world
        >>> from sqair_world.envs import make_moving_mnist_env, load_default_model
        >>> venv = gym.vector.SyncVectorEnv([make_moving_mnist_env for _ in range(4)])
        >>> venv = SQAIRVectorObservation(venv, load_default_model("MovingMNIST"))
        >>> venv.observation_space["pres"].shape
        (4, 3)
    """

    def __init__(
        self,
        env: VectorEnv,
        model: nn.Module | str | os.PathLike,
        device: str | torch.device = "auto",
        num_slots: int | None = None,
        include_frame: bool = False,
        sample: bool = False,
        threads: int | None = 1,
        compile: bool = False,
    ) -> None:
        model, source = resolve_model(model)
        gym.utils.RecordConstructorArgs.__init__(
            self,
            model=source,
            device=str(device),
            num_slots=num_slots,
            include_frame=include_frame,
            sample=sample,
            threads=threads,
            compile=compile,
        )
        VectorWrapper.__init__(self, env)
        self.encoder = SlotEncoder(model, env.num_envs, num_slots, device, sample, threads=threads, compile=compile)
        self.encoder.check_action_space(env.single_action_space)
        self.include_frame = include_frame
        self.single_observation_space = slot_space(
            model, self.encoder.num_slots, include_frame, env.single_observation_space
        )
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, env.num_envs)
        self.autoreset_mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        self._ended = np.zeros(env.num_envs, bool)
        self._last: dict[str, np.ndarray] | None = None  # the last slots, for partial resets

    def _obs(
        self, frames: np.ndarray, info: dict[str, Any], rows: np.ndarray | None = None, actions: Any = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Track ``frames`` (of all envs, or only ``rows``: the others keep their last slots, not re-tracked)."""
        if rows is None:
            obs = self.encoder.encode(frames, actions=actions)
        else:
            obs = {k: v.copy() for k, v in self._last.items()}
            fresh = self.encoder.encode(frames[rows], rows=rows)
            for k in fresh:
                obs[k][rows] = fresh[k]
        self._last = obs
        obs = dict(obs)
        info = dict(info, sqair_bound=obs.pop("bound").copy())
        if self.include_frame:
            obs["frame"] = frames
        return obs, info

    def reset(self, *, seed=None, options=None):
        mask = (options or {}).get("reset_mask")  # read first: SyncVectorEnv pops it from ``options``
        frames, info = self.env.reset(seed=seed, options=options)
        self.encoder.seed(seed if isinstance(seed, int) or seed is None else int(seed[0]))
        if mask is None or self._last is None:
            self.encoder.reset()
            self._ended[:] = False
            return self._obs(frames, info)
        # a partial reset (autoreset_mode "Disabled"): only the masked envs restart and are tracked afresh
        mask = np.asarray(mask, bool)
        self.encoder.reset_rows(mask)
        self._ended[mask] = False
        return self._obs(frames, info, rows=np.flatnonzero(mask))

    def step(self, actions):
        frames, rewards, terminated, truncated, info = self.env.step(actions)
        ended = np.logical_or(terminated, truncated)
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            self.encoder.reset_rows(self._ended)  # these envs return their reset frame now
            self._ended = ended
        elif self.autoreset_mode == AutoresetMode.SAME_STEP:
            self.encoder.reset_rows(ended)  # the frame returned is already the reset frame
        obs, info = self._obs(frames, info, actions=actions)
        return obs, rewards, terminated, truncated, info

    def imagine(
        self, horizon: int, num_samples: int = 1, render: bool = False, actions: Any = None, mean: bool = False
    ) -> dict[str, np.ndarray]:
        """Predicted slots of every env in one batched call: ``[E, H, S, N, ...]`` (and ``frames`` ``[E, H, S,
        H_img, W_img, C]`` uint8); ``actions`` ``[E, H]`` or ``[E, H, S]`` for an action-conditioned checkpoint
        (see :meth:`SlotEncoder.imagine`, also for ``mean``). The envs and the trackers are left untouched."""
        return self.encoder.imagine(horizon, num_samples, render, actions, mean)
