"""How well the grid's self-supervised targets alone find an Atari game's sprites (no model), scored against RAM.

    python scripts/target_study.py --env ALE/Pacman-v5 [--seeds 10 11 12] [--steps 600]

Plays the random sticky policy of ``evaluate atari`` on the given seeds, takes the targets of every frame
(``model.grid.frame_targets``, after one target per cell) under the blob rule and under the footprint rule at a few
settings, and prints per rule the counting accuracy, and the recall and precision of the target centres matched
one to one within 5 px to the RAM sprites (stacked sprites merged, as the evaluation does). The model learns its
proposals from these targets, so they bound what it finds on its own frames (docs/atari.md, "Targets that split
touching sprites"). The seeds default to the tuning seeds, never the evaluation's 0-4.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from sqair_world.envs.atari import background, game_from_env_id, make_maze_env, sticky_action
from sqair_world.evaluation.atari import merge_stacked, sprites_inside
from sqair_world.model.config import SQAIRConfig
from sqair_world.model.grid import cell_centres, frame_targets
from sqair_world.training.experiments import ATARI_MODEL

RULES = {
    "blobs, 1.5 px": dict(grid_targets="blobs"),
    **{
        f"footprint {h}x{w}, fill {f}": dict(grid_targets="footprint", grid_footprint=(h, w), grid_footprint_fill=f)
        for (h, w) in ((8, 4), (7, 4))
        for f in (0.4, 0.45, 0.5)
    },
}


def record(env_id: str, seeds: list[int], steps: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """uint8 frames ``[F, 84, 84, 3]`` of the random policy and the RAM sprite centres of each (``[S, 2]`` px)."""
    game = game_from_env_id(env_id)
    frames, truths = [], []
    for seed in seeds:
        env = make_maze_env(env_id)
        rng = np.random.default_rng(seed)
        env.reset(seed=seed)
        action = 0
        for _ in range(steps):
            action = sticky_action(rng, action, env.action_space.n)
            obs, _, term, trunc, _ = env.step(action)
            if term or trunc:  # the evaluation skips the last frame of an episode too
                env.reset(seed=int(rng.integers(2**31)))
                continue
            frames.append(obs)
            truths.append(game.positions(env.ram_xy()))
        env.close()
    return np.stack(frames), truths


def score(seen: torch.Tensor, truths: list[np.ndarray], overrides: dict, max_distance: float = 5.0) -> dict:
    """Counting accuracy, recall and precision of the targets of ``seen [F, 3, 84, 84]`` (frame minus background)."""
    cfg = SQAIRConfig(**{**ATARI_MODEL, **overrides})
    target, offset = frame_targets(seen, cfg)
    G, H = cfg.grid_size, seen.shape[-1]
    centres = (cell_centres(G) + offset / G) * (H - 1)  # [F, M, 2] px, the align-corners convention of the targets
    right = objects = found = matched = 0
    for t, truth in enumerate(truths):
        objs, _ = merge_stacked(truth, sprites_inside(truth, (H, H)), 3.0)
        peaks = centres[t][target[t] > 0].numpy()
        right += len(peaks) == len(objs)
        objects += len(objs)
        found += len(peaks)
        if len(peaks) and len(objs):
            d = np.linalg.norm(objs[:, None] - peaks[None], axis=-1)
            r, c = linear_sum_assignment(d)
            matched += int((d[r, c] < max_distance).sum())
    return {"count_acc": right / len(truths), "recall": matched / max(objects, 1), "precision": matched / max(found, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="ALE/Pacman-v5")
    p.add_argument("--seeds", type=int, nargs="+", default=[10, 11, 12])
    p.add_argument("--steps", type=int, default=600)
    args = p.parse_args()
    frames, truths = record(args.env, args.seeds, args.steps)
    bg = torch.as_tensor(background(frames.transpose(0, 3, 1, 2)[:, None]))  # the median frame, as in training
    seen = torch.as_tensor(frames).permute(0, 3, 1, 2).float() / 255 - bg
    print(f"{args.env}, seeds {args.seeds}, {len(frames)} frames")
    print("| targets | count acc. | recall | precision |\n|---|---|---|---|")
    for name, overrides in RULES.items():
        s = score(seen, truths, overrides)
        print(f"| {name} | {s['count_acc']:.3f} | {s['recall']:.3f} | {s['precision']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
