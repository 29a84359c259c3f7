"""Encoders and the glimpse decoder shared by discovery and propagation (reference §2.3).

MLP-SQAIR uses MLPs; CONV-SQAIR swaps in the convolutional blocks of :mod:`sqair_world.model.conv`
through ``SQAIRConfig.encoder`` with the same input/output contract.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sqair_world.model.config import SQAIRConfig
from sqair_world.model.conv import conv_sqair_blocks
from sqair_world.model.nn import MLP, linear, softplus_std


def make_backbones(cfg: SQAIRConfig) -> tuple[nn.Module, nn.Module, nn.Module]:
    """(image encoder ``[.., C, H, W] -> [.., n_hidden]``, glimpse encoder body ``[.., C, h, w] -> [.., n_hidden]``,
    glimpse decoder body ``[.., D] -> [.., C, h, w]``)."""
    c, h, w = cfg.image_shape
    gh, gw = cfg.glimpse_size
    if cfg.encoder == "conv":
        return conv_sqair_blocks(cfg.image_shape, cfg.glimpse_size, cfg.n_hidden, cfg.n_what, cfg.conv_channels)
    hid = [cfg.n_hidden, cfg.n_hidden]
    return (
        nn.Sequential(nn.Flatten(-3), MLP(c * h * w, hid)),
        nn.Sequential(nn.Flatten(-3), MLP(c * gh * gw, hid)),
        nn.Sequential(MLP(cfg.n_what, hid, c * gh * gw), nn.Unflatten(-1, (c, gh, gw))),
    )


class GlimpseEncoder(nn.Module):
    """Glimpse ``[R, C, h, w]`` -> Gaussian over z_what: loc ``[R, D]``, std ``[R, D]`` (std = softplus + 0.01)."""

    def __init__(self, body: nn.Module, cfg: SQAIRConfig) -> None:
        super().__init__()
        self.body = body
        self.head = linear(cfg.n_hidden, 2 * cfg.n_what)
        self.min_std = cfg.min_std

    def forward(self, glimpse: Tensor) -> tuple[Tensor, Tensor]:
        loc, raw = self.head(self.body(glimpse)).chunk(2, -1)
        return loc, softplus_std(raw, self.min_std)


class GlimpseDecoder(nn.Module):
    """z_what ``[R, D]`` -> glimpse ``[R, C, h, w]``: linear output (no sigmoid) times a trainable scale (init 0.25)."""

    def __init__(self, body: nn.Module, cfg: SQAIRConfig) -> None:
        super().__init__()
        self.body = body
        self.output_scale = nn.Parameter(torch.tensor(cfg.output_scale))

    def forward(self, what: Tensor) -> Tensor:
        return self.body(what) * self.output_scale


class StochasticTransformParam(nn.Module):
    """Features -> where loc ``[R, 4]`` and raw std ``[R, 4]`` (before softplus) with a trainable offset (init -3);
    ``loc_bias`` initialises the loc's output bias (zero in the reference)."""

    def __init__(self, n_in: int, cfg: SQAIRConfig, loc_bias: tuple[float, ...] = (0.0,) * 4) -> None:
        super().__init__()
        self.mlp = MLP(n_in, [cfg.n_hidden, cfg.n_hidden], 8, out_bias=[*loc_bias, 0.0, 0.0, 0.0, 0.0])
        self.offset = nn.Parameter(torch.tensor(cfg.transform_var_bias))

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        return self.from_first_layer(self.mlp[0](features))

    def from_first_layer(self, pre: Tensor) -> tuple[Tensor, Tensor]:
        """The same from the first Linear's output ``[R, n_hidden]`` (for callers that compute it in parts)."""
        loc, raw = self.mlp(pre, start=1).chunk(2, -1)
        return loc, raw + self.offset


class StepsPredictor(nn.Module):
    """Features -> presence logit ``[R]`` through MLP[128] -> 1 with a given initial output bias."""

    def __init__(self, n_in: int, n_hidden: int, bias: float) -> None:
        super().__init__()
        self.mlp = MLP(n_in, [n_hidden], 1, out_bias=bias)

    def forward(self, features: Tensor) -> Tensor:
        return self.mlp(features).squeeze(-1)
