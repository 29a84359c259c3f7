"""Play slot-wrapped envs and record what happened as arrays, for the scores of :mod:`sqair_world.evaluation`.

- :func:`play_atari`: a random policy on a maze game, with the RAM sprite positions as the truth;
- :func:`play_moving_mnist`: seeded moving-MNIST episodes, with the digits' tracks as the truth;
- :func:`record_episode_gif`: one episode's ``render()`` frames as a GIF.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from sqair_world.envs.atari import sticky_action
from sqair_world.evaluation.atari import SpriteRollout
from sqair_world.evaluation.draw import save_gif
from sqair_world.evaluation.tracking import TrackRollout, concat_rollouts
from sqair_world.utils import box_to_pixels


def play_atari(env: gym.Env, steps: int, seed: int = 0) -> SpriteRollout:
    """``steps`` steps of sticky random actions on a slot-wrapped maze game (``SQAIR-Wrapped/Pacman``, ...); the
    frames too when the env includes them (``include_frame=True``).

    A step that ends an episode resets it and is not recorded (its frame shows the game's end, not the maze)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    game, size = env.get_wrapper_attr("game"), env.get_wrapper_attr("size")
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    pres, where, ids, sprites, bounds, frames, episodes = [], [], [], [], [], [], []
    action, episode = 0, 0
    for _ in range(steps):
        action = sticky_action(rng, action, env.action_space.n)
        obs, _, term, trunc, info = env.step(action)
        if term or trunc:
            obs, info = env.reset(seed=int(rng.integers(2**31)))
            episode += 1
            continue
        episodes.append(episode)
        pres.append(obs["pres"])
        where.append(obs["where"])
        ids.append(obs["id"])
        sprites.append(game.positions(info["ram_xy"], size))
        bounds.append(info["sqair_bound"])
        if "frame" in obs:
            frames.append(obs["frame"])
    if not pres:
        raise ValueError(f"every one of the {steps} steps ended an episode; play more steps")
    arrays = (np.stack(a) for a in (pres, where, ids, sprites, bounds))
    r0, r1 = game.rows
    return SpriteRollout(
        *arrays,
        frame_hw=(size, size),
        names=tuple(game.names),
        native_scale=(160 / size, (r1 - r0) / size),
        frames=np.stack(frames) if frames else None,
        episodes=np.asarray(episodes),
    )


def play_moving_mnist(env: gym.Env, episodes: int = 1, seed: int = 0) -> TrackRollout:
    """``episodes`` episodes (seeds ``seed``, ``seed + 1``, ...) of a slot-wrapped moving-MNIST env, whose ``info``
    holds the truth (``boxes``, ``track_ids``), side by side on the batch axis (cut to the shortest)."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    return concat_rollouts([_play_tracks(env, seed + e) for e in range(episodes)])


def _play_tracks(env: gym.Env, seed: int) -> TrackRollout:
    obs, info = env.reset(seed=seed)
    if "track_ids" not in info:
        raise ValueError(
            "play_moving_mnist needs an env whose info has ground-truth 'boxes' and 'track_ids' "
            "(SQAIR-Wrapped/MovingMNIST)"
        )
    height, width = env.unwrapped.observation_space.shape[:2]
    gt_b, gt_i, pr_b, pr_i = [], [], [], []
    done = False
    while True:  # the frame returned with terminated=True is the episode's last one: keep it
        gt_b.append(info["boxes"].astype(np.float64))
        gt_i.append(info["track_ids"])
        pr_b.append(box_to_pixels(obs["where"].astype(np.float64), height, width))
        pr_i.append(obs["id"])
        if done:
            break
        obs, _, terminated, truncated, info = env.step(0)
        done = terminated or truncated
    return TrackRollout(*(np.stack(a)[:, None] for a in (gt_b, gt_i, pr_b, pr_i)))


def record_episode_gif(
    env: gym.Env,
    path: str | Path,
    max_steps: int = 300,
    seed: int | None = None,
    policy: Callable[[Any], Any] | None = None,
    fps: float = 15,
) -> int:
    """Play one episode (random actions unless ``policy(obs) -> action``), write its ``render()`` frames as a GIF;
    returns the steps played."""
    obs, _ = env.reset(seed=seed)
    frames = [env.render()]
    for _ in range(max_steps):
        action = policy(obs) if policy is not None else env.action_space.sample()
        obs, _, term, trunc, _ = env.step(action)
        frames.append(env.render())
        if term or trunc:
            break
    save_gif(path, frames, fps)
    return len(frames) - 1
