"""The pedestrian experiment's scores (paper §4.2) on held-out 64x64 region sequences.

- the IWAE bound log p(x) with its reconstruction and KL terms;
- counting accuracy where the footage is annotated: the inferred number of people per frame against the number of
  people counted in the region (the authors' rule: more than 25% of the box inside), importance-weighted over the
  particles and averaged over the frames, as for moving MNIST;
- tracking (MOTA, MOTP, IDF1, identity switches) of the deterministic posterior against the annotated tracks, in
  each region sequence, by IoU >= 0.5 (of the boxes around what each object paints: the glimpse's extent has dark
  margins) and by the centre rule (the annotated centre inside the glimpse box).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from sqair_world.data.pedestrians import PedestrianData, PedestrianSet
from sqair_world.evaluation.metrics import tracking_scores
from sqair_world.evaluation.moving_mnist import bound_rec_kl_counts, first_particle
from sqair_world.evaluation.video_tracking import foreground_fraction
from sqair_world.model.spatial import where_to_box
from sqair_world.utils import box_to_pixels


def busiest(data: PedestrianSet, n: int) -> np.ndarray:
    """Indices of the ``n`` sequences with the most people (most foreground without annotations): figure material."""
    if data.has_counts:
        score = data.counts.sum(0).astype(np.float64)
    else:
        score = (data.frames.max(2) > 0).mean((0, 2, 3))
    return np.argsort(-score, kind="stable")[:n]


def held_out_sequences(data: PedestrianData, every_sequence: bool, num_sequences: int) -> PedestrianSet:
    """At most ``num_sequences`` sequences, evenly spaced, of the held-out footage: every sequence of ``data`` when
    ``every_sequence`` (a video the training never saw, such as the walkers of another seed), else its validation
    split (the last frames of the training video)."""
    held_out = PedestrianSet.concat([data.train, data.val]) if every_sequence else data.val
    idx = np.unique(np.linspace(0, len(held_out) - 1, min(num_sequences, len(held_out))).round().astype(int))
    return held_out.subset(idx)


def clip_boxes(boxes: np.ndarray, size: int) -> np.ndarray:
    """(left, top, width, height) boxes ``[..., 4]`` cut to a ``size x size`` region: the part the model can see."""
    lo = np.clip(boxes[..., :2], 0, size)
    hi = np.clip(boxes[..., :2] + boxes[..., 2:], 0, size)
    return np.concatenate([lo, hi - lo], -1)


@torch.no_grad()
def evaluate_pedestrians(
    model,
    data: PedestrianSet,
    particles: int = 100,
    chunk: int = 50,
    batch_size: int = 8,
    device=None,
    progress: bool = True,
    min_foreground: float = 0.1,
    painted_fraction: float = 0.1,
) -> dict[str, Any]:
    """Bound, counting accuracy (annotated data) and tracking scores (annotated data, object models) of ``model`` on
    ``data``'s sequences (uint8 ``[T, S, 3, 64, 64]``).

    ``count_acc`` is the paper's (the model's own presences, K particles); ``count_acc_posterior`` the same for the
    deterministic posterior (one particle, p > 0.5); ``count_acc_verified`` and the tracking scores count only the
    posterior's slots whose box holds at least ``min_foreground`` foreground pixels, as ``track`` does. Tracking by
    IoU scores the boxes around what each object paints (:meth:`SQAIR.painted_boxes` at ``painted_fraction``), by
    the centre rule the glimpse boxes."""
    if tuple(data.frames.shape[2:]) != tuple(model.cfg.image_shape):
        raise ValueError(
            f"the sequences hold frames of {tuple(data.frames.shape[2:])}, the model was trained on "
            f"{tuple(model.cfg.image_shape)}"
        )
    device = device or next(model.parameters()).device
    model.eval()
    counts = torch.as_tensor(data.counts) if data.has_counts else None
    sums: dict[str, float] = {}
    pr_boxes, pr_ids = [], []
    t0 = time.time()
    S = len(data)
    for s in tqdm(range(0, S, batch_size), disable=not progress, desc="evaluate", unit="batch"):
        x = torch.from_numpy(data.frames[:, s : s + batch_size]).to(device).float().div_(255)
        truth = counts[:, s : s + batch_size] if counts is not None else torch.zeros(x.shape[:2], dtype=torch.long)
        res = bound_rec_kl_counts(model, x, particles, chunk, truth, truth)
        res.pop("count_acc_visible", None)
        if counts is None:
            res.pop("count_acc", None)
        for k, v in res.items():
            sums[k] = sums.get(k, 0.0) + v.sum().item()
        latents = model(x, k=1, sample=False).latents  # the deterministic posterior (= the online tracker)
        if latents is not None:
            z = first_particle(latents)  # [T, B, N, ...]
            size = x.shape[-2:]
            boxes = box_to_pixels(where_to_box(z.where.float()), *size).cpu().numpy().astype(np.float64)
            painted = box_to_pixels(model.painted_boxes(z, painted_fraction), *size).cpu().numpy().astype(np.float64)
            ids = torch.where(z.pres > 0, z.id, -1).cpu().numpy()
            # the tracker's foreground check (video_tracking.VideoTrackerConfig.min_foreground) on the same slots
            mask = data.frames[:, s : s + batch_size].max(2) > 0  # [T, B, H, W]
            support = foreground_fraction(mask, boxes)  # [T, B, N]
            verified = np.where(support >= min_foreground, ids, -1)
            pr_boxes.append(np.stack([boxes, painted]))
            pr_ids.append(verified)
            if counts is not None:
                true_counts = data.counts[:, s : s + batch_size]
                for name, slots in (("count_acc_verified", verified), ("count_acc_posterior", ids)):
                    hit = (slots >= 0).sum(-1) == true_counts
                    sums[name] = sums.get(name, 0.0) + hit.mean(0).sum()
    result: dict[str, Any] = {k: v / S for k, v in sums.items()}
    result.update(num_sequences=S, particles=particles, seq_len=int(data.frames.shape[0]))
    if counts is not None:
        result["mean_count"] = float(data.counts.mean())
    if pr_ids and data.has_counts:
        (boxes, painted), ids = np.concatenate(pr_boxes, 2), np.concatenate(pr_ids, 1)
        gt = (clip_boxes(data.boxes, data.frames.shape[-1]), data.ids)
        # IoU needs tight boxes: what each object paints; the centre rule was made for glimpse extents
        result.update(tracking_scores(*gt, painted, ids)._asdict())
        result.update({f"{k}_centre": v for k, v in tracking_scores(*gt, boxes, ids, match="centre")._asdict().items()})
    result["seconds"] = round(time.time() - t0, 1)
    return result


def format_pedestrians(r: dict[str, Any]) -> str:
    """One line per figure, in the order of the paper's text."""
    rows = [("log p(x)", "log_px", ".1f"), ("reconstruction", "rec", ".1f"), ("KL", "kl", ".1f")]
    rows += [
        ("counting accuracy", "count_acc", ".4f"),
        ("  posterior", "count_acc_posterior", ".4f"),
        ("  foreground-checked", "count_acc_verified", ".4f"),
        ("MOTA (IoU 0.5)", "mota", ".3f"),
        ("IDF1 (IoU 0.5)", "idf1", ".3f"),
    ]
    rows += [("IDF1 (centre)", "idf1_centre", ".3f"), ("identity switches", "num_switches", "d")]
    lines = [f"{r['num_sequences']} sequences of {r['seq_len']} frames, K={r['particles']}"]
    lines += [f"  {name:<20} {r[key]:{fmt}}" for name, key, fmt in rows if key in r]
    return "\n".join(lines)


__all__ = ["busiest", "clip_boxes", "evaluate_pedestrians", "format_pedestrians", "held_out_sequences"]
