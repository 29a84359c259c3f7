"""The controlled sprite world's imagination protocol (issue 22): a short seeded fit of a grid model with actions,
and how far its imagined player sprite lands from the truth, beside copying the last position.

The world is :func:`sqair_world.data.sprites.make_sprite_world` with ``controlled=True``: sprite 0 (the player)
follows sticky random actions. Used by the learning tests of the action-conditioned prior and by
``scripts/prior_length_study.py``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from sqair_world.data.sprites import corridor_background, make_sprite_world
from sqair_world.model.registry import build_model
from sqair_world.model.spatial import where_to_box
from sqair_world.training.experiments import SPRITE_WORLD_MODEL

SIDE = 41  # pixels per unit of the box fractions in the 42x42 world (centres of pixels 0..41)


def sprite_world_model(**changes):
    """The grid model of the sprite world (``SPRITE_WORLD_MODEL`` with ``changes``), torch seed 0, over the world's
    fixed corridor background (not trained)."""
    torch.manual_seed(0)
    model = build_model("mlp-sqair", **{**SPRITE_WORLD_MODEL, **changes})
    bg, _ = corridor_background(42, 14)
    model.set_background(torch.as_tensor(bg).permute(2, 0, 1).float() / 255, trainable=False)
    return model


def fit_sprite_world(model, steps: int, seed: int = 0, lr: float = 3e-3) -> None:
    """Train ``model`` in place for ``steps`` Adam steps on 64 six-frame controlled sequences (seed ``seed``),
    batch 16, K = 2, the lr decayed along a cosine to 3% (a constant 3e-3 swings step to step)."""
    torch.manual_seed(seed)
    frames, _, acts = make_sprite_world(64, 6, seed=seed, controlled=True)
    x, a = torch.from_numpy(frames).float() / 255, torch.from_numpy(acts)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.03 + 0.485 * (1 + math.cos(math.pi * s / steps)))
    model.train()
    for step in range(steps):
        idx = torch.arange(16) + 16 * (step % 4)
        out = model(x[:, idx], k=2, actions=a[:, idx])
        opt.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1000.0)
        opt.step()
        decay.step()
    model.eval()


class PlayerErrors(NamedTuple):
    imagined: list[float]  #: per horizon 1..H, mean px error of the imagined player centre (mean over samples)
    copy_last: list[float]  #: per horizon, the same for its last tracked centre
    found: float  #: fraction of sequences whose player the tracker held when imagination started


@torch.no_grad()
def player_errors(
    model, seen: int, horizon: int, num_sequences: int = 64, samples: int = 8, data_seed: int = 99
) -> PlayerErrors:
    """Track ``seen`` frames of held-out controlled sequences, then imagine ``horizon`` frames with the true actions;
    score the player's track (the present object nearest the player, within 2.5 px, at frame ``seen - 1``)."""
    frames, centres, acts = make_sprite_world(num_sequences, seen + horizon, seed=data_seed, controlled=True)
    x, a = torch.from_numpy(frames).float() / 255, torch.from_numpy(acts)
    state = None
    for t in range(seen):
        state = model.online_step(state, x[t], action=a[t - 1] if t else None).state
    torch.manual_seed(1)
    im = model.imagine(state, horizon, samples, actions=a[seen - 1 : seen - 1 + horizon])
    box = where_to_box(state.z.where)[..., :2] * SIDE  # pixel centres [B, N, 2]
    d = (box - torch.as_tensor(centres[seen - 1, :, 0]).float()[:, None]).norm(dim=-1)
    d = torch.where(state.z.pres > 0, d, torch.full_like(d, 1e9))
    slot, found = d.argmin(1), d.min(1).values < 2.5
    player, rows = state.z.id.gather(1, slot[:, None]), torch.arange(x.shape[1])
    imagined, copy = [], []
    for h in range(horizon):
        same = (im.z.id[h] == player[:, :, None]) & (im.z.pres[h] > 0)  # [B, S, N]
        n = same.sum((1, 2))
        mean = (where_to_box(im.z.where[h])[..., :2] * SIDE * same[..., None]).sum((1, 2)) / n.clamp(min=1)[:, None]
        truth = torch.as_tensor(centres[seen + h, :, 0]).float()
        k = found & (n > 0)
        imagined.append(float((mean - truth).norm(dim=-1)[k].mean()))
        copy.append(float((box[rows, slot] - truth).norm(dim=-1)[k].mean()))
    return PlayerErrors(imagined, copy, float(found.float().mean()))


__all__ = ["sprite_world_model", "fit_sprite_world", "player_errors", "PlayerErrors"]
