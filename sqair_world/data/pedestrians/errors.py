"""The errors of the pedestrian data layer: both are ``ValueError`` s whose message names the file and the problem."""

from __future__ import annotations


class AnnotationError(ValueError):
    """A malformed annotation file (MOTChallenge text, DukeMTMC ``.mat``): the message names the file, and the line
    (text) or row (``.mat``) where it can."""


class VideoError(ValueError):
    """A video or frame folder that cannot be read as announced: unopenable, truncated, missing or unreadable frames,
    frames of changing size. The message names the file."""


__all__ = ["AnnotationError", "VideoError"]
