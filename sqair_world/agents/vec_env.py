"""SB3 ``VecEnv`` of slot observations: one batched SQAIR call per step for all envs.

SB3 envs reset inside ``step`` and put the last frame in ``info["terminal_observation"]``: that frame is
tracked with the old state (and replaced by its slots), then the row is cleared and the reset frame
tracked afresh. Uses :class:`~sqair_world.envs.slots.SlotEncoder`, so it gives the same slots as per-env
:class:`~sqair_world.envs.slots.SQAIRObservation` wrappers and the Gymnasium vector wrapper.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnvWrapper
from torch import nn

from sqair_world.envs.slots import SlotEncoder, resolve_model, slot_space


class SQAIRVecEnv(VecEnvWrapper):
    """SB3 ``VecEnv`` of frames -> ``VecEnv`` of slot dicts, for SB3 agents (``MultiInputPolicy``). ``model``: a SQAIR
    model or the path of its checkpoint. ``imagine_horizon`` > 0 adds ``imagined`` ``[H, N, 5]``: the mean over
    ``imagine_samples`` rollouts of the priors of (pres, box) 1..H steps ahead.

    Example:
        >>> from stable_baselines3.common.env_util import make_vec_env
        >>> from sqair_world.envs import make_moving_mnist_env, load_default_model
        >>> venv = SQAIRVecEnv(make_vec_env(make_moving_mnist_env, n_envs=2), load_default_model("MovingMNIST"))
        >>> venv.observation_space["id"].shape
        (3,)
    """

    def __init__(
        self,
        venv,
        model: nn.Module | str | os.PathLike,
        device: str | torch.device = "auto",
        num_slots: int | None = None,
        include_frame: bool = False,
        sample: bool = False,
        threads: int | None = 1,
        compile: bool = False,
        imagine_horizon: int = 0,
        imagine_samples: int = 4,
    ) -> None:
        model, _ = resolve_model(model)
        self.encoder = SlotEncoder(
            model, venv.num_envs, num_slots, device, sample, imagine_horizon, imagine_samples, threads, compile
        )
        self.include_frame = include_frame
        self.encoder.check_action_space(venv.action_space)
        space = slot_space(model, self.encoder.num_slots, include_frame, venv.observation_space, imagine_horizon)
        super().__init__(venv, observation_space=space)
        self._actions: np.ndarray | None = None  # the actions of the step in flight (an action-conditioned prior)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)
        self.venv.step_async(actions)

    def imagine(
        self,
        horizon: int,
        num_samples: int = 1,
        render: bool = False,
        actions: np.ndarray | None = None,
        mean: bool = False,
    ) -> dict[str, np.ndarray]:
        """Predicted slots of every env in one batched call, ``[E, H, S, N, ...]`` (see
        :meth:`~sqair_world.envs.slots.SlotEncoder.imagine`); the envs and trackers are left untouched."""
        return self.encoder.imagine(horizon, num_samples, render, actions, mean)

    def _package(self, obs: dict[str, np.ndarray], frames: np.ndarray) -> dict[str, np.ndarray]:
        obs.pop("bound", None)
        if self.include_frame:
            obs["frame"] = frames
        return obs

    def reset(self):
        frames = self.venv.reset()
        self.encoder.reset()
        return self._package(self.encoder.encode(frames), frames)

    def step_wait(self):
        frames, rewards, dones, infos = self.venv.step_wait()
        done_idx = np.flatnonzero(dones)
        if len(done_idx):
            # 1) the terminal frames, tracked with the old state, replace the frames of the finished envs
            terminal = frames.copy()
            for i in done_idx:
                terminal[i] = infos[i]["terminal_observation"]
            obs = self.encoder.encode(terminal, actions=self._actions)
            for i in done_idx:
                infos[i]["terminal_observation"] = {k: v[i] for k, v in self._package(dict(obs), terminal).items()}
            # 2) clear the finished rows and track their reset frames afresh
            self.encoder.reset_rows(dones)
            fresh = self.encoder.encode(frames[done_idx], rows=done_idx)
            for k in obs:
                obs[k][done_idx] = fresh[k]
        else:
            obs = self.encoder.encode(frames, actions=self._actions)
        bounds = obs.pop("bound")
        for i, b in enumerate(bounds):
            infos[i]["sqair_bound"] = float(b)
        return self._package(obs, frames), rewards, dones, infos
