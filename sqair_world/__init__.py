"""sqair-world: SQAIR (Kosiorek et al., NeurIPS 2018) in PyTorch, and a Gymnasium object-slot world model.

``import sqair_world`` registers the ``SQAIR-Wrapped/*`` environments with Gymnasium. The core
(data, model, training, evaluation) never imports gymnasium; only ``envs`` and ``agents`` do.
"""

from __future__ import annotations

from typing import Any

from sqair_world.model.config import SQAIRConfig

__version__ = "0.1.0"

_LAZY = {
    "SQAIR": "sqair_world.model.sqair",
    "build_model": "sqair_world.model.registry",
    "MODEL_NAMES": "sqair_world.model.registry",
    "load_model": "sqair_world.training.checkpoints",
    "save_model": "sqair_world.training.checkpoints",
}


def __getattr__(name: str) -> Any:  # lazy: `import sqair_world` stays cheap for env registration
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sqair_world' has no attribute {name!r}")


def _register_envs() -> None:
    try:
        from sqair_world.envs import register_envs
    except ModuleNotFoundError as err:  # gymnasium missing: the core still works
        if err.name not in ("gymnasium", "sqair_world.envs"):
            raise
        return
    register_envs()


_register_envs()

__all__ = ["SQAIRConfig", "__version__", *_LAZY]
