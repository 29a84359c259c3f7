"""Quality of a SQAIR Atari checkpoint against the console RAM (evaluation only), on recorded arrays.

:func:`sqair_world.envs.rollouts.play_atari` plays the game and records a :class:`SpriteRollout`;
``python -m sqair_world.evaluate atari`` runs both. Ground truth: the sprite centres read from RAM (player,
ghosts, fruit) mapped to the frame. Counting accuracy (and mean absolute error) compares the number of present
slots with the number of sprites inside the frame; recall, precision, MOTA and IDF1 match inferred box centres to
sprite centres within ``max_distance`` pixels (motmetrics). ``found_by_sprite``: per sprite, the fraction of frames
with the sprite inside in which some inferred box centre lies within that distance of it.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import motmetrics as mm
import numpy as np


class SpriteRollout(NamedTuple):
    """Per recorded step t of a slot-wrapped maze game (N slots, S sprites)."""

    pres: np.ndarray  #: float ``[T, N]`` slot presence (the observation's ``pres``)
    where: np.ndarray  #: float ``[T, N, 4]`` (x_centre, y_centre, w, h) as fractions of the frame
    ids: np.ndarray  #: int ``[T, N]`` track identities, -1 for empty slots
    sprites: np.ndarray  #: float ``[T, S, 2]`` (x, y) pixel centres of the sprites in the frame, from RAM
    bounds: np.ndarray  #: float ``[T]`` the model's per-step bound (nats)
    frame_hw: tuple[int, int]  #: (H, W) pixels of the frame
    names: tuple[str, ...]  #: ``[S]`` sprite names, player first


def sprite_distances(sprites: np.ndarray, centres: np.ndarray, max_distance: float) -> np.ndarray:
    """Pixel distances ``[S, M]`` between sprite centres ``[S, 2]`` and inferred box centres ``[M, 2]``; NaN (no
    match allowed) beyond ``max_distance``."""
    d2 = mm.distances.norm2squared_matrix(sprites, centres, max_d2=max_distance**2)
    return np.sqrt(d2).reshape(len(sprites), len(centres))  # motmetrics returns [0, 0] when a side is empty


def sprites_found(distances: np.ndarray) -> np.ndarray:
    """bool ``[S]``: some inferred box centre lies within the distance of sprite s (``distances`` from
    :func:`sprite_distances`). Unlike MOT recall, one box may stand for two overlapping sprites."""
    return (~np.isnan(distances)).any(1)


def sprite_scores(roll: SpriteRollout, max_distance: float = 5.0) -> dict[str, Any]:
    """Counting accuracy, MOTA/MOTP/IDF1, recall and precision against the RAM sprite centres, and per sprite the
    fraction of frames (with it inside) where it is found."""
    H, W = roll.frame_hw
    acc = mm.MOTAccumulator(auto_id=True)
    names = roll.names
    found, seen = np.zeros(len(names)), np.zeros(len(names))  # per sprite: frames found / inside
    hits, count_err = [], []
    for pres, where, ids, truth in zip(roll.pres, roll.where, roll.ids, roll.sprites):
        inside = (truth[:, 0] >= 0) & (truth[:, 0] < W) & (truth[:, 1] >= 0) & (truth[:, 1] < H)
        present = pres > 0
        centres = where[present, :2] * [W, H]
        hits.append(present.sum() == inside.sum())
        count_err.append(abs(int(present.sum()) - int(inside.sum())))
        d = sprite_distances(truth, centres, max_distance)  # [S, M]
        found += sprites_found(d) & inside
        seen += inside
        acc.update(np.flatnonzero(inside).tolist(), ids[present].tolist(), d[inside])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas deprecation noise inside motmetrics
        summary = mm.metrics.create().compute(
            acc, metrics=["mota", "motp", "idf1", "num_switches", "recall", "precision"], name="run"
        )
    return {
        "count_acc": float(np.mean(hits)),
        "count_mean_abs_error": float(np.mean(count_err)),
        "recall": float(summary["recall"].iloc[0]),
        "precision": float(summary["precision"].iloc[0]),
        "mota": float(summary["mota"].iloc[0]),
        "motp_px": float(summary["motp"].iloc[0]),
        "idf1": float(summary["idf1"].iloc[0]),
        "num_switches": int(summary["num_switches"].iloc[0]),
        "mean_step_bound": float(np.mean(roll.bounds)),
        "max_distance_px": max_distance,
        "found_by_sprite": {n: round(float(f / max(c, 1)), 3) for n, f, c in zip(names, found, seen)},
    }
