"""Named experiments: a model from the registry, its data, and training overrides.

``python -m sqair_world.pretrain --help`` lists them; every field of their model and training configs can be
overridden on the command line.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from sqair_world.data import MovingMNISTConfig, load_moving_mnist
from sqair_world.data.pedestrians import (
    PreprocessConfig,
    WalkersConfig,
    duke_ground_truth_file,
    duke_video,
    load_duke_ground_truth,
    load_pedestrians,
)
from sqair_world.model import registry
from sqair_world.training.trainer import TrainConfig


@dataclass(frozen=True)
class Experiment:
    """A model of the registry, its data and the overrides of its model and training configs."""

    name: str
    model: str
    """Registry name (sqair_world.model.registry.MODEL_NAMES)."""
    data: Literal["moving-mnist", "atari", "pedestrians"]
    description: str
    model_overrides: dict[str, Any] = field(default_factory=dict)
    """Changes to the registry model's config; K, the importance samples per sequence, is its ``k_particles``."""
    train_overrides: dict[str, Any] = field(default_factory=dict)
    """Changes to :class:`~sqair_world.training.trainer.TrainConfig`."""

    def model_config(self) -> Any:
        """The model's config (SQAIRConfig or VRNNConfig) with this experiment's overrides."""
        return registry.model_config(self.model, **self.model_overrides)

    def train_config(self) -> TrainConfig:
        """The training config with this experiment's overrides."""
        return TrainConfig(**self.train_overrides)


# Atari (issues #7, #18): 84x84 colour frames, sprites of about 4x7 px (0.05-0.09 of the side). Grid discovery: 14x14
# cells of 6 px, each proposing at most one sprite, 8 slots (Ms. Pac-Man shows 6 sprites, and a ghost leaving its
# house may overlap another for a few frames); the sequential discovery found about half the sprites however it was
# tuned (docs/atari.md, History). The scale prior and the proposals' first boxes sit at the sprite size (logit -2.6,
# sigmoid = 0.07), boxes are capped at 0.15 of the side. The maze is the background everywhere (background="full")
# and exact (pellets erased, fixed maze): the only residual is the sprites, and output std 0.1 instead of 0.3 makes
# explaining them worth 9x more against the KL of an object; the decoder's output scale starts at 0.05 so that its
# initial noise is cheap. The self-supervised blob targets (MOC, model.grid) tell the cells where the sprites are
# from the first step, so no presence warm-up is needed. Where-std offset -1 (not -3): boxes must explore. Sprites
# move at most ~3 px (0.04 of the side) per step: the propagation's where update is scaled by 0.1, else its initial
# steps of a quarter of the frame carried every box off its sprite, and propagation learned to drop them all. For
# the same reason the propagated where-std starts at softplus(-4) + 0.01 = 0.03 (logit units, about 1 px) instead of
# the reference's softplus(-1) (13 px: sampled boxes missed their 4-px sprites and propagation died within 400 steps),
# and the propagation prior is centred on the object's last where and what (prop_prior_residual). The pretraining CLI
# sets num_actions to the game's action count (PretrainArgs.actions): the prior then knows the joystick (issue #22).
# Two tracks that converge on one sprite are merged, the younger dropped (prop_merge_distance 0.025 of the side, 2 px):
# such doubles were most over-counts of the shipped models, and the rule alone, applied to them unchanged, raised
# count accuracy from 0.72 / 0.75 to 0.75 / 0.85 and precision from 0.96 / 0.93 to 0.99 / 1.00 (Pac-Man / Ms. Pac-Man,
# docs/atari.md). The online tracker re-identifies a track lost within 100 agent steps (a life loss sends every
# sprite back to its start, ending every track) by its mean z_what (envs.reid): tuned on seeds 10-12, never on 0-4.
# The targets are the "footprint" rule (model.grid.footprint_targets): a sprite-sized 8x4 window, taken greedily, splits
# ghosts side by side, which the blob peaks count as one (the targets alone, seeds 10-12: Pac-Man count accuracy 0.73 ->
# 0.82, Ms. Pac-Man 0.80 -> 0.81; scripts/target_study.py), and a proposal is rejected only when half its box (not 30%)
# is covered by the propagated objects, so that a ghost beside a tracked one is not refused (docs/atari.md).
ATARI_MODEL = dict(
    image_shape=(3, 84, 84),
    max_objects=8,
    glimpse_size=(12, 12),
    n_what=16,
    n_hidden=64,
    n_hidden_small=32,
    where_prior_bias=(-2.6, -2.6, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0),
    disc_where_bias=(-2.6, -2.6, 0.0, 0.0),
    disc_step_bias=-2.0,
    discovery="grid",
    grid_size=14,
    grid_aux_weight=20.0,
    grid_targets="footprint",
    grid_footprint=(8, 4),
    grid_footprint_fill=0.45,
    grid_reject_overlap=0.5,
    background="full",
    max_scale=0.15,
    output_std=0.1,
    output_scale=0.05,
    transform_var_bias=-1.0,
    where_update_scale=0.1,
    prop_where_std_shift=-4.0,
    prop_prior_residual=True,
    exit_margin=0.02,
    prop_merge_distance=0.025,
    track_reid_steps=100,
    track_reid_distance=8.0,
    k_particles=3,
)

