"""One registry of the paper's five models (Table 1), selected by name.

Variants are configurations of the same modules: CONV-SQAIR swaps the encoders, MLP-AIR turns
propagation off, and the VRNNs are a separate sequential VAE with the same objective and outputs.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from torch import nn

from sqair_world.model.config import SQAIRConfig, config_from_dict, replace_checked
from sqair_world.model.protocol import SequenceModel, check_conforms
from sqair_world.model.sqair import SQAIR
from sqair_world.model.vrnn import VRNN, VRNNConfig


def _sqair(**base: Any) -> tuple[type, Callable[..., nn.Module], dict[str, Any]]:
    return SQAIRConfig, SQAIR, base


def _vrnn(**base: Any) -> tuple[type, Callable[..., nn.Module], dict[str, Any]]:
    return VRNNConfig, VRNN, base


_MODELS: dict[str, Callable[[], tuple[type, Callable[..., nn.Module], dict[str, Any]]]] = {
    "mlp-sqair": lambda: _sqair(),
    "conv-sqair": lambda: _sqair(encoder="conv"),
    "mlp-air": lambda: _sqair(propagate=False),
    "mlp-vrnn": lambda: _vrnn(encoder="mlp"),
    "conv-vrnn": lambda: _vrnn(encoder="conv"),
}
MODEL_NAMES: tuple[str, ...] = tuple(_MODELS)


def _lookup(name: str):
    if name not in _MODELS:
        close = difflib.get_close_matches(name, MODEL_NAMES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown model {name!r}; choose one of {list(MODEL_NAMES)}.{hint}")
    return _MODELS[name]()


def model_config(name: str, **overrides: Any) -> Any:
    """The config of model ``name`` with ``overrides`` applied (validated)."""
    cfg_cls, _, base = _lookup(name)
    return replace_checked(cfg_cls(**base), overrides)


def build_model(name: str, **overrides: Any) -> nn.Module:
    """Build model ``name`` (one of :data:`MODEL_NAMES`) with config ``overrides``."""
    _, model_cls, _ = _lookup(name)
    model = model_cls(model_config(name, **overrides))
    check_conforms(model, SequenceModel)
    model.model_name = name
    return model


def build_model_from_config(name: str, config: dict[str, Any]) -> nn.Module:
    """Rebuild a model from a checkpoint's ``config`` dict."""
    cfg_cls, model_cls, _ = _lookup(name)
    model = model_cls(config_from_dict(cfg_cls, config))
    check_conforms(model, SequenceModel)
    model.model_name = name
    return model
