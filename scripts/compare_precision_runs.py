"""Learning curves of float32 against bfloat16 runs, several seeds each, read from their TensorBoard logs.

    python scripts/compare_precision_runs.py --a runs/bf16/fp32-s0 runs/bf16/fp32-s1 runs/bf16/fp32-s2 \
        --b runs/bf16/autocast-s0 runs/bf16/autocast-s1 runs/bf16/autocast-s2 --png docs/precision_curves.png

Prints, at every validation step, the mean over seeds (lowest-highest) of the validation bound and counting accuracy
and of the propagated objects per frame in training (mean since the previous validation), for group A and group B,
then each run's seconds per step. Two runs of one seed diverge after the first step (the rounded networks change
the samples), so the comparison is of one group's mean against the other group's spread over seeds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def scalars(run: Path) -> dict[str, list[tuple[int, float, float]]]:
    """``tag -> [(step, value, wall time)]`` of a run directory's ``tb/`` event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    return {t: [(e.step, e.value, e.wall_time) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def curves(run: Path) -> dict[str, dict[int, float]]:
    """Per validation step: ``val/iwae``, ``val/count_acc`` and ``num_prop`` (training mean since the last one)."""
    s = scalars(run)
    if "val/iwae" not in s:
        raise SystemExit(f"{run}: no validation scalars in {run / 'tb'} (was it run with --val-every?)")
    out: dict[str, dict[int, float]] = {k: {st: v for st, v, _ in s[k]} for k in ("val/iwae", "val/count_acc")}
    prop = np.array([(st, v) for st, v, _ in s["train/num_prop"]])
    out["num_prop"] = {}
    last = 0
    for st in sorted(out["val/iwae"]):
        sel = (prop[:, 0] > last) & (prop[:, 0] <= st)
        out["num_prop"][st] = float(prop[sel, 1].mean()) if sel.any() else float("nan")
        last = st
    return out


def seconds_per_step(run: Path) -> float:
    """Median wall-clock seconds per logged training step (validation pauses excluded by the median)."""
    pts = np.array([(st, w) for st, _, w in scalars(run)["train/iwae"]])
    return float(np.median(np.diff(pts[:, 1]) / np.maximum(np.diff(pts[:, 0]), 1)))


def cell(vals: list[float], fmt: str) -> str:
    v = np.array(vals)
    return f"{v.mean():{fmt}} ({v.min():{fmt}}-{v.max():{fmt}})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", nargs="+", type=Path, required=True, help="run directories of group A (float32)")
    p.add_argument("--b", nargs="+", type=Path, required=True, help="run directories of group B (bfloat16)")
    p.add_argument("--names", nargs=2, default=["float32", "autocast"])
    p.add_argument("--png", type=Path, default=None, help="also draw the curves to this PNG")
    args = p.parse_args()
    groups = {name: [curves(r) for r in runs] for name, runs in zip(args.names, (args.a, args.b))}
    steps = sorted(set.intersection(*(set(c["val/iwae"]) for cs in groups.values() for c in cs)))
    keys = [("val/iwae", ".0f", "bound"), ("val/count_acc", ".3f", "counting"), ("num_prop", ".2f", "propagated")]
    head = " | ".join(f"{label} {name}" for _, _, label in keys for name in args.names)
    print(f"| step | {head} |")
    print("|---" * (1 + 2 * len(keys)) + "|")
    for st in steps:
        row = [cell([c[k][st] for c in groups[name]], f) for k, f, _ in keys for name in args.names]
        print(f"| {st:,} | " + " | ".join(row) + " |")
    for name, runs in zip(args.names, (args.a, args.b)):
        print(f"{name}: seconds per step " + ", ".join(f"{r.name} {seconds_per_step(r):.3f}" for r in runs))
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.6))
        for ax, (k, _, label) in zip(axes, keys):
            for colour, name in zip(("tab:blue", "tab:orange"), args.names):
                for i, c in enumerate(groups[name]):
                    xs = sorted(c[k])
                    ax.plot(xs, [c[k][x] for x in xs], color=colour, alpha=0.8, label=name if i == 0 else None)
            ax.set_title(label)
            ax.set_xlabel("step")
        axes[0].legend()
        fig.tight_layout()
        fig.savefig(args.png, dpi=90)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
