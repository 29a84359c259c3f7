"""Grid discovery (``SQAIRConfig(discovery="grid")``): every cell of a G x G map proposes at most one new object,
all cells at once, instead of the paper's one recurrent step per object (issue 18).

The parallel proposals follow SPACE (a conv backbone to a grid, a presence, a centre bounded inside the cell and a
scale around a size prior per cell); the rejection of proposals that propagated objects already explain follows
SCALOR (``atari-objects.md`` §2). Everything else is SQAIR's: propagation, the merge and the IWAE bound with VIMCO
for the presences are unchanged (``model.sqair``).

Per frame and row:

1. The backbone reads the frame (minus the background) once per frame, for all particles: per cell a presence
   logit, a where loc (sx, sy, ox, oy) and a where std (:class:`GridBackbone`).
2. A cell is *rejected* (its presence forced to 0) when more than ``grid_reject_overlap`` of its proposed box is
   covered by what the propagated objects render, or its centre is.
3. Presences are Bernoulli; taken in order of decreasing logit, a cell stops being sampled once ``N - n_prop``
   cells are on (the free slots): a sequential rule, so log q is the sum of the Bernoulli terms of the cells it
   sampled.
4. The cells that are on take the free slots, present first; their where is sampled, a glimpse there gives what.

The prior (:class:`GridPrior`): independent Bernoulli presences per cell with learned logits (one per cell, plus
one shift for t > 0), a learned Gaussian over (sx, sy, ox, oy) and N(0, I) over what. Under the prior every cell
may be on, so q, which never turns on a rejected or capped cell, stays inside its support and the bound is valid.

Where: the scale logits (sx, sy) are SQAIR's. The centre is the cell centre plus ``tanh(o)`` cells, so it stays
within one cell of its proposer (SPACE); it leaves the module as SQAIR's shift logit atanh(centre), which the
propagation updates from then on.

Optional self-supervision (``grid_aux_weight > 0``, MOC's motion targets; ``atari-objects.md`` §2): blobs of the
thresholded frame-minus-background give each cell a presence target (a blob centre inside it and not rejected) and
a centre target, as a cross-entropy and a squared error added to the training loss (never to the bound). The
targets come from the frames alone; no label enters training. With ``grid_residual_targets`` discovery's targets
come, from the second frame on, from the foreground outside the propagated objects' boxes (:func:`discovery_targets`).

Axes: B batch, K particles, R = B*K rows (row = b*K + k), M = G*G cells (row-major), N slots, D = n_what.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sqair_world.model.config import SQAIRConfig
from sqair_world.model.distributions import (
    bernoulli_log_prob,
    normal_log_prob,
    sample_bernoulli,
    std_normal_log_prob,
)
from sqair_world.model.glimpse import GlimpseEncoder
from sqair_world.model.nn import softplus_std
from sqair_world.model.spatial import box_coverage, cap_scale, row_glimpses, where_to_box
from sqair_world.model.types import Slots

CENTRE_CLAMP = 1 - 1e-4  # atanh stays finite at the border
CONTINUITY_WEIGHT = 5.0  # of the propagation targets against the discovery ones (continuity_loss)


class GridOutput(NamedTuple):
    """What grid discovery returns: the fields of ``discovery.DiscoveryOutput`` plus the self-supervised loss."""

    what: Tensor  #: [R, N, D]
    where: Tensor  #: [R, N, 4] SQAIR where logits
    pres: Tensor  #: [R, N] packed: present slots first
    log_q: Tensor  #: [R]
    log_p: Tensor  #: [R]
    log_q_pres: Tensor  #: [R] the Bernoulli terms (VIMCO's score term)
    aux_loss: Tensor  #: [R] self-supervised loss of the frame (0 when off or not training)
    cells: Tensor  #: [R, N] long: the cell that proposed each slot (meaningful where pres is 1)
    raw_where: Tensor  #: [R, N, 4] the sampled grid where (sx, sy, ox, oy) before cell_where, 0 where absent


def cell_centres(grid: int, device: torch.device | None = None) -> Tensor:
    """``[M, 2]`` (x, y) cell centres as fractions of the frame, row-major cells."""
    c = (torch.arange(grid, device=device, dtype=torch.float32) + 0.5) / grid
    cy, cx = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([cx.reshape(-1), cy.reshape(-1)], -1)


def cell_where(raw: Tensor, cells: Tensor, grid: int) -> Tensor:
    """Grid where ``raw [..., 4]`` = (sx, sy, ox, oy) of cells ``cells [...]`` (long) -> SQAIR where logits
    ``[..., 4]``: the centre fraction is the cell centre + tanh(o) / G, the shift logit atanh(2 * centre - 1)."""
    centre = cell_centres(grid, raw.device)[cells] + torch.tanh(raw[..., 2:]) / grid  # [..., 2] fractions
    shift = torch.atanh((2 * centre - 1).clamp(-CENTRE_CLAMP, CENTRE_CLAMP))
    return torch.cat([raw[..., :2], shift], -1)


class GridBackbone(nn.Module):
    """Frames ``[..., C, H, W]`` -> per-cell proposal features ``[..., M, 9]``: presence logit, where loc (sx, sy,
    ox, oy), where raw std (4, before the trainable offset and softplus).

    Each cell reads its own pixels and a 2-pixel margin around them through one strided convolution (a "patchify"
    layer: the weights see where inside the cell a sprite lies), then 3x3 convolutions over the cells let
    neighbouring cells agree on which one proposes an object that straddles them; the cell coordinates are appended
    so that presence may depend on the place (a maze has places where no sprite can be).
    """

    def __init__(self, cfg: SQAIRConfig) -> None:
        super().__init__()
        c, H, W = cfg.image_shape
        ch, G = cfg.conv_channels, cfg.grid_size
        self.in_shape, self.grid = tuple(cfg.image_shape), G
        sy, sx = max(1, H // G), max(1, W // G)
        self.convs = nn.Sequential(
            nn.Conv2d(c, ch, (sy + 4, sx + 4), stride=(sy, sx), padding=2), nn.ELU(), nn.Conv2d(ch, 2 * ch, 1), nn.ELU()
        )
        self.head = nn.Sequential(
            nn.Conv2d(2 * ch + 2, 2 * ch, 3, padding=1), nn.ELU(), nn.Conv2d(2 * ch, 2 * ch, 3, padding=1), nn.ELU()
        )
        self.out = nn.Conv2d(2 * ch, 9, 1)
        with torch.no_grad():  # presence and where start at the configured biases (SQAIRConfig)
            self.out.weight.mul_(0.1)
            self.out.bias.copy_(torch.tensor([cfg.disc_step_bias, *cfg.disc_where_bias[:2], 0.0, 0.0, 0, 0, 0, 0]))
        self.register_buffer("coords", cell_centres(G).T.reshape(1, 2, G, G) * 2 - 1, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-3]
        h = self.convs(x.reshape(-1, *self.in_shape))
        if h.shape[-2:] != (self.grid, self.grid):  # sides that G does not divide
            h = F.adaptive_max_pool2d(h, self.grid)  # [F, 2ch, G, G]
        h = self.head(torch.cat([h, self.coords.expand(h.shape[0], -1, -1, -1)], 1))
        return self.out(h).flatten(2).transpose(1, 2).reshape(*lead, self.grid**2, 9)


class GridPrior(nn.Module):
    """p^D of grid discovery: per-cell Bernoulli presences, a Gaussian where (sx, sy, ox, oy), N(0, I) what."""

    def __init__(self, cfg: SQAIRConfig) -> None:
        super().__init__()
        self.cfg = cfg
        M = cfg.grid_size**2
        self.pres_logit = nn.Parameter(torch.full((M,), cfg.grid_pres_prior_logit))
        self.pres_logit_t = nn.Parameter(torch.zeros(()))  # shift for t > 0: new objects are rarer once tracked
        mu, raw = cfg.where_prior_bias[:4], cfg.where_prior_bias[4:]
        self.where_mu = nn.Parameter(torch.tensor(mu, dtype=torch.float32))
        self.where_raw_std = nn.Parameter(torch.tensor(raw, dtype=torch.float32))

    def cell_logits(self, t_positive: Tensor) -> Tensor:
        """``t_positive [R]`` -> presence logits ``[R, M]``."""
        return self.pres_logit + t_positive.unsqueeze(-1) * self.pres_logit_t

    def where_std(self) -> Tensor:
        return softplus_std(self.where_raw_std, self.cfg.min_std)

    def log_prob(self, pres_cells: Tensor, raw: Tensor, what: Tensor, pres: Tensor, t_positive: Tensor) -> Tensor:
        """log p^D: ``pres_cells [R, M]`` on every cell, and the grid where ``raw [R, N, 4]`` and ``what [R, N, D]``
        of the present slots ``pres [R, N]`` -> ``[R]``."""
        lp_pres = bernoulli_log_prob(pres_cells, self.cell_logits(t_positive)).sum(-1)
        lp_where = normal_log_prob(raw, self.where_mu, self.where_std()).sum(-1)
        return lp_pres + (pres * (lp_where + std_normal_log_prob(what).sum(-1))).sum(-1)

    @torch.no_grad()
    def sample(self, t_positive: Tensor, free: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Ancestral sample for ``free [R]`` open slots: (cells ``[R, N]`` long, grid where ``[R, N, 4]``, what
        ``[R, N, D]``, pres ``[R, N]`` packed). Cells that are on beyond the free slots are dropped at random."""
        cfg = self.cfg
        R, N = free.shape[0], cfg.max_objects
        on = torch.bernoulli(torch.sigmoid(self.cell_logits(t_positive)))  # [R, M]
        order = torch.argsort(on + torch.rand_like(on), -1, descending=True)[:, :N]  # on cells first, random order
        pres = on.gather(1, order) * (torch.arange(N, device=on.device) < free.unsqueeze(-1))
        raw = self.where_mu + self.where_std() * torch.randn(R, N, 4, device=on.device)
        return order, raw, torch.randn(R, N, cfg.n_what, device=on.device), pres


