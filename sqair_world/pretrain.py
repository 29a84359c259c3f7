"""Offline pretraining: ``python -m sqair_world.pretrain [EXPERIMENT] [OPTIONS]``, or ``sqair-pretrain``.

With no arguments: MLP-SQAIR on moving multi-MNIST made from the embedded digits, on the GPU if
there is one (the faithful recipe) or on the CPU (the fast recipe), with a progress bar, TensorBoard
logs and checkpoints in ``runs/<experiment>/``. Ctrl-C writes a checkpoint; ``--resume`` continues
exactly where a run stopped. Data-parallel on several processes/GPUs/nodes with ``torchrun``::

    torchrun --nproc_per_node=4 -m sqair_world.pretrain mnist-mlp-sqair

The command line is generated (tyro) from :class:`PretrainArgs`: one subcommand per named experiment
(:data:`~sqair_world.training.experiments.EXPERIMENTS`, default ``mnist-mlp-sqair``) whose defaults are that
experiment's configs; training options are flat (``--lr 1e-4``), model options carry the ``--model.`` prefix
(``--model.n-hidden 128``), booleans are flags (``--compile``, ``--no-progress``).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import torch
import tyro
from tyro.constructors import PrimitiveConstructorSpec

from sqair_world.envs.atari import background as atari_background
from sqair_world.envs.atari import collect_sequences, make_maze_env
from sqair_world.evaluation.figures import reconstruction_strip
from sqair_world.evaluation.moving_mnist import evaluate as evaluate_mnist
from sqair_world.evaluation.moving_mnist import format_table, write_mnist_figures
from sqair_world.model.config import SQAIRConfig
from sqair_world.model.registry import build_model_from_config
from sqair_world.model.vrnn import VRNNConfig
from sqair_world.training.checkpoints import CheckpointError, load_model, save_model
from sqair_world.training.experiments import (
    EXPERIMENTS,
    Experiment,
    PedestrianSource,
    get_experiment,
    mean_frame,
    moving_mnist_arrays,
    pedestrian_arrays,
)
from sqair_world.training.trainer import TrainConfig, Trainer, TrainingDiverged

PROG = "python -m sqair_world.pretrain"
DESCRIPTION = (
    "Train a model on a named experiment's data (default mnist-mlp-sqair: MLP-SQAIR on moving multi-MNIST from the "
    "embedded digits), with the faithful recipe on a GPU and the fast one on a CPU. Checkpoints and TensorBoard logs "
    "go to runs/<experiment>/; Ctrl-C writes a checkpoint and --resume continues exactly where a run stopped. "
    "`EXPERIMENT --help` shows that experiment's defaults."
)
DEFAULT_EXPERIMENT = "mnist-mlp-sqair"
RESUME_LAST = "auto"
"""The value of ``--resume`` given without a path: continue from ``<run-dir>/last.pt``."""


def _resume_path(values: list[str]) -> str:
    if len(values) > 1:
        raise ValueError(f"--resume takes at most one checkpoint path, got {values}")
    return values[0] if values else RESUME_LAST


# ``--resume`` with or without a path (argparse's nargs="?"), which a plain ``str | None`` field cannot express
_RESUME = PrimitiveConstructorSpec(
    nargs="*",
    metavar="[PATH]",
    instance_from_str=_resume_path,
    is_instance=lambda value: value is None or isinstance(value, str),
    str_from_instance=lambda value: ["None"] if value is None else [value],
)


@dataclass(frozen=True)
class PretrainArgs:
    """One pretraining run: an experiment's model and training configs with the command line's changes."""

    experiment: tyro.conf.Suppress[str]
    """Name of the experiment in EXPERIMENTS (the subcommand chooses it)."""
    model: tyro.conf.AvoidSubcommands[SQAIRConfig | VRNNConfig]
    """The model's config; K, the importance samples per sequence, is its k_particles."""
    train: tyro.conf.OmitArgPrefixes[TrainConfig]
    """Training options."""
    env: str = "ALE/Pacman-v5"
    """Gymnasium id of the Atari game of the 'atari' experiment."""
    pedestrians: tyro.conf.OmitArgPrefixes[PedestrianSource] = PedestrianSource()
    """The 'pedestrians' experiment's footage (--video, --duke, or the synthetic walkers)."""
    output: str | None = None
    """Also copy the final model (weights only) to this path."""
    half: bool = False
    """Store the --output weights as float16 (shipped checkpoints)."""
    resume: Annotated[str | None, _RESUME] = None
    """Continue a run: --resume alone from <run-dir>/last.pt, --resume PATH from that checkpoint."""
    init_from: str | None = None
    """Fine-tune: a new run from this checkpoint's weights (model fields that keep the parameter shapes may differ;
    an action effect the checkpoint lacks starts as the unconditional prior)."""
    final_eval: int = 200
    """Moving-MNIST experiments: held-out sequences of the summary evaluation printed after the run (counting,
    bound, addition, tracking) and written with the figures to <run-dir>/eval/; 0: none."""
    final_eval_particles: int = 50
    """K of that evaluation's bound (the paper's Table 1 uses 1000: see python -m sqair_world.evaluate mnist)."""
    actions: bool = True
    """atari: condition the propagation prior on the recorded actions (model.num_actions = the game's action count);
    --no-actions trains the unconditional prior. Other experiments have no actions."""


