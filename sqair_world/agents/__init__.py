"""Stable-Baselines3 agents on SQAIR object slots."""

from sqair_world.agents.extractors import SlotExtractor

__all__ = ["SlotExtractor"]
