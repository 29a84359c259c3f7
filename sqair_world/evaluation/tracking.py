"""Identity tracking of a slot-wrapped env against known ground-truth tracks (moving-MNIST env).

    python -m sqair_world.evaluation.tracking [--checkpoint PATH] [--episodes 20] [--seed 0]

prints MOTA, MOTP (1 - IoU), IDF1 and identity switches of :class:`SQAIRObservation` on
``SQAIR-Wrapped/MovingMNIST`` (one 20-frame sequence per episode, digits' visible boxes as the truth).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import NamedTuple

import gymnasium as gym
import numpy as np


class TrackRollout(NamedTuple):
    """One episode, time-major with a batch axis of 1 (the layout of :func:`sqair_world.evaluation.metrics.tracking_scores`)."""

    gt_boxes: np.ndarray  #: float ``[T, 1, M, 4]`` (x, y, w, h) pixels of the visible digits
    gt_ids: np.ndarray  #: int ``[T, 1, M]``, -1 where a digit is absent or invisible
    pred_boxes: np.ndarray  #: float ``[T, 1, N, 4]`` (x, y, w, h) pixels of the slots
    pred_ids: np.ndarray  #: int ``[T, 1, N]``, -1 for empty slots


def slot_pixel_boxes(where: np.ndarray, height: int, width: int) -> np.ndarray:
    """Observation boxes ``[..., 4]`` (x_centre, y_centre, w, h as fractions) -> (x, y, w, h) pixels."""
    w, h = where[..., 2] * width, where[..., 3] * height
    return np.stack([where[..., 0] * width - w / 2, where[..., 1] * height - h / 2, w, h], -1)


def rollout_tracks(env: gym.Env, seed: int | None = None) -> TrackRollout:
    """Play one episode of a slot-wrapped moving-MNIST env (its ``info`` holds ``boxes`` and ``track_ids``)."""
    obs, info = env.reset(seed=seed)
    if "track_ids" not in info:
        raise ValueError(
            "rollout_tracks needs an env whose info has ground-truth 'boxes' and 'track_ids' "
            "(SQAIR-Wrapped/MovingMNIST)"
        )
    height, width = env.unwrapped.observation_space.shape[:2]
    gt_b, gt_i, pr_b, pr_i = [], [], [], []
    done = False
    while True:  # the frame returned with terminated=True is the episode's last one: keep it
        gt_b.append(info["boxes"].astype(np.float64))
        gt_i.append(info["track_ids"])
        pr_b.append(slot_pixel_boxes(obs["where"].astype(np.float64), height, width))
        pr_i.append(obs["id"])
        if done:
            break
        obs, _, terminated, truncated, info = env.step(0)
        done = terminated or truncated
    return TrackRollout(*(np.stack(a)[:, None] for a in (gt_b, gt_i, pr_b, pr_i)))


def identity_violations(ids: np.ndarray) -> int:
    """Identity bookkeeping errors in slot ids ``[T, N]`` (-1 empty): an id shown twice in one frame, or an id
    that comes back after it was dropped (a track, once lost, must get a new id)."""
    errors, seen, alive = 0, set(), set()
    for row in ids:
        present = [int(i) for i in row if i >= 0]
        errors += len(present) - len(set(present))
        now = set(present)
        errors += len((now - alive) & seen)
        seen |= now
        alive = now
    return errors


def identity_scores(env: gym.Env, episodes: int = 20, seed: int = 0, max_iou_distance: float = 0.5, match: str = "iou"):
    """:class:`~sqair_world.evaluation.metrics.TrackingScores` of the env's slots over ``episodes`` seeded episodes."""
    from sqair_world.evaluation.metrics import tracking_scores

    rolls = [rollout_tracks(env, seed + e) for e in range(episodes)]
    T = min(len(r.gt_ids) for r in rolls)
    gt_b, gt_i, pr_b, pr_i = (np.concatenate([r[k][:T] for r in rolls], 1) for k in range(4))
    return tracking_scores(gt_b, gt_i, pr_b, pr_i, max_iou_distance, match)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m sqair_world.evaluation.tracking",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", default=None, help="SQAIR checkpoint (default: the shipped moving-MNIST one)")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--match",
        choices=["iou", "centre"],
        default="iou",
        help="iou: IoU >= 0.5 with the digit's box; centre: the digit's centre inside the glimpse",
    )
    args = p.parse_args(argv)
    import sqair_world  # noqa: F401  (registers the ids)
    from sqair_world.training.checkpoints import CheckpointError

    try:
        env = gym.make("SQAIR-Wrapped/MovingMNIST", checkpoint=args.checkpoint)
    except (ValueError, FileNotFoundError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    scores = identity_scores(env, args.episodes, args.seed, match=args.match)
    print(json.dumps({"episodes": args.episodes, "match": args.match, **scores._asdict()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
