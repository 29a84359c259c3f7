"""The pedestrian experiment end to end: ``pretrain pedestrians`` on the synthetic walkers and on a video file,
``evaluate pedestrians``, the video tracker's merging and linking rules, and ``sqair_world.track`` on a generated
video with ground truth (the MOT file round-trips through motmetrics)."""

import json

import motmetrics as mm
import numpy as np
import pytest
import torch

from sqair_world.data.pedestrians import BoxTable, WalkersConfig, make_walkers, read_mot
from sqair_world.evaluate import main as evaluate_main
from sqair_world.evaluation.pedestrians import clip_boxes
from sqair_world.evaluation.video_tracking import (
    Detections,
    IdentityLinker,
    iou_matrix,
    merge_regions,
    overlap_matrix,
    score_tracks,
)
from sqair_world.model.spatial import box_to_where
from sqair_world.model.types import Slots
from sqair_world.pretrain import main as pretrain_main
from sqair_world.track import main as track_main
from sqair_world.training.checkpoints import load_model

TINY = ["--model.n-hidden", "16", "--model.n-hidden-small", "8", "--model.n-what", "4", "--model.conv-channels", "4"]
FAST = ["--steps", "2", "--batch-size", "2", "--val-every", "2", "--no-progress", "--no-tensorboard"]


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SQAIR_WORLD_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def walkers_video(tmp_path_factory):
    """A short synthetic static-camera sequence on disk: MOT folder with video.avi and gt/gt.txt."""
    folder = tmp_path_factory.mktemp("walkers") / "seq"
    make_walkers(WalkersConfig(num_frames=60, seed=3)).write(folder, video=True)
    return folder


@pytest.fixture(scope="module")
def ped_ckpt(tmp_path_factory):
    """A tiny untrained model of the pedestrians experiment, trained 2 steps through the CLI; its grid cells start
    on (presence logit 3), so that the tracker has boxes to write."""
    out = tmp_path_factory.mktemp("ped")
    mp = pytest.MonkeyPatch()
    mp.setenv("SQAIR_WORLD_CACHE", str(out / "cache"))
    argv = ["pedestrians", *TINY, *FAST, "--walkers-frames", "200", "--run-dir", str(out / "run")]
    argv += ["--model.disc-step-bias", "3"]
    assert pretrain_main([*argv, "--output", str(out / "model.pt")]) == 0
    mp.undo()
    return out / "model.pt"


def test_pretrain_pedestrians_stores_its_source_for_evaluate_and_track(ped_ckpt):
    model = load_model(ped_ckpt)
    assert tuple(model.cfg.image_shape) == (3, 64, 64) and tuple(model.cfg.glimpse_size) == (32, 12)
    assert model.cfg.encoder == "conv" and model.cfg.discovery == "grid" and model.cfg.grid_size == 8
    assert model.checkpoint_extra["pedestrians"]["walkers_frames"] == 200
    assert model.checkpoint_extra["experiment"] == "pedestrians"


def test_pretrain_pedestrians_on_a_video_file(tmp_path, capsys):
    folder = tmp_path / "seq"
    make_walkers(WalkersConfig(num_frames=200, seed=4)).write(folder, video=True)
    argv = ["pedestrians", *TINY, *FAST, "--video", str(folder / "video.avi")]
    argv += ["--gt", str(folder / "gt" / "gt.txt"), "--run-dir", str(tmp_path / "run")]
    assert pretrain_main(argv) == 0
    assert f"pedestrians: video {folder / 'video.avi'}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["mnist-mlp-sqair", "--video", "x.avi"], "options of the pedestrians experiment"),
        (["pedestrians", "--video", "a.avi", "--duke", "d"], "give --video or --duke, not both"),
        (["pedestrians", "--gt", "gt.txt"], "--gt annotates --video"),
        (["pedestrians", "--video", "/nonexistent.avi"], "nonexistent.avi"),
    ],
)
def test_pretrain_pedestrians_bad_sources_exit_2(argv, message, capsys):
    assert _exit_code(pretrain_main, [*argv, *FAST]) == 2
    assert message in " ".join(capsys.readouterr().err.replace("\u2502", " ").split())


def _exit_code(main, argv) -> int:
    """The status of ``main(argv)``, whether returned or raised (tyro exits on values its configs reject)."""
    try:
        return main(argv)
    except SystemExit as err:
        return err.code


