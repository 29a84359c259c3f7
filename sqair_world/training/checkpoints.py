"""Checkpoints: atomic writes and ``torch.load(weights_only=True)``-compatible contents.

A model checkpoint is a plain dict of tensors, strings, numbers, lists and dicts::

    {"format": "sqair-world/1", "model_name": "mlp-sqair", "config": {...}, "state_dict": {...}, "extra": {...}}

so it loads without unpickling arbitrary objects. Training checkpoints (optimiser, RNG states, step)
add keys to the same dict through ``extra``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sqair_world.model.registry import build_model_from_config
from sqair_world.utils import atomic_write

FORMAT = "sqair-world/1"
MAKE_ONE = (
    "make one with `python -m sqair_world.pretrain` (see its --help) or `sqair_world.save_model(path, model)`; "
    "the shipped checkpoints come back with a reinstall of sqair-world"
)


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or does not fit the model asked for."""


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through :func:`sqair_world.utils.atomic_write`: a crash mid-write leaves the previous file
    intact."""
    atomic_write(path, lambda f: torch.save(obj, f))


def safe_torch_load(path: str | os.PathLike, map_location: Any = None) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` with errors that name the file, the problem and how to make a checkpoint.

    The errors never pass on torch's advice to load the file with arbitrary unpickling: a file that holds more
    than tensors and plain containers is not a sqair-world checkpoint, and unpickling it could run any code.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist; {MAKE_ONE}")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated zip, random bytes, pickled objects that weights_only refuses, ...
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt or not a sqair-world checkpoint: torch could not read it as "
            f"tensors and plain containers ({type(err).__name__}); {MAKE_ONE}"
        ) from None  # torch's message advises unpickling the file anyway
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(
            f"{str(path)!r} is not a sqair-world checkpoint (expected format {FORMAT!r}, got {found!r}); {MAKE_ONE}"
        )
    return data


def model_payload(model: nn.Module, extra: dict[str, Any] | None = None, half: bool = False) -> dict[str, Any]:
    """The dict stored for a model built by :func:`sqair_world.model.registry.build_model`; ``half`` stores float
    weights as float16 (half the size, for shipped checkpoints; they load back into float32 parameters)."""
    name = getattr(model, "model_name", None)
    if name is None:
        raise ValueError(
            "save_model needs a model built by sqair_world.model.registry.build_model (it records model_name)"
        )
    return {
        "format": FORMAT,
        "model_name": name,
        "config": model.cfg.to_dict(),
        "state_dict": {
            k: (v.half() if half and v.is_floating_point() else v).detach().cpu() for k, v in model.state_dict().items()
        },
        "extra": dict(extra or {}),
    }


def save_model(
    path: str | os.PathLike, model: nn.Module, extra: dict[str, Any] | None = None, half: bool = False
) -> None:
    """Atomically write ``model`` (name, config, weights) and ``extra`` to ``path`` (float16 weights if ``half``)."""
    atomic_torch_save(model_payload(model, extra, half), path)


def model_from_payload(data: dict[str, Any], path: str = "<memory>", expected_config: Any = None) -> nn.Module:
    """Rebuild a model from a checkpoint dict; mismatches raise :class:`CheckpointError` naming the fields."""
    try:
        model = build_model_from_config(data["model_name"], data["config"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path!r} has an unusable model description: {err}") from err
    if expected_config is not None and expected_config != model.cfg:
        diff = {
            k: (v, getattr(model.cfg, k))
            for k, v in expected_config.to_dict().items()
            if getattr(model.cfg, k, None) != v
            and not (isinstance(v, tuple) and list(v) == list(getattr(model.cfg, k)))
        }
        raise CheckpointError(
            f"checkpoint {path!r} was trained with another configuration; differing fields (expected, found): {diff}"
        )
    missing, unexpected = [], []
    try:
        result = model.load_state_dict(data["state_dict"], strict=False)
        missing, unexpected = result.missing_keys, result.unexpected_keys
    except RuntimeError as err:  # shape mismatch
        raise CheckpointError(f"checkpoint {path!r} does not match its own config ({err})") from err
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {path!r} does not match model {data['model_name']!r}: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return model


def load_model(path: str | os.PathLike, map_location: Any = None, expected_config: Any = None) -> nn.Module:
    """Load a model saved by :func:`save_model`. The checkpoint's ``extra`` dict is on ``model.checkpoint_extra``,
    its path on ``model.checkpoint_path`` (what the env wrappers' specs record)."""
    data = safe_torch_load(path, map_location="cpu")
    model = model_from_payload(data, str(path), expected_config)
    model.checkpoint_extra = data.get("extra", {})
    model.checkpoint_path = str(path)
    if map_location is not None:
        model.to(map_location)
    return model
