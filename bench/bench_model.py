"""Training-iteration speed of the models at the paper's setting, against this machine's matmul floor.

    python bench/bench_model.py [--models mlp-sqair mlp-sqair-grid mlp-air ...] [--iters 5] [--threads 2]
                                [--modes eager eager-dense compile compile-bf16 ...] [--workloads init trained]

Prints, per model, workload and mode, ``BENCH <model>[_trained]_train_iter_seconds_<mode>``, the FLOPs that mode
computes per iteration (counted with ``torch.utils.flop_counter.FlopCounterMode``) and
``BENCH ..._train_iter_floor_ratio_<mode>`` = measured time / (FLOPs / fp32 matmul throughput). The throughput is
the best of several 2048x2048 ``torch.mm`` timings at the start and at the end of the run (a busy moment only
lowers a timing, and a lower throughput would flatter the ratios).

Workloads (batch 32, K 5, T 10, 50x50):

- ``init``: a freshly initialised model on uniform-noise frames, where nearly every slot is taken (the
  workload of earlier sessions' figures);
- ``mnist``: a freshly initialised model on moving-MNIST sequences of the embedded digits (0-2 per sequence): the
  workload of a run's first steps, where grid and sequential discovery differ (``mlp-sqair-grid`` is MLP-SQAIR
  with the grid discovery of ``mnist-mlp-sqair-grid``);
- ``trained`` (MLP-SQAIR only): the shipped moving-MNIST checkpoint on moving-MNIST sequences of the embedded
  digits, 0-2 digits per sequence: the workload of a training run past its first minutes.

Modes (sqair_world/speed.py): ``eager`` plain PyTorch, slot steps computed on the rows where the slot exists
(``model.subsets``); ``eager-dense`` the same with every row computed (``speed.row_compaction(None)``), the side-by-side
baseline of that change; ``autocast`` bfloat16 autocast of the networks (TrainConfig.autocast); ``compile``
torch.compile of the per-frame step (TrainConfig.compile; static shapes, so every row is computed);
``compile-autocast`` both; ``compile-bf16`` compiled with float32 matmuls computed in bfloat16
(TrainConfig.fast_matmul). Denormals are flushed in all modes, as the trainer does. The three bfloat16 modes are
skipped on CPUs without native bfloat16 (AVX512-BF16/AMX), where they run slower than float32 (autocast training
7-10 times slower). ``BENCH <model>[_trained]_train_iter_seconds`` is the fastest mode.

Also, with ``mlp-air`` on the CPU: the AIR baseline at the setting of Pyro's AIR example (batch 64, 3 steps, K=1,
one noise frame), ``BENCH mlp_air_batch64_3steps_seconds``, eager. When pyro-ppl is installed
(``pip install -e '.[bench]'``), the same run times an AIR written in Pyro at that example's settings
(``bench/pyro_air.py``: one ``SVI`` + ``TraceGraph_ELBO`` step on 64 multi-MNIST-like frames, Pyro's validation
checks off) right after it, on the same threads: ``BENCH pyro_air_batch64_3steps_seconds`` and
``BENCH mlp_air_vs_pyro_air_speedup`` = Pyro's seconds / ours (above 1: ours is faster). Both are medians of
``--iters`` steps after a warm-up. Without pyro-ppl a comment line says it was not measured. Last, with
``mlp-sqair``, the online tracking step for a single 50x50 frame.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from sqair_world.data import load_embedded_mnist, make_moving_mnist
from sqair_world.model.registry import MODEL_NAMES, build_model
from sqair_world.model.subsets import DENSE, RowCompaction, row_compaction
from sqair_world.speed import (
    accelerate,
    cpu_has_native_bf16,
    flush_denormals,
    mixed_precision,
    reduced_precision_matmul,
)
from sqair_world.training.checkpoints import load_model
from sqair_world.training.experiments import MNIST_GRID_MODEL
from sqair_world.utils import frames_to_input

try:  # optional (the [bench] extra): the side-by-side Pyro AIR
    import pyro  # noqa: F401
except ImportError:
    HAVE_PYRO = False
else:
    HAVE_PYRO = True

MODES = ("eager", "eager-dense", "autocast", "compile", "compile-autocast", "compile-bf16")
BF16_MODES = ("autocast", "compile-autocast", "compile-bf16")  # need native bfloat16 on the CPU
WORKLOADS = ("init", "mnist", "trained")
# the registry's models, and variants of them by configuration: (registry name, config overrides)
BENCH_MODELS = {**{name: (name, {}) for name in MODEL_NAMES}, "mlp-sqair-grid": ("mlp-sqair", MNIST_GRID_MODEL)}
TRAINED = Path(__file__).resolve().parents[1] / "sqair_world" / "checkpoints" / "moving_mnist.pt"


def matmul_gflops(n: int = 2048, reps: int = 5, rounds: int = 3, device: str = "cpu") -> float:
    """fp32 ``torch.mm`` throughput on ``device``: the best of ``rounds`` timings of ``reps`` products."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    sync = torch.cuda.synchronize if a.is_cuda else (lambda: None)
    for _ in range(2):
        a @ b
    sync()
    best = 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync()
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9)
    return best


def train_iteration(model, opt, x, k, autocast=False):
    with mixed_precision(x.device, autocast):
        out = model(x, k=k)
    opt.zero_grad(set_to_none=True)
    out.loss.backward()
    opt.step()
    if x.device.type == "cuda":
        torch.cuda.synchronize()  # time the work, not its launch