def test_evaluate_pedestrians_writes_scores_and_fig8(ped_ckpt, tmp_path, capsys):
    argv = ["pedestrians", str(ped_ckpt), "--walkers-frames", "200", "--num-sequences", "6", "--particles", "2"]
    assert evaluate_main([*argv, "--out", str(tmp_path / "eval")]) == 0
    text = capsys.readouterr().out
    assert "counting accuracy" in text and "IDF1 (IoU 0.5)" in text
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["num_sequences"] == 6 and 0 <= metrics["count_acc"] <= 1 and np.isfinite(metrics["log_px"])
    for name in ("reconstructions.png", "prior_samples.png", "conditional_generation.png", "glimpses.png"):
        assert (tmp_path / "eval" / "fig8" / name).stat().st_size > 0


def test_evaluate_pedestrians_refuses_a_moving_mnist_model(tiny_ckpt, capsys):
    assert evaluate_main(["pedestrians", str(tiny_ckpt), "--walkers-frames", "200"]) == 2
    assert "not of colour regions" in capsys.readouterr().err


def test_clip_boxes_keeps_the_part_inside_the_region():
    boxes = np.array([[-10.0, 5.0, 20.0, 10.0], [60.0, 60.0, 10.0, 10.0], [70.0, 0.0, 5.0, 5.0]])
    np.testing.assert_allclose(clip_boxes(boxes, 64), [[0, 5, 10, 10], [60, 60, 4, 4], [64, 0, 0, 5]])


def test_iou_matrix_on_hand_made_boxes():
    a = np.array([[0.0, 0.0, 10.0, 10.0]])
    b = np.array([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 10.0, 10.0], [20.0, 20.0, 5.0, 5.0]])
    np.testing.assert_allclose(iou_matrix(a, b), [[1.0, 50 / 150, 0.0]])


def test_merge_regions_keeps_the_most_central_view_and_collects_the_keys():
    # region 0 sees a person at its edge (margin 2), region 1 sees the same person centrally (margin 20)
    boxes = np.zeros((2, 3, 4))
    boxes[0, 0] = [30, 10, 8, 20]
    boxes[1, 0] = [31, 11, 8, 20]
    boxes[1, 1] = [100, 10, 8, 20]  # someone else
    ids = np.array([[4, -1, -1], [7, 8, -1]])
    margin = np.array([[2.0, 0, 0], [20.0, 15.0, 0]])
    det = merge_regions(boxes, ids, margin, merge_overlap=0.4, min_size=2)
    assert len(det.keys) == 2
    person = next(i for i, k in enumerate(det.keys) if (1, 7) in k)
    assert sorted(det.keys[person]) == [(0, 4), (1, 7)]
    np.testing.assert_allclose(det.boxes[person], [31, 11, 8, 20])  # the central view's box


def test_merge_regions_joins_a_half_person_view_to_the_whole_person():
    # region 0's border cuts the person's legs off: its box lies inside region 1's whole-person box (IoU 0.25, so
    # IoU >= 0.3 kept two people), while a neighbour beside the person overlaps it by a fifth of its box
    boxes = np.zeros((2, 3, 4))
    boxes[1, 0] = [30, 10, 8, 20]  # the whole person, central in region 1
    boxes[0, 0] = [30, 10, 8, 5]  # the head and shoulders, at region 0's border
    boxes[1, 1] = [36, 10, 8, 20]  # a neighbour: 2 of its 8 px of width overlap
    ids = np.array([[4, -1, -1], [7, 8, -1]])
    margin = np.array([[1.0, 0, 0], [20.0, 18.0, 0]])
    assert iou_matrix(boxes[0, 0], boxes[1, 0])[0, 0] == pytest.approx(0.25)
    np.testing.assert_allclose(
        overlap_matrix(boxes[[0, 1, 1], [0, 0, 1]], boxes[1, :2]), [[1, 0.25], [1, 0.25], [0.25, 1]]
    )
    det = merge_regions(boxes, ids, margin, merge_overlap=0.4, min_size=2)
    assert sorted(sorted(k) for k in det.keys) == [[(0, 4), (1, 7)], [(1, 8)]]


