"""Frames of a static camera from a video file, a folder of numbered images, a folder of video parts read as one
video (DukeMTMC's ``videos/cameraN/00000.MTS, 00001.MTS, ...``), or an array; and a video writer.

Every source yields ``(frame_number, frame)`` in time order: 1-based running frame numbers (matching MOTChallenge's
and DukeMTMC's local frame numbers) and RGB uint8 ``[H, W, 3]`` frames. Decoding uses OpenCV's bundled FFmpeg,
which reads AVI, MP4, MOV, MKV, MPEG-TS/MTS, GIF and more. Problems raise :class:`VideoError` naming the file.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from sqair_world.data.pedestrians.errors import VideoError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS = (".mts", ".m2ts", ".ts", ".avi", ".mp4", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v", ".gif")
_WRITE_CODECS = {".avi": "MJPG", ".mp4": "mp4v", ".mov": "mp4v", ".m4v": "mp4v", ".mts": "mp4v", ".ts": "mp4v"}


def _stat_key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


class FrameSource(ABC):
    """Frames of one static camera in time order: iterate for ``(frame_number, rgb uint8 [H, W, 3])``."""

    @abstractmethod
    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(1-based frame number, RGB uint8 [H, W, 3])`` in time order."""

    @property
    @abstractmethod
    def frame_size(self) -> tuple[int, int]:
        """(H, W) of every frame, in pixels."""

    @property
    def num_frames(self) -> int | None:
        """Frames the source announces (a container's count may be an estimate), None if unknown."""
        return None

    @property
    def fps(self) -> float | None:
        """Frames per second the source announces, None if unknown."""
        return None

    @abstractmethod
    def fingerprint(self) -> str:
        """A string that changes when the frames may have changed (paths, sizes, modification times): a cache key."""


