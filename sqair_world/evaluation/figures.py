"""The paper's figures from a model's outputs (PNG/GIF via :mod:`sqair_world.evaluation.draw`).

- Fig. 4: inputs with inferred boxes coloured by identity, over the reconstructions;
- Fig. 5: sequences sampled from the prior;
- Fig. 6: conditional generation: infer on the first frames (their reconstructions), then imagine the rest;
- Fig. 7: inputs with each object's reconstructed glimpse written back in its box.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from sqair_world.evaluation.draw import draw_frame, grid, save_gif, save_png, to_rgb
from sqair_world.model.spatial import glimpse_to_image, where_to_box
from sqair_world.model.types import Imagined, SequenceOutput, Slots
from sqair_world.utils import box_to_pixels


def best_particle(out: SequenceOutput) -> Tensor:
    """``[B]`` index of the particle with the largest importance weight."""
    return out.log_weights.argmax(-1)


def pick(z: Slots, k: Tensor) -> Slots:
    """Slots ``[T, B, K, N, ...]`` -> the particle ``k [B]`` of each sequence, ``[T, B, N, ...]``."""
    T, B = z.pres.shape[:2]
    idx = k.view(1, B, 1, 1).expand(T, B, 1, z.pres.shape[-1])
    return Slots(
        *(a.gather(2, idx.view(*idx.shape, *([1] * (a.dim() - 4))).expand(T, B, 1, *a.shape[3:])).squeeze(2) for a in z)
    )


def boxes_and_ids(z: Slots, image_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel boxes ``[..., N, 4]`` (x, y, w, h) and ids (``-1`` where absent) as numpy."""
    boxes = box_to_pixels(where_to_box(z.where), *image_hw)
    return boxes.detach().cpu().numpy(), torch.where(z.pres > 0, z.id, -1).cpu().numpy()


def reconstruction_panels(
    x: Tensor, out: SequenceOutput, max_sequences: int = 4, scale: int = 3
) -> list[list[np.ndarray]]:
    """Per sequence two rows (inputs with boxes, reconstructions with boxes) of T panels (paper Fig. 4)."""
    T, B = x.shape[:2]
    B = min(B, max_sequences)
    H, W = x.shape[-2:]
    k = best_particle(out)
    canvas = out.canvas[:, torch.arange(out.canvas.shape[1]), k]  # [T, B, C, H, W]
    rows = []
    if out.latents is None:
        for b in range(B):
            rows += [
                [to_rgb(x[t, b].cpu().numpy(), scale) for t in range(T)],
                [to_rgb(canvas[t, b].detach().cpu().numpy(), scale) for t in range(T)],
            ]
        return rows
    boxes, ids = boxes_and_ids(pick(out.latents, k), (H, W))
    for b in range(B):
        rows.append([draw_frame(x[t, b].cpu().numpy(), boxes[t, b], ids[t, b], scale) for t in range(T)])
        rows.append(
            [
                draw_frame(canvas[t, b].detach().clamp(0, 1).cpu().numpy(), boxes[t, b], ids[t, b], scale)
                for t in range(T)
            ]
        )
    return rows


def reconstruction_strip(x: Tensor, out: SequenceOutput, max_sequences: int = 4, scale: int = 3) -> np.ndarray:
    return grid(reconstruction_panels(x, out, max_sequences, scale))


@torch.no_grad()
def write_reconstructions(model, x: Tensor, path: str | Path, scale: int = 2) -> Path:
    """Inputs ``x [T, B, C, H, W]`` and their reconstructions (posterior means, one particle) with boxes coloured
    by identity, as a PNG of two rows per sequence."""
    out = model(x, k=1, sample=False)
    return save_png(path, reconstruction_strip(x, out, x.shape[1], scale))


def glimpse_panels(
    model, x: Tensor, out: SequenceOutput, max_sequences: int = 4, scale: int = 3
) -> list[list[np.ndarray]]:
    """Paper Fig. 7: each present object's decoded glimpse written back into its box, over the input."""
    T, B = x.shape[:2]
    B = min(B, max_sequences)
    H, W = x.shape[-2:]
    z = pick(out.latents, best_particle(out))
    with torch.no_grad():
        g = model.glimpse_decoder(z.what.reshape(-1, z.what.shape[-1]))
        objs = glimpse_to_image(g, z.where.reshape(-1, 4), (H, W)).view(*z.pres.shape, *x.shape[-3:])
        objs = (objs * z.pres[..., None, None, None]).sum(2)  # [T, B, C, H, W]
    boxes, ids = boxes_and_ids(z, (H, W))
    rows = []
    for b in range(B):
        rows.append(
            [
                draw_frame(
                    np.maximum(x[t, b].cpu().numpy() * 0.35, objs[t, b].clamp(0, 1).cpu().numpy()),
                    boxes[t, b],
                    ids[t, b],
                    scale,
                )
                for t in range(T)
            ]
        )
    return rows


