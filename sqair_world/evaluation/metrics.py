"""The paper's metrics (Table 1) and tracking metrics, on plain tensors so each can be tested by hand.

Axes: T time, B sequences, K particles, N inferred slots, M ground-truth objects, F feature size.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import NamedTuple

import motmetrics as mm
import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn


def count_accuracy(count: Tensor, weights: Tensor, truth: Tensor) -> Tensor:
    """Per sequence: 1[inferred count == true count], importance-weighted over K, averaged over T (reference §5).

    :param count: ``[T, B, K]`` present objects per frame; ``weights``: ``[B, K]`` normalised importance weights
    :param truth: ``[B]`` (the authors' convention: every digit of the sequence) or ``[T, B]`` (visible digits only)
    :return: ``[B]``
    """
    truth = truth.to(count.device)
    if truth.dim() == 1:
        truth = truth.unsqueeze(0)
    hit = (count == truth.unsqueeze(-1)).to(weights.dtype)  # [T, B, K]
    return (hit * weights.unsqueeze(0)).sum(-1).mean(0)


def iou_distance(gt: np.ndarray, pred: np.ndarray, max_iou_distance: float = 0.5) -> np.ndarray:
    """1 - IoU between boxes ``[M, 4]`` and ``[N, 4]`` (x, y, w, h); NaN (no match allowed) above the threshold.

    motmetrics' ``boxiou``: its ``iou_matrix`` calls ``np.asfarray``, which NumPy 2 removed."""
    if len(gt) == 0 or len(pred) == 0:
        return np.empty((len(gt), len(pred)))
    d = 1 - mm.distances.boxiou(np.asarray(gt, float)[:, None], np.asarray(pred, float)[None])
    return np.where(d > max_iou_distance, np.nan, d)


def centre_distance(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """How far each ground-truth box centre lies from each predicted box centre, in units of the predicted box's
    half-size (Chebyshev), ``[M, 4]`` x ``[N, 4]`` (x, y, w, h) -> ``[M, N]``; NaN (no match allowed) when the
    centre is outside the predicted box.

    SQAIR's boxes are glimpse extents, not tight boxes (the decoded glimpse has margins), so besides IoU we
    match an object to a glimpse that contains its centre.
    """
    if len(gt) == 0 or len(pred) == 0:
        return np.empty((len(gt), len(pred)))
    gc = gt[:, None, :2] + gt[:, None, 2:] / 2
    pc = pred[None, :, :2] + pred[None, :, 2:] / 2
    d = (np.abs(gc - pc) / np.maximum(pred[None, :, 2:] / 2, 1e-9)).max(-1)
    return np.where(d <= 1, d, np.nan)


def matched_to_ignored(
    distance: Callable[[np.ndarray, np.ndarray], np.ndarray],
    counted: np.ndarray,
    ignored: np.ndarray,
    pred: np.ndarray,
    valid: np.ndarray,
) -> np.ndarray:
    """Which of the hypotheses ``pred [N, 4]`` (``valid [N]``) one Hungarian matching against ``counted [M, 4]`` and
    ``ignored [L, 4]`` together (NaN rows of ``ignored``: none) gives to an ignored object: ``[N]`` bool.
    ``distance(gt, pred)`` is the matching rule (NaN: not allowed)."""
    ignored = ignored[~np.isnan(ignored).any(-1)]
    out = np.zeros(len(pred), bool)
    idx = np.flatnonzero(valid)
    if len(ignored) == 0 or len(idx) == 0:
        return out
    d = distance(np.concatenate([counted, ignored]), pred[idx])  # [M + L, n]
    allowed = ~np.isnan(d)
    rows, cols = linear_sum_assignment(np.where(allowed, d, 1e6))
    keep = allowed[rows, cols] & (rows >= len(counted))
    out[idx[cols[keep]]] = True
    return out


class TrackingScores(NamedTuple):
    mota: float
    motp: float  #: mean IoU distance (1 - IoU) of matches, motmetrics' convention (lower is better)
    idf1: float
    num_switches: int


def tracking_scores(
    gt_boxes: np.ndarray,
    gt_ids: np.ndarray,
    pred_boxes: np.ndarray,
    pred_ids: np.ndarray,
    max_iou_distance: float = 0.5,
    match: str = "iou",
    ignore_boxes: np.ndarray | None = None,
) -> TrackingScores:
    """MOTA, MOTP and IDF1 over all sequences with ``motmetrics`` (one accumulator per sequence, merged).

    Boxes ``[T, B, M|N, 4]`` (x, y, w, h) in pixels; ids ``[T, B, M|N]`` with ``-1`` for objects that are not
    there (absent slots, or ground-truth digits that are not visible). ``match``: "iou" (1 - IoU <=
    ``max_iou_distance``) or "centre" (:func:`centre_distance`; MOTP is then the mean normalised centre distance).

    ``ignore_boxes [T, B, L, 4]`` (NaN rows: none) are objects that neither count nor penalise, MOTChallenge's
    distractors (here: digits on screen, but less than the visibility threshold): a hypothesis that one Hungarian
    matching of all objects, counted and ignored, gives to an ignored one is removed before scoring, as the MOT16
    devkit removes those matched to distractors. Without it a tracker that keeps a digit while it slides out of
    the frame is charged a false positive for every such frame.
    """
    if match not in ("iou", "centre"):
        raise ValueError(f"match must be 'iou' or 'centre', got {match!r}")
    if ignore_boxes is not None and ignore_boxes.shape[:2] != gt_ids.shape[:2]:
        raise ValueError(f"ignore_boxes {ignore_boxes.shape} must be [T, B, L, 4] with [T, B] = {gt_ids.shape[:2]}")

    def distance(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
        if match == "iou":
            return iou_distance(gt, pred, max_iou_distance)
        return centre_distance(gt, pred)

    T, B = gt_ids.shape[:2]
    accs, names = [], []
    for b in range(B):
        acc = mm.MOTAccumulator(auto_id=True)
        for t in range(T):
            g, p = gt_ids[t, b] >= 0, pred_ids[t, b] >= 0
            if ignore_boxes is not None:
                p = p & ~matched_to_ignored(distance, gt_boxes[t, b][g], ignore_boxes[t, b], pred_boxes[t, b], p)
            acc.update(
                gt_ids[t, b][g].tolist(),
                pred_ids[t, b][p].tolist(),
                distance(gt_boxes[t, b][g], pred_boxes[t, b][p]),
            )
        accs.append(acc)
        names.append(str(b))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas deprecation noise inside motmetrics
        summary = mm.metrics.create().compute_many(
            accs, names=names, metrics=["mota", "motp", "idf1", "num_switches"], generate_overall=True
        )
    row = summary.loc["OVERALL"]
    # MOTP over all matches ourselves: motmetrics' OVERALL MOTP is NaN as soon as one sequence has no match
    # (e.g. a sequence without digits); with no match at all it is 1 (the worst distance).
    dists = np.concatenate([a.mot_events.loc[a.mot_events["Type"] == "MATCH", "D"].to_numpy(float) for a in accs])
    motp = float(dists.mean()) if len(dists) else 1.0
    return TrackingScores(float(row["mota"]), motp, float(row["idf1"]), int(row["num_switches"]))


class SetClassifier(nn.Module):
    """Permutation-invariant classifier over a masked set (Deep Sets): rho(sum_n mask_n phi(x_n)).

    Used for the addition task: the set of present objects' (what, where) in a frame -> the digit sum (19 classes).
    """

    def __init__(self, n_features: int, n_classes: int = 19, hidden: int = 128) -> None:
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(n_features, hidden), nn.ELU(), nn.Linear(hidden, hidden), nn.ELU())
        self.rho = nn.Sequential(nn.Linear(hidden, hidden), nn.ELU(), nn.Linear(hidden, n_classes))

    def forward(self, feats: Tensor, mask: Tensor) -> Tensor:
        """``feats [..., N, F]``, ``mask [..., N]`` -> logits ``[..., n_classes]``."""
        return self.rho((self.phi(feats) * mask.unsqueeze(-1)).sum(-2))


def addition_accuracy(
    train_feats: Tensor,
    train_mask: Tensor,
    train_sum: Tensor,
    test_feats: Tensor,
    test_mask: Tensor,
    test_sum: Tensor,
    epochs: int = 30,
    seed: int = 0,
    lr: float = 1e-3,
    classifier: Callable[[int], nn.Module] = SetClassifier,
) -> float:
    """Train a probe (:class:`SetClassifier` by default) on frozen per-frame representations, return its per-frame
    test accuracy.

    :param train_feats: ``[S, T, N, F]``; ``train_mask`` ``[S, T, N]``; ``train_sum`` ``[S]`` (each frame's target is
        its sequence's digit sum, off-screen digits included, as in the authors' counting convention) or ``[S, T]``
        (a target per frame); ``test_sum`` likewise
    :param classifier: builds the probe from the feature size F; ``probe(feats, mask)`` gives logits whose first 19
        are the sums 0..18 (a probe may score larger sums too; they are never predicted)
    """
    per_frame = lambda y, f: y.view(-1, 1).expand(f.shape[:2]) if y.dim() == 1 else y
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    F_ = train_feats.shape[-1]
    mu = (train_feats * train_mask.unsqueeze(-1)).sum((0, 1, 2)) / train_mask.sum().clamp_min(1)
    sd = ((train_feats - mu).pow(2) * train_mask.unsqueeze(-1)).sum((0, 1, 2)).div(
        train_mask.sum().clamp_min(1)
    ).sqrt() + 1e-3
    norm = lambda f: (f - mu) / sd
    x, m = norm(train_feats).flatten(0, 1), train_mask.flatten(0, 1)
    y = per_frame(train_sum, train_feats).flatten()
    clf = classifier(F_)
    opt = torch.optim.Adam(clf.parameters(), lr)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 256):
            j = perm[i : i + 256]
            loss = nn.functional.cross_entropy(clf(x[j], m[j]), y[j])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        pred = clf(norm(test_feats), test_mask)[..., :19].argmax(-1)  # [S, T]
    return (pred == per_frame(test_sum, test_feats)).float().mean().item()
