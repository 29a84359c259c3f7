"""Preview moving multi-MNIST: ``python -m sqair_world.preview``, or ``sqair-preview``.

    python -m sqair_world.preview --out moving_mnist.gif --png moving_mnist.png --num-sequences 4 [--split train]

A GIF of a few sequences (the busiest first) with the visible part of each digit's ground-truth box coloured by
track id, and optionally a PNG strip, one row of frames per sequence (paper Fig. 4, top). The command line is
generated (tyro) from :class:`PreviewArgs`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import tyro

from sqair_world.data.moving_mnist import MovingMNISTConfig, SequenceSet, load_moving_mnist
from sqair_world.data.preview import busiest_sequences, visible_tracks
from sqair_world.evaluation.draw import draw_frame, grid, save_gif, save_png


@dataclass(frozen=True)
class PreviewArgs:
    """Preview moving multi-MNIST: a GIF (and optionally a PNG strip) of a few sequences with ground-truth boxes."""

    out: str = "moving_mnist.gif"
    """GIF to write."""
    png: str | None = None
    """Also write a PNG: one row of frames per sequence (paper Fig. 4, top)."""
    num_sequences: int = 4
    """Sequences shown, the busiest first."""
    split: Literal["train", "eval"] = "eval"
    """Digit pool the sequences are made from."""
    seed: int = 0
    """Seed of the generated sequences."""
    mnist_dir: str | None = None
    """Directory of the MNIST IDX files (None: the embedded digits)."""
    scale: int = 3
    """Pixels per frame pixel in the pictures."""

    def __post_init__(self) -> None:
        for name in ("num_sequences", "scale"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def sequence_panels(data: SequenceSet, idx: np.ndarray, scale: int = 3) -> list[list[np.ndarray]]:
    """``[T][len(idx)]`` uint8 ``[H * scale, W * scale, 3]`` frames of sequences ``idx`` with their boxes."""
    return [
        [draw_frame(data.frames[t, s], *visible_tracks(data, t, s), scale) for s in idx]
        for t in range(data.frames.shape[0])
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns 0. ``--help`` exits with status 0, options tyro rejects with status 2."""
    args = tyro.cli(PreviewArgs, args=argv, prog="python -m sqair_world.preview")
    data = load_moving_mnist(
        args.split,
        num_sequences=max(args.num_sequences, 16),  # enough to choose the busiest from
        seed=args.seed,
        mnist_dir=args.mnist_dir,
        cfg=MovingMNISTConfig(),
        cache=False,
    )
    idx = busiest_sequences(data, args.num_sequences)
    panels = sequence_panels(data, idx, args.scale)
    print(f"wrote {save_gif(args.out, [grid([row]) for row in panels])}")
    if args.png:
        strip = grid([[panels[t][j] for t in range(len(panels))] for j in range(len(idx))])
        print(f"wrote {save_png(args.png, strip)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
