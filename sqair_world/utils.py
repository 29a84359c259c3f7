"""The few helpers every layer shares, each written once: atomic file writes, device selection, frames to model
input and the box conventions between the observation (centre, size as fractions) and pixels (corner, size).

Imports neither torch nor gymnasium at module level, so the numpy data layer can use it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any], mode: int = 0o644) -> Path:
    """Write ``path`` through ``write(file)`` on a temporary file in the same folder, fsync, then ``os.replace``:
    a crash mid-write leaves the previous file intact and never a half-written one. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # mkstemp makes the file private; checkpoints and caches are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def select_device(name: str | torch.device = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU; an explicit CUDA request without CUDA is an error."""
    import torch

    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"unknown device {str(name)!r}; use auto, cpu, cuda or cuda:N") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(name)!r} requested but CUDA is not available; use device 'cpu' or 'auto'")
    return dev


def frames_to_input(frames: Any, device: torch.device | str | None = None, channels_last: bool = False) -> torch.Tensor:
    """Frames (uint8 in [0, 255], or floats already in [0, 1]) -> float32 model input in [0, 1] on ``device``.

    ``channels_last``: the frames are ``[..., H, W, C]`` (Gymnasium's layout) and come back as ``[..., C, H, W]``."""
    import torch

    x = torch.as_tensor(np.asarray(frames) if not isinstance(frames, torch.Tensor) else frames, device=device)
    if channels_last:
        x = x.movedim(-1, -3)
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


def box_to_pixels(box: Any, height: int, width: int) -> Any:
    """Boxes ``[..., 4]`` = (x_centre, y_centre, width, height) as fractions of the frame (the observation's
    ``where``) -> (x_min, y_min, width, height) in pixels (MOTChallenge's and OpenCV's convention). numpy or torch."""
    w, h = box[..., 2] * width, box[..., 3] * height
    cols = [box[..., 0] * width - w / 2, box[..., 1] * height - h / 2, w, h]
    return np.stack(cols, -1) if isinstance(box, np.ndarray) else _torch_stack(cols)


def _torch_stack(cols: list) -> Any:
    import torch

    return torch.stack(cols, -1)


__all__ = ["atomic_write", "box_to_pixels", "frames_to_input", "select_device"]