def covered_fraction(cover: Tensor, boxes: Tensor) -> Tensor:
    """Mean of ``cover [R, H, W]`` over each box ``boxes [R, M, 4]`` (x_centre, y_centre, w, h fractions) ->
    ``[R, M]``, by an integral image (boxes rounded to whole pixels, at least one pixel)."""
    R, H, W = cover.shape
    ii = F.pad(cover.cumsum(1).cumsum(2), (1, 0, 1, 0))  # [R, H+1, W+1]
    x0 = ((boxes[..., 0] - boxes[..., 2] / 2) * W).round().clamp(0, W - 1).long()
    x1 = torch.maximum(((boxes[..., 0] + boxes[..., 2] / 2) * W).round().long().clamp(max=W), x0 + 1)
    y0 = ((boxes[..., 1] - boxes[..., 3] / 2) * H).round().clamp(0, H - 1).long()
    y1 = torch.maximum(((boxes[..., 1] + boxes[..., 3] / 2) * H).round().long().clamp(max=H), y0 + 1)
    flat = ii.flatten(1)
    at = lambda y, x: flat.gather(1, y * (W + 1) + x)
    total = at(y1, x1) - at(y0, x1) - at(y1, x0) + at(y0, x0)
    return total / ((y1 - y0) * (x1 - x0)).to(cover.dtype)


