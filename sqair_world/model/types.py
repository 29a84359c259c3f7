"""Typed containers passed between the parts of the model.

Axis legend, used in every shape docstring of this package:

    T time (frames), B batch (sequences), K particles (importance samples),
    N object slots, D size of z_what, C/H/W image channels/height/width,
    h/w glimpse height/width, R = B*K flattened rows (batch-major: row = b*K + k).

``z_where`` is kept as the 4 *unconstrained logits* (sx, sy, tx, ty) of the reference (§2.2):
scale = sigmoid(logit) as a fraction of the image side, shift = tanh(logit) = glimpse centre in
[-1, 1] image coordinates. :func:`sqair_world.model.spatial.where_to_box` turns them into boxes.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class Slots(NamedTuple):
    """Object latents for a set of slots; any leading axes, e.g. ``[R, N, ...]`` or ``[T, B, K, N, ...]``."""

    what: Tensor  #: [..., N, D] appearance code
    where: Tensor  #: [..., N, 4] (sx, sy, tx, ty) logits
    pres: Tensor  #: [..., N] presence in {0., 1.}; present slots are packed first
    id: Tensor  #: [..., N] int64 track identity, -1 for absent slots


class TrackState(NamedTuple):
    """Recurrent state carried from frame t-1 to frame t (paper Alg. 1); rows are R = B*K.

    This is all the online tracker (``SQAIR.online_step``) needs: identities persist through
    propagation and discovery assigns fresh ones from ``next_id``.
    """

    z: Slots  #: [R, N, ...] latents of frame t-1
    h_temporal: Tensor  #: [R, N, H] per-object temporal GRU state (propagation posterior)
    h_prior: Tensor  #: [R, N, H] per-object propagation-prior GRU state
    next_id: Tensor  #: [R] int64, the identity the next discovered object receives
    t: Tensor  #: [R] int64, number of frames seen so far (0 before the first frame)


class StepOutput(NamedTuple):
    """What one time step of inference produces, rows R = B*K."""

    state: TrackState  #: state after frame t (merged, packed, truncated slots)
    canvas: Tensor  #: [R, C, H, W] mean of p(x_t | z_t)
    log_lik: Tensor  #: [R] log p(x_t | z_t)
    log_q: Tensor  #: [R] log q(z_t | ...) of every sampled latent (discrete and continuous)
    log_p: Tensor  #: [R] log p(z_t | z_{t-1}) under the learned priors
    log_q_pres: Tensor  #: [R] log q of the discrete presence variables only (VIMCO's score term)
    num_prop: Tensor  #: [R] objects kept present by propagation
    num_disc: Tensor  #: [R] objects newly discovered (after truncation to N)
    aux_loss: Tensor | None = None  #: [R] grid discovery's self-supervised loss (model.grid), else None


class SequenceOutput(NamedTuple):
    """Result of a model's forward pass over a sequence ``x: [T, B, C, H, W]`` with K particles.

    Every model in :mod:`sqair_world.model.registry` returns this, so training, evaluation and the
    addition classifier treat SQAIR, AIR and VRNN alike. Sums over time are per sequence.
    """

    loss: Tensor  #: [] surrogate to minimise: -(IWAE + VIMCO score term) / T, mean over B
    iwae: Tensor  #: [B] IWAE bound on log p(x_{1:T})
    log_weights: Tensor  #: [B, K] log w = sum_t [log p(x_t|z_t) + log p(z_t) - log q(z_t)]
    rec: Tensor  #: [B] importance-weighted sum_t log p(x_t | z_t)
    kl: Tensor  #: [B] importance-weighted sum_t (log q - log p)
    ess: Tensor  #: [B] effective sample size of the normalised weights, in [1, K]
    canvas: Tensor  #: [T, B, K, C, H, W] reconstruction means
    slot_features: Tensor  #: [T, B, K, N, F] per-frame object representation (addition classifier)
    slot_mask: Tensor  #: [T, B, K, N] which rows of slot_features are present (1.) or padding (0.)
    latents: Slots | None = None  #: [T, B, K, N, ...] object latents (None for VRNN)
    num_prop: Tensor | None = None  #: [T, B, K] propagated objects per frame
    num_disc: Tensor | None = None  #: [T, B, K] discovered objects per frame
    log_q_discrete: Tensor | None = None  #: [B, K] sum_t log q of the presences (VIMCO's score term), if any

    @property
    def count(self) -> Tensor | None:
        """[T, B, K] number of present objects per frame, or None for models without objects."""
        return None if self.latents is None else self.latents.pres.sum(-1)

    @property
    def weights(self) -> Tensor:
        """[B, K] normalised importance weights."""
        return self.log_weights.softmax(-1)


class Imagined(NamedTuple):
    """Rollout of the learned priors from a state: ``S`` samples per row, horizon ``H``."""

    z: Slots  #: [H, R, S, N, ...]
    frames: Tensor | None  #: [H, R, S, C, H_img, W_img] canvases if requested, else None
