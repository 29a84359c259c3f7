"""Generation throughput of moving multi-MNIST (the authors' 60,000 training sequences, no cache).

python bench/bench_moving_mnist.py [--num-sequences 60000]
"""

from __future__ import annotations

import argparse
import time

from sqair_world.data import MovingMNISTConfig, load_embedded_mnist, make_moving_mnist


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--num-sequences", type=int, default=60000)
    args = p.parse_args(argv)
    images, labels = load_embedded_mnist("train")
    t0, c0 = time.perf_counter(), time.process_time()
    data = make_moving_mnist(images, labels, args.num_sequences, MovingMNISTConfig(), seed=0)
    sec, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = len(data)
    size = f"{n // 1000}k" if n % 1000 == 0 else str(n)
    print(f"BENCH moving_mnist_{size}_seconds {sec:.2f} s")
    print(f"BENCH moving_mnist_sequences_per_s {n / sec:.0f} seq/s")
    print(f"BENCH moving_mnist_{size}_cpu_seconds {cpu:.2f} s")  # process CPU time: less sensitive to a busy machine


if __name__ == "__main__":
    main()
