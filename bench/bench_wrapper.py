"""Steps per second of the SQAIR-wrapped Pac-Man against the raw ALE env, in the same run.

    python bench/bench_wrapper.py [--steps 500] [--repeats 3] [--checkpoint PATH] [--device auto]

Prints raw ALE throughput (frameskip 4, the usual setting), the preprocessed env alone, one wrapped env
(eager, and with ``compile=True``: torch.compile of the model's step, compiled before timing),
and 16 wrapped envs in the batched SB3 vector wrapper (cost per env-step), with their ratios. Each rate
is the best of ``--repeats`` timed runs, the configurations interleaved, so that load from other
processes on a shared machine distorts the ratios less.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch


def rate(step, n: int) -> float:
    """Calls of ``step`` per second over ``n`` calls, after one warm-up call."""
    step()
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    return n / (time.perf_counter() - t0)


def best_rates(steps: dict, n: dict, repeats: int) -> dict[str, float]:
    """Best rate of each named step function over ``repeats`` interleaved rounds."""
    best = {k: 0.0 for k in steps}
    for _ in range(repeats):
        for k, step in steps.items():
            best[k] = max(best[k], rate(step, n[k]))
    return best


def main() -> None:
    import ale_py

    import sqair_world  # noqa: F401
    from sqair_world.agents.vec_env import SQAIRVecEnv
    from sqair_world.envs.atari import make_maze_env
    from sqair_world.envs.factory import load_default_model

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--no-compile", action="store_true", help="skip the torch.compile'd wrapper (compiling takes ~1 min)"
    )
    p.add_argument(
        "--threads", type=int, default=2, help="torch's global CPU threads (the wrapper uses 1 for its calls)"
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    gym.register_envs(ale_py)
    rng = np.random.default_rng(0)
    n = 16

    def stepper(env):
        env.reset(seed=0)

        def step():
            if any(env.step(int(rng.integers(5)))[2:4]):
                env.reset()

        return step

    from stable_baselines3.common.vec_env import DummyVecEnv

    venv = SQAIRVecEnv(
        DummyVecEnv([lambda: make_maze_env("ALE/Pacman-v5", repeat_action_probability=0.0)] * n),
        load_default_model("Pacman", args.checkpoint),
        device=args.device,
    )
    venv.reset()
    steps = {
        "raw": stepper(gym.make("ALE/Pacman-v5", repeat_action_probability=0.0)),
        "pre": stepper(make_maze_env("ALE/Pacman-v5", repeat_action_probability=0.0)),
        "wrapped": stepper(
            gym.make(
                "SQAIR-Wrapped/Pacman", checkpoint=args.checkpoint, device=args.device, repeat_action_probability=0.0
            )
        ),
        "vec": lambda: venv.step(rng.integers(5, size=n)),
    }
    if not args.no_compile:
        compiled = stepper(
            gym.make(
                "SQAIR-Wrapped/Pacman",
                checkpoint=args.checkpoint,
                device=args.device,
                repeat_action_probability=0.0,
                compile=True,
            )
        )
        t0 = time.perf_counter()
        for _ in range(20):  # the first steps compile (first frame, then the tracking step)
            compiled()
        print(f"BENCH wrapped_pacman_compile_seconds {time.perf_counter() - t0:.1f} s")
        steps["compiled"] = compiled
    from sqair_world.envs.slots import inference

    model = venv.encoder.model
    x1 = torch.rand(1, *model.cfg.image_shape, device=venv.encoder.device)
    state = [None]

    def model_step():  # the model alone, as the wrapper calls it: the floor of the wrapped step time
        with inference(1, venv.encoder.device):
            state[0] = model.online_step(state[0], x1).state

    steps["model"] = model_step
    counts = {
        "model": args.steps,
        "raw": args.steps,
        "pre": args.steps,
        "wrapped": args.steps,
        "compiled": args.steps,
        "vec": max(10, args.steps // n),
    }
    r = best_rates(steps, counts, args.repeats)
    v_rate = r["vec"] * n
    print(f"BENCH raw_pacman_steps_per_s {r['raw']:.0f} steps/s")
    print(f"BENCH preprocessed_pacman_steps_per_s {r['pre']:.0f} steps/s")
    print(f"BENCH wrapped_pacman_steps_per_s {r['wrapped']:.0f} steps/s")
    print(f"BENCH model_online_step_1row_per_s {r['model']:.0f} steps/s")
    if "compiled" in r:
        print(f"BENCH wrapped_pacman_compiled_steps_per_s {r['compiled']:.0f} steps/s")
        print(f"BENCH wrapped_compiled_over_raw_ratio {r['compiled'] / r['raw']:.3f}")
    print(f"BENCH wrapped_over_raw_ratio {r['wrapped'] / r['raw']:.3f}")
    print(f"BENCH wrapped_pacman_16envs_steps_per_s {v_rate:.0f} env-steps/s")
    print(f"BENCH vector16_cost_per_env_over_single {r['wrapped'] / v_rate:.3f}")
    print(f"BENCH vector16_over_raw_ratio {v_rate / r['raw']:.3f}")


if __name__ == "__main__":
    main()
