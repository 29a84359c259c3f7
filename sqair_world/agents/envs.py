"""Batched training and evaluation envs of the three observation types of :mod:`sqair_world.agents.train`.

- ``slots``: SQAIR's tracked slots of the preprocessed maze game (``SQAIR-Wrapped/<Game>``), all envs through one
  batched model call per step (:class:`~sqair_world.agents.vec_env.SQAIRVecEnv`);
- ``oracle``: the same slot space filled from the console RAM (``SQAIR-Oracle/<Game>``);
- ``pixels``: what an SB3 user runs: ``ALE/<Game>-v5`` through SB3's ``AtariWrapper`` (84x84 grey, frame stack 4),
  with the standard 2-frame max pool or, ``pixel_pool=4``, a max over all 4 skipped frames (Pac-Man draws one ghost
  per frame in a 4-frame rotation, which a 2-frame pool half hides).

All run the game at ``frame_skip`` frames per agent step with sticky actions (p = 0.25, the v5 default). Training
envs end an episode at a life loss and clip rewards to their sign when asked (as ``AtariWrapper`` does for pixels);
evaluation envs never do, and every env is ``Monitor``-wrapped below those wrappers, so the returns logged and
evaluated are the game's score over all lives. ``max_frames`` caps an episode (raw frames, the ALE's limit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.atari_wrappers import AtariWrapper, ClipRewardEnv, EpisodicLifeEnv
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecFrameStack
from torch import nn

from sqair_world.agents.motion import VecSlotMotion
from sqair_world.agents.vec_env import SQAIRVecEnv
from sqair_world.envs.atari import make_maze_env
from sqair_world.envs.factory import make_moving_mnist_env
from sqair_world.envs.oracle import make_oracle_env

OBS_TYPES = ("slots", "oracle", "pixels")
GAMES = ("Pacman", "MsPacman")
_PREFIXES = ("SQAIR-Wrapped/", "SQAIR-Oracle/", "ALE/")


def game_of(env_id: str) -> str:
    """``SQAIR-Wrapped/MsPacman``, ``SQAIR-Oracle/MsPacman``, ``ALE/MsPacman-v5`` or ``MsPacman`` -> ``MsPacman``
    (``MovingMNIST`` too, for tests and demos of the slot agents)."""
    name = env_id
    for prefix in _PREFIXES:
        name = name.removeprefix(prefix)
    name = name.split("-")[0]
    if name not in (*GAMES, "MovingMNIST"):
        raise ValueError(
            f"unknown game in {env_id!r}: expected SQAIR-Wrapped/<Game>, SQAIR-Oracle/<Game> or ALE/<Game>-v5 with "
            f"<Game> one of {list(GAMES)} (or SQAIR-Wrapped/MovingMNIST with --obs slots)"
        )
    return name


class MaxPoolSkip(gym.Wrapper):
    """Repeat each action ``skip`` frames, sum the rewards and return the pixel max over the last ``pool`` frames
    (``pool`` = 2 is SB3's ``MaxAndSkipEnv``)."""

    def __init__(self, env: gym.Env, skip: int = 4, pool: int = 4) -> None:
        if not 1 <= pool <= skip:
            raise ValueError(f"pool must be in 1..skip ({skip}), got {pool}")
        super().__init__(env)
        self.skip, self.pool = skip, pool

    def step(self, action):
        frames, total, terminated, truncated, info = [], 0.0, False, False, {}
        for _ in range(self.skip):
            frame, reward, terminated, truncated, info = self.env.step(action)
            frames.append(frame)
            total += float(reward)
            if terminated or truncated:
                break
        return np.max(np.stack(frames[-self.pool :]), 0), total, terminated, truncated, info


@dataclass(frozen=True)
class EnvSettings:
    """What the env builders need; the training CLI's options of the same names."""

    game: str
    obs: str
    frame_skip: int = 4
    pixel_pool: int = 2
    clip_reward: bool = True
    life_loss: bool = True
    motion: bool = True
    imagine_horizon: int = 0
    max_frames: int = 108_000
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.obs not in OBS_TYPES:
            raise ValueError(f"obs must be one of {list(OBS_TYPES)}, got {self.obs!r}")
        if self.game == "MovingMNIST" and self.obs != "slots":
            raise ValueError(f"MovingMNIST has slots only (--obs slots), got --obs {self.obs}")
        if self.pixel_pool not in (2, 4):
            raise ValueError(
                f"pixel_pool must be 2 (SB3's AtariWrapper) or 4 (all skipped frames), got {self.pixel_pool}"
            )
        if self.frame_skip < self.pixel_pool:
            raise ValueError(f"frame_skip must be >= pixel_pool ({self.pixel_pool}), got {self.frame_skip}")
        if self.imagine_horizon < 0 or (self.imagine_horizon and self.obs != "slots"):
            raise ValueError(
                f"imagine_horizon must be >= 0, and > 0 only with --obs slots (SQAIR imagines), got "
                f"{self.imagine_horizon} with --obs {self.obs}"
            )
        if self.max_frames < self.frame_skip:
            raise ValueError(f"max_frames must be >= frame_skip ({self.frame_skip}), got {self.max_frames}")


def _ale_kwargs(s: EnvSettings) -> dict[str, Any]:
    return {"repeat_action_probability": 0.25, "max_num_frames_per_episode": s.max_frames}


def _training_wrappers(env: gym.Env, s: EnvSettings, training: bool) -> gym.Env:
    if training and s.life_loss and s.game != "MovingMNIST":
        env = EpisodicLifeEnv(env)
    if training and s.clip_reward:
        env = ClipRewardEnv(env)
    return env


def _pixel_env(s: EnvSettings, training: bool) -> gym.Env:
    import ale_py

    gym.register_envs(ale_py)
    env = Monitor(gym.make(f"ALE/{s.game}-v5", frameskip=1, **_ale_kwargs(s)))
    skip = s.frame_skip
    if s.pixel_pool != 2:  # our pool under the wrapper; AtariWrapper then skips no more frames
        env, skip = MaxPoolSkip(env, s.frame_skip, s.pixel_pool), 1
    return AtariWrapper(
        env, frame_skip=skip, terminal_on_life_loss=training and s.life_loss, clip_reward=training and s.clip_reward
    )


def _base_env(s: EnvSettings, training: bool) -> gym.Env:
    """One env of oracle slots or of SQAIR's input frames, Monitor-wrapped, with the training wrappers."""
    if s.obs == "oracle":
        env = make_oracle_env(s.game, frameskip=s.frame_skip, **_ale_kwargs(s))
    elif s.game == "MovingMNIST":
        env = make_moving_mnist_env()
    else:
        env = make_maze_env(f"ALE/{s.game}-v5", repeat=s.frame_skip, **_ale_kwargs(s))
    return _training_wrappers(Monitor(env), s, training)


def make_vec_env(
    s: EnvSettings, n_envs: int, seed: int, training: bool = True, model: nn.Module | None = None
) -> VecEnv:
    """``n_envs`` seeded envs (seeds ``seed``, ``seed + 1``, ...) of ``s.obs``; ``model``: the SQAIR model of
    ``slots`` (shared by training and evaluation envs: tracking does not change it)."""
    if n_envs < 1:
        raise ValueError(f"n_envs must be >= 1, got {n_envs}")
    if s.obs == "pixels":
        venv = DummyVecEnv([lambda: _pixel_env(s, training)] * n_envs)
        venv.seed(seed)
        return VecFrameStack(venv, 4)
    venv = DummyVecEnv([lambda: _base_env(s, training)] * n_envs)
    venv.seed(seed)
    if s.obs == "slots":
        if model is None:
            raise ValueError("slots need the SQAIR model: pass model= (see sqair_world.envs.load_default_model)")
        venv = SQAIRVecEnv(venv, model, device=s.device, imagine_horizon=s.imagine_horizon)
    return VecSlotMotion(venv) if s.motion else venv
