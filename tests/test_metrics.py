"""Metrics on hand-made inputs with known answers (the evaluate CLI: tests/test_cli_evaluate.py)."""

import numpy as np
import torch

from sqair_world.evaluation.metrics import (
    SetClassifier,
    addition_accuracy,
    count_accuracy,
    iou_distance,
    matched_to_ignored,
    tracking_scores,
)


def test_count_accuracy_is_importance_weighted_and_time_averaged():
    count = torch.tensor([[[2, 1]], [[2, 2]]])  # [T=2, B=1, K=2]
    w = torch.tensor([[0.75, 0.25]])
    assert count_accuracy(count, w, torch.tensor([2])).item() == 0.875  # (0.75 + 1) / 2
    assert count_accuracy(count, w, torch.tensor([[1], [2]])).item() == 0.625  # per-frame truth: (0.25 + 1) / 2


def _tracks(T=5):
    boxes = np.zeros((T, 1, 2, 4))
    for t in range(T):
        boxes[t, 0, 0] = [2 * t, 0, 10, 10]
        boxes[t, 0, 1] = [30, 3 * t, 10, 10]
    return boxes, np.tile(np.array([[[0, 1]]]), (T, 1, 1))


def test_perfect_tracker_and_id_swap_and_miss():
    gt_b, gt_i = _tracks()
    perfect = tracking_scores(gt_b, gt_i, gt_b + [0.5, 0.5, 0, 0], gt_i + 7)  # other id values, shifted boxes
    assert perfect.mota == 1.0 and perfect.idf1 == 1.0 and perfect.num_switches == 0 and 0 < perfect.motp < 0.2
    swapped = gt_i.copy() + 7
    swapped[3:] = swapped[3:, :, ::-1]  # identities swap from frame 3 on
    s = tracking_scores(gt_b, gt_i, gt_b, swapped)
    assert s.idf1 < 1.0 and s.num_switches == 2 and s.mota < 1.0
    missing = gt_i.copy()
    missing[:, :, 1] = -1  # the tracker never reports object 1
    m = tracking_scores(gt_b, gt_i, gt_b, missing)
    assert m.mota == 0.5 and m.idf1 < 1.0
    far = tracking_scores(gt_b, gt_i, gt_b + 100, gt_i)  # no overlap: nothing matches
    assert far.mota <= 0.0


def test_a_box_on_an_ignored_object_is_neither_a_hit_nor_a_false_positive():
    gt_b, gt_i = _tracks()
    counted = gt_i.copy()
    counted[:, :, 1] = -1  # object 1 does not count (say, mostly off screen) ...
    pred_i = gt_i + 7  # ... but the tracker follows both objects
    strict = tracking_scores(gt_b, counted, gt_b, pred_i, match="centre")
    assert strict.mota == 0.0  # 5 hits, 5 false positives over 5 counted objects
    ignore = np.full((5, 1, 1, 4), np.nan)
    ignore[:, 0, 0] = gt_b[:, 0, 1]
    s = tracking_scores(gt_b, counted, gt_b, pred_i, match="centre", ignore_boxes=ignore)
    assert s.mota == 1.0 and s.idf1 == 1.0
    # a box that the matching gives to a counted object stays, even next to an ignored one; a stray one stays an FP
    stray = np.concatenate([gt_b, gt_b[:, :, :1] + [200.0, 0, 0, 0]], 2)
    ids = np.concatenate([pred_i, np.full((5, 1, 1), 99)], 2)
    s = tracking_scores(gt_b, counted, stray, ids, match="centre", ignore_boxes=ignore)
    assert s.mota == 0.0 and s.idf1 < 1.0
    # only one of two boxes on the same ignored object is removed: one Hungarian matching, as MOTChallenge's
    two = np.array([[0, 0, 10, 10.0], [1, 0, 10, 10]])
    removed = matched_to_ignored(lambda g, p: iou_distance(g, p), np.zeros((0, 4)), two[:1], two, np.ones(2, bool))
    assert removed.sum() == 1


