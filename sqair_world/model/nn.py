"""Generic building blocks (no SQAIR logic): MLPs, recurrent cells, Sonnet-style initialisation."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def sonnet_linear_(layer: nn.Linear) -> nn.Linear:
    """Sonnet 1 default init (reference §0): truncated normal, std 1/sqrt(fan_in), zero bias."""
    std = 1.0 / math.sqrt(layer.in_features)
    nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


def linear(n_in: int, n_out: int, bias_init: float | Sequence[float] | None = None) -> nn.Linear:
    """A Sonnet-initialised ``nn.Linear``, optionally with a given initial bias."""
    layer = sonnet_linear_(nn.Linear(n_in, n_out))
    if bias_init is not None:
        with torch.no_grad():
            layer.bias.copy_(torch.as_tensor(bias_init, dtype=layer.bias.dtype).expand_as(layer.bias))
    return layer


def linear_blocks(layer: nn.Linear, sizes: Sequence[int]) -> tuple[Tensor, ...]:
    """``layer``'s weight split by input blocks of ``sizes`` and transposed, ``[in_i, out]`` each, so that
    ``layer(cat([x_1, ..., x_n], -1)) = bias + sum_i x_i @ W_i``.

    A recurrent loop uses it to compute the terms of the inputs known before the loop once, for all steps
    together, leaving fewer small ops per step (see ``Propagation``)."""
    return tuple(w.t() for w in layer.weight.split(list(sizes), dim=1))


class MLP(nn.Sequential):
    """Linear+ELU layers of the given widths; ``n_out`` adds a final Linear without activation.

    ``MLP(2500, [256, 256])`` is the reference's "MLP[256,256]" (ELU on the last hidden layer too).
    """

    def __init__(
        self,
        n_in: int,
        hidden: Sequence[int],
        n_out: int | None = None,
        out_bias: float | Sequence[float] | None = None,
    ) -> None:
        layers: list[nn.Module] = []
        for width in hidden:
            layers += [linear(n_in, width), nn.ELU()]
            n_in = width
        if n_out is not None:
            layers.append(linear(n_in, n_out, out_bias))
            n_in = n_out
        super().__init__(*layers)
        self.n_out = n_in

    def forward(self, x: Tensor, start: int = 0) -> Tensor:
        """Apply the layers from index ``start`` on (``start=1``: ``x`` is already the first Linear's output)."""
        # F.linear / F.elu on the layers' tensors instead of calling each child module: a module call costs a few
        # us of Python (hook and tracing checks), which the ~40 sequential slot steps of a frame multiply
        for layer in list(self._modules.values())[start:]:
            x = F.elu(x) if type(layer) is nn.ELU else F.linear(x, layer.weight, layer.bias)
        return x


class VanillaRNNCell(nn.Module):
    """h' = tanh(W [x, h] + b): the discovery and relation RNNs (reference §2.1)."""

    def __init__(self, n_in: int, n_hidden: int) -> None:
        super().__init__()
        self.cell = linear(n_in + n_hidden, n_hidden)
        self.n_hidden = n_hidden

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        cell = self.cell
        return torch.tanh(F.linear(torch.cat([x, h], -1), cell.weight, cell.bias))


class GRUCell(nn.Module):
    """Sonnet's GRU (reference §2.1): the reset gate multiplies h *before* the recurrent matmul,
    h' = (1 - z) h + z h~, glorot-uniform weights and biases."""

    def __init__(self, n_in: int, n_hidden: int) -> None:
        super().__init__()
        self.gates = nn.Linear(n_in + n_hidden, 2 * n_hidden)
        self.cand_x = nn.Linear(n_in, n_hidden)
        self.cand_h = nn.Linear(n_hidden, n_hidden, bias=False)
        for lin in (self.gates, self.cand_x, self.cand_h):
            nn.init.xavier_uniform_(lin.weight)
            if lin.bias is not None:  # TF glorot on a bias vector: limit sqrt(6 / (1 + n))
                lim = math.sqrt(6.0 / (1 + lin.bias.numel()))
                nn.init.uniform_(lin.bias, -lim, lim)
        self.n_hidden = n_hidden

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        # F.linear on the layers' tensors: see MLP.forward
        z, r = torch.sigmoid(F.linear(torch.cat([x, h], -1), self.gates.weight, self.gates.bias)).chunk(2, -1)
        h_tilde = torch.tanh(F.linear(x, self.cand_x.weight, self.cand_x.bias) + F.linear(r * h, self.cand_h.weight))
        return h + z * (h_tilde - h)


def softplus_std(raw: Tensor, min_std: float) -> Tensor:
    """std = softplus(raw) + min_std (reference: min std 0.01 everywhere)."""
    return F.softplus(raw) + min_std
