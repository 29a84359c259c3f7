"""The evaluation command line: ``python -m sqair_world.evaluate {mnist,atari,tracking,pedestrians} [options]``.

    python -m sqair_world.evaluate mnist CHECKPOINT [--num-sequences 1000] [--particles 1000] ...
    python -m sqair_world.evaluate atari --env ALE/Pacman-v5 [--checkpoint PATH] [--steps 1000] [--gif episode.gif]
    python -m sqair_world.evaluate tracking [--checkpoint PATH] [--episodes 20] [--match iou|centre]
    python -m sqair_world.evaluate prediction --env ALE/Pacman-v5 [--checkpoint PATH] [--plot err.png] [--gif im.gif]
    python -m sqair_world.evaluate pedestrians CHECKPOINT [--video PATH [--gt gt.txt] | --duke DIR] [--particles 100]

- ``mnist``: the paper's Table 1 (log p(x), reconstruction, KL, counting, addition) on held-out moving-MNIST
  sequences, tracking scores and the figures (:mod:`sqair_world.evaluation.moving_mnist`);
- ``atari``: an Atari checkpoint's slots against the sprite positions in the console RAM
  (:mod:`sqair_world.evaluation.atari`), an episode GIF and reconstructions;
- ``prediction``: imagined rollouts' box-centre error against copy-last and constant-velocity baselines for
  horizons 1-H (:mod:`sqair_world.evaluation.prediction`), a plot and a real-vs-imagined GIF;
- ``tracking``: the slot-wrapped moving-MNIST env's identities against the digits' tracks
  (:mod:`sqair_world.evaluation.tracking`);
- ``pedestrians``: the paper's §4.2 on held-out region sequences (counting accuracy where annotated, tracking) and
  the panels of its Fig. 8 (:mod:`sqair_world.evaluation.pedestrians`).

Each subcommand's options are the fields of its frozen config dataclass below (``--help`` lists them). Bad input
exits with code 2: a value out of range while the options are parsed, a missing or corrupt checkpoint (and other
ValueError, CheckpointError, FileNotFoundError) with one line ``error: ...``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import gymnasium as gym
import numpy as np
import torch
import tyro

from sqair_world.data.pedestrians import AnnotationError, VideoError
from sqair_world.envs import make_sqair_env
from sqair_world.envs.atari import collect_sequences
from sqair_world.envs.rollouts import (
    play_atari,
    play_moving_mnist,
    play_prediction,
    record_episode_gif,
    record_imagination_gif,
)
from sqair_world.evaluation.atari import sprite_scores
from sqair_world.evaluation.classical import ClassicalTracker
from sqair_world.evaluation.figures import write_figures, write_reconstructions
from sqair_world.evaluation.metrics import tracking_scores
from sqair_world.evaluation.moving_mnist import evaluate, format_table, write_mnist_figures
from sqair_world.evaluation.pedestrians import busiest, evaluate_pedestrians, format_pedestrians, held_out_sequences
from sqair_world.evaluation.prediction import format_prediction, mean_results, plot_errors, prediction_errors
from sqair_world.speed import flush_denormals
from sqair_world.training.checkpoints import CheckpointError, load_model
from sqair_world.training.experiments import PedestrianSource, load_pedestrian_source
from sqair_world.utils import frames_to_input, select_device

PROG = "python -m sqair_world.evaluate"
DESCRIPTION = (
    "Evaluate a checkpoint. mnist: the paper's Table 1, tracking scores and figures on held-out moving-MNIST "
    "sequences; atari: an Atari checkpoint's slots against the console-RAM sprite positions; tracking: the "
    "slot-wrapped moving-MNIST env's identities against the digits' tracks. `SUBCOMMAND --help` lists the options."
)


def _at_least(name: str, value: float, low: float) -> None:
    if value < low:
        raise ValueError(f"--{name.replace('_', '-')} must be >= {low}, got {value}")


@dataclass(frozen=True)
class MnistEval:
    """The paper's Table 1, tracking scores and figures on held-out moving-MNIST sequences."""

    checkpoint: tyro.conf.Positional[Annotated[Path, tyro.conf.arg(metavar="CHECKPOINT")]]
    """A moving-MNIST checkpoint (frames of shape (1, 50, 50)), e.g. runs/mnist-mlp-sqair/last.pt."""
    num_sequences: int = 1000
    """Evaluation sequences (the paper: 10,000)."""
    particles: int = 1000
    """K, the particles of the IWAE bound (the paper: 1000)."""
    chunk: int = 50
    """Particles per forward pass (memory)."""
    batch_size: int = 8
    """Sequences per forward pass."""
    addition_train_sequences: int = 20000
    """Training sequences of the addition classifier; 0 skips it. The score grows with them (docs/moving_mnist.md,
    "Addition"), so compare models only at equal values."""
    seed: int = 0
    """Seed of the sequences and of the sampling."""
    mnist_dir: Path | None = None
    """A folder with the MNIST IDX files (default: the embedded digits)."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""
    out: Path | None = None
    """Folder for metrics.json and the figures (default: eval/ next to the checkpoint)."""
    visible_threshold: float = 0.25
    """Tracking ground truth: digits with at least this fraction of their pixels on screen."""
    max_iou_distance: float = 0.5
    """Tracking: a box matches a ground-truth box when 1 - IoU <= this (0.5: IoU >= 0.5)."""
    figures: bool = True
    """Write the paper's figures 4-7."""
    threads: int | None = None
    """Intra-op CPU threads (default: torch's setting)."""

    def __post_init__(self) -> None:
        for name in ("num_sequences", "particles", "chunk", "batch_size"):
            _at_least(name, getattr(self, name), 1)
        _at_least("addition_train_sequences", self.addition_train_sequences, 0)
        if not 0 < self.max_iou_distance < 1:
            raise ValueError(f"--max-iou-distance is in (0, 1), got {self.max_iou_distance}")
        if not 0 <= self.visible_threshold <= 1:
            raise ValueError(f"--visible-threshold is a fraction in [0, 1], got {self.visible_threshold}")
        if self.threads is not None:
            _at_least("threads", self.threads, 1)