def test_iou_distance():
    d = iou_distance(np.array([[0, 0, 10, 10.0]]), np.array([[0, 0, 10, 10.0], [5, 0, 10, 10], [50, 50, 5, 5]]), 0.7)
    assert d[0, 0] == 0 and abs(d[0, 1] - (1 - 50 / 150)) < 1e-9 and np.isnan(d[0, 2])
    assert np.isnan(iou_distance(np.array([[0, 0, 10, 10.0]]), np.array([[5, 0, 10, 10.0]]), 0.6)).all()
    assert iou_distance(np.zeros((2, 4)), np.zeros((0, 4))).shape == (2, 0)


def test_set_classifier_is_permutation_invariant_and_ignores_padding():
    torch.manual_seed(0)
    clf = SetClassifier(5)
    x, m = torch.randn(3, 4, 5), torch.tensor([[1, 1, 0, 0.0]] * 3)
    perm = x[:, [1, 0, 2, 3]]
    torch.testing.assert_close(clf(x, m), clf(perm, m))
    x2 = x.clone()
    x2[:, 2:] = 99.0  # padding content must not matter
    torch.testing.assert_close(clf(x, m), clf(x2, m))


def test_addition_classifier_learns_a_sum_from_sets():
    g = torch.Generator().manual_seed(0)

    def make(S):
        digits = torch.randint(0, 10, (S, 2), generator=g)
        present = torch.rand(S, 2, generator=g) < 0.7
        feats = torch.nn.functional.one_hot(digits, 10).float().unsqueeze(1).expand(S, 2, 2, 10)  # [S, T=2, N=2, 10]
        mask = present.float().unsqueeze(1).expand(S, 2, 2)
        return feats, mask, (digits * present).sum(-1)

    acc = addition_accuracy(*make(3000), *make(300), epochs=15)
    assert acc > 0.9


def test_addition_classifier_takes_a_target_per_frame():
    """Per-frame targets ``[S, T]``: a digit seen only in frame 1 counts only there."""
    g = torch.Generator().manual_seed(0)

    def make(S):
        digits = torch.randint(0, 10, (S, 2), generator=g)
        seen = torch.stack([torch.tensor([True, False]).expand(S, 2), torch.ones(S, 2, dtype=torch.bool)], 1)
        feats = torch.nn.functional.one_hot(digits, 10).float().unsqueeze(1).expand(S, 2, 2, 10)
        return feats, seen.float(), (digits.unsqueeze(1) * seen).sum(-1)  # targets [S, T=2]

    train, test = make(3000), make(300)
    assert addition_accuracy(*train, *test, epochs=15) > 0.9
    # the per-sequence target (both digits) cannot be read from frame 0, which shows one digit
    (f, m, y), (f2, m2, y2) = train, test
    assert addition_accuracy(f, m, y[:, 1], f2, m2, y2[:, 1], epochs=15) < 0.8


def test_chunked_bound_equals_one_pass():
    from sqair_world.evaluation.moving_mnist import bound_rec_kl_counts
    from sqair_world.model.registry import build_model

    model = build_model(
        "mlp-sqair", image_shape=(1, 24, 24), glimpse_size=(8, 8), n_hidden=16, n_what=4, n_hidden_small=8
    )
    x = torch.rand(3, 2, 1, 24, 24)
    truth = torch.tensor([1, 2])
    torch.manual_seed(0)
    chunked = bound_rec_kl_counts(model, x, 6, 2, truth, truth.view(1, 2).expand(3, 2))
    torch.manual_seed(0)
    with torch.no_grad():  # as the evaluation runs: without gradients, slots absent in every row are skipped,
        parts = [model(x, k=2) for _ in range(3)]  # which changes how many random numbers are drawn
    lw = torch.cat([p.log_weights for p in parts], -1)
    torch.testing.assert_close(chunked["log_px"], torch.logsumexp(lw, -1) - np.log(6))
    rec = torch.cat([p.rec.unsqueeze(-1) * 0 for p in parts], -1)  # shapes only
    assert rec.shape == (2, 3) and chunked["rec"].shape == (2,)


def test_motp_survives_a_sequence_without_objects():
    gt_b, gt_i = _tracks()
    boxes = np.concatenate([gt_b, gt_b], 1)
    ids = np.concatenate([gt_i, np.full_like(gt_i, -1)], 1)  # the second sequence has no digits and no detections
    s = tracking_scores(boxes, ids, boxes + [1.0, 0, 0, 0], ids)
    assert s.mota == 1.0 and 0 < s.motp < 0.2 and np.isfinite(s.motp)
