"""Torch views of a :class:`SequenceSet`: a ``Dataset`` of sequences and a time-major collate.

Batches are ``x: [T, B, 1, H, W]`` float32 in [0, 1] plus a dict of ground-truth tensors
(``boxes``/``visible_boxes`` ``[T, B, M, 4]``, ``visible_frac`` ``[T, B, M]``, ``labels``/``present``/
``track_ids`` ``[B, M]``, ``num_digits`` ``[B]``, ``num_visible`` ``[T, B]``, ``digit_sum`` ``[B]``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from sqair_world.data.moving_mnist import SequenceSet


def to_tensor(frames: np.ndarray) -> Tensor:
    """uint8 ``[T, S, H, W]`` -> float32 ``[T, S, 1, H, W]`` in [0, 1]."""
    if frames.dtype != np.uint8:
        raise TypeError(f"frames must be uint8, got {frames.dtype}")
    return torch.from_numpy(np.ascontiguousarray(frames)).unsqueeze(2).float().div_(255.0)


class MovingMNISTDataset(Dataset):
    """Item ``i``: a dict with ``frames`` float32 ``[T, 1, H, W]`` and the sequence's ground truth."""

    def __init__(self, data: SequenceSet) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        d = self.data
        return {
            "frames": torch.from_numpy(d.frames[:, i]).unsqueeze(1).float() / 255.0,
            "boxes": torch.from_numpy(d.boxes[:, i]),
            "visible_boxes": torch.from_numpy(d.visible_boxes[:, i]),
            "visible_frac": torch.from_numpy(d.visible_frac[:, i]),
            "labels": torch.from_numpy(d.labels[i]),
            "present": torch.from_numpy(d.present[i]),
            "track_ids": torch.from_numpy(d.track_ids[i]),
        }


_TIME_MAJOR = ("frames", "boxes", "visible_boxes", "visible_frac")


def time_major_collate(items: list[dict[str, Tensor]]) -> tuple[Tensor, dict[str, Tensor]]:
    """Stack items along B after T: ``x [T, B, 1, H, W]`` and the ground truth (see module docstring)."""
    gt = {k: torch.stack([it[k] for it in items], 1 if k in _TIME_MAJOR else 0) for k in items[0]}
    x = gt.pop("frames")
    gt["num_digits"] = gt["present"].sum(-1)
    gt["num_visible"] = ((gt["visible_frac"] > 0) & gt["present"].unsqueeze(0)).sum(-1)
    gt["digit_sum"] = torch.where(gt["present"], gt["labels"], 0).sum(-1)
    return x, gt


def make_loader(
    data: SequenceSet,
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    drop_last: bool = True,
    num_workers: int = 0,
) -> DataLoader:
    """A ``DataLoader`` yielding ``(x [T, B, 1, H, W], gt)``; shuffling is reproducible from ``seed``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    g = torch.Generator().manual_seed(seed)
    return DataLoader(
        MovingMNISTDataset(data),
        batch_size=batch_size,
        shuffle=shuffle,
        generator=g,
        drop_last=drop_last,
        num_workers=num_workers,
        collate_fn=time_major_collate,
    )
