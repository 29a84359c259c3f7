"""Generation throughput of moving multi-MNIST (the authors' 60,000 training sequences, no cache).

    python bench/bench_moving_mnist.py [--num-sequences 60000]
"""
from __future__ import annotations

import argparse
import time

from sqair_world.data import MovingMNISTConfig, load_embedded_mnist, make_moving_mnist


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--num-sequences", type=int, default=60000)
    args = p.parse_args()
    images, labels = load_embedded_mnist("train")
    t0 = time.perf_counter()
    data = make_moving_mnist(images, labels, args.num_sequences, MovingMNISTConfig(), seed=0)
    sec = time.perf_counter() - t0
    n = len(data)
    print(f"BENCH moving_mnist_{n // 1000}k_seconds {sec:.2f} s")
    print(f"BENCH moving_mnist_sequences_per_s {n / sec:.0f} seq/s")


if __name__ == "__main__":
    main()
