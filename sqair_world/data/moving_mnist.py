"""Moving multi-MNIST with ground-truth tracks, faithful to the authors' generator (reference §1).

Per sequence: n ~ U{0, .., max_digits} digits, fixed for the whole sequence; each digit is its 28x28
MNIST image cropped to the tight bounding box and pasted at integer top-left positions at its
natural size; digits combine by pixel-wise maximum. Frame 0 places every digit fully inside the
canvas without bounding-box overlap (the second digit gets up to 5 re-draws, then the whole sample
is redrawn). Motion is the noisy-acceleration trajectory with bounce on the *top-left corner*,
bounded to [0, canvas], so digits bounce at the top/left edges and slide out at the bottom/right.

Everything is vectorised over sequences (numpy); the only Python loops run over time, digit slots
and rejection rounds. Frames are uint8, time-major ``[T, S, H, W]``; the model's inputs are
``frames / 255`` in [0, 1] (not binarised).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np

from sqair_world.data.mnist import load_embedded_mnist, load_mnist_idx
from sqair_world.utils import atomic_write


@dataclass(frozen=True)
class MovingMNISTConfig:
    """Generator parameters; defaults are the authors' (reference §1)."""

    canvas_size: int = 50
    """H = W of the frames."""
    seq_len: int = 10
    """T, frames per sequence."""
    max_digits: int = 2
    """The number of digits is uniform on {0, .., max_digits}."""
    max_velocity: float = 10.0
    """|velocity| bound, px per frame per axis."""
    max_acceleration: float = 3.0
    """|acceleration| bound, px per frame^2 per axis."""
    acceleration_noise: float = 0.01
    """Std of the Gaussian noise added to the acceleration each frame."""
    max_redraws: int = 5
    """Re-draws of an overlapping digit's first position before the whole sample is redrawn."""

    def __post_init__(self) -> None:
        problems = []
        if self.canvas_size < 28:
            problems.append(f"canvas_size {self.canvas_size} is smaller than an MNIST digit (28 px); use >= 28")
        if self.seq_len < 1:
            problems.append(f"seq_len must be >= 1, got {self.seq_len}")
        if self.max_digits < 0:
            problems.append(f"max_digits must be >= 0, got {self.max_digits}")
        if min(self.max_velocity, self.max_acceleration, self.acceleration_noise) < 0:
            problems.append("velocity, acceleration and noise bounds must be >= 0")
        if self.max_redraws < 1:
            problems.append(f"max_redraws must be >= 1, got {self.max_redraws}")
        if problems:
            raise ValueError("Invalid MovingMNISTConfig:\n  " + "\n  ".join(problems))


class SequenceSet(NamedTuple):
    """S sequences with M = max_digits object slots, time-major; ground truth per frame and object."""

    frames: np.ndarray  #: uint8 [T, S, H, W]
    boxes: np.ndarray  #: float32 [T, S, M, 4] (y, x, h, w) pixel box of the whole digit (may extend past the canvas)
    visible_boxes: np.ndarray  #: float32 [T, S, M, 4] (y, x, h, w) clipped to the canvas; h = w = 0 when outside
    visible_frac: np.ndarray  #: float32 [T, S, M] visible fraction of the box area
    labels: np.ndarray  #: int64 [S, M] digit class, -1 where absent
    present: np.ndarray  #: bool [S, M] the digit exists in the sequence (constant in time)
    track_ids: np.ndarray  #: int64 [S, M] 0..M-1 for present digits, -1 where absent

    def __len__(self) -> int:
        """S, the number of sequences (not the number of fields: see ``replace``)."""
        return self.frames.shape[1]

    def replace(self, **fields: np.ndarray) -> SequenceSet:
        """A copy with ``fields`` replaced. Use this, not ``_replace``: NamedTuple's ``_replace`` checks
        ``len(result) == 7``, which ``__len__`` above redefines as S."""
        unknown = set(fields) - set(self._fields)
        if unknown:
            raise ValueError(f"unknown SequenceSet fields {sorted(unknown)}; valid: {self._fields}")
        return SequenceSet(**{**self._asdict(), **fields})

    @property
    def num_digits(self) -> np.ndarray:
        """int64 [S] digits in the sequence, visible or not (the authors' counting convention)."""
        return self.present.sum(-1).astype(np.int64)

    @property
    def num_visible(self) -> np.ndarray:
        """int64 [T, S] digits with at least one pixel of their box inside the frame."""
        return ((self.visible_frac > 0) & self.present[None]).sum(-1).astype(np.int64)

    @property
    def digit_sum(self) -> np.ndarray:
        """int64 [S] sum of the digits' labels (0..18), the addition task's target."""
        return np.where(self.present, self.labels, 0).sum(-1)

    def subset(self, idx) -> SequenceSet:
        """Sequences ``idx`` (slice, index array or boolean mask)."""
        return SequenceSet(
            self.frames[:, idx],
            self.boxes[:, idx],
            self.visible_boxes[:, idx],
            self.visible_frac[:, idx],
            self.labels[idx],
            self.present[idx],
            self.track_ids[idx],
        )


