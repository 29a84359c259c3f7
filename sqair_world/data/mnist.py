"""MNIST digits: the embedded 5,000-digit default and full MNIST from IDX files.

Splits follow the authors (reference §1): training sequences use MNIST-train images 5,000 onward,
evaluation sequences the first 5,000 (TF's "validation" split); the official test set is an option.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Literal

import numpy as np

EMBEDDED = Path(__file__).with_name("mnist_5k.npz")
_IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
AUTHORS_EVAL_SIZE = 5000


class MNISTFormatError(ValueError):
    """An IDX file is truncated or malformed."""


def load_embedded_mnist(split: Literal["train", "eval", "all"] = "train") -> tuple[np.ndarray, np.ndarray]:
    """The MNIST digits shipped with the package (see MNIST_LICENSE.md): uint8 ``[M, 28, 28]``, int64 ``[M]``.

    ``train`` (4,000) and ``eval`` (1,000) are disjoint, stratified by class.
    """
    if split not in ("train", "eval", "all"):
        raise ValueError(f"split must be 'train', 'eval' or 'all', got {split!r}")
    with np.load(EMBEDDED) as d:
        images, labels = d["images"], d["labels"].astype(np.int64)
        if split == "all":
            return images, labels
        idx = d[f"{split}_idx"].astype(np.int64)
    return images[idx], labels[idx]


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (gzipped or raw). Errors name the file and what is wrong with it."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except FileNotFoundError:
        raise
    except (OSError, EOFError) as err:
        raise MNISTFormatError(
            f"{path}: cannot read ({err}); the file is truncated or not gzip; download it again"
        ) from err
    if len(raw) < 4:
        raise MNISTFormatError(f"{path}: {len(raw)} bytes is too short for an IDX header; download it again")
    zero, dtype_code, ndim = int.from_bytes(raw[:2], "big"), raw[2], raw[3]
    if zero != 0 or dtype_code not in _IDX_DTYPES or ndim == 0:
        raise MNISTFormatError(
            f"{path}: bad IDX magic number {raw[:4].hex()} (expected 0000 08 0n); is this an MNIST IDX file?"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise MNISTFormatError(f"{path}: header truncated ({len(raw)} bytes, need {header})")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[dtype_code])
    need = header + int(np.prod(dims)) * dtype.itemsize
    if len(raw) != need:
        raise MNISTFormatError(
            f"{path}: {len(raw)} bytes but the header {dims} needs {need}; "
            "the file is truncated or corrupt, download it again"
        )
    return (
        np.frombuffer(raw, dtype=dtype, count=int(np.prod(dims)), offset=header)
        .reshape(dims)
        .astype(dtype.newbyteorder("="))
    )


def _find(directory: Path, stem: str) -> Path:
    for base in (directory, directory / "MNIST" / "raw", directory / "raw"):  # also torchvision's layout
        for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
            if (base / name).is_file():
                return base / name
    raise FileNotFoundError(
        f"MNIST file {stem}[.gz] not found in {directory} (nor in its MNIST/raw or raw "
        "subfolders); download the four IDX files from the MNIST site or with torchvision"
    )


def load_mnist_idx(
    directory: str | Path, split: Literal["train", "eval", "test"] = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """Full MNIST from IDX files in ``directory``: ``train`` = train[5000:], ``eval`` = train[:5000] (the
    authors' split), ``test`` = the official t10k set. Returns uint8 ``[M, 28, 28]``, int64 ``[M]``."""
    if split not in ("train", "eval", "test"):
        raise ValueError(f"split must be 'train', 'eval' or 'test', got {split!r}")
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"MNIST directory {directory} does not exist")
    img_stem, lab_stem = _FILES["test" if split == "test" else "train"]
    img_path, lab_path = _find(directory, img_stem), _find(directory, lab_stem)
    images, labels = read_idx(img_path), read_idx(lab_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise MNISTFormatError(f"{img_path}: expected uint8 images [M, 28, 28], got {images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise MNISTFormatError(f"{lab_path}: expected {len(images)} labels, got shape {labels.shape}")
    labels = labels.astype(np.int64)
    if labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
        raise MNISTFormatError(f"{lab_path}: labels must be 0..9")
    if split == "train":
        return images[AUTHORS_EVAL_SIZE:], labels[AUTHORS_EVAL_SIZE:]
    if split == "eval":
        return images[:AUTHORS_EVAL_SIZE], labels[:AUTHORS_EVAL_SIZE]
    return images, labels
