"""OpenCV background subtraction: the SQAIR authors' DukeMTMC recipe, and MOG2 / KNN.

The authors' recipe (``method="mog"``), per frame: invert (dark clothes become bright), median 5, the contrib
``cv2.bgsegm`` MOG subtractor (history 500, 10 mixtures, background ratio 0.7), erode with a 2x2 ellipse, dilate it
twice, ``foreground = frame * mask`` (float32 in their code; uint8 here gives the same values), median 3, rescale
so the frame's maximum is 255, resize to width 240. So the training images are inverted-colour people on a black
background, not masks.

``cv2.bgsegm`` exists only in ``opencv-contrib-python-headless`` (a superset of ``opencv-python-headless``; both
install the ``cv2`` module, so only one may be installed). ``"mog2"`` and ``"knn"`` come with either build; their
shadow pixels (mask value 127) are dropped, only 255 is foreground. ``"auto"`` picks ``"mog"`` where ``cv2.bgsegm``
exists, else ``"mog2"``.

Every frame must go through :meth:`BackgroundSubtractor.apply`, in order: the model learns the background from the
whole stream; subsample the results afterwards.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

CONTRIB_HINT = (
    "pip uninstall -y opencv-python-headless && pip install opencv-contrib-python-headless "
    "(both provide cv2: keep only the contrib build, a superset)"
)


def has_bgsegm() -> bool:
    """True where ``cv2.bgsegm`` (opencv-contrib) is installed, so the authors' MOG recipe can run."""
    return hasattr(cv2, "bgsegm")


@dataclass(frozen=True)
class BackgroundConfig:
    """Background subtraction and clean-up; defaults are the authors' DukeMTMC recipe."""

    method: Literal["auto", "mog", "mog2", "knn"] = "auto"
    """'mog': the authors' (needs opencv-contrib's cv2.bgsegm); 'mog2' / 'knn': any OpenCV build; 'auto': 'mog'
    where cv2.bgsegm exists, else 'mog2' (see :meth:`resolved`)."""
    history: int = 500
    """Frames of history of the background model (all methods)."""
    nmixtures: int = 10
    """'mog': Gaussian mixtures per pixel."""
    background_ratio: float = 0.7
    """'mog': fraction of the mixture weight that is background."""
    var_threshold: float = 16.0
    """'mog2': squared Mahalanobis distance above which a pixel is foreground."""
    dist2_threshold: float = 400.0
    """'knn': squared distance above which a pixel is foreground."""
    detect_shadows: bool = True
    """'mog2' / 'knn': mark shadows (127) so that they can be dropped, instead of calling them foreground."""
    invert: bool = True
    """Output ``255 - frame`` where the mask is set (the authors': dark clothes become bright on black)."""
    input_width: int | None = None
    """Resize frames to this width before subtraction (the authors converted Duke's 1920x1080 to 480x270 first);
    None keeps the native size."""
    pre_median: int = 5
    """Median filter size on the subtractor's input (odd; 0 or 1 = none)."""
    kernel_size: int = 2
    """Side of the elliptic structuring element of the mask clean-up."""
    erode_iterations: int = 1
    """Erosions of the mask (removes speckle)."""
    dilate_iterations: int = 2
    """Dilations of the mask after eroding (closes the silhouettes)."""
    post_median: int = 3
    """Median filter size on the masked foreground (odd; 0 or 1 = none)."""
    output_width: int = 240
    """Width of the output frames (height keeps the aspect ratio), pixels."""

    def __post_init__(self) -> None:
        problems = []
        if self.method not in ("auto", "mog", "mog2", "knn"):
            problems.append(f"method must be 'auto', 'mog', 'mog2' or 'knn', got {self.method!r}")
        if self.history < 1:
            problems.append(f"history must be >= 1, got {self.history}")
        if self.pre_median not in (0, 1) and (self.pre_median < 3 or self.pre_median % 2 == 0):
            problems.append(f"pre_median must be 0, 1 or an odd size >= 3, got {self.pre_median}")
        if self.post_median not in (0, 1) and (self.post_median < 3 or self.post_median % 2 == 0):
            problems.append(f"post_median must be 0, 1 or an odd size >= 3, got {self.post_median}")
        if self.kernel_size < 1 or self.erode_iterations < 0 or self.dilate_iterations < 0:
            problems.append("kernel_size must be >= 1 and the iteration counts >= 0")
        if self.output_width < 8 or (self.input_width is not None and self.input_width < 8):
            problems.append("output_width and input_width must be >= 8 pixels")
        if problems:
            raise ValueError("Invalid BackgroundConfig:\n  " + "\n  ".join(problems))

    def resolved(self) -> BackgroundConfig:
        """This config with ``method='auto'`` replaced by the method that will run here."""
        if self.method != "auto":
            return self
        return dataclasses.replace(self, method="mog" if has_bgsegm() else "mog2")


def output_size(height: int, width: int, output_width: int) -> tuple[int, int]:
    """(H, W) of a ``height x width`` frame resized to ``output_width`` (768x576 -> 180x240, 1920x1080 -> 135x240)."""
    return max(1, round(height * output_width / width)), output_width


