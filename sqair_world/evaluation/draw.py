"""Pictures: frames with boxes coloured by track identity (OpenCV), strips, PNGs and GIFs (imageio).

Boxes are ``(x_min, y_min, width, height)`` in pixels of the frame being drawn on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import imageio.v3 as iio
import numpy as np

# a qualitative palette (identity i -> colour i mod 10)
PALETTE = np.array(
    [
        [230, 25, 75],
        [60, 180, 75],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [210, 245, 60],
        [250, 190, 190],
        [255, 225, 25],
    ],
    dtype=np.uint8,
)


def to_rgb(frame: np.ndarray, scale: int = 1) -> np.ndarray:
    """``[H, W]``, ``[1, H, W]``, ``[3, H, W]`` or ``[H, W, 3]``, floats in [0, 1] or uint8 -> uint8
    ``[H*s, W*s, 3]``."""
    f = np.asarray(frame)
    if f.ndim == 3 and f.shape[0] in (1, 3) and f.shape[-1] not in (1, 3):
        f = np.moveaxis(f, 0, -1)
    if f.ndim == 2:
        f = f[..., None]
    if f.dtype != np.uint8:
        f = (np.clip(f, 0, 1) * 255).round().astype(np.uint8)
    if f.shape[-1] == 1:
        f = np.repeat(f, 3, -1)
    return np.ascontiguousarray(f.repeat(scale, 0).repeat(scale, 1)) if scale > 1 else np.ascontiguousarray(f)


def draw_frame(frame: np.ndarray, boxes: np.ndarray, ids: np.ndarray, scale: int = 3, thickness: int = 1) -> np.ndarray:
    """One frame with boxes ``[M, 4]`` (pixels of the unscaled frame) coloured by ``ids [M]`` (``-1`` = skip)."""
    img = to_rgb(frame, scale)
    for box, i in zip(np.asarray(boxes, dtype=np.float64) * scale, np.asarray(ids)):
        if i >= 0:
            x0, y0, w, h = box
            corner = (int(round(x0 + w)) - 1, int(round(y0 + h)) - 1)  # OpenCV's corners are inclusive pixels
            colour = tuple(int(c) for c in PALETTE[int(i) % len(PALETTE)])
            cv2.rectangle(img, (int(round(x0)), int(round(y0))), corner, colour, thickness)
    return img


def grid(images: Sequence[Sequence[np.ndarray]], pad: int = 2, value: int = 255) -> np.ndarray:
    """Tile rows of equally sized uint8 ``[H, W, 3]`` images into one image with ``pad`` pixels between them."""
    rows = []
    for row in images:
        cells = []
        for img in row:
            cells += [img, np.full((img.shape[0], pad, 3), value, np.uint8)]
        rows += [np.concatenate(cells[:-1], 1)]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=value) for r in rows]
    out = []
    for r in rows:
        out += [r, np.full((pad, width, 3), value, np.uint8)]
    return np.concatenate(out[:-1], 0)


def save_png(path: str | Path, image: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, image)
    return path


def save_gif(path: str | Path, frames: Sequence[np.ndarray], fps: float = 4.0) -> Path:
    """Animated GIF of uint8 ``[H, W, 3]`` frames, looping forever."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, np.stack(frames), extension=".gif", duration=1000.0 / fps, loop=0)
    return path
