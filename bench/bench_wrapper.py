"""Steps per second of the SQAIR-wrapped Pac-Man against the raw ALE env, in the same run.

    python bench/bench_wrapper.py [--steps 500] [--checkpoint PATH] [--device auto]

Prints raw ALE throughput (frameskip 4, the usual setting), the preprocessed env alone, one wrapped env,
and 16 wrapped envs in the batched SB3 vector wrapper (cost per env-step), with their ratios.
"""
from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch


def rate(step, n: int) -> float:
    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    return n / (time.perf_counter() - t0)


def main() -> None:
    import ale_py

    import sqair_world  # noqa: F401
    from sqair_world.envs.factory import load_default_model
    from sqair_world.wrappers.atari import make_maze_env
    from sqair_world.wrappers.vector import SQAIRVecEnv

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    gym.register_envs(ale_py)
    rng = np.random.default_rng(0)

    raw = gym.make("ALE/Pacman-v5", repeat_action_probability=0.0)
    raw.reset(seed=0)

    def raw_step():
        if any(raw.step(int(rng.integers(5)))[2:4]):
            raw.reset()
    raw_rate = rate(raw_step, args.steps)
    print(f"BENCH raw_pacman_steps_per_s {raw_rate:.0f} steps/s")

    pre = make_maze_env("ALE/Pacman-v5", repeat_action_probability=0.0)
    pre.reset(seed=0)

    def pre_step():
        if any(pre.step(int(rng.integers(5)))[2:4]):
            pre.reset()
    print(f"BENCH preprocessed_pacman_steps_per_s {rate(pre_step, args.steps):.0f} steps/s")

    wrapped = gym.make("SQAIR-Wrapped/Pacman", checkpoint=args.checkpoint, device=args.device, repeat_action_probability=0.0)
    wrapped.reset(seed=0)

    def wrapped_step():
        if any(wrapped.step(int(rng.integers(5)))[2:4]):
            wrapped.reset()
    w_rate = rate(wrapped_step, args.steps)
    print(f"BENCH wrapped_pacman_steps_per_s {w_rate:.0f} steps/s")
    print(f"BENCH wrapped_over_raw_ratio {w_rate / raw_rate:.3f}")

    from stable_baselines3.common.vec_env import DummyVecEnv

    n = 16
    venv = SQAIRVecEnv(DummyVecEnv([lambda: make_maze_env("ALE/Pacman-v5", repeat_action_probability=0.0)] * n),
                       load_default_model("Pacman", args.checkpoint), device=args.device)
    venv.reset()
    v_rate = rate(lambda: venv.step(rng.integers(5, size=n)), max(10, args.steps // n)) * n
    print(f"BENCH wrapped_pacman_16envs_steps_per_s {v_rate:.0f} env-steps/s")
    print(f"BENCH vector16_cost_per_env_over_single {w_rate / v_rate:.3f}")
    print(f"BENCH vector16_over_raw_ratio {v_rate / raw_rate:.3f}")


if __name__ == "__main__":
    main()
