"""MOTChallenge annotations: ``gt.txt`` / ``det.txt`` read and written, and whole sequence folders.

A MOTChallenge text file has one box per line, comma separated (whitespace is accepted too, as motmetrics does):
``frame, id, left, top, width, height, conf, x, y, z``. Frames are 1-based; ``left`` / ``top`` are 1-based pixels
(MATLAB's convention) and :class:`BoxTable` holds them 0-based, as ``motmetrics.io.loadtxt`` does; the writer adds
the 1 back. MOT16/17 ground truth reuses the last four columns as (consider flag, class, visibility, -) and
``det.txt`` has ``id = -1``; both read into the same table. A sequence folder is ``img1/000001.jpg ...``,
``gt/gt.txt``, optionally ``det/det.txt`` and ``seqinfo.ini``.
"""

from __future__ import annotations

import configparser
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from sqair_world.data.pedestrians.errors import AnnotationError
from sqair_world.data.pedestrians.video import FrameFolder
from sqair_world.utils import atomic_write

MOT_COLUMNS = ("frame", "id", "left", "top", "width", "height", "conf", "x", "y", "z")


@dataclass(frozen=True, eq=False)
class BoxTable:
    """Boxes of many frames and tracks, one row per box (the in-memory form of a MOTChallenge file).

    Fields are coerced to the dtypes below and checked for matching lengths."""

    frame: np.ndarray
    """int64 ``[N]`` 1-based frame numbers."""
    ids: np.ndarray
    """int64 ``[N]`` track identities (-1 for detections without one)."""
    boxes: np.ndarray
    """float64 ``[N, 4]`` (left, top, width, height) in pixels, 0-based: (0, 0) is the image's top-left corner."""
    conf: np.ndarray | None = None
    """float64 ``[N]`` detection confidence, or MOT16's 'consider' flag in ground truth; 1 by default."""
    xyz: np.ndarray | None = None
    """float64 ``[N, 3]`` world coordinates (MOT15) or (class, visibility, -) (MOT16); -1 by default."""

    def __post_init__(self) -> None:
        frame = np.asarray(self.frame, dtype=np.int64).reshape(-1)
        n = len(frame)
        ids = np.asarray(self.ids, dtype=np.int64).reshape(-1)
        boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4) if n else np.zeros((0, 4))
        conf = np.ones(n) if self.conf is None else np.asarray(self.conf, dtype=np.float64).reshape(-1)
        xyz = np.full((n, 3), -1.0) if self.xyz is None else np.asarray(self.xyz, dtype=np.float64).reshape(-1, 3)
        if not (len(ids) == len(boxes) == len(conf) == len(xyz) == n):
            raise ValueError(
                f"BoxTable columns differ in length: frame {n}, ids {len(ids)}, boxes {len(boxes)}, "
                f"conf {len(conf)}, xyz {len(xyz)}"
            )
        for name, value in (("frame", frame), ("ids", ids), ("boxes", boxes), ("conf", conf), ("xyz", xyz)):
            object.__setattr__(self, name, value)

    def __len__(self) -> int:
        """N, the number of boxes."""
        return len(self.frame)

    def select(self, idx) -> BoxTable:
        """Rows ``idx`` (boolean mask, index array or slice)."""
        return BoxTable(self.frame[idx], self.ids[idx], self.boxes[idx], self.conf[idx], self.xyz[idx])

    def sorted(self) -> BoxTable:
        """Rows ordered by (frame, id), the order MOTChallenge files use."""
        return self.select(np.lexsort((self.ids, self.frame)))

    def scaled(self, factor: float) -> BoxTable:
        """Boxes in an image resized by ``factor`` (e.g. 240 / 1920 for DukeMTMC frames cut to width 240)."""
        return BoxTable(self.frame, self.ids, self.boxes * factor, self.conf, self.xyz)

    def dense(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The boxes of the (distinct) frame numbers ``frames [F]``, padded to the most boxes in one of them (K >= 1).

        Returns boxes float64 ``[F, K, 4]`` (0 where padded), ids int64 ``[F, K]`` (-1 where padded) and
        valid bool ``[F, K]``; boxes keep their id order within a frame."""
        frames = np.asarray(frames, dtype=np.int64).reshape(-1)
        if len(np.unique(frames)) != len(frames):
            raise ValueError("dense() needs distinct frame numbers")
        order = np.argsort(frames, kind="stable")
        wanted = frames[order]
        rows = self.sorted()
        pos = np.minimum(np.searchsorted(wanted, rows.frame), max(len(wanted) - 1, 0))
        hit = (wanted[pos] == rows.frame) if len(wanted) else np.zeros(len(rows), bool)
        rows, pos = rows.select(hit), pos[hit]
        first = np.r_[True, rows.frame[1:] != rows.frame[:-1]] if len(rows) else np.zeros(0, bool)
        rank = np.arange(len(rows)) - np.maximum.accumulate(np.where(first, np.arange(len(rows)), 0))
        K = int(rank.max()) + 1 if len(rows) else 1
        boxes = np.zeros((len(frames), K, 4))
        ids = np.full((len(frames), K), -1, dtype=np.int64)
        valid = np.zeros((len(frames), K), dtype=bool)
        target = order[pos]  # row -> index into the caller's frames
        boxes[target, rank], ids[target, rank], valid[target, rank] = rows.boxes, rows.ids, True
        return boxes, ids, valid

    @staticmethod
    def concat(tables: list[BoxTable]) -> BoxTable:
        """Rows of all ``tables``, in order."""
        if not tables:
            return BoxTable(np.zeros(0), np.zeros(0), np.zeros((0, 4)))
        cols = [np.concatenate([getattr(t, f) for t in tables]) for f in ("frame", "ids", "boxes", "conf", "xyz")]
        return BoxTable(*cols)


def _parse_numbers(path: Path, rows: list[tuple[int, list[str]]]) -> np.ndarray:
    """Tokens of equally long rows -> float64 ``[N, C]``; a token that is not a number names its line."""
    try:
        return np.array([tok for _, toks in rows for tok in toks], dtype=np.float64).reshape(len(rows), -1)
    except ValueError:
        for lineno, toks in rows:  # slow path only to name the first bad line
            for tok in toks:
                try:
                    float(tok)
                except ValueError:
                    raise AnnotationError(f"{path}: line {lineno}: {tok!r} is not a number") from None
        raise


def read_mot(path: str | os.PathLike, min_conf: float | None = None) -> BoxTable:
    """Read a MOTChallenge ``gt.txt`` / ``det.txt`` (6 to 10 columns: the missing ones get conf 1 and x, y, z -1).

    ``min_conf``: keep only rows with ``conf >= min_conf`` (1 drops MOT16's 'do not consider' ground-truth rows).
    Raises ``FileNotFoundError`` or :class:`AnnotationError` naming the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MOTChallenge file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise AnnotationError(f"{path}: not a text file ({err.reason} at byte {err.start})") from None
    rows = [(i + 1, line.replace(",", " ").split()) for i, line in enumerate(text.splitlines()) if line.strip()]
    if not rows:
        return BoxTable(np.zeros(0), np.zeros(0), np.zeros((0, 4)))
    widths = np.array([len(toks) for _, toks in rows])
    bad = np.flatnonzero((widths != widths[0]) | (widths < 6) | (widths > 10))
    if len(bad):
        lineno, toks = rows[bad[0]]
        raise AnnotationError(
            f"{path}: line {lineno}: {len(toks)} columns, expected 6 to 10 "
            f"({', '.join(MOT_COLUMNS)}) and as many as line {rows[0][0]} has ({widths[0]})"
        )
    data = _parse_numbers(path, rows)
    lines = np.array([lineno for lineno, _ in rows])
    problems = (
        (~np.isfinite(data).all(1), "a value is not finite"),
        ((data[:, 0] < 1) | (data[:, 0] != np.round(data[:, 0])), "the frame must be an integer >= 1 (1-based)"),
        (data[:, 1] != np.round(data[:, 1]), "the id must be an integer"),
        ((data[:, 4] < 0) | (data[:, 5] < 0), "width and height must be >= 0"),
    )
    for mask, what in problems:
        if mask.any():
            raise AnnotationError(f"{path}: line {lines[np.argmax(mask)]}: {what}")
    full = np.full((len(data), 10), -1.0)
    full[:, 6] = 1.0
    full[:, : data.shape[1]] = data
    table = BoxTable(full[:, 0], full[:, 1], full[:, 2:6] - [1.0, 1.0, 0.0, 0.0], full[:, 6], full[:, 7:10])
    return table if min_conf is None else table.select(table.conf >= min_conf)


def write_mot(path: str | os.PathLike, table: BoxTable, decimals: int = 2) -> Path:
    """Write ``table`` as a 10-column MOTChallenge file (sorted by frame and id, 1-based left/top), atomically.

    The file loads with ``motmetrics.io.loadtxt(path, fmt="mot15-2D")`` into the same 0-based boxes."""
    rows = table.sorted()
    data = np.column_stack([rows.frame, rows.ids, rows.boxes + [1.0, 1.0, 0.0, 0.0], rows.conf, rows.xyz])
    fmt = ["%d", "%d"] + [f"%.{decimals}f"] * 8

    def write(f) -> None:
        buf = io.StringIO()
        np.savetxt(buf, data, fmt=fmt, delimiter=",")
        f.write(buf.getvalue().encode())

    return atomic_write(path, write)


class MOTSequence(NamedTuple):
    """A MOTChallenge sequence folder: frames, ground truth and detections where present, ``seqinfo.ini``."""

    frames: FrameFolder  #: ``img1/`` (or ``imDir`` of seqinfo.ini)
    gt: BoxTable | None  #: ``gt/gt.txt`` with every row (filter with ``conf``), or None
    det: BoxTable | None  #: ``det/det.txt``, or None
    info: dict[str, str]  #: the ``[Sequence]`` section of ``seqinfo.ini`` (name, frameRate, seqLength, ...), or {}


def read_mot_sequence(folder: str | os.PathLike) -> MOTSequence:
    """Read a MOTChallenge sequence folder (``img1/``, ``gt/gt.txt``, ``det/det.txt``, ``seqinfo.ini``)."""
    folder = Path(folder)
    info: dict[str, str] = {}
    ini = folder / "seqinfo.ini"
    if ini.is_file():
        parser = configparser.ConfigParser()
        parser.optionxform = str  # keep MOTChallenge's camelCase keys
        try:
            parser.read(ini, encoding="utf-8")
        except configparser.Error as err:
            raise AnnotationError(f"{ini}: not a valid ini file ({err})") from None
        info = dict(parser["Sequence"]) if parser.has_section("Sequence") else {}
    images = folder / info.get("imDir", "img1")
    if not images.is_dir():
        raise FileNotFoundError(f"{folder} is not a MOTChallenge sequence: it has no frame folder {images.name}/")
    gt, det = folder / "gt" / "gt.txt", folder / "det" / "det.txt"
    return MOTSequence(
        FrameFolder(images),
        read_mot(gt) if gt.is_file() else None,
        read_mot(det) if det.is_file() else None,
        info,
    )


__all__ = ["MOT_COLUMNS", "BoxTable", "MOTSequence", "read_mot", "read_mot_sequence", "write_mot"]
