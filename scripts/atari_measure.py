"""Measure the facts behind the maze preprocessing (issue #7) on the real game.

    python -m scripts.atari_measure [--env ALE/Pacman-v5] [--steps 1500] [--seed 0]

One random-policy run (sticky actions) at frameskip 1; every step's 4 raw frames are turned into
84x84 observations in four ways: the last frame only (what ``frameskip=4`` shows), the max of the last
two (``AtariPreprocessing``), the max of all four, and the max of all four with pellets erased (ours).
For each it reports

- ``ghost_visible``: the fraction of ghosts with foreground pixels (differing from the median background by
  > 40 in some channel) within 2 px of their RAM position, among ghosts at least 6 px from every other
  sprite (so another sprite cannot stand in for them);
- ``all_ghosts_visible``: the fraction of observations where all ghosts are so isolated and all visible;
- ``blobs_median`` / ``blobs_max``: connected foreground components of at least 2 px per observation.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

import cv2
import numpy as np
import tyro

from sqair_world.envs.atari import make_maze_env, sticky_action

VARIANTS = ("last_frame", "max_last_2", "max_all_4", "max_all_4_erased")


def foreground(obs: np.ndarray, background: np.ndarray, threshold: int = 40) -> np.ndarray:
    """bool ``[..., H, W]``: pixels that differ from the background by more than ``threshold`` in some channel."""
    return np.abs(obs.astype(np.int16) - background.astype(np.int16)).max(-1) > threshold


def _blobs(mask: np.ndarray, min_area: int = 2) -> int:
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return int((stats[1:, cv2.CC_STAT_AREA] >= min_area).sum())


def near_foreground(mask: np.ndarray, xy: np.ndarray, radius: int = 2) -> np.ndarray:
    """bool ``[S]``: position (x, y) in ``xy`` ``[S, 2]`` has foreground within ``radius`` px."""
    H, W = mask.shape
    out = np.zeros(len(xy), bool)
    for i, (x, y) in enumerate(np.round(xy).astype(int)):
        y0, y1, x0, x1 = max(0, y - radius), min(H, y + radius + 1), max(0, x - radius), min(W, x + radius + 1)
        out[i] = y0 < y1 and x0 < x1 and bool(mask[y0:y1, x0:x1].any())
    return out


def _isolated(sprites_xy: np.ndarray, n_ghosts: int, min_distance: float = 6.0) -> np.ndarray:
    """bool ``[G]``: ghost g (rows 1..G of ``sprites_xy`` ``[S, 2]``, player first) is >= ``min_distance`` px
    from every other sprite."""
    d = np.sqrt(((sprites_xy[:, None] - sprites_xy[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    return d[1 : 1 + n_ghosts].min(-1) >= min_distance


def measure(env_id: str = "ALE/Pacman-v5", steps: int = 1500, seed: int = 0) -> dict[str, float | dict]:
    """Run the measurement described in the module docstring; returns the numbers per variant."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    env = make_maze_env(env_id, repeat=1, repeat_action_probability=0.0)
    game, base = env.game, env.env
    n_ghosts = sum(name.startswith("ghost") for name in game.names)
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    obs = {v: [] for v in VARIANTS}
    ghosts_xy, action, erase, since_reset = [], 0, env.erase, 0
    for _ in range(steps):
        action = sticky_action(rng, action, base.action_space.n)
        raw, done = [], False
        for _ in range(4):
            frame, _, term, trunc, _ = base.step(action)
            if since_reset < env.pellet_steps:  # as MazePreprocessing.step: blinking pills
                env._update_pellets(frame)
            raw.append(frame)
            done = done or term or trunc
        since_reset += 1
        if done:
            env.reset(seed=int(rng.integers(2**31)))
            since_reset = 0
            continue
        env.erase = False
        obs["last_frame"].append(env.process(raw[-1:]))
        obs["max_last_2"].append(env.process(raw[-2:]))
        obs["max_all_4"].append(env.process(raw))
        env.erase = erase
        obs["max_all_4_erased"].append(env.process(raw))
        ghosts_xy.append(game.positions(env.ram_xy()))
    env.close()
    result: dict[str, float | dict] = {"env_id": env_id, "observations": len(ghosts_xy)}
    for v in VARIANTS:
        frames = np.stack(obs[v])
        background = np.median(frames[::5], axis=0).astype(np.uint8)
        fg = foreground(frames, background)
        blobs = np.array([_blobs(m) for m in fg])
        vis = np.stack([near_foreground(m, xy[1 : 1 + n_ghosts]) for m, xy in zip(fg, ghosts_xy)])  # [T, G]
        iso = np.stack([_isolated(xy, n_ghosts) for xy in ghosts_xy])
        all_iso = iso.all(1)
        result[v] = {
            "ghost_visible": round(float(vis[iso].mean()), 3) if iso.any() else None,
            "all_ghosts_visible": round(float(vis[all_iso].all(1).mean()), 3) if all_iso.any() else None,
            "observations_all_isolated": int(all_iso.sum()),
            "blobs_median": float(np.median(blobs)),
            "blobs_max": int(blobs.max()),
        }
    return result


@dataclass(frozen=True)
class MeasureConfig:
    """Measure the facts behind the maze preprocessing on the real game (see the module docstring)."""

    env: str = "ALE/Pacman-v5"
    """The ALE maze game."""
    steps: int = 1500
    """Random-policy steps (sticky actions), 4 raw frames each."""
    seed: int = 0
    """Seed of the env and the policy."""


def main(argv: list[str] | None = None) -> int:
    cfg = tyro.cli(MeasureConfig, args=argv, prog="python -m scripts.atari_measure")
    try:
        result = measure(cfg.env, cfg.steps, cfg.seed)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
