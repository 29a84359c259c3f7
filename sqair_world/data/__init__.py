"""Data: MNIST digits (embedded and IDX) and the moving multi-MNIST sequences with ground-truth tracks.

The numpy parts import neither torch nor gymnasium; the torch views (``MovingMNISTDataset``,
``make_loader``, ``time_major_collate``, ``to_tensor``, time-major ``[T, B, 1, H, W]`` batches) are
imported lazily on first use.
"""

from __future__ import annotations

from typing import Any

from sqair_world.data.mnist import MNISTFormatError, load_embedded_mnist, load_mnist_idx, read_idx
from sqair_world.data.moving_mnist import (
    MovingMNISTConfig,
    SequenceSet,
    crop_digits,
    default_cache_dir,
    load_moving_mnist,
    make_moving_mnist,
    noisy_acceleration_step,
)

_TORCH = ("MovingMNISTDataset", "make_loader", "time_major_collate", "to_tensor")


def __getattr__(name: str) -> Any:  # torch only when a torch view is asked for
    if name in _TORCH:
        from sqair_world.data import torch_data

        return getattr(torch_data, name)
    raise AttributeError(f"module 'sqair_world.data' has no attribute {name!r}")


__all__ = [
    "MNISTFormatError",
    "load_embedded_mnist",
    "load_mnist_idx",
    "read_idx",
    "MovingMNISTConfig",
    "SequenceSet",
    "crop_digits",
    "default_cache_dir",
    "load_moving_mnist",
    "make_moving_mnist",
    "noisy_acceleration_step",
    *_TORCH,
]
