"""Learning curves of agent runs: mean +- std over seeds of the evaluation return against agent steps, to PNG.

    python -m sqair_world.agents.plot runs/agents/mspacman-* --out docs/mspacman_agents.png
    sqair-agents-plot runs/agents --mode stochastic --reference random=307.3 --out curve.png

Each RUN is a run folder of :mod:`sqair_world.agents.train` (``eval.csv`` and ``settings.json``) or a folder of
such folders. Runs are grouped into one line per observation type (the label adds the extractor, the pixel pool or
the imagination horizon where a run differs from the defaults); at each evaluation step the mean and std are taken
over the seeds that reached it. The table of the last point of each line is printed too.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import tyro

from sqair_world.agents.runs import RunDir


def find_runs(paths: Sequence[str | Path]) -> list[RunDir]:
    """Run folders among ``paths`` and their sub-folders (those with an ``eval.csv``); refuses paths without any."""
    runs = []
    for path in map(Path, paths):
        found = sorted({p.parent for p in [path / "eval.csv", *path.glob("*/eval.csv")] if p.is_file()})
        if not found:
            raise ValueError(f"no run with an eval.csv in {path} (expected a run folder of sqair_world.agents.train)")
        runs += [RunDir(p) for p in found]
    return runs


def run_label(run: RunDir) -> str:
    """``slots``, ``oracle``, ``pixels``, with what differs from the defaults (``slots-attention``,
    ``pixels-pool4``, ``slots-imagine3``); ``?`` without settings."""
    if not run.settings.is_file():
        return "?"
    opts = run.read_settings()["options"]
    label = opts["obs"]
    if opts["obs"] != "pixels" and opts.get("extractor", "deepsets") != "deepsets":
        label += f"-{opts['extractor']}"
    if opts["obs"] != "pixels" and not opts.get("motion", True):
        label += "-nomotion"
    if opts["obs"] == "pixels" and opts.get("pixel_pool", 2) != 2:
        label += f"-pool{opts['pixel_pool']}"
    if opts.get("imagine_horizon", 0):
        label += f"-imagine{opts['imagine_horizon']}"
    if opts.get("algo", "ppo") != "ppo":
        label += f" ({opts['algo']})"
    return label


def curves(runs: Sequence[RunDir], mode: str) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """``{label: (steps [T], mean [T], std [T], seeds [T])}`` over the runs of each label."""
    by_label: dict[str, list[dict[int, float]]] = defaultdict(list)
    for run in runs:
        # the final evaluation lands a rollout past the budget, at a step count that differs between runs (a resumed
        # run's last rollout is shorter), so it is plotted at the budget itself, where the seeds' ends line up
        budget = run.read_settings()["options"]["timesteps"] if run.settings.is_file() else None
        points = {
            min(int(r["steps"]), budget or int(r["steps"])): float(r["mean"])
            for r in run.eval_rows()
            if r["mode"] == mode
        }
        if points:
            by_label[run_label(run)].append(points)
    out = {}
    for label, seeds in sorted(by_label.items()):
        steps = np.array(sorted(set().union(*seeds)))
        values = [[s[t] for s in seeds if t in s] for t in steps]
        out[label] = (
            steps,
            np.array([np.mean(v) for v in values]),
            np.array([np.std(v) for v in values]),
            np.array([len(v) for v in values]),
        )
    return out


@dataclass(frozen=True)
class PlotArgs:
    """Plot mean +- std over seeds of agent runs' evaluation returns against agent steps."""

    runs: tyro.conf.Positional[tuple[str, ...]]
    """Run folders of sqair_world.agents.train, or folders of run folders."""
    out: str = "curve.png"
    """The PNG to write."""
    mode: Literal["deterministic", "stochastic"] = "stochastic"
    """Which evaluation returns to plot: sampled actions (rl-zoo's choice for Atari), or greedy ones, which early
    policies collapse to a single action that plays the same game every episode (docs/agents.md)."""
    title: str | None = None
    """Plot title (default: the game of the runs)."""
    reference: tuple[str, ...] = ()
    """Horizontal reference lines NAME=VALUE, e.g. random=307.3."""


def parse_references(items: Sequence[str]) -> dict[str, float]:
    refs = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            refs[name] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise ValueError(f"a reference must be NAME=VALUE with a number, e.g. random=307.3; got {item!r}")
    return refs


def plot(args: PlotArgs) -> dict[str, tuple[np.ndarray, ...]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    refs = parse_references(args.reference)
    runs = find_runs(args.runs)
    lines = curves(runs, args.mode)
    if not lines:
        raise ValueError(f"no {args.mode} evaluation rows in {[str(r.path) for r in runs]}")
    games = sorted({r.read_settings()["options"]["env"] for r in runs if r.settings.is_file()})
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, (steps, mean, std, seeds) in lines.items():
        ax.plot(steps, mean, label=f"{label} ({seeds.max()} seed{'s' if seeds.max() > 1 else ''})")
        ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
    for name, value in refs.items():
        ax.axhline(value, ls="--", lw=1, color="grey")
        ax.annotate(name, (0, value), textcoords="offset points", xytext=(2, 2), fontsize=8, color="grey")
    ax.set_xlabel("agent steps")
    ax.set_ylabel(f"evaluation return ({args.mode})")
    ax.set_title(args.title or ", ".join(games))
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    plt.close(fig)
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (0 written, 2 no runs or bad reference)."""
    args = tyro.cli(PlotArgs, args=argv, prog="python -m sqair_world.agents.plot")
    try:
        lines = plot(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for label, (steps, mean, std, seeds) in lines.items():
        print(f"{label}: {mean[-1]:.1f} +- {std[-1]:.1f} at {steps[-1]} steps ({seeds[-1]} seeds)")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
