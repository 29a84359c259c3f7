"""Checkpoints: atomic writes and ``torch.load(weights_only=True)``-compatible contents.

A model checkpoint is a plain dict of tensors, strings, numbers, lists and dicts::

    {"format": "sqair-world/1", "model_name": "mlp-sqair", "config": {...}, "state_dict": {...}, "extra": {...}}

so it loads without unpickling arbitrary objects. Training checkpoints (optimiser, RNG states, step)
add keys to the same dict through ``extra``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

FORMAT = "sqair-world/1"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or does not fit the model asked for."""


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same directory, fsync, then ``os.replace``: a crash
    mid-write leaves the previous file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; checkpoints are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def safe_torch_load(path: str | os.PathLike, map_location: Any = None) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` with errors that name the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not exist; train one with `python -m sqair_world.pretrain` "
            "or pass the path of an existing .pt file"
        )
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated zip, random bytes, pickled objects that weights_only refuses, ...
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt or not a sqair-world checkpoint "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
            "re-download or re-train it"
        ) from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(
            f"{str(path)!r} is not a sqair-world checkpoint (expected format {FORMAT!r}, "
            f"got {data.get('format') if isinstance(data, dict) else type(data).__name__!r})"
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
    from sqair_world.model.registry import build_model_from_config

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
    """Load a model saved by :func:`save_model`. The checkpoint's ``extra`` dict is on ``model.checkpoint_extra``."""
    data = safe_torch_load(path, map_location="cpu")
    model = model_from_payload(data, str(path), expected_config)
    model.checkpoint_extra = data.get("extra", {})
    if map_location is not None:
        model.to(map_location)
    return model
