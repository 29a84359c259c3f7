"""Stable-Baselines3 agents on object slots (SQAIR's or the RAM oracle's) and on pixels.

- :mod:`~sqair_world.agents.extractors`: masked, permutation-invariant slot extractors for ``MultiInputPolicy``;
- :mod:`~sqair_world.agents.motion`: the per-slot displacement feature, matched by track id;
- :mod:`~sqair_world.agents.vec_env`: SQAIR slots of an SB3 ``VecEnv`` in one batched model call;
- :mod:`~sqair_world.agents.train` (``sqair-train``) and :mod:`~sqair_world.agents.plot` (``sqair-agents-plot``):
  the training CLI and its learning curves; :mod:`~sqair_world.agents.random_policy`: the random policy's score
  under the same evaluation; :mod:`~sqair_world.agents.catch`: a tiny slot env for tests.
"""

from sqair_world.agents.extractors import AttentionSlotExtractor, SlotExtractor
from sqair_world.agents.motion import SlotMotion, VecSlotMotion

__all__ = ["AttentionSlotExtractor", "SlotExtractor", "SlotMotion", "VecSlotMotion"]
