"""VRNN baseline (Chung et al., 2015), MLP and CONV, with the same IWAE objective and outputs as SQAIR.

    h_t = GRU([phi_x(x_t), phi_z(z_t)], h_{t-1})
    p(z_t | h_{t-1}) = N(prior(h_{t-1})),  q(z_t | x_t, h_{t-1}) = N(enc([phi_x(x_t), h_{t-1}]))
    p(x_t | z_t, h_{t-1}) = N(dec([phi_z(z_t), h_{t-1}]) + mean_image, 0.3^2)

The latent has 165 = 3 * (50 + 4 + 1) dimensions, SQAIR's maximum (paper §4.1); ``n_hidden`` is chosen
so the parameter count matches the corresponding SQAIR (MLP: 2.95M, CONV: 3.05M). There are no
discrete latents, so the loss is the plain IWAE bound.

Axes: T time, B batch, K particles, R = B*K rows (row = b*K + k).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from sqair_world.config import replace_checked
from sqair_world.conv import ConvEncoder, SubpixelDecoder
from sqair_world.distributions import gaussian_image_log_lik, normal_log_prob, sample_normal
from sqair_world.model import check_frames
from sqair_world.nn import GRUCell, MLP, softplus_std
from sqair_world.objective import effective_sample_size, importance_weighted, iwae_vimco_loss
from sqair_world.types import Imagined, SequenceOutput


@dataclass(frozen=True)
class VRNNConfig:
    image_shape: tuple[int, int, int] = (1, 50, 50)
    """(C, H, W) of the frames."""
    n_latent: int = 165
    """Size of z_t: 3 * (50 + 4 + 1), SQAIR's maximum."""
    n_hidden: int = 0
    """Width of the RNN and MLPs; 0 picks the width that matches SQAIR's parameter count (see ``hidden``)."""
    encoder: Literal["mlp", "conv"] = "mlp"
    """MLP or convolutional frame encoder / subpixel decoder."""
    conv_channels: int = 32
    output_std: float = 0.3
    """Fixed std of the Gaussian likelihood."""
    k_particles: int = 5
    min_std: float = 0.01

    def __post_init__(self) -> None:
        if self.encoder not in ("mlp", "conv"):
            raise ValueError(f"encoder must be 'mlp' or 'conv', got {self.encoder!r}")
        if min(self.image_shape) < 1 or self.n_latent < 1 or self.k_particles < 1 or self.n_hidden < 0:
            raise ValueError(f"invalid VRNNConfig sizes: {self}")

    @property
    def hidden(self) -> int:
        """n_hidden, or the matched default: 290 (MLP-VRNN 2.96M parameters vs MLP-SQAIR 2.95M) and 285
        (CONV-VRNN 3.07M vs CONV-SQAIR 3.05M) at 50x50."""
        return self.n_hidden or (290 if self.encoder == "mlp" else 285)

    @property
    def max_objects(self) -> int:
        return 1

    def replace(self, **changes: Any) -> "VRNNConfig":
        return replace_checked(self, changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class VRNN(nn.Module):
    def __init__(self, cfg: VRNNConfig = VRNNConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        H, Z = cfg.hidden, cfg.n_latent
        C, Hi, Wi = cfg.image_shape
        if cfg.encoder == "conv":
            self.phi_x = ConvEncoder(cfg.image_shape, [cfg.conv_channels, 2 * cfg.conv_channels, 2 * cfg.conv_channels], H)
            self.decoder = SubpixelDecoder(2 * H, cfg.image_shape, cfg.conv_channels, upscale=5, n_hidden=H)
        else:
            self.phi_x = nn.Sequential(nn.Flatten(-3), MLP(C * Hi * Wi, [H]))
            self.decoder = nn.Sequential(MLP(2 * H, [H, H], C * Hi * Wi), nn.Unflatten(-1, cfg.image_shape))
        self.phi_z = MLP(Z, [H])
        self.prior = MLP(H, [H], 2 * Z)
        self.posterior = MLP(2 * H, [H], 2 * Z)
        self.rnn = GRUCell(2 * H, H)
        self.h0 = nn.Parameter(torch.zeros(H))
        self.mean_image = nn.Parameter(torch.zeros(cfg.image_shape))

    def set_background(self, image: Tensor) -> None:
        with torch.no_grad():
            self.mean_image.copy_(image)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _gaussian(self, net: nn.Module, inp: Tensor) -> tuple[Tensor, Tensor]:
        mu, raw = net(inp).chunk(2, -1)
        return mu, softplus_std(raw, self.cfg.min_std)

    def forward(self, x: Tensor, k: int | None = None, sample: bool = True) -> SequenceOutput:
        """IWAE bound for ``x: [T, B, C, H, W]`` floats in [0, 1] with ``k`` particles (see types.SequenceOutput)."""
        check_frames(x, self.cfg.image_shape, 2)
        T, B = x.shape[:2]
        K = k or self.cfg.k_particles
        R = B * K
        feats = self.phi_x(x).repeat_interleave(K, 1)  # [T, R, H]: each frame encoded once, shared by particles
        h = self.h0.expand(R, -1)
        log_lik, log_q, log_p, canvases, zs = [], [], [], [], []
        for t in range(T):
            p_mu, p_std = self._gaussian(self.prior, h)
            q_mu, q_std = self._gaussian(self.posterior, torch.cat([feats[t], h], -1))
            z = sample_normal(q_mu, q_std, sample)
            fz = self.phi_z(z)
            canvas = self.decoder(torch.cat([fz, h], -1)) + self.mean_image  # [R, C, H, W]
            log_lik.append(gaussian_image_log_lik(x[t].unsqueeze(1), canvas.view(B, K, *canvas.shape[1:]),
                                                  self.cfg.output_std).view(R))
            log_q.append(normal_log_prob(z, q_mu, q_std).sum(-1))
            log_p.append(normal_log_prob(z, p_mu, p_std).sum(-1))
            canvases.append(canvas)
            zs.append(z)
            h = self.rnn(torch.cat([feats[t], fz], -1), h)
        ll, lq, lp = (torch.stack(a).view(T, B, K) for a in (log_lik, log_q, log_p))
        log_w = (ll + lp - lq).sum(0)
        objective = iwae_vimco_loss(log_w, None, T)
        z = torch.stack(zs).view(T, B, K, 1, -1)
        return SequenceOutput(
            loss=objective.loss, iwae=objective.iwae, log_weights=log_w, rec=importance_weighted(ll.sum(0), log_w),
            kl=importance_weighted((lq - lp).sum(0), log_w), ess=effective_sample_size(log_w),
            canvas=torch.stack(canvases).view(T, B, K, *x.shape[2:]), slot_features=z, slot_mask=z.new_ones(T, B, K, 1))

    @torch.no_grad()
    def generate(self, batch: int, length: int) -> Tensor:
        """Sequences from the prior: ``[T, B, C, H, W]`` reconstructions means."""
        h = self.h0.expand(batch, -1)
        frames = []
        for _ in range(length):
            mu, std = self._gaussian(self.prior, h)
            z = mu + std * torch.randn_like(mu)
            fz = self.phi_z(z)
            canvas = self.decoder(torch.cat([fz, h], -1)) + self.mean_image
            frames.append(canvas)
            h = self.rnn(torch.cat([self.phi_x(canvas.clamp(0, 1)), fz], -1), h)
        return torch.stack(frames)


__all__ = ["VRNN", "VRNNConfig", "Imagined"]