def test_identity_linker_carries_keys_hands_over_by_distance_and_never_reuses_ids():
    link = IdentityLinker(link_distance=0.5, max_gap=1)
    a, b = np.array([0.0, 0, 6, 20]), np.array([100.0, 0, 6, 20])  # people: narrow and tall
    first = link.update(Detections(np.stack([a, b]), [[(0, 1)], [(3, 1)]]))
    assert first.tolist() == [1, 2]
    # key (0, 1) carries person 1 even after a large move; person 2 is seen by a new key only (it entered region 4,
    # where SQAIR discovered it anew): it moved 8 px sideways, more than its width (no overlap with its last box
    # left) but 0.4 of its height, so it is handed over
    moved = b + [8, 0, 0, 0]
    assert iou_matrix(b[None], moved[None])[0, 0] == 0
    assert link.update(Detections(np.stack([a + [50, 0, 0, 0], moved]), [[(0, 1)], [(4, 9)]])).tolist() == [1, 2]
    # far from every track and with new keys: a new identity
    assert link.update(Detections(np.array([[200.0, 100, 6, 20]]), [[(6, 1)]])).tolist() == [3]
    # track 2 moves 4 px per frame (smoothed from 8): unseen on 1 processed frame (<= max_gap 1) it is looked for
    # 8 px on and found there; unseen on 2 it is not continued
    assert link.update(Detections(np.stack([moved + [12, 0, 0, 0]]), [[(5, 2)]])).tolist() == [2]
    link.update(Detections(np.zeros((0, 4)), []))
    link.update(Detections(np.zeros((0, 4)), []))
    assert link.update(Detections(np.stack([moved + [24, 0, 0, 0]]), [[(5, 3)]])).tolist() == [4]


def test_identity_linker_refuses_a_track_too_far_from_its_predicted_centre():
    link = IdentityLinker(link_distance=0.5, max_gap=2)
    b = np.array([100.0, 0, 10, 20])
    link.update(Detections(b[None], [[(0, 1)]]))
    # 11 px from the last centre: 0.55 box heights, over the limit
    assert link.update(Detections((b + [11, 0, 0, 0])[None], [[(1, 1)]])).tolist() == [2]


def test_identity_linker_resolves_two_claims_on_one_identity_by_overlap():
    link = IdentityLinker()
    a = np.array([0.0, 0, 10, 20])
    link.update(Detections(a[None], [[(0, 1), (1, 1)]]))
    # the two views split into two people: the one overlapping the last box keeps identity 1
    out = link.update(Detections(np.stack([a + [40, 0, 0, 0], a + [1, 0, 0, 0]]), [[(0, 1)], [(1, 1)]]))
    assert out.tolist() == [2, 1]


def test_score_tracks_is_perfect_on_the_ground_truth_and_penalises_swaps():
    gt = BoxTable([1, 1, 2, 2, 3, 3], [1, 2, 1, 2, 1, 2], [[0, 0, 10, 20], [50, 0, 10, 20]] * 3)
    s = score_tracks(gt, gt, np.array([1, 2, 3]))
    assert s.mota == 1.0 and s.idf1 == 1.0 and s.num_switches == 0
    swapped = BoxTable(gt.frame, [1, 2, 1, 2, 2, 1], gt.boxes)
    assert score_tracks(swapped, gt, np.array([1, 2, 3])).num_switches == 2


def test_track_cli_end_to_end_with_ground_truth(ped_ckpt, walkers_video, tmp_path, capsys):
    out = tmp_path / "tracks.txt"
    argv = [str(walkers_video / "video.avi"), "--checkpoint", str(ped_ckpt), "--out", str(out)]
    argv += ["--gt", str(walkers_video / "gt" / "gt.txt"), "--annotated", str(tmp_path / "t.gif")]
    argv += ["--json", str(tmp_path / "t.json"), "--no-progress"]
    assert track_main(argv) == 0
    printed = capsys.readouterr().out
    assert "MOTA" in printed and "IDF1" in printed
    result = json.loads((tmp_path / "t.json").read_text())
    assert result["frames_read"] == 60 and result["frames_tracked"] == len(range(12, 61, 3))
    assert (tmp_path / "t.gif").stat().st_size > 0
    table = read_mot(out)
    assert set(np.unique(table.frame)) <= set(range(12, 61, 3))
    # the file is what motmetrics reads: same rows, 1-based corners
    df = mm.io.loadtxt(str(out), fmt="mot15-2D")
    assert len(table) > 0 and len(df) == len(table)
    np.testing.assert_allclose(df[["X", "Y", "Width", "Height"]].to_numpy(), table.sorted().boxes, atol=0.01)
    assert 0 <= result["idf1"] <= 1 and result["mota"] <= 1
    assert 0 <= result["idf1_centre"] <= 1 and "centre in box" in printed  # both matching rules


