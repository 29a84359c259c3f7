"""Train an SB3 PPO agent on SQAIR slot observations.

    python -m sqair_world.agents.train_ppo --env SQAIR-Wrapped/Pacman --timesteps 100000 --n-envs 8
    sqair-train-ppo --env SQAIR-Wrapped/MovingMNIST --timesteps 2000 --n-envs 4

The envs run batched through :class:`~sqair_world.agents.vec_env.SQAIRVecEnv` (one SQAIR call per step
for all envs); the policy is ``MultiInputPolicy`` with :class:`SlotExtractor`. ``--checkpoint`` picks
the SQAIR model (default: the one shipped for the game). The command line is generated (tyro) from
:class:`PPOArgs`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import tyro
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

from sqair_world.agents.extractors import SlotExtractor
from sqair_world.agents.vec_env import SQAIRVecEnv
from sqair_world.envs.atari import make_maze_env
from sqair_world.envs.factory import load_default_model


def make_agent(
    env_id: str,
    n_envs: int = 4,
    checkpoint: str | None = None,
    device: str = "auto",
    seed: int = 0,
    n_steps: int = 128,
    verbose: int = 0,
):
    """PPO on ``n_envs`` batched SQAIR-wrapped envs; returns (model, vec_env)."""
    if not env_id.startswith("SQAIR-Wrapped/"):
        raise ValueError(f"expected an id like SQAIR-Wrapped/Pacman, got {env_id!r}")
    game = env_id.split("/")[1]
    if game == "MovingMNIST":
        from sqair_world.envs.factory import make_moving_mnist_env as base
    else:

        def base():
            return make_maze_env(f"ALE/{game}-v5")

    venv = SQAIRVecEnv(
        make_vec_env(base, n_envs=n_envs, seed=seed), load_default_model(game, checkpoint), device=device
    )
    agent = PPO(
        "MultiInputPolicy",
        venv,
        n_steps=n_steps,
        batch_size=min(64, n_steps * n_envs),
        seed=seed,
        policy_kwargs=dict(features_extractor_class=SlotExtractor),
        verbose=verbose,
        device="cpu",
    )
    return agent, venv


@dataclass(frozen=True)
class PPOArgs:
    """Train an SB3 PPO agent on SQAIR slot observations (MultiInputPolicy with SlotExtractor)."""

    env: str = "SQAIR-Wrapped/Pacman"
    """SQAIR-wrapped Gymnasium id: SQAIR-Wrapped/Pacman, SQAIR-Wrapped/MsPacman or SQAIR-Wrapped/MovingMNIST."""
    timesteps: int = 100_000
    """Environment steps to train for, over all envs."""
    n_envs: int = 8
    """Envs run as one batch through SQAIR."""
    n_steps: int = 128
    """PPO rollout length per env."""
    checkpoint: str | None = None
    """SQAIR checkpoint (None: the one shipped for the game)."""
    device: str = "auto"
    """Device of the SQAIR model ('auto', 'cpu', 'cuda', ...); the policy trains on the CPU."""
    seed: int = 0
    """Seed of the envs and of PPO."""
    save: str | None = None
    """Where to save the agent (.zip)."""

    def __post_init__(self) -> None:
        for name in ("timesteps", "n_envs", "n_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (0 done, 2 bad env id or checkpoint). ``--help`` exits with status
    0, options tyro rejects with status 2 and its message."""
    args = tyro.cli(PPOArgs, args=argv, prog="python -m sqair_world.agents.train_ppo")
    try:
        agent, _ = make_agent(args.env, args.n_envs, args.checkpoint, args.device, args.seed, args.n_steps, verbose=1)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    agent.learn(args.timesteps, progress_bar=False)
    if args.save:
        agent.save(args.save)
        print(f"saved {args.save}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