# The Atari model scaled to the in-package 42x42 sprite world (data.sprites: 7 cells of 6 px, sprites of 6x4 px), for
# tests and short studies of the grid model.
SPRITE_WORLD_MODEL = {
    **ATARI_MODEL,
    **dict(image_shape=(3, 42, 42), max_objects=4, glimpse_size=(8, 8), n_what=8, n_hidden=32, n_hidden_small=16),
    **dict(conv_channels=16, grid_size=7, max_scale=0.3, k_particles=2, exit_margin=0.0, grid_footprint=(6, 4)),
    **dict(where_prior_bias=(-2.0, -2.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0), disc_where_bias=(-2.0, -2.0, 0.0, 0.0)),
}

# Pedestrians (paper §4.2, issue #20): 64x64 colour regions of background-subtracted footage cut to width 240, at
# most 3 people per region, sequences of 5. CONV encoders, and tall glimpses: the authors' code names 32x12 (h x w,
# reference §6). People are 21-36 px tall and 6-13 px wide at that width (pedestrians.md §1.4): the where prior
# starts at scale 0.15 x 0.45 of the region (logits -1.7, -0.2) instead of MNIST's square 0.12, and so do the
# posterior's first boxes (with the reference's half-side square start, boxes stayed 3x too wide and parked at the
# border for the first 700 steps), and boxes are capped at 0.3 x 0.75 of the region: uncapped, the model painted
# several people with one glimpse half the region wide and blurred them (as on Atari; docs/pedestrians.md). Batch 16:
# twice the steps of 32 in the CPU budget. The frames are black where nothing moves, so the reference's masked mean
# image (background="masked") fits as it is. Discovery is the grid of the Atari model (issue #18), 8x8 cells of 8 px:
# with the paper's sequential discovery every slot stayed on (counting 0.07 on held-out walkers after 60 minutes;
# docs/pedestrians.md, History). Its self-supervised blob targets smooth the foreground by 6 x 3 px, a third of a
# person, so that each person makes one peak (0.81 of held-out walker frames get the right count from the blobs
# alone); cells start mostly off (presence logit -2, as on Atari), and the propagation prior is centred on the last
# where and what (prop_prior_residual, as on Atari). A person hidden behind another keeps their continuity target
# (grid_continuity_exclusive=False): same held-out counting, fewer than half the identity switches (23 against 56;
# docs/pedestrians.md).
PEDESTRIAN_MODEL = dict(
    image_shape=(3, 64, 64),
    max_objects=3,
    glimpse_size=(32, 12),
    encoder="conv",
    where_prior_bias=(-1.7, -0.2, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0),
    disc_where_bias=(-1.7, -0.2, 0.0, 0.0),
    max_scale=(0.3, 0.75),
    discovery="grid",
    grid_size=8,
    grid_aux_weight=20.0,
    grid_blob_sigma=(6.0, 3.0),
    disc_step_bias=-2.0,
    prop_prior_residual=True,
    grid_continuity_exclusive=False,
)