def crop_digits(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tight bounding-box crops of ``[P, 28, 28]`` digits, moved to the top-left corner.

    Returns the crops (uint8 ``[P, 28, 28]``, zero outside the crop) and their sizes (int64 ``[P, 2]`` = h, w).
    """
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 [P, H, W], got {images.dtype} {images.shape}")
    rows, cols = images.any(2), images.any(1)  # [P, 28]
    if not rows.any(1).all():
        raise ValueError("some digit images are entirely blank; remove them from the pool")
    n = images.shape[1]
    top, bottom = rows.argmax(1), n - rows[:, ::-1].argmax(1)
    left, right = cols.argmax(1), n - cols[:, ::-1].argmax(1)
    # shift each digit to the corner with one gather: crop[p, i, j] = img[p, top+i, left+j] inside the box
    i = np.arange(n)
    src_r, src_c = top[:, None] + i, left[:, None] + i  # [P, 28]
    valid = (i < (bottom - top)[:, None])[:, :, None] & (i < (right - left)[:, None])[:, None, :]
    crops = images[
        np.arange(len(images))[:, None, None],
        np.minimum(src_r, n - 1)[:, :, None],
        np.minimum(src_c, n - 1)[:, None, :],
    ]
    return np.where(valid, crops, 0).astype(np.uint8), np.stack([bottom - top, right - left], 1).astype(np.int64)


def _first_positions(sizes: np.ndarray, present: np.ndarray, canvas: int, rng: np.random.Generator) -> np.ndarray:
    """round(U[0,1) * (canvas - size)) per axis: ``sizes [S, M, 2]`` -> top-left ``[S, M, 2]``."""
    return np.round(rng.random(sizes.shape) * (canvas - sizes)).astype(np.int64) * present[..., None]


def _overlaps(pos: np.ndarray, sizes: np.ndarray, present: np.ndarray) -> np.ndarray:
    """[S, M] True where slot m's box overlaps an earlier present slot's box."""
    lo, hi = pos, pos + sizes  # [S, M, 2]
    inter = (np.minimum(hi[:, :, None], hi[:, None]) > np.maximum(lo[:, :, None], lo[:, None])).all(-1)  # [S, M, M]
    both = present[:, :, None] & present[:, None]
    earlier = np.tril(np.ones(inter.shape[1:], dtype=bool), -1)
    return (inter & both & earlier).any(-1)


def _place_first_frame(
    pool_sizes: np.ndarray, present: np.ndarray, cfg: MovingMNISTConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Digit indices ``[S, M]`` and frame-0 positions ``[S, M, 2]`` without bounding-box overlap (reference §1)."""
    S, M = present.shape
    digits = rng.integers(0, len(pool_sizes), (S, M))
    pos = _first_positions(pool_sizes[digits], present, cfg.canvas_size, rng)
    tries = np.zeros(S, dtype=np.int64)
    for _ in range(1000):
        bad = _overlaps(pos, pool_sizes[digits], present)  # [S, M]
        rows = bad.any(1)
        if not rows.any():
            return digits, pos
        tries[rows] += 1
        restart = rows & (tries >= cfg.max_redraws)  # counter reached: new digits, same n
        redraw = bad & ~restart[:, None]
        if restart.any():
            digits[restart] = rng.integers(0, len(pool_sizes), (int(restart.sum()), M))
            pos[restart] = _first_positions(pool_sizes[digits[restart]], present[restart], cfg.canvas_size, rng)
            tries[restart] = 0
        if redraw.any():
            fresh = _first_positions(pool_sizes[digits], present, cfg.canvas_size, rng)
            pos = np.where(redraw[..., None], fresh, pos)
    raise ValueError(
        f"could not place {M} digits without overlap on a {cfg.canvas_size}px canvas after 1000 rounds; "
        "use fewer digits (max_digits) or a larger canvas_size"
    )


def noisy_acceleration_step(
    pos: np.ndarray, vel: np.ndarray, acc: np.ndarray, cfg: MovingMNISTConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One step of the authors' noisy-acceleration trajectory with bounce (reference §1), any shape ``[..., 2]``.

    Order as released: ``pos += vel``, ``vel += acc``, ``acc += N(0, noise^2)``; then per axis a position
    below 0 or above ``canvas_size`` is reflected and that axis's velocity and acceleration are negated;
    finally the whole state is clipped to its bounds. The bound applies to the top-left corner.
    """
    bound = float(cfg.canvas_size)
    pos = pos + vel
    vel = vel + acc
    acc = acc + rng.normal(0.0, cfg.acceleration_noise, np.shape(pos))
    low, high = pos < 0, pos > bound
    pos = np.where(low, -pos, np.where(high, 2 * bound - pos, pos))
    flip = np.where(low | high, -1.0, 1.0)
    return (
        np.clip(pos, 0, bound),
        np.clip(vel * flip, -cfg.max_velocity, cfg.max_velocity),
        np.clip(acc * flip, -cfg.max_acceleration, cfg.max_acceleration),
    )


def _trajectories(first: np.ndarray, cfg: MovingMNISTConfig, rng: np.random.Generator) -> np.ndarray:
    """Noisy-acceleration trajectories with bounce of the top-left corners: ``[S, M, 2]`` -> ``[T, S, M, 2]`` floats."""
    bound, vmax, amax = float(cfg.canvas_size), cfg.max_velocity, cfg.max_acceleration
    shape = first.shape
    # initial state: uniform in the bounds, one throw-away step, then the frame-0 position (reference §1)
    pos = rng.uniform(0, bound, shape)
    vel = rng.uniform(-vmax, vmax, shape)
    acc = rng.uniform(-amax, amax, shape)
    _, vel, acc = noisy_acceleration_step(pos, vel, acc, cfg, rng)
    pos = first.astype(np.float64)
    out = [pos]
    for _ in range(cfg.seq_len - 1):
        pos, vel, acc = noisy_acceleration_step(pos, vel, acc, cfg, rng)
        out.append(pos)
    return np.stack(out)


def _render(
    crops: np.ndarray, positions: np.ndarray, present: np.ndarray, canvas: int, chunk: int = 4096
) -> np.ndarray:
    """Paste crops ``[S, M, n, n]`` at integer top-left ``positions [T, S, M, 2]`` with pixel-wise max ->
    ``[T, S, H, W]``."""
    T, S, M, _ = positions.shape
    n = crops.shape[-1]
    side = canvas + n  # padded canvas: room for a digit whose corner sits at the bound to slide fully out
    frames = np.zeros((T, S, canvas, canvas), dtype=np.uint8)
    for s0 in range(0, S, chunk):
        s1 = min(S, s0 + chunk)
        sprites = crops[s0:s1] * present[s0:s1, :, None, None].astype(np.uint8)  # [s, M, n, n]
        rows = np.arange(s1 - s0)
        pad = np.empty((s1 - s0, side, side), dtype=np.uint8)
        # windows[s, y, x] is the n x n patch at (y, x): indexing it moves whole blocks, not single pixels
        windows = np.lib.stride_tricks.sliding_window_view(pad, (n, n), axis=(1, 2), writeable=True)
        for t in range(T):
            pad.fill(0)
            y, x = positions[t, s0:s1, :, 0], positions[t, s0:s1, :, 1]  # [s, M]
            for m in range(M):
                patch = sprites[:, m] if m == 0 else np.maximum(windows[rows, y[:, m], x[:, m]], sprites[:, m])
                windows[rows, y[:, m], x[:, m]] = patch
            frames[t, s0:s1] = pad[:, :canvas, :canvas]
    return frames


def make_moving_mnist(
    images: np.ndarray,
    labels: np.ndarray,
    num_sequences: int,
    cfg: MovingMNISTConfig = MovingMNISTConfig(),
    seed: int | np.random.Generator = 0,
) -> SequenceSet:
    """Generate ``num_sequences`` sequences from the digit pool ``images [P, 28, 28]`` uint8, ``labels [P]``."""
    if isinstance(num_sequences, bool) or not isinstance(num_sequences, (int, np.integer)):
        raise TypeError(f"num_sequences must be an int, got {type(num_sequences).__name__}")
    if num_sequences < 0:
        raise ValueError(f"num_sequences must be >= 0, got {num_sequences}")
    if not isinstance(cfg, MovingMNISTConfig):
        raise TypeError(f"cfg must be a MovingMNISTConfig, got {type(cfg).__name__}")
    images, labels = np.asarray(images), np.asarray(labels)
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(
            f"need a non-empty digit pool with one label per image, got {len(images)} images and {len(labels)} labels"
        )
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    crops, sizes = crop_digits(images)
    if (sizes > cfg.canvas_size).any():
        raise ValueError(f"digits up to {sizes.max()} px do not fit a {cfg.canvas_size}px canvas; increase canvas_size")
    S, M = num_sequences, cfg.max_digits
    if M * sizes.prod(1).min() > cfg.canvas_size**2:  # cheap necessary condition; the rejection loop catches the rest
        raise ValueError(
            f"{M} digits of at least {sizes.prod(1).min()} px^2 cannot fit without overlap on a "
            f"{cfg.canvas_size}px canvas; use fewer digits (max_digits) or a larger canvas_size"
        )
    n = rng.integers(0, M + 1, S)
    present = np.arange(M)[None] < n[:, None]  # [S, M]
    digits, first = _place_first_frame(sizes, present, cfg, rng)
    pos = np.round(_trajectories(first, cfg, rng)).astype(np.int64)  # [T, S, M, 2]
    frames = _render(crops[digits], pos, present, cfg.canvas_size)
    hw = np.broadcast_to(sizes[digits][None].astype(np.float32), pos.shape)  # [T, S, M, 2]
    boxes = np.concatenate([pos.astype(np.float32), hw], -1) * present[None, ..., None]
    vis_hw = np.clip(np.minimum(pos + hw, cfg.canvas_size) - pos, 0, None) * present[None, ..., None]
    visible_boxes = np.concatenate([pos.astype(np.float32) * present[None, ..., None], vis_hw], -1).astype(np.float32)
    area = np.maximum(hw.prod(-1), 1)
    visible_frac = (vis_hw.prod(-1) / area * present[None]).astype(np.float32)
    return SequenceSet(
        frames,
        boxes.astype(np.float32),
        visible_boxes,
        visible_frac,
        np.where(present, labels[digits], -1).astype(np.int64),
        present,
        np.where(present, np.arange(M)[None], -1).astype(np.int64),
    )


def default_cache_dir() -> Path:
    """``$SQAIR_WORLD_CACHE`` if set, else ``~/.cache/sqair_world``."""
    return Path(os.environ.get("SQAIR_WORLD_CACHE", Path.home() / ".cache" / "sqair_world"))


def _digits(split: str, mnist_dir: str | os.PathLike | None) -> tuple[np.ndarray, np.ndarray, str]:
    if mnist_dir is None:
        if split == "test":
            raise ValueError("the embedded digits have no 'test' split; use 'train' or 'eval', or pass mnist_dir")
        images, labels = load_embedded_mnist(split)
    else:
        images, labels = load_mnist_idx(mnist_dir, split)
    # key the cache by the digits' content, so replaced or edited MNIST files regenerate (~0.1 s for 55k digits)
    digest = hashlib.sha1(np.ascontiguousarray(images).tobytes())
    digest.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return images, labels, f"{'embedded' if mnist_dir is None else 'idx'}:{digest.hexdigest()}"


def load_moving_mnist(
    split: Literal["train", "eval", "test"] = "train",
    num_sequences: int | None = None,
    seed: int = 0,
    mnist_dir: str | os.PathLike | None = None,
    cfg: MovingMNISTConfig = MovingMNISTConfig(),
    cache_dir: str | os.PathLike | None = None,
    cache: bool = True,
) -> SequenceSet:
    """The moving-MNIST split: 60,000 train / 10,000 eval sequences by default, from disjoint digit pools
    (embedded digits, or full MNIST IDX files in ``mnist_dir`` with the authors' split).

    Cached under ``cache_dir`` (default ``$SQAIR_WORLD_CACHE`` or ``~/.cache/sqair_world``) in a file
    keyed by every parameter, so a change of any of them regenerates; the same seed gives the same data.
    """
    if split not in ("train", "eval", "test"):
        raise ValueError(f"split must be 'train', 'eval' or 'test', got {split!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if num_sequences is None:
        num_sequences = 60000 if split == "train" else 10000
    images, labels, source = _digits(split, mnist_dir)
    key = json.dumps(
        {
            "cfg": dataclasses.asdict(cfg),
            "split": split,
            "n": num_sequences,
            "seed": seed,
            "source": source,
            "version": 1,
        },
        sort_keys=True,
    )
    path = (
        Path(cache_dir or default_cache_dir())
        / f"moving_mnist_{split}_{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"
    )
    if cache and path.is_file():
        try:
            with np.load(path) as d:
                return SequenceSet(*(d[f] for f in SequenceSet._fields))
        except Exception:  # a damaged cache file is regenerated, never trusted
            path.unlink(missing_ok=True)
    rng = np.random.default_rng([seed, ("train", "eval", "test").index(split)])
    data = make_moving_mnist(images, labels, num_sequences, cfg, rng)
    if cache:  # uncompressed: loads ~3x faster than it generates; atomic: readers see the old or the whole new file
        atomic_write(path, lambda f: np.savez(f, **data._asdict()))
    return data
