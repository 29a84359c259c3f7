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


_MIN_ROWS: int | None = 128
_DEFAULT_MAX_ACTIVE = 0.8
_MAX_ACTIVE = _DEFAULT_MAX_ACTIVE


def row_compaction(min_rows: int | None, max_active: float = _DEFAULT_MAX_ACTIVE) -> tuple[int | None, float]:
    """Process-wide setting of :class:`RowSubset`: gather the active rows of steps over at least ``min_rows`` rows
    (default 128), or never (None), when at most a fraction ``max_active`` of them is active (default 0.8). Returns
    the previous setting, ``(min_rows, max_active)``.

    Gathering costs a few small ops per step, which a training batch (B*K = 160 rows, 480 (row, slot) pairs at the
    paper's setting) repays many times over, but tracking a few envs does not (16 Pac-Man envs: 16% slower per
    frame), nor a step where nearly every row is active (a fresh model takes nearly every slot: with 0.8 instead of
    gathering whenever a row is inactive, its training iterations took 0.92-0.95 of the time, a trained model's
    0.96-1.02; docs/training.md). Off, eager runs compute every row, as compiled ones do; worth trying on a GPU,
    where finding the active rows waits for the device at every slot step."""
    global _MIN_ROWS, _MAX_ACTIVE
    previous = _MIN_ROWS, _MAX_ACTIVE
    _MIN_ROWS, _MAX_ACTIVE = min_rows, max_active
    return previous


class RowSubset:
    """The rows of ``R`` that one step over slots has to compute: those where ``active [R]`` is True.

    A slot that is absent in a row (a discovery chain that has stopped or is capped, an object that was absent
    at t-1) adds nothing to that row's weights, renders nothing and gets no gradient, so computing it is waste:
    in a training batch most rows of most slot steps after the first frame. Eager, over enough rows with enough of
    them inactive (:func:`row_compaction`), the step runs on the active rows only: ``take`` gathers its inputs and
    ``put`` scatters its outputs over a fill (zeros, or the old values). Otherwise (compiled: static shapes) every
    row is computed, ``take`` and ``put`` pass tensors through, and the inactive rows hold values that their zero
    presence masks everywhere. Both give the same bound, samples of the present objects and gradients.
    """

    def __init__(self, active: Tensor) -> None:
        self.idx: Tensor | None = None  # gathered rows; None: every row is computed
        self.rows = active.numel()
        self.empty = False  # no row is active (known eagerly only): the step can be skipped
        if torch.compiler.is_compiling():
            return
        if _MIN_ROWS is not None and self.rows >= _MIN_ROWS:
            idx = active.nonzero().squeeze(1)
            n = idx.numel()
            self.idx = None if n > _MAX_ACTIVE * self.rows or n == self.rows else idx
            self.empty = n == 0
        else:
            self.empty = not bool(active.any())

    def take(self, x: Tensor | None) -> Tensor | None:
        """The active rows of ``x [R, ...]``."""
        return x if self.idx is None or x is None else x.index_select(0, self.idx)

    def put(self, x: Tensor, fill: Tensor | float) -> Tensor:
        """``[R, ...]``: the step's output ``x`` on the active rows, ``fill`` (broadcast to ``[R, ...]``) elsewhere;
        ``x`` itself when every row was computed."""
        if self.idx is None:
            return x
        shape = (self.rows, *x.shape[1:])
        if not isinstance(fill, Tensor):
            return x.new_full(shape, fill).index_copy_(0, self.idx, x)  # in place on the new tensor: no clone
        dtype = torch.promote_types(x.dtype, fill.dtype)  # a float32 state, a bfloat16 autocast output
        return fill.expand(shape).to(dtype).index_copy(0, self.idx, x.to(dtype))


class ObjectSubset(RowSubset):
    """:class:`RowSubset` over the (row, slot) pairs of ``pres [R, N]`` that hold an object, for steps batched over
    slots: ``take`` maps ``[R, N, ...]`` to ``[R*N or A, ...]``, ``put`` maps back."""

    def __init__(self, pres: Tensor) -> None:
        super().__init__(pres.reshape(-1) > 0)
        self.slots = pres.shape[-1]

    @property
    def row_idx(self) -> Tensor | None:
        """The row of each gathered pair ``[A]`` (None: every pair is computed)."""
        return None if self.idx is None else self.idx // self.slots

    def take(self, x: Tensor) -> Tensor:
        return super().take(x.reshape(self.rows, *x.shape[2:]))

    def put(self, x: Tensor, fill: Tensor | float) -> Tensor:
        if isinstance(fill, Tensor):
            fill = fill.reshape(self.rows, *fill.shape[2:])
        return super().put(x, fill).view(-1, self.slots, *x.shape[1:])

    def sum_slots(self, x: Tensor) -> Tensor:
        """Per row of ``pres``, the sum of ``x [R*N or A, ...]`` over its computed pairs: ``[R, ...]`` (the absent
        pairs add nothing, as zeros would)."""
        if self.idx is None:
            return x.view(-1, self.slots, *x.shape[1:]).sum(1)
        return x.new_zeros(self.rows // self.slots, *x.shape[1:]).index_add_(0, self.row_idx, x)


def softplus_std(raw: Tensor, min_std: float) -> Tensor:
    """std = softplus(raw) + min_std (reference: min std 0.01 everywhere)."""
    return F.softplus(raw) + min_std
