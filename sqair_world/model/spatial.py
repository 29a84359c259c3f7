"""Spatial transformer: z_where <-> glimpses, with the reference's corner-aligned convention (§2.2).

``z_where`` holds 4 logits (sx, sy, tx, ty); scale s = sigmoid (fraction of the image side), shift
t = tanh (glimpse centre in [-1, 1]). The affine map [[sx, 0, tx], [0, sy, ty]] takes glimpse grid
coordinates u in [-1, 1] to image coordinates, pixel = (u + 1)(L - 1) / 2 (``align_corners=True``).

Extraction uses ``F.grid_sample`` (bilinear, zero padding, ``align_corners=True``). Writing back
uses that the map has no rotation or shear, so it is separable: bilinear sampling with zero padding
is ``image = B_y @ glimpse @ B_x^T`` with triangle-kernel interpolation matrices B (row i holds
max(0, 1 - |q_i - j|) for glimpse pixel j): two small batched products per object (see
``SQAIR.render``), and the soft mask of the written area is the outer product of the matrices' row
sums. Both equal ``grid_sample`` on an ``affine_grid`` (tested).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

MIN_SCALE = 1e-4


def _clip_min_straight_through(x: Tensor, floor: float) -> Tensor:
    """max(x, floor) in the forward pass, identity gradient (reference: scale clipped at 1e-4)."""
    if not x.requires_grad:  # tracking, evaluation: the same value in one op instead of four
        return x.clamp_min(floor)
    return x + (x.clamp_min(floor) - x).detach()


def where_to_scale_shift(where: Tensor) -> tuple[Tensor, Tensor]:
    """``[..., 4]`` logits -> scale ``[..., 2]`` (sx, sy) in (0, 1] and shift ``[..., 2]`` (tx, ty) in (-1, 1)."""
    scale = _clip_min_straight_through(torch.sigmoid(where[..., :2]), MIN_SCALE)
    return scale, torch.tanh(where[..., 2:])


def cap_scale(where: Tensor, max_scale: float | tuple[float, float]) -> Tensor:
    """Softly cap the scale logits (sx, sy) of ``where [..., 4]`` at c = logit(max_scale): c - softplus(c - x).

    ``max_scale``: one fraction for both sides, or (width, height) fractions for objects far from square.
    Applied to the posterior's mean where (SQAIRConfig.max_scale); the identity for ``max_scale`` = 1.
    """
    caps = (max_scale, max_scale) if isinstance(max_scale, (int, float)) else tuple(max_scale)
    if min(caps) >= 1.0:
        return where
    # an uncapped side keeps its logit (a finite dummy cap there: an infinite one would give NaN gradients)
    c = where.new_tensor([math.log(m / (1.0 - m)) if m < 1.0 else 0.0 for m in caps])
    free = where.new_tensor([m >= 1.0 for m in caps], dtype=torch.bool)
    capped = torch.where(free, where[..., :2], c - F.softplus(c - where[..., :2]))
    return torch.cat([capped, where[..., 2:]], -1)


def centre_inside(where: Tensor, margin: float) -> Tensor:
    """1.0 where the box centre of ``where [..., 4]`` lies at least ``margin`` (fraction of the image side)
    inside the border, else 0.0: ``[...]``. Centre fraction (t + 1) / 2 in [m, 1 - m]  <=>  |t| <= 1 - 2m,
    i.e. |shift logit| <= atanh(1 - 2m) (t = tanh of the logit)."""
    return (where[..., 2:].abs() <= math.atanh(1 - 2 * margin)).all(-1).to(where.dtype)


def where_to_box(where: Tensor) -> Tensor:
    """``[..., 4]`` logits -> boxes ``[..., 4]`` = (x_centre, y_centre, width, height) as fractions of the
    image width/height: the glimpse covers image coordinates t +- s, i.e. fraction (t + 1)/2 +- s/2."""
    scale, shift = where_to_scale_shift(where)
    return torch.cat([(shift + 1) / 2, scale], -1)


def box_to_where(box: Tensor) -> Tensor:
    """Inverse of :func:`where_to_box` (for tests and hand-made latents)."""
    eps = 1e-6
    sx, sy = box[..., 2].clamp(eps, 1 - eps), box[..., 3].clamp(eps, 1 - eps)
    tx, ty = (2 * box[..., 0] - 1).clamp(-1 + eps, 1 - eps), (2 * box[..., 1] - 1).clamp(-1 + eps, 1 - eps)
    return torch.stack([torch.logit(sx), torch.logit(sy), torch.atanh(tx), torch.atanh(ty)], -1)


def _interp_matrix(pos: Tensor, size: int) -> Tensor:
    """Bilinear weights with zero padding: ``pos [..., n]`` source pixel positions -> ``[..., n, size]``."""
    grid = torch.arange(size, dtype=pos.dtype, device=pos.device)
    return (1 - (pos.unsqueeze(-1) - grid).abs()).clamp_min(0)


@functools.lru_cache(maxsize=64)
def _linspace(n: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    with torch.inference_mode(False):  # a normal tensor, usable under autograd even if first made in inference mode
        return torch.linspace(-1.0, 1.0, n, dtype=dtype, device=device)


def _lin(n: int, ref: Tensor) -> Tensor:
    """``n`` grid coordinates from -1 to 1 (eager: cached, made once per size, dtype and device, not per call)."""
    if torch.compiler.is_compiling():  # a constant of the compiled graph; dynamo does not trace lru_cache
        return torch.linspace(-1.0, 1.0, n, dtype=ref.dtype, device=ref.device)
    return _linspace(n, ref.dtype, ref.device)


def inverse_matrices(where: Tensor, image_hw: tuple[int, int], glimpse_hw: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Sampling matrices for writing back (the inverse warp): ``B_y [..., H, h]``, ``B_x [..., W, w]``.

    Image coordinate u maps to glimpse coordinate (u - t) / s (reference §2.2, theta^-1).
    """
    (H, W), (h, w) = image_hw, glimpse_hw
    scale, shift = where_to_scale_shift(where)
    qy = ((_lin(H, where) - shift[..., 1:2]) / scale[..., 1:2] + 1) * (h - 1) / 2  # [..., H]
    qx = ((_lin(W, where) - shift[..., 0:1]) / scale[..., 0:1] + 1) * (w - 1) / 2  # [..., W]
    return _interp_matrix(qy, h), _interp_matrix(qx, w)


