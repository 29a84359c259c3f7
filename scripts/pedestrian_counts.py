"""Where a pedestrian checkpoint's counts go wrong, on the held-out region sequences of ``evaluate pedestrians``.

    python scripts/pedestrian_counts.py CKPT                                   # held-out walkers (seed 1, 600 frames)
    python scripts/pedestrian_counts.py CKPT --video vtest.avi --gt gt.txt     # a video's validation split
    python scripts/pedestrian_counts.py CKPT --reject-overlap 1.0              # proposal rejection off

Prints for the deterministic posterior (one particle, p > 0.5): counting accuracy, per frame index of the sequences
(propagation can only help from the second frame on), with the authors' 25% rule applied to the model's boxes too,
the share of over- and under-counted frames, how many under-counted frames hold two counted people whose boxes
overlap, where the people it missed are, what a perfect detector of every visible person would score against the
25% rule, the median box sizes and the confusion of true against inferred counts (docs/pedestrians.md).
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from sqair_world.data.pedestrians.mot import read_mot
from sqair_world.data.pedestrians.regions import box_fractions
from sqair_world.data.pedestrians.walkers import WalkersConfig, make_walkers
from sqair_world.evaluation.moving_mnist import posterior_track
from sqair_world.evaluation.pedestrians import held_out_sequences
from sqair_world.evaluation.video_tracking import iou_matrix
from sqair_world.training.checkpoints import load_model
from sqair_world.training.experiments import PedestrianSource, load_pedestrian_source


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--video", default=None)
    p.add_argument("--gt", default=None)
    p.add_argument("--num-sequences", type=int, default=500)
    p.add_argument("--walkers-frames", type=int, default=600, help="frames of the held-out walkers video (seed 1)")
    p.add_argument("--reject-overlap", type=float, default=None, help="override SQAIRConfig.grid_reject_overlap")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model = load_model(args.checkpoint, map_location="cpu").eval()
    if args.reject_overlap is not None:  # the config is shared by the model's modules: replace it everywhere
        cfg = dataclasses.replace(model.cfg, grid_reject_overlap=args.reject_overlap)
        for module in model.modules():
            if hasattr(module, "cfg"):
                module.cfg = cfg
    if args.video:
        source = PedestrianSource(video=args.video, gt=args.gt)
    else:
        source = PedestrianSource(walkers_frames=args.walkers_frames, walkers_seed=1)
    data = load_pedestrian_source(source, progress=False)
    if not data.val.has_counts:
        raise SystemExit("the footage has no annotations: pass --gt with --video")
    held = held_out_sequences(data, not args.video, args.num_sequences)

    boxes, ids = [], []
    with torch.no_grad():
        for s in range(0, len(held), 16):
            b, i, _, _ = posterior_track(model, torch.from_numpy(held.frames[:, s : s + 16]).float().div_(255))
            boxes.append(b.numpy())
            ids.append(i.numpy())
    box = np.concatenate(boxes, 1).astype(np.float64)  # [T, S, N, 4] region pixels, not clipped
    present = np.concatenate(ids, 1) >= 0
    truth = held.counts
    size = held.frames.shape[-1]
    inside = box_fractions(box, np.zeros((1, 2), np.int64), size)[..., 0, :]  # [T, S, N]
    n = present.sum(-1)
    n_rule = (present & (inside > 0.25)).sum(-1)
    print(f"{truth.shape[1]} sequences of {truth.shape[0]} frames, {truth.mean():.2f} people per frame")
    rule = np.mean(n_rule == truth)
    print(f"posterior counting {np.mean(n == truth):.3f}; with the 25% rule on the model's boxes {rule:.3f}")
    print("per frame of the sequence:", " ".join(f"{np.mean(n[t] == truth[t]):.3f}" for t in range(len(truth))))
    under, over = n < truth, n > truth
    # per under-counted frame: two counted people overlapping? Where are the people the model missed: inside
    # another's glimpse box (the proposal rejection's centre rule), or apart (then how much of them is inside)?
    overlapping = missed = inside_box = 0
    apart = []  # in-region fraction of the missed people with no glimpse box around their centre
    for t, s in zip(*np.nonzero(under)):
        g = held.boxes[t, s][held.ids[t, s] >= 0].astype(np.float64)
        if len(g) > 1:
            iou = iou_matrix(g, g)
            np.fill_diagonal(iou, 0)
            overlapping += bool((iou > 0).any())
        m = box[t, s][present[t, s]]
        gc, mc = g[:, :2] + g[:, 2:] / 2, m[:, :2] + m[:, 2:] / 2
        rows, _ = linear_sum_assignment(np.linalg.norm(gc[:, None] - mc[None], axis=-1))
        for i in np.setdiff1d(np.arange(len(g)), rows):
            missed += 1
            hidden = bool(np.any(np.all((gc[i] >= m[:, :2]) & (gc[i] <= m[:, :2] + m[:, 2:]), -1)))
            inside_box += hidden
            if not hidden:
                apart.append(box_fractions(g[i : i + 1], np.zeros((1, 2), np.int64), size)[0, 0])
    print(f"over-counted frames {over.mean():.3f} (fixed by the 25% rule: {np.sum(over & (n_rule == truth))})")
    print(f"under-counted frames {under.mean():.3f}: {overlapping} of {under.sum()} hold two overlapping people")
    print(f"people missed in those frames {missed}: {inside_box} with their centre inside a present glimpse box")
    hist = np.histogram(apart, bins=[0.25, 0.5, 0.75, 1.0 - 1e-9, 1.0])[0]
    print(f"the others by the share of their box inside the region (0.25-0.5, -0.75, -1, whole): {hist.tolist()}")
    # the full annotations, in the downscaled frame: people the 25% rule leaves out are known too
    if args.video:
        gt = read_mot(args.gt).scaled(data.meta["output_size"][1] / data.meta["frame_size"][1])
    else:
        gt = make_walkers(WalkersConfig(num_frames=args.walkers_frames, seed=1)).gt
    frames, where = np.unique(held.frame_numbers, return_inverse=True)
    gt_boxes, _, valid = gt.dense(frames)
    gt_boxes, valid = gt_boxes[where.reshape(truth.shape)], valid[where.reshape(truth.shape)]  # [T, S, K, 4]
    gt_boxes[..., :2] -= held.regions[None, :, None, ::-1]  # into region pixels: regions are (y, x) corners
    frac = np.where(valid, box_fractions(gt_boxes, np.zeros((1, 2), np.int64), size)[..., 0, :], 0.0)  # [T, S, K]
    if not np.array_equal((frac > 0.25).sum(-1), truth):
        raise SystemExit("the annotations do not reproduce the sequences' counts: are they the footage's?")
    ceiling = [np.mean((frac > c).sum(-1) == truth) for c in (0.0, 0.1)]
    edge = ((frac > 0) & (frac <= 0.25)).any(-1)
    print(f"over-counted frames with a person 0-25% inside the region (not counted): {np.sum(over & edge)}")
    print(
        "a perfect detector of every person with any part inside the region would count "
        f"{ceiling[0]:.3f} right, of those more than 10% inside {ceiling[1]:.3f} (the truth: more than 25%)"
    )
    gt_sizes = held.boxes[held.ids >= 0][:, 2:]
    print(f"median box (w, h): model {np.median(box[present][:, 2:], 0).round(1)}, annotated {np.median(gt_sizes, 0)}")
    confusion = np.zeros((4, 4), np.int64)
    np.add.at(confusion, (np.clip(truth.ravel(), 0, 3), np.clip(n.ravel(), 0, 3)), 1)
    print("frames, true count (rows 0-3) against inferred (columns 0-3):")
    print(confusion)


if __name__ == "__main__":
    main()
