"""Training loop: optimiser, curriculum, logging, validation, atomic checkpoints, exact resume, DDP.

The loop does no model maths: it asks the model for ``SequenceOutput.loss`` and steps the optimiser.
Two recipes (docs/training.md, "Two recipes"):

- ``faithful`` (reference §4): RMSProp (momentum 0.9, decay 0.9, eps 1e-10, square average
  initialised to one), batch 32, K = 5, lr 1e-5 with the authors' piecewise schedule, curriculum
  3 frames + 1 every 100k steps up to 10. Days on a GPU.
- ``fast`` (default without a GPU): Adam, lr 3e-4 with a short warm-up and x0.7 at every curriculum
  stage, curriculum 3 frames + 1 every 500 steps, gradient-norm clipping at 1,000 as a guard; for CPU
  budgets of about an hour (lr 3e-4 reached 0.76 validation counting accuracy after 200 steps where 1e-4 reached 0.51).

Batches are a pure function of (seed, step): epoch permutations from ``default_rng([seed, epoch])``,
sliced per step and per rank, so resuming needs only the step (plus the torch RNG state for the
model's sampling noise, which is checkpointed). §8.8: the authors sample batches with replacement;
we use epochs without replacement (same expectation, every sequence seen once per epoch).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm.auto import tqdm

from sqair_world.speed import (
    accelerate,
    flush_denormals,
    mixed_precision,
    reduced_precision_matmul,
    require_native_bf16,
)
from sqair_world.training.checkpoints import (
    FORMAT,
    atomic_torch_save,
    model_from_payload,
    model_payload,
    safe_torch_load,
)
from sqair_world.training.diagnostics import CollapseGuard, diagnose
from sqair_world.training.distributed import any_rank, init_distributed, select_device
from sqair_world.training.schedules import authors_learning_rate, curriculum_length, linear_decay, warmup_constant

CPU_DEFAULT_MINUTES = 60.0
"""The budget of a fast-recipe run given neither steps nor max_minutes (issue 21's 60-minute CPU budget)."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything about a training run except the model's own configuration."""

    recipe: Literal["auto", "fast", "faithful"] = "auto"
    """'auto' = 'faithful' on a GPU, 'fast' on a CPU."""
    steps: int | None = None
    """Optimiser steps to run in total (None: 2,000,000 faithful, unlimited fast; see max_minutes)."""
    max_minutes: float | None = None
    """Wall-clock budget of this invocation in minutes; the run checkpoints and stops when it is spent (None: the
    fast recipe without ``steps`` stops after CPU_DEFAULT_MINUTES, so a first run ends; faithful: no budget)."""
    batch_size: int = 32
    """Sequences per optimiser step (over all DDP ranks)."""
    lr: float | None = None
    """Base learning rate (None: 1e-5 faithful, 3e-4 fast)."""
    curriculum_start: int = 3
    """Frames at step 0."""
    curriculum_every: int | None = None
    """One more frame every this many steps (None: 100,000 faithful, 500 fast)."""
    curriculum_max: int = 10
    """Longest sequences."""
    lr_stage_decay: float = 0.7
    """Fast recipe: the learning rate is multiplied by this at every curriculum stage (1: constant). At a constant
    3e-4, propagation broke down at 6-9 frames (docs/moving_mnist.md "Stability")."""
    steady_lr_modules: tuple[str, ...] = ()
    """Fast recipe: parameters whose names start with one of these keep the undecayed rate through the curriculum
    (e.g. ``glimpse_decoder mean_image``): the decay tames the presences' score-function noise, which grows with T
    (docs/moving_mnist.md "Stability") and never reaches the decoder, which only gets reparameterised gradients."""
    grad_clip: float | None = None
    """Clip the global gradient norm (None: off faithful, 1000 fast)."""
    num_train_sequences: int = 60000
    """Training sequences: generated (and cached) from the training digit pool, or collected from the game."""
    num_val_sequences: int = 512
    """Validation sequences: generated from the evaluation digit pool, or collected from the game."""
    mnist_dir: str | None = None
    """Directory of the MNIST IDX files; None uses the embedded 5,000 digits."""
    data_seed: int = 0
    """Seed of the generated data sets."""
    seed: int = 0
    """Seed of batch order and of the model's sampling noise."""
    device: str = "auto"
    """'auto' (CUDA if available), 'cpu', 'cuda', 'cuda:1', ..."""
    run_dir: str | None = None
    """Where checkpoints and TensorBoard logs go (None: runs/<experiment>, Atari: runs/atari-<game>)."""
    checkpoint_minutes: float = 5.0
    """Write last.pt at least this often (and always on exit)."""
    log_every: int = 20
    """Steps between TensorBoard scalar summaries."""
    val_every: int = 500
    """Steps between validations (and image summaries)."""
    val_batch_size: int = 64
    """Validation sequences per forward pass."""
    deterministic: bool = False
    """Use posterior means instead of samples (tests: fixed sampling noise)."""
    tensorboard: bool = True
    """Write TensorBoard summaries."""
    progress: bool = True
    """Show a tqdm progress bar."""
    num_threads: int | None = None
    """torch CPU threads (None: torch's default)."""
    presence_warmup: float = 0.0
    """Offset on the discovery presence logits at step 0, to 0 linearly (keeps small sprites on while decoding)."""
    presence_warmup_steps: int = 0
    """Steps of that warm-up (0: none)."""
    compile: bool = False
    """torch.compile the per-frame step (minutes of compilation at start; docs/training.md "Speed")."""
    fast_matmul: bool = False
    """float32 matmuls in TF32 (CUDA) or bfloat16 (a CPU with native bfloat16; docs/training.md "Speed")."""
    autocast: bool = False
    """bfloat16 networks in the training pass; samples, log-densities, canvas, bound and validation stay float32."""
    diagnostics_every: int = 0
    """Steps between gradient diagnostics (per-term gradient norms, presence, where-std, ESS, KL per module;
    training/diagnostics.py) logged to TensorBoard and diagnostics.jsonl; 0: off. Each costs two extra passes."""

    def __post_init__(self) -> None:
        if self.recipe not in ("auto", "fast", "faithful"):
            raise ValueError(f"recipe must be 'auto', 'fast' or 'faithful', got {self.recipe!r}")
        for name in (
            "batch_size",
            "curriculum_start",
            "curriculum_max",
            "num_train_sequences",
            "num_val_sequences",
            "log_every",
            "val_every",
            "val_batch_size",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1 or unset (torch's default), got {self.num_threads}")
        if not 0.0 < self.lr_stage_decay <= 1.0:
            raise ValueError(f"lr_stage_decay must be in (0, 1], got {self.lr_stage_decay}")
        if self.curriculum_start > self.curriculum_max:
            raise ValueError("curriculum_start must not exceed curriculum_max")

    def resolved(self, device: torch.device) -> TrainConfig:
        """Fill the recipe-dependent defaults for ``device``."""
        recipe = self.recipe if self.recipe != "auto" else ("faithful" if device.type == "cuda" else "fast")
        faithful = recipe == "faithful"
        return dataclasses.replace(
            self,
            recipe=recipe,
            steps=self.steps if self.steps is not None else (2_000_000 if faithful else 10**9),
            max_minutes=self.max_minutes
            if self.max_minutes is not None or self.steps is not None or faithful
            else CPU_DEFAULT_MINUTES,
            lr=self.lr if self.lr is not None else (1e-5 if faithful else 3e-4),
            curriculum_every=self.curriculum_every
            if self.curriculum_every is not None
            else (100_000 if faithful else 500),
            grad_clip=self.grad_clip if self.grad_clip is not None else (None if faithful else 1000.0),
        )


class TrainingDiverged(RuntimeError):
    """The loss or the gradients became NaN/inf; the last good checkpoint is kept."""


# ---------------------------------------------------------------------------------------------- helpers
def tf_rmsprop(params, lr: float) -> torch.optim.RMSprop:
    """TF1 ``RMSPropOptimizer(lr, momentum=0.9)``: decay 0.9, eps 1e-10, square average initialised to one
    (PyTorch would start it at zero). PyTorch adds eps outside the square root, TF inside; at 1e-10 the
    difference is below float precision for any gradient that matters."""
    opt = torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-10, momentum=0.9)
    for group in opt.param_groups:
        for p in group["params"]:
            opt.state[p] = {
                "step": torch.tensor(0.0),
                "square_avg": torch.ones_like(p, memory_format=torch.preserve_format),
                "momentum_buffer": torch.zeros_like(p, memory_format=torch.preserve_format),
            }
    return opt


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam (fast) or the authors' RMSProp (faithful); with ``steady_lr_modules`` the fast recipe's parameters come
    in two groups, the steady one flagged ``steady=True`` for :func:`learning_rate`."""
    if cfg.recipe == "faithful":
        return tf_rmsprop(model.parameters(), cfg.lr)
    if not cfg.steady_lr_modules:
        return torch.optim.Adam(model.parameters(), lr=cfg.lr)
    named = list(model.named_parameters())
    steady = [p for n, p in named if n.startswith(cfg.steady_lr_modules)]
    if not steady:
        prefixes = sorted({n.split(".")[0] for n, _ in named})
        raise ValueError(f"steady_lr_modules {cfg.steady_lr_modules} match no parameter; the model's are {prefixes}")
    decayed = [p for n, p in named if not n.startswith(cfg.steady_lr_modules)]
    return torch.optim.Adam(
        [{"params": decayed, "steady": False}, {"params": steady, "steady": True}],
        lr=cfg.lr,
    )


def learning_rate(step: int, cfg: TrainConfig, steady: bool = False) -> float:
    """The rate at ``step``; ``steady``: a parameter group that skips the fast recipe's stage decay."""
    if cfg.recipe == "faithful":
        return authors_learning_rate(step, cfg.lr, cfg.steps if cfg.steps < 10**9 else 2_000_000)
    stage = (
        curriculum_length(step, cfg.curriculum_start, cfg.curriculum_every, cfg.curriculum_max) - cfg.curriculum_start
    )
    return warmup_constant(step, cfg.lr) * (1.0 if steady else cfg.lr_stage_decay**stage)


def batch_indices(step: int, n: int, batch: int, seed: int, rank: int = 0, world: int = 1) -> np.ndarray:
    """Indices of this rank's share of global batch ``step``: epochs of ``n`` without replacement."""
    per_epoch = max(1, n // batch)
    epoch, i = divmod(step, per_epoch)
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    glob = perm[i * batch : (i + 1) * batch]
    share = batch // world
    return glob[rank * share : (rank + 1) * share]


def rng_state() -> dict[str, Any]:
    """The random state a run draws from: torch's (the model's sampling noise) and CUDA's. Batch order is a
    pure function of (seed, step) and nothing draws from numpy's or Python's global generators, so they are
    not saved."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state` (checkpoints of earlier versions also hold numpy/Python states: ignored)."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------------------------- trainer
class Trainer:
    """Runs one experiment: ``Trainer(model, train_x, val_x, cfg).fit()``.

    :param train_x: uint8 frames ``[T, S, C, H, W]`` (time-major); batches are cast to floats in [0, 1] on the device
    :param val_x: uint8 ``[T, S_val, C, H, W]``
    :param val_counts: optional ground-truth object counts ``[S_val]`` (per sequence) or ``[T, S_val]`` (per frame)
        for the validation counting accuracy
    :param train_actions: int ``[T, S]`` actions taken after each frame, for a model with an action-conditioned
        prior (``SQAIRConfig.num_actions > 0``); ``val_actions`` ``[T, S_val]`` likewise
    """

    def __init__(
        self,
        model: nn.Module,
        train_x: np.ndarray,
        val_x: np.ndarray,
        cfg: TrainConfig,
        experiment: str = "custom",
        val_counts: np.ndarray | None = None,
        on_validate: Callable[[Trainer, Any], None] | None = None,
        train_actions: np.ndarray | None = None,
        val_actions: np.ndarray | None = None,
    ) -> None:
        self.dist, self.device = init_distributed(cfg.device)
        self.cfg = cfg.resolved(self.device)
        if self.cfg.num_threads is not None:
            torch.set_num_threads(self.cfg.num_threads)
        flush_denormals()  # masked presence logits make denormals that slow MKL's matmuls (speed.py)
        if self.cfg.autocast:
            require_native_bf16(self.device, "autocast (--autocast)")
        if self.cfg.fast_matmul:
            require_native_bf16(self.device, "fast_matmul (--fast-matmul)")
            reduced_precision_matmul()
        if self.cfg.batch_size % self.dist.world:
            raise ValueError(
                f"batch_size {self.cfg.batch_size} (the global batch) must be divisible by the number of "
                f"processes {self.dist.world}"
            )
        if train_x.ndim != 5 or train_x.dtype != np.uint8:
            raise ValueError(f"train_x must be uint8 [T, S, C, H, W], got {train_x.dtype} {train_x.shape}")
        self.experiment = experiment
        self.run_dir = Path(self.cfg.run_dir or Path("runs") / experiment)
        self.model = model.to(self.device)
        if self.cfg.compile:
            accelerate(self.model)
        self.train_x, self.val_x, self.val_counts = train_x, val_x, val_counts
        needs = getattr(getattr(model, "cfg", None), "num_actions", 0) > 0
        for name, acts, frames in (("train_actions", train_actions, train_x), ("val_actions", val_actions, val_x)):
            if needs and acts is None:
                raise ValueError(f"the model's prior is conditioned on actions: pass {name} (int [T, S])")
            if not needs and acts is not None:
                raise ValueError(f"{name} given, but the model's prior is not conditioned on actions (num_actions=0)")
            if acts is not None and (acts.shape != frames.shape[:2] or not np.issubdtype(acts.dtype, np.integer)):
                raise ValueError(f"{name} must be int [T, S] = {frames.shape[:2]}, got {acts.dtype} {acts.shape}")
        self.train_actions, self.val_actions = train_actions, val_actions
        self.opt = make_optimizer(self.model, self.cfg)
        self.step = 0
        self.on_validate = on_validate
        self.ddp = None
        if self.dist.world > 1:
            self.ddp = DDP(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        torch.manual_seed(self.cfg.seed + self.dist.rank)  # per-rank sampling noise
        self.writer = None
        self._last_ckpt = time.monotonic()
        self.interrupted = False
        """Whether the last ``fit`` ended by Ctrl-C or SIGTERM rather than by its budget."""
        self.history: list[dict[str, float]] = []
        self.collapse_guard = CollapseGuard()

    # ----------------------------------------------------------------- checkpoints
    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "last.pt"

    def state(self) -> dict[str, Any]:
        extra = {
            "experiment": self.experiment,
            "train_config": dataclasses.asdict(self.cfg),
            "step": self.step,
            "optimizer": self.opt.state_dict(),
            "rng": rng_state(),
            "seq_len": self.seq_len(self.step),
        }
        return model_payload(self.model, extra)

    def save(self, path: Path | None = None) -> Path:
        """Atomic checkpoint (rank 0 only)."""
        path = Path(path or self.checkpoint_path)
        if self.dist.main:
            atomic_torch_save(self.state(), path)
        self._last_ckpt = time.monotonic()
        return path

    def load(self, path: str | os.PathLike) -> None:
        """Continue exactly where ``path`` stopped: weights, optimiser, RNG states, step (and so curriculum)."""
        data = safe_torch_load(path, map_location="cpu")
        extra = data.get("extra", {})
        if "optimizer" not in extra or "step" not in extra:
            raise ValueError(f"{path} holds a model but no training state; use it with evaluate, or start a new run")
        loaded = model_from_payload(data, str(path), expected_config=self.model.cfg)
        self.model.load_state_dict(loaded.state_dict())
        saved = tuple(extra.get("train_config", {}).get("steady_lr_modules", ()))
        if sorted(saved) != sorted(self.cfg.steady_lr_modules):  # the optimiser's groups follow from it
            raise ValueError(
                f"{path} was trained with steady_lr_modules {saved}, this run asks for "
                f"{self.cfg.steady_lr_modules}: resume with the same --steady-lr-modules"
            )
        self.opt.load_state_dict(extra["optimizer"])
        self.step = int(extra["step"])
        if self.dist.world == 1:
            set_rng_state(extra["rng"])
        else:  # each rank re-derives its own stream from the step
            torch.manual_seed(self.cfg.seed + self.dist.rank + 7919 * self.step)

    # ----------------------------------------------------------------- loop pieces
    def _set_presence_offset(self, value: float) -> None:
        """The presence warm-up of models with a discovery module (TrainConfig.presence_warmup); VRNN has none."""
        discovery = getattr(self.model, "discovery", None)
        if discovery is not None:
            discovery.presence_offset.fill_(value)

    def seq_len(self, step: int) -> int:
        return min(
            self.train_x.shape[0],
            curriculum_length(step, self.cfg.curriculum_start, self.cfg.curriculum_every, self.cfg.curriculum_max),
        )

    def batch(self, step: int) -> tuple[Tensor, np.ndarray]:
        idx = batch_indices(
            step, self.train_x.shape[1], self.cfg.batch_size, self.cfg.seed, self.dist.rank, self.dist.world
        )
        T = self.seq_len(step)
        x = torch.from_numpy(self.train_x[:T, idx]).to(self.device, non_blocking=True).float().div_(255.0)
        return x, idx

    def _actions(self, actions: np.ndarray | None, idx: np.ndarray | slice, T: int) -> dict[str, Tensor]:
        """The model's ``actions`` keyword for sequences ``idx`` cut to ``T`` frames ({} for a model without)."""
        if actions is None:
            return {}
        return {"actions": torch.as_tensor(actions[:T, idx], dtype=torch.long, device=self.device)}

    def train_step(self) -> dict[str, float]:
        x, idx = self.batch(self.step)
        for group in self.opt.param_groups:
            group["lr"] = learning_rate(self.step, self.cfg, group.get("steady", False))
        self._set_presence_offset(linear_decay(self.step, self.cfg.presence_warmup, self.cfg.presence_warmup_steps))
        module = self.ddp or self.model
        with mixed_precision(self.device, self.cfg.autocast):
            acts = self._actions(self.train_actions, idx, x.shape[0])
            out = module(x, k=self.model.cfg.k_particles, sample=not self.cfg.deterministic, **acts)
        if any_rank([not bool(torch.isfinite(out.loss))], self.dist, self.device)[0]:  # all ranks stop together
            where = f" (on some rank; rank {self.dist.rank} has {out.loss.item()})" if self.dist.world > 1 else ""
            raise TrainingDiverged(
                f"loss became non-finite{where} at step {self.step} on training sequences "
                f"{idx.tolist()[:8]}...; the last good checkpoint "
                f"{self.checkpoint_path} is kept. "
                "Lower --lr, or resume from the checkpoint with another --seed."
            )
        self.opt.zero_grad(set_to_none=True)
        out.loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip or math.inf)
        if not torch.isfinite(norm):
            raise TrainingDiverged(
                f"gradients became {norm.item()} at step {self.step} on training sequences "
                f"{idx.tolist()[:8]}...; the last good checkpoint {self.checkpoint_path} is kept."
            )
        self.opt.step()
        self.step += 1
        stats = {
            "iwae": out.iwae.mean().item(),
            "rec": out.rec.mean().item(),
            "kl": out.kl.mean().item(),
            "ess": out.ess.mean().item(),
            "T": float(x.shape[0]),
            "grad_norm": norm.item(),
            "lr": self.opt.param_groups[0]["lr"],
        }
        if out.count is not None:
            w = out.weights.unsqueeze(0)
            stats["count"] = (out.count * w).sum(-1).mean().item()
            stats["num_prop"] = (out.num_prop * w).sum(-1).mean().item()
            stats["num_disc"] = (out.num_disc * w).sum(-1).mean().item()
        return stats

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        self.model.eval()
        self._set_presence_offset(0.0)  # validate the model as it will be used (no warm-up)
        T = self.seq_len(self.step)
        tot: dict[str, float] = {}
        n = self.val_x.shape[1]
        last = None
        for s in range(0, n, self.cfg.val_batch_size):
            x = torch.from_numpy(self.val_x[:T, s : s + self.cfg.val_batch_size]).to(self.device).float().div_(255.0)
            acts = self._actions(self.val_actions, slice(s, s + self.cfg.val_batch_size), T)
            out = self.model(x, k=self.model.cfg.k_particles, **acts)
            b = x.shape[1]
            vals = {"iwae": out.iwae.sum().item(), "rec": out.rec.sum().item(), "kl": out.kl.sum().item()}
            if out.count is not None and self.val_counts is not None:
                truth = torch.as_tensor(self.val_counts[..., s : s + b], device=self.device)  # [S] or [T, S]
                truth = truth.view(1, b, 1) if truth.dim() == 1 else truth[:T].unsqueeze(-1)
                vals["count_acc"] = (
                    ((out.count == truth).float() * out.weights.unsqueeze(0)).sum(-1).mean(0).sum().item()
                )
            for k, v in vals.items():
                tot[k] = tot.get(k, 0.0) + v
            last = (x, out)
        self.model.train()
        stats = {k: v / n for k, v in tot.items()}
        if self.on_validate is not None and last is not None:
            self.on_validate(self, last)
        return stats

    def log_diagnostics(self) -> dict[str, float]:
        """:func:`~sqair_world.training.diagnostics.diagnose` on the last step's batch, written to TensorBoard
        (``diag/...``) and appended to ``<run_dir>/diagnostics.jsonl``. The run's random stream is left as it was,
        so a run with diagnostics trains exactly like one without."""
        x, idx = self.batch(self.step - 1)
        acts = self._actions(self.train_actions, idx, x.shape[0])
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            stats = {"step": self.step, "T": x.shape[0], **diagnose(self.model, x, actions=acts.get("actions"))}
        if self.writer is not None:
            for k, v in stats.items():
                if k != "step":
                    self.writer.add_scalar(f"diag/{k}", v, self.step)
        if self.dist.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with open(self.run_dir / "diagnostics.jsonl", "a") as f:
                f.write(json.dumps(stats) + "\n")
        return stats

    def describe(self) -> str:
        """One line on how this run computes: device (CPU model), recipe, precision, compilation, threads."""
        dev = self.device
        where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_model()
        precision = "bfloat16 autocast" if self.cfg.autocast else "float32"
        if self.cfg.fast_matmul:
            precision += " (matmuls in " + ("TF32)" if dev.type == "cuda" else "bfloat16)")
        n = torch.get_num_threads()
        threads = f", {n} thread{'s' if n > 1 else ''}" if dev.type == "cpu" else ""
        budget = [f"{self.cfg.steps} steps"] if self.cfg.steps < 10**9 else []
        budget += [f"{self.cfg.max_minutes:g} minutes"] if self.cfg.max_minutes else []
        decay = (
            f" x{self.cfg.lr_stage_decay:g} per curriculum stage"
            + (f" (not {', '.join(self.cfg.steady_lr_modules)})" if self.cfg.steady_lr_modules else "")
            if self.cfg.lr_stage_decay < 1 and self.cfg.recipe == "fast"
            else ""
        )
        return (
            f"{dev.type} ({where}), recipe {self.cfg.recipe}, lr {self.cfg.lr:g}{decay}, {precision}, "
            f"{'compiled' if self.cfg.compile else 'eager'}{threads}, budget {' or '.join(budget) or 'none'}"
        )

    # ----------------------------------------------------------------- the loop
    def fit(self) -> dict[str, float]:
        cfg = self.cfg
        if self.dist.main and cfg.tensorboard and self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / "tb"))
        deadline = time.monotonic() + 60 * cfg.max_minutes if cfg.max_minutes else math.inf
        total = cfg.steps if cfg.steps < 10**9 else None
        if self.dist.main:  # also without the bar: logs of background runs say how they computed
            print(f"{self.experiment}: {self.describe()}", file=sys.stderr)
        bar = tqdm(
            total=total,
            initial=self.step,
            disable=not (cfg.progress and self.dist.main),
            dynamic_ncols=True,
            desc=self.experiment,
            unit="it",
        )
        stats: dict[str, float] = {}
        self.interrupted = False
        previous_handler = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)  # `kill` checkpoints like Ctrl-C
        try:
            while self.step < cfg.steps and not any_rank([time.monotonic() >= deadline], self.dist, self.device)[0]:
                stats = self.train_step()
                bar.update(1)
                post = {"bound": f"{stats['iwae']:.1f}", "T": int(stats["T"])}
                if "count" in stats:
                    post["count"] = f"{stats['count']:.2f}"
                bar.set_postfix(post, refresh=False)
                if "num_prop" in stats and self.collapse_guard.update(self.step, stats["num_prop"]):
                    bar.write(f"step {self.step}: propagation has collapsed (see the warning above)")
                if self.writer is not None and self.step % cfg.log_every == 0:
                    for k, v in stats.items():
                        self.writer.add_scalar(f"train/{k}", v, self.step)
                if cfg.diagnostics_every and self.step % cfg.diagnostics_every == 0:
                    self.log_diagnostics()
                if self.step % cfg.val_every == 0:
                    val = self.validate()
                    self.history.append({"step": self.step, **val})
                    if self.writer is not None:
                        for k, v in val.items():
                            self.writer.add_scalar(f"val/{k}", v, self.step)
                    if self.dist.main:
                        bar.write(f"step {self.step}: " + ", ".join(f"val {k} {v:.4g}" for k, v in val.items()))
                if time.monotonic() - self._last_ckpt > 60 * cfg.checkpoint_minutes:
                    self.save()
        except KeyboardInterrupt:
            self.interrupted = True
            bar.write(f"interrupted at step {self.step}; writing {self.checkpoint_path}")
        finally:
            signal.signal(signal.SIGTERM, previous_handler)
            bar.close()
        self.save()
        if self.writer is not None:
            self.writer.flush()
        return stats


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


__all__ = [
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "tf_rmsprop",
    "batch_indices",
    "learning_rate",
    "select_device",
    "FORMAT",
]