def image_to_glimpse(image: Tensor, where: Tensor, glimpse_hw: tuple[int, int]) -> Tensor:
    """Extract glimpses with bilinear sampling (zeros outside the image).

    The M glimpses of an image are stacked as rows of one sampling grid, so ``grid_sample`` reads the
    image in place: no copy per slot or per particle.

    :param image: ``[B, C, H, W]``
    :param where: ``[B, ..., 4]`` logits; the middle axes (e.g. K particles, N slots) index glimpses of the same image
    :return: ``[B, ..., C, h, w]``
    """
    B, C = image.shape[:2]
    h, w = glimpse_hw
    mid = where.shape[1:-1]
    scale, shift = where_to_scale_shift(where.reshape(-1, 4))  # [B*M, 2]
    M = scale.shape[0] // B
    # F.affine_grid with theta = [[sx, 0, tx], [0, sy, ty]], written out: the map is separable, and a batched
    # [h*w, 3] @ [3, 2] product per glimpse was 2 ms for the 480 glimpses of a propagation step
    gx = (scale[:, :1] * _lin(w, scale) + shift[:, :1]).view(B, M, 1, w).expand(B, M, h, w)
    gy = (scale[:, 1:] * _lin(h, scale) + shift[:, 1:]).view(B, M, h, 1).expand(B, M, h, w)
    grid = torch.stack([gx, gy], -1)  # [B, M, h, w, 2]: (x, y) image coordinates in [-1, 1] of each glimpse pixel
    out = F.grid_sample(
        image, grid.view(B, M * h, w, 2), mode="bilinear", padding_mode="zeros", align_corners=True
    )  # [B, C, M*h, w]
    return out.view(B, C, M, h, w).transpose(1, 2).reshape(B, *mid, C, h, w)


def row_glimpses(
    image: Tensor, where: Tensor, K: int, glimpse_hw: tuple[int, int], rows: Tensor | None = None
) -> Tensor:
    """Glimpses for particle rows (row r = b*K + k reads frame b, shared by the K particles).

    :param image: ``[B, C, H, W]``
    :param where: ``[R, ..., 4]`` for every row, or ``[A, ..., 4]`` for the rows listed in ``rows [A]``
    :return: ``[R or A, ..., C, h, w]``
    """
    if rows is not None:  # a subset: one copy of each listed row's frame (see model.subsets)
        if rows.numel() == 0:
            return image.new_zeros(*where.shape[:-1], image.shape[1], *glimpse_hw)
        image = image.index_select(0, rows // K)
    g = image_to_glimpse(image, where.reshape(image.shape[0], -1, 4), glimpse_hw)
    return g.reshape(*where.shape[:-1], *g.shape[-3:])


def glimpse_to_image(glimpse: Tensor, where: Tensor, image_hw: tuple[int, int]) -> Tensor:
    """Write glimpses back into image space with the inverse transform.

    :param glimpse: ``[..., C, h, w]``
    :param where: ``[..., 4]``
    :return: ``[..., C, H, W]`` (zeros outside each glimpse's box)
    """
    h, w = glimpse.shape[-2:]
    by, bx = inverse_matrices(where, image_hw, (h, w))  # [..., H, h], [..., W, w]
    return torch.einsum("...yh,...chw,...xw->...cyx", by, glimpse, bx)


def box_coverage(where: Tensor, image_hw: tuple[int, int], glimpse_hw: tuple[int, int]) -> Tensor:
    """``warp^-1(ones)``: how much of each image pixel a glimpse covers, ``[..., 4]`` -> ``[..., H, W]``.

    Separable, so it is the outer product of the row sums of the inverse matrices.
    """
    by, bx = inverse_matrices(where, image_hw, glimpse_hw)
    return by.sum(-1).unsqueeze(-1) * bx.sum(-1).unsqueeze(-2)


def pixel_boxes(where: Tensor, image_hw: tuple[int, int]) -> Tensor:
    """Boxes in pixels, ``[..., 4]`` -> ``[..., 4]`` = (x_min, y_min, width, height), for drawing and MOT metrics."""
    H, W = image_hw
    box = where_to_box(where)
    wpx, hpx = box[..., 2] * W, box[..., 3] * H
    return torch.stack([box[..., 0] * W - wpx / 2, box[..., 1] * H - hpx / 2, wpx, hpx], -1)
