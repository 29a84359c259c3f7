"""Play slot-wrapped envs and record what happened as arrays, for the scores of :mod:`sqair_world.evaluation`.

- :func:`play_atari`: a random policy on a maze game, with the RAM sprite positions as the truth;
- :func:`play_moving_mnist`: seeded moving-MNIST episodes, with the digits' tracks as the truth;
- :func:`play_prediction`: tracked objects and imagined futures at every step, for the prediction errors;
- :func:`record_episode_gif`: one episode's ``render()`` frames as a GIF;
- :func:`record_imagination_gif`: real frames beside imagined ones from the same state, as a GIF.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from sqair_world.envs.atari import sticky_action
from sqair_world.evaluation.atari import SpriteRollout
from sqair_world.evaluation.draw import grid, save_gif, to_rgb
from sqair_world.evaluation.prediction import PredictionRollout
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
    pres, where, ids, sprites, bounds, frames, episodes, what = [], [], [], [], [], [], [], []
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
        what.append(obs["what"])
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
        what=np.stack(what),
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


def random_actions(rng: np.random.Generator, n: int, num_actions: int) -> np.ndarray:
    """``n`` actions of the sticky random policy the Atari training data come from (:func:`sticky_action`)."""
    out, action = np.zeros(n, np.int64), 0
    for i in range(n):
        out[i] = action = sticky_action(rng, action, num_actions)
    return out


def true_centres(env: gym.Env, info: dict[str, Any], size: tuple[int, int]) -> np.ndarray:
    """The true object centres (x, y) px of the frame the model sees, NaN outside it: the RAM sprites of a maze
    game, or the boxes of moving MNIST (invisible digits NaN)."""
    H, W = size
    if "ram_xy" in info:
        pts = env.get_wrapper_attr("game").positions(info["ram_xy"], W).astype(np.float64)
    elif "boxes" in info:
        b = np.asarray(info["boxes"], np.float64)
        pts = b[:, :2] + b[:, 2:] / 2
        pts[np.asarray(info["track_ids"]) < 0] = np.nan
    else:
        raise ValueError("play_prediction needs an env whose info has 'ram_xy' (maze games) or 'boxes' (moving MNIST)")
    outside = (pts[:, 0] < 0) | (pts[:, 0] >= W) | (pts[:, 1] < 0) | (pts[:, 1] >= H)
    pts[outside] = np.nan
    return pts


def play_prediction(
    env: gym.Env,
    steps: int,
    horizon: int = 10,
    num_samples: int = 8,
    seed: int = 0,
    true_actions: bool = True,
    mean: bool = False,
) -> PredictionRollout:
    """``steps`` steps of sticky random actions; at each, the tracked slots and ``env.imagine(horizon,
    num_samples, mean=mean)`` from the tracker state, with the actions the policy takes next when the checkpoint is
    action-conditioned and ``true_actions`` (else the prior samples them). Episodes that end are reset."""
    if steps < 2 or horizon < 1:
        raise ValueError(f"steps must be >= 2 and horizon >= 1, got {steps} and {horizon}")
    model = env.get_wrapper_attr("model")
    conditioned = model.cfg.num_actions > 0 and true_actions
    H_img, W_img = model.cfg.image_shape[1:]
    scale = np.array([W_img, H_img], np.float64)
    rng = np.random.default_rng(seed)
    acts = random_actions(rng, steps + horizon, int(env.action_space.n))
    obs, info = env.reset(seed=seed)
    rec: dict[str, list] = {k: [] for k in ("ids", "centres", "im_ids", "im_centres", "episodes", "truth")}
    episode, size = 0, (H_img, W_img)
    truth_known = "ram_xy" in info or "boxes" in info
    game = env.get_wrapper_attr("game") if "ram_xy" in info else None
    for t in range(steps):
        rec["ids"].append(obs["id"])
        rec["centres"].append(obs["where"][:, :2] * scale)
        rec["episodes"].append(episode)
        if truth_known:
            rec["truth"].append(true_centres(env, info, size))
        im = env.get_wrapper_attr("imagine")(
            horizon, num_samples, actions=acts[t : t + horizon] if conditioned else None, mean=mean
        )
        rec["im_ids"].append(im["id"])
        rec["im_centres"].append(im["where"][..., :2] * scale)
        obs, _, term, trunc, info = env.step(int(acts[t]))
        if term or trunc:
            obs, info = env.reset(seed=int(rng.integers(2**31)))
            episode += 1
    truth = None
    if truth_known:
        M = max(len(a) for a in rec["truth"])
        truth = np.full((steps, M, 2), np.nan)
        for t, a in enumerate(rec["truth"]):
            truth[t, : len(a)] = a
    player = 0 if game is not None and game.names[0] == "player" else None
    return PredictionRollout(
        np.stack(rec["ids"]),
        np.stack(rec["centres"]).astype(np.float64),
        np.stack(rec["im_ids"]),
        np.stack(rec["im_centres"]).astype(np.float64),
        np.asarray(rec["episodes"]),
        truth,
        player,
    )


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


def record_imagination_gif(
    env: gym.Env,
    path: str | Path,
    horizon: int = 10,
    segments: int = 3,
    warmup: int = 40,
    seed: int = 0,
    scale: int = 3,
    fps: float = 4,
) -> Path:
    """``segments`` times: play ``warmup`` sticky random steps, then show, frame by frame, the next ``horizon`` real
    frames (left) beside the frames imagined from the tracker state before them (right; the actions actually taken
    for an action-conditioned checkpoint, one sample). The env must include its frames (``include_frame=True``)."""
    model = env.get_wrapper_attr("model")
    conditioned = model.cfg.num_actions > 0
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    if "frame" not in obs:
        raise ValueError("record_imagination_gif needs an env made with include_frame=True")
    frames = []
    for _ in range(segments):
        acts = random_actions(rng, warmup + horizon, int(env.action_space.n))
        for a in acts[:warmup]:
            obs, _, term, trunc, _ = env.step(int(a))
            if term or trunc:
                obs, _ = env.reset(seed=int(rng.integers(2**31)))
        future = acts[warmup:]
        im = env.get_wrapper_attr("imagine")(horizon, 1, render=True, actions=future if conditioned else None)
        for h in range(horizon):
            obs, _, term, trunc, _ = env.step(int(future[h]))
            frames.append(grid([[to_rgb(obs["frame"], scale), to_rgb(im["frames"][h, 0], scale)]]))
            if term or trunc:
                obs, _ = env.reset(seed=int(rng.integers(2**31)))
                break
    return save_gif(path, frames, fps)