def render_cover(prop: Slots, image_hw: tuple[int, int], glimpse_hw: tuple[int, int]) -> Tensor:
    """``[R, H, W]`` in [0, 1]: how much of each pixel the present propagated objects of ``prop`` write."""
    cover = (box_coverage(prop.where, image_hw, glimpse_hw) * prop.pres[..., None, None]).sum(1)
    return cover.clamp(max=1.0)


def foreground_mask(seen: Tensor, threshold: float) -> Tensor:
    """``seen [B, C, H, W]`` (frame minus background) -> float ``[B, H, W]``: 1. where some channel differs from
    the background by more than ``threshold``."""
    return (seen.detach().abs().amax(1) > threshold).float()


def continuity_loss(
    blobs: tuple[Tensor, Tensor],
    loc: Tensor,
    pres_logit: Tensor,
    alive: Tensor,
    K: int,
    grid: int,
    exclusive: bool = True,
) -> Tensor:
    """Self-supervised targets of propagation (MOC's object continuity, as tracking by detection).

    An object stays while a blob centre (:func:`foreground_targets`) lies within 1.5 cells of its box centre, and
    its box centre is pulled onto that blob's if no other object is nearer the blob. ``exclusive``: an object whose
    blob has a nearer object is told to go (a second box on the same sprite, a double); otherwise it stays, unpulled
    (a person hidden behind another makes no blob of their own). ``loc [R, N, 4]``: the propagated where means;
    ``pres_logit [R, N]``: their raw presence logits; ``alive [R, N]``: 1. for slots that were propagated;
    ``blobs``: the frame's :func:`foreground_targets`. Returns the loss summed over them, ``[R]``."""
    target, offset = blobs  # [B, M], [B, M, 2]
    peaks = (cell_centres(grid, loc.device) + offset / grid).repeat_interleave(K, 0)  # [R, M, 2] fractions
    valid = target.repeat_interleave(K, 0) > 0
    centre = where_to_box(loc)[..., :2]  # [R, N, 2]
    d = torch.cdist(centre.detach(), peaks).masked_fill(~valid.unsqueeze(1), float("inf"))  # [R, N, M]
    d = d.masked_fill(alive.unsqueeze(-1) <= 0, float("inf"))
    dmin, nearest = d.min(-1)
    owner = d.argmin(1)  # [R, M]: each blob's nearest object
    owns = owner.gather(1, nearest) == torch.arange(d.shape[1], device=d.device)
    close = dmin < 1.5 / grid
    pulled = (close & owns).float()
    stays = pulled if exclusive else close.float()
    goal = peaks.gather(1, nearest.unsqueeze(-1).expand(*nearest.shape, 2))
    centre_err = ((centre - goal) * grid).pow(2).sum(-1)  # in cells, as the discovery's centre targets
    bce = F.binary_cross_entropy_with_logits(pres_logit, stays, reduction="none")
    return CONTINUITY_WEIGHT * (alive * (bce + 10.0 * pulled * centre_err)).sum(-1)