def imagined_panels(frames: Tensor, z: Slots, scale: int = 3, max_rows: int = 4) -> list[list[np.ndarray]]:
    """Rows of imagined frames ``[H, R, S, C, H, W]`` (first sample) with their boxes."""
    Hh, R = frames.shape[:2]
    img_hw = frames.shape[-2:]
    boxes, ids = boxes_and_ids(Slots(*(a[:, :, 0] for a in z)), tuple(img_hw))
    return [
        [draw_frame(frames[t, r, 0].clamp(0, 1).cpu().numpy(), boxes[t, r], ids[t, r], scale) for t in range(Hh)]
        for r in range(min(R, max_rows))
    ]


@torch.no_grad()
def condition_panels(model, x: Tensor, horizon: int, scale: int = 3) -> tuple[list[list[np.ndarray]], Imagined]:
    """Paper Fig. 6: track ``x [n, B, C, H, W]`` (posterior means), then imagine ``horizon`` frames.

    Returns per sequence the ``n`` reconstructions with boxes, and the imagined rollout (identities carry over).
    """
    state, canvases, zs = None, [], []
    for t in range(x.shape[0]):
        step = model.online_step(state, x[t])
        state = step.state
        canvases.append(step.canvas)
        zs.append(state.z)
    boxes, ids = boxes_and_ids(Slots(*(torch.stack([z[i] for z in zs]) for i in range(4))), tuple(x.shape[-2:]))
    panels = [
        [draw_frame(canvases[t][b].clamp(0, 1).cpu().numpy(), boxes[t, b], ids[t, b], scale) for t in range(x.shape[0])]
        for b in range(x.shape[1])
    ]
    return panels, model.imagine(state, horizon, 1, render=True)


def write_figures(
    model,
    x: Tensor,
    out_dir: str | Path,
    num_sequences: int = 4,
    condition_frames: int = 3,
    seed: int = 0,
    numbered: bool = True,
    horizon: int | None = None,
) -> dict[str, Path]:
    """Write Figs. 4-7 as PNG (and Fig. 4 as GIF) for the sequences ``x [T, B, C, H, W]``; returns the paths.

    ``numbered=False`` names the files without the moving-MNIST figure numbers (``reconstructions.png``, ...), for
    other data sets (the pedestrians' Fig. 8 shows the same four panels). ``horizon``: frames imagined after the
    ``condition_frames`` seen (default: up to the length of ``x``)."""

    def name(key: str) -> str:
        return key if numbered else key.split("_", 1)[1]

    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    x = x[:, :num_sequences]
    paths: dict[str, Path] = {}
    with torch.no_grad():
        out = model(x, k=model.cfg.k_particles if hasattr(model.cfg, "k_particles") else 5)
    rec = reconstruction_panels(x, out, num_sequences)
    paths["fig4_reconstructions"] = save_png(out_dir / (name("fig4_reconstructions") + ".png"), grid(rec))
    gif_frames = [grid([[rec[r][t] for r in range(len(rec))]]) for t in range(x.shape[0])]
    paths["fig4_gif"] = save_gif(out_dir / (name("fig4_reconstructions") + ".gif"), gif_frames)
    if out.latents is not None and hasattr(model, "generate"):
        gen = model.generate(num_sequences, x.shape[0])
        paths["fig5_prior_samples"] = save_png(
            out_dir / (name("fig5_prior_samples") + ".png"), grid(imagined_panels(gen.frames, gen.z))
        )
        n = min(condition_frames, x.shape[0] - 1)
        seen, im = condition_panels(model, x[:n], horizon or x.shape[0] - n)
        inputs = [[to_rgb(x[t, b].cpu().numpy(), 3) for t in range(x.shape[0])] for b in range(x.shape[1])]
        imagined = imagined_panels(im.frames, im.z)
        rows = []
        for b in range(len(imagined)):
            rows.append(inputs[b])
            rows.append(seen[b] + imagined[b])
        paths["fig6_conditional_generation"] = save_png(
            out_dir / (name("fig6_conditional_generation") + ".png"), grid(rows)
        )
        paths["fig7_glimpses"] = save_png(
            out_dir / (name("fig7_glimpses") + ".png"), grid(glimpse_panels(model, x, out, num_sequences))
        )
    return paths
