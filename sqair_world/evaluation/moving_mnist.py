"""Evaluate a checkpoint on held-out moving-MNIST sequences: the paper's Table 1, tracking scores, figures.

    python -m sqair_world.evaluate mnist runs/mnist-mlp-sqair/last.pt [--num-sequences 1000] [--particles 1000]

Estimators (reference §5):

- log p(x_{1:T}): the IWAE bound with K particles (1000 by default), computed in particle chunks
  (log-weights of all chunks are combined by logsumexp, so the result equals one K-particle pass);
- reconstruction log p(x|z) and KL(q||p) per sequence: importance-weighted averages over the same K
  particles of sum_t log p(x_t|z_t) and sum_t (log q - log p), so rec - KL is close to the bound
  (the authors' logged quantities, multiplied by T to be per sequence as in Table 1);
- counting accuracy per frame, importance-weighted over particles, averaged over frames and sequences,
  against every digit of the sequence (the authors' convention, §8.6) and against visible digits only;
- addition accuracy: a Deep Sets classifier on the frozen model's per-frame object set (what, where of
  present objects; one 165-d "slot" for VRNN) with posterior means (one particle), trained on
  training-sequence representations and scored per frame on the evaluation sequences;
- MOTA, MOTP (mean 1 - IoU of matches) and IDF1 with motmetrics: the posterior-mean tracker's boxes and
  identities against the ground-truth boxes of digits at least 25% visible (IoU >= 0.5 to match), and
  again matching a digit to a glimpse that contains its centre (SQAIR's glimpses are not tight boxes). Digits on
  screen but less visible are ignored, as MOTChallenge ignores distractors: a box on one is neither a hit nor a
  false positive (``*_centre_strict``: the centre rule with those boxes as false positives).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from sqair_world.data import MovingMNISTConfig, load_moving_mnist
from sqair_world.evaluation.metrics import addition_accuracy, count_accuracy, tracking_scores
from sqair_world.model.spatial import where_to_box
from sqair_world.model.types import Slots
from sqair_world.utils import box_to_pixels, frames_to_input

PAPER_TABLE1 = {  # reference §9
    "conv-sqair": (6784.8, 6923.8, 134.6, 0.9974, 0.9990),
    "mlp-sqair": (6617.6, 6786.5, 164.5, 0.9986, 0.9998),
    "mlp-air": (6443.6, 6830.6, 352.6, 0.9058, 0.8644),
    "conv-vrnn": (6561.9, 6737.8, 270.2, None, 0.8536),
    "mlp-vrnn": (5959.3, 6108.7, 218.3, None, 0.8059),
}


@torch.no_grad()
def bound_rec_kl_counts(
    model, x: Tensor, particles: int, chunk: int, truth_all: Tensor, truth_vis: Tensor
) -> dict[str, Tensor]:
    """Per sequence ``[B]``: IWAE with ``particles`` in chunks, importance-weighted rec/KL and counting accuracies."""
    lse, rec, kl, acc_all, acc_vis = [], [], [], [], []
    for k0 in range(0, particles, chunk):
        out = model(x, k=min(chunk, particles - k0))
        lw = out.log_weights  # [B, k]
        lse.append(torch.logsumexp(lw, -1))
        rec.append(out.rec)
        kl.append(out.kl)
        if out.count is not None:
            acc_all.append(count_accuracy(out.count, out.weights, truth_all))
            acc_vis.append(count_accuracy(out.count, out.weights, truth_vis))
    lse_c = torch.stack(lse, -1)  # [B, chunks]; chunk weights = their share of the total weight
    w = lse_c.softmax(-1)
    res = {
        "log_px": torch.logsumexp(lse_c, -1) - math.log(particles),
        "rec": (w * torch.stack(rec, -1)).sum(-1),
        "kl": (w * torch.stack(kl, -1)).sum(-1),
    }
    if acc_all:
        res["count_acc"] = (w * torch.stack(acc_all, -1)).sum(-1)
        res["count_acc_visible"] = (w * torch.stack(acc_vis, -1)).sum(-1)
    return res


def ground_truth_tracks(data, visible_threshold: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """The generator's tracks as MOT ground truth: boxes ``[T, S, M, 4]`` (x_min, y_min, w, h) px of the visible
    part of each digit, and ids ``[T, S, M]`` (-1 where a digit is absent or less than ``visible_threshold`` visible:
    a digit mostly off-screen cannot be expected to be tracked)."""
    vis = data.present[None] & (data.visible_frac >= visible_threshold)
    return data.visible_boxes[..., [1, 0, 3, 2]], np.where(vis, data.track_ids[None], -1)


def ignored_ground_truth(data, visible_threshold: float = 0.25) -> np.ndarray:
    """Boxes ``[T, S, M, 4]`` (x_min, y_min, w, h) px of the digits on screen but less than ``visible_threshold``
    visible, NaN elsewhere: they are not tracking targets, and a hypothesis on one is not a false positive either
    (``tracking_scores(ignore_boxes=...)``, MOTChallenge's distractors)."""
    part = data.present[None] & (data.visible_frac > 0) & (data.visible_frac < visible_threshold)
    return np.where(part[..., None], data.visible_boxes[..., [1, 0, 3, 2]], np.nan)


@torch.no_grad()
def posterior_track(model, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
    """Deterministic tracking (posterior means, presence p > 0.5, one particle): boxes ``[T, B, N, 4]``
    (x, y, w, h px), ids (-1 absent), set features ``[T, B, N, F]`` and mask ``[T, B, N]``; None for models
    without objects (VRNN: its 165-d latent is one "slot" in :func:`representations`).

    One forward pass with ``sample=False`` gives the same latents as ``online_step`` frame by frame (the
    online tracker), and it also works for AIR, whose online state is emptied after every frame.
    """
    out = model(x, k=1, sample=False)
    if out.latents is None:
        return None
    z = first_particle(out.latents)
    boxes = box_to_pixels(where_to_box(z.where), *x.shape[-2:])
    return boxes, torch.where(z.pres > 0, z.id, -1), out.slot_features[:, :, 0], out.slot_mask[:, :, 0]


def first_particle(z: Slots) -> Slots:
    """Latents ``[T, B, K, N, ...]`` -> the first particle's ``[T, B, N, ...]``."""
    return Slots(*(a[:, :, 0] for a in z))


@torch.no_grad()
def representations(model, frames: np.ndarray, batch: int, device) -> tuple[Tensor, Tensor]:
    """Per-frame set representations ``[S, T, N, F]`` and masks ``[S, T, N]`` of uint8 frames ``[T, S, C, H, W]``
    (SQAIR/AIR: what and where of each slot; VRNN: its latent as a single slot)."""
    feats, masks = [], []
    for s in range(0, frames.shape[1], batch):
        x = torch.from_numpy(frames[:, s : s + batch]).to(device).float().div_(255)
        out = model(x, k=1, sample=False)
        feats.append(out.slot_features[:, :, 0].transpose(0, 1).cpu())
        masks.append(out.slot_mask[:, :, 0].transpose(0, 1).cpu())
    return torch.cat(feats), torch.cat(masks)


def evaluate(
    model,
    num_sequences: int = 1000,
    particles: int = 1000,
    chunk: int = 50,
    batch_size: int = 8,
    num_addition_train: int = 20000,
    seed: int = 0,
    mnist_dir: str | None = None,
    device=None,
    progress: bool = True,
    visible_threshold: float = 0.25,
    max_iou_distance: float = 0.5,
) -> dict[str, Any]:
    """All metrics on ``num_sequences`` evaluation sequences (the authors' evaluation digit pool)."""
    device = device or next(model.parameters()).device
    model.eval()
    data = load_moving_mnist("eval", num_sequences, seed, mnist_dir, MovingMNISTConfig())
    frames = data.frames[:, :, None]
    sums: dict[str, float] = {}
    gt_boxes, gt_ids, pr_boxes, pr_ids, ignored = [], [], [], [], []
    t0 = time.time()
    for s in tqdm(range(0, len(data), batch_size), disable=not progress, desc="evaluate", unit="batch"):
        x = torch.from_numpy(frames[:, s : s + batch_size]).to(device).float().div_(255)
        sub = data.subset(slice(s, s + batch_size))
        res = bound_rec_kl_counts(
            model, x, particles, chunk, torch.as_tensor(sub.num_digits), torch.as_tensor(sub.num_visible)
        )
        for k, v in res.items():
            sums[k] = sums.get(k, 0.0) + v.sum().item()
        tracked = posterior_track(model, x)
        if tracked is not None:
            boxes, ids, _, _ = tracked
            pr_boxes.append(boxes.cpu().numpy())
            pr_ids.append(ids.cpu().numpy())
            boxes, ids = ground_truth_tracks(sub, visible_threshold)
            gt_boxes.append(boxes)
            gt_ids.append(ids)
            ignored.append(ignored_ground_truth(sub, visible_threshold))
    n = len(data)
    result: dict[str, Any] = {k: v / n for k, v in sums.items()}
    result.update(
        num_sequences=n, particles=particles, seq_len=int(frames.shape[0]), seconds=round(time.time() - t0, 1)
    )
    if pr_ids:
        tracks = (
            np.concatenate(gt_boxes, 1),
            np.concatenate(gt_ids, 1),
            np.concatenate(pr_boxes, 1),
            np.concatenate(pr_ids, 1),
        )
        ignore = np.concatenate(ignored, 1)
        result.update(
            tracking_scores(*tracks, max_iou_distance, ignore_boxes=ignore)._asdict(),
            max_iou_distance=max_iou_distance,
            visible_threshold=visible_threshold,
        )
        centre = tracking_scores(*tracks, match="centre", ignore_boxes=ignore)
        result.update({f"{k}_centre": v for k, v in centre._asdict().items()})
        # before 2026-12-07 a box on a digit less than visible_threshold on screen was a false positive
        strict = tracking_scores(*tracks, match="centre")
        result.update({f"{k}_centre_strict": v for k, v in strict._asdict().items()})
    if num_addition_train > 0:
        train = load_moving_mnist("train", num_addition_train, seed, mnist_dir, MovingMNISTConfig())
        tr_f, tr_m = representations(model, train.frames[:, :, None], 64, device)
        te_f, te_m = representations(model, frames, 64, device)
        result["addition_acc"] = addition_accuracy(
            tr_f, tr_m, torch.as_tensor(train.digit_sum), te_f, te_m, torch.as_tensor(data.digit_sum), seed=seed
        )
        result["addition_train_sequences"] = num_addition_train  # the score grows with them (docs/moving_mnist.md)
    return result


def write_mnist_figures(model, num_sequences: int, seed: int, mnist_dir: str | None, out_dir) -> dict[str, Any]:
    """Figs. 4-7 of the 4 busiest of ``num_sequences`` evaluation sequences (seed ``seed``) into ``out_dir``."""
    from sqair_world.evaluation.figures import write_figures

    data = load_moving_mnist("eval", max(num_sequences, 8), seed, mnist_dir, MovingMNISTConfig())
    busiest = np.argsort(-data.num_digits, kind="stable")[:4]
    x = frames_to_input(data.frames[:, busiest, None], next(model.parameters()).device)
    return write_figures(model, x, out_dir)


def format_table(name: str, r: dict[str, Any]) -> str:
    """A table shaped like the paper's Table 1, with the paper's row beside ours."""

    def f(v, digits=1):
        return "n/a" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))

    head = (
        f"{'model':<22}{'log p(x)':>10}{'log p(x|z)':>12}{'KL(q||p)':>10}{'counting':>10}{'counting(vis)':>15}"
        f"{'addition':>10}"
    )
    ours = (
        f"{name + ' (ours)':<22}{f(r['log_px']):>10}{f(r['rec']):>12}{f(r['kl']):>10}{f(r.get('count_acc'), 4):>10}"
        f"{f(r.get('count_acc_visible'), 4):>15}{f(r.get('addition_acc'), 4):>10}"
    )
    lines = [head, ours]
    if name in PAPER_TABLE1:
        p = PAPER_TABLE1[name]
        lines.append(
            f"{name + ' (paper)':<22}{f(p[0]):>10}{f(p[1]):>12}{f(p[2]):>10}{f(p[3], 4):>10}{'':>15}{f(p[4], 4):>10}"
        )
    if "mota" in r:
        iou = f"IoU >= {1 - r.get('max_iou_distance', 0.5):.2g}"
        lines.append(
            f"{'tracking (' + iou + '):':<31}MOTA {r['mota']:.4f}  MOTP {r['motp']:.4f} (1-IoU)  IDF1 {r['idf1']:.4f}  "
            f"ID switches {r['num_switches']}"
        )
        lines.append(
            f"tracking (centre in glimpse):  MOTA {r['mota_centre']:.4f}  IDF1 {r['idf1_centre']:.4f}  "
            f"ID switches {r['num_switches_centre']}"
        )
        if "idf1_centre_strict" in r:
            lines.append(
                f"  (boxes on digits under {r.get('visible_threshold', 0.25):g} visible as false positives: "
                f"MOTA {r['mota_centre_strict']:.4f}  IDF1 {r['idf1_centre_strict']:.4f})"
            )
    trained = r.get("addition_train_sequences")
    classifier = f"; addition classifier on {trained} training sequences" if trained else ""
    seqs = f"{r['num_sequences']} evaluation sequences of {r['seq_len']} frames"
    lines.append(f"({seqs}, K={r['particles']} particles{classifier})")
    return "\n".join(lines)