def _gaussian(sigma: float, like: Tensor) -> tuple[Tensor, int]:
    """A normalised 1-D Gaussian of std ``sigma`` pixels over radius ``ceil(2 sigma)``, and that radius."""
    r = math.ceil(2 * sigma)
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, device=like.device, dtype=like.dtype) / sigma) ** 2)
    return k / k.sum(), r


def foreground_targets(
    seen: Tensor, grid: int, threshold: float, sigma: tuple[float, float] = (1.5, 1.5), min_mass: float = 0.25
) -> tuple[Tensor, Tensor]:
    """Self-supervised proposals from the frames (MOC's motion targets): ``seen [B, C, H, W]`` (frame minus
    background) -> per cell a presence target ``[B, M]`` (1. where a blob's centre falls) and the centre offset
    ``[B, M, 2]`` of that blob from the cell centre, in cells (in [-0.5, 0.5]).

    Blobs: pixels differing from the background by more than ``threshold`` in some channel, smoothed by a
    Gaussian of ``sigma`` (y, x) pixels; a blob centre is a local maximum over about 3.4 sigma (5 x 5 pixels at
    1.5) holding at least ``min_mass`` of the smoothed mass (so isolated noise pixels make none).
    """
    return blob_targets(foreground_mask(seen, threshold), grid, sigma, min_mass)


def blob_targets(
    mask: Tensor, grid: int, sigma: tuple[float, float] = (1.5, 1.5), min_mass: float = 0.25
) -> tuple[Tensor, Tensor]:
    """The blob rule of :func:`foreground_targets` on a given foreground ``mask [B, H, W]`` (float, 0 or 1)."""
    B, H, W = mask.shape
    fg = mask.unsqueeze(1)  # [B, 1, H, W]
    (ky, ry), (kx, rx) = (_gaussian(s, fg) for s in sigma)
    dens = F.conv2d(F.conv2d(fg, kx.view(1, 1, 1, -1), padding=(0, rx)), ky.view(1, 1, -1, 1), padding=(ry, 0))
    # a tiny ramp breaks ties between equal neighbours (symmetric blobs of even size)
    dens = dens + 1e-6 * torch.arange(H * W, device=mask.device, dtype=fg.dtype).view(1, 1, H, W) / (H * W)
    wy, wx = (int(1.7 * s) for s in sigma)  # half-windows of the local maximum
    peak = (dens == F.max_pool2d(dens, (2 * wy + 1, 2 * wx + 1), 1, (wy, wx))) & (dens > min_mass)
    b, _, py, px = peak.nonzero(as_tuple=True)
    fx, fy = px.to(fg.dtype) / (W - 1), py.to(fg.dtype) / (H - 1)  # centre fractions (align_corners convention)
    return _cell_targets(b, fx, fy, B, grid)


