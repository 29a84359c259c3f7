"""Do the reduced-precision options change the bound? ``--mode autocast`` (TrainConfig.autocast: bfloat16
autocast of the networks) or ``--mode fast_matmul`` (TrainConfig.fast_matmul: float32 matmuls computed in bfloat16).

    python scripts/check_precision.py [--mode autocast] [--checkpoint sqair_world/checkpoints/moving_mnist.pt]
                                      [--sequences 64]

Same weights, same data, same sampling noise; prints the IWAE bound (K=5) both ways and their per-sequence
difference. The learning-curve half of the check is two pretraining runs, see docs/moving_mnist.md ("Reduced
precision").
"""

from __future__ import annotations

import argparse

import torch

from sqair_world.data import MovingMNISTConfig, load_moving_mnist
from sqair_world.speed import flush_denormals, mixed_precision, reduced_precision_matmul
from sqair_world.training.checkpoints import load_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=("autocast", "fast_matmul"), default="autocast")
    p.add_argument("--checkpoint", default="sqair_world/checkpoints/moving_mnist.pt")
    p.add_argument("--sequences", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    flush_denormals()
    model = load_model(args.checkpoint).float().eval()
    data = load_moving_mnist("eval", args.sequences, 0, None, MovingMNISTConfig())
    x = torch.from_numpy(data.frames[:, :, None]).float() / 255
    outs = {}
    for fast in (False, True):
        reduced_precision_matmul(fast and args.mode == "fast_matmul")
        torch.manual_seed(0)
        with torch.no_grad(), mixed_precision("cpu", fast and args.mode == "autocast"):
            out = outs[fast] = model(x, k=5)
        print(
            f"{args.mode}={fast}: iwae {out.iwae.mean():.2f} rec {out.rec.mean():.2f} kl {out.kl.mean():.2f} "
            f"count {out.count.float().mean():.3f}"
        )
    reduced_precision_matmul(False)
    d = outs[True].iwae - outs[False].iwae
    print(
        f"per-sequence bound difference: mean {d.mean():.3f} nats, mean |d| {d.abs().mean():.3f}, "
        f"max |d| {d.abs().max():.3f} (bound ~{outs[False].iwae.mean():.0f})"
    )
    print(f"same counts: {(outs[True].count == outs[False].count).float().mean().item():.4f}")


if __name__ == "__main__":
    main()
