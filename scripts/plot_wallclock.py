"""Validation counting and bound against wall-clock minutes (issue 21's Table-1 plot):
``python scripts/plot_wallclock.py OUT.png RUN_DIR [RUN_DIR ...]``.

Reads each run's TensorBoard events (``<run-dir>/tb``; the trainer logs ``val/count_acc``, ``val/iwae`` and
``train/T``) and draws them against minutes since the run started (the events file's creation time), one colour
per run, with the minutes at which validation counting first reached 0.9 and 0.95 marked and printed. Validation
runs at the curriculum's current length T (third panel): the bound is shown per frame, and counting before the
last stage is on shorter sequences.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def curves(run_dir: Path) -> dict[str, list[tuple[float, int, float]]]:
    """tag -> [(minutes since start, step, value)] of one run's scalars."""
    files = sorted((run_dir / "tb").glob("events.out.tfevents.*"))
    if not files:
        raise SystemExit(f"{run_dir}: no TensorBoard events under {run_dir / 'tb'} (was it run with --no-tensorboard?)")
    out: dict[str, list[tuple[float, int, float]]] = {}
    start = float(files[0].name.split(".")[3])  # a resumed run writes a new file per invocation: count from the first
    for f in files:
        acc = EventAccumulator(str(f), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in ("val/count_acc", "val/iwae", "train/T"):
            if tag in acc.Tags()["scalars"]:
                out.setdefault(tag, []).extend(((e.wall_time - start) / 60, e.step, e.value) for e in acc.Scalars(tag))
    return out


def length_at(stages: list[tuple[float, int, float]], step: int) -> float:
    """The sequence length validated at ``step``: that of the training steps after it (the trainer validates after
    the step counter moved on, at the length of the next batch)."""
    return next((t for _, s, t in stages if s > step), stages[-1][2] if stages else 1.0)


def first_reaching(points: list[tuple[float, int, float]], level: float) -> float | None:
    return next((m for m, _, v in points if v >= level), None)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out, runs = Path(argv[0]), [Path(a) for a in argv[1:]]
    fig, (ax_c, ax_b, ax_t) = plt.subplots(1, 3, figsize=(14, 4))
    for i, run in enumerate(runs):
        c, name = f"C{i}", run.name
        data = curves(run)
        count, bound, stages = (data.get(t, []) for t in ("val/count_acc", "val/iwae", "train/T"))
        ax_c.plot([m for m, _, _ in count], [v for _, _, v in count], "o-", ms=3, color=c, label=name)
        per_frame = [(m, v / length_at(stages, step)) for m, step, v in bound]
        ax_b.plot(*zip(*per_frame), "o-", ms=3, color=c, label=name)
        ax_t.step([m for m, _, _ in stages], [v for _, _, v in stages], where="post", color=c, label=name)
        for level, style in ((0.9, ":"), (0.95, "--")):
            m = first_reaching(count, level)
            print(f"{name}: validation counting >= {level} first at {'never' if m is None else f'{m:.1f} min'}")
            if m is not None:
                ax_c.axvline(m, color=c, ls=style, lw=0.8)
    ax_c.set(xlabel="wall-clock minutes", ylabel="validation counting accuracy", ylim=(0, 1.02))
    ax_c.set_title("counting (dotted: first >= 0.9, dashed: >= 0.95)", fontsize=9)
    ax_b.set(xlabel="wall-clock minutes", ylabel="validation bound per frame (nats)")
    ax_t.set(xlabel="wall-clock minutes", ylabel="curriculum: frames per training sequence")
    for ax in (ax_c, ax_b, ax_t):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
