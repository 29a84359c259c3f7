"""Quality of a SQAIR Atari checkpoint against the console RAM (evaluation only) and an episode GIF.

    python -m sqair_world.evaluation.atari --env ALE/Pacman-v5 [--checkpoint PATH] [--steps 1000] [--gif episode.gif]
                                              [--reconstructions recon.png]

Ground truth: the sprite centres read from RAM (player, ghosts, fruit) mapped to the 84x84 frame. Counting
accuracy (and mean absolute error) compares the number of present slots with the number of sprites inside the
frame; recall, precision, MOTA and IDF1 match inferred box centres to sprite centres within ``--max-distance``
pixels (motmetrics). ``found_by_sprite``: per sprite (player, ghosts, fruit), the fraction of frames with the sprite
inside in which some inferred box centre lies within that distance of it.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch


def centre_distances(truth: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Pixel distances ``[S, M]`` between sprite centres ``truth [S, 2]`` and inferred box centres ``centres [M, 2]``."""
    return np.sqrt(((truth[:, None] - centres[None]) ** 2).sum(-1)).reshape(len(truth), len(centres))


def sprites_found(distances: np.ndarray, max_distance: float) -> np.ndarray:
    """bool ``[S]``: some inferred box centre lies within ``max_distance`` of sprite s (``distances [S, M]`` from
    :func:`centre_distances`). Unlike MOT recall, one box may stand for two overlapping sprites."""
    return (distances <= max_distance).any(1)


def evaluate_atari(
    env_id: str,
    checkpoint: str | None = None,
    steps: int = 1000,
    seed: int = 0,
    max_distance: float = 5.0,
    gif: str | None = None,
    device: str = "cpu",
    gif_steps: int = 200,
) -> dict[str, float]:
    """Counting accuracy, MOTA/MOTP/IDF1 against the RAM sprite centres over ``steps`` random-policy steps."""
    import motmetrics as mm

    from sqair_world.envs.factory import make_sqair_env
    from sqair_world.envs.slots import SQAIRObservation, record_episode_gif

    env = make_sqair_env(env_id, checkpoint=checkpoint, device=device, include_frame=True)
    assert isinstance(env, SQAIRObservation)
    game = env.env.game
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    acc = mm.MOTAccumulator(auto_id=True)
    hits, count_err, bounds, action = [], [], [], 0
    found, seen = np.zeros(len(game.names)), np.zeros(len(game.names))  # per sprite: frames found / inside
    for _ in range(steps):
        if rng.random() < 0.25:
            action = int(rng.integers(env.action_space.n))
        obs, _, term, trunc, info = env.step(action)
        if term or trunc:
            obs, info = env.reset(seed=int(rng.integers(2**31)))
            continue
        truth = game.positions(info["ram_xy"])  # [S, 2]
        inside = (truth[:, 0] >= 0) & (truth[:, 0] < 84) & (truth[:, 1] >= 0) & (truth[:, 1] < 84)
        pres = obs["pres"] > 0
        centres = obs["where"][pres, :2] * 84
        hits.append(pres.sum() == inside.sum())
        count_err.append(abs(int(pres.sum()) - int(inside.sum())))
        bounds.append(info["sqair_bound"])
        d_all = centre_distances(truth, centres)  # [S, M]
        found += sprites_found(d_all, max_distance) & inside
        seen += inside
        d = d_all[inside]
        acc.update(np.flatnonzero(inside).tolist(), obs["id"][pres].tolist(), np.where(d <= max_distance, d, np.nan))
    summary = mm.metrics.create().compute(
        acc, metrics=["mota", "motp", "idf1", "num_switches", "recall", "precision"], name="run"
    )
    result = {
        "env_id": env_id,
        "steps": steps,
        "count_acc": float(np.mean(hits)),
        "count_mean_abs_error": float(np.mean(count_err)),
        "recall": float(summary["recall"].iloc[0]),
        "precision": float(summary["precision"].iloc[0]),
        "mota": float(summary["mota"].iloc[0]),
        "motp_px": float(summary["motp"].iloc[0]),
        "idf1": float(summary["idf1"].iloc[0]),
        "num_switches": int(summary["num_switches"].iloc[0]),
        "mean_step_bound": float(np.mean(bounds)),
        "max_distance_px": max_distance,
        "found_by_sprite": {n: round(float(f / max(c, 1)), 3) for n, f, c in zip(game.names, found, seen)},
    }
    if gif:
        record_episode_gif(env, gif, max_steps=gif_steps, seed=seed + 1)
    return result


def write_reconstructions(
    env_id: str, checkpoint: str | None, path: str, seed: int = 0, num_sequences: int = 3, seq_len: int = 6
) -> None:
    """Inputs and reconstructions (posterior means, one particle) with boxes coloured by identity, as a PNG."""
    from sqair_world.envs.atari import collect_sequences
    from sqair_world.envs.factory import make_sqair_env
    from sqair_world.evaluation.draw import save_png
    from sqair_world.evaluation.figures import reconstruction_strip

    env = make_sqair_env(env_id, checkpoint=checkpoint)  # resolves and checks the checkpoint as the wrapper does
    model = env.get_wrapper_attr("model").float().eval()
    env.close()
    x = torch.from_numpy(collect_sequences(env_id, num_sequences, seq_len, seed + 1)).float() / 255
    with torch.no_grad():
        out = model(x, k=1, sample=False)
    save_png(path, reconstruction_strip(x, out, num_sequences, scale=2))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m sqair_world.evaluation.atari",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--env", default="ALE/Pacman-v5")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-distance", type=float, default=5.0, help="pixels (84x84 frame) for a match")
    p.add_argument("--gif", default=None, help="also write a GIF of a played episode with tracked boxes")
    p.add_argument("--gif-steps", type=int, default=200, help="length of the GIF episode (at most)")
    p.add_argument("--reconstructions", default=None, help="also write a PNG of inputs and reconstructions with boxes")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    from sqair_world.training.checkpoints import CheckpointError

    torch.manual_seed(args.seed)
    try:
        result = evaluate_atari(
            args.env, args.checkpoint, args.steps, args.seed, args.max_distance, args.gif, gif_steps=args.gif_steps
        )
        if args.reconstructions:
            write_reconstructions(args.env, args.checkpoint, args.reconstructions, args.seed)
    except (ValueError, FileNotFoundError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
