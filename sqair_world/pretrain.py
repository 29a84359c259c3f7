"""Offline pretraining: ``python -m sqair_world.pretrain [EXPERIMENT] [options]``.

With no arguments: MLP-SQAIR on moving multi-MNIST made from the embedded digits, on the GPU if
there is one (the faithful recipe) or on the CPU (the fast recipe), with a progress bar, TensorBoard
logs and checkpoints in ``runs/<experiment>/``. Ctrl-C writes a checkpoint; ``--resume`` continues
exactly where a run stopped. Data-parallel on several processes/GPUs/nodes with ``torchrun``::

    torchrun --nproc_per_node=4 -m sqair_world.pretrain mnist-mlp-sqair
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import sys
import textwrap
import typing
from pathlib import Path
from typing import Any

from sqair_world.training.checkpoints import CheckpointError
from sqair_world.training.experiments import EXPERIMENTS, atari_arrays, get_experiment, mean_frame, moving_mnist_arrays
from sqair_world.training.trainer import TrainConfig, Trainer, TrainingDiverged


def _literal(text: str) -> Any:
    if text.lower() in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _field_parser(f: dataclasses.Field) -> Any:
    base = f.type if not isinstance(f.type, str) else eval(f.type, vars(typing), {})
    args = [a for a in typing.get_args(base) if a is not type(None)] or [base]
    kind = args[0]
    if kind is bool:
        return lambda s: {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}[s.lower()]
    if kind in (int, float, str):
        return lambda s: None if s.lower() == "none" else kind(s)
    return str


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of dataclass ``cls`` (read from its source, so --help shows them)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body, docs = tree.body[0].body, {}
    for stmt, nxt in zip(body, body[1:]):
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[stmt.target.id] = " ".join(nxt.value.value.split())
    return docs


def _model_fields() -> str:
    from sqair_world.model.config import SQAIRConfig

    names = sorted(f.name for f in dataclasses.fields(SQAIRConfig))
    return textwrap.fill(", ".join(names), 100, initial_indent="  ", subsequent_indent="  ")


def build_parser() -> argparse.ArgumentParser:
    lines = [f"  {n:18s} {e.description}" for n, e in EXPERIMENTS.items()]
    epilog = (
        "experiments:\n"
        + "\n".join(lines)
        + "\n\nSQAIR model fields for --model-set (VRNN models: see sqair_world.model.config):\n"
        + _model_fields()
        + "\n\nexamples:\n  python -m sqair_world.pretrain                       # MLP-SQAIR, embedded digits"
        + "\n  python -m sqair_world.pretrain mnist-mlp-air --max-minutes 60 --lr 3e-4"
        + "\n  python -m sqair_world.pretrain --resume   # continue runs/mnist-mlp-sqair/last.pt"
        + "\n  torchrun --nproc_per_node=4 -m sqair_world.pretrain mnist-conv-sqair --recipe faithful"
    )
    p = argparse.ArgumentParser(
        prog="python -m sqair_world.pretrain",
        description=__doc__,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "experiment", nargs="?", default="mnist-mlp-sqair", help="experiment name (default: mnist-mlp-sqair)"
    )
    p.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        help="continue from a checkpoint (default path: <run_dir>/last.pt)",
    )
    p.add_argument(
        "--init-from",
        default=None,
        metavar="CHECKPOINT",
        help="fine-tune: start a new run (step 0, fresh optimiser) from this checkpoint's weights; the "
        "model config may differ in fields that keep the parameter shapes (e.g. --model-set exit_margin=0.02)",
    )
    p.add_argument(
        "--model-set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a model config field, e.g. --model-set n_hidden=128 (repeatable)",
    )
    p.add_argument("--env", default="ALE/Pacman-v5", help="Atari game for the 'atari' experiment")
    p.add_argument("--output", default=None, help="also copy the final model (weights only) to this path")
    p.add_argument("--half", action="store_true", help="store --output weights as float16 (for shipped checkpoints)")
    g = p.add_argument_group("training configuration (TrainConfig fields)")
    docs = field_docs(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        doc = f" {docs[f.name]}" if f.name in docs else ""
        g.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f.name,
            type=_field_parser(f),
            default=argparse.SUPPRESS,
            help=f"(default {f.default!r}){doc}",
        )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (ValueError, CheckpointError) as err:  # bad options, unknown names, unusable checkpoints: no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    exp = get_experiment(args.experiment)
    train_kw = {
        **exp.train_overrides,
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)},
    }
    model_kw = dict(exp.model_overrides)
    for item in args.model_set:
        if "=" not in item:
            raise ValueError(f"--model-set expects FIELD=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        model_kw[k.strip()] = _literal(v)
    cfg = TrainConfig(**train_kw)
    if cfg.run_dir is None:
        cfg = dataclasses.replace(
            cfg,
            run_dir=str(
                Path("runs")
                / (exp.name if exp.data != "atari" else f"atari-{args.env.split('/')[-1].split('-')[0].lower()}")
            ),
        )
    from sqair_world.model.registry import build_model

    model = build_model(exp.model, **{**model_kw, "k_particles": cfg.k_particles})
    if args.init_from and args.resume:
        raise ValueError("--init-from starts a new run and --resume continues one: give only one of them")
    if args.init_from:  # before set_background, so the background comes from this run's data (another game's works)
        init_weights(model, args.init_from)
        print(f"initialised from {args.init_from}", file=sys.stderr)
    if exp.data == "moving-mnist":
        train_x, val_x, val_counts = moving_mnist_arrays(
            cfg.num_train_sequences, cfg.num_val_sequences, cfg.data_seed, cfg.mnist_dir, cfg.curriculum_max
        )
        background = mean_frame(train_x)
    else:
        train_x, val_x, val_counts, bg = atari_arrays(
            args.env, cfg.num_train_sequences, cfg.num_val_sequences, cfg.data_seed, cfg.curriculum_max
        )
        background = bg
    if hasattr(model, "set_background"):
        import torch

        # the Atari maze (median frame, pellets erased) is exact: keep it fixed so sprites do not smear into it
        model.set_background(torch.as_tensor(background), trainable=exp.data != "atari")
    trainer = Trainer(
        model, train_x, val_x, cfg, experiment=exp.name, val_counts=val_counts, on_validate=_image_summary
    )
    if args.resume:
        path = trainer.checkpoint_path if args.resume == "auto" else Path(args.resume)
        trainer.load(path)
        print(f"resumed {path} at step {trainer.step}", file=sys.stderr)
    if exp.data == "atari":
        trainer.model.checkpoint_extra = {"env_id": args.env}
    try:
        trainer.fit()
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    if trainer.dist.main:
        print(f"checkpoint: {trainer.checkpoint_path} (step {trainer.step})", file=sys.stderr)
        if args.output:
            from sqair_world.training.checkpoints import save_model

            extra = {"experiment": exp.name, "step": trainer.step}
            if exp.data == "atari":
                extra["env_id"] = args.env
            save_model(args.output, trainer.model, extra=extra, half=args.half)
            print(f"model: {args.output}", file=sys.stderr)
    return 0


def init_weights(model, path: str) -> None:
    """Copy the weights of the checkpoint at ``path`` into ``model`` (same parameter shapes, any config)."""
    from sqair_world.training.checkpoints import load_model

    source = load_model(path)
    try:
        model.load_state_dict(source.state_dict())
    except RuntimeError as err:
        raise CheckpointError(
            f"--init-from {path!r}: its parameters do not fit this model's config ({err}); "
            "only fields that keep the parameter shapes may differ"
        ) from err


def _image_summary(trainer: Trainer, last) -> None:
    """TensorBoard image: validation inputs over reconstructions with boxes coloured by identity."""
    if trainer.writer is None:
        return
    from sqair_world.evaluation.figures import reconstruction_strip

    x, out = last
    img = reconstruction_strip(x[:, :4].cpu(), out, max_sequences=4)
    trainer.writer.add_image("val/reconstructions", img, trainer.step, dataformats="HWC")


if __name__ == "__main__":
    sys.exit(main())
