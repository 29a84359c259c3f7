"""Cost of imagination against tracking, same envs, same run (issue #22).

    python bench/bench_imagination.py [--checkpoint PATH] [--envs 16] [--samples 8] [--horizon 5] [--repeats 5]

One batched call ``SlotEncoder.imagine(H, S, actions=...)`` for all envs (E envs x S samples x H steps; the given
actions when the checkpoint is action-conditioned), beside one tracking step (``encode``) of the same E envs on
recorded Pac-Man frames. Each figure is the best over ``--repeats`` interleaved rounds of the median of 5 calls.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from sqair_world.envs.atari import collect_sequences
from sqair_world.envs.slots import SlotEncoder
from sqair_world.training.checkpoints import load_model
from sqair_world.training.trainer import cpu_model


def median_ms(call, n: int = 5) -> float:
    call()  # warm-up
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default=None, help="default: the shipped Pac-Man model")
    p.add_argument("--envs", type=int, default=16)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--horizon", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    from sqair_world.envs.factory import CHECKPOINT_DIR, DEFAULT_CHECKPOINTS

    model = load_model(args.checkpoint or CHECKPOINT_DIR / DEFAULT_CHECKPOINTS["Pacman"])
    E, S, H = args.envs, args.samples, args.horizon
    frames, actions = collect_sequences("ALE/Pacman-v5", E, 12, seed=3, with_actions=True)
    frames = frames.transpose(0, 1, 3, 4, 2)  # [T, E, H, W, C]
    enc = SlotEncoder(model, E, device=args.device, threads=None)
    for t in range(10):  # a tracker state with objects in it
        enc.encode(frames[t], actions=actions[t - 1] if t else None)
    state = enc.state
    acts = np.random.default_rng(0).integers(0, max(1, model.cfg.num_actions), (E, H))
    acts = acts if model.cfg.num_actions else None

    def track():
        enc.state = state
        enc.encode(frames[10], actions=actions[9])

    def imagine():
        enc.imagine(H, S, actions=acts)

    best = {"track": float("inf"), "imagine": float("inf")}
    for _ in range(args.repeats):
        best["track"] = min(best["track"], median_ms(track))
        best["imagine"] = min(best["imagine"], median_ms(imagine))
    print(f"# {cpu_model()}, torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    print(f"# action-conditioned: {bool(model.cfg.num_actions)}")
    print(f"BENCH tracking_step_{E}envs {best['track']:.2f} ms")
    print(f"BENCH imagine_{E}envs_{S}samples_H{H} {best['imagine']:.2f} ms")
    print(f"BENCH imagine_over_tracking {best['imagine'] / best['track']:.2f} x")


if __name__ == "__main__":
    main()
