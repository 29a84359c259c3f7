"""Model configuration: one frozen dataclass with the reference's MLP-SQAIR defaults.

Every number cites ``sqair-reference.md`` (the authors' released MLP-SQAIR, §2-§4). Variants and
baselines (CONV-SQAIR, MLP-AIR) are the same dataclass with other field values, built by
:mod:`sqair_world.model.registry`; nothing here is mutated at run time.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class SQAIRConfig:
    """Hyper-parameters of SQAIR and of the AIR baseline (``propagate=False``)."""

    image_shape: tuple[int, int, int] = (1, 50, 50)
    """(C, H, W) of the frames."""
    max_objects: int = 3
    """N, the number of object slots (reference §2.1: n_steps_per_image = 3)."""
    glimpse_size: tuple[int, int] = (20, 20)
    """(h, w) of the glimpse extracted and decoded for each object."""
    n_what: int = 50
    """D, size of the appearance latent z_what."""
    n_hidden: int = 256
    """Width of every MLP/RNN (n_units 8 -> 256)."""
    n_hidden_small: int = 128
    """Width of the presence predictor, glimpse-mask and where-bias MLPs."""
    encoder: Literal["mlp", "conv"] = "mlp"
    """MLP-SQAIR or CONV-SQAIR encoders/decoder."""
    conv_channels: int = 32
    """Base width of the convolutional encoders/decoder (CONV-SQAIR only)."""
    propagate: bool = True
    """False gives MLP-AIR: discovery on every frame independently, no temporal priors."""
    k_particles: int = 5
    """K, importance samples per sequence for the IWAE bound."""

    output_std: float = 0.3
    """Fixed std of the Gaussian likelihood (reference §1)."""
    output_scale: float = 0.25
    """Initial value of the trainable scalar on the decoded glimpses."""
    transform_var_bias: float = -3.0
    """Trainable offset added to the raw where-std (StochasticTransformParam)."""
    prop_where_std_shift: float = -1.0
    """Propagation where std = softplus(raw - 1) + 0.01 (reference §2.4 step 3)."""
    disc_step_bias: float = 1.0
    """Initial bias of the discovery presence logit (p ~ 0.73)."""
    prop_step_bias: float = 5.0
    """Initial bias of the propagation presence logit (p ~ 0.993)."""
    prop_prior_step_bias: float = 10.0
    """Constant added to the propagation prior's presence logit."""
    disc_prior_zero_bias: float = 10.0
    """Initial bias on "zero new objects" of the discovery count prior for t > 0."""
    where_prior_bias: tuple[float, ...] = (-2.0, -2.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0)
    """Initial bias of the autoregressive where prior's (mu, raw std) output: scale logit -2."""
    disc_where_bias: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    """Initial bias of the discovery posterior's where loc (sx, sy, tx, ty logits). Zero (reference): boxes start
    at half the image side, in the centre. Objects far from square and small (pedestrians) start better at their
    typical size, so that the first glimpses already hold one whole object."""
    background: Literal["masked", "full"] = "masked"
    """How the trainable mean image enters the canvas. 'masked' (reference §2.3): mean_image * m with m a soft
    mask of the area the objects write, so it only shows under objects (MNIST's near-black mean frame).
    'full': mean_image everywhere, objects added on top: a scene background such as an Atari maze, which
    under 'masked' the model can only draw by covering the frame with glimpses."""
    max_scale: float | tuple[float, float] = 1.0
    """Soft cap on the posterior's mean box scale (fraction of the image side, or (width, height) fractions; see
    spatial.cap_scale).
    1.0: no cap (reference). Small sprites need it: without it, one glimpse as large as the frame can
    paint all of Pac-Man's sprites at once at low resolution, and the model learns exactly that."""
    exit_margin: float = 0.0
    """Objects leave through the border. The tanh shift cannot take a box centre past the image edge, so
    an object that walks off the frame stays parked at the border; the reference leaves switching it off
    to the learned presence, which our Atari runs never learned (every slot ended up parked in a corner,
    leaving discovery no free slot). With a margin m > 0, a propagated object whose sampled box centre lies
    within m (fraction of the image side) of the border is made absent, exactly like a slot absent at t-1
    (its presence logit is masked); the prior still pays log p(pres = 0), so the propagation prior learns
    where objects exit. 0: off (reference)."""
    prop_merge_distance: float = 0.0
    """Two tracks on one object. A propagated object whose sampled box centre comes within this distance
    (fraction of the image side) of an object kept by an earlier slot (an older track: slots are packed oldest
    first) is the same object, and is made absent like one that exits (its presence logit masked, the prior pays
    log p(pres = 0)). Atari sprites never share a place except stacked in the ghost house, which the screen
    shows as one blob, and two tracks that converge on one sprite count it twice. 0: off (reference; moving-MNIST
    digits cross each other)."""
    track_reid_steps: int = 0
    """For the online tracker of the envs (``envs.reid``), not the model: a track that ended is remembered this
    many agent steps, and a new track that looks like it (appearance codes nearer than ``track_reid_distance``)
    takes its identity back. 0: off, the shown identities are the model's."""
    track_reid_distance: float = 8.0
    """Largest Euclidean distance between the codes (the lost track's mean z_what or the new one's z_what, then
    the weighted centre) of a lost track and a new one it re-identifies."""
    track_reid_position_weight: float = 0.0
    """Weight of the box centre (fractions of the frame side) beside z_what in the re-identification code. 0:
    appearance only."""
    min_std: float = 0.01
    """Floor added to every softplus std."""
    mask_logit: float = 88.0
    """Presence logits of slots whose predecessor is absent are set to -mask_logit."""
    gate_scale: float = 0.9999
    """Propagation what-gates are sigmoid(.) * gate_scale."""
    where_update_scale: float = 1.0
    """loc = where_{t-1} + where_update_scale * delta."""
    where_bias_scale: float = 0.1
    """Proposal-glimpse offset = where_bias_scale * MLP(h^T)."""
    mask_logit_bias: float = 1.0
    """Initial bias of the propagation glimpse-mask sigmoid."""

    discovery: Literal["sequential", "grid"] = "sequential"
    """How new objects are found. "sequential": the paper's DISC, one recurrent step per object (model.discovery).
    "grid": every cell of a grid_size x grid_size map proposes at most one object, all at once, and proposals that
    propagated objects already explain are rejected (model.grid; SPACE and SCALOR). Atari sprites need the grid."""
    grid_size: int = 14
    """G, cells per side of the grid discovery (84 px / 14 = 6 px cells, about one Atari sprite each)."""
    grid_pres_prior_logit: float = -4.0
    """Initial logit of the grid prior's per-cell presence (learned; p = 0.018 over 196 cells is 3.5 objects)."""
    grid_reject_overlap: float = 0.3
    """A grid proposal whose box is covered more than this by the propagated objects' render is rejected
    (SCALOR's 30%)."""
    grid_aux_weight: float = 0.0
    """Weight of the grid's self-supervised foreground targets in the training loss (MOC); 0: off (pure IWAE)."""
    grid_fg_threshold: float = 0.1
    """Frame-minus-background difference (max over channels, frames in [0, 1]) above which a pixel is foreground
    for those targets."""
    grid_blob_sigma: tuple[float, float] = (1.5, 1.5)
    """(y, x) std in pixels of the Gaussian that smooths the foreground into blobs for those targets; a blob centre
    is a local maximum over about 3.4 sigma. About a third of an object's height and width: one peak per object
    (Atari sprites of 4x7 px: 1.5; people of 10x29 px in a 64 px region: (6, 3))."""
    grid_blob_min_mass: float = 0.25
    """Smoothed foreground fraction a blob centre must hold (isolated noise pixels make none). Solid sprites and
    silhouettes fill their blob; MNIST's thin strokes fill about a fifth of their box and need less."""
    grid_residual_targets: bool = False
    """From the second frame on, discovery's blob targets come from the foreground outside the propagated objects'
    boxes (SCALOR discovers what propagation leaves unexplained), so a newcomer who shares a propagated object's blob
    still gets a target of its own. Needs ``grid_targets="blobs"``. On the walkers it counted as the default does and
    switched identities more (docs/pedestrians.md, "Where the walkers' count is lost")."""
    grid_targets: Literal["blobs", "footprint"] = "blobs"
    """How those targets find objects in the foreground. "blobs": peaks of the smoothed foreground (grid_blob_*).
    "footprint": greedy matching pursuit with an object-sized window (grid_footprint*), which splits touching
    objects that make one blob, such as ghosts side by side (model.grid.footprint_targets)."""
    grid_footprint: tuple[int, int] = (8, 4)
    """(h, w) pixels of one object for the "footprint" targets (Atari sprites at 84x84: about 8 x 4)."""
    grid_footprint_fill: float = 0.45
    """Foreground fraction of that window above which the pursuit takes one more object."""
    grid_continuity_scale: float = 1.0
    """Propagation's continuity targets weigh this times grid_aux_weight (discovery's targets weigh grid_aux_weight).
    Below 1 the likelihood, not the targets, decides more of which box keeps which object."""
    grid_continuity_exclusive: bool = True
    """Propagation's continuity targets (model.grid.continuity_loss, with grid_aux_weight): True, a blob keeps only
    its nearest object and tells the others to go (doubles on Atari sprites); False, every object within 1.5 cells of
    a blob stays, so a person hidden behind another is kept (pedestrians, whose overlaps make one blob)."""

    prop_prior_residual: bool = False
    """The propagation prior's where and what means are offsets from the object's own values at t-1, instead of
    the released code's absolute means (reference §3.2). With absolute means the untrained prior pulls every
    propagated box towards one place; on small sprites, where the likelihood stops pulling back once a box has
    slipped off its sprite, that pull carried the boxes away and propagation died (docs/atari.md)."""

    prop_prior: Literal["gru", "markov"] = "gru"
    """What the propagation prior remembers of an object. "gru" (reference §3.2): a per-object GRU over its whole
    track. "markov": an MLP over the object at t-1 and its displacement since t-2 only, so the prior is the same
    function at a track's 300th step as at the 5th (a tracker runs the GRU far past the training length, and its
    prior drifted with track age: docs/imagination.md "Diagnosis")."""
    prop_prior_velocity: bool = False
    """Markov prior only: its where mean also moves by g * (where_{t-1} - where_{t-2}), g a learned per-coordinate
    gain in (-1, 1) that starts at 0. A damped constant-velocity term the MLP need not build from its small
    displacement input (docs/imagination.md "Velocity")."""
    prop_prior_action_velocity: bool = False
    """With ``prop_prior_velocity`` and ``num_actions``: each object's gain is tanh(10 g + d), d ``[4]`` an MLP of
    the prior's features and the action (starting at 0), so a held joystick can keep the player's motion going and a
    reversed one turn it round, while the ghosts keep the damped gain. One global gain learned a fifth of the
    action's effect on Ms. Pac-Man. Off: a 30-minute fine-tune with it did no better than one without
    (docs/imagination.md "How much of the action's effect")."""

    prior_rollout_steps: int = 0
    """> 1 adds a rollout loss: from each frame's posterior state, the propagation prior's means are rolled 2 to
    this many steps ahead (with the actions taken) and scored against the posterior's where there, stds held fixed
    (model.priors.prior_rollout_loss). The ELBO trains one-step predictions only, whose errors compound unseen in
    imagination (docs/imagination.md "Diagnosis"); this is latent overshooting (Hafner et al., 2019) on where's
    means. 0: the paper's objective."""
    prior_rollout_weight: float = 1.0
    """Weight of that loss against the ELBO surrogate (both per frame)."""

    num_actions: int = 0
    """Size of the env's discrete action space; > 0 conditions the propagation prior on the action taken between
    frame t-1 and frame t, so that imagined rollouts follow a given action sequence (the player moves where the
    joystick sends it). 0: the paper's unconditional prior (moving MNIST has no actions)."""

    # --- deliberate choices where the released code and the paper disagree (reference §8) ---
    enforce_discovery_cap: bool = True
    """§8.1/8.2: discover at most N - n_propagated objects (paper). False = released code: up to N,
    overflow dropped at the merge after its log q/log p entered the weight."""
    vimco_signal: Literal["standard", "code"] = "standard"
    """§8.3: "standard" = Mnih & Rezende's L - cv_j summed over particles (an unbiased IWAE
    gradient); "code" = released log w_j - cv_j with the 1/K of a mean over particles."""
    prop_where_full_cov: bool = True
    """§8.5: True = released code (MVN posterior with a global learned Cholesky factor)."""

    def __post_init__(self) -> None:
        problems = []
        c, h, w = self.image_shape
        gh, gw = self.glimpse_size
        if min(c, h, w) < 1:
            problems.append(f"image_shape must be positive (C, H, W), got {self.image_shape}")
        if min(gh, gw) < 2 or gh > h or gw > w:
            problems.append(f"glimpse_size {self.glimpse_size} must be >= 2 and fit in the image {(h, w)}")
        for name in ("max_objects", "n_what", "n_hidden", "n_hidden_small", "k_particles", "conv_channels"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.background not in ("masked", "full"):
            problems.append(f"background must be 'masked' or 'full', got {self.background!r}")
        caps = (self.max_scale,) if isinstance(self.max_scale, (int, float)) else tuple(self.max_scale)
        if len(caps) not in (1, 2) or not all(0 < m <= 1 for m in caps):
            problems.append(
                f"max_scale is a fraction of the image side in (0, 1], or two (width, height), got {self.max_scale}"
            )
        if not 0 <= self.prop_merge_distance < 1:
            problems.append(
                f"prop_merge_distance is a fraction of the image side in [0, 1), got {self.prop_merge_distance}"
            )
        if self.track_reid_steps < 0 or self.track_reid_distance <= 0 or self.track_reid_position_weight < 0:
            problems.append(
                f"track_reid_steps must be >= 0, track_reid_distance > 0 and track_reid_position_weight >= 0, got "
                f"{self.track_reid_steps}, {self.track_reid_distance} and {self.track_reid_position_weight}"
            )
        if not 0 <= self.exit_margin < 0.5:
            problems.append(f"exit_margin is a fraction of the image side in [0, 0.5), got {self.exit_margin}")
        if self.output_std <= 0:
            problems.append(f"output_std must be > 0, got {self.output_std}")
        if len(self.disc_where_bias) != 4:
            problems.append(f"disc_where_bias needs 4 numbers (sx, sy, tx, ty), got {len(self.disc_where_bias)}")
        if len(self.where_prior_bias) != 8:
            problems.append(f"where_prior_bias needs 8 numbers (mu 4, raw std 4), got {len(self.where_prior_bias)}")
        if self.encoder not in ("mlp", "conv"):
            problems.append(f"encoder must be 'mlp' or 'conv', got {self.encoder!r}")
        if self.discovery not in ("sequential", "grid"):
            problems.append(f"discovery must be 'sequential' or 'grid', got {self.discovery!r}")
        if self.grid_size < 1 or self.grid_size > min(h, w):
            problems.append(f"grid_size must be in 1..{min(h, w)} (cells per side of the frame), got {self.grid_size}")
        if not 0 < self.grid_reject_overlap <= 1:
            problems.append(f"grid_reject_overlap is a fraction in (0, 1], got {self.grid_reject_overlap}")
        if self.grid_aux_weight < 0 or not 0 < self.grid_fg_threshold < 1:
            problems.append(
                f"grid_aux_weight must be >= 0 and grid_fg_threshold in (0, 1), got {self.grid_aux_weight} "
                f"and {self.grid_fg_threshold}"
            )
        if self.grid_continuity_scale < 0:
            problems.append(f"grid_continuity_scale must be >= 0, got {self.grid_continuity_scale}")
        if len(self.grid_blob_sigma) != 2 or min(self.grid_blob_sigma) <= 0:
            problems.append(f"grid_blob_sigma needs two positive stds (y, x) in pixels, got {self.grid_blob_sigma}")
        if not 0 < self.grid_blob_min_mass < 1:
            problems.append(f"grid_blob_min_mass is a fraction in (0, 1), got {self.grid_blob_min_mass}")
        if self.grid_targets not in ("blobs", "footprint"):
            problems.append(f"grid_targets must be 'blobs' or 'footprint', got {self.grid_targets!r}")
        elif self.grid_residual_targets and self.grid_targets != "blobs":
            problems.append("grid_residual_targets works on the blob targets: set grid_targets='blobs' or turn it off")
        if len(self.grid_footprint) != 2 or not all(1 <= int(v) <= s for v, s in zip(self.grid_footprint, (h, w))):
            problems.append(f"grid_footprint needs (h, w) pixels inside the frame {(h, w)}, got {self.grid_footprint}")
        if not 0 < self.grid_footprint_fill <= 1:
            problems.append(f"grid_footprint_fill is a fraction in (0, 1], got {self.grid_footprint_fill}")
        if self.prop_prior not in ("gru", "markov"):
            problems.append(f"prop_prior must be 'gru' or 'markov', got {self.prop_prior!r}")
        if self.prop_prior == "markov" and self.n_hidden < 5:
            problems.append(
                f"prop_prior='markov' keeps where_(t-1) and a flag in its state: n_hidden >= 5, got {self.n_hidden}"
            )
        if self.prop_prior_velocity and not (self.prop_prior == "markov" and self.prop_prior_residual):
            problems.append(
                "prop_prior_velocity extrapolates the Markov prior's residual where mean: it needs "
                f"prop_prior='markov' and prop_prior_residual=True, got {self.prop_prior!r} and "
                f"{self.prop_prior_residual}"
            )
        if self.prop_prior_action_velocity and not self.prop_prior_velocity:  # num_actions: checked by the prior
            problems.append(
                "prop_prior_action_velocity makes the velocity gain depend on the action: it needs "
                "prop_prior_velocity=True"
            )
        if self.prior_rollout_steps < 0 or self.prior_rollout_steps == 1 or self.prior_rollout_weight < 0:
            problems.append(
                "prior_rollout_steps is 0 (off) or the longest rollout, >= 2 (one step is the ELBO's), and "
                f"prior_rollout_weight >= 0, got {self.prior_rollout_steps} and {self.prior_rollout_weight}"
            )
        if self.num_actions < 0:
            problems.append(f"num_actions must be >= 0 (0: an unconditional prior), got {self.num_actions}")
        if self.vimco_signal not in ("standard", "code"):
            problems.append(f"vimco_signal must be 'standard' or 'code', got {self.vimco_signal!r}")
        if problems:
            raise ValueError("Invalid SQAIRConfig:\n  " + "\n  ".join(problems))

    def replace(self, **changes: Any) -> SQAIRConfig:
        """A copy with ``changes`` applied (validated); unknown names raise a clear error."""
        return replace_checked(self, changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def replace_checked(cfg: Any, changes: dict[str, Any]) -> Any:
    """``dataclasses.replace`` that names unknown fields and suggests close ones."""
    names = {f.name for f in dataclasses.fields(cfg)}
    unknown = [k for k in changes if k not in names]
    if unknown:
        hints = {k: difflib.get_close_matches(k, names, n=1) for k in unknown}
        msg = ", ".join(f"{k!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for k, h in hints.items())
        raise ValueError(f"Unknown field(s) for {type(cfg).__name__}: {msg}. Known: {sorted(names)}")
    return dataclasses.replace(cfg, **changes)


# Fields that earlier versions wrote and that were removed, with the one value whose behaviour the code keeps:
# checkpoints holding that value still load; any other value is refused (it asked for behaviour that is gone).
REMOVED_FIELDS: dict[str, Any] = {"thread_where_prior_state": False}  # §8.4: the code never threaded it


def config_from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild a config dataclass from ``to_dict`` output (tuples restored), validating names."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    for name, kept in REMOVED_FIELDS.items():
        if name in data and name not in names:
            if data[name] != kept:
                raise ValueError(
                    f"{cls.__name__}.{name}={data[name]!r} is no longer supported (removed; the model always behaves "
                    f"as {name}={kept!r}); retrain the checkpoint with this version"
                )
            data = {k: v for k, v in data.items() if k != name}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {unknown}; the checkpoint was written by another version?")
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return cls(**fixed)


__all__ = ["SQAIRConfig", "replace_checked", "config_from_dict", "field"]