@dataclass(frozen=True)
class AtariEval:
    """An Atari checkpoint's slots against the console-RAM sprite positions over a random-policy run."""

    env: str = "ALE/Pacman-v5"
    """The ALE maze game (ALE/Pacman-v5 or ALE/MsPacman-v5)."""
    checkpoint: Path | None = None
    """A checkpoint trained on that game, or a shipped one's name such as pacman_velocity (default: the game's)."""
    steps: int = 1000
    """Random-policy steps (sticky actions) to score."""
    seed: int = 0
    """Seed of the env and the policy (of the first run)."""
    seeds: int = 1
    """Runs with seeds seed, seed + 1, ...; the scores are reported per seed and as their mean."""
    max_distance: float = 5.0
    """Pixels between a box centre and a sprite centre for a match (in the 84x84 frame, and in native 160x210
    pixels for OCAtari's rule)."""
    gif: Path | None = None
    """Also write a GIF of a played episode with the tracked boxes."""
    gif_steps: int = 200
    """Length of the GIF episode (at most)."""
    reconstructions: Path | None = None
    """Also write a PNG of inputs and reconstructions with boxes."""
    json: Path | None = None
    """Also write the scores to this JSON file."""
    device: str = "cpu"
    """auto, cpu, cuda or cuda:N (one env steps fastest on the CPU)."""

    def __post_init__(self) -> None:
        _at_least("steps", self.steps, 1)
        _at_least("seeds", self.seeds, 1)
        _at_least("gif_steps", self.gif_steps, 1)
        if self.max_distance <= 0:
            raise ValueError(f"--max-distance is in pixels and must be > 0, got {self.max_distance}")