def frame_targets(seen: Tensor, cfg: SQAIRConfig) -> tuple[Tensor, Tensor]:
    """The self-supervised per-cell targets of a frame ``seen [B, C, H, W]`` by the configured rule
    (``SQAIRConfig.grid_targets``): presence ``[B, M]`` and centre offset ``[B, M, 2]``."""
    if cfg.grid_targets == "footprint":
        fp = tuple(int(v) for v in cfg.grid_footprint)
        return footprint_targets(
            seen, cfg.grid_size, cfg.grid_fg_threshold, fp, cfg.grid_footprint_fill, cfg.max_objects
        )
    return foreground_targets(seen, cfg.grid_size, cfg.grid_fg_threshold, cfg.grid_blob_sigma, cfg.grid_blob_min_mass)


def discovery_targets(
    seen: Tensor, blobs: tuple[Tensor, Tensor], cover: Tensor | None, k: int, cfg: SQAIRConfig
) -> tuple[Tensor, Tensor]:
    """Discovery's self-supervised targets per row ``[R, M]``, ``[R, M, 2]`` (R = B * ``k``): the frame's ``blobs``
    (:func:`frame_targets` of ``seen [B, C, H, W]``), or with ``cfg.grid_residual_targets`` and propagated objects
    (``cover [R, H, W]``, :func:`render_cover`) the blobs of the foreground outside their boxes."""
    if cfg.grid_residual_targets and cover is not None:
        # SCALOR discovers what propagation leaves unexplained: a person who shares a propagated person's blob
        # still peaks in the foreground outside that person's box
        fg = foreground_mask(seen, cfg.grid_fg_threshold).repeat_interleave(k, 0)
        return blob_targets(fg * (cover < 0.5), cfg.grid_size, cfg.grid_blob_sigma, cfg.grid_blob_min_mass)
    target, offset = blobs
    return target.repeat_interleave(k, 0), offset.repeat_interleave(k, 0)


def _cell_targets(b: Tensor, fx: Tensor, fy: Tensor, batch: int, grid: int) -> tuple[Tensor, Tensor]:
    """Object centres (frame ``b``, x and y fractions) -> the cells' presence targets ``[batch, M]`` and centre
    offsets ``[batch, M, 2]`` (in cells, from the cell centre); a cell holding two centres keeps one."""
    cx, cy = (fx * grid).long().clamp(0, grid - 1), (fy * grid).long().clamp(0, grid - 1)
    cell = cy * grid + cx
    target = fx.new_zeros(batch, grid * grid)
    target[b, cell] = 1.0
    offset = fx.new_zeros(batch, grid * grid, 2)
    offset[b, cell] = torch.stack([fx * grid - cx - 0.5, fy * grid - cy - 0.5], -1)
    return target, offset