# Grid discovery on moving MNIST (issue #18: beside the paper's sequential discovery, so users know which to pick):
# 5x5 cells of 10 px, each proposing at most one digit (28 px, so a digit's centre falls in one cell). The blob
# targets smooth the strokes by 4 px, and a centre needs only 0.05 of smoothed mass (thin strokes fill about a fifth
# of a digit's box; at the default 0.25 about a sixth of the digits made no blob): the blobs alone then count 0.83 of
# held-out frames right (overlapping digits make one blob), against 0.76 at 0.25. The targets' weight is 2, not
# Atari's 20, so that the likelihood, not the blobs, separates overlapping digits: in 5-minute pilots the bound rose
# faster at 2 (2,005 at step 800 against 1,827 at 700) and validation counting, behind at first, caught up (0.84
# against 0.86; docs/moving_mnist.md). Presence prior logit -3 (0.05 per cell: 1.2 digits over 25 cells; the data
# have 1 on average).
MNIST_GRID_MODEL = dict(
    discovery="grid",
    grid_size=5,
    grid_blob_sigma=(4.0, 4.0),
    grid_blob_min_mass=0.05,
    grid_pres_prior_logit=-3.0,
    grid_aux_weight=2.0,
)

EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in [
        Experiment(
            "mnist-mlp-sqair", "mlp-sqair", "moving-mnist", "MLP-SQAIR on moving multi-MNIST (the paper's main model)"
        ),
        Experiment(
            "mnist-conv-sqair", "conv-sqair", "moving-mnist", "CONV-SQAIR: convolutional encoders, subpixel decoder"
        ),
        Experiment(
            "mnist-mlp-air", "mlp-air", "moving-mnist", "MLP-AIR baseline: discovery on every frame, no propagation"
        ),
        Experiment(
            "mnist-mlp-sqair-grid",
            "mlp-sqair",
            "moving-mnist",
            "MLP-SQAIR with grid discovery (all cells at once) instead of the paper's sequential one",
            MNIST_GRID_MODEL,
        ),
        Experiment("mnist-mlp-vrnn", "mlp-vrnn", "moving-mnist", "MLP-VRNN baseline (latent 165)"),
        Experiment("mnist-conv-vrnn", "conv-vrnn", "moving-mnist", "CONV-VRNN baseline (latent 165)"),
        Experiment(
            "atari",
            "mlp-sqair",
            "atari",
            "SQAIR on pre-processed Atari maze games (--env ALE/Pacman-v5)",
            ATARI_MODEL,
            dict(
                batch_size=16,
                curriculum_start=3,
                curriculum_max=8,
                num_train_sequences=600,
                num_val_sequences=32,
            ),
        ),
        Experiment(
            "pedestrians",
            "conv-sqair",
            "pedestrians",
            "SQAIR on static-camera pedestrians (paper §4.2): --video PATH, --duke DIR, or the synthetic walkers",
            PEDESTRIAN_MODEL,
            dict(batch_size=16, curriculum_start=3, curriculum_max=5),
        ),
    ]
}


