"""Preview moving multi-MNIST: a GIF (and optionally a PNG strip) of a few sequences with ground-truth boxes.

    python -m sqair_world.data.preview --out moving_mnist.gif --num-sequences 4 [--png strip.png] [--split eval]

Boxes are the visible part of each digit's bounding box, coloured by track id.
"""

from __future__ import annotations

import argparse

import numpy as np

from sqair_world.data.moving_mnist import MovingMNISTConfig, SequenceSet, load_moving_mnist
from sqair_world.evaluation.draw import draw_frame, grid, save_gif, save_png


def sequence_panels(data: SequenceSet, idx: np.ndarray, scale: int = 3) -> list[list[np.ndarray]]:
    """``[T][len(idx)]`` panels with boxes: visible boxes (y, x, h, w) -> (x, y, w, h)."""
    vb = data.visible_boxes
    panels = []
    for t in range(data.frames.shape[0]):
        row = []
        for s in idx:
            boxes = vb[t, s][:, [1, 0, 3, 2]]
            ids = np.where(data.visible_frac[t, s] > 0, data.track_ids[s], -1)
            row.append(draw_frame(data.frames[t, s], boxes, ids, scale))
        panels.append(row)
    return panels


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="moving_mnist.gif", help="GIF to write")
    p.add_argument("--png", default=None, help="also write a PNG: one row of frames per sequence (paper Fig. 4, top)")
    p.add_argument("--num-sequences", type=int, default=4)
    p.add_argument("--split", choices=["train", "eval"], default="eval")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mnist-dir", default=None, help="directory with the MNIST IDX files (default: embedded digits)")
    p.add_argument("--scale", type=int, default=3)
    args = p.parse_args(argv)
    if args.num_sequences < 1:
        p.error("--num-sequences must be >= 1")
    data = load_moving_mnist(
        args.split,
        num_sequences=max(args.num_sequences, 16),
        seed=args.seed,
        mnist_dir=args.mnist_dir,
        cfg=MovingMNISTConfig(),
        cache=False,
    )
    idx = np.argsort(-data.num_digits, kind="stable")[: args.num_sequences]  # show the busiest sequences first
    panels = sequence_panels(data, idx, args.scale)
    gif = save_gif(args.out, [grid([row]) for row in panels])
    print(f"wrote {gif}")
    if args.png:
        strip = grid([[panels[t][j] for t in range(len(panels))] for j in range(len(idx))])
        print(f"wrote {save_png(args.png, strip)}")


if __name__ == "__main__":
    main()