def footprint_targets(
    seen: Tensor, grid: int, threshold: float, footprint: tuple[int, int], fill: float, max_objects: int
) -> tuple[Tensor, Tensor]:
    """Self-supervised proposals that split touching objects: ``seen [B, C, H, W]`` (frame minus background) -> the
    same per-cell targets as :func:`foreground_targets`.

    Greedy matching pursuit with the objects' size: the ``footprint`` (h, w) pixel window holding the most
    foreground is an object, centred at the centroid of that foreground; its window is erased and the search
    repeats, at most ``max_objects`` times, while a window still holds more than ``fill`` of its area. Two ghosts
    side by side make one blob, which a smoothing peak cannot split but a sprite-sized window can
    (docs/atari.md, "Targets that split touching sprites").
    """
    B, _, H, W = seen.shape
    fh, fw = footprint
    res = foreground_mask(seen, threshold)  # [B, H, W], erased as objects are found
    ys = torch.arange(H, device=seen.device, dtype=res.dtype).view(1, H, 1)
    xs = torch.arange(W, device=seen.device, dtype=res.dtype).view(1, 1, W)
    ones = res.new_ones(1, 1, fh, fw)
    found = []
    for _ in range(max_objects):
        mass = F.conv2d(res.unsqueeze(1), ones).flatten(1)  # [B, (H-fh+1)*(W-fw+1)]: each window's foreground
        best, at = mass.max(1)
        y0, x0 = at // (W - fw + 1), at % (W - fw + 1)  # the window's top-left pixel
        inside = ((ys >= y0.view(-1, 1, 1)) & (ys < (y0 + fh).view(-1, 1, 1))) & (
            (xs >= x0.view(-1, 1, 1)) & (xs < (x0 + fw).view(-1, 1, 1))
        )
        ok = best > fill * fh * fw  # [B]
        part = res * inside
        m = part.sum((1, 2)).clamp_min(1e-6)
        found.append(torch.stack([(part * xs).sum((1, 2)) / m, (part * ys).sum((1, 2)) / m, ok.to(res.dtype)], -1))
        res = res * ~(inside & ok.view(-1, 1, 1))
    peaks = torch.stack(found, 1)  # [B, max_objects, 3]: x, y pixel centroid, found
    b, k = (peaks[..., 2] > 0).nonzero(as_tuple=True)
    px, py = peaks[b, k, 0], peaks[b, k, 1]
    return _cell_targets(b, px / (W - 1), py / (H - 1), B, grid)  # centre fractions as foreground_targets