@dataclass(frozen=True)
class PredictionEval:
    """Imagined rollouts against copy-last and constant-velocity baselines: box-centre error per horizon."""

    env: str = "ALE/Pacman-v5"
    """MovingMNIST, Pacman, MsPacman or an ALE id."""
    checkpoint: Path | None = None
    """A checkpoint for that env, or a shipped one's name such as mspacman_velocity (default: the game's)."""
    steps: int = 500
    """Random-policy steps per seed; the prediction is made at every one."""
    seed: int = 0
    """Seed of the first run."""
    seeds: int = 1
    """Runs with seeds seed, seed + 1, ...; reported as their mean (and per seed in the JSON)."""
    horizon: int = 10
    """Steps imagined ahead (errors for 1..horizon)."""
    samples: int = 8
    """Imagined futures per step; the predicted centre is their mean."""
    mean_rollout: bool = False
    """Predict with the propagation prior's means (one deterministic future, presence p > 0.5) instead of the mean
    of sampled futures; --samples is then ignored."""
    true_actions: bool = True
    """An action-conditioned checkpoint imagines with the actions actually taken next (else sampled ones)."""
    plot: Path | None = None
    """Also write the error-against-horizon plot (PNG)."""
    gif: Path | None = None
    """Also write a GIF of real frames beside imagined ones from the same state."""
    json: Path | None = None
    """Also write the errors to this JSON file."""
    device: str = "cpu"
    """auto, cpu, cuda or cuda:N."""

    def __post_init__(self) -> None:
        _at_least("steps", self.steps, 2)
        _at_least("seeds", self.seeds, 1)
        _at_least("horizon", self.horizon, 1)
        _at_least("samples", self.samples, 1)


@dataclass(frozen=True)
class TrackingEval:
    """The slot-wrapped moving-MNIST env's identities against the digits' ground-truth tracks (MOTA, IDF1)."""

    checkpoint: Path | None = None
    """A moving-MNIST checkpoint (default: the shipped one)."""
    episodes: int = 20
    """Seeded 20-frame episodes to score."""
    seed: int = 0
    """Seed of the first episode (then seed + 1, ...)."""
    match: Literal["iou", "centre"] = "iou"
    """iou: IoU >= 0.5 with the digit's box; centre: the digit's centre inside the glimpse."""
    json: Path | None = None
    """Also write the scores to this JSON file."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""

    def __post_init__(self) -> None:
        _at_least("episodes", self.episodes, 1)


@dataclass(frozen=True)
class PedestriansEval:
    """The pedestrian experiment (paper §4.2): bound, counting accuracy and tracking on held-out region sequences,
    and the panels of the paper's Fig. 8 (inputs, reconstructions, prior samples, conditional generation)."""

    checkpoint: tyro.conf.Positional[Annotated[Path, tyro.conf.arg(metavar="CHECKPOINT")]]
    """A checkpoint of the pedestrians experiment, e.g. runs/pedestrians/model.pt."""
    source: tyro.conf.OmitArgPrefixes[PedestrianSource] = PedestrianSource(walkers_frames=600, walkers_seed=1)
    """The footage: --video (its validation split), --duke (validation split), or synthetic walkers of a seed the
    training did not see (default seed 1: every sequence of that video is held out)."""
    num_sequences: int = 500
    """Evaluate at most this many sequences (evenly spaced over the held-out ones)."""
    particles: int = 100
    """K, the particles of the IWAE bound and the counting accuracy."""
    chunk: int = 50
    """Particles per forward pass (memory)."""
    batch_size: int = 8
    """Sequences per forward pass."""
    seed: int = 0
    """Seed of the sampling."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""
    out: Path | None = None
    """Folder for metrics.json and the figures (default: eval/ next to the checkpoint)."""
    figures: bool = True
    """Write Fig. 8's panels."""
    threads: int | None = None
    """Intra-op CPU threads (default: torch's setting)."""

    def __post_init__(self) -> None:
        for name in ("num_sequences", "particles", "chunk", "batch_size"):
            _at_least(name, getattr(self, name), 1)
        if self.threads is not None:
            _at_least("threads", self.threads, 1)


Command = (
    Annotated[MnistEval, tyro.conf.subcommand("mnist")]
    | Annotated[AtariEval, tyro.conf.subcommand("atari")]
    | Annotated[PredictionEval, tyro.conf.subcommand("prediction")]
    | Annotated[TrackingEval, tyro.conf.subcommand("tracking")]
    | Annotated[PedestriansEval, tyro.conf.subcommand("pedestrians")]
)


