"""The models: SQAIR (discovery, propagation, learned priors, rendering), its building blocks, the VRNN baseline,
the IWAE/VIMCO objective and the registry of the paper's five models.

Names are resolved on first use, so that ``sqair_world.model.config`` (plain dataclasses) imports without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "SQAIRConfig": "config",
    "SQAIR": "sqair",
    "VRNN": "vrnn",
    "VRNNConfig": "vrnn",
    "MODEL_NAMES": "registry",
    "build_model": "registry",
    "build_model_from_config": "registry",
    "model_config": "registry",
    "SequenceModel": "protocol",
    "Imagined": "types",
    "SequenceOutput": "types",
    "Slots": "types",
    "StepOutput": "types",
    "TrackState": "types",
}


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(importlib.import_module(f"sqair_world.model.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'sqair_world.model' has no attribute {name!r}")


__all__ = list(_NAMES)