class VideoFile(FrameSource):
    """One video file, decoded by OpenCV.

    A video that decodes fewer frames than ``expected_frames``, or (with ``check_length``) than its header announces
    by more than 1% (at least one frame), raises :class:`VideoError` as truncated after yielding the frames it has.
    A truncated MPEG transport stream (``.MTS``) looks complete from its header: pass ``expected_frames`` there."""

    def __init__(
        self,
        path: str | os.PathLike,
        first_frame: int = 1,
        expected_frames: int | None = None,
        check_length: bool = True,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"video file {self.path} does not exist")
        self.first_frame, self.expected_frames, self.check_length = first_frame, expected_frames, check_length
        cap = self._open()
        self._count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self._fps = float(cap.get(cv2.CAP_PROP_FPS))
        self._size = (int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)))
        cap.release()

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise VideoError(
                f"{self.path}: OpenCV cannot open it as a video: not a video, an unsupported codec, or a truncated "
                "file whose header or index is missing; re-encode it (ffmpeg -i IN -c:v libx264 OUT.mp4) or extract "
                "its frames into a folder"
            )
        return cap

    @property
    def frame_size(self) -> tuple[int, int]:
        return self._size

    @property
    def num_frames(self) -> int | None:
        return self.expected_frames or (self._count if self._count > 0 else None)

    @property
    def fps(self) -> float | None:
        return self._fps if self._fps > 0 else None

    def fingerprint(self) -> str:
        return _stat_key(self.path)

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        return self._frames(self.first_frame)

    def _frames(self, first_frame: int) -> Iterator[tuple[int, np.ndarray]]:
        cap, n = self._open(), 0
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                if frame.shape[:2] != self._size:
                    raise VideoError(
                        f"{self.path}: frame {n + 1} is {frame.shape[1]}x{frame.shape[0]}, "
                        f"the video's first frames {self._size[1]}x{self._size[0]}; frames must keep one size"
                    )
                yield first_frame + n, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                n += 1
        finally:
            cap.release()
        self._check_decoded(n)

    def _check_decoded(self, n: int) -> None:
        if n == 0:
            raise VideoError(f"{self.path}: no frame could be decoded; the file is empty, truncated or corrupt")
        if self.expected_frames is not None and n != self.expected_frames:
            raise VideoError(
                f"{self.path}: decoded {n} frames, expected {self.expected_frames}; "
                + ("the file is truncated or corrupt" if n < self.expected_frames else "check the expected count")
            )
        if self.expected_frames is None and self.check_length and self._count > 0:
            if n < self._count - max(1, self._count // 100):
                raise VideoError(
                    f"{self.path}: decoding stopped after {n} of the {self._count} frames its header announces; "
                    f"the file is truncated or corrupt (check_length=False accepts the {n} frames that decode)"
                )

    def __repr__(self) -> str:
        return f"VideoFile({str(self.path)!r})"


def _frame_number(name: str) -> int | None:
    """The last run of digits in a file's stem (``img_000030.jpeg`` -> 30), None if it has none."""
    digits = re.findall(r"\d+", Path(name).stem)
    return int(digits[-1]) if digits else None


def _numbered(folder: Path, extensions: Sequence[str], what: str) -> tuple[list[Path], np.ndarray | None]:
    """The files of ``folder`` with ``extensions``, in numeric order, and their numbers (None when none has one)."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in extensions)
    numbers = [_frame_number(p.name) for p in files]
    if all(n is None for n in numbers):
        return files, None
    if any(n is None for n in numbers):
        odd = files[numbers.index(None)]
        raise VideoError(f"{odd}: has no number in its name, unlike the other {what} in {folder}; remove or rename it")
    order = np.argsort(numbers, kind="stable")
    files, nums = [files[i] for i in order], np.asarray(numbers, dtype=np.int64)[order]
    dup = np.flatnonzero(np.diff(nums) == 0)
    if len(dup):
        raise VideoError(f"{folder}: {files[dup[0]].name} and {files[dup[0] + 1].name} carry the same number")
    return files, nums


def _check_gaps(folder: Path, files: list[Path], numbers: np.ndarray, step: int, what: str) -> None:
    gaps = np.flatnonzero(np.diff(numbers) != step)
    if len(gaps):
        i = gaps[0]
        missing = np.arange(numbers[i] + step, numbers[i + 1], step)
        shown = ", ".join(str(m) for m in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise VideoError(
            f"{folder}: missing {what} between {files[i].name} and {files[i + 1].name}"
            + (f" (numbers {shown})" if len(missing) else f" (numbers must step by {step})")
        )


class FrameFolder(FrameSource):
    """A folder of numbered images (``000001.jpg``, ``img_000030.jpeg``, ...): a MOTChallenge ``img1/``, DukeMTMC's
    extracted ``frames/cameraN/``, or any frame dump.

    Frame numbers are the last number in each file name (1, 2, ... in name order if names have none). The numbers
    must step by ``step`` (default: the smallest step between them, so a folder of every 30th frame is fine); a gap
    raises :class:`VideoError` naming the missing frames."""

    def __init__(self, path: str | os.PathLike, step: int | None = None, fps: float | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise FileNotFoundError(f"frame folder {self.path} does not exist")
        self.files, numbers = _numbered(self.path, IMAGE_EXTENSIONS, "frames")
        if not self.files:
            raise VideoError(f"{self.path}: no image files ({', '.join(IMAGE_EXTENSIONS)})")
        if numbers is None:
            numbers = np.arange(1, len(self.files) + 1)
        if len(numbers) > 1:
            _check_gaps(self.path, self.files, numbers, step or int(np.diff(numbers).min()), "frames")
        self.numbers, self._fps = numbers, fps
        self._size = self._read(self.files[0]).shape[:2]

    def _read(self, file: Path) -> np.ndarray:
        image = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if image is None:
            raise VideoError(f"{file}: cannot be read as an image (corrupt, truncated or not an image)")
        return image

    @property
    def frame_size(self) -> tuple[int, int]:
        return self._size

    @property
    def num_frames(self) -> int:
        return len(self.files)

    @property
    def fps(self) -> float | None:
        return self._fps

    def fingerprint(self) -> str:
        digest = hashlib.sha1("\n".join(_stat_key(f) for f in self.files).encode()).hexdigest()
        return f"{self.path.resolve()}:{len(self.files)}:{digest}"

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        for number, file in zip(self.numbers, self.files):
            image = self._read(file)
            if image.shape[:2] != self._size:
                raise VideoError(
                    f"{file}: {image.shape[1]}x{image.shape[0]}, but {self.files[0].name} is "
                    f"{self._size[1]}x{self._size[0]}; frames must keep one size"
                )
            yield int(number), cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def __repr__(self) -> str:
        return f"FrameFolder({str(self.path)!r})"


class MultiPartVideo(FrameSource):
    """A folder of numbered video parts read as one video, as DukeMTMC distributed its cameras
    (``videos/camera1/00000.MTS ... 00009.MTS``): parts in numeric order, with no part missing, and one running
    1-based frame counter across them, so frame numbers match the ground truth's local frame numbers.

    ``part_frames``: the known frame count of each part; a part that decodes another count raises
    :class:`VideoError` (the only way to catch a truncated ``.MTS`` part)."""

    def __init__(self, path: str | os.PathLike, part_frames: Sequence[int] | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise FileNotFoundError(f"video folder {self.path} does not exist")
        files, numbers = _numbered(self.path, VIDEO_EXTENSIONS, "video parts")
        if not files:
            raise VideoError(f"{self.path}: no video parts ({', '.join(VIDEO_EXTENSIONS)})")
        if numbers is not None and len(numbers) > 1:
            _check_gaps(self.path, files, numbers, 1, "video parts")
        if part_frames is not None and len(part_frames) != len(files):
            raise ValueError(f"{self.path}: {len(files)} video parts but {len(part_frames)} part_frames")
        self.part_frames = None if part_frames is None else [int(n) for n in part_frames]
        self.parts = [
            VideoFile(f, expected_frames=None if part_frames is None else self.part_frames[i])
            for i, f in enumerate(files)
        ]
        sizes = {p.frame_size for p in self.parts}
        if len(sizes) > 1:
            odd = next(p for p in self.parts if p.frame_size != self.parts[0].frame_size)
            raise VideoError(f"{odd.path}: frame size {odd.frame_size} differs from {self.parts[0].path.name}'s")

    @property
    def frame_size(self) -> tuple[int, int]:
        return self.parts[0].frame_size

    @property
    def num_frames(self) -> int | None:
        counts = [p.num_frames for p in self.parts]
        return None if None in counts else sum(counts)

    @property
    def fps(self) -> float | None:
        return self.parts[0].fps

    def fingerprint(self) -> str:
        return "|".join(p.fingerprint() for p in self.parts)

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        counter = 1
        for part in self.parts:
            for number, frame in part._frames(counter):  # the frame counter runs on across parts
                yield number, frame
            counter = number + 1

    def __repr__(self) -> str:
        return f"MultiPartVideo({str(self.path)!r}, {len(self.parts)} parts)"


class ArrayFrames(FrameSource):
    """Frames already in memory, RGB uint8 ``[F, H, W, 3]``, numbered from ``first_frame``."""

    def __init__(self, frames: np.ndarray, first_frame: int = 1, fps: float | None = None, name: str = "frames"):
        frames = np.asarray(frames)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
            raise ValueError(f"frames must be RGB uint8 [F, H, W, 3] with F >= 1, got {frames.dtype} {frames.shape}")
        self.frames, self.first_frame, self._fps, self.name = frames, first_frame, fps, name

    @property
    def frame_size(self) -> tuple[int, int]:
        return self.frames.shape[1:3]

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def fps(self) -> float | None:
        return self._fps

    def fingerprint(self) -> str:
        return f"{self.name}:{self.first_frame}:{hashlib.sha1(np.ascontiguousarray(self.frames).data).hexdigest()}"

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        for i, frame in enumerate(self.frames):
            yield self.first_frame + i, frame

    def __repr__(self) -> str:
        return f"ArrayFrames({self.name!r}, {len(self.frames)} frames)"


def open_video(path: str | os.PathLike, **kwargs) -> FrameSource:
    """A video file, a folder of numbered frames, a folder of video parts, or a MOTChallenge sequence folder
    (its ``img1/``); ``kwargs`` go to the matching class."""
    path = Path(path)
    if path.is_file():
        return VideoFile(path, **kwargs)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist; pass a video file or a folder of frames or video parts")
    suffixes = {p.suffix.lower() for p in path.iterdir() if p.is_file()}
    if suffixes & set(IMAGE_EXTENSIONS):
        return FrameFolder(path, **kwargs)
    if suffixes & set(VIDEO_EXTENSIONS):
        return MultiPartVideo(path, **kwargs)
    if (path / "img1").is_dir():
        return FrameFolder(path / "img1", **kwargs)
    raise VideoError(
        f"{path}: neither image files ({', '.join(IMAGE_EXTENSIONS)}) nor video parts "
        f"({', '.join(VIDEO_EXTENSIONS)}) nor a MOTChallenge img1/ folder"
    )


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float = 10.0) -> Path:
    """Write RGB uint8 ``[F, H, W, 3]`` frames as ``.avi`` (Motion-JPEG), ``.mp4`` / ``.mov`` / ``.m4v`` (MPEG-4) or
    ``.mts`` / ``.ts`` (MPEG-4 in a transport stream, an MTS stand-in), atomically."""
    path = Path(path)
    frames = np.asarray(frames)
    codec = _WRITE_CODECS.get(path.suffix.lower())
    if codec is None:
        raise ValueError(f"cannot write {path.suffix!r} videos; use one of {', '.join(_WRITE_CODECS)}")
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"frames must be RGB uint8 [F, H, W, 3] with F >= 1, got {frames.dtype} {frames.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*codec), fps, (frames.shape[2], frames.shape[1]))
        if not writer.isOpened():
            raise VideoError(f"{path}: OpenCV cannot write {codec} video here")
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        writer.release()
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_frames(folder: str | os.PathLike, frames: np.ndarray, first_frame: int = 1, ext: str = ".jpg") -> Path:
    """Write RGB uint8 ``[F, H, W, 3]`` frames as ``folder/000001.jpg, ...`` (MOTChallenge's ``img1/`` naming)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(np.asarray(frames)):
        file = folder / f"{first_frame + i:06d}{ext}"
        if not cv2.imwrite(str(file), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
            raise VideoError(f"{file}: OpenCV could not write the image (unsupported extension {ext!r}?)")
    return folder


__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "ArrayFrames",
    "FrameFolder",
    "FrameSource",
    "MultiPartVideo",
    "VideoFile",
    "open_video",
    "write_frames",
    "write_video",
]
