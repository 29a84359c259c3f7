"""Frames per second of the pedestrian pipeline on a 768x576 video: background subtraction alone (the baseline:
decode, subtract, clean up, downscale) and ``track`` (the same plus the region model and the identity linking), in
the same run, interleaved, best of ``--repeats``.

    python bench/bench_pedestrians.py [--video vtest.avi] [--checkpoint CKPT] [--frames 150] [--repeats 2]

The video defaults to OpenCV's vtest.avi where ``opencv-doc`` installed it, else a 768x576 synthetic-walkers video
written to a temporary folder. The checkpoint defaults to the shipped one (``sqair_world/checkpoints/
pedestrians_vtest.pt``), else a freshly initialised model of the pedestrians experiment (same cost per frame).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from sqair_world.data.pedestrians import (
    BackgroundConfig,
    BackgroundSubtractor,
    WalkersConfig,
    make_walkers,
    open_video,
    write_video,
)
from sqair_world.evaluation.video_tracking import VideoTrackerConfig, track_video
from sqair_world.model.registry import build_model
from sqair_world.track import DEFAULT_CHECKPOINT
from sqair_world.training.checkpoints import load_model
from sqair_world.training.experiments import get_experiment
from sqair_world.training.trainer import cpu_model

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


def subtract_only(path: Path, frames: int) -> float:
    """Frames per second of decoding and background subtraction."""
    sub = BackgroundSubtractor(BackgroundConfig())
    t0 = time.perf_counter()
    n = 0
    for n, (_, frame) in enumerate(open_video(path), 1):
        sub.apply(frame)
        if n >= frames:
            break
    return n / (time.perf_counter() - t0)


def tracking(path: Path, frames: int, model) -> float:
    """Frames per second (frames read, every one through the subtractor) of the whole tracker."""
    video = open_video(path)

    def limited():
        for i, item in enumerate(video):
            if i >= frames:
                return
            yield item

    t0 = time.perf_counter()
    for _ in track_video(model, limited(), VideoTrackerConfig()):
        pass
    return frames / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=None)
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tmp = tempfile.TemporaryDirectory()
    video = args.video or (VTEST if VTEST.is_file() else None)
    if video is None:
        walkers = make_walkers(
            WalkersConfig(height=576, width=768, num_frames=args.frames, far_height=70, near_height=140)
        )
        video = Path(tmp.name) / "walkers.avi"
        write_video(video, walkers.frames, fps=7.0)
    ckpt = args.checkpoint or (DEFAULT_CHECKPOINT if DEFAULT_CHECKPOINT.is_file() else None)
    if ckpt is not None:
        model = load_model(ckpt)
    else:
        exp = get_experiment("pedestrians")
        model = build_model(exp.model, **exp.model_overrides)
    model.float()
    print(f"# {cpu_model()}, {args.threads} thread(s), video {video}, checkpoint {ckpt or 'untrained'}")
    best = {"subtract": 0.0, "track": 0.0}
    for _ in range(args.repeats):
        best["subtract"] = max(best["subtract"], subtract_only(video, args.frames))
        best["track"] = max(best["track"], tracking(video, args.frames, model))
    print(f"BENCH pedestrians_background_subtraction {best['subtract']:.1f} frames/s")
    print(f"BENCH pedestrians_track {best['track']:.1f} frames/s")
    print(f"BENCH pedestrians_track_vs_subtraction {best['track'] / best['subtract']:.3f} ratio")
    tmp.cleanup()


if __name__ == "__main__":
    main()
