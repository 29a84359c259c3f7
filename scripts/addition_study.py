"""How the addition score depends on its classifier's training data and on the target (docs/moving_mnist.md).

    python scripts/addition_study.py                                  # the shipped MLP-SQAIR, 1k-20k sequences
    python scripts/addition_study.py --train-sequences 1000 5000 --target visible --visible-threshold 0.25
    python scripts/addition_study.py --head digit-sum                # the structured head below

The features are those of ``python -m sqair_world.evaluate mnist`` (one deterministic pass, what and where of the
present slots) and the classifier is its :func:`addition_accuracy`; only the number of training sequences, the
epochs and the target vary. ``--target sequence`` is the evaluation's (the sequence's digit sum on every frame);
``visible`` sums, per frame, the digits whose visible fraction exceeds ``--visible-threshold``.

``--head digit-sum`` replaces the evaluation's Deep Sets classifier with a structured one: each present slot gets a
distribution over the digits 0-9 (an MLP of the same width), and the sum's distribution is their convolution, trained
on the sums alone. It asks only whether each z_what names its digit, so it needs less data; it has no meaning for
VRNN's single latent, which is why the evaluation keeps the Deep Sets classifier.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sqair_world.data import MovingMNISTConfig, load_moving_mnist
from sqair_world.evaluation.metrics import SetClassifier, addition_accuracy
from sqair_world.evaluation.moving_mnist import representations
from sqair_world.training.checkpoints import load_model


def frame_targets(data, target: str, threshold: float) -> torch.Tensor:
    """Per-frame digit sums ``[S, T]``."""
    T = data.frames.shape[0]
    if target == "sequence":
        return torch.as_tensor(data.digit_sum).view(-1, 1).expand(-1, T)
    seen = (data.visible_frac > threshold) & data.present[None]  # [T, S, M]
    return torch.as_tensor(np.where(seen, data.labels[None], 0).sum(-1).T)


class DigitSumHead(nn.Module):
    """log p(sum | slots) ``[..., 9 N + 1]`` from slot features ``[..., N, F]`` and mask ``[..., N]``: per-slot digit
    distributions (absent slots add 0 for sure), convolved slot by slot in log space."""

    def __init__(self, n_features: int, hidden: int = 128) -> None:
        super().__init__()
        self.phi = nn.Sequential(
            nn.Linear(n_features, hidden), nn.ELU(), nn.Linear(hidden, hidden), nn.ELU(), nn.Linear(hidden, 10)
        )

    def forward(self, feats: Tensor, mask: Tensor) -> Tensor:
        digit = F.log_softmax(self.phi(feats), -1)  # [B, N, 10]
        zero = torch.full_like(digit, -1e9)
        zero[..., 0] = 0.0
        digit = torch.where(mask.unsqueeze(-1) > 0, digit, zero)
        out = digit[..., 0, :]
        for n in range(1, digit.shape[-2]):  # p(s + d) = sum_d p(s) p(d): shift by each digit, then logsumexp
            shifted = [F.pad(out + digit[..., n, d : d + 1], (d, 9 - d), value=-1e9) for d in range(10)]
            out = torch.logsumexp(torch.stack(shifted, -1), -1)
        return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="sqair_world/checkpoints/moving_mnist.pt")
    p.add_argument("--train-sequences", type=int, nargs="+", default=[1000, 2000, 5000, 10000, 20000])
    p.add_argument("--eval-sequences", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--target", choices=["sequence", "visible"], default="sequence")
    p.add_argument("--visible-threshold", type=float, default=0.0)
    p.add_argument("--no-where", action="store_true", help="what codes only (drop the 4 where numbers)")
    p.add_argument("--head", choices=["deep-sets", "digit-sum"], default="deep-sets")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch's intra-op threads")
    args, t0 = p.parse_args(), time.time()
    torch.set_num_threads(args.threads)
    model = load_model(args.checkpoint).float().eval()
    train = load_moving_mnist("train", max(args.train_sequences), args.seed, None, MovingMNISTConfig())
    test = load_moving_mnist("eval", args.eval_sequences, args.seed, None, MovingMNISTConfig())
    with torch.no_grad():
        tr_f, tr_m = representations(model, train.frames[:, :, None], 64, "cpu")
        te_f, te_m = representations(model, test.frames[:, :, None], 64, "cpu")
    print(f"features of {len(train)} + {len(test)} sequences in {time.time() - t0:.0f} s", flush=True)
    if args.no_where:
        tr_f, te_f = tr_f[..., :-4], te_f[..., :-4]
    y_tr, y_te = (frame_targets(d, args.target, args.visible_threshold) for d in (train, test))
    head = SetClassifier if args.head == "deep-sets" else DigitSumHead
    for n in args.train_sequences:
        acc = addition_accuracy(
            tr_f[:n], tr_m[:n], y_tr[:n], te_f, te_m, y_te, epochs=args.epochs, seed=args.seed, classifier=head
        )
        print(f"train sequences {n}: addition {acc:.3f} ({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
