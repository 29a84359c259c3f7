"""Try to reproduce the propagation collapse (issue 21) on the learning tests' toy data, in seconds not minutes.

    python scripts/toy_collapse.py --lr 7e-3 --stage-decay 1.0 --seeds 0 1 2   # the constant rate
    python scripts/toy_collapse.py --lr 7e-3 --stage-decay 0.7 --seeds 0 1 2   # x0.7 per stage, as the fast recipe
    python scripts/toy_collapse.py --trainer --lr 3e-3 --stages 3 4 5 6 --window 20 --seeds 0 1 2 3   # the trainer

The small MLP-SQAIR of tests/test_learning.py on 0-2 moving blocks (tests/toy_data.py), Adam, batch 16, ``--steps``
per curriculum stage; prints, per stage, the propagated objects per frame averaged over its first and last
``--window`` steps. ``--trainer`` runs the same through the project's trainer (fast recipe, one more frame per stage,
so ``--stages`` must grow by one), as tests/test_learning.py's length-change test does.
The findings (a knife-edge in the rate, so no unit test) are in docs/moving_mnist.md, "The fix".
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_learning import SMALL, train_through_lengths
from toy_data import moving_blocks

from sqair_world.model.registry import build_model


def run(seed: int, lr: float, stage_decay: float, stages: list[int], steps: int) -> list[list[float]]:
    """Per stage, the propagated objects per frame (frames after the first) of each step."""
    torch.manual_seed(seed)
    x, _ = moving_blocks(512, T=max(stages), seed=0)
    model = build_model("mlp-sqair", **SMALL)
    model.set_background(x.mean((0, 1)))
    opt = torch.optim.Adam(model.parameters(), lr)
    log = []
    for stage, T in enumerate(stages):
        for group in opt.param_groups:
            group["lr"] = lr * stage_decay**stage
        props = []
        for _ in range(steps):
            out = model(x[:T, torch.randint(0, x.shape[1], (16,))])
            opt.zero_grad()
            out.loss.backward()
            opt.step()
            props.append((out.num_prop[1:].float() * out.weights.detach()).sum(-1).mean().item())
        log.append(props)
    return log


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lr", type=float, default=7e-3)
    p.add_argument("--stage-decay", type=float, default=1.0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--stages", type=int, nargs="+", default=[3, 6, 12], help="sequence length of each stage")
    p.add_argument("--steps", type=int, default=100, help="Adam steps per stage")
    p.add_argument("--window", type=int, default=30, help="steps averaged at the start and end of each stage")
    p.add_argument("--trainer", action="store_true", help="train with the project's trainer (fast recipe)")
    args = p.parse_args()
    torch.set_num_threads(1)
    for seed in args.seeds:
        t0 = time.time()
        if args.trainer:
            with tempfile.TemporaryDirectory() as run_dir:
                props, _ = train_through_lengths(seed, args.lr, args.stage_decay, args.stages, args.steps, run_dir)
        else:
            props = run(seed, args.lr, args.stage_decay, args.stages, args.steps)
        w = args.window
        stages = " ".join(f"T={T}: {sum(v[:w]) / w:.2f} -> {sum(v[-w:]) / w:.2f}" for T, v in zip(args.stages, props))
        took = time.time() - t0
        print(f"seed {seed} lr {args.lr:g} x{args.stage_decay:g}/stage  {stages}  ({took:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
