"""Curves of the stability study's runs: ``python scripts/plot_stability.py OUT.png RUN_DIR [RUN_DIR ...]``.

Reads each run's ``diagnostics.jsonl`` (training/diagnostics.py) and ``history.jsonl`` (validation) and draws,
against the step, with the curriculum's sequence length marked: propagated and discovered objects per frame,
the gradient norms of the IWAE and VIMCO terms (propagation's share of VIMCO's), propagation's posterior and
prior presence probability, the KL per frame of each module, the ESS, and validation counting accuracy.
Runs without diagnostics (``--diagnostics-every 0``) get the validation history alone: the training steps'
propagated objects per frame, validation counting and validation bound, one colour per run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

PANELS = [
    ("objects per frame", [("num_prop", "propagated"), ("num_disc", "discovered")], False),
    (
        "gradient norm",
        [("grad/iwae", "IWAE term"), ("grad/vimco", "VIMCO term"), ("grad/vimco/propagation", "VIMCO, propagation")],
        True,
    ),
    (
        "presence probability (PROP)",
        [("prop/pres_prob/mean", "posterior"), ("prop/prior_pres_prob/mean", "prior")],
        False,
    ),
    ("KL per frame (nats)", [("prop/kl/mean", "PROP"), ("disc/kl/mean", "DISC")], False),
    ("ESS / |VIMCO signal|", [("ess", "ESS"), ("vimco/signal_abs_mean", "mean |signal|")], True),
]


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def mark_curriculum(axes, rows: list[dict]) -> None:
    """A grey line and a ``T=`` label wherever the curriculum's sequence length changes between ``rows``."""
    for r0, r1 in zip(rows, rows[1:]):
        if r1["T"] != r0["T"]:
            for ax in axes:
                ax.axvline(r1["step"], color="grey", lw=0.5)
            axes[0].text(r1["step"], axes[0].get_ylim()[1], f"T={r1['T']}", fontsize=7, va="bottom")


def finish(fig, axes, out: str, legend_size: int, legend_columns: int = 1) -> None:
    """Legends, ticks and the step axis, then write ``out``."""
    for ax in axes:
        ax.legend(fontsize=legend_size, ncol=legend_columns, loc="best")
        ax.tick_params(labelsize=7)
    axes[-1].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(out)


HISTORY_PANELS = [
    ("propagated objects per frame (train)", "train_num_prop"),
    ("validation counting", "count_acc"),
    ("validation bound (nats)", "iwae"),
]


def plot_history(out: str, runs: list[Path]) -> None:
    fig, axes = plt.subplots(len(HISTORY_PANELS), 1, figsize=(8, 2.3 * len(HISTORY_PANELS)), sharex=True)
    for r, run in enumerate(runs):
        hist = load(run / "history.jsonl")
        for ax, (title, key) in zip(axes, HISTORY_PANELS):
            ax.plot(
                [h["step"] for h in hist],
                [h.get(key, float("nan")) for h in hist],
                "-o",
                ms=3,
                color=f"C{r}",
                label=run.name,
                lw=1,
            )
            ax.set_ylabel(title, fontsize=8)
        if r == 0:
            mark_curriculum(axes, hist)
    finish(fig, axes, out, legend_size=7)


def main(argv: list[str]) -> None:
    out, runs = argv[0], [Path(a) for a in argv[1:]]
    if not any((run / "diagnostics.jsonl").is_file() for run in runs):
        plot_history(out, runs)
        return
    fig, axes = plt.subplots(len(PANELS) + 1, 1, figsize=(9, 2.3 * (len(PANELS) + 1)), sharex=True)
    styles = ["-", "--", ":", "-."]
    for r, run in enumerate(runs):
        diag, hist = load(run / "diagnostics.jsonl"), load(run / "history.jsonl")
        steps = [d["step"] for d in diag]
        for ax, (title, series, log) in zip(axes, PANELS):
            for c, (key, label) in enumerate(series):
                ax.plot(
                    steps,
                    [d.get(key, float("nan")) for d in diag],
                    styles[r % 4],
                    color=f"C{c}",
                    label=f"{label} ({run.name})",
                    lw=1,
                )
            ax.set_ylabel(title, fontsize=8)
            ax.set_yscale("log" if log else "linear")
        axes[-1].plot(
            [h["step"] for h in hist],
            [h.get("count_acc", float("nan")) for h in hist],
            styles[r % 4],
            marker="o",
            ms=3,
            color="C0",
            label=f"val counting ({run.name})",
        )
        axes[-1].set_ylabel("validation counting", fontsize=8)
        if r == 0:
            mark_curriculum(axes, diag)
    finish(fig, axes, out, legend_size=6, legend_columns=2)


if __name__ == "__main__":
    main(sys.argv[1:])
