"""Train an SB3 agent (PPO, A2C or DQN) on SQAIR slots, oracle slots or pixels of a maze game.

    python -m sqair_world.agents.train --env SQAIR-Wrapped/MsPacman --algo ppo --obs slots --timesteps 1000000 --seed 0
    sqair-train --env MsPacman --obs pixels --timesteps 1000000 --seed 1
    sqair-train --env MsPacman --obs pixels --timesteps 1000000 --seed 1 --resume   # continue it to its budget

``--env`` names the game (``SQAIR-Wrapped/<Game>``, ``SQAIR-Oracle/<Game>``, ``ALE/<Game>-v5`` or ``<Game>``);
``--obs`` picks what the agent sees (:mod:`sqair_world.agents.envs`): ``slots`` and ``oracle`` train
``MultiInputPolicy`` with a slot extractor (:mod:`sqair_world.agents.extractors`, Deep Sets or attention, with the
motion feature of :mod:`sqair_world.agents.motion`), ``pixels`` ``CnnPolicy`` on SB3's Atari preprocessing. The
hyper-parameters default to rl-zoo's Atari settings of the algorithm (:data:`DEFAULTS`) for every observation type.

A run lives in ``runs/agents/<game>-<obs>-<algo>-s<seed>/`` (``--out``, :class:`~sqair_world.agents.runs.RunDir`):
``settings.json``, ``model.zip`` (checkpoints), ``eval.csv`` (evaluation returns, both modes), ``tb/``
(TensorBoard). ``--resume`` loads the checkpoint and trains to the saved budget; it refuses other settings. A
resumed run is not bit-identical to an uninterrupted one (fresh env states and RNG); DQN's replay buffer is not
saved (it refills after a resume).
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import torch
import tyro
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike
from stable_baselines3.common.utils import set_random_seed

from sqair_world.agents.envs import EnvSettings, game_of, make_vec_env
from sqair_world.agents.extractors import EXTRACTORS
from sqair_world.agents.runs import RunCallback, RunDir
from sqair_world.envs.factory import load_default_model

ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C, "dqn": DQN}

#: rl-zoo's Atari hyper-parameters (hyperparams/{ppo,a2c,dqn}.yml); ``None`` options of TrainArgs take these
DEFAULTS: dict[str, dict[str, Any]] = {
    "ppo": dict(n_steps=128, batch_size=256, n_epochs=4, learning_rate=2.5e-4, clip_range=0.1, vf_coef=0.5),
    "a2c": dict(n_steps=5, learning_rate=7e-4, vf_coef=0.25),
    "dqn": dict(batch_size=32, learning_rate=1e-4),
}

#: options that do not change what a run computes: a resumed run may give other values
RUN_CONTROL = ("resume", "stop_at", "progress", "verbose", "device", "agent_device", "num_threads", "out")


class Linear:
    """``initial * progress_remaining``: SB3's schedule of a value decayed linearly to 0 (picklable, unlike a
    lambda in a saved model's settings)."""

    def __init__(self, initial: float) -> None:
        self.initial = initial

    def __call__(self, progress_remaining: float) -> float:
        return self.initial * progress_remaining


