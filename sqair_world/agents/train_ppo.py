"""Train an SB3 PPO agent on SQAIR slot observations.

    python -m sqair_world.agents.train_ppo --env SQAIR-Wrapped/Pacman --timesteps 100000 --n-envs 8

The envs run batched through :class:`~sqair_world.agents.vec_env.SQAIRVecEnv` (one SQAIR call per step
for all envs); the policy is ``MultiInputPolicy`` with :class:`SlotExtractor`. ``--checkpoint`` picks
the SQAIR model (default: the one shipped for the game).
"""

from __future__ import annotations

import argparse
import sys


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
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from sqair_world.agents.extractors import SlotExtractor
    from sqair_world.agents.vec_env import SQAIRVecEnv
    from sqair_world.envs.atari import make_maze_env
    from sqair_world.envs.factory import load_default_model

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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m sqair_world.agents.train_ppo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--env", default="SQAIR-Wrapped/Pacman")
    p.add_argument("--timesteps", type=int, default=100_000)
    p.add_argument("--n-envs", type=int, default=8)
    p.add_argument("--n-steps", type=int, default=128, help="PPO rollout length per env")
    p.add_argument("--checkpoint", default=None, help="SQAIR checkpoint (default: the shipped one)")
    p.add_argument("--device", default="auto", help="device of the SQAIR model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", default=None, help="where to save the agent (.zip)")
    args = p.parse_args(argv)
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
