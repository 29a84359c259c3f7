"""VRNN baseline (Chung et al., 2015), MLP and CONV, with the same IWAE objective and outputs as SQAIR.

One step, with phi_x / phi_z the feature extractors of Chung et al. (their eq. 5-9)::

    p(z_t | h_{t-1})          = N(prior(h_{t-1}))
    q(z_t | x_t, h_{t-1})     = N(posterior([phi_x(x_t), h_{t-1}]))
    p(x_t | z_t, h_{t-1})     = N(decoder([phi_z(z_t), h_{t-1}]) + mean_image, 0.3^2)
    h_t                       = GRU([phi_x(x_t), phi_z(z_t)], h_{t-1})

The latent has 165 = 3 * (50 + 4 + 1) dimensions, SQAIR's maximum, and the width is chosen so the
parameter count matches the corresponding SQAIR (paper §4.1, reference §7). There are no discrete
latents, so the loss is the plain IWAE bound and the log-likelihoods compare with SQAIR's.

Axes: T time, B batch, K particles, R = B*K rows (row = b*K + k), C/H/W image, Z = n_latent.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor, nn

from sqair_world.model.config import replace_checked
from sqair_world.model.conv import ConvEncoder, SubpixelDecoder
from sqair_world.model.distributions import gaussian_image_log_lik, normal_log_prob, sample_normal
from sqair_world.model.nn import MLP, GRUCell, softplus_std
from sqair_world.model.objective import effective_sample_size, importance_weighted, iwae_vimco_loss
from sqair_world.model.sqair import check_frames
from sqair_world.model.types import SequenceOutput

#: n_hidden matching SQAIR's parameter count at the defaults (50x50 frames, Z = 165); see ``VRNNConfig.hidden``.
MATCHED_HIDDEN = {"mlp": 290, "conv": 285}


@dataclass(frozen=True)
class VRNNConfig:
    """Hyper-parameters of MLP-VRNN and CONV-VRNN."""

    image_shape: tuple[int, int, int] = (1, 50, 50)
    """(C, H, W) of the frames."""
    n_latent: int = 165
    """Z, size of z_t: 3 * (50 + 4 + 1), SQAIR's maximum (N slots of what + where + pres)."""
    n_hidden: int = 0
    """Width of the GRU and of every MLP; 0 picks the width matching SQAIR's parameter count (``hidden``)."""
    encoder: Literal["mlp", "conv"] = "mlp"
    """MLP frame encoder and decoder, or ConvEncoder and SubpixelDecoder (CONV-VRNN)."""
    conv_channels: int = 32
    """Base width of the convolutional encoder/decoder (CONV-VRNN only)."""
    output_std: float = 0.3
    """Fixed std of the Gaussian likelihood, as SQAIR's (reference §1)."""
    k_particles: int = 5
    """K, importance samples per sequence for the IWAE bound."""
    min_std: float = 0.01
    """Floor added to the softplus std of the prior and posterior."""

    def __post_init__(self) -> None:
        problems = []
        if len(self.image_shape) != 3 or min(self.image_shape) < 1:
            problems.append(f"image_shape must be positive (C, H, W), got {self.image_shape}")
        for name in ("n_latent", "k_particles", "conv_channels"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_hidden < 0:
            problems.append(f"n_hidden must be >= 1, or 0 for the parameter-matched default, got {self.n_hidden}")
        if self.encoder not in ("mlp", "conv"):
            problems.append(f"encoder must be 'mlp' or 'conv', got {self.encoder!r}")
        if self.output_std <= 0 or self.min_std < 0:
            problems.append(f"output_std must be > 0 and min_std >= 0, got {self.output_std}, {self.min_std}")
        if problems:
            raise ValueError("Invalid VRNNConfig:\n  " + "\n  ".join(problems))

    @property
    def hidden(self) -> int:
        """n_hidden, or the matched default: 290 (MLP-VRNN 2,959,310 parameters vs MLP-SQAIR 2,951,010) and
        285 (CONV-VRNN 3,065,289 vs CONV-SQAIR 3,046,306) at 50x50 (docs/baselines.md)."""
        return self.n_hidden or MATCHED_HIDDEN[self.encoder]

    @property
    def max_objects(self) -> int:
        """One "slot": the whole z_t is the per-frame representation (the slot wrapper reads this)."""
        return 1

    def replace(self, **changes: Any) -> VRNNConfig:
        """A copy with ``changes`` applied (validated); unknown names raise a clear error."""
        return replace_checked(self, changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class VRNNStep(NamedTuple):
    """One time step for R rows."""

    h: Tensor  #: [R, H] GRU state after the step
    z: Tensor  #: [R, Z] sampled (or mean) latent
    canvas: Tensor  #: [R, C, H, W] mean of p(x_t | z_t, h_{t-1})
    log_q: Tensor  #: [R] log q(z_t | x_t, h_{t-1})
    log_p: Tensor  #: [R] log p(z_t | h_{t-1})


class VRNN(nn.Module):
    """Variational RNN with K importance particles per sequence; returns :class:`SequenceOutput`."""

    def __init__(self, cfg: VRNNConfig = VRNNConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        H, Z = cfg.hidden, cfg.n_latent
        C, Hi, Wi = cfg.image_shape
        if cfg.encoder == "conv":
            ch = cfg.conv_channels
            self.phi_x = ConvEncoder(cfg.image_shape, [ch, 2 * ch, 2 * ch], H)
            # upscale 5: a 50x50 frame is a 10x10 map shuffled x5 (sizes that do not divide are centre-cropped)
            self.decoder = SubpixelDecoder(2 * H, cfg.image_shape, ch, upscale=5, n_hidden=H)
        else:
            self.phi_x = nn.Sequential(nn.Flatten(-3), MLP(C * Hi * Wi, [H]))
            self.decoder = nn.Sequential(MLP(2 * H, [H, H], C * Hi * Wi), nn.Unflatten(-1, cfg.image_shape))
        self.phi_z = MLP(Z, [H])
        self.prior = MLP(H, [H], 2 * Z)
        self.posterior = MLP(2 * H, [H], 2 * Z)
        self.rnn = GRUCell(2 * H, H)
        self.h0 = nn.Parameter(torch.zeros(H))
        # like SQAIR's background: the decoder only models the difference to a (trainable) mean frame
        self.mean_image = nn.Parameter(torch.zeros(cfg.image_shape))

    def set_background(self, image: Tensor, trainable: bool = True) -> None:
        """Initialise the mean image, e.g. to the training-set mean frame ``[C, H, W]``; ``trainable=False``
        freezes it (the same contract as :meth:`SQAIR.set_background`)."""
        if tuple(image.shape) != tuple(self.cfg.image_shape):
            raise ValueError(f"background must have shape {self.cfg.image_shape}, got {tuple(image.shape)}")
        with torch.no_grad():
            self.mean_image.copy_(image)
        self.mean_image.requires_grad_(trainable)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _gaussian(self, net: nn.Module, inp: Tensor) -> tuple[Tensor, Tensor]:
        """``[R, *] -> (mu [R, Z], std [R, Z])``."""
        mu, raw = net(inp).chunk(2, -1)
        return mu, softplus_std(raw, self.cfg.min_std)

    def _render(self, fz: Tensor, h: Tensor) -> Tensor:
        """Mean of p(x_t | z_t, h_{t-1}): ``[R, H], [R, H] -> [R, C, H, W]``."""
        return self.decoder(torch.cat([fz, h], -1)) + self.mean_image

    def step(self, feat: Tensor, h: Tensor, sample: bool = True) -> VRNNStep:
        """One inference step: ``feat = phi_x(x_t) [R, H]``, ``h = h_{t-1} [R, H]``."""
        p_mu, p_std = self._gaussian(self.prior, h)
        q_mu, q_std = self._gaussian(self.posterior, torch.cat([feat, h], -1))
        z = sample_normal(q_mu, q_std, sample)
        fz = self.phi_z(z)
        return VRNNStep(
            h=self.rnn(torch.cat([feat, fz], -1), h),
            z=z,
            canvas=self._render(fz, h),
            log_q=normal_log_prob(z, q_mu, q_std).sum(-1),
            log_p=normal_log_prob(z, p_mu, p_std).sum(-1),
        )

    def forward(self, x: Tensor, k: int | None = None, sample: bool = True) -> SequenceOutput:
        """IWAE bound of ``x: [T, B, C, H, W]`` (floats in [0, 1]) with ``k`` particles (default
        ``cfg.k_particles``); ``sample=False`` uses posterior means. See :class:`SequenceOutput`."""
        check_frames(x, self.cfg.image_shape, 2)
        K = self.cfg.k_particles if k is None else k
        if not isinstance(K, int) or K < 1:
            raise ValueError(f"k (particles) must be a positive int, got {k!r}")
        T, B = x.shape[:2]
        R = B * K
        feats = self.phi_x(x).repeat_interleave(K, 1)  # [T, R, H]: each frame encoded once, row b*K + k
        h = self.h0.expand(R, -1)
        log_lik, log_q, log_p, canvases, zs = [], [], [], [], []
        for t in range(T):
            s = self.step(feats[t], h, sample)
            h = s.h
            # [B, 1, C, H, W] vs [B, K, C, H, W] -> [B, K]: the frame is broadcast over particles, not copied
            log_lik.append(
                gaussian_image_log_lik(x[t].unsqueeze(1), s.canvas.view(B, K, *x.shape[2:]), self.cfg.output_std)
            )
            log_q.append(s.log_q.view(B, K))
            log_p.append(s.log_p.view(B, K))
            canvases.append(s.canvas)
            zs.append(s.z)
        ll, lq, lp = (torch.stack(a) for a in (log_lik, log_q, log_p))  # [T, B, K]
        log_w = (ll + lp - lq).sum(0)  # [B, K]
        objective = iwae_vimco_loss(log_w, None, T)  # no discrete latents: the IWAE bound alone
        z = torch.stack(zs).view(T, B, K, 1, -1)  # the whole latent as one slot for the addition classifier
        return SequenceOutput(
            loss=objective.loss,
            iwae=objective.iwae,
            log_weights=log_w,
            rec=importance_weighted(ll.sum(0), log_w),
            kl=importance_weighted((lq - lp).sum(0), log_w),
            ess=effective_sample_size(log_w),
            canvas=torch.stack(canvases).view(T, B, K, *x.shape[2:]),
            slot_features=z,
            slot_mask=z.new_ones(T, B, K, 1),
        )

    @torch.no_grad()
    def generate(self, batch: int, length: int) -> Tensor:
        """Sequences sampled from the prior: ``[T, B, C, H, W]`` means of p(x_t | z_t, h_{t-1}).

        The recurrence needs x_t; the generated mean frame (clamped to [0, 1]) stands in for it.
        """
        if batch < 1 or length < 1:
            raise ValueError(f"generate needs batch >= 1 and length >= 1, got {batch}, {length}")
        h = self.h0.expand(batch, -1)
        frames = []
        for _ in range(length):
            mu, std = self._gaussian(self.prior, h)
            fz = self.phi_z(mu + std * torch.randn_like(mu))
            canvas = self._render(fz, h)
            frames.append(canvas)
            h = self.rnn(torch.cat([self.phi_x(canvas.clamp(0, 1)), fz], -1), h)
        return torch.stack(frames)


__all__ = ["VRNN", "VRNNConfig", "VRNNStep", "MATCHED_HIDDEN"]
