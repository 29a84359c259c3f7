"""A synthetic static camera with walking people and their ground truth: an offline stand-in for CCTV footage.

A fixed textured scene (a wall above the horizon, a pavement below, a lamp post and a sign) seen with camera noise
and a slow lighting change; walkers enter at the left or right edge (some are already in view), cross the frame
along the ground with a slight drift and leave on the other side. Each has a size set by perspective (smaller
near the horizon) and a random build, clothing and gait (a head, a torso, swinging arms and a swinging pair of
legs). Walkers are drawn far to near, so nearer ones occlude farther ones.

Ground truth per frame and walker: the tight box of every pixel drawn for it (MOTChallenge convention: the whole
person, also where occluded or outside the frame), its identity (1-based, never reused) and its visible fraction;
and per pixel the identity of the walker seen there (0: background), so the foreground masks are known exactly.
:meth:`WalkerVideo.source` feeds the frames through background subtraction like a real video;
:meth:`WalkerVideo.write` saves a MOTChallenge sequence folder (``img1/``, ``gt/gt.txt``, ``seqinfo.ini``).
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from sqair_world.data.pedestrians.mot import BoxTable, write_mot
from sqair_world.data.pedestrians.video import ArrayFrames, write_frames, write_video

_SHIFT = 4  # cv2 drawing with 4 fractional bits: sub-pixel positions, so slow walkers move smoothly
_ONE = 1 << _SHIFT


@dataclass(frozen=True)
class WalkersConfig:
    """The synthetic scene; the video is fully determined by this config (including ``seed``)."""

    height: int = 180
    """Frame height, pixels."""
    width: int = 240
    """Frame width, pixels."""
    num_frames: int = 300
    """Frames to render."""
    fps: float = 7.0
    """Frame rate the motion is meant for (PETS 2009 / vtest.avi's capture rate), frames per second."""
    seed: int = 0
    """Seed of everything random: scene, walkers, noise."""
    max_walkers: int = 6
    """No walker enters while this many are in view."""
    initial_walkers: int = 3
    """Walkers already in view in the first frame."""
    spawn_rate: float = 0.12
    """Expected walkers entering per frame while fewer than ``max_walkers`` are in view."""
    horizon: float = 0.3
    """Height of the horizon as a fraction of the frame height: feet stay below it."""
    far_height: float = 22.0
    """Height of a walker with the feet at the horizon, pixels."""
    near_height: float = 44.0
    """Height of a walker with the feet at the bottom edge, pixels."""
    size_jitter: float = 0.15
    """Relative spread of walkers' sizes around the perspective height."""
    speed: tuple[float, float] = (0.06, 0.14)
    """Range of walking speeds, body heights per frame (0.11 at 7 fps is about 1.4 m/s)."""
    drift: float = 0.25
    """Largest vertical speed as a fraction of the walking speed (walkers bounce off the horizon and bottom)."""
    noise_std: float = 3.0
    """Per-pixel camera noise, grey levels."""
    lighting_amplitude: float = 0.12
    """Relative amplitude of the slow brightness change of the whole scene."""
    lighting_period: float = 600.0
    """Period of the brightness change, frames."""

    def __post_init__(self) -> None:
        problems = []
        if self.height < 32 or self.width < 32:
            problems.append(f"frames must be at least 32x32, got {self.width}x{self.height}")
        if self.num_frames < 1:
            problems.append(f"num_frames must be >= 1, got {self.num_frames}")
        if self.max_walkers < 1 or not 0 <= self.initial_walkers <= self.max_walkers:
            problems.append("need max_walkers >= 1 and 0 <= initial_walkers <= max_walkers")
        if not 0 <= self.spawn_rate <= 1:
            problems.append(f"spawn_rate is a probability per frame in [0, 1], got {self.spawn_rate}")
        if not 0 <= self.horizon < 0.9:
            problems.append(f"horizon must be in [0, 0.9), got {self.horizon}")
        if not 4 <= self.far_height <= self.near_height:
            problems.append("need 4 <= far_height <= near_height (pixels)")
        if self.near_height * (1 + self.size_jitter) > self.height:
            problems.append(f"walkers up to {self.near_height * (1 + self.size_jitter):.0f} px exceed the frame")
        if not 0 < self.speed[0] <= self.speed[1]:
            problems.append(f"speed must be a (low, high) range with 0 < low <= high, got {self.speed}")
        if min(self.drift, self.noise_std, self.lighting_amplitude, self.size_jitter) < 0 or self.lighting_period <= 0:
            problems.append("drift, noise_std, lighting_amplitude and size_jitter must be >= 0, lighting_period > 0")
        if problems:
            raise ValueError("Invalid WalkersConfig:\n  " + "\n  ".join(problems))


@dataclass(frozen=True, eq=False)
class WalkerVideo:
    """A rendered synthetic video with its ground truth."""

    frames: np.ndarray
    """RGB uint8 ``[F, H, W, 3]``."""
    labels: np.ndarray
    """int16 ``[F, H, W]`` (int32 for 32,767 walkers or more): the identity of the walker seen at each pixel,
    0 for background."""
    gt: BoxTable
    """One row per frame and walker with pixels in the frame: 1-based frame, identity, tight box of the whole
    walker (may extend past the frame), conf 1, xyz -1."""
    visibility: np.ndarray
    """float64 ``[N]``, aligned with ``gt``: fraction of the walker's pixels seen (inside the frame, unoccluded)."""
    config: WalkersConfig
    """The config that rendered it."""

    @property
    def masks(self) -> np.ndarray:
        """bool ``[F, H, W]``: the exact foreground (some walker is seen there)."""
        return self.labels > 0

    def source(self) -> ArrayFrames:
        """The frames as a :class:`~sqair_world.data.pedestrians.video.FrameSource` (frames numbered from 1)."""
        return ArrayFrames(self.frames, fps=self.config.fps, name=f"walkers(seed={self.config.seed})")

    def write(self, folder: str | os.PathLike, video: bool = False) -> Path:
        """Save as a MOTChallenge sequence: ``img1/000001.jpg ...``, ``gt/gt.txt``, ``seqinfo.ini``, and with
        ``video`` also ``video.avi``. Returns the folder."""
        folder = Path(folder)
        write_frames(folder / "img1", self.frames)
        write_mot(folder / "gt" / "gt.txt", self.gt)
        ini = configparser.ConfigParser()
        ini.optionxform = str
        F, H, W = self.labels.shape
        ini["Sequence"] = {
            "name": folder.name,
            "imDir": "img1",
            "frameRate": f"{self.config.fps:g}",
            "seqLength": str(F),
            "imWidth": str(W),
            "imHeight": str(H),
            "imExt": ".jpg",
        }
        with open(folder / "seqinfo.ini", "w", encoding="utf-8") as f:
            ini.write(f)
        if video:
            write_video(folder / "video.avi", self.frames, fps=self.config.fps)
        return folder


def _scene(cfg: WalkersConfig, rng: np.random.Generator) -> np.ndarray:
    """The static background, RGB uint8 ``[H, W, 3]``: smooth colour variation, fine texture, a lamp post, a sign."""
    H, W = cfg.height, cfg.width
    horizon = int(cfg.horizon * H)
    rows = np.arange(H)[:, None, None]
    wall, ground = rng.uniform(90, 170, 3), rng.uniform(100, 160) + rng.uniform(-12, 12, 3)
    base = np.where(rows < horizon, wall, ground) * np.ones((1, W, 1))
    coarse = rng.normal(0, 12, (H // 12 + 2, W // 12 + 2, 1)) + rng.normal(0, 3, (H // 12 + 2, W // 12 + 2, 3))
    smooth = cv2.resize(coarse, (W, H), interpolation=cv2.INTER_CUBIC)  # mostly brightness, a little hue
    image = base + smooth + rng.normal(0, 6, (H, W, 1))  # grey fine texture: gravel, plaster
    image[max(horizon - 1, 0) : horizon + 1] *= 0.7  # a kerb line at the horizon
    x = int(rng.integers(W // 8, W - W // 8))
    image[max(horizon - H // 4, 0) : horizon + H // 3, x : x + max(2, W // 80)] = rng.uniform(30, 60)  # lamp post
    sy, sx = int(rng.integers(0, max(horizon - 12, 1))), int(rng.integers(0, W - 24))
    image[sy : sy + 10, sx : sx + 20] = rng.uniform(180, 250, 3)  # a sign on the wall
    return np.clip(image, 0, 255).astype(np.uint8)


@dataclass
class _Walkers:
    """Per-walker attributes, arrays over walkers (index = id - 1)."""

    direction: np.ndarray  # +1 left to right, -1 right to left
    speed: np.ndarray  # body heights per frame
    vy: np.ndarray  # vertical speed, body heights per frame (sign flips at a bounce)
    scale: np.ndarray  # size relative to the perspective height
    aspect: np.ndarray  # torso width / height
    stride: np.ndarray  # leg swing amplitude, radians
    cadence: np.ndarray  # gait phase per body height walked, radians
    phase: np.ndarray  # gait phase at entry, radians
    colours: np.ndarray  # uint8 [n, 3, 3]: head, shirt, trousers


def _new_walkers(n: int, cfg: WalkersConfig, rng: np.random.Generator) -> _Walkers:
    lo, hi = cfg.speed
    speed = rng.uniform(lo, hi, n)
    head = rng.uniform(60, 220, (n, 1, 3)) * [1.0, 0.85, 0.7]  # skin-ish or hair: warm tones
    clothes = rng.integers(10, 246, (n, 2, 3))
    return _Walkers(
        direction=rng.choice([-1.0, 1.0], n),
        speed=speed,
        vy=rng.uniform(-cfg.drift, cfg.drift, n) * speed,
        scale=np.clip(1 + rng.normal(0, cfg.size_jitter, n), 0.6, 1 + cfg.size_jitter),
        aspect=rng.uniform(0.22, 0.34, n),
        stride=rng.uniform(0.3, 0.55, n),
        cadence=rng.uniform(2.5, 4.0, n),
        phase=rng.uniform(0, 2 * np.pi, n),
        colours=np.concatenate([head, clothes], 1).astype(np.uint8),
    )


def _height(cfg: WalkersConfig, feet_y: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Perspective: the walker's height in pixels from the image row of its feet."""
    top = cfg.horizon * cfg.height
    depth = np.clip((feet_y - top) / max(cfg.height - top, 1.0), 0, 1)
    return (cfg.far_height + (cfg.near_height - cfg.far_height) * depth) * scale


def _simulate(cfg: WalkersConfig, walkers: _Walkers, rng: np.random.Generator) -> list[np.ndarray]:
    """Walk everyone, frame by frame, vectorised over walkers. Returns per frame a float64 ``[n_t, 4]`` array
    (walker index, feet x, feet y, gait phase) of the walkers in view."""
    W, H = cfg.width, cfg.height
    top, bottom = cfg.horizon * H + 1, H - 1.0
    n = len(walkers.speed)
    x, y, gait = np.zeros(n), np.zeros(n), walkers.phase.copy()
    alive, entered = np.zeros(n, bool), 0

    def enter(k: int, inside: bool) -> None:
        nonlocal entered
        idx = np.arange(entered, entered + k)
        entered += k
        y[idx] = rng.uniform(top, bottom, k)
        half = 0.5 * _height(cfg, y[idx], walkers.scale[idx])
        edge = np.where(walkers.direction[idx] > 0, -half, W + half)  # just outside, facing inwards
        x[idx] = rng.uniform(0.1 * W, 0.9 * W, k) if inside else edge
        alive[idx] = True

    enter(cfg.initial_walkers, inside=True)
    states = []
    for _ in range(cfg.num_frames):
        if entered < n and alive.sum() < cfg.max_walkers and rng.random() < cfg.spawn_rate:
            enter(1, inside=False)
        idx = np.flatnonzero(alive)
        states.append(np.column_stack([idx, x[idx], y[idx], gait[idx]]))
        h = _height(cfg, y[idx], walkers.scale[idx])
        x[idx] += walkers.direction[idx] * walkers.speed[idx] * h
        y[idx] += walkers.vy[idx] * h
        bounce = (y[idx] < top) | (y[idx] > bottom)
        walkers.vy[idx[bounce]] *= -1
        y[idx] = np.clip(y[idx], top, bottom)
        gait[idx] += walkers.cadence[idx] * walkers.speed[idx]
        half = 0.5 * h
        gone = np.where(walkers.direction[idx] > 0, x[idx] - half > W, x[idx] + half < 0)
        alive[idx[gone]] = False
    return states


def _draw(h: float, cx: float, fy: float, w: _Walkers, i: int, gait: float):
    """One walker on its own patch: colour uint8 ``[p, p, 3]``, mask bool ``[p, p]`` and the patch's top-left
    (y, x) in the frame."""
    size = int(np.ceil(h)) + 6
    oy, ox = int(np.floor(fy - h)) - 3, int(np.floor(cx - size / 2))
    colour = np.zeros((size, size, 3), np.uint8)
    mask = np.zeros((size, size), np.uint8)

    def pt(px: float, py: float) -> tuple[int, int]:
        return int(round((px - ox) * _ONE)), int(round((py - oy) * _ONE))

    head_c, shirt, trousers = (tuple(int(c) for c in col) for col in w.colours[i])
    swing = w.stride[i] * np.sin(gait)
    leg, arm = 0.5 * h, 0.32 * h
    hip, shoulder = fy - 0.5 * h, fy - 0.78 * h
    leg_t, arm_t = max(2, int(round(0.1 * h))), max(1, int(round(0.06 * h)))
    parts = []
    for sign in (1, -1):  # legs swing in antiphase, arms against the legs
        parts.append(
            ("line", trousers, pt(cx, hip), pt(cx + sign * leg * np.sin(swing), hip + leg * np.cos(swing)), leg_t)
        )
        a = -0.7 * sign * swing
        parts.append(("line", shirt, pt(cx, shoulder), pt(cx + arm * np.sin(a), shoulder + arm * np.cos(a)), arm_t))
    torso_axes = (int(round(0.5 * w.aspect[i] * h * _ONE)), int(round(0.17 * h * _ONE)))
    parts.append(("ellipse", shirt, pt(cx, fy - 0.65 * h), torso_axes, 0))
    radius = 0.09 * h
    parts.append(("circle", head_c, pt(cx, fy - h + radius), int(round(radius * _ONE)), 0))
    for kind, col, a, b, thick in parts:
        for img, c in ((colour, col), (mask, 255)):
            if kind == "line":
                cv2.line(img, a, b, c, thick, cv2.LINE_8, _SHIFT)
            elif kind == "ellipse":
                cv2.ellipse(img, a, b, 0, 0, 360, c, -1, cv2.LINE_8, _SHIFT)
            else:
                cv2.circle(img, a, b, c, -1, cv2.LINE_8, _SHIFT)
    return colour, mask > 0, (oy, ox)


def make_walkers(cfg: WalkersConfig = WalkersConfig()) -> WalkerVideo:
    """Render the synthetic video of ``cfg`` with its ground truth (deterministic in ``cfg.seed``)."""
    rng = np.random.default_rng(cfg.seed)
    H, W, F = cfg.height, cfg.width, cfg.num_frames
    scene = _scene(cfg, rng)
    capacity = cfg.initial_walkers + F  # at most one entry per frame
    walkers = _new_walkers(capacity, cfg, rng)
    states = _simulate(cfg, walkers, rng)
    frames = np.empty((F, H, W, 3), np.uint8)
    labels = np.zeros((F, H, W), np.int16 if capacity < 2**15 else np.int32)
    gains = 1 + cfg.lighting_amplitude * np.sin(
        2 * np.pi * np.arange(F) / cfg.lighting_period + rng.uniform(0, 2 * np.pi)
    )
    rows: list[tuple[int, int, float, float, float, float, float]] = []
    for t, state in enumerate(states):
        image = scene.copy()
        totals = {}
        boxes = {}
        for idx, cx, fy, gait in state[np.argsort(state[:, 2])]:  # far (high in the image) first: near occludes
            i = int(idx)
            h = float(_height(cfg, np.array([fy]), walkers.scale[i : i + 1])[0])
            colour, mask, (oy, ox) = _draw(h, cx, fy, walkers, i, gait)
            r, c = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            y0, x0 = max(oy, 0), max(ox, 0)
            y1, x1 = min(oy + mask.shape[0], H), min(ox + mask.shape[1], W)
            m = mask[y0 - oy : max(y1, y0) - oy, x0 - ox : max(x1, x0) - ox]
            if not m.any():  # not in the frame (yet or any more): no ground-truth row
                continue
            boxes[i + 1] = (ox + c[0], oy + r[0], c[-1] - c[0] + 1, r[-1] - r[0] + 1)
            totals[i + 1] = int(mask.sum())
            image[y0:y1, x0:x1][m] = colour[y0 - oy : y1 - oy, x0 - ox : x1 - ox][m]
            labels[t, y0:y1, x0:x1][m] = i + 1
        seen = np.bincount(labels[t].ravel(), minlength=capacity + 1)
        for wid, box in boxes.items():  # a walker hidden behind others keeps its row, with visibility 0
            rows.append((t + 1, wid, *box, seen[wid] / totals[wid]))
        lit = image.astype(np.float32) * np.float32(gains[t])
        lit += rng.standard_normal((H, W, 3), dtype=np.float32) * np.float32(cfg.noise_std)
        np.clip(lit, 0, 255, out=lit)
        frames[t] = np.rint(lit).astype(np.uint8)
    table = np.asarray(rows, dtype=np.float64).reshape(-1, 7)
    gt = BoxTable(table[:, 0], table[:, 1], table[:, 2:6])
    return WalkerVideo(frames, labels, gt, table[:, 6], cfg)


__all__ = ["WalkerVideo", "WalkersConfig", "make_walkers"]