def experiment_args(exp: Experiment) -> PretrainArgs:
    """The defaults of experiment ``exp``'s subcommand: its model and training configs with its overrides."""
    return PretrainArgs(experiment=exp.name, model=exp.model_config(), train=exp.train_config())


def parse_args(argv: Sequence[str] | None = None) -> PretrainArgs:
    """Parse the command line (``sys.argv[1:]`` when ``argv`` is None). ``--help`` exits with status 0, a bad
    option or value with status 2 and tyro's message saying which and why."""
    defaults = {name: experiment_args(exp) for name, exp in EXPERIMENTS.items()}
    choice = tyro.extras.subcommand_type_from_defaults(
        defaults, {name: exp.description for name, exp in EXPERIMENTS.items()}
    )
    return tyro.cli(
        choice,
        args=argv,
        default=defaults[DEFAULT_EXPERIMENT],
        prog=PROG,
        description=DESCRIPTION,
        # options of the default experiment without naming it: `pretrain --max-minutes 60`
        config=(tyro.conf.CascadeSubcommandArgs,),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (0 done, 2 bad input or checkpoint, 3 the loss diverged).
    ``--help`` and the options tyro rejects exit through ``SystemExit`` (status 0 and 2), as with argparse."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and not argv[0].startswith("-"):
            get_experiment(argv[0])  # an unknown name gets a did-you-mean before tyro's generic message
        return run(parse_args(argv))
    except (ValueError, CheckpointError, FileNotFoundError) as err:  # bad options, names, files: no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2


def default_run_dir(exp: Experiment, env_id: str, source: PedestrianSource | None = None) -> Path:
    """``runs/<experiment>``; Atari runs are named after the game (``runs/atari-pacman``), pedestrian runs on a
    video after the video (``runs/pedestrians-vtest``)."""
    if exp.data == "atari":
        return Path("runs") / f"atari-{env_id.split('/')[-1].split('-')[0].lower()}"
    if exp.data == "pedestrians" and source is not None and source.video is not None:
        return Path("runs") / f"pedestrians-{Path(source.video).stem.lower()}"
    return Path("runs") / exp.name


def run(args: PretrainArgs) -> int:
    """Train as ``args`` says; returns the exit status (0 done, 3 the loss diverged)."""
    if args.init_from and args.resume:
        raise ValueError("--init-from starts a new run and --resume continues one: give only one of them")
    exp = get_experiment(args.experiment)
    cfg = args.train
    if cfg.run_dir is None:
        cfg = dataclasses.replace(cfg, run_dir=str(default_run_dir(exp, args.env, args.pedestrians)))
    model_fields = args.model.to_dict()
    if exp.data == "atari":
        model_fields["num_actions"] = game_actions(args.env, model_fields.get("num_actions", 0), args.actions)
    elif model_fields.get("num_actions", 0):
        raise ValueError(f"--model.num-actions: the {exp.name} data have no actions; leave it at 0")
    model = build_model_from_config(exp.model, model_fields)
    action_arrays: dict[str, Any] = {}
    if args.init_from:  # before set_background, so the background comes from this run's data (another game's works)
        init_weights(model, args.init_from)
        print(f"initialised from {args.init_from}", file=sys.stderr)
    if exp.data != "pedestrians" and args.pedestrians != PedestrianSource():
        raise ValueError(
            f"--video, --duke, --gt, --camera, --walkers-* and --step are options of the pedestrians "
            f"experiment, not of {exp.name}"
        )
    if exp.data == "moving-mnist":
        train_x, val_x, val_counts = moving_mnist_arrays(
            cfg.num_train_sequences, cfg.num_val_sequences, cfg.data_seed, cfg.mnist_dir, cfg.curriculum_max
        )
        background = mean_frame(train_x)
    elif exp.data == "pedestrians":
        print(f"pedestrians: {args.pedestrians.describe()}", file=sys.stderr)
        train_x, val_x, val_counts = pedestrian_arrays(args.pedestrians, progress=cfg.progress)
        if train_x.shape[0] < cfg.curriculum_max:
            raise ValueError(
                f"the pedestrian sequences have {train_x.shape[0]} frames; --curriculum-max must not "
                f"exceed that, got {cfg.curriculum_max}"
            )
        background = mean_frame(train_x)
    else:
        frames, actions = collect_sequences(
            args.env,
            cfg.num_train_sequences + cfg.num_val_sequences,
            cfg.curriculum_max,
            cfg.data_seed,
            with_actions=True,
            progress=cfg.progress,
        )  # a random policy's sequences and its actions: the Atari data set
        train_x, val_x, val_counts = frames[:, : cfg.num_train_sequences], frames[:, cfg.num_train_sequences :], None
        if model_fields["num_actions"]:
            action_arrays = dict(
                train_actions=actions[:, : cfg.num_train_sequences], val_actions=actions[:, cfg.num_train_sequences :]
            )
        background = atari_background(frames)
    # the Atari maze (median frame, pellets erased) is exact: keep it fixed so sprites do not smear into it
    model.set_background(torch.as_tensor(background), trainable=exp.data != "atari")
    trainer = Trainer(
        model,
        train_x,
        val_x,
        cfg,
        experiment=exp.name,
        val_counts=val_counts,
        on_validate=_image_summary,
        **action_arrays,
    )
    if args.resume:
        path = trainer.checkpoint_path if args.resume == RESUME_LAST else Path(args.resume)
        trainer.load(path)
        print(f"resumed {path} at step {trainer.step}", file=sys.stderr)
    if exp.data == "atari":
        trainer.model.checkpoint_extra = {"env_id": args.env}
    elif exp.data == "pedestrians":  # the footage and frame step, for evaluate and track
        trainer.model.checkpoint_extra = {"pedestrians": dataclasses.asdict(args.pedestrians)}
    try:
        trainer.fit()
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    if trainer.dist.main:
        print(f"checkpoint: {trainer.checkpoint_path} (step {trainer.step})", file=sys.stderr)
        if args.output:
            extra = {"experiment": exp.name, "step": trainer.step}
            extra.update(getattr(trainer.model, "checkpoint_extra", {}))
            save_model(args.output, trainer.model, extra=extra, half=args.half)
            print(f"model: {args.output}", file=sys.stderr)
        if exp.data == "moving-mnist" and args.final_eval and not trainer.interrupted:
            final_evaluation(trainer.model, args, Path(cfg.run_dir) / "eval")
        print(next_steps(args, trainer), file=sys.stderr)
    return 0


def final_evaluation(model, args: PretrainArgs, out_dir: Path) -> dict[str, Any]:
    """The summary a run ends with: the Table-1 scores and tracking on ``args.final_eval`` held-out sequences (the
    evaluation digit pool, seed data_seed + 1, not the validation set), printed, and written with the figures."""
    cfg = args.train
    seed = cfg.data_seed + 1
    print(f"evaluating on {args.final_eval} held-out sequences, K={args.final_eval_particles}", file=sys.stderr)
    result = evaluate_mnist(
        model,
        args.final_eval,
        args.final_eval_particles,
        chunk=min(50, args.final_eval_particles),
        num_addition_train=min(1000, cfg.num_train_sequences),
        seed=seed,
        mnist_dir=cfg.mnist_dir,
        progress=cfg.progress,
    )
    print(format_table(model.model_name, result))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    paths = write_mnist_figures(model, args.final_eval, seed, cfg.mnist_dir, out_dir)
    print(f"scores and figures: {out_dir}/ ({', '.join(p.name for p in paths.values())}, summary.json)")
    return result


def next_steps(args: PretrainArgs, trainer: Trainer) -> str:
    """How to go on from a finished or stopped run: continue it, evaluate it fully."""
    if trainer.cfg.max_minutes:
        budget = f"another {trainer.cfg.max_minutes:g} minutes; --max-minutes N to choose"
    else:
        budget = f"give a --steps above {trainer.step}"
    example = f"{PROG} {args.experiment} --resume"
    if Path(trainer.cfg.run_dir) != default_run_dir(get_experiment(args.experiment), args.env, args.pedestrians):
        example += f" --run-dir {trainer.cfg.run_dir}"  # else --resume would look in the default run folder
    lines = [f"continue this run: the same command with --resume ({budget}), e.g. {example}"]
    if get_experiment(args.experiment).data == "moving-mnist":
        lines.append(
            f"the paper's evaluation (1000 sequences, K=1000): python -m sqair_world.evaluate mnist "
            f"{trainer.checkpoint_path}"
        )
    return "\n".join(lines)


def game_actions(env_id: str, num_actions: int, use_actions: bool) -> int:
    """The atari experiment's ``num_actions``: the game's action count with ``--actions``, else 0; a
    ``--model.num-actions`` that disagrees is refused."""
    if not use_actions:
        if num_actions:
            raise ValueError("--no-actions trains the unconditional prior: leave --model.num-actions at 0")
        return 0
    env = make_maze_env(env_id)
    n = int(env.action_space.n)
    env.close()
    if num_actions not in (0, n):
        raise ValueError(f"--model.num-actions {num_actions}: {env_id} has {n} actions (leave it at 0 to take them)")
    return n


# new modules a checkpoint without them leaves at their initialisation (the action effect and velocity gain start at
# zero)
FRESH_MODULES = (
    "propagation.prior.action_effect.",
    "propagation.prior.velocity_gain",
    "propagation.prior.action_gain.",
)
PROP_PRIOR = "propagation.prior."


def init_weights(model, path: str) -> None:
    """Copy the weights of the checkpoint at ``path`` into ``model`` (same parameter shapes, any config); an
    action effect the checkpoint lacks keeps its zero start (the unconditional prior); a propagation prior of
    another kind (``prop_prior``, model.priors) keeps its initialisation."""
    source = load_model(path)
    weights = source.state_dict()
    fresh: tuple[str, ...] = FRESH_MODULES
    if getattr(source.cfg, "prop_prior", "gru") != getattr(model.cfg, "prop_prior", "gru"):
        fresh = (PROP_PRIOR,)  # another kind of propagation prior starts afresh
        weights = {k: v for k, v in weights.items() if not k.startswith(fresh)}
    try:
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except RuntimeError as err:
        raise CheckpointError(
            f"--init-from {path!r}: its parameters do not fit this model's config ({err}); "
            "only fields that keep the parameter shapes may differ"
        ) from err
    missing = [k for k in missing if not k.startswith(fresh)]
    if missing or unexpected:
        raise CheckpointError(
            f"--init-from {path!r}: its parameters do not fit this model's config (missing {missing[:4]}, "
            f"unexpected {unexpected[:4]}); only fields that keep the parameter shapes may differ"
        )


def _image_summary(trainer: Trainer, last) -> None:
    """TensorBoard image: validation inputs over reconstructions with boxes coloured by identity."""
    if trainer.writer is None:
        return
    x, out = last
    img = reconstruction_strip(x[:, :4].cpu(), out, max_sequences=4)
    trainer.writer.add_image("val/reconstructions", img, trainer.step, dataformats="HWC")


if __name__ == "__main__":
    sys.exit(main())
