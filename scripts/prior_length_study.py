"""Imagination past the training length on the controlled sprite world: the GRU against the Markov propagation prior
(issue 22, docs/imagination.md "The Markov prior").

    python scripts/prior_length_study.py --prior gru --seed 0
    python scripts/prior_length_study.py --prior markov --seed 0
    python scripts/prior_length_study.py --prior markov --velocity --rollout-steps 4 --seed 0

Trains the sprite-world grid model (training.experiments.SPRITE_WORLD_MODEL, 5 actions) for ``--steps`` steps on
6-frame sequences, then on held-out sequences tracks 4 frames (inside the training length) and 8 (past it) and
imagines ``--horizon`` frames with the true actions. Prints, per horizon, the imagined player centre's error
and copy-last's, in pixels, as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from sqair_world.evaluation.sprite_world import fit_sprite_world, player_errors, sprite_world_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prior", choices=["gru", "markov"], required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--horizon", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--velocity", action="store_true", help="SQAIRConfig.prop_prior_velocity (Markov prior)")
    p.add_argument("--rollout-steps", type=int, default=0, help="SQAIRConfig.prior_rollout_steps (0: off)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = sprite_world_model(
        num_actions=5, prop_prior=args.prior, prop_prior_velocity=args.velocity, prior_rollout_steps=args.rollout_steps
    )
    start = time.time()
    fit_sprite_world(model, args.steps, args.seed)
    seconds = round(time.time() - start)
    errors = {}
    for seen in (4, 8):
        e = player_errors(model, seen, args.horizon)
        errors[seen] = [(round(i, 2), round(c, 2)) for i, c in zip(e.imagined, e.copy_last)]
    print(
        json.dumps(
            dict(
                prior=args.prior,
                velocity=args.velocity,
                rollout_steps=args.rollout_steps,
                seed=args.seed,
                train_seconds=seconds,
                imagined_vs_copy_px=errors,
            )
        )
    )


if __name__ == "__main__":
    main()