def test_track_cli_scores_a_model_that_tracks_perfectly(walkers_video, tmp_path):
    """score_tracks through the CLI's path: the ground truth written as tracks scores MOTA 1 and IDF1 1."""
    gt = read_mot(walkers_video / "gt" / "gt.txt")
    frames = np.arange(12, 61, 3)
    for match in ("iou", "centre"):
        s = score_tracks(gt.select(np.isin(gt.frame, frames)), gt, frames, match=match)
        assert s.mota == pytest.approx(1.0) and s.idf1 == pytest.approx(1.0)


def test_track_cli_missing_checkpoint_exits_2(walkers_video, tmp_path, capsys):
    argv = [str(walkers_video / "video.avi"), "--out", str(tmp_path / "t.txt"), "--checkpoint", "/nonexistent.pt"]
    assert track_main(argv) == 2
    assert "nonexistent.pt" in capsys.readouterr().err


def test_track_cli_refuses_an_unknown_annotated_format(walkers_video, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        track_main([str(walkers_video / "video.avi"), "--annotated", str(tmp_path / "x.png")])
    assert exit_info.value.code == 2
    assert "--annotated must end in .mp4, .avi or .gif" in " ".join(
        capsys.readouterr().err.replace("\u2502", " ").split()
    )


def test_track_cli_refuses_a_moving_mnist_model(walkers_video, tiny_ckpt, tmp_path, capsys):
    argv = [str(walkers_video / "video.avi"), "--checkpoint", str(tiny_ckpt), "--out", str(tmp_path / "t.txt")]
    assert track_main(argv) == 2
    assert "tracking needs a SQAIR model of square colour regions" in capsys.readouterr().err


def test_track_cli_refuses_a_missing_video(ped_ckpt, tmp_path, capsys):
    assert track_main([str(tmp_path / "none.avi"), "--checkpoint", str(ped_ckpt)]) == 2
    assert "none.avi" in capsys.readouterr().err


def test_region_tracker_batches_all_regions_in_one_model_call(ped_ckpt, monkeypatch):
    from sqair_world.evaluation.video_tracking import RegionTracker

    model = load_model(ped_ckpt)
    calls = []
    original = model.online_step
    monkeypatch.setattr(model, "online_step", lambda s, x: calls.append(x.shape) or original(s, x))
    tracker = RegionTracker(model, 180, 240)
    boxes, ids, margin = tracker.step(np.zeros((180, 240, 3), np.uint8))
    assert calls == [torch.Size([35, 3, 64, 64])] and boxes.shape == (35, 3, 4) and ids.shape == (35, 3)
    assert margin.shape == (35, 3) and (margin <= 32).all()


def test_pedestrian_model_learns_to_explain_the_synthetic_walkers(tmp_path):
    """The experiment's model (CONV-SQAIR, 32x12 glimpses, its where initialisation), narrowed, trained 200 steps on
    seeded walkers with their exact masks: the validation bound rises by hundreds of nats (the untrained model
    explains the silhouettes by nothing). Counting needs far longer runs (docs/pedestrians.md)."""
    from sqair_world.data.pedestrians import PreprocessConfig, load_pedestrians
    from sqair_world.model.registry import build_model
    from sqair_world.training.experiments import get_experiment, mean_frame
    from sqair_world.training.trainer import TrainConfig, Trainer

    cfg = PreprocessConfig(step=3, all_phases=True, foreground="ground_truth")
    data = load_pedestrians(WalkersConfig(num_frames=300, seed=0), cfg, cache=False, progress=False)
    exp = get_experiment("pedestrians")
    torch.manual_seed(0)
    small = dict(n_hidden=32, n_hidden_small=16, n_what=8, conv_channels=8, k_particles=3)
    model = build_model(exp.model, **{**exp.model_overrides, **small})
    model.set_background(torch.as_tensor(mean_frame(data.train.frames)))
    train = TrainConfig(
        steps=200, batch_size=8, lr=1e-3, curriculum_start=3, curriculum_max=3, val_every=40, progress=False,
        tensorboard=False, run_dir=str(tmp_path / "run"),
    )  # fmt: skip
    trainer = Trainer(model, data.train.frames, data.val.frames, train, val_counts=data.val.counts)
    before = trainer.validate()["iwae"]
    trainer.fit()
    after = trainer.history[-1]["iwae"]
    assert after > before + 300, (before, after)


def test_foreground_fraction_counts_the_mask_inside_each_box():
    from sqair_world.evaluation.video_tracking import foreground_fraction

    mask = np.zeros((2, 10, 10), bool)
    mask[0, :5, :5] = True
    mask[1] = True
    boxes = np.array([[[0.0, 0, 5, 5], [0, 0, 10, 10], [20, 20, 5, 5]], [[2.0, 2, 4, 4], [8, 8, 5, 5], [0, 0, 0, 0]]])
    np.testing.assert_allclose(foreground_fraction(mask, boxes), [[1.0, 0.25, 0.0], [1.0, 1.0, 0.0]])


def test_merge_regions_drops_slots_over_empty_background():
    boxes = np.zeros((1, 2, 4))
    boxes[0, 0], boxes[0, 1] = [0, 0, 8, 20], [40, 0, 8, 20]
    det = merge_regions(boxes, np.array([[1, 2]]), np.ones((1, 2)), 0.3, 2, np.array([[0.4, 0.02]]), 0.1)
    assert det.keys == [[(0, 1)]]


def test_painted_boxes_keep_the_glimpse_rows_and_columns_the_decoder_paints(ped_ckpt, monkeypatch):
    model = load_model(ped_ckpt, map_location="cpu")
    h, w = model.cfg.glimpse_size  # 32 x 12
    ink = torch.zeros(2, 3, h, w)
    ink[0, 1, 8:24, 3:9] = 1.0  # the middle half of the rows, columns 3-8; one channel is enough
    ink[0, 0, 0, 0] = 0.1  # a faint pixel under 0.2 of the peak is no paint
    # glimpse 1 paints nothing: it keeps its where box
    monkeypatch.setattr(model.glimpse_decoder, "forward", lambda what: ink[: what.shape[0]])
    where = box_to_where(torch.tensor([[[0.5, 0.5, 0.24, 0.64], [0.3, 0.4, 0.2, 0.5]]]))  # [1, 2, 4]
    z = Slots(torch.zeros(1, 2, model.cfg.n_what), where, torch.ones(1, 2), torch.zeros(1, 2, dtype=torch.long))
    boxes = model.painted_boxes(z, 0.2)
    # columns 3..8 of 12 of a 0.24-wide box starting at 0.38; rows 8..23 of 32 of a 0.64-high box starting at 0.18
    x0, y0 = 0.38 + 0.24 * 3 / 12, 0.18 + 0.64 * 8 / 32
    expected = [x0 + 0.24 * 6 / 12 / 2, y0 + 0.64 * 16 / 32 / 2, 0.24 * 6 / 12, 0.64 * 16 / 32]
    torch.testing.assert_close(boxes[0, 0], torch.tensor(expected), atol=1e-4, rtol=0)
    torch.testing.assert_close(boxes[0, 1], torch.tensor([0.3, 0.4, 0.2, 0.5]), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="fraction"):
        model.painted_boxes(z, 1.5)


def test_pedestrian_counts_script_prints_the_breakdown(ped_ckpt, capsys):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from pedestrian_counts import main as counts_main

    counts_main([str(ped_ckpt), "--walkers-frames", "200", "--num-sequences", "8", "--reject-overlap", "1.0"])
    out = capsys.readouterr().out
    assert "posterior counting" in out and "under-counted frames" in out
    assert "centre inside a present glimpse box" in out and "a perfect detector" in out
    confusion = np.array([[int(v) for v in line.strip(" []").split()] for line in out.splitlines()[-4:]])
    assert confusion.shape == (4, 4) and confusion.sum() == 8 * 5  # every frame of the 8 sequences, once