def _make_model(cfg: BackgroundConfig):
    if cfg.method == "mog":
        if not has_bgsegm():
            raise ImportError(
                f"background method 'mog' (the authors' recipe) needs cv2.bgsegm, which only "
                f"opencv-contrib-python-headless provides; this cv2 {cv2.__version__} lacks it. {CONTRIB_HINT}; "
                "or use method='mog2', which every OpenCV build has"
            )
        return cv2.bgsegm.createBackgroundSubtractorMOG(
            history=cfg.history, nmixtures=cfg.nmixtures, backgroundRatio=cfg.background_ratio
        )
    if cfg.method == "mog2":
        return cv2.createBackgroundSubtractorMOG2(cfg.history, cfg.var_threshold, cfg.detect_shadows)
    return cv2.createBackgroundSubtractorKNN(cfg.history, cfg.dist2_threshold, cfg.detect_shadows)


class BackgroundSubtractor:
    """Frames in, foreground images and masks out, one frame at a time in time order.

    ``apply(frame)`` with RGB uint8 ``[H, W, 3]`` returns the foreground image uint8 ``[h, w, 3]`` (the inverted
    frame where the mask is set, rescaled to a maximum of 255) and the mask bool ``[h, w]``, at the output size."""

    def __init__(self, cfg: BackgroundConfig = BackgroundConfig()) -> None:
        self.cfg = cfg.resolved()
        self.model = _make_model(self.cfg)
        k = self.cfg.kernel_size
        self.kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))

    def _input(self, frame: np.ndarray) -> np.ndarray:
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frames must be RGB uint8 [H, W, 3], got {frame.dtype} {frame.shape}")
        w = self.cfg.input_width
        if w is not None and frame.shape[1] != w:
            frame = cv2.resize(frame, output_size(*frame.shape[:2], w)[::-1], interpolation=cv2.INTER_AREA)
        return frame

    def apply(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame -> (foreground uint8 ``[h, w, 3]``, mask bool ``[h, w]``); updates the background model."""
        frame = self._input(frame)
        m = self.cfg.pre_median
        # the model sees the frame uninverted: inversion commutes with the median and MOG's per-pixel Gaussians,
        # and MOG2/KNN's shadow test needs shadows darker than the background, not brighter
        raw = self.model.apply(cv2.medianBlur(frame, m) if m > 1 else frame)
        mask = cv2.compare(raw, 255, cv2.CMP_EQ)  # MOG2/KNN shadows are 127: background
        if self.cfg.erode_iterations:
            mask = cv2.erode(mask, self.kernel, iterations=self.cfg.erode_iterations)
        if self.cfg.dilate_iterations:
            mask = cv2.dilate(mask, self.kernel, iterations=self.cfg.dilate_iterations)
        return compose_foreground(cv2.bitwise_not(frame) if self.cfg.invert else frame, mask > 0, self.cfg)


def compose_foreground(image: np.ndarray, mask: np.ndarray, cfg: BackgroundConfig) -> tuple[np.ndarray, np.ndarray]:
    """The recipe's output from an (inverted) frame uint8 ``[H, W, 3]`` and a foreground mask bool ``[H, W]``:
    ``image * mask``, median ``post_median``, rescaled to a maximum of 255, area-resized to ``output_width``.

    Returns the foreground uint8 ``[h, w, 3]`` and the resized mask bool ``[h, w]`` (pixels at least half covered).
    The masked image holds whole grey levels, so a uint8 median equals the authors' float32 one; the area resize
    replaces their bilinear one, which aliases at these 3-8x reductions."""
    m8 = np.asarray(mask, bool).view(np.uint8) * np.uint8(255)
    fg = cv2.bitwise_and(image, image, mask=m8)
    if cfg.post_median > 1:
        fg = cv2.medianBlur(fg, cfg.post_median)
    peak = int(fg.max())
    size = output_size(*image.shape[:2], cfg.output_width)
    if size != image.shape[:2]:
        fg = cv2.resize(fg, size[::-1], interpolation=cv2.INTER_AREA)
        m8 = cv2.resize(m8, size[::-1], interpolation=cv2.INTER_AREA)
    if 0 < peak < 255:
        fg = cv2.convertScaleAbs(fg, alpha=255.0 / peak)
    return fg, m8 >= 128


def masked_foreground(frame: np.ndarray, mask: np.ndarray, cfg: BackgroundConfig = BackgroundConfig()):
    """The recipe's output from a known foreground mask (e.g. the synthetic walkers' own): RGB uint8 ``[H, W, 3]``
    and bool ``[H, W]`` -> (foreground uint8 ``[h, w, 3]``, mask bool ``[h, w]``), without a background model."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or np.shape(mask) != frame.shape[:2]:
        raise ValueError(f"need an RGB uint8 frame [H, W, 3] and a mask [H, W], got {frame.shape} and {np.shape(mask)}")
    w = cfg.input_width
    if w is not None and frame.shape[1] != w:
        size = output_size(*frame.shape[:2], w)[::-1]
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        mask = cv2.resize(np.asarray(mask, np.float32), size, interpolation=cv2.INTER_AREA) >= 0.5
    image = cv2.bitwise_not(frame) if cfg.invert else frame
    return compose_foreground(image, np.asarray(mask, bool), cfg)


__all__ = [
    "CONTRIB_HINT",
    "BackgroundConfig",
    "BackgroundSubtractor",
    "compose_foreground",
    "has_bgsegm",
    "masked_foreground",
    "output_size",
]