def moving_mnist_batch(T: int, B: int) -> torch.Tensor:
    """``[T, B, 1, 50, 50]`` moving-MNIST frames made from the embedded test digits (seeded)."""
    images, labels = load_embedded_mnist("eval")
    return frames_to_input(make_moving_mnist(images, labels, B, seed=1).frames[:T]).unsqueeze(2)


def time_training(
    name: str, T: int, B: int, K: int, iters: int, mode: str = "eager", workload: str = "init", device: str = "cpu"
) -> tuple[float, float]:
    """Median seconds of ``iters`` training iterations (after a warm-up, and compilation) and GFLOP per iteration."""
    torch.manual_seed(0)
    reduced_precision_matmul(mode == "compile-bf16")
    # eager: the library's default (gather the active rows of big, sparse steps); else every row computed, which
    # is what eager-dense measures and what the compiled modes' FLOPs count
    policy = RowCompaction() if mode == "eager" else DENSE
    try:
        with row_compaction(policy.min_rows, policy.max_active):
            if workload == "trained":
                model, x = load_model(TRAINED), moving_mnist_batch(T, B)
            else:
                base, overrides = BENCH_MODELS[name]
                model = build_model(base, **overrides)
                x = moving_mnist_batch(T, B) if workload == "mnist" else torch.rand(T, B, *model.cfg.image_shape)
            model, x = model.to(device), x.to(device)
            opt = torch.optim.Adam(model.parameters(), 1e-5)
            fc = FlopCounterMode(display=False)
            with fc:
                train_iteration(model, opt, x, K)
            autocast = mode.endswith("autocast")
            if mode.startswith("compile"):
                accelerate(model)
                train_iteration(model, opt, x, K, autocast)  # compiles
            times = []
            for _ in range(iters + 1):
                t0 = time.perf_counter()
                train_iteration(model, opt, x, K, autocast)
                times.append(time.perf_counter() - t0)
    finally:
        reduced_precision_matmul(False)
    return statistics.median(times[1:]), fc.get_total_flops() / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(BENCH_MODELS), choices=list(BENCH_MODELS))
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    p.add_argument("--device", default="cpu", help="cpu or cuda; figures on CUDA get a _cuda suffix")
    args = p.parse_args()
    on_cuda = args.device.startswith("cuda")
    torch.set_num_threads(args.threads)
    flush_denormals()
    gflops = matmul_gflops(device=args.device)
    results = []  # (key, mode, seconds, GFLOP), rated once the matmul throughput is measured again at the end
    for name in args.models:
        for workload in args.workloads:
            if workload == "trained" and name != "mlp-sqair":
                continue  # the only model with a shipped moving-MNIST checkpoint
            key = name.replace("-", "_") + ("" if workload == "init" else f"_{workload}") + ("_cuda" if on_cuda else "")
            for mode in args.modes:
                if mode in BF16_MODES and not on_cuda and not cpu_has_native_bf16():
                    print(f"# mode {mode} skipped: this CPU has no native bfloat16 (speed.cpu_has_native_bf16)")
                    continue
                sec, flops = time_training(name, 10, 32, 5, args.iters, mode, workload, args.device)
                results.append((key, mode, sec, flops))
                print(f"BENCH {key}_train_iter_seconds_{mode.replace('-', '_')} {sec:.3f} s", flush=True)
    gflops = max(gflops, matmul_gflops(device=args.device))
    print(f"BENCH fp32_matmul_gflops {gflops:.1f} GFLOP/s")
    for key in dict.fromkeys(r[0] for r in results):
        rows = [r for r in results if r[0] == key]
        for _, mode, sec, flops in rows:
            suffix = mode.replace("-", "_")
            print(f"BENCH {key}_train_iter_gflop_{suffix} {flops:.1f} GFLOP")
            print(f"BENCH {key}_train_iter_floor_ratio_{suffix} {sec / (flops / gflops):.2f}")
        _, mode, sec, flops = min(rows, key=lambda r: r[2])
        print(f"BENCH {key}_train_iter_seconds {sec:.3f} s")
        print(f"BENCH {key}_train_iter_floor_ratio {sec / (flops / gflops):.2f}")
    if "mlp-air" in args.models and not on_cuda:
        sec, flops = time_training("mlp-air", 1, 64, 1, args.iters)
        print(f"BENCH mlp_air_batch64_3steps_seconds {sec:.4f} s")
        print(f"BENCH mlp_air_batch64_3steps_floor_ratio {sec / (flops / gflops):.2f}")
        if HAVE_PYRO:
            # in this run, not a stored figure: separate runs on a shared machine differ by 20-30%
            from pyro_air import time_pyro_air  # bench/ is on sys.path when this file runs as a script

            pyro_sec = time_pyro_air(args.iters, batch=64, steps=3)
            print(f"BENCH pyro_air_batch64_3steps_seconds {pyro_sec:.4f} s")
            print(f"BENCH mlp_air_vs_pyro_air_speedup {pyro_sec / sec:.2f} x")
        else:
            print("# pyro-ppl not installed (pip install -e '.[bench]'): Pyro's AIR not measured")
    if "mlp-sqair" in args.models and not on_cuda:
        model = build_model("mlp-sqair").eval()
        frame = torch.rand(1, 1, 50, 50)
        state = model.online_step(None, frame).state
        times = []
        for _ in range(50):
            t0 = time.perf_counter()
            state = model.online_step(state, frame).state
            times.append(time.perf_counter() - t0)
        print(f"BENCH online_step_ms {1e3 * statistics.median(times):.2f} ms")


if __name__ == "__main__":
    main()
