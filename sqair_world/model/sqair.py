"""SQAIR: propagate -> discover -> merge -> render, per time step (paper Alg. 1, reference §2.7).

Three faces of one model:

- ``forward(x)``: the training/evaluation pass over a sequence ``x: [T, B, C, H, W]`` with K
  particles, returning the IWAE bound and the VIMCO surrogate loss (:class:`SequenceOutput`);
- ``online_step(state, x_t)``: one frame of tracking for the Gym wrapper (no gradient, 1 particle);
- ``imagine(state, H)`` / ``generate(B, T)``: rollouts of the learned priors.

``SQAIRConfig(propagate=False)`` gives MLP-AIR: the same discovery module on every frame with no
propagation and no temporal prior (every frame is treated as a first frame).

Axes: T time, B batch, K particles, R = B*K rows (row = b*K + k), N slots, D = n_what, H = n_hidden.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from sqair_world.model.config import SQAIRConfig
from sqair_world.model.discovery import Discovery
from sqair_world.model.distributions import gaussian_image_log_lik, sample_bernoulli, sample_normal
from sqair_world.model.glimpse import GlimpseDecoder, GlimpseEncoder, make_backbones
from sqair_world.model.grid import GridBackbone, GridDiscovery, frame_targets
from sqair_world.model.objective import effective_sample_size, importance_weighted, iwae_vimco_loss
from sqair_world.model.priors import prior_rollout_loss
from sqair_world.model.propagation import Propagation, prior_presence_summary
from sqair_world.model.spatial import inverse_matrices, where_to_box
from sqair_world.model.subsets import ObjectSubset
from sqair_world.model.types import Imagined, SequenceOutput, Slots, StepOutput, TrackState


def check_frames(x: Tensor, image_shape: tuple[int, int, int], leading: int, what: str = "x") -> None:
    """Clear errors for frames of the wrong shape, dtype or range (expected ``[*leading, C, H, W]`` floats in
    [0, 1])."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    names = {2: "[B, C, H, W]", 3: "[T, B, C, H, W]"}[leading + 1] if leading in (1, 2) else "frames"
    if x.dim() != leading + 3 or tuple(x.shape[-3:]) != tuple(image_shape):
        raise ValueError(
            f"{what} must have shape {names} with (C, H, W) = {tuple(image_shape)} as the model was "
            f"configured; got {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(
            f"{what} must be a float tensor with values in [0, 1], got dtype {x.dtype}; "
            "convert uint8 frames with x.float() / 255"
        )
    # one device sync (this runs at every tracking step); a NaN anywhere makes both NaN
    lo, hi = torch.stack(torch.aminmax(x.detach())).tolist()
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{what} contains NaN or inf")
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(f"{what} values must lie in [0, 1], got [{lo:.3g}, {hi:.3g}]; divide uint8 frames by 255")


def check_actions(actions: Tensor | None, num_actions: int, shape: tuple[int, ...], what: str = "actions") -> None:
    """Clear errors for actions that do not fit the model: ``actions`` int64 of ``shape`` in [0, num_actions)
    for an action-conditioned prior (``SQAIRConfig.num_actions > 0``), None for an unconditional one."""
    if actions is None:
        return
    if num_actions == 0:
        raise ValueError(
            f"{what} given, but this model's propagation prior is not conditioned on actions (num_actions=0); "
            "train one on data with actions (the atari experiment records them) or leave actions out"
        )
    if not isinstance(actions, Tensor) or actions.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{what} must be an integer torch.Tensor, got {getattr(actions, 'dtype', type(actions))}")
    if tuple(actions.shape) != tuple(shape):
        raise ValueError(f"{what} must have shape {tuple(shape)}, got {tuple(actions.shape)}")
    if actions.numel() and (int(actions.min()) < 0 or int(actions.max()) >= num_actions):
        raise ValueError(
            f"{what} must lie in [0, {num_actions}) (the model's action space), got values in "
            f"[{int(actions.min())}, {int(actions.max())}]"
        )