def get_experiment(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        close = difflib.get_close_matches(name, list(EXPERIMENTS), n=1)
        raise ValueError(
            f"unknown experiment {name!r}; choose one of {list(EXPERIMENTS)}"
            + (f". Did you mean {close[0]!r}?" if close else "")
        )
    return EXPERIMENTS[name]


def moving_mnist_arrays(num_train: int, num_val: int, seed: int, mnist_dir: str | None, seq_len: int = 10):
    """uint8 ``[T, S, 1, 50, 50]`` train/val frames and the validation counts (the authors' convention)."""
    cfg = MovingMNISTConfig(seq_len=seq_len)
    train = load_moving_mnist("train", num_train, seed, mnist_dir, cfg)
    val = load_moving_mnist("eval", num_val, seed, mnist_dir, cfg)
    return train.frames[:, :, None], val.frames[:, :, None], val.num_digits


def mean_frame(frames: np.ndarray) -> np.ndarray:
    """float32 ``[C, H, W]`` mean of uint8 ``[T, S, C, H, W]`` frames in [0, 1] (the initial mean image, §2.3)."""
    sample = frames[:, :: max(1, frames.shape[1] // 2000)]
    return sample.reshape(-1, *frames.shape[2:]).mean(0, dtype=np.float64).astype(np.float32) / 255.0


@dataclass(frozen=True)
class PedestrianSource:
    """Where the pedestrian experiment's frames come from: a video (or frame folder), a DukeMTMC camera, or the
    synthetic walkers (the default: offline, with ground truth)."""

    video: str | None = None
    """A static-camera video file or frame folder (e.g. OpenCV's vtest.avi), no annotations unless --gt."""
    gt: str | None = None
    """MOTChallenge gt.txt of --video, in its pixels: gives per-frame counts."""
    duke: str | None = None
    """A DukeMTMC root (videos/ or frames/, ground_truth/): the paper's data, with counts."""
    camera: int = 2
    """DukeMTMC camera (1-8)."""
    walkers_frames: int = 1500
    """Synthetic walkers: frames to render (the held-out evaluation video uses another seed)."""
    walkers_seed: int = 0
    """Synthetic walkers: seed of the scene."""
    step: int | None = None
    """Keep every step-th frame (None: 30 for DukeMTMC at 59.94 fps, as the authors; 3 with all phases for ~7 fps
    video and the walkers)."""

    def __post_init__(self) -> None:
        if self.video is not None and self.duke is not None:
            raise ValueError("give --video or --duke, not both")
        if self.gt is not None and self.video is None:
            raise ValueError("--gt annotates --video; give the video too")
        if not 1 <= self.camera <= 8:
            raise ValueError(f"--camera is a DukeMTMC camera 1-8, got {self.camera}")
        if self.walkers_frames < 200:
            raise ValueError(
                f"--walkers-frames must be >= 200 (enough for a validation split), got {self.walkers_frames}"
            )
        if self.step is not None and self.step < 1:
            raise ValueError(f"--step must be >= 1, got {self.step}")

    def describe(self) -> str:
        if self.video is not None:
            return f"video {self.video}"
        if self.duke is not None:
            return f"DukeMTMC {self.duke} camera {self.camera}"
        return f"synthetic walkers ({self.walkers_frames} frames, seed {self.walkers_seed})"


def load_pedestrian_source(src: PedestrianSource, progress: bool = True):
    """The :class:`~sqair_world.data.pedestrians.PedestrianData` of ``src`` (cached, see docs/pedestrians.md)."""
    if src.duke is not None:
        gt = load_duke_ground_truth(duke_ground_truth_file(src.duke))
        cfg = PreprocessConfig(step=src.step or 30)
        return load_pedestrians(
            duke_video(src.duke, src.camera), cfg, gt.camera_boxes(src.camera), annotation_width=1920, progress=progress
        )
    cfg = PreprocessConfig(step=src.step or 3, all_phases=src.step is None or src.step > 1)
    if src.video is not None:
        return load_pedestrians(src.video, cfg, src.gt, progress=progress)
    return load_pedestrians(WalkersConfig(num_frames=src.walkers_frames, seed=src.walkers_seed), cfg, progress=progress)


def pedestrian_arrays(src: PedestrianSource, progress: bool = True):
    """uint8 ``[5, S, 3, 64, 64]`` train/val frames and the validation counts ``[5, S_val]`` (None without
    annotations)."""
    data = load_pedestrian_source(src, progress)
    return data.train.frames, data.val.frames, data.val.counts if data.val.has_counts else None
