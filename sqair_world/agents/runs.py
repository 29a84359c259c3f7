"""A training run's folder: its settings, checkpoint, evaluation CSV, and the callbacks that write them.

``<run>/settings.json``: the run's options (and the hyper-parameters they resolve to); ``<run>/model.zip`` the
latest checkpoint (SB3's ``save``, with the agent steps done) and ``<run>/progress.json`` its steps and the
wall-clock seconds spent training so far (over all pieces of a resumed run); ``<run>/eval.csv`` one row per
evaluation and mode: ``steps, mode, episodes, mean, std, wall_s``; ``<run>/tb/`` TensorBoard.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv
from tqdm.auto import tqdm

EVAL_COLUMNS = ("steps", "mode", "episodes", "mean", "std", "wall_s")
MODES = {"deterministic": True, "stochastic": False}


class RunDir:
    """The files of one run (see the module docstring)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.settings = self.path / "settings.json"
        self.model = self.path / "model.zip"
        self.progress = self.path / "progress.json"
        self.eval_csv = self.path / "eval.csv"
        self.tensorboard = self.path / "tb"

    def has_run(self) -> bool:
        return self.settings.is_file() or self.model.is_file()

    def write_settings(self, settings: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.settings.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")

    def read_settings(self) -> dict[str, Any]:
        return json.loads(self.settings.read_text())

    def check_resumable(self, options: dict[str, Any]) -> None:
        """Refuse to resume a run that has no checkpoint, or whose saved options differ from ``options``."""
        if not (self.settings.is_file() and self.model.is_file()):
            raise FileNotFoundError(
                f"nothing to resume in {self.path}: it has no settings.json and model.zip (start the run without "
                "--resume)"
            )
        saved = self.read_settings()["options"]
        diff = sorted(k for k in set(saved) | set(options) if saved.get(k) != options.get(k))
        if diff:
            detail = "; ".join(f"{k}: saved {saved.get(k)!r}, given {options.get(k)!r}" for k in diff)
            raise ValueError(
                f"the run in {self.path} was made with other settings ({detail}); resume with the saved settings "
                "or start another run with --out"
            )

    def read_progress(self) -> dict[str, float]:
        return json.loads(self.progress.read_text()) if self.progress.is_file() else {"steps": 0, "wall_s": 0.0}

    def save_checkpoint(self, model: BaseAlgorithm, wall_s: float) -> None:
        """Write the model and then its progress, each atomically (an interrupted save leaves the previous one)."""
        tmp = self.path / "model.tmp.zip"
        model.save(tmp)
        os.replace(tmp, self.model)
        tmp_json = self.path / "progress.tmp.json"
        tmp_json.write_text(json.dumps({"steps": int(model.num_timesteps), "wall_s": round(wall_s, 1)}) + "\n")
        os.replace(tmp_json, self.progress)

    def eval_rows(self) -> list[dict[str, Any]]:
        if not self.eval_csv.is_file():
            return []
        with self.eval_csv.open() as f:
            return list(csv.DictReader(f))

    def truncate_eval(self, steps: int) -> None:
        """Drop evaluation rows after ``steps`` (written after the checkpoint a resumed run starts from)."""
        rows = [r for r in self.eval_rows() if int(r["steps"]) <= steps]
        with self.eval_csv.open("w", newline="") as f:
            writer = csv.DictWriter(f, EVAL_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)

    def append_eval(self, row: dict[str, Any]) -> None:
        new = not self.eval_csv.is_file()
        with self.eval_csv.open("a", newline="") as f:
            writer = csv.DictWriter(f, EVAL_COLUMNS)
            if new:
                writer.writeheader()
            writer.writerow(row)


def evaluate(model: BaseAlgorithm, env: VecEnv, episodes: int) -> dict[str, tuple[float, float]]:
    """Mean and std of the episode return (the Monitor's: game score over all lives) in both modes."""
    out = {}
    for mode, deterministic in MODES.items():
        returns, _ = evaluate_policy(model, env, episodes, deterministic=deterministic, return_episode_rewards=True)
        out[mode] = (float(np.mean(returns)), float(np.std(returns)))
    return out


class RunCallback(BaseCallback):
    """Periodic evaluation (both modes, ``eval_episodes`` each, every ``eval_freq`` agent steps), checkpoints every
    ``checkpoint_freq`` agent steps, and a tqdm progress bar up to ``budget``. The wall clock counts training and
    evaluation time, added to ``wall_before`` (earlier pieces of the run). Training stops early once ``stop_at``
    agent steps are done."""

    def __init__(
        self,
        run: RunDir,
        eval_env: Callable[[], VecEnv],
        budget: int,
        eval_freq: int,
        eval_episodes: int,
        checkpoint_freq: int,
        wall_before: float = 0.0,
        progress: bool = True,
        stop_at: int | None = None,
    ) -> None:
        super().__init__()
        self.run, self.make_eval_env, self.budget = run, eval_env, budget
        self.eval_freq, self.eval_episodes, self.checkpoint_freq = eval_freq, eval_episodes, checkpoint_freq
        self.wall_before, self.show_progress, self.stop_at = wall_before, progress, stop_at
        self._env: VecEnv | None = None
        self._start = time.perf_counter()
        self._bar: tqdm | None = None

    def wall_s(self) -> float:
        return self.wall_before + time.perf_counter() - self._start

    def _next(self, every: int) -> int:
        return (self.num_timesteps // every + 1) * every

    def evaluate(self, episodes: int) -> None:
        if self._env is None:
            self._env = self.make_eval_env()
        for mode, (mean, std) in evaluate(self.model, self._env, episodes).items():
            row = dict(steps=self.num_timesteps, mode=mode, episodes=episodes, mean=round(mean, 2))
            self.run.append_eval(dict(row, std=round(std, 2), wall_s=round(self.wall_s(), 1)))
            self.logger.record(f"eval/{mode}_return", mean)

    def checkpoint(self) -> None:
        self.run.save_checkpoint(self.model, self.wall_s())

    def _on_training_start(self) -> None:
        self._start = time.perf_counter()
        self._next_eval, self._next_ckpt = self._next(self.eval_freq), self._next(self.checkpoint_freq)
        if self.num_timesteps == 0 and not self.run.eval_rows():
            self.evaluate(self.eval_episodes)  # the untrained policy: where the curve starts
        if self.show_progress:
            self._bar = tqdm(total=self.budget, initial=self.num_timesteps, unit="step", dynamic_ncols=True)

    def _on_step(self) -> bool:
        n = self.num_timesteps
        if self._bar is not None:
            self._bar.update(n - self._bar.n)
        if n >= self._next_eval:
            if n < self.budget:  # the final evaluation, with more episodes, covers the last step
                self.evaluate(self.eval_episodes)
            self._next_eval = self._next(self.eval_freq)
        if n >= self._next_ckpt:
            self.checkpoint()
            self._next_ckpt = self._next(self.checkpoint_freq)
        return self.stop_at is None or n < self.stop_at  # False ends learn(); the trainer then saves

    def _on_training_end(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
