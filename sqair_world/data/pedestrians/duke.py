"""DukeMTMC as it was distributed: ground truth ``trainval.mat`` / ``trainvalRaw.mat`` and the per-camera videos.

Layout of a DukeMTMC root (the data set was withdrawn in 2019; these readers serve copies that people still have)::

    videos/cameraN/00000.MTS ... 00009.MTS   1920x1080 at 59.94 fps, one running frame counter per camera
    frames/cameraN/*.jpg                     frames extracted by the devkit (optional, used when present)
    ground_truth/trainval.mat                boxes clipped to the cameras' ROIs (MATLAB v5: scipy)
    ground_truth/trainvalRaw.mat             every box (MATLAB v7.3 = HDF5: h5py, stored transposed)

The ground truth is one variable ``trainData``, one row per box, with the columns :data:`DUKE_COLUMNS` in
1920x1080 pixels and each camera's 1-based *local* frame numbers (the videos' running counter). Boxes are kept as
stored (MATLAB's 1-based pixels, as the authors used them: a one-pixel offset is 1/8 px at width 240).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from sqair_world.data.pedestrians.errors import AnnotationError, VideoError
from sqair_world.data.pedestrians.mot import BoxTable
from sqair_world.data.pedestrians.video import IMAGE_EXTENSIONS, FrameFolder, FrameSource, MultiPartVideo

DUKE_COLUMNS = ("camera", "ID", "frame", "left", "top", "width", "height", "worldX", "worldY", "feetX", "feetY")
DUKE_FRAME_SIZE = (1080, 1920)  #: (H, W) of the videos, the ground truth's pixel frame
DUKE_FPS = 59.940059
DUKE_START_TIMES = (5543, 3607, 27244, 31182, 1, 22402, 18968, 46766)
"""Global frame (camera 5's clock) of each camera's local frame 1: ``local = global - start + 1``."""


@dataclass(frozen=True, eq=False)
class DukeGroundTruth:
    """The ``trainData`` matrix, one row per box, split into named columns."""

    camera: np.ndarray  #: int64 [N] camera 1..8
    ids: np.ndarray  #: int64 [N] person identity
    frame: np.ndarray  #: int64 [N] the camera's 1-based local frame number
    boxes: np.ndarray  #: float64 [N, 4] (left, top, width, height) in 1920x1080 pixels
    world: np.ndarray  #: float64 [N, 2] (worldX, worldY) ground-plane position in metres
    feet: np.ndarray  #: float64 [N, 2] (feetX, feetY) image position of the feet in pixels

    def __len__(self) -> int:
        """N, the number of boxes."""
        return len(self.frame)

    @property
    def cameras(self) -> np.ndarray:
        """int64 the cameras that have boxes, ascending."""
        return np.unique(self.camera)

    def camera_boxes(self, camera: int) -> BoxTable:
        """The boxes of one camera as a :class:`BoxTable` (local frames; xyz = worldX, worldY, -1)."""
        if camera not in range(1, 9):
            raise ValueError(f"DukeMTMC cameras are 1..8, got {camera}")
        rows = self.camera == camera
        xyz = np.column_stack([self.world[rows], np.full(int(rows.sum()), -1.0)])
        return BoxTable(self.frame[rows], self.ids[rows], self.boxes[rows], None, xyz)


def _read_matrix(path: Path, variable: str) -> np.ndarray:
    """``variable`` of a MATLAB file as a 2-D float array: v7.3 (HDF5) with h5py, transposed back from MATLAB's
    column-major layout; v5/v7 with scipy."""
    with open(path, "rb") as f:
        head = f.read(1032)
    hdf5_signature = b"\x89HDF\r\n\x1a\n"
    is_hdf5 = head.startswith(b"MATLAB 7.3") or any(head[o : o + 8] == hdf5_signature for o in (0, 512, 1024))
    if is_hdf5:
        with h5py.File(path, "r") as f:
            if variable not in f:
                raise AnnotationError(f"{path}: no variable {variable!r}; it holds {sorted(f.keys())}")
            node = f[variable]
            if not isinstance(node, h5py.Dataset):
                raise AnnotationError(f"{path}: {variable!r} is a {type(node).__name__}, not a numeric matrix")
            return np.asarray(node[()]).T
    import scipy.io

    if not head.startswith(b"MATLAB 5.0"):
        raise AnnotationError(f"{path}: not a MATLAB .mat file (no MATLAB 5.0 or 7.3 header)")
    try:
        mat = scipy.io.loadmat(path, variable_names=[variable])
    except (ValueError, TypeError, OSError) as err:
        raise AnnotationError(f"{path}: cannot be read as a MATLAB file ({err}); it is truncated or corrupt") from None
    if variable not in mat:
        names = [name for name, *_ in scipy.io.whosmat(path)]
        raise AnnotationError(f"{path}: no variable {variable!r}; it holds {names}")
    return np.asarray(mat[variable])


def load_duke_ground_truth(path: str | os.PathLike, variable: str = "trainData") -> DukeGroundTruth:
    """Read DukeMTMC's ``trainval.mat`` (MATLAB v5) or ``trainvalRaw.mat`` (v7.3 / HDF5, needs h5py).

    Raises ``FileNotFoundError`` or :class:`AnnotationError` naming the file, and the row for bad values."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"DukeMTMC ground-truth file {path} does not exist")
    data = _read_matrix(path, variable)
    if data.ndim != 2 or data.shape[1] != len(DUKE_COLUMNS) or not np.issubdtype(data.dtype, np.number):
        raise AnnotationError(
            f"{path}: {variable} is {data.dtype} {data.shape}, expected a numeric matrix with {len(DUKE_COLUMNS)} "
            f"columns [{', '.join(DUKE_COLUMNS)}] (a v7.3 file stores it transposed, [{len(DUKE_COLUMNS)}, N])"
        )
    data = data.astype(np.float64)
    ints = data[:, :3]
    problems = (
        (~np.isfinite(data).all(1), "a value is not finite"),
        ((ints != np.round(ints)).any(1), "camera, ID and frame must be integers"),
        ((data[:, 0] < 1) | (data[:, 0] > 8), "camera must be 1..8"),
        (data[:, 2] < 1, "frame must be >= 1 (local, 1-based)"),
        ((data[:, 5] < 0) | (data[:, 6] < 0), "width and height must be >= 0"),
    )
    for mask, what in problems:
        if mask.any():
            raise AnnotationError(f"{path}: {variable} row {int(np.argmax(mask)) + 1}: {what}")
    ints = ints.astype(np.int64)
    return DukeGroundTruth(ints[:, 0], ints[:, 1], ints[:, 2], data[:, 3:7], data[:, 7:9], data[:, 9:11])


def to_local_frame(global_frame: np.ndarray | int, camera: int) -> np.ndarray:
    """Global (camera 5's clock) -> the camera's 1-based local frame numbers."""
    return np.asarray(global_frame) - DUKE_START_TIMES[camera - 1] + 1


def to_global_frame(local_frame: np.ndarray | int, camera: int) -> np.ndarray:
    """The camera's 1-based local -> global (camera 5's clock) frame numbers."""
    return np.asarray(local_frame) + DUKE_START_TIMES[camera - 1] - 1


def duke_video(root: str | os.PathLike, camera: int) -> FrameSource:
    """Camera ``camera``'s frames under a DukeMTMC root: ``frames/cameraN/`` when it holds images, else the video
    parts ``videos/cameraN/*.MTS`` read as one video with a running frame counter."""
    root = Path(root)
    frames, videos = root / "frames" / f"camera{camera}", root / "videos" / f"camera{camera}"
    if frames.is_dir() and any(p.suffix.lower() in IMAGE_EXTENSIONS for p in frames.iterdir()):
        return FrameFolder(frames, fps=DUKE_FPS)
    if videos.is_dir():
        return MultiPartVideo(videos)
    raise VideoError(f"{root}: no frames for camera {camera}: neither {frames}/ with images nor {videos}/ exists")


def duke_ground_truth_file(root: str | os.PathLike) -> Path:
    """``ground_truth/trainvalRaw.mat`` (every box, what the authors used) if present, else ``trainval.mat``."""
    root = Path(root)
    for name in ("trainvalRaw.mat", "trainval.mat"):
        for path in (root / "ground_truth" / name, root / name):
            if path.is_file():
                return path
    raise FileNotFoundError(f"{root}: no ground_truth/trainvalRaw.mat or ground_truth/trainval.mat")


__all__ = [
    "DUKE_COLUMNS",
    "DUKE_FPS",
    "DUKE_FRAME_SIZE",
    "DUKE_START_TIMES",
    "DukeGroundTruth",
    "duke_ground_truth_file",
    "duke_video",
    "load_duke_ground_truth",
    "to_global_frame",
    "to_local_frame",
]
