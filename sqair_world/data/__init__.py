"""Data: MNIST digits (embedded and IDX) and the moving multi-MNIST sequences with ground-truth tracks.

Imports neither torch nor gymnasium; ``sqair_world.utils.frames_to_input`` turns the uint8 frames into model input.
"""

from __future__ import annotations

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
]