@dataclass(frozen=True)
class TrainArgs:
    """Train an SB3 agent on SQAIR slots, oracle slots or pixels of a maze game."""

    env: str = "SQAIR-Wrapped/MsPacman"
    """The game: SQAIR-Wrapped/<Game>, SQAIR-Oracle/<Game>, ALE/<Game>-v5 or <Game> (Pacman, MsPacman;
    MovingMNIST with --obs slots)."""
    obs: Literal["slots", "oracle", "pixels"] = "slots"
    """What the agent sees: SQAIR's slots, oracle slots from the RAM, or SB3's Atari pixels (84x84 grey, 4 frames)."""
    algo: Literal["ppo", "a2c", "dqn"] = "ppo"
    """The SB3 algorithm."""
    timesteps: int = 1_000_000
    """The run's budget of agent steps (over all envs; one step is frame_skip frames)."""
    seed: int = 0
    """Seed of the envs (seed, seed + 1, ...; evaluation seed + 10000) and of the agent."""
    n_envs: int = 8
    """Envs stepped together (the SQAIR envs in one batched model call)."""
    n_steps: int | None = None
    """Rollout length per env (PPO 128, A2C 5)."""
    batch_size: int | None = None
    """Minibatch size (PPO 256, DQN 32)."""
    n_epochs: int = 4
    """PPO epochs per rollout."""
    learning_rate: float | None = None
    """Learning rate (PPO 2.5e-4, A2C 7e-4, DQN 1e-4)."""
    linear_decay: bool = True
    """Decay PPO's and A2C's learning rate (and PPO's clip range) linearly to 0 over the budget."""
    clip_range: float | None = None
    """PPO clip range (0.1)."""
    ent_coef: float = 0.01
    """Entropy bonus (PPO, A2C)."""
    vf_coef: float | None = None
    """Value loss weight (PPO 0.5, A2C 0.25)."""
    gamma: float = 0.99
    """Discount."""
    buffer_size: int = 100_000
    """DQN replay buffer (transitions)."""
    learning_starts: int = 100_000
    """DQN steps before learning starts."""
    extractor: Literal["deepsets", "attention"] = "deepsets"
    """Slot extractor (slots, oracle): masked Deep Sets or masked self-attention."""
    hidden: int = 64
    """Width of the slot extractor."""
    motion: bool = True
    """Give each slot its displacement since the previous step, matched by track id (slots, oracle)."""
    imagine_horizon: int = 0
    """Steps of SQAIR's imagined future slots given to the agent (slots; 0: none)."""
    frame_skip: int = 4
    """Frames per agent step (the action repeated)."""
    pixel_pool: int = 2
    """Pixels: frames max-pooled per step (2: SB3's AtariWrapper; 4: all skipped frames)."""
    clip_reward: bool = True
    """Train on the sign of the reward (evaluation reports the game score)."""
    life_loss: bool = True
    """End a training episode at a life loss (evaluation plays all lives)."""
    max_frames: int = 108_000
    """Episode cap in frames (the ALE's v5 default)."""
    checkpoint: str | None = None
    """SQAIR checkpoint of --obs slots (None: the one shipped for the game)."""
    eval_freq: int = 50_000
    """Agent steps between evaluations (also one at step 0)."""
    eval_episodes: int = 10
    """Episodes per periodic evaluation, per mode (deterministic and stochastic)."""
    final_eval_episodes: int = 30
    """Episodes of the evaluation at the end of the budget, per mode."""
    checkpoint_freq: int = 50_000
    """Agent steps between checkpoints (and one at the end)."""
    out: str | None = None
    """Run folder (None: runs/agents/<game>-<obs>-<algo>-s<seed>)."""
    resume: bool = False
    """Continue the run in --out from its checkpoint to its budget (the other options must match the saved ones)."""
    stop_at: int | None = None
    """Stop (with a checkpoint) once this many agent steps are done, to run a long budget in pieces with --resume."""
    device: str = "auto"
    """Device of the SQAIR model ('auto', 'cpu', 'cuda')."""
    agent_device: str = "cpu"
    """Device of the agent's networks."""
    num_threads: int | None = None
    """Torch CPU threads (None: torch's default, all cores); 1 to run two jobs side by side on 2 cores."""
    progress: bool = True
    """Show a progress bar."""
    verbose: int = 0
    """SB3's verbosity (0, 1, 2)."""

    def __post_init__(self) -> None:
        if self.obs not in ("slots", "oracle", "pixels"):
            raise ValueError(f"obs must be one of ['slots', 'oracle', 'pixels'], got {self.obs!r}")
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {list(ALGOS)}, got {self.algo!r}")
        if self.extractor not in EXTRACTORS:
            raise ValueError(f"extractor must be one of {list(EXTRACTORS)}, got {self.extractor!r}")
        positive = ("timesteps", "n_envs", "n_epochs", "hidden", "eval_freq", "eval_episodes", "final_eval_episodes")
        for name in (*positive, "checkpoint_freq", "frame_skip", "buffer_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("n_steps", "batch_size", "learning_rate", "clip_range", "vf_coef"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0 (or unset for rl-zoo's default), got {value}")
        for name in ("n_steps", "batch_size", "learning_rate", "clip_range", "vf_coef"):
            if getattr(self, name) is not None and name not in DEFAULTS[self.algo]:
                raise ValueError(f"{name} does not apply to {self.algo} (it takes {sorted(DEFAULTS[self.algo])})")
        if self.stop_at is not None and self.stop_at < 1:
            raise ValueError(f"stop_at must be >= 1 (agent steps) or unset, got {self.stop_at}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1 or unset (torch's default), got {self.num_threads}")
        if self.learning_starts < 0:
            raise ValueError(f"learning_starts must be >= 0, got {self.learning_starts}")

    @property
    def game(self) -> str:
        return game_of(self.env)

    def env_settings(self) -> EnvSettings:
        return EnvSettings(
            game=self.game,
            obs=self.obs,
            frame_skip=self.frame_skip,
            pixel_pool=self.pixel_pool,
            clip_reward=self.clip_reward,
            life_loss=self.life_loss,
            motion=self.motion,
            imagine_horizon=self.imagine_horizon,
            max_frames=self.max_frames,
            device=self.device,
        )

    def run_dir(self) -> RunDir:
        return RunDir(self.out or Path("runs") / "agents" / f"{self.game.lower()}-{self.obs}-{self.algo}-s{self.seed}")

    def options(self) -> dict[str, Any]:
        """The options a resumed run must share."""
        return {k: v for k, v in asdict(self).items() if k not in RUN_CONTROL}

    def hyperparameters(self) -> dict[str, Any]:
        """The algorithm's keyword arguments: rl-zoo's defaults, overridden by the options given."""
        hp = dict(DEFAULTS[self.algo])
        given = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in hp:
            if given.get(key) is not None:
                hp[key] = given[key]
        hp["gamma"] = self.gamma
        if self.algo in ("ppo", "a2c"):
            hp["ent_coef"] = self.ent_coef
        if self.algo == "ppo":
            hp["n_epochs"] = self.n_epochs
        if self.algo == "dqn":
            hp.update(
                buffer_size=self.buffer_size,
                learning_starts=self.learning_starts,
                target_update_interval=1000,
                train_freq=4,
                gradient_steps=1,
                exploration_fraction=0.1,
                exploration_final_eps=0.01,
            )
        return hp


