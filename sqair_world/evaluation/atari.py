"""Quality of a SQAIR Atari checkpoint against the console RAM (evaluation only), on recorded arrays.

:func:`sqair_world.envs.rollouts.play_atari` plays the game and records a :class:`SpriteRollout`;
``python -m sqair_world.evaluate atari`` runs both. Ground truth: the sprite centres read from RAM (player,
ghosts, fruit) mapped to the frame. Counting accuracy (and mean absolute error) compares the number of present
slots with the number of sprites inside the frame; recall, precision, MOTA and IDF1 match inferred box centres to
sprite centres within ``max_distance`` pixels (motmetrics). ``found_by_sprite``: per sprite, the fraction of frames
with the sprite inside in which some inferred box centre lies within that distance of it.

Sprites drawn on top of each other (Pac-Man's ghosts stacked in their house) show one blob: for counting and MOT
they are merged into one ground-truth object (centres under ``merge_distance`` px apart, transitively), which takes
the identity of its lowest-numbered sprite. Two matching rules (``rule``): "frame", distances in the 84x84 frame;
"native", OCAtari's, distances in the native 160x210 pixels (``SpriteRollout.native_scale``).
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import motmetrics as mm
import numpy as np
from scipy.sparse.csgraph import connected_components


class SpriteRollout(NamedTuple):
    """Per recorded step t of a slot-wrapped maze game (N slots, S sprites)."""

    pres: np.ndarray  #: float ``[T, N]`` slot presence (the observation's ``pres``)
    where: np.ndarray  #: float ``[T, N, 4]`` (x_centre, y_centre, w, h) as fractions of the frame
    ids: np.ndarray  #: int ``[T, N]`` track identities, -1 for empty slots
    sprites: np.ndarray  #: float ``[T, S, 2]`` (x, y) pixel centres of the sprites in the frame, from RAM
    bounds: np.ndarray  #: float ``[T]`` the model's per-step bound (nats)
    frame_hw: tuple[int, int]  #: (H, W) pixels of the frame
    names: tuple[str, ...]  #: ``[S]`` sprite names, player first
    native_scale: tuple[float, float] = (1.0, 1.0)  #: native pixels per frame pixel (x, y), for the "native" rule
    frames: np.ndarray | None = None  #: uint8 ``[T, H, W, C]`` the frames the model saw, if recorded
    episodes: np.ndarray | None = None  #: int ``[T]`` episode of each step: identities never carry across episodes
    what: np.ndarray | None = None  #: float ``[T, N, D]`` the slots' appearance codes (the observation's ``what``)


def sprite_distances(sprites: np.ndarray, centres: np.ndarray, max_distance: float) -> np.ndarray:
    """Pixel distances ``[S, M]`` between sprite centres ``[S, 2]`` and inferred box centres ``[M, 2]``; NaN (no
    match allowed) beyond ``max_distance``."""
    d2 = mm.distances.norm2squared_matrix(sprites, centres, max_d2=max_distance**2)
    return np.sqrt(d2).reshape(len(sprites), len(centres))  # motmetrics returns [0, 0] when a side is empty


def sprites_found(distances: np.ndarray) -> np.ndarray:
    """bool ``[S]``: some inferred box centre lies within the distance of sprite s (``distances`` from
    :func:`sprite_distances`). Unlike MOT recall, one box may stand for two overlapping sprites."""
    return (~np.isnan(distances)).any(1)


def sprites_inside(truth: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    """bool ``[S]``: which sprite centres ``truth [S, 2]`` (x, y pixels) lie inside the ``(H, W)`` frame (the others
    are off-screen, in a tunnel, or parked outside by the game: not ground truth)."""
    H, W = frame_hw
    return (truth[:, 0] >= 0) & (truth[:, 0] < W) & (truth[:, 1] >= 0) & (truth[:, 1] < H)


def merge_stacked(truth: np.ndarray, inside: np.ndarray, merge_distance: float) -> tuple[np.ndarray, np.ndarray]:
    """Merge sprites drawn on top of each other: ``truth [S, 2]`` centres, ``inside [S]`` -> (centres ``[G, 2]``,
    identities ``[G]``) of the ground-truth objects: groups of inside sprites linked by centres under
    ``merge_distance`` apart, at their mean centre, named by their lowest sprite index."""
    idx = np.flatnonzero(inside)
    if len(idx) == 0:
        return np.zeros((0, 2)), np.zeros(0, int)
    pts = truth[idx]
    near = np.linalg.norm(pts[:, None] - pts[None], axis=-1) < merge_distance
    n, label = connected_components(near, directed=False)
    centres = np.stack([pts[label == g].mean(0) for g in range(n)])
    ids = np.array([idx[label == g].min() for g in range(n)])
    return centres, ids


def sprite_scores(
    roll: SpriteRollout,
    max_distance: float = 5.0,
    rule: str = "frame",
    merge_distance: float = 3.0,
    pres: np.ndarray | None = None,
    where: np.ndarray | None = None,
    ids: np.ndarray | None = None,
) -> dict[str, Any]:
    """Counting accuracy, MOTA/MOTP/IDF1, recall and precision against the RAM sprite centres (stacked sprites
    merged), and per sprite the fraction of frames (with it inside) where it is found.

    ``rule``: "frame" (distances in frame pixels) or "native" (OCAtari: native pixels). ``pres``, ``where``, ``ids``
    replace the rollout's slots (another tracker's, such as :class:`~sqair_world.evaluation.classical.ClassicalTracker`
    on ``roll.frames``).
    """
    if rule not in ("frame", "native"):
        raise ValueError(f"rule must be 'frame' (84x84 pixels) or 'native' (OCAtari, 160x210 pixels), got {rule!r}")
    pres = roll.pres if pres is None else pres
    where = roll.where if where is None else where
    ids = roll.ids if ids is None else ids
    H, W = roll.frame_hw
    scale = np.asarray(roll.native_scale if rule == "native" else (1.0, 1.0))
    acc = mm.MOTAccumulator(auto_id=True)
    names = roll.names
    found, seen = np.zeros(len(names)), np.zeros(len(names))  # per sprite: frames found / inside
    hits, count_err = [], []
    episodes = roll.episodes if roll.episodes is not None else np.zeros(len(pres), int)
    for p, w, i, truth, ep in zip(pres, where, ids, roll.sprites, episodes):
        inside = sprites_inside(truth, roll.frame_hw)
        present = p > 0
        centres = w[present, :2] * [W, H] * scale
        objects, object_ids = merge_stacked(truth * scale, inside, merge_distance * float(scale.min()))
        hits.append(present.sum() == len(objects))
        count_err.append(abs(int(present.sum()) - len(objects)))
        found += sprites_found(sprite_distances(truth * scale, centres, max_distance)) & inside
        seen += inside
        # a new episode starts new ground-truth objects and new tracks (the trackers restart their ids at reset)
        acc.update(
            (object_ids + ep * 1000).tolist(),
            (i[present] + ep * 10**9).tolist(),
            sprite_distances(objects, centres, max_distance),
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas deprecation noise inside motmetrics
        summary = mm.metrics.create().compute(
            acc, metrics=["mota", "motp", "idf1", "num_switches", "recall", "precision"], name="run"
        )
    return {
        "rule": rule,
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