def run_mnist(cfg: MnistEval) -> None:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    flush_denormals()
    model = load_model(cfg.checkpoint, map_location=select_device(cfg.device))
    if tuple(model.cfg.image_shape) != (1, 50, 50):
        raise ValueError(
            f"{cfg.checkpoint} is a model of {model.cfg.image_shape} frames; the mnist evaluation scores "
            "moving-MNIST (1, 50, 50) models"
        )
    out_dir = cfg.out or cfg.checkpoint.with_suffix("").parent / "eval"
    mnist_dir = None if cfg.mnist_dir is None else str(cfg.mnist_dir)
    torch.manual_seed(cfg.seed)
    result = evaluate(
        model,
        cfg.num_sequences,
        cfg.particles,
        cfg.chunk,
        cfg.batch_size,
        cfg.addition_train_sequences,
        cfg.seed,
        mnist_dir,
        visible_threshold=cfg.visible_threshold,
        max_iou_distance=cfg.max_iou_distance,
    )
    result.update(model=model.model_name, checkpoint=str(cfg.checkpoint), step=model.checkpoint_extra.get("step"))
    print(format_table(model.model_name, result))
    _write_json(out_dir / "metrics.json", result)
    if cfg.figures:
        for path in write_mnist_figures(model, cfg.num_sequences, cfg.seed, mnist_dir, out_dir).values():
            print(f"wrote {path}")


def atari_rows(roll, max_distance: float) -> dict[str, dict[str, dict]]:
    """The model's and the classical baseline's scores on one rollout, under both matching rules."""
    classical = ClassicalTracker(num_slots=roll.pres.shape[1]).track(roll.frames)
    rows: dict[str, dict[str, dict]] = {"model": {}, "classical": {}}
    for rule in ("frame", "native"):
        rows["model"][rule] = sprite_scores(roll, max_distance, rule)
        rows["classical"][rule] = sprite_scores(
            roll, max_distance, rule, pres=classical.pres, where=classical.where, ids=classical.ids
        )
    return rows


def mean_rows(runs: list[dict[str, dict[str, dict]]]) -> dict[str, dict[str, dict]]:
    """The mean over runs of every number in :func:`atari_rows` (per-sprite rates too)."""

    def mean(values: list):
        first = values[0]
        if isinstance(first, dict):
            return {k: mean([v[k] for v in values]) for k in first}
        if isinstance(first, (int, float)) and not isinstance(first, bool):
            return float(np.mean(values))
        return first

    return mean(runs)


def run_atari(cfg: AtariEval) -> None:
    env = make_sqair_env(cfg.env, checkpoint=cfg.checkpoint, device=cfg.device, include_frame=True)
    per_seed = {}
    for seed in range(cfg.seed, cfg.seed + cfg.seeds):
        torch.manual_seed(seed)
        per_seed[seed] = atari_rows(play_atari(env, cfg.steps, seed), cfg.max_distance)
    result = {"env_id": cfg.env, "steps": cfg.steps, "seeds": list(per_seed), **mean_rows(list(per_seed.values()))}
    if cfg.seeds > 1:
        result["per_seed"] = per_seed
    if cfg.gif:
        record_episode_gif(env, cfg.gif, max_steps=cfg.gif_steps, seed=cfg.seed + 1)
    if cfg.reconstructions:
        model = env.get_wrapper_attr("model")
        x = frames_to_input(collect_sequences(cfg.env, 3, 6, cfg.seed + 1), next(model.parameters()).device)
        write_reconstructions(model, x, cfg.reconstructions)
    env.close()
    print(json.dumps(result, indent=2))
    print(format_atari(result), file=sys.stderr)
    if cfg.json:
        _write_json(cfg.json, result)


def format_atari(result: dict) -> str:
    """The mean rows as a Markdown table: model and classical, both matching rules."""
    keys = ("recall", "precision", "count_acc", "mota", "idf1", "num_switches")
    lines = [f"| {result['env_id']} | rule | " + " | ".join(keys) + " | sprites found (min) |", "|---" * 9 + "|"]
    for who in ("model", "classical"):
        for rule in ("frame", "native"):
            r = result[who][rule]
            found = min(r["found_by_sprite"].values())
            lines.append(f"| {who} | {rule} | " + " | ".join(f"{r[k]:.3g}" for k in keys) + f" | {found:.3f} |")
    return "\n".join(lines)