def policy_kwargs(args: TrainArgs) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if args.obs != "pixels":
        kwargs.update(
            features_extractor_class=EXTRACTORS[args.extractor], features_extractor_kwargs={"hidden": args.hidden}
        )
    if args.algo == "a2c":  # rl-zoo's A2C on Atari: TF-like RMSprop
        kwargs.update(optimizer_class=RMSpropTFLike, optimizer_kwargs={"eps": 1e-5})
    return kwargs


def build_agent(args: TrainArgs, venv, tensorboard_log: str | None = None) -> BaseAlgorithm:
    """A fresh agent of ``args`` on ``venv``."""
    hp = args.hyperparameters()
    if args.linear_decay and args.algo in ("ppo", "a2c"):
        hp["learning_rate"] = Linear(hp["learning_rate"])
        if "clip_range" in hp:
            hp["clip_range"] = Linear(hp["clip_range"])
    policy = "CnnPolicy" if args.obs == "pixels" else "MultiInputPolicy"
    return ALGOS[args.algo](
        policy,
        venv,
        seed=args.seed,
        policy_kwargs=policy_kwargs(args),
        tensorboard_log=tensorboard_log,
        verbose=args.verbose,
        device=args.agent_device,
        **hp,
    )


class Trainer:
    """Builds the envs and the agent of ``args`` (fresh, or from the run's checkpoint with ``resume``) and trains
    to the budget with evaluation and checkpoints."""

    def __init__(self, args: TrainArgs, command: str = "") -> None:
        self.args, self.run = args, args.run_dir()
        settings = args.env_settings()  # bad option combinations raise here, before anything is built
        if args.resume:
            self.run.check_resumable(args.options())
        elif self.run.has_run():
            raise ValueError(f"{self.run.path} already holds a run: pass --resume to continue it, or another --out")
        model = load_default_model(args.game, args.checkpoint) if args.obs == "slots" else None
        set_random_seed(args.seed)
        self.venv = make_vec_env(settings, args.n_envs, args.seed, training=True, model=model)
        n_eval = min(args.n_envs, args.eval_episodes)
        self.make_eval_env = lambda: make_vec_env(settings, n_eval, args.seed + 10_000, training=False, model=model)
        tb = str(self.run.tensorboard)
        if args.resume:
            self.agent = ALGOS[args.algo].load(self.run.model, env=self.venv, device=args.agent_device)
            self.agent.tensorboard_log = tb
            self.run.truncate_eval(self.agent.num_timesteps)
        else:
            self.agent = build_agent(args, self.venv, tb)
            self.run.write_settings(
                {
                    "options": args.options(),
                    "hyperparameters": args.hyperparameters(),
                    "command": command,
                    "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                }
            )

    def train(self) -> int:
        """Train to the budget; returns the agent steps done."""
        args, agent = self.args, self.agent
        remaining = args.timesteps - agent.num_timesteps
        wall = self.run.read_progress()["wall_s"] if args.resume else 0.0
        callback = RunCallback(
            self.run,
            self.make_eval_env,
            args.timesteps,
            args.eval_freq,
            args.eval_episodes,
            args.checkpoint_freq,
            wall_before=wall,
            progress=args.progress,
            stop_at=args.stop_at,
        )
        try:
            if remaining > 0:
                agent.learn(
                    remaining,
                    callback=callback,
                    reset_num_timesteps=not args.resume,
                    tb_log_name="run",
                    progress_bar=False,
                )
                callback.checkpoint()
                if agent.num_timesteps >= args.timesteps:
                    callback.evaluate(args.final_eval_episodes)
        finally:
            callback.close()
            self.venv.close()
        return int(agent.num_timesteps)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (0 done, 2 bad settings, env or checkpoint). ``--help`` exits with
    status 0, options tyro rejects with status 2 and its message."""
    args = tyro.cli(TrainArgs, args=argv, prog="python -m sqair_world.agents.train")
    if args.num_threads is not None:
        torch.set_num_threads(args.num_threads)
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        trainer = Trainer(args, "python -m sqair_world.agents.train " + shlex.join(argv))
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    before = trainer.agent.num_timesteps
    steps = trainer.train()
    if steps == before:
        print(f"{trainer.run.path}: already at its budget of {args.timesteps} steps")
    elif steps < args.timesteps:
        print(f"{trainer.run.path}: stopped at {steps} of {args.timesteps} agent steps; continue with --resume")
    else:
        print(f"{trainer.run.path}: {steps} agent steps; evaluation returns in {trainer.run.eval_csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
