"""Convolutional building blocks (CONV-SQAIR, CONV-VRNN): strided ELU encoders and a subpixel decoder.

The paper's appendix with the exact layers is not available; sizes are chosen so that CONV-SQAIR's
parameter count stays close to MLP-SQAIR's (see ``conv_sqair_blocks`` and docs/baselines.md).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sqair_world.nn import linear


class ConvEncoder(nn.Module):
    """``[..., C, H, W]`` -> ``[..., n_out]``: 4x4 stride-2 ELU convolutions (3x3 stride 1 where ``strides`` says 1),
    flatten, Linear+ELU. Leading axes are flattened internally."""

    def __init__(self, in_shape: tuple[int, int, int], channels: Sequence[int], n_out: int,
                 strides: Sequence[int] | None = None) -> None:
        super().__init__()
        strides = list(strides or [2] * len(channels))
        layers: list[nn.Module] = []
        c = in_shape[0]
        for ch, s in zip(channels, strides):
            layers += [nn.Conv2d(c, ch, 4 if s == 2 else 3, stride=s, padding=1), nn.ELU()]
            c = ch
        self.convs = nn.Sequential(*layers)
        with torch.no_grad():
            n_flat = self.convs(torch.zeros(1, *in_shape)).numel()
        self.fc = nn.Sequential(linear(n_flat, n_out), nn.ELU())
        self.in_shape = tuple(in_shape)

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-3]
        h = self.convs(x.reshape(-1, *self.in_shape))
        return self.fc(h.flatten(1)).view(*lead, -1)


class SubpixelDecoder(nn.Module):
    """``[..., n_in]`` -> ``[..., C, h, w]`` (linear output): Linear+ELU layers to a ``channels`` x ceil(h/s) x
    ceil(w/s) map, a 3x3 ELU convolution, a 3x3 convolution to C*s^2 channels, then ``pixel_shuffle(s)``;
    sizes not divisible by s are cropped (centre) to (h, w)."""

    def __init__(self, n_in: int, out_shape: tuple[int, int, int], channels: int = 32, upscale: int = 4,
                 n_hidden: int = 256) -> None:
        super().__init__()
        c, h, w = out_shape
        self.out_shape, self.s = tuple(out_shape), upscale
        self.gh, self.gw = -(-h // upscale), -(-w // upscale)
        self.channels = channels
        self.fc = nn.Sequential(linear(n_in, n_hidden), nn.ELU(), linear(n_hidden, channels * self.gh * self.gw), nn.ELU())
        self.conv = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ELU(),
                                  nn.Conv2d(channels, c * upscale**2, 3, padding=1))

    def forward(self, z: Tensor) -> Tensor:
        lead = z.shape[:-1]
        x = self.fc(z.reshape(-1, z.shape[-1])).view(-1, self.channels, self.gh, self.gw)
        x = F.pixel_shuffle(self.conv(x), self.s)  # [M, C, gh*s, gw*s]
        c, h, w = self.out_shape
        top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
        return x[..., top:top + h, left:left + w].reshape(*lead, c, h, w)


def conv_sqair_blocks(image_shape: tuple[int, int, int], glimpse_size: tuple[int, int], n_hidden: int, n_what: int,
                      channels: int = 32) -> tuple[nn.Module, nn.Module, nn.Module]:
    """CONV-SQAIR's image encoder, glimpse-encoder body and glimpse decoder (same contracts as the MLP versions).

    Image: conv 32-64-64 (stride 2) + Linear 256 (~0.73M vs the MLP's 0.71M parameters); glimpse: conv 16-32-32
    (stride 1-2-2) + Linear 256 (~0.23M vs 0.17M); decoder: Linear 256 -> 32x5x5 map, two 3x3 convs, pixel
    shuffle x4 (~0.23M vs 0.18M).
    """
    c = image_shape[0]
    gh, gw = glimpse_size
    image = ConvEncoder(image_shape, [channels, 2 * channels, 2 * channels], n_hidden)
    glimpse = ConvEncoder((c, gh, gw), [channels // 2, channels, channels], n_hidden, strides=[1, 2, 2])
    decoder = SubpixelDecoder(n_what, (c, gh, gw), channels, upscale=4, n_hidden=n_hidden)
    return image, glimpse, decoder
