"""A small seeded sprite world: coloured sprites moving along corridors over a fixed maze-like background.

Made in the package for tests of grid discovery (no Atari needed): like a maze game, the background never changes
and the only residual is the sprites, which turn at crossings, meet and pass each other.

    >>> frames, centres = make_sprite_world(num_sequences=2, seq_len=4, seed=0)
    >>> frames.shape, centres.shape
    ((4, 2, 3, 42, 42), (4, 2, 3, 2))
"""

from __future__ import annotations

import numpy as np

COLOURS = np.array([[255, 220, 0], [255, 60, 60], [80, 220, 255], [255, 150, 220], [120, 255, 120]], np.uint8)


def corridor_background(size: int, spacing: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 ``[size, size, 3]`` dark walls with lighter corridors every ``spacing`` px, and the corridor lines."""
    rng = np.random.default_rng(1234)  # the same maze for every seed
    img = np.empty((size, size, 3), np.uint8)
    img[:] = [20, 20, 90]
    img += rng.integers(0, 12, (size, size, 1), dtype=np.uint8)  # a little texture
    lines = np.arange(spacing // 2, size, spacing)
    for c in lines:
        img[max(0, c - 3) : c + 4, :] = [0, 0, 0]
        img[:, max(0, c - 3) : c + 4] = [0, 0, 0]
    return img, lines


def make_sprite_world(
    num_sequences: int,
    seq_len: int,
    seed: int = 0,
    size: int = 42,
    num_sprites: int = 3,
    sprite_hw: tuple[int, int] = (6, 4),
    speed: int = 2,
    spacing: int = 14,
    controlled: bool = False,
) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames uint8 ``[T, S, 3, size, size]`` (time-major, as the trainer reads them) and the sprite centres
    ``[T, S, n, 2]`` (x, y pixels). Each sprite runs along a corridor at ``speed`` px per frame and may turn at a
    crossing; vectorised over sequences and sprites.

    ``controlled``: sprite 0 is a player that follows sticky random actions (0 stay, 1 up, 2 right, 3 left,
    4 down, as Pac-Man's action set) at ``speed`` px per frame anywhere in the frame, and the actions, int64
    ``[T, S]`` (``actions[t]`` taken after frame t), are returned third."""
    if num_sprites > len(COLOURS):
        raise ValueError(f"num_sprites must be <= {len(COLOURS)} (one colour each), got {num_sprites}")
    if num_sequences < 1 or seq_len < 1:
        raise ValueError(f"num_sequences and seq_len must be >= 1, got {num_sequences} and {seq_len}")
    rng = np.random.default_rng(seed)
    background, lines = corridor_background(size, spacing)
    S, n, (h, w) = num_sequences, num_sprites, sprite_hw
    lo, hi = h, size - h
    horizontal = rng.random((S, n)) < 0.5
    lane = rng.choice(lines, (S, n)).astype(np.float64)
    along = rng.uniform(lo, hi, (S, n))
    direction = rng.choice([-1.0, 1.0], (S, n))
    centres = np.zeros((seq_len, S, n, 2))
    player = rng.uniform(lo, hi, (S, 2))
    actions = np.zeros((seq_len, S), np.int64)
    moves = np.array([[0, 0], [0, -1], [1, 0], [-1, 0], [0, 1]], np.float64) * speed
    for t in range(seq_len):
        centres[t] = np.stack([np.where(horizontal, along, lane), np.where(horizontal, lane, along)], -1)
        if controlled:
            centres[t, :, 0] = player
            change = rng.random(S) < 0.3 if t else np.ones(S, bool)
            actions[t] = np.where(change, rng.integers(0, 5, S), actions[t - 1] if t else 0)
            player = np.clip(player + moves[actions[t]], lo, hi)
        along = along + direction * speed
        bounce = (along < lo) | (along > hi)
        direction = np.where(bounce, -direction, direction)
        along = np.clip(along, lo, hi)
        # at a crossing, turn into the other corridor with probability 1/3
        near = np.abs(along[..., None] - lines).min(-1) < speed / 2
        turn = near & (rng.random((S, n)) < 1 / 3)
        crossing = lines[np.abs(along[..., None] - lines).argmin(-1)].astype(np.float64)
        along, lane = np.where(turn, lane, along), np.where(turn, crossing, lane)
        horizontal = np.where(turn, ~horizontal, horizontal)
    frames = np.broadcast_to(background, (seq_len, S, size, size, 3)).copy()
    ys, xs = np.arange(size)[:, None], np.arange(size)[None, :]
    for k in range(n):  # sprites drawn in order (later ones on top); vectorised over time and sequences
        cx, cy = centres[:, :, k, 0, None, None], centres[:, :, k, 1, None, None]
        mask = (np.abs(xs - cx) <= (w - 1) / 2) & (np.abs(ys - cy) <= (h - 1) / 2)
        frames[mask] = COLOURS[k]
    frames = np.ascontiguousarray(frames.transpose(0, 1, 4, 2, 3))
    return (frames, centres, actions) if controlled else (frames, centres)


__all__ = ["corridor_background", "make_sprite_world"]
