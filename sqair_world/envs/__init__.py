"""Environment registration: ``import sqair_world`` registers the ``SQAIR-Wrapped/*`` ids with Gymnasium.

- ``SQAIR-Wrapped/Pacman``, ``SQAIR-Wrapped/MsPacman``: pre-processed ALE games with tracked object slots;
- ``SQAIR-Wrapped/MovingMNIST``: moving multi-MNIST with known tracks (tests and demos);
- ``SQAIR-Oracle/Pacman``, ``SQAIR-Oracle/MsPacman``: the same slot observation filled from the console RAM
  (:mod:`sqair_world.envs.oracle`), the upper bound for agents on slots.

Any ALE maze game with its own checkpoint: ``make_sqair_env("ALE/Pacman-v5", checkpoint=PATH)``; a shipped one by
name: ``gym.make("SQAIR-Wrapped/Pacman", checkpoint="pacman_velocity")`` (:func:`shipped_checkpoints` lists them).
``gym.make_vec(id, num_envs=16)`` runs all envs through one batched model call per step
(:func:`~sqair_world.envs.factory.make_sqair_vector_env`). ``gym.make(env.spec)`` rebuilds an env with its
keyword arguments.
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym

from sqair_world.envs.factory import (
    load_default_model,
    make_moving_mnist_env,
    make_sqair_env,
    make_sqair_vector_env,
    shipped_checkpoints,
)

ENV_IDS = ("SQAIR-Wrapped/Pacman", "SQAIR-Wrapped/MsPacman", "SQAIR-Wrapped/MovingMNIST")
ORACLE_IDS = ("SQAIR-Oracle/Pacman", "SQAIR-Oracle/MsPacman")

_LAZY = {  # these import torch and the model: loaded on first use, so that registering the ids stays cheap
    "MazePreprocessing": "sqair_world.envs.atari",
    "OracleSlots": "sqair_world.envs.oracle",
    "make_oracle_env": "sqair_world.envs.oracle",
    "SQAIRObservation": "sqair_world.envs.slots",
    "SQAIRVectorObservation": "sqair_world.envs.vector",
    "play_atari": "sqair_world.envs.rollouts",
    "play_moving_mnist": "sqair_world.envs.rollouts",
    "record_episode_gif": "sqair_world.envs.rollouts",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sqair_world.envs' has no attribute {name!r}")


def register_envs() -> None:
    """Register the ids (idempotent). They are unversioned: gymnasium forbids an unversioned and a versioned
    id of the same name, so ``-v0`` ids are answered by gymnasium's own "not found" error."""
    for env_id in ENV_IDS:
        if env_id not in gym.registry:
            game = env_id.split("/")[1]
            gym.register(
                id=env_id,
                entry_point="sqair_world.envs.factory:make_sqair_env",
                kwargs={"game": game},
                vector_entry_point="sqair_world.envs.factory:make_sqair_vector_env",
                max_episode_steps=None if game != "MovingMNIST" else 1000,
            )
    for env_id in ORACLE_IDS:
        if env_id not in gym.registry:
            gym.register(
                id=env_id, entry_point="sqair_world.envs.oracle:make_oracle_env", kwargs={"game": env_id.split("/")[1]}
            )


__all__ = [
    "ENV_IDS",
    "ORACLE_IDS",
    "load_default_model",
    "make_moving_mnist_env",
    "make_sqair_env",
    "make_sqair_vector_env",
    "register_envs",
    "shipped_checkpoints",
    *_LAZY,
]