class GridDiscovery(nn.Module):
    """DISC as parallel grid proposals (module docstring); same outputs as the sequential
    :class:`~sqair_world.model.discovery.Discovery`, plus the self-supervised loss."""

    def __init__(self, cfg: SQAIRConfig, glimpse_encoder: GlimpseEncoder) -> None:
        super().__init__()
        self.cfg = cfg
        self.glimpse_encoder = glimpse_encoder  # shared with propagation
        self.std_offset = nn.Parameter(torch.tensor(cfg.transform_var_bias))
        self.prior = GridPrior(cfg)
        # as the sequential discovery's: added to q's presence logits from the trainer's warm-up schedule
        self.register_buffer("presence_offset", torch.zeros(()), persistent=False)

    def forward(
        self,
        image: Tensor,
        cell_features: Tensor,
        prop: Slots,
        t_positive: Tensor,
        free: Tensor,
        sample: bool = True,
        blobs: tuple[Tensor, Tensor] | None = None,
    ) -> GridOutput:
        """Discover up to ``free [R]`` new objects per row.

        :param image: ``[B, C, H, W]`` what the glimpses read (shared by the K particles)
        :param cell_features: ``[R, M, 9]`` the backbone's output for this frame (:class:`GridBackbone`)
        :param prop: the propagated slots ``[R, N, ...]`` (their render rejects proposals)
        :param t_positive: ``[R]`` 1. after the first frame, else 0.
        :param blobs: the frame's :func:`foreground_targets` ``([B, M], [B, M, 2])`` when the self-supervised loss
            is on (training with ``grid_aux_weight > 0``), else None
        """
        cfg = self.cfg
        R, M, _ = cell_features.shape
        B, N, G = image.shape[0], cfg.max_objects, cfg.grid_size
        K = R // B
        raw_logit, loc, raw_std = cell_features.float().split([1, 4, 4], -1)
        raw_logit = raw_logit.squeeze(-1)
        loc = cap_scale(loc, cfg.max_scale)  # the scale logits only; the offsets pass through
        std = softplus_std(raw_std + self.std_offset, cfg.min_std)
        cells = torch.arange(M, device=image.device).expand(R, M)

        # SCALOR's rule: a proposal mostly covered by what the propagated objects render is rejected
        with torch.no_grad():
            boxes = where_to_box(cell_where(loc, cells, G))  # [R, M, 4]
            cover = None
            if bool((prop.pres > 0).any()):
                cover = render_cover(prop, image.shape[-2:], cfg.glimpse_size)
                # a proposal whose centre lies inside a propagated object is explained too, however much larger
                # its box: else a double is drawn, and the likelihood pushes the propagated box off its sprite
                centre = covered_fraction(cover, torch.cat([boxes[..., :2], torch.zeros_like(boxes[..., 2:])], -1))
                covered = covered_fraction(cover, boxes)
                open_cell = ((covered <= cfg.grid_reject_overlap) & (centre <= 0.5)).float()
            else:
                open_cell = torch.ones_like(raw_logit)
        logit = raw_logit + self.presence_offset
        logit = open_cell * logit + (open_cell - 1) * cfg.mask_logit  # a rejected cell is never on

        # Bernoulli presences in order of decreasing logit, sampled until the free slots are full
        order = torch.argsort(logit.detach(), -1, descending=True)  # [R, M]
        logit_s = logit.gather(1, order)
        on = sample_bernoulli(logit_s, sample)
        before = on.cumsum(-1) - on  # cells on earlier in the order
        sampled = (before < free.unsqueeze(-1)).float()
        on = on * sampled
        log_q_pres = (sampled * bernoulli_log_prob(on, logit_s)).sum(-1)
        pres_cells = torch.zeros_like(on).scatter(1, order, on)  # [R, M] back in cell order

        # the cells that are on fill the slots, present first (at most N are on)
        pick = torch.argsort(1 - on, dim=-1, stable=True)[:, :N]  # positions in the order
        sel = order.gather(1, pick)  # [R, N] cell indices
        pres = on.gather(1, pick)
        take = lambda a: a.gather(1, sel.unsqueeze(-1).expand(R, N, a.shape[-1]))
        loc_s, std_s = take(loc), take(std)
        raw = loc_s + std_s * torch.randn_like(loc_s) if sample else loc_s
        where = cell_where(raw, sel, G)
        glimpse = row_glimpses(image, where, K, cfg.glimpse_size)  # [R, N, C, h, w]
        what_loc, what_std = self.glimpse_encoder(glimpse)
        what = what_loc + what_std * torch.randn_like(what_loc) if sample else what_loc
        log_q_cont = (
            pres * (normal_log_prob(raw, loc_s, std_s).sum(-1) + normal_log_prob(what, what_loc, what_std).sum(-1))
        ).sum(-1)
        log_p = self.prior.log_prob(pres_cells, raw, what, pres, t_positive)

        keep = pres.unsqueeze(-1)  # absent slots hold zeros
        aux = raw_logit.new_zeros(R)
        if blobs is not None:
            target, offset = discovery_targets(image, blobs, cover, K, cfg)
            target = target * open_cell  # what propagation explains is not discovery's
            bce = F.binary_cross_entropy_with_logits(raw_logit, target, reduction="none")
            centre_err = (torch.tanh(loc[..., 2:]) - offset).pow(2).sum(-1)
            aux = (open_cell * bce).sum(-1) + 10.0 * (target * centre_err).sum(-1)
        return GridOutput(
            what * keep, where * keep, pres, log_q_cont + log_q_pres, log_p, log_q_pres, aux, sel, raw * keep
        )

    @torch.no_grad()
    def sample_prior(self, t_positive: Tensor, free: Tensor) -> Slots:
        """New objects from the prior for ``free [R]`` open slots (imagination): packed slots, ids -1."""
        cells, raw, what, pres = self.prior.sample(t_positive, free)
        where = cell_where(raw, cells, self.cfg.grid_size)
        keep = pres.unsqueeze(-1)  # absent slots hold zeros
        return Slots(what * keep, where * keep, pres, torch.full_like(cells, -1))


__all__ = [
    "GridBackbone",
    "GridDiscovery",
    "GridOutput",
    "GridPrior",
    "blob_targets",
    "cell_centres",
    "cell_where",
    "continuity_loss",
    "foreground_mask",
    "covered_fraction",
    "discovery_targets",
    "footprint_targets",
    "foreground_targets",
    "frame_targets",
    "render_cover",
]
