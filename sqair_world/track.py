"""Track the people of any static-camera video: ``python -m sqair_world.track VIDEO [options]``, or ``sqair-track``.

    python -m sqair_world.track /usr/share/doc/opencv-doc/examples/data/vtest.avi --out tracks.txt
    python -m sqair_world.track video.avi --checkpoint runs/pedestrians/model.pt --gt gt.txt --annotated tracks.gif

Background subtraction (the training recipe) on every frame, a SQAIR model trained on 64x64 regions
(``python -m sqair_world.pretrain pedestrians``) over the grid of regions of every ``step``-th frame, and the
regions' identities merged into video tracks (:mod:`sqair_world.evaluation.video_tracking`). Writes the tracks as a
MOTChallenge file in the video's pixels and an annotated video (MP4, AVI or GIF) with boxes coloured by identity;
with ``--gt`` scores them with motmetrics (MOTA, MOTP, IDF1, identity switches) on the tracked frames.

The default checkpoint is the one shipped for ``vtest.avi`` (PETS 2009 S2.L1; docs/pedestrians.md says how to
install the clip). Bad input (missing video or checkpoint, unreadable files, a model of other frames) exits with
code 2 and one line ``error: ...``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import tyro
from tqdm.auto import tqdm

from sqair_world.data.pedestrians import AnnotationError, VideoError, open_video, read_mot, write_mot, write_video
from sqair_world.evaluation.draw import draw_frame, save_gif
from sqair_world.evaluation.video_tracking import VideoTrackerConfig, score_tracks, track_video, tracks_table
from sqair_world.speed import flush_denormals
from sqair_world.training.checkpoints import CheckpointError, load_model
from sqair_world.utils import select_device

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "pedestrians_vtest.pt"
PRETRAIN_HINT = (
    "python -m sqair_world.pretrain pedestrians --video /usr/share/doc/opencv-doc/examples/data/vtest.avi "
    "--output sqair_world/checkpoints/pedestrians_vtest.pt --half"
)


@dataclass(frozen=True)
class TrackArgs:
    """Track the people of a static-camera video with a SQAIR pedestrian model."""

    video: tyro.conf.Positional[Path]
    """A video file (AVI, MP4, MTS, ...) or a folder of numbered frames."""
    checkpoint: Path | None = None
    """A model of the pedestrians experiment (default: the one shipped for vtest.avi)."""
    out: Path = Path("tracks.txt")
    """The tracks, MOTChallenge format (frame, id, left, top, width, height, conf, x, y, z), video pixels."""
    annotated: Path | None = None
    """Annotated video with boxes coloured by identity: .mp4, .avi or .gif (default: OUT with .mp4)."""
    no_annotated: bool = False
    """Do not write the annotated video."""
    annotated_width: int = 480
    """Width of the annotated video, pixels."""
    gt: Path | None = None
    """MOTChallenge ground truth of the video (its pixels): print MOTA, MOTP, IDF1 and switches."""
    json: Path | None = None
    """Also write the run's figures (and the scores with --gt) to this JSON file."""
    step: int | None = None
    """Track every step-th frame (default: the frame step the checkpoint was trained at)."""
    max_frames: int | None = None
    """Read at most this many frames of the video."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""
    threads: int | None = None
    """Intra-op CPU threads (default: torch's setting)."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        for name in ("annotated_width", "step", "max_frames", "threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        if self.annotated is not None and self.annotated.suffix.lower() not in (".mp4", ".avi", ".gif"):
            raise ValueError(f"--annotated must end in .mp4, .avi or .gif, got {self.annotated}")


def load_tracker_model(path: Path | None, device: torch.device):
    """The pedestrian model at ``path`` (default: the shipped one) and the frame step it was trained at."""
    if path is None:
        path = DEFAULT_CHECKPOINT
        if not path.is_file():
            raise FileNotFoundError(
                f"the shipped checkpoint {path} is missing; pass --checkpoint or train it: {PRETRAIN_HINT}"
            )
    model = load_model(path, map_location=device)
    shape = tuple(model.cfg.image_shape)
    if not hasattr(model, "online_step") or shape[0] != 3 or shape[1] != shape[2]:
        raise ValueError(
            f"{path} is a {model.model_name} model of {shape} frames; tracking needs a SQAIR model of square colour "
            "regions (python -m sqair_world.pretrain pedestrians)"
        )
    source = model.checkpoint_extra.get("pedestrians") or {}
    return model, source.get("step") or 3


def annotate(frame: np.ndarray, boxes: np.ndarray, ids: np.ndarray, width: int) -> np.ndarray:
    """``frame`` resized to ``width`` with its boxes (frame pixels) coloured by identity."""
    s = width / frame.shape[1]
    small = cv2.resize(frame, (width, round(frame.shape[0] * s)), interpolation=cv2.INTER_AREA)
    return draw_frame(small, boxes * s, ids, scale=1, thickness=2)


def run(args: TrackArgs) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    flush_denormals()
    device = select_device(args.device)
    model, trained_step = load_tracker_model(args.checkpoint, device)
    gt = read_mot(args.gt) if args.gt is not None else None
    source = open_video(args.video)
    cfg = VideoTrackerConfig(step=args.step or trained_step)
    total = source.num_frames if args.max_frames is None else min(args.max_frames, source.num_frames or args.max_frames)
    tracked, pictures = [], []
    t0 = time.perf_counter()
    count = [0]
    with tqdm(total=total, desc="track", unit="frame", disable=not args.progress) as bar:
        for item in track_video(model, _limited(source, args.max_frames, bar, count), cfg):
            tracked.append(item._replace(frame=None, foreground=None))
            if not args.no_annotated:
                pictures.append(annotate(item.frame, item.boxes, item.ids, args.annotated_width))
    read = count[0]
    seconds = time.perf_counter() - t0
    table = tracks_table(tracked)
    write_mot(args.out, table)
    result = {
        "video": str(args.video),
        "frames_read": read,
        "frames_tracked": len(tracked),
        "step": cfg.step,
        "tracks": int(len(np.unique(table.ids))),
        "seconds": round(seconds, 2),
        "frames_per_second": round(read / seconds, 2) if seconds > 0 else None,
        "tracks_file": str(args.out),
    }
    print(f"wrote {args.out}: {len(table)} boxes, {result['tracks']} tracks over {len(tracked)} tracked frames")
    if pictures:
        path = args.annotated or args.out.with_suffix(".mp4")
        fps = (source.fps or 10.0) / cfg.step
        save_gif(path, pictures, fps=fps) if path.suffix.lower() == ".gif" else write_video(
            path, np.stack(pictures), fps
        )
        result["annotated"] = str(path)
        print(f"wrote {path}")
    if gt is not None:
        numbers = np.array([f.number for f in tracked], np.int64)
        for match, suffix in (("iou", ""), ("centre", "_centre")):  # as evaluate pedestrians: both rules
            scores = score_tracks(table, gt, numbers, match=match)
            result.update({f"{k}{suffix}": v for k, v in scores._asdict().items()})
            print(
                f"{'IoU >= 0.5' if match == 'iou' else 'centre in box':<13}  MOTA {scores.mota:.3f}  MOTP "
                f"{scores.motp:.3f}  IDF1 {scores.idf1:.3f}  switches {scores.num_switches}"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return result


def _limited(source, max_frames: int | None, bar, count: list[int]):
    """``source``'s frames, at most ``max_frames``, ticking the progress bar and ``count[0]``."""
    for item in source:
        if max_frames is not None and count[0] >= max_frames:
            return
        count[0] += 1
        bar.update()
        yield item


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (0 done, 2 bad input). ``--help`` exits with status 0, options
    tyro rejects with status 2 and its message."""
    args = tyro.cli(TrackArgs, args=argv, prog="python -m sqair_world.track", description=__doc__.split("\n\n")[0])
    try:
        run(args)
    except (ValueError, CheckpointError, FileNotFoundError, VideoError, AnnotationError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