def run_prediction(cfg: PredictionEval) -> None:
    env = make_sqair_env(cfg.env, checkpoint=cfg.checkpoint, device=cfg.device, include_frame=cfg.gif is not None)
    per_seed = {}
    samples = 1 if cfg.mean_rollout else cfg.samples  # the mean rollout is one deterministic future
    for seed in range(cfg.seed, cfg.seed + cfg.seeds):
        torch.manual_seed(seed)
        roll = play_prediction(env, cfg.steps, cfg.horizon, samples, seed, cfg.true_actions, cfg.mean_rollout)
        per_seed[seed] = prediction_errors(roll)
    model = env.get_wrapper_attr("model")
    result = {
        "env_id": cfg.env,
        "checkpoint": str(cfg.checkpoint or "shipped"),
        "action_conditioned": model.cfg.num_actions > 0 and cfg.true_actions,
        "steps": cfg.steps,
        "samples": samples,
        "mean_rollout": cfg.mean_rollout,
        "seeds": list(per_seed),
        **mean_results(list(per_seed.values())),
    }
    if cfg.seeds > 1:
        result["per_seed"] = per_seed
    print(json.dumps({k: v for k, v in result.items() if k != "per_seed"}, indent=2))
    for target in ("tracked", "truth", "player"):
        if target == "tracked" or np.isfinite(result[target]["imagined"]).any():
            print(format_prediction(result, target), file=sys.stderr)
    if cfg.plot:
        plot_errors(result, cfg.plot, cfg.env.split("/")[-1] + (", prior-mean rollout" if cfg.mean_rollout else ""))
        print(f"wrote {cfg.plot}", file=sys.stderr)
    if cfg.gif:
        print(f"wrote {record_imagination_gif(env, cfg.gif, cfg.horizon, seed=cfg.seed + 100)}", file=sys.stderr)
    env.close()
    if cfg.json:
        _write_json(cfg.json, result)


def run_tracking(cfg: TrackingEval) -> None:
    env = gym.make("SQAIR-Wrapped/MovingMNIST", checkpoint=cfg.checkpoint, device=cfg.device)
    scores = tracking_scores(*play_moving_mnist(env, cfg.episodes, cfg.seed), match=cfg.match)
    result = {"episodes": cfg.episodes, "match": cfg.match, **scores._asdict()}
    print(json.dumps(result, indent=2))
    if cfg.json:
        _write_json(cfg.json, result)


def run_pedestrians(cfg: PedestriansEval) -> None:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    flush_denormals()
    model = load_model(cfg.checkpoint, map_location=select_device(cfg.device))
    if len(model.cfg.image_shape) != 3 or model.cfg.image_shape[0] != 3:
        raise ValueError(f"{cfg.checkpoint} is a model of {model.cfg.image_shape} frames, not of colour regions")
    data = load_pedestrian_source(cfg.source)
    held_out = held_out_sequences(data, not (cfg.source.video or cfg.source.duke), cfg.num_sequences)
    torch.manual_seed(cfg.seed)
    result = evaluate_pedestrians(model, held_out, cfg.particles, cfg.chunk, cfg.batch_size)
    result.update(
        model=model.model_name,
        checkpoint=str(cfg.checkpoint),
        step=model.checkpoint_extra.get("step"),
        source=cfg.source.describe(),
    )
    print(format_pedestrians(result))
    out_dir = cfg.out or cfg.checkpoint.with_suffix("").parent / "eval"
    _write_json(out_dir / "metrics.json", result)
    if cfg.figures:
        x = frames_to_input(held_out.frames[:, busiest(held_out, 4)], next(model.parameters()).device)
        paths = write_figures(model, x, out_dir / "fig8", condition_frames=4, numbered=False, horizon=4)
        for path in paths.values():
            print(f"wrote {path}")


def _write_json(path: Path, result: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")


RUNNERS = {
    MnistEval: run_mnist,
    AtariEval: run_atari,
    PredictionEval: run_prediction,
    TrackingEval: run_tracking,
    PedestriansEval: run_pedestrians,
}


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: the command line) and run the subcommand; bad input exits with code 2."""
    cfg = tyro.cli(Command, args=argv, prog=PROG, description=DESCRIPTION)
    try:
        RUNNERS[type(cfg)](cfg)
    except (ValueError, CheckpointError, FileNotFoundError, VideoError, AnnotationError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
