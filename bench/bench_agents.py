"""PPO training throughput (agent steps per second, rollout plus update) of the three observation types, in one run.

    python bench/bench_agents.py [--game MsPacman] [--steps 4096] [--n-envs 8] [--obs pixels oracle slots]

Each type trains rl-zoo's Atari PPO (``sqair_world.agents.train``'s defaults; n_steps 128, so 1024 steps per
rollout with 8 envs) for ``--steps`` agent steps after one warm-up rollout, and its envs alone are stepped with
random actions for as many steps: a slot agent's policy is tiny, so its training rate should be close to its envs'.
Prints ``BENCH <name> <value> <unit>`` lines.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch


def env_rate(venv, steps: int) -> float:
    """Agent steps per second of ``venv`` under random actions."""
    venv.reset()
    actions = lambda: np.array([venv.action_space.sample() for _ in range(venv.num_envs)])
    t0 = time.perf_counter()
    for _ in range(max(1, steps // venv.num_envs)):
        venv.step(actions())
    return steps / (time.perf_counter() - t0)


def main() -> None:
    from sqair_world.agents.envs import make_vec_env
    from sqair_world.agents.train import TrainArgs, build_agent
    from sqair_world.envs.factory import load_default_model

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--game", default="MsPacman", choices=["Pacman", "MsPacman"])
    p.add_argument("--steps", type=int, default=4096, help="timed agent steps per observation type")
    p.add_argument("--n-envs", type=int, default=8)
    p.add_argument("--obs", nargs="+", default=["pixels", "oracle", "slots"], choices=["pixels", "oracle", "slots"])
    p.add_argument("--extractor", default="deepsets", choices=["deepsets", "attention"])
    p.add_argument("--device", default="auto", help="device of the SQAIR model")
    p.add_argument("--agent-device", default="cpu", help="device of the agent's networks")
    p.add_argument("--threads", type=int, default=1, help="torch's CPU threads")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for obs in args.obs:
        with tempfile.TemporaryDirectory() as tmp:
            run = TrainArgs(
                env=args.game,
                obs=obs,
                n_envs=args.n_envs,
                extractor=args.extractor,
                device=args.device,
                agent_device=args.agent_device,
                out=tmp,
            )
            model = load_default_model(args.game) if obs == "slots" else None
            venv = make_vec_env(run.env_settings(), args.n_envs, seed=0, model=model)
            name = f"{obs}_{args.game.lower()}_{args.n_envs}envs"
            print(f"BENCH env_{name}_steps_per_s {env_rate(venv, args.steps):.0f} steps/s", flush=True)
            agent = build_agent(run, venv)
            rollout = agent.n_steps * args.n_envs
            agent.learn(rollout)  # warm-up: first allocations and env resets
            t0 = time.perf_counter()
            agent.learn(args.steps, reset_num_timesteps=False)
            done = agent.num_timesteps - rollout
            print(f"BENCH ppo_{name}_steps_per_s {done / (time.perf_counter() - t0):.0f} steps/s", flush=True)
            venv.close()


if __name__ == "__main__":
    main()
