"""Environment registration: ``import sqair_world`` registers the ``SQAIR-Wrapped/*`` ids with Gymnasium.

- ``SQAIR-Wrapped/Pacman``, ``SQAIR-Wrapped/MsPacman``: pre-processed ALE games with tracked object slots;
- ``SQAIR-Wrapped/MovingMNIST``: moving multi-MNIST with known tracks (tests and demos).

Any ALE maze game with its own checkpoint: ``make_sqair_env("ALE/Pacman-v5", checkpoint=PATH)``.
``gym.make_vec(id, num_envs=16)`` runs all envs through one batched model call per step
(:func:`~sqair_world.envs.factory.make_sqair_vector_env`).
"""

from __future__ import annotations

import gymnasium as gym

from sqair_world.envs.factory import load_default_model, make_moving_mnist_env, make_sqair_env, make_sqair_vector_env

ENV_IDS = ("SQAIR-Wrapped/Pacman", "SQAIR-Wrapped/MsPacman", "SQAIR-Wrapped/MovingMNIST")


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


__all__ = [
    "register_envs",
    "make_sqair_env",
    "make_sqair_vector_env",
    "make_moving_mnist_env",
    "load_default_model",
    "ENV_IDS",
]
