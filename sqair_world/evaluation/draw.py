"""Pictures: frames with boxes coloured by track identity, strips and GIFs (numpy + imageio, no plotting library).

Boxes are ``(x_min, y_min, width, height)`` in pixels of the frame being drawn on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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


def track_colour(track_id: int) -> np.ndarray:
    return PALETTE[int(track_id) % len(PALETTE)]


def to_rgb(frame: np.ndarray, scale: int = 1) -> np.ndarray:
    """``[H, W]``, ``[1, H, W]``, ``[3, H, W]`` or ``[H, W, 3]`` floats in [0, 1] or uint8 -> uint8 ``[H*s, W*s, 3]``."""
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


def draw_box(img: np.ndarray, box: Sequence[float], colour: np.ndarray, thickness: int = 1) -> None:
    """Draw a rectangle outline in place; parts outside the image are clipped."""
    H, W = img.shape[:2]
    x0, y0, w, h = (float(v) for v in box)
    x1, y1 = int(round(x0 + w)) - 1, int(round(y0 + h)) - 1
    x0, y0 = int(round(x0)), int(round(y0))
    for k in range(thickness):
        for ya, yb, xa, xb in (
            (y0 + k, y0 + k, x0, x1),
            (y1 - k, y1 - k, x0, x1),
            (y0, y1, x0 + k, x0 + k),
            (y0, y1, x1 - k, x1 - k),
        ):
            ya, yb, xa, xb = max(ya, 0), min(yb, H - 1), max(xa, 0), min(xb, W - 1)
            if ya <= yb and xa <= xb and 0 <= ya < H and 0 <= xa < W:
                img[ya : yb + 1, xa : xb + 1] = colour


def draw_frame(frame: np.ndarray, boxes: np.ndarray, ids: np.ndarray, scale: int = 3, thickness: int = 1) -> np.ndarray:
    """One frame with boxes ``[M, 4]`` (pixels of the unscaled frame) coloured by ``ids [M]`` (``-1`` = skip)."""
    img = to_rgb(frame, scale)
    for box, i in zip(np.asarray(boxes, dtype=np.float64), np.asarray(ids)):
        if i >= 0:
            draw_box(img, box * scale, track_colour(i), thickness)
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
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, image)
    return path


def save_gif(path: str | Path, frames: Sequence[np.ndarray], fps: float = 4.0) -> Path:
    """Animated GIF of uint8 ``[H, W, 3]`` frames, looping forever."""
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, np.stack(frames), extension=".gif", duration=1000.0 / fps, loop=0)
    return path
