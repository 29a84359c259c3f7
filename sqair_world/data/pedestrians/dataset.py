"""The pedestrian data set: a static-camera video -> foreground frames -> 64x64 regions -> sequences of 5 with
per-frame counts, split into training and validation by time, cached to disk.

Pipeline (:func:`preprocess`), following the authors' DukeMTMC preprocessing:

1. every frame of the source goes through background subtraction (or, for the synthetic walkers, the known masks)
   and comes out at width 240 (:mod:`~sqair_world.data.pedestrians.background`);
2. every ``step``-th frame is kept (frame numbers divisible by ``step``, as the authors' ``frame % 30 == 0``; with
   ``all_phases`` each of the ``step`` interleaved phases is kept as its own stream);
3. a grid of 64x64 regions; per kept frame and region the people that count (annotations, more than 25% of the box
   inside) and the authors' rules for invalid (> 3 people) and empty frames, then sequences of 5
   (:mod:`~sqair_world.data.pedestrians.regions`). Without annotations counts are unknown (-1) and a frame is empty
   for a region when less than ``min_foreground`` of it is foreground;
4. the split is by time: validation is the last ``val_fraction`` of the video, and the ``seq_len * step`` frames
   before it belong to neither side, so no validation frame neighbours a training frame. (A split by region would
   leak: regions overlap, and the same people cross neighbouring regions at the same time.)

:func:`load_pedestrians` caches the result under ``$SQAIR_WORLD_CACHE`` (default ``~/.cache/sqair_world``) in a file
keyed by every parameter, the source's identity (paths, sizes, modification times), the annotations and the OpenCV
version, written atomically.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from tqdm.auto import tqdm

from sqair_world.data.moving_mnist import default_cache_dir
from sqair_world.data.pedestrians.background import BackgroundConfig, BackgroundSubtractor, masked_foreground
from sqair_world.data.pedestrians.mot import BoxTable, read_mot
from sqair_world.data.pedestrians.regions import chunk_runs, count_in_regions, frame_status, region_grid, sequence_runs
from sqair_world.data.pedestrians.video import FrameSource, open_video
from sqair_world.data.pedestrians.walkers import WalkersConfig, make_walkers
from sqair_world.utils import atomic_write

_VERSION = 1  # bump when the preprocessing changes what it produces


@dataclass(frozen=True)
class PreprocessConfig:
    """Video -> sequences; defaults are the authors' DukeMTMC settings (59.94 fps video: every 30th frame = 0.5 s).
    For ~7 fps footage such as vtest.avi use ``step=3, all_phases=True``."""

    background: BackgroundConfig = field(default_factory=BackgroundConfig)
    """Background subtraction and the output width (240)."""
    foreground: Literal["subtract", "ground_truth"] = "subtract"
    """'subtract': background subtraction; 'ground_truth': the synthetic walkers' own masks (no subtractor)."""
    step: int = 30
    """Keep every step-th frame (after all frames have fed the background model)."""
    warmup: int = 10
    """With background subtraction, the first frames only train the model and are never kept (KNN calls its first
    few frames all foreground)."""
    all_phases: bool = False
    """Keep all ``step`` interleaved phases as separate streams (``step`` times the data) instead of only frames
    whose number is divisible by ``step``."""
    region_size: int = 64
    """Side of the square regions, pixels of the downscaled frame."""
    region_stride: int = 32
    """Distance between neighbouring regions of the grid, pixels (the last one touches the frame's edge)."""
    seq_len: int = 5
    """T, frames per sequence."""
    max_objects: int = 3
    """A frame with more people in a region is invalid there (it closes the sequence)."""
    threshold: float = 0.25
    """A box counts in a region if more than this fraction of its area lies inside."""
    max_empty: int = 1
    """Empty frames a sequence may take in (besides one it starts with)."""
    min_foreground: float = 0.01
    """Without annotations: a region is empty in a frame where less than this fraction of it is foreground."""
    val_fraction: float = 0.1
    """The last fraction of the video's frames that is validation (0: no validation set)."""
    max_frames: int | None = None
    """Read at most this many frames of the source (None: all)."""

    def __post_init__(self) -> None:
        problems = []
        if self.foreground not in ("subtract", "ground_truth"):
            problems.append(f"foreground must be 'subtract' or 'ground_truth', got {self.foreground!r}")
        if self.step < 1 or self.seq_len < 1 or self.region_size < 1 or self.region_stride < 1:
            problems.append("step, seq_len, region_size and region_stride must be >= 1")
        if self.max_objects < 1 or self.max_empty < 0 or self.warmup < 0:
            problems.append("max_objects must be >= 1, max_empty and warmup >= 0")
        if not 0 <= self.threshold < 1 or not 0 <= self.min_foreground < 1:
            problems.append("threshold and min_foreground are fractions in [0, 1)")
        if not 0 <= self.val_fraction < 1:
            problems.append(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.max_frames is not None and self.max_frames < 1:
            problems.append(f"max_frames must be >= 1 or None, got {self.max_frames}")
        if problems:
            raise ValueError("Invalid PreprocessConfig:\n  " + "\n  ".join(problems))


@dataclass(frozen=True, eq=False)
class PedestrianSet:
    """S sequences of T region crops, time-major like the moving-MNIST data, with their ground truth."""

    frames: np.ndarray
    """uint8 ``[T, S, 3, 64, 64]``: foreground crops (RGB; the model's input is ``frames / 255``)."""
    counts: np.ndarray
    """int64 ``[T, S]``: people counted in the region per frame, -1 where there are no annotations."""
    boxes: np.ndarray
    """float32 ``[T, S, K, 4]`` (left, top, width, height) in region pixels of the counted people (K =
    ``max_objects``; boxes may extend past the region), 0 in unused slots."""
    ids: np.ndarray
    """int64 ``[T, S, K]``: their track identities, -1 in unused slots."""
    frame_numbers: np.ndarray
    """int64 ``[T, S]``: the source's 1-based frame numbers."""
    regions: np.ndarray
    """int64 ``[S, 2]``: (y, x) top-left corner of the region in the downscaled frame."""

    def __len__(self) -> int:
        """S, the number of sequences."""
        return self.frames.shape[1]

    @property
    def has_counts(self) -> bool:
        """Whether the counts come from annotations (else they are -1)."""
        return bool(len(self)) and bool((self.counts >= 0).all())

    def subset(self, idx) -> PedestrianSet:
        """Sequences ``idx`` (slice, index array or boolean mask)."""
        return PedestrianSet(
            self.frames[:, idx],
            self.counts[:, idx],
            self.boxes[:, idx],
            self.ids[:, idx],
            self.frame_numbers[:, idx],
            self.regions[idx],
        )

    @staticmethod
    def concat(sets: list[PedestrianSet]) -> PedestrianSet:
        """Sequences of all ``sets`` side by side (e.g. several cameras)."""
        names = [f.name for f in dataclasses.fields(PedestrianSet)]
        return PedestrianSet(
            *(np.concatenate([getattr(s, n) for s in sets], 0 if n == "regions" else 1) for n in names)
        )


class PedestrianData:
    """Training and validation sequences of one source, and what made them (``meta``: JSON-able dict)."""

    def __init__(self, train: PedestrianSet, val: PedestrianSet, meta: dict) -> None:
        self.train, self.val, self.meta = train, val, meta

    def split(self, name: Literal["train", "val"]) -> PedestrianSet:
        """``'train'`` or ``'val'``."""
        if name not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {name!r}")
        return self.train if name == "train" else self.val

    def __repr__(self) -> str:
        return f"PedestrianData(train={len(self.train)}, val={len(self.val)} sequences, {self.meta.get('source')})"


def _foreground(
    source: FrameSource, cfg: PreprocessConfig, masks: np.ndarray | None, progress: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Every frame through the subtractor, the kept ones stored: foreground uint8 ``[K, h, w, 3]``, mask bool
    ``[K, h, w]``, frame numbers ``[K]``, and the first and last frame number read."""
    subtract = cfg.foreground == "subtract"
    subtractor = BackgroundSubtractor(cfg.background) if subtract else None
    if not subtract and masks is None:
        raise ValueError("foreground='ground_truth' needs the frames' masks (the synthetic walkers'); use 'subtract'")
    total = source.num_frames if cfg.max_frames is None else min(cfg.max_frames, source.num_frames or cfg.max_frames)
    images, fg_masks, numbers = [], [], []
    first = last = None
    read = 0
    with tqdm(total=total, desc="background subtraction", unit="frame", disable=not progress, leave=False) as bar:
        for number, frame in source:
            if cfg.max_frames is not None and read >= cfg.max_frames:
                break
            keep = (cfg.all_phases or number % cfg.step == 0) and not (subtract and read < cfg.warmup)
            if subtractor is not None:
                image, mask = subtractor.apply(frame)  # every frame feeds the model; subsampling comes after
            elif keep:
                if read >= len(masks):
                    raise ValueError(f"{len(masks)} masks for a source with more frames; pass one mask per frame")
                image, mask = masked_foreground(frame, masks[read], cfg.background)
            if keep:
                images.append(image)
                fg_masks.append(mask)
                numbers.append(number)
            first = number if first is None else first
            last, read = number, read + 1
            bar.update()
    if not read:
        raise ValueError(f"{source!r} yielded no frame")
    if not numbers:
        why = (
            f"all were warm-up frames (warmup={cfg.warmup})"
            if subtract and read <= cfg.warmup
            else f"none has a number divisible by step={cfg.step}"
        )
        raise ValueError(f"{source!r}: no frame kept of the {read} read: {why}")
    return np.stack(images), np.stack(fg_masks), np.asarray(numbers, dtype=np.int64), first, last


def _region_fraction(masks: np.ndarray, regions: np.ndarray, size: int) -> np.ndarray:
    """Fraction of foreground pixels per frame and region, ``[K, h, w]`` -> ``[K, R]``, by an integral image."""
    integral = np.stack([cv2.integral(m.view(np.uint8)) for m in masks])  # [K, h + 1, w + 1]
    y, x = regions[:, 0], regions[:, 1]
    total = integral[:, y + size, x + size] - integral[:, y, x + size] - integral[:, y + size, x] + integral[:, y, x]
    return total / float(size * size)


def preprocess(
    source: FrameSource,
    cfg: PreprocessConfig = PreprocessConfig(),
    annotations: BoxTable | None = None,
    annotation_width: float | None = None,
    masks: np.ndarray | None = None,
    progress: bool = True,
) -> PedestrianData:
    """Build the training and validation sequences of ``source`` (no cache: see :func:`load_pedestrians`).

    ``annotations``: boxes in the pixels of a frame ``annotation_width`` wide (None: the source's width; DukeMTMC's
    ground truth is 1920 wide), frames numbered like the source's. ``masks``: bool ``[F, H, W]`` per source frame,
    for ``cfg.foreground == 'ground_truth'``. Raises ``ValueError`` when a split gets no sequence."""
    images, fg_masks, numbers, first, last = _foreground(source, cfg, masks, progress)
    K, h, w = fg_masks.shape
    size, T, M = cfg.region_size, cfg.seq_len, cfg.max_objects
    regions = region_grid(h, w, size, cfg.region_stride)
    if annotations is not None:
        scale = w / float(annotation_width or source.frame_size[1])
        boxes, ids, valid = annotations.scaled(scale).dense(numbers)
        counts, fraction_sum, inside = count_in_regions(boxes, valid, regions, size, cfg.threshold)
        invalid, empty = frame_status(counts, fraction_sum, M)
    else:
        empty = _region_fraction(fg_masks, regions, size) < cfg.min_foreground
        invalid = np.zeros_like(empty)
    # split by time: validation = the last val_fraction of the frames, the seq_len * step frames before it unused
    boundary = last if cfg.val_fraction == 0 else first + int((last - first + 1) * (1 - cfg.val_fraction)) - 1
    is_val = numbers > boundary
    invalid = invalid | ((numbers > boundary - T * cfg.step) & ~is_val)[:, None]
    phase = numbers % cfg.step if cfg.all_phases else np.zeros(K, np.int64)
    seq_region, seq_frames = [], []
    for p in np.unique(phase):
        sel = np.flatnonzero(phase == p)  # kept frames of this phase, in time order
        stream, start, stop = sequence_runs(invalid[sel], empty[sel], cfg.max_empty)
        region, begin = chunk_runs(stream, start, stop, T)
        seq_region.append(region)
        seq_frames.append(sel[begin[:, None] + np.arange(T)])  # [S, T] indices of kept frames
    region = np.concatenate(seq_region)
    kidx = np.concatenate(seq_frames).reshape(-1, T)
    part = is_val[kidx[:, 0]]
    order = np.lexsort((region, numbers[kidx[:, 0]], part))
    region, kidx, part = region[order], kidx[order], part[order]
    ys, xs = regions[region, 0], regions[region, 1]
    ar = np.arange(size)
    crops = images[kidx[..., None, None], (ys[:, None] + ar)[:, None, :, None], (xs[:, None] + ar)[:, None, None, :]]
    S = len(region)
    if annotations is not None:
        seq_counts = counts[kidx, region[:, None]]
        seq_inside = inside[kidx, region[:, None]]  # [S, T, Kmax]
        slot = np.argsort(~seq_inside, axis=-1, kind="stable")[..., :M]  # counted boxes first, in id order
        used = np.take_along_axis(seq_inside, slot, -1)
        seq_boxes = np.take_along_axis(boxes[kidx], slot[..., None], -2)
        seq_boxes = seq_boxes - np.stack([xs, ys, np.zeros(S), np.zeros(S)], -1)[:, None, None]
        seq_boxes = np.where(used[..., None], seq_boxes, 0.0)
        seq_ids = np.where(used, np.take_along_axis(ids[kidx], slot, -1), -1)
        pad = M - used.shape[-1]  # fewer boxes per frame than slots in the whole video
        seq_boxes = np.pad(seq_boxes, ((0, 0), (0, 0), (0, pad), (0, 0)))
        seq_ids = np.pad(seq_ids, ((0, 0), (0, 0), (0, pad)), constant_values=-1)
    else:
        seq_counts = np.full((S, T), -1, np.int64)
        seq_boxes, seq_ids = np.zeros((S, T, M, 4)), np.full((S, T, M), -1, np.int64)
    full = PedestrianSet(
        np.ascontiguousarray(crops.transpose(1, 0, 4, 2, 3)),
        np.ascontiguousarray(seq_counts.T).astype(np.int64),
        np.ascontiguousarray(seq_boxes.transpose(1, 0, 2, 3)).astype(np.float32),
        np.ascontiguousarray(seq_ids.transpose(1, 0, 2)).astype(np.int64),
        np.ascontiguousarray(numbers[kidx].T),
        regions[region],
    )
    meta = {
        "source": repr(source),
        "frames_read": int(last - first + 1),
        "first_frame": int(first),
        "last_frame": int(last),
        "frames_kept": int(K),
        "frame_size": list(source.frame_size),
        "output_size": [int(h), int(w)],
        "regions": int(len(regions)),
        "foreground": cfg.foreground if cfg.foreground != "subtract" else cfg.background.resolved().method,
        "val_after_frame": int(boundary),
        "annotated": annotations is not None,
    }
    data = PedestrianData(full.subset(~part), full.subset(part), meta)
    _check_not_empty(data, cfg, invalid, empty)
    return data


def _check_not_empty(data: PedestrianData, cfg: PreprocessConfig, invalid: np.ndarray, empty: np.ndarray) -> None:
    missing = [name for name, s in (("training", data.train), ("validation", data.val)) if not len(s)]
    if cfg.val_fraction == 0 and missing == ["validation"]:
        return
    if missing:
        m = data.meta
        raise ValueError(
            f"no {' and no '.join(missing)} sequence of {cfg.seq_len} frames from {m['source']}: "
            f"{m['frames_kept']} of {m['frames_read']} frames kept (step {cfg.step}), {m['regions']} regions; "
            f"{invalid.mean():.0%} of frame-regions invalid (> {cfg.max_objects} people or next to the split), "
            f"{empty.mean():.0%} empty. Use a longer video, a smaller step (or all_phases=True), "
            "a smaller region_stride, or a smaller val_fraction"
        )


def _annotation_key(annotations: BoxTable | None) -> str | None:
    if annotations is None:
        return None
    digest = hashlib.sha1()
    for name in ("frame", "ids", "boxes", "conf", "xyz"):
        digest.update(np.ascontiguousarray(getattr(annotations, name)).tobytes())
    return digest.hexdigest()


def load_pedestrians(
    source: str | os.PathLike | FrameSource | WalkersConfig,
    cfg: PreprocessConfig = PreprocessConfig(),
    annotations: BoxTable | str | os.PathLike | None = None,
    annotation_width: float | None = None,
    cache_dir: str | os.PathLike | None = None,
    cache: bool = True,
    progress: bool = True,
) -> PedestrianData:
    """Training and validation sequences of a video, a frame folder (see :func:`~.video.open_video`), any
    :class:`~.video.FrameSource`, or the synthetic walkers of a :class:`~.walkers.WalkersConfig` (their ground truth
    gives the counts; ``cfg.foreground='ground_truth'`` uses their exact masks instead of background subtraction).

    ``annotations``: a :class:`~.mot.BoxTable` or a MOTChallenge ``gt.txt`` path, in the pixels of a frame
    ``annotation_width`` wide (None: the source's own). Cached as described in the module docstring."""
    if isinstance(source, WalkersConfig):
        source_key = f"walkers:{json.dumps(dataclasses.asdict(source), sort_keys=True)}"
    else:
        if not isinstance(source, FrameSource):
            source = open_video(source)
        source_key = source.fingerprint()
        if cfg.foreground == "ground_truth":
            raise ValueError("foreground='ground_truth' needs the synthetic walkers' masks; real video uses 'subtract'")
    if annotations is not None and not isinstance(annotations, BoxTable):
        annotations = read_mot(annotations)
    if cfg.foreground == "subtract":
        cfg = dataclasses.replace(cfg, background=cfg.background.resolved())  # the key names the method that runs
    key = json.dumps(
        {
            "cfg": dataclasses.asdict(cfg),
            "source": source_key,
            "annotations": _annotation_key(annotations),
            "annotation_width": annotation_width,
            "opencv": cv2.__version__,
            "version": _VERSION,
        },
        sort_keys=True,
    )
    path = Path(cache_dir or default_cache_dir()) / f"pedestrians_{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"
    if cache and path.is_file():
        try:
            return _load(path)
        except Exception:  # a damaged cache file is rebuilt, never trusted
            path.unlink(missing_ok=True)
    masks = None
    if isinstance(source, WalkersConfig):
        video = make_walkers(source)
        annotations = video.gt if annotations is None else annotations
        masks = video.masks if cfg.foreground == "ground_truth" else None
        source = video.source()
    data = preprocess(source, cfg, annotations, annotation_width, masks, progress)
    if cache:  # compressed: the crops are mostly black background
        atomic_write(path, lambda f: _save(f, data))
    return data


_FIELDS = tuple(f.name for f in dataclasses.fields(PedestrianSet))


def _save(f, data: PedestrianData) -> None:
    arrays = {f"{split}_{name}": getattr(data.split(split), name) for split in ("train", "val") for name in _FIELDS}
    np.savez_compressed(f, meta=np.array(json.dumps(data.meta)), **arrays)


def _load(path: Path) -> PedestrianData:
    with np.load(path) as d:
        sets = [PedestrianSet(*(d[f"{split}_{name}"] for name in _FIELDS)) for split in ("train", "val")]
        return PedestrianData(*sets, json.loads(str(d["meta"])))


__all__ = ["PedestrianData", "PedestrianSet", "PreprocessConfig", "load_pedestrians", "preprocess"]
