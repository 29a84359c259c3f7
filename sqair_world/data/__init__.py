"""Data: MNIST digits (embedded and IDX) and the moving multi-MNIST sequences with ground-truth tracks.

The numpy parts work without torch pipelines; ``MovingMNISTDataset``/``make_loader`` give time-major
torch batches ``[T, B, 1, H, W]``.
"""
from sqair_world.data.mnist import MNISTFormatError, load_embedded_mnist, load_mnist_idx, read_idx
from sqair_world.data.moving_mnist import (MovingMNISTConfig, SequenceSet, crop_digits, default_cache_dir,
                                           load_moving_mnist, make_moving_mnist)
from sqair_world.data.torch_data import MovingMNISTDataset, make_loader, time_major_collate, to_tensor

__all__ = ["MNISTFormatError", "load_embedded_mnist", "load_mnist_idx", "read_idx", "MovingMNISTConfig", "SequenceSet",
           "crop_digits", "default_cache_dir", "load_moving_mnist", "make_moving_mnist", "MovingMNISTDataset",
           "make_loader", "time_major_collate", "to_tensor"]
