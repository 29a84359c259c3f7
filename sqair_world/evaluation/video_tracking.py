"""Online tracking of a whole static-camera video with a SQAIR model trained on 64x64 regions (paper §4.2).

The model sees what it was trained on: background-subtracted frames cut to width 240, tiled into the same grid of
overlapping 64x64 regions as the training data (:func:`~sqair_world.data.pedestrians.region_grid`), every
``step``-th frame. All regions are one batch of rows of the online tracker, so one model call tracks the frame.

Three steps turn per-region slots into video tracks:

1. **Regions**: SQAIR's propagation keeps a person's identity inside a region; a slot is the key
   ``(region, identity)``.
2. **Merge**: slots over (almost) no foreground are dropped; overlapping regions see the same person, and a
   detection whose box lies at least ``merge_overlap`` inside another's (intersection over the smaller box) is the
   same person, with the box of the region that sees it most centrally (a region's border cuts people in half, and
   the half-person box of the other region lies inside the whole one, overlapping it by a small IoU).
3. **Link**: a person keeps the video identity of any of its keys seen on the previous processed frame (SQAIR's
   identities carry it); a person whose keys are all new (entering a region, or rediscovered) is matched to the
   tracks of the last ``max_gap`` processed frames that nobody claimed, by the distance of its centre from where each
   track's smoothed velocity puts it now (Hungarian, in box heights), and else starts a new track.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import motmetrics as mm
import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from sqair_world.data.pedestrians import BackgroundConfig, BackgroundSubtractor, BoxTable, FrameSource, region_grid
from sqair_world.evaluation.metrics import TrackingScores, tracking_scores
from sqair_world.model.spatial import where_to_box
from sqair_world.utils import box_to_pixels


@dataclass(frozen=True)
class VideoTrackerConfig:
    """How a region model tracks a whole video."""

    step: int = 3
    """Track every step-th frame: the frame step the model was trained at (the background model sees every frame)."""
    region_stride: int = 32
    """Pixels between regions of the 240-wide frame (the training data's grid)."""
    merge_overlap: float = 0.4
    """Detections of overlapping regions whose intersection covers at least this share of the smaller box are one
    person (by IoU >= 0.3 until 2026-12-07: half-person views of a region's border stayed separate people;
    docs/pedestrians.md)."""
    link_distance: float = 0.5
    """A person with only new keys continues an unclaimed track whose predicted centre lies within this many of the
    track's box heights (people move sideways by more than their width between processed frames, so boxes of one
    person often do not overlap; docs/pedestrians.md, PETS 2009 ground truth)."""
    max_gap: int = 5
    """Processed frames a track may go unseen and still be continued."""
    min_size: float = 2.0
    """Detections narrower or lower than this (pixels of the 240-wide frame) are dropped."""
    min_foreground: float = 0.1
    """Detections whose box holds less than this fraction of foreground pixels are dropped: SQAIR's learned count
    prior lets the model keep slots present over empty background at little cost (docs/pedestrians.md); 0 keeps all."""
    warmup: int = 10
    """Frames that only train the background model before tracking starts."""
    background: BackgroundConfig = field(default_factory=BackgroundConfig)
    """The background subtraction (the authors' recipe by default, as in training)."""

    def __post_init__(self) -> None:
        if self.step < 1 or self.region_stride < 1 or self.max_gap < 0 or self.warmup < 0:
            raise ValueError(
                f"step and region_stride must be >= 1, max_gap and warmup >= 0; got step={self.step}, "
                f"region_stride={self.region_stride}, max_gap={self.max_gap}, warmup={self.warmup}"
            )
        if not 0 < self.merge_overlap <= 1:
            raise ValueError(f"merge_overlap is a share of the smaller box in (0, 1], got {self.merge_overlap}")
        if self.link_distance <= 0:
            raise ValueError(f"link_distance is a distance in box heights, > 0; got {self.link_distance}")


class Detections(NamedTuple):
    """People found on one frame, in pixels of the 240-wide foreground frame."""

    boxes: np.ndarray  #: float64 [D, 4] (left, top, width, height)
    keys: list[list[tuple[int, int]]]  #: per person, the (region, SQAIR identity) slots that saw it


class TrackedFrame(NamedTuple):
    """One processed frame: the source's number and image, and its tracks in the source's pixels."""

    number: int  #: 1-based frame number of the source
    frame: np.ndarray  #: RGB uint8 [H, W, 3] as read
    foreground: np.ndarray  #: RGB uint8 [h, w, 3], the model's input frame (width 240)
    boxes: np.ndarray  #: float64 [D, 4] (left, top, width, height), source pixels
    ids: np.ndarray  #: int64 [D] video track identities


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes ``a [A, 4]`` and ``b [B, 4]`` (left, top, width, height) -> ``[A, B]`` (0 without overlap), by
    motmetrics' ``boxiou`` as :func:`~sqair_world.evaluation.metrics.iou_distance` does."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    return mm.distances.boxiou(a[:, None], b[None]).reshape(len(a), len(b))


class RegionTracker:
    """The model's online tracker over the grid of regions of a ``height x width`` foreground frame; rows are
    regions. ``step(frame)`` returns boxes ``[R, N, 4]`` (frame pixels), SQAIR identities ``[R, N]`` (-1: absent)
    and each box's distance from its region's nearest edge ``[R, N]`` (pixels)."""

    def __init__(self, model: torch.nn.Module, height: int, width: int, stride: int = 32) -> None:
        c, self.size, size_w = model.cfg.image_shape
        if c != 3 or self.size != size_w:
            raise ValueError(
                f"video tracking needs a model of square colour regions, got frames {model.cfg.image_shape}"
            )
        if height < self.size or width < self.size:
            raise ValueError(f"the foreground frame {height}x{width} is smaller than the model's {self.size}px regions")
        self.model = model
        self.device = next(model.parameters()).device
        self.regions = region_grid(height, width, self.size, stride)  # [R, 2] (y, x)
        self.state = None

    @torch.no_grad()
    def step(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ar = np.arange(self.size)
        ys, xs = self.regions[:, 0], self.regions[:, 1]
        crops = frame[(ys[:, None] + ar)[:, :, None], (xs[:, None] + ar)[:, None, :]]  # [R, S, S, 3]
        x = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device).permute(0, 3, 1, 2).float().div_(255)
        out = self.model.online_step(self.state, x)
        self.state = out.state
        z = out.state.z
        boxes = box_to_pixels(where_to_box(z.where.float()), self.size, self.size).cpu().numpy().astype(np.float64)
        ids = torch.where(z.pres > 0, z.id, -1).cpu().numpy()
        c = centre(boxes)
        margin = np.minimum(c, self.size - c).min(-1)  # distance of the centre from the region's edge
        boxes[..., 0] += xs[:, None]
        boxes[..., 1] += ys[:, None]
        return boxes, ids, margin


def foreground_fraction(mask: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Fraction of foreground pixels inside each box: masks bool ``[..., H, W]`` and boxes ``[..., N, 4]`` (left, top,
    width, height; clipped to the frame) with the same leading axes -> ``[..., N]``, from integral images."""
    lead, (H, W) = mask.shape[:-2], mask.shape[-2:]
    m = mask.reshape(-1, H, W)
    b = np.asarray(boxes, np.float64).reshape(m.shape[0], -1, 4)
    integral = np.pad(np.cumsum(np.cumsum(m, 1, dtype=np.int64), 2), ((0, 0), (1, 0), (1, 0)))
    x0 = np.clip(np.floor(b[..., 0]), 0, W).astype(np.int64)
    y0 = np.clip(np.floor(b[..., 1]), 0, H).astype(np.int64)
    x1 = np.clip(np.ceil(b[..., 0] + b[..., 2]), 0, W).astype(np.int64)
    y1 = np.clip(np.ceil(b[..., 1] + b[..., 3]), 0, H).astype(np.int64)
    rows = np.arange(len(m))[:, None]
    inside = integral[rows, y1, x1] - integral[rows, y0, x1] - integral[rows, y1, x0] + integral[rows, y0, x0]
    return (inside / np.maximum((x1 - x0) * (y1 - y0), 1)).reshape(*lead, -1)


def overlap_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over the smaller box's area of boxes ``a [A, 4]`` and ``b [B, 4]`` (left, top, width, height) ->
    ``[A, B]``: 1 when one box lies inside the other, whatever their sizes."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    w = np.minimum(a[:, None, 0] + a[:, None, 2], b[None, :, 0] + b[None, :, 2]) - np.maximum(
        a[:, None, 0], b[None, :, 0]
    )
    h = np.minimum(a[:, None, 1] + a[:, None, 3], b[None, :, 1] + b[None, :, 3]) - np.maximum(
        a[:, None, 1], b[None, :, 1]
    )
    inter = np.clip(w, 0, None) * np.clip(h, 0, None)
    smaller = np.minimum((a[:, 2] * a[:, 3])[:, None], (b[:, 2] * b[:, 3])[None])
    return np.divide(inter, smaller, out=np.zeros_like(inter), where=smaller > 0)


def merge_regions(
    boxes: np.ndarray,
    ids: np.ndarray,
    margin: np.ndarray,
    merge_overlap: float,
    min_size: float,
    support: np.ndarray | None = None,
    min_support: float = 0.0,
) -> Detections:
    """One detection per person from the slots of overlapping regions (``RegionTracker.step``'s output): the most
    central view of a person first, every other view lying ``merge_overlap`` inside it (or it inside the view) joins
    it. Slots whose ``support [R, N]`` (foreground fraction of the box) is below ``min_support`` are dropped first."""
    r, n = np.nonzero(ids >= 0)
    b = boxes[r, n]
    keep = (b[:, 2] >= min_size) & (b[:, 3] >= min_size)
    if support is not None:
        keep &= support[r, n] >= min_support
    r, n, b = r[keep], n[keep], b[keep]
    order = np.argsort(-margin[r, n], kind="stable")
    overlap = overlap_matrix(b, b)
    owner = np.full(len(b), -1)
    people: list[int] = []
    for i in order:  # greedy over the few detections of one frame, most central first
        if people:
            best = max(people, key=lambda p: overlap[i, p])
            if overlap[i, best] >= merge_overlap:
                owner[i] = best
                continue
        people.append(i)
        owner[i] = i
    keys = [[(int(r[j]), int(ids[r[j], n[j]])) for j in np.flatnonzero(owner == p)] for p in people]
    return Detections(b[people] if people else np.zeros((0, 4)), keys)


class IdentityLinker:
    """Video identities for the people of successive frames (step 3 of the module docstring). ``smoothing``: the
    old velocity's weight in the exponential average that predicts where an unseen track is now."""

    def __init__(self, link_distance: float = 0.5, max_gap: int = 5, smoothing: float = 0.5) -> None:
        self.link_distance, self.max_gap, self.smoothing = link_distance, max_gap, smoothing
        self.key_to_id: dict[tuple[int, int], int] = {}
        self.last_box: dict[int, np.ndarray] = {}
        self.last_seen: dict[int, int] = {}
        self.velocity: dict[int, np.ndarray] = {}  #: centre pixels per processed frame, exponentially smoothed
        self.frame = 0
        self.next_id = 1

    def update(self, det: Detections) -> np.ndarray:
        """int64 ``[D]`` identities of ``det``'s people (1-based, never reused)."""
        self.frame += 1
        D = len(det.keys)
        out = np.full(D, -1, dtype=np.int64)
        claims: dict[int, list[tuple[float, int]]] = {}
        for d, keys in enumerate(det.keys):
            known = [self.key_to_id[k] for k in keys if k in self.key_to_id]
            if known:
                tid = max(set(known), key=known.count)  # the identity most of its views carry
                overlap = iou_matrix(det.boxes[d : d + 1], self.last_box[tid][None])[0, 0]
                claims.setdefault(tid, []).append((overlap, d))
        for tid, cs in claims.items():  # two people claiming one identity: the one overlapping its last box wins
            out[max(cs)[1]] = tid
        free = np.flatnonzero(out < 0)
        taken = set(out[out >= 0].tolist())
        old = [t for t, f in self.last_seen.items() if t not in taken and self.frame - f <= self.max_gap + 1]
        if len(free) and old:
            last = np.stack([self.last_box[t] for t in old])  # [O, 4]
            gap = np.array([self.frame - self.last_seen[t] for t in old], np.float64)[:, None]
            predicted = centre(last) + gap * np.stack([self.velocity.get(t, np.zeros(2)) for t in old])
            dist = np.linalg.norm(centre(det.boxes[free])[:, None] - predicted[None], axis=-1) / last[None, :, 3]
            rows, cols = linear_sum_assignment(dist)
            for i, j in zip(rows, cols):
                if dist[i, j] <= self.link_distance:
                    out[free[i]] = old[j]
        for d in np.flatnonzero(out < 0):
            out[d], self.next_id = self.next_id, self.next_id + 1
        for d, keys in enumerate(det.keys):
            tid = int(out[d])
            for k in keys:
                self.key_to_id[k] = tid
            if tid in self.last_box:
                step = (centre(det.boxes[d]) - centre(self.last_box[tid])) / (self.frame - self.last_seen[tid])
                v = self.velocity.get(tid, step)
                self.velocity[tid] = self.smoothing * v + (1 - self.smoothing) * step
            self.last_box[tid] = det.boxes[d]
            self.last_seen[tid] = self.frame
        return out


def centre(boxes: np.ndarray) -> np.ndarray:
    """Centres ``[..., 2]`` (x, y) of (left, top, width, height) boxes ``[..., 4]``."""
    return boxes[..., :2] + boxes[..., 2:] / 2


def track_video(
    model: torch.nn.Module, source: FrameSource, cfg: VideoTrackerConfig = VideoTrackerConfig()
) -> Iterator[TrackedFrame]:
    """Track ``source`` frame by frame; yields every processed frame (frame numbers divisible by ``cfg.step``,
    after ``cfg.warmup`` frames) with its tracks in the source's pixels. Every frame feeds the background model."""
    model.eval()
    subtractor = BackgroundSubtractor(cfg.background)
    tracker = linker = None
    for read, (number, frame) in enumerate(source):
        fg, mask = subtractor.apply(frame)
        if read < cfg.warmup or number % cfg.step:
            continue
        if tracker is None:
            tracker = RegionTracker(model, fg.shape[0], fg.shape[1], cfg.region_stride)
            linker = IdentityLinker(cfg.link_distance, cfg.max_gap)
        boxes, ids, margin = tracker.step(fg)
        support = foreground_fraction(np.broadcast_to(mask, (len(boxes), *mask.shape)), boxes)
        det = merge_regions(boxes, ids, margin, cfg.merge_overlap, cfg.min_size, support, cfg.min_foreground)
        ids = linker.update(det)
        scale = frame.shape[1] / fg.shape[1]
        yield TrackedFrame(number, frame, fg, det.boxes * scale, ids)


def tracks_table(frames: list[TrackedFrame]) -> BoxTable:
    """The tracks of processed frames as one :class:`~sqair_world.data.pedestrians.BoxTable` (MOTChallenge rows)."""
    if not frames:
        return BoxTable(np.zeros(0), np.zeros(0), np.zeros((0, 4)))
    return BoxTable(
        np.concatenate([np.full(len(f.ids), f.number) for f in frames]),
        np.concatenate([f.ids for f in frames]),
        np.concatenate([f.boxes.reshape(-1, 4) for f in frames]),
    )


def score_tracks(
    pred: BoxTable, gt: BoxTable, frames: np.ndarray, max_iou_distance: float = 0.5, match: str = "iou"
) -> TrackingScores:
    """MOTA, MOTP, IDF1 and identity switches of the tracks ``pred`` against ``gt`` (same pixels) on the processed
    frame numbers ``frames`` (the ground truth of frames that were not tracked is not counted); ``match`` "iou"
    (IoU >= 1 - ``max_iou_distance``) or "centre" (:func:`~sqair_world.evaluation.metrics.centre_distance`)."""
    frames = np.unique(np.asarray(frames, np.int64))
    if not len(frames):
        raise ValueError("no frame was tracked: nothing to score")
    g_boxes, g_ids, g_valid = gt.dense(frames)
    p_boxes, p_ids, p_valid = pred.dense(frames)
    g_ids, p_ids = np.where(g_valid, g_ids, -1), np.where(p_valid, p_ids, -1)
    return tracking_scores(g_boxes[:, None], g_ids[:, None], p_boxes[:, None], p_ids[:, None], max_iou_distance, match)


__all__ = [
    "Detections",
    "IdentityLinker",
    "RegionTracker",
    "TrackedFrame",
    "VideoTrackerConfig",
    "foreground_fraction",
    "iou_matrix",
    "merge_regions",
    "overlap_matrix",
    "score_tracks",
    "track_video",
    "tracks_table",
]