class SQAIR(nn.Module):
    def __init__(self, cfg: SQAIRConfig | None = None) -> None:
        super().__init__()
        cfg = cfg if cfg is not None else SQAIRConfig()
        self.cfg = cfg
        image_encoder, glimpse_body, decoder_body = make_backbones(cfg)
        self.glimpse_encoder = GlimpseEncoder(glimpse_body, cfg)
        self.glimpse_decoder = GlimpseDecoder(decoder_body, cfg)
        self.grid = cfg.discovery == "grid"
        if self.grid:  # the image encoder is the grid's backbone: per-cell proposals, once per frame
            self.image_encoder: nn.Module = GridBackbone(cfg)
            self.discovery: nn.Module = GridDiscovery(cfg, self.glimpse_encoder)
        else:
            self.image_encoder = image_encoder
            self.discovery = Discovery(cfg, self.glimpse_encoder)
        self.propagation = Propagation(cfg, self.glimpse_encoder) if cfg.propagate else None
        # trainable background ("mean image"), set to the training-set mean frame before training (§2.3)
        self.mean_image = nn.Parameter(torch.zeros(cfg.image_shape))

    # ------------------------------------------------------------------ state
    @property
    def device(self) -> torch.device:
        return self.mean_image.device

    def initial_state(self, rows: int, device: torch.device | str | None = None) -> TrackState:
        """Empty slots before the first frame (z_0 = 0, pres = 0, reference §2.6)."""
        cfg, dev = self.cfg, device or self.device
        N, D = cfg.max_objects, cfg.n_what
        dtype = self.mean_image.dtype
        z = Slots(
            torch.zeros(rows, N, D, device=dev, dtype=dtype),
            torch.zeros(rows, N, 4, device=dev, dtype=dtype),
            torch.zeros(rows, N, device=dev, dtype=dtype),
            torch.full((rows, N), -1, device=dev, dtype=torch.long),
        )
        h_t, h_p = self._fresh_hidden(rows, dev)
        return TrackState(
            z,
            h_t,
            h_p,
            torch.zeros(rows, dtype=torch.long, device=dev),
            torch.zeros(rows, dtype=torch.long, device=dev),
        )

    def _fresh_hidden(self, rows: int, device) -> tuple[Tensor, Tensor]:
        N, H = self.cfg.max_objects, self.cfg.n_hidden
        if self.propagation is None:
            z = torch.zeros(rows, N, H, device=device, dtype=self.mean_image.dtype)
            return z, z
        return (
            self.propagation.h_temporal0.to(device).expand(rows, N, H),
            self.propagation.prior.h0.to(device).expand(rows, N, H),
        )

    def reset_rows(self, state: TrackState, done: Tensor) -> TrackState:
        """Clear the rows where ``done [R]`` is True back to the initial state (vector-env autoreset)."""
        fresh = self.initial_state(done.shape[0], done.device)
        pick = lambda new, old: torch.where(done.view(-1, *([1] * (old.dim() - 1))), new, old)
        return TrackState(
            Slots(*(pick(n, o) for n, o in zip(fresh.z, state.z))), *(pick(n, o) for n, o in zip(fresh[1:], state[1:]))
        )

    def set_background(self, image: Tensor, trainable: bool = True) -> None:
        """Initialise the mean image, e.g. to the training-set mean frame ``[C, H, W]``; ``trainable=False``
        freezes it (an exact scene background such as an Atari maze)."""
        if tuple(image.shape) != tuple(self.cfg.image_shape):
            raise ValueError(f"background must have shape {self.cfg.image_shape}, got {tuple(image.shape)}")
        with torch.no_grad():
            self.mean_image.copy_(image)
        self.mean_image.requires_grad_(trainable)

    # ------------------------------------------------------------------ rendering
    def render(self, z: Slots) -> Tensor:
        """Canvas = sum_n pres_n warp^-1(decode(what_n)) + mean_image * soft mask (reference §2.3), or
        + mean_image everywhere with ``SQAIRConfig.background = "full"``.

        ``z: [*, N, ...]`` -> ``[*, C, H, W]``; no occlusion, no clipping (as released).
        """
        cfg = self.cfg
        lead, N = z.pres.shape[:-1], z.pres.shape[-1]
        C, H, W = cfg.image_shape
        M = z.pres[..., 0].numel()
        # eager over enough rows, only the A present objects are decoded and warped (model.subsets); else all M*N
        objs = ObjectSubset(z.pres.reshape(M, N))
        glimpses = self.glimpse_decoder(objs.take(z.what.reshape(M, N, -1))).float()  # [A, C, h, w]
        by, bx = inverse_matrices(objs.take(z.where.reshape(M, N, 4)), (H, W), cfg.glimpse_size)  # [A, H, h], [A, W, w]
        by = by * objs.take(z.pres.reshape(M, N)).view(-1, 1, 1)
        with torch.autocast(glimpses.device.type, enabled=False):  # the canvas and likelihood stay float32
            canvas = self._place(objs, by, bx, glimpses)  # [M, C, H, W]
            if cfg.background == "masked":  # reference: the mean image only shows where objects are written
                cover = self._cover(objs, by, bx)  # [M, H, W]
                canvas = canvas + self.mean_image * torch.sigmoid(-10 + 20 * cover).unsqueeze(1)
            else:  # "full": a scene background (Atari maze) behind additive objects
                canvas = canvas + self.mean_image
        return canvas.view(*lead, C, H, W)

    @torch.no_grad()
    def painted_boxes(self, z: Slots, fraction: float = 0.1) -> Tensor:
        """Boxes around what each object paints, ``[..., N, 4]`` (x_centre, y_centre, width, height as fractions of the
        frame, like :func:`~sqair_world.model.spatial.where_to_box`).

        The where box is the glimpse's extent, and the decoder leaves margins of it dark (people's glimpse boxes are
        about a third wider than their annotated boxes; docs/pedestrians.md), so IoU against tight annotated boxes
        is low even for a box on the right person. Here the box keeps the glimpse rows and columns whose brightest
        channel reaches ``fraction`` of the glimpse's brightest pixel, mapped through the where box. A glimpse that
        paints nothing keeps its where box; absent slots are boxed too (callers mask them)."""
        if not 0 < fraction < 1:
            raise ValueError(f"fraction is a share of the glimpse's brightest pixel in (0, 1), got {fraction}")
        box = where_to_box(z.where.float())
        ink = self.glimpse_decoder(z.what.reshape(-1, z.what.shape[-1])).float().amax(1)  # [rows, h, w]
        ink = ink.view(*z.what.shape[:-1], *ink.shape[-2:]).clamp_min(0)  # [..., N, h, w]
        peak = ink.flatten(-2).amax(-1)[..., None]  # [..., N, 1]
        cols, rows = ink.amax(-2) >= fraction * peak, ink.amax(-1) >= fraction * peak  # [..., N, w], [..., N, h]

        def span(on: Tensor) -> tuple[Tensor, Tensor]:
            """First and one-past-last lit index along the last axis, as fractions of its length."""
            n = on.shape[-1]
            ar = torch.arange(n, device=on.device)
            lo = torch.where(on, ar, n).amin(-1).float()
            return lo / n, (torch.where(on, ar, -1).amax(-1).float() + 1) / n

        (c0, c1), (r0, r1) = span(cols), span(rows)
        x0, y0 = box[..., 0] - box[..., 2] / 2 + box[..., 2] * c0, box[..., 1] - box[..., 3] / 2 + box[..., 3] * r0
        w, h = box[..., 2] * (c1 - c0), box[..., 3] * (r1 - r0)
        tight = torch.stack([x0 + w / 2, y0 + h / 2, w, h], -1)
        return torch.where((peak > 0) & (c1 > c0).unsqueeze(-1), tight, box)

    @staticmethod
    def _place(objs: ObjectSubset, by: Tensor, bx: Tensor, glimpses: Tensor) -> Tensor:
        """sum_n B_y,n G_n B_x,n^T per row: the ``glimpses [A, C, h, w]`` written with the inverse warp matrices
        ``by [A, H, h]`` (presence included) and ``bx [A, W, w]`` of the computed pairs of ``objs`` ->
        ``[M, C, H, W]``."""
        C, w, H, W = glimpses.shape[1], glimpses.shape[-1], by.shape[1], bx.shape[1]
        if objs.idx is None:  # every pair: one product [B_y,1 G_1 .. B_y,N G_N] (H x N*w) @ [B_x,1; ..; B_x,N]^T
            N = objs.slots
            rows = (by.unsqueeze(1) @ glimpses).view(-1, N, C, H, w)  # [M, N, C, H, w]
            rows = rows.permute(0, 2, 3, 1, 4).reshape(-1, C, H, N * w)
            return rows @ bx.view(-1, N, W, w).transpose(-1, -2).reshape(-1, 1, N * w, W)
        # a subset (most slots absent): an image per present object, added to its row (fewer, smaller products)
        return objs.sum_slots(by.unsqueeze(1) @ glimpses @ bx.transpose(-1, -2).unsqueeze(1))

    @staticmethod
    def _cover(objs: ObjectSubset, by: Tensor, bx: Tensor) -> Tensor:
        """sum_n pres_n warp^-1(ones)_n per row, ``[M, H, W]``: warp^-1(ones) is the outer product of the row sums of
        ``by [A, H, h]`` (presence included) and ``bx [A, W, w]``."""
        ry, rx = by.sum(-1), bx.sum(-1)  # [A, H], [A, W]
        if objs.idx is None:  # every pair: one product [M, H, N] @ [M, N, W]
            N = objs.slots
            return ry.view(-1, N, ry.shape[-1]).transpose(1, 2) @ rx.view(-1, N, rx.shape[-1])
        return objs.sum_slots(ry.unsqueeze(-1) * rx.unsqueeze(-2))  # a subset: an outer product per present object

    # ------------------------------------------------------------------ one time step
    def step(
        self,
        state: TrackState,
        image: Tensor,
        image_features: Tensor | None,
        sample: bool = True,
        first: bool = False,
        action: Tensor | None = None,
    ) -> StepOutput:
        """Infer z_t for frame ``image [B, C, H, W]`` from ``state`` (rows R = B*K) and score it.

        :param image_features: ``[B, H]`` image encoding of this frame (shared by particles); None: encode it here
            (online tracking, so that the encoder runs inside the compiled step)
        :param first: every row is at its first frame (skips the no-op propagation)
        :param action: ``[R]`` int64 action taken after the previous frame (action-conditioned prior), or None
        """
        cfg = self.cfg
        R, N = state.z.pres.shape
        B = image.shape[0]
        K = R // B
        seen = self.foreground(image)  # what the glimpse encoders read
        if image_features is None:
            image_features = self.image_encoder(seen)
        feats = image_features.repeat_interleave(K, 0)  # [R, H]
        zero = feats.new_zeros(R)
        blobs = None  # the self-supervised targets (model.grid), once per frame for discovery and propagation
        if self.grid and cfg.grid_aux_weight > 0 and torch.is_grad_enabled():
            blobs = frame_targets(seen, cfg)
        if self.propagation is not None and not first:
            prop = self.propagation(seen, state.z, state.h_temporal, state.h_prior, sample, action, blobs)
            prop_z = Slots(prop.what, prop.where, prop.pres, torch.where(prop.pres > 0, state.z.id, -1))
            e = prior_presence_summary(prop.prior_pres_logit, N)
            t_pos = (state.t > 0).to(feats.dtype)
            h_temporal, h_prior = prop.h_temporal, prop.h_prior
            log_q, log_p, log_q_pres = prop.log_q, prop.log_p, prop.log_q_pres
            prop_aux = prop.aux_loss
        else:  # nothing to propagate: all slots absent; AIR is always here
            prop_z = state.z._replace(pres=torch.zeros_like(state.z.pres), id=torch.full_like(state.z.id, -1))
            e = feats.new_full((R, 1), -0.5)  # every slot absent: sigmoid(-88) - 0.5
            t_pos = (state.t > 0).to(feats.dtype) if self.propagation is not None else zero
            h_temporal, h_prior = state.h_temporal, state.h_prior
            log_q, log_p, log_q_pres = zero, zero, zero
            prop_aux = None
        n_prop = prop_z.pres.sum(-1)
        if self.grid:  # parallel proposals into the free slots (model.grid)
            disc = self.discovery(seen, feats, prop_z, t_pos, (N - n_prop).long(), sample, blobs)
        else:
            c = self.discovery.condition(prop_z)
            max_allowed = (N - n_prop).long() if cfg.enforce_discovery_cap else None
            disc = self.discovery(seen, feats, c, e, t_pos, max_allowed, sample)

        new_state, is_new = self._merge(
            state, prop_z, Slots(disc.what, disc.where, disc.pres, torch.full_like(prop_z.id, -1)), h_temporal, h_prior
        )
        z = new_state.z

        canvas = self.render(z)  # [R, C, H, W]
        log_lik = gaussian_image_log_lik(image.unsqueeze(1), canvas.view(B, K, *canvas.shape[1:]), cfg.output_std).view(
            R
        )
        return StepOutput(
            new_state,
            canvas,
            log_lik,
            log_q + disc.log_q,
            log_p + disc.log_p,
            log_q_pres + disc.log_q_pres,
            n_prop,
            is_new.sum(-1).to(feats.dtype),
            (disc.aux_loss if prop_aux is None else disc.aux_loss + cfg.grid_continuity_scale * prop_aux)
            if self.grid
            else None,
        )

    def _merge(
        self, state: TrackState, prop: Slots, disc: Slots, h_temporal: Tensor, h_prior: Tensor
    ) -> tuple[TrackState, Tensor]:
        """Merge (reference §2.6): propagated then discovered slots, present first (stable), truncated to N.

        Discovered objects get fresh learned temporal/prior states and new identities ``next_id + 0, 1, ..``.
        Returns the state for the next frame and ``is_new [R, N]`` (slots holding a newly discovered object).
        """
        R, N = prop.pres.shape
        h_t0, h_p0 = self._fresh_hidden(R, prop.pres.device)
        order = torch.argsort(1 - torch.cat([prop.pres, disc.pres], 1), dim=1, stable=True)[:, :N]  # [R, N] of 2N

        def take(a: Tensor, b: Tensor) -> Tensor:
            idx = order.view(R, N, *([1] * (a.dim() - 2))).expand(R, N, *a.shape[2:])
            return torch.cat([a, b], 1).gather(1, idx)

        pres = take(prop.pres, disc.pres)
        is_new = (order >= N) & (pres > 0)
        ids = torch.where(is_new, state.next_id.unsqueeze(-1) + is_new.long().cumsum(-1) - 1, take(prop.id, disc.id))
        z = Slots(take(prop.what, disc.what), take(prop.where, disc.where), pres, torch.where(pres > 0, ids, -1))
        return TrackState(
            z, take(h_temporal, h_t0), take(h_prior, h_p0), state.next_id + is_new.sum(-1), state.t + 1
        ), is_new

    # ------------------------------------------------------------------ sequences
    def foreground(self, x: Tensor) -> Tensor:
        """What the encoders see: the frame, or with ``background="full"`` the frame minus the background, the
        same residual the objects are added to explain (``[..., C, H, W]``, any leading axes)."""
        return x - self.mean_image if self.cfg.background == "full" else x

    def encode_images(self, x: Tensor) -> Tensor:
        """Image encoder over all frames at once: ``[T, B, C, H, W]`` -> ``[T, B, H]``."""
        return self.image_encoder(self.foreground(x))

    def forward(
        self, x: Tensor, k: int | None = None, sample: bool = True, actions: Tensor | None = None
    ) -> SequenceOutput:
        """IWAE bound and VIMCO surrogate for ``x: [T, B, C, H, W]`` floats in [0, 1] with ``k`` particles.

        ``actions [T, B]`` (int64; ``actions[t]`` is taken after frame t, the last one unused) for an
        action-conditioned prior (``SQAIRConfig.num_actions > 0``; None scores it with the all-zero "unknown action"
        code, as reconstructions of action-free frames do; the trainer always passes them); refused by an
        unconditional one."""
        check_frames(x, self.cfg.image_shape, 2)
        T, B = x.shape[:2]
        check_actions(actions, self.cfg.num_actions, (T, B))
        K = k or self.cfg.k_particles
        feats = self.encode_images(x)  # [T, B, H], once per frame (§8.10)
        state = self.initial_state(B * K, x.device)
        steps = []
        # acts[t]: the action that led to frame t, per row (None at t = 0 or without actions)
        acts = [None if actions is None or t == 0 else actions[t - 1].repeat_interleave(K, 0) for t in range(T)]
        for t in range(T):
            out = self.step(state, x[t], feats[t], sample, first=(t == 0 or self.propagation is None), action=acts[t])
            state = out.state if self.propagation is not None else self._air_state(out.state)
            steps.append(out)
        stack = lambda name: torch.stack([getattr(s, name) for s in steps]).view(T, B, K)
        log_lik, log_q, log_p = stack("log_lik"), stack("log_q"), stack("log_p")
        log_w = (log_lik + log_p - log_q).sum(0)  # [B, K]
        log_q_discrete = stack("log_q_pres").sum(0)
        objective = iwae_vimco_loss(log_w, log_q_discrete, T, self.cfg.vimco_signal)
        loss = objective.loss
        if self.grid and self.cfg.grid_aux_weight > 0:  # self-supervised targets (model.grid), per frame and row
            loss = loss + self.cfg.grid_aux_weight * stack("aux_loss").mean()
        if self.propagation is not None and self.cfg.prior_rollout_steps > 1 and self.training:
            states = [s.state for s in steps]
            rollout = prior_rollout_loss(self.propagation.prior, states, acts, self.cfg.prior_rollout_steps)
            loss = loss + self.cfg.prior_rollout_weight * rollout
        z = Slots(
            *(
                torch.stack([s.state.z[i] for s in steps]).view(T, B, K, *steps[0].state.z[i].shape[1:])
                for i in range(4)
            )
        )
        canvas = torch.stack([s.canvas for s in steps]).view(T, B, K, *x.shape[2:])
        return SequenceOutput(
            loss=loss,
            iwae=objective.iwae,
            log_weights=log_w,
            rec=importance_weighted(log_lik.sum(0), log_w),
            kl=importance_weighted((log_q - log_p).sum(0), log_w),
            ess=effective_sample_size(log_w),
            canvas=canvas,
            slot_features=torch.cat([z.what, z.where], -1),
            slot_mask=z.pres,
            latents=z,
            num_prop=stack("num_prop"),
            num_disc=stack("num_disc"),
            log_q_discrete=log_q_discrete,
        )

    def _air_state(self, state: TrackState) -> TrackState:
        """AIR keeps no objects between frames, but keeps counting frames and identities."""
        fresh = self.initial_state(state.t.shape[0], state.t.device)
        return fresh._replace(next_id=state.next_id, t=state.t)

    # ------------------------------------------------------------------ online tracking
    @torch.no_grad()
    def online_step(
        self, state: TrackState | None, x_t: Tensor, sample: bool = False, action: Tensor | None = None
    ) -> StepOutput:
        """Track one frame ``x_t: [B, C, H, W]`` with one particle per row; ``state`` None starts afresh.

        Identities persist through propagation; discovery assigns new ones. ``sample=False`` uses
        posterior means and presence p > 0.5. The per-step bound is ``log_lik + log_p - log_q``; an
        action-conditioned prior scores it with ``action [B]`` (the action that led to ``x_t``; None: unknown).
        """
        check_frames(x_t, self.cfg.image_shape, 1, "x_t")
        B = x_t.shape[0]
        if state is None:
            state = self.initial_state(B, x_t.device)
        elif state.z.pres.shape[0] != B:
            raise ValueError(f"state has {state.z.pres.shape[0]} rows but x_t has batch {B}")
        check_actions(action, self.cfg.num_actions, (B,), "action")
        first = self.propagation is None or not bool((state.t > 0).any())
        # AIR keeps this frame's objects in the returned state (callers read them); the next step ignores them
        return self.step(state, x_t, None, sample, first, action)

    # ------------------------------------------------------------------ imagination
    @torch.no_grad()
    def _prior_step(self, state: TrackState, action: Tensor | None = None, mean: bool = False) -> TrackState:
        """Sample z_t ~ p(z_t | z_{t-1}, a_{t-1}): propagation prior, then discovery prior, then merge.

        ``mean``: the propagated objects take the prior's means and stay while its presence probability is over 0.5
        (a point forecast of the tracked objects); new objects are still sampled from the discovery prior."""
        cfg = self.cfg
        R, N = state.z.pres.shape
        z_prev = state.z
        if self.propagation is not None and bool((state.t > 0).any()):
            pp = self.propagation.prior(z_prev.what, z_prev.where, z_prev.pres, state.h_prior, action)
            pres = sample_bernoulli(pp.pres_logit, not mean) * z_prev.pres
            prop = Slots(
                sample_normal(pp.what_mu, pp.what_std, not mean),
                sample_normal(pp.where_mu, pp.where_std, not mean),
                pres,
                torch.where(pres > 0, z_prev.id, -1),
            )
            e = prior_presence_summary(pp.pres_logit, N)
            h_temporal, h_prior = state.h_temporal, pp.h
        else:
            prop = z_prev._replace(pres=torch.zeros_like(z_prev.pres), id=torch.full_like(z_prev.id, -1))
            e = z_prev.what.new_full((R, 1), -0.5)
            h_temporal, h_prior = state.h_temporal, state.h_prior
        n_prop = prop.pres.sum(-1)
        t_pos = (state.t > 0).to(e.dtype) if self.propagation is not None else torch.zeros_like(e[:, 0])
        if self.grid:
            disc = self.discovery.sample_prior(t_pos, (N - n_prop).long())
            return self._merge(state, prop, disc, h_temporal, h_prior)[0]
        c = self.discovery.condition(prop)
        max_allowed = (N - n_prop).long() if cfg.enforce_discovery_cap else None
        log_pn = self.discovery.prior.count_log_probs(e, t_pos, max_allowed)
        n_new = torch.multinomial(log_pn.exp(), 1).squeeze(-1)  # [R]
        slot = torch.arange(N, device=e.device)
        disc_pres = (slot < n_new.unsqueeze(-1)).to(e.dtype)
        disc = Slots(
            torch.randn(R, N, cfg.n_what, device=e.device, dtype=e.dtype),
            self.discovery.prior.sample_where(c, e, N),
            disc_pres,
            torch.full_like(z_prev.id, -1),
        )
        # merge like inference; the temporal (posterior) state is irrelevant to the prior and kept as is
        return self._merge(state, prop, disc, h_temporal, h_prior)[0]

    @torch.no_grad()
    def imagine(
        self,
        state: TrackState,
        horizon: int,
        num_samples: int = 1,
        render: bool = False,
        actions: Tensor | None = None,
        mean: bool = False,
    ) -> Imagined:
        """Roll the learned priors ``horizon`` steps from ``state`` (rows R), ``num_samples`` futures per row.

        ``mean``: tracked objects follow the propagation prior's means (presence p > 0.5) instead of samples, a
        point forecast (docs/imagination.md); objects that appear are still sampled.

        ``actions``: for an action-conditioned prior, the actions taken from now on, int64 ``[H, R]`` (the same
        for every sample) or ``[H, R, S]``; None samples them uniformly, per sample. Returns ``z: [H, R, S, N, ...]``
        and, if ``render``, ``frames: [H, R, S, C, H_img, W_img]``.
        """
        if horizon < 1 or num_samples < 1:
            raise ValueError(f"horizon and num_samples must be >= 1, got {horizon} and {num_samples}")
        R = state.z.pres.shape[0]
        S, A = num_samples, self.cfg.num_actions
        if actions is not None and actions.dim() == 2:
            check_actions(actions, A, (horizon, R))
            actions = actions.unsqueeze(-1).expand(horizon, R, S)
        check_actions(actions, A, (horizon, R, S))
        if actions is None and A > 0:  # "any action": a uniform policy, as the random-policy training data
            actions = torch.randint(A, (horizon, R, S), device=state.t.device)
        rep = lambda a: a.repeat_interleave(S, 0)
        cur = TrackState(Slots(*(rep(a) for a in state.z)), *(rep(a) for a in state[1:]))
        zs, frames = [], []
        for h in range(horizon):
            cur = self._prior_step(cur, None if actions is None else actions[h].reshape(R * S), mean)
            zs.append(cur.z)
            if render:
                frames.append(self.render(cur.z))
        z = Slots(*(torch.stack([s[i] for s in zs]).view(horizon, R, S, *zs[0][i].shape[1:]) for i in range(4)))
        fr = torch.stack(frames).view(horizon, R, S, *self.cfg.image_shape) if render else None
        return Imagined(z, fr)

    @torch.no_grad()
    def generate(self, batch: int, length: int) -> Imagined:
        """Sequences sampled from the prior: ``z: [T, B, 1, N, ...]``, ``frames: [T, B, 1, C, H, W]``."""
        return self.imagine(self.initial_state(batch), length, 1, render=True)

    @torch.no_grad()
    def condition_and_imagine(self, x: Tensor, horizon: int, num_samples: int = 1) -> tuple[StepOutput, Imagined]:
        """Infer on ``x: [n, B, C, H, W]`` (posterior means), then imagine ``horizon`` frames (paper Fig. 6)."""
        check_frames(x, self.cfg.image_shape, 2)
        state, out = None, None
        for t in range(x.shape[0]):
            out = self.online_step(state, x[t])
            state = out.state
        return out, self.imagine(state, horizon, num_samples, render=True)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
