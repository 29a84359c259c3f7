"""Reproduce and instrument the propagation collapse of MLP-SQAIR on moving MNIST (issue 21).

    python scripts/stability_study.py --run-dir runs/stability/seed0 --seed 0 --max-minutes 45 [--lr 3e-4]
    python scripts/stability_study.py --run-dir runs/stability/decay07-s0 --seed 0 --steps 4000 --val-every 250 \
        --diagnostics-every 0 [--lr-stage-decay 1.0]   # the runs of docs/moving_mnist.md "The fix"

Trains the default experiment with the fast recipe on one thread, with gradient diagnostics every
``--diagnostics-every`` steps (``<run-dir>/diagnostics.jsonl``, see sqair_world/training/diagnostics.py) and the
validation history in ``<run-dir>/history.jsonl`` (with the training steps' mean propagated and discovered
objects per frame since the previous validation). Resumable: run the same command again to continue.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from sqair_world.model import build_model
from sqair_world.training.experiments import mean_frame, moving_mnist_arrays
from sqair_world.training.trainer import TrainConfig, Trainer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-minutes", type=float, default=45)
    p.add_argument("--steps", type=int, default=None, help="stop after this many steps (then no time budget)")
    p.add_argument("--val-every", type=int, default=100)
    p.add_argument("--compile", action="store_true", help="TrainConfig.compile")
    p.add_argument("--autocast", action="store_true", help="TrainConfig.autocast (needs native bfloat16)")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--curriculum-every", type=int, default=None)
    p.add_argument("--lr-stage-decay", type=float, default=0.7, help="TrainConfig.lr_stage_decay")
    p.add_argument("--diagnostics-every", type=int, default=50)
    p.add_argument("--model-set", action="append", default=[], help="FIELD=VALUE (python literal)")
    p.add_argument("--min-scale", type=float, default=None, help="floor of the glimpse scale (the code's: 1e-4)")
    args = p.parse_args()
    import ast

    if args.min_scale is not None:  # the hypothesis under test: degenerate tiny glimpses (1/s in the inverse warp)
        from sqair_world.model import spatial

        spatial.MIN_SCALE = args.min_scale
    overrides = {k: ast.literal_eval(v) for k, v in (item.split("=", 1) for item in args.model_set)}
    cfg = TrainConfig(
        recipe="fast",
        max_minutes=None if args.steps else args.max_minutes,
        steps=args.steps,
        val_every=args.val_every,
        compile=args.compile,
        autocast=args.autocast,
        seed=args.seed,
        run_dir=args.run_dir,
        num_threads=1,
        diagnostics_every=args.diagnostics_every,
        lr=args.lr,
        curriculum_every=args.curriculum_every,
        lr_stage_decay=args.lr_stage_decay,
        num_val_sequences=256,
        progress=False,
    )
    train_x, val_x, val_counts = moving_mnist_arrays(
        cfg.num_train_sequences, cfg.num_val_sequences, cfg.data_seed, None, cfg.curriculum_max
    )
    model = build_model("mlp-sqair", **overrides)
    model.set_background(torch.as_tensor(mean_frame(train_x)))
    trainer = Trainer(model, train_x, val_x, cfg, experiment="stability", val_counts=val_counts)
    if trainer.checkpoint_path.is_file():
        trainer.load(trainer.checkpoint_path)
    history = Path(args.run_dir) / "history.jsonl"
    seen = len(trainer.history)
    original_validate, original_step = trainer.validate, trainer.train_step
    recent: list[dict[str, float]] = []  # training stats since the last validation

    def train_step_and_keep() -> dict[str, float]:
        stats = original_step()
        recent.append(stats)
        return stats

    def validate_and_log() -> dict[str, float]:
        val_stats = original_validate()
        train = {} if not recent else {f"train_{k}": sum(s[k] for s in recent) / len(recent) for k in recent[-1]}
        with open(history, "a") as f:
            row = {"step": trainer.step, "T": trainer.seq_len(trainer.step), **val_stats, **train}
            f.write(json.dumps(row) + "\n")
        recent.clear()
        return val_stats

    trainer.train_step, trainer.validate = train_step_and_keep, validate_and_log
    trainer.fit()
    print(f"stopped at step {trainer.step} ({len(trainer.history) - seen} validations)")


if __name__ == "__main__":
    main()
