"""Grid discovery (model.grid): proposal shapes and masks, SCALOR's rejection rule, the prior against closed forms,
the self-supervised targets, a learning test on the in-package sprite world, and the slots the wrappers hand out."""

import numpy as np
import pytest
import torch
from torch import distributions as dist

from sqair_world.data.sprites import corridor_background, make_sprite_world
from sqair_world.envs.slots import stable_slots
from sqair_world.evaluation.atari import SpriteRollout, merge_stacked, sprite_scores
from sqair_world.evaluation.classical import ClassicalTracker
from sqair_world.evaluation.sprite_world import sprite_world_model
from sqair_world.model.config import SQAIRConfig
from sqair_world.model.grid import (
    GridPrior,
    cell_centres,
    cell_where,
    continuity_loss,
    covered_fraction,
    discovery_targets,
    footprint_targets,
    foreground_targets,
    frame_targets,
)
from sqair_world.model.registry import build_model
from sqair_world.model.spatial import box_to_where, cap_scale, row_glimpses, where_to_box
from sqair_world.model.types import Slots
from sqair_world.training.experiments import ATARI_MODEL, PEDESTRIAN_MODEL


def test_cell_where_puts_the_centre_inside_its_cell_and_inverts():
    G = 7
    raw = torch.randn(5, G * G, 4, generator=torch.Generator().manual_seed(0)) * 3
    cells = torch.arange(G * G).expand(5, -1)
    box = where_to_box(cell_where(raw, cells, G))
    offset = (box[..., :2] - cell_centres(G)) * G  # in cells
    assert offset.abs().max() <= 1.0 + 1e-4  # tanh: at most one cell from the proposer
    assert torch.allclose(box[..., 2:], torch.sigmoid(raw[..., :2]), atol=1e-6)
    want = cell_centres(G) + torch.tanh(raw[..., 2:]) / G
    inside = ((want > 0.01) & (want < 0.99)).all(-1)  # centres past the border are clamped to it
    assert torch.allclose(offset[inside], torch.tanh(raw[..., 2:])[inside], atol=1e-3)
    assert (box[..., :2] >= 0).all() and (box[..., :2] <= 1).all()


def test_grid_proposals_shapes_masks_and_cap():
    model = sprite_world_model()
    x = torch.rand(2, 3, 3, 42, 42)
    out = model(x, k=2)
    T, B, K, N = 2, 3, 2, 4
    assert out.latents.pres.shape == (T, B, K, N) and out.latents.where.shape == (T, B, K, N, 4)
    pres = out.latents.pres
    assert ((pres == 0) | (pres == 1)).all() and (pres.sum(-1) <= N).all()
    assert (pres[..., :-1] >= pres[..., 1:]).all()  # packed: present slots first
    absent = pres == 0
    assert (out.latents.what[absent] == 0).all() and (out.latents.id[absent] == -1).all()
    assert torch.isfinite(out.loss) and torch.isfinite(out.iwae).all()
    out.loss.backward()
    assert model.image_encoder.out.weight.grad.abs().sum() > 0  # the backbone learns through the loss


def test_discovery_fills_only_the_free_slots():
    model = sprite_world_model(disc_step_bias=20.0)  # every cell wants an object
    seen = torch.zeros(1, 3, 42, 42)
    feats = model.image_encoder(seen)
    prop = model.initial_state(2).z
    free = torch.tensor([4, 1])
    out = model.discovery(seen, feats.repeat_interleave(2, 0), prop, torch.zeros(2), free, sample=True)
    assert out.pres.sum(-1).tolist() == [4.0, 1.0]
    assert torch.isfinite(out.log_q).all() and torch.isfinite(out.log_p).all()


def test_grid_discovery_log_q_and_log_p_recomputed_with_torch_distributions():
    """log q and log p of one frame's grid discovery, recomputed from its sampled latents (cells, grid where, what)
    with torch.distributions: q's presences are Bernoullis over the cells in order of decreasing logit until the free
    slots are full, its where and what Gaussians; p's per-cell Bernoullis, Gaussian where and N(0, I) what. At K = 1
    and T = 1 the model's bound is then log N(x | canvas, std) + log p - log q."""
    torch.manual_seed(0)
    model = sprite_world_model(disc_step_bias=0.0)  # presence probabilities near 1/2: every count is likely
    disc, cfg = model.discovery, model.cfg
    G = cfg.grid_size
    x = torch.rand(3, 3, 42, 42)
    feats = model.image_encoder(x)  # [B, M, 9] (K = 1: rows are frames)
    free = torch.tensor([4, 2, 1])
    with torch.no_grad():
        out = disc(x, feats, model.initial_state(3).z, torch.zeros(3), free, sample=True)
        logit, loc, raw_std = feats.split([1, 4, 4], -1)
        logit = logit.squeeze(-1)
        loc = cap_scale(loc, cfg.max_scale)
        std = torch.nn.functional.softplus(raw_std + disc.std_offset) + cfg.min_std
        pres = out.pres
        on = torch.zeros_like(logit).scatter(1, out.cells, pres)  # [B, M] the cells that are on
        assert torch.equal(on.sum(-1), pres.sum(-1)) and (pres.sum(-1) <= free).all()
        order = torch.argsort(logit, -1, descending=True)
        on_sorted = on.gather(1, order)
        sampled = (on_sorted.cumsum(-1) - on_sorted) < free.unsqueeze(-1)  # q draws a cell while slots are free
        lq = (dist.Bernoulli(logits=logit.gather(1, order)).log_prob(on_sorted) * sampled).sum(-1)
        take = lambda a: a.gather(1, out.cells.unsqueeze(-1).expand(-1, -1, a.shape[-1]))
        raw = out.raw_where
        glimpse = row_glimpses(x, cell_where(raw, out.cells, G), 1, cfg.glimpse_size)
        what_loc, what_std = disc.glimpse_encoder(glimpse)
        lq_slot = dist.Normal(take(loc), take(std)).log_prob(raw).sum(-1)
        lq_slot = lq_slot + dist.Normal(what_loc, what_std).log_prob(out.what).sum(-1)
        lq = lq + (pres * lq_slot).sum(-1)
        prior = disc.prior
        lp = dist.Bernoulli(logits=prior.pres_logit.expand(3, -1)).log_prob(on).sum(-1)
        where_p = dist.Normal(prior.where_mu, torch.nn.functional.softplus(prior.where_raw_std) + cfg.min_std)
        lp_slot = where_p.log_prob(raw).sum(-1) + dist.Normal(0.0, 1.0).log_prob(out.what).sum(-1)
        lp = lp + (pres * lp_slot).sum(-1)
    assert pres.sum() >= 2  # the check covers present slots
    torch.testing.assert_close(out.log_q, lq, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(out.log_p, lp, rtol=1e-5, atol=1e-3)
    # the whole bound at K = 1, T = 1: likelihood of the rendered canvas plus the discovery terms
    torch.manual_seed(1)
    seq = model(x.unsqueeze(0), k=1)
    canvas = seq.canvas[0, :, 0]
    log_lik = dist.Normal(canvas, cfg.output_std).log_prob(x).flatten(1).sum(-1)
    torch.testing.assert_close(seq.rec, log_lik, rtol=1e-5, atol=1e-2)
    torch.testing.assert_close(seq.iwae, seq.rec - seq.kl, rtol=1e-5, atol=1e-2)


def test_covered_fraction_and_the_rejection_rule():
    cover = torch.zeros(1, 42, 42)
    cover[0, 0:6, 0:6] = 1.0
    boxes = torch.tensor([[[3 / 42, 3 / 42, 6 / 42, 6 / 42], [6 / 42, 3 / 42, 6 / 42, 6 / 42], [0.5, 0.5, 0.1, 0.1]]])
    frac = covered_fraction(cover, boxes)
    assert frac[0].tolist() == pytest.approx([1.0, 0.5, 0.0], abs=1e-6)

    # hand-made proposals: cells 0, 5, 30 and 40 want an object, the others not; a propagated object sits on cell 0
    model = sprite_world_model()
    seen = torch.zeros(1, 3, 42, 42)
    feats = torch.zeros(1, 49, 9)
    feats[..., 0], feats[..., 1:3] = -10.0, -2.0
    feats[0, [0, 5, 30, 40], 0] = torch.tensor([12.0, 11.0, 10.0, 9.0])
    cell0 = where_to_box(cell_where(feats[0, :1, 1:5], torch.zeros(1, dtype=torch.long), 7))  # [1, 4]
    empty = model.initial_state(1).z
    where = empty.where.clone()
    where[0, 0] = box_to_where(cell0[0])
    prop = Slots(empty.what, where, torch.tensor([[1.0, 0, 0, 0]]), torch.tensor([[0, -1, -1, -1]]))

    def chosen_cells(prop_slots):
        out = model.discovery(seen, feats, prop_slots, torch.ones(1), torch.tensor([3]), sample=False)
        centres = where_to_box(out.where[0, out.pres[0] > 0])[:, :2]
        return sorted(torch.cdist(centres, cell_centres(7)).argmin(1).tolist())

    assert chosen_cells(prop) == [5, 30, 40]  # cell 0 is explained by the propagated object: rejected
    assert chosen_cells(empty) == [0, 5, 30]  # without it, the three best cells fill the three free slots


def test_grid_prior_against_torch_distributions():
    cfg = SQAIRConfig(image_shape=(3, 42, 42), discovery="grid", grid_size=7, max_objects=3, n_what=5)
    prior = GridPrior(cfg)
    with torch.no_grad():
        prior.pres_logit.copy_(torch.randn(49))
        prior.pres_logit_t.fill_(-1.5)
        prior.where_mu.copy_(torch.randn(4))
    R = 4
    t_pos = torch.tensor([0.0, 1.0, 1.0, 0.0])
    pres_cells = (torch.rand(R, 49) < 0.2).float()
    raw, what = torch.randn(R, 3, 4), torch.randn(R, 3, 5)
    pres = torch.tensor([[1.0, 1, 0], [1, 0, 0], [0, 0, 0], [1, 1, 1]])
    got = prior.log_prob(pres_cells, raw, what, pres, t_pos)
    logits = prior.pres_logit + t_pos[:, None] * -1.5
    want = dist.Bernoulli(logits=logits).log_prob(pres_cells).sum(-1)
    want = want + (
        pres
        * (
            dist.Normal(prior.where_mu, prior.where_std()).log_prob(raw).sum(-1)
            + dist.Normal(0.0, 1.0).log_prob(what).sum(-1)
        )
    ).sum(-1)
    assert torch.allclose(got, want.detach(), atol=1e-4)
    cells, raw_s, what_s, pres_s = prior.sample(t_pos, torch.tensor([3, 0, 1, 2]))
    assert cells.shape == (R, 3) and raw_s.shape == (R, 3, 4) and what_s.shape == (R, 3, 5)
    assert (pres_s.sum(-1) <= torch.tensor([3.0, 0, 1, 2])).all()


def test_foreground_targets_mark_one_cell_per_blob():
    seen = torch.zeros(1, 3, 42, 42)
    seen[0, :, 8:14, 2:6] = 0.8  # a 4x6 sprite centred at (3.5, 10.5): cell (1, 0) of 6-px cells
    seen[0, :, 30:36, 30:34] = -0.8  # darker than the background counts too
    seen[0, :, 20, 20] = 0.9  # one noise pixel: no blob
    target, offset = foreground_targets(seen, 7, 0.1)
    assert target.sum() == 2 and target[0, 1 * 7 + 0] == 1 and target[0, 5 * 7 + 5] == 1
    # the centre fraction 3.5/41, 10.5/41 is 0.598, 1.793 cells: offsets from the cell centre (0.5, 1.5)
    assert offset[0, 7].tolist() == pytest.approx([3.5 / 41 * 7 - 0.5, 10.5 / 41 * 7 - 1.5], abs=0.2)


def test_foreground_targets_blob_sigma_gives_one_cell_per_tall_person():
    """A person-shaped blob (10 x 29 px) splits into several peaks at the sprites' 1.5-px smoothing and makes one
    target at a third of its height and width (the pedestrian grid's (6, 3))."""
    seen = torch.zeros(1, 3, 64, 64)
    seen[0, :, 10:39, 12:22] = 0.7  # centre (16.5, 24) px: cell (3, 2) of 8-px cells
    seen[0, :, 30:59, 44:54] = 0.7  # a second person: centre (48.5, 44) px, cell (5, 6)
    many, _ = foreground_targets(seen, 8, 0.1)
    target, _ = foreground_targets(seen, 8, 0.1, (6.0, 3.0))
    assert many.sum() > 2
    assert target.sum() == 2 and target[0, 3 * 8 + 2] == 1 and target[0, 5 * 8 + 6] == 1


def test_residual_targets_give_a_newcomer_beside_a_propagated_person_a_cell_of_its_own():
    """Two people side by side make one blob; with the left one propagated (its box covered), the residual rule
    targets the right one's cell, the frame's blobs only the shared blob's; with nothing propagated both agree."""
    cfg = SQAIRConfig(**PEDESTRIAN_MODEL)
    residual = SQAIRConfig(**{**PEDESTRIAN_MODEL, "grid_residual_targets": True})
    seen = torch.zeros(1, 3, 64, 64)
    seen[0, :, 10:39, 20:30] = 0.7  # left person: centre x 24.5 (cell column 3)
    seen[0, :, 12:41, 26:36] = 0.7  # right person, overlapping: centre x 30.5, its uncovered part x 31-35
    blobs = frame_targets(seen, cfg)
    assert blobs[0].nonzero().tolist() == [[0, 3 * 8 + 3]]
    cover = torch.zeros(2, 64, 64)  # K = 2 particles, both propagating the left person
    cover[:, 8:41, 18:31] = 1.0
    same, _ = discovery_targets(seen, blobs, cover, 2, cfg)
    new, offset = discovery_targets(seen, blobs, cover, 2, residual)
    assert same.nonzero().tolist() == [[0, 27], [1, 27]]
    assert new.nonzero().tolist() == [[0, 28], [1, 28]]
    assert (offset[:, 28, 0] * 8 + 4 + 32 - 33).abs().max() < 1.5  # the centre of the uncovered part, x 33 px
    assert torch.equal(discovery_targets(seen, blobs, None, 2, residual)[0], same)
    with pytest.raises(ValueError, match="grid_residual_targets works on the blob targets"):
        SQAIRConfig(**{**PEDESTRIAN_MODEL, "grid_residual_targets": True, "grid_targets": "footprint"})


def test_footprint_targets_split_two_touching_sprites_that_make_one_blob():
    """Two 4x8 ghosts side by side make one 8x8 blob: two sprite-sized windows of the pursuit, each at its ghost's
    centre; a noise pixel and a sliver fill no window."""
    seen = torch.zeros(1, 3, 42, 42)
    seen[0, :, 10:18, 14:18] = 0.8  # ghost A: centre (15.5, 13.5) px, cell (y 2, x 2) of the 7x7 grid
    seen[0, :, 10:18, 18:22] = 0.8  # ghost B touching it: centre (19.5, 13.5) px, cell (y 2, x 3)
    seen[0, :, 30:38, 30:34] = 0.8  # an isolated sprite: centre (31.5, 33.5), cell (5, 5)
    seen[0, :, 2, 40] = 0.9  # noise pixel
    seen[0, :, 25:27, 2:4] = 0.9  # a 2x2 sliver: a fifth of a sprite window
    target, offset = footprint_targets(seen, 7, 0.1, (8, 4), 0.45, max_objects=8)
    assert target.sum() == 3
    centres = ((cell_centres(7) + offset[0] / 7) * 41)[target[0] > 0]  # back to pixels, row-major cells
    want = torch.tensor([[15.5, 13.5], [19.5, 13.5], [31.5, 33.5]])
    assert torch.cdist(want, centres).min(1).values.max() < 0.2
    # at most max_objects are taken, the largest first
    few, _ = footprint_targets(seen, 7, 0.1, (8, 4), 0.45, max_objects=1)
    assert few.sum() == 1


def test_continuity_keeps_the_nearest_object_of_a_blob_or_every_near_one():
    """One blob (4x4 grid, cell (1, 1)); object A on it, B half a cell beside it, C far away. Exclusive (Atari's
    doubles): A stays and is pulled, B and C are told to go. Shared (people hidden behind others): A and B stay,
    only A is pulled, C goes."""
    target, offset = torch.zeros(1, 16), torch.zeros(1, 16, 2)
    target[0, 5] = 1.0  # peak at the cell centre (0.375, 0.375)
    boxes = torch.tensor([[[0.40, 0.375, 0.2, 0.2], [0.50, 0.375, 0.2, 0.2], [0.875, 0.875, 0.2, 0.2]]])
    alive = torch.ones(1, 3)
    for exclusive, stays in ((True, [1.0, 0.0, 0.0]), (False, [1.0, 1.0, 0.0])):
        loc = box_to_where(boxes).requires_grad_()
        logit = torch.zeros(1, 3, requires_grad=True)
        continuity_loss((target, offset), loc, logit, alive, K=1, grid=4, exclusive=exclusive).sum().backward()
        # d BCE / d logit = sigmoid(0) - target: negative where the object is told to stay
        assert (logit.grad[0] < 0).tolist() == [s > 0 for s in stays]
        pulled = loc.grad[0, :, 2:].abs().sum(-1) > 0  # the centre coordinates (tx, ty)
        assert pulled.tolist() == [True, False, False]
    dead = continuity_loss((target, offset), box_to_where(boxes), torch.zeros(1, 3), torch.zeros(1, 3), 1, 4, False)
    assert dead.item() == 0.0  # slots that were not propagated pay nothing


def test_frame_targets_follow_the_config_and_bad_footprints_are_refused():
    seen = torch.zeros(2, 3, 42, 42)
    seen[1, :, 10:18, 14:22] = 0.8  # two touching 4x8 sprites in cells (2, 2) and (2, 3)
    blobs = SQAIRConfig(image_shape=(3, 42, 42), grid_size=7)
    fp = SQAIRConfig(image_shape=(3, 42, 42), grid_size=7, grid_targets="footprint", grid_footprint=(8, 4))
    assert torch.equal(frame_targets(seen, blobs)[0], foreground_targets(seen, 7, 0.1)[0])
    assert frame_targets(seen, fp)[0].sum(1).tolist() == [0.0, 2.0]
    with pytest.raises(ValueError, match="grid_footprint needs"):
        SQAIRConfig(image_shape=(3, 42, 42), grid_footprint=(50, 4))
    with pytest.raises(ValueError, match="grid_targets must be"):
        SQAIRConfig(grid_targets="peaks")
    with pytest.raises(ValueError, match="grid_footprint_fill is a fraction"):
        SQAIRConfig(grid_footprint_fill=0.0)


def test_continuity_scale_weighs_only_propagations_targets():
    """The loss is linear in grid_continuity_scale, and the continuity targets move it (same weights and noise)."""
    frames, _ = make_sprite_world(4, 3, seed=0)
    x = torch.from_numpy(frames).float() / 255
    losses = []
    for scale in (0.0, 1.0, 2.0):
        model = sprite_world_model(grid_continuity_scale=scale)  # the same weights: torch seed 0
        torch.manual_seed(1)
        losses.append(model(x, k=2).loss.item())
    assert abs(losses[1] - losses[0]) > 1e-3
    assert losses[2] - losses[1] == pytest.approx(losses[1] - losses[0], rel=1e-3)
    with pytest.raises(ValueError, match="grid_continuity_scale must be"):
        SQAIRConfig(grid_continuity_scale=-1.0)


def test_foreground_targets_min_mass_lets_thin_strokes_make_a_blob():
    """A thin digit (a "1": one 2-px stroke, 20 px tall) holds too little smoothed mass for the default 0.25 and
    makes one target at the MNIST grid's 0.05 (experiments.MNIST_GRID_MODEL); the noise pixel still makes none."""
    seen = torch.zeros(1, 1, 50, 50)
    seen[0, 0, 12:32, 20:22] = 1.0  # centred at (20.5, 21.5) px (x, y): cell (y 2, x 2) of 10-px cells
    seen[0, 0, 45, 45] = 1.0
    default, _ = foreground_targets(seen, 5, 0.1, (4.0, 4.0))
    thin, _ = foreground_targets(seen, 5, 0.1, (4.0, 4.0), min_mass=0.05)
    assert default.sum() == 0
    assert thin.sum() == 1 and thin[0, 2 * 5 + 2] == 1
    with pytest.raises(ValueError, match="grid_blob_min_mass is a fraction in"):
        SQAIRConfig(grid_blob_min_mass=0.0)


def test_grid_learns_to_find_the_sprites_of_the_sprite_world():
    """A short run (120 steps, batch 16, T 3) finds every sprite of held-out sequences: recall above 0.9."""
    torch.manual_seed(0)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    model = sprite_world_model()
    train, _ = make_sprite_world(64, 3, seed=0)
    x_all = torch.from_numpy(train).float() / 255
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    for step in range(120):
        idx = torch.arange(16) + 16 * (step % 4)
        out = model(x_all[:, idx], k=2)
        opt.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1000.0)
        opt.step()
    frames, centres = make_sprite_world(8, 6, seed=99)
    x = torch.from_numpy(frames).float() / 255
    model.eval()
    state, hits, total, extra = None, 0, 0, 0
    for t in range(x.shape[0]):
        out = model.online_step(state, x[t])
        state = out.state
        box = where_to_box(state.z.where) * 41  # pixel centres (align_corners convention)
        for b in range(x.shape[1]):  # scoring only: the model ran batched
            on = state.z.pres[b] > 0
            d = torch.cdist(torch.as_tensor(centres[t, b]).float(), box[b, on, :2])
            hits += int((d.min(1).values < 2.5).sum()) if on.any() else 0
            total += len(centres[t, b])
            extra += max(0, int(on.sum()) - len(centres[t, b]))
    assert hits / total > 0.9, f"recall {hits / total:.2f}"
    assert extra / total < 0.3, f"{extra} extra boxes for {total} sprites"


def test_stable_slots_keep_a_track_in_its_slot_when_another_appears_or_leaves():
    slot_ids = np.full((2, 4), -1)
    steps = [
        np.array([[0, 1, 2, -1], [5, -1, -1, -1]]),
        np.array([[0, 2, -1, -1], [5, 6, -1, -1]]),  # env 0: track 1 leaves (the model packs 2 forward)
        np.array([[0, 2, 3, -1], [6, -1, -1, -1]]),  # env 0: track 3 appears; env 1: track 5 leaves
    ]
    seen = []
    for ids in steps:
        src, slot_ids = stable_slots(slot_ids, ids)
        seen.append(slot_ids.copy())
    assert seen[0].tolist() == [[0, 1, 2, -1], [5, -1, -1, -1]]
    assert seen[1].tolist() == [[0, -1, 2, -1], [5, 6, -1, -1]]  # 2 stays in slot 2
    assert seen[2].tolist() == [[0, 3, 2, -1], [-1, 6, -1, -1]]  # 3 takes the freed slot 1; 6 stays in slot 1
    assert src[0].tolist() == [0, 2, 1, -1]


def test_merge_stacked_ghosts_count_as_one_object():
    truth = np.array([[10.0, 10.0], [10.0, 10.0], [11.0, 10.5], [40.0, 40.0], [90.0, 5.0]])
    centres, ids = merge_stacked(truth, np.array([True, True, True, True, False]), 3.0)
    assert ids.tolist() == [0, 3] and centres[0].tolist() == pytest.approx([31 / 3, 10.5 / 3 + 20 / 3])


def test_classical_tracker_and_both_matching_rules():
    frames, centres = make_sprite_world(1, 8, seed=3)
    frames = frames[:, 0].transpose(0, 2, 3, 1)
    bg, _ = corridor_background(42, 14)
    slots = ClassicalTracker(background=bg, num_slots=4).track(frames)
    roll = SpriteRollout(
        pres=slots.pres,
        where=slots.where,
        ids=slots.ids,
        sprites=centres[:, 0] + 0.5,  # pixel centres -> the fractions' convention of the CC centroids
        bounds=np.zeros(8),
        frame_hw=(42, 42),
        names=("a", "b", "c"),
        native_scale=(2.0, 2.0),
    )
    frame_rule, native_rule = sprite_scores(roll, 2.0, "frame"), sprite_scores(roll, 2.0, "native")
    assert frame_rule["recall"] > 0.9 and frame_rule["idf1"] > 0.6
    assert native_rule["recall"] <= frame_rule["recall"]  # the same distance in pixels twice as small
    with pytest.raises(ValueError, match="rule must be"):
        sprite_scores(roll, 2.0, "iou")


def test_an_old_sequential_atari_checkpoint_still_loads_and_tracks(tmp_path):
    """Checkpoints of the sequential discovery (written before grid discovery existed, without its config fields)
    load and run in the wrapper."""
    from sqair_world.envs import make_sqair_env
    from sqair_world.training.checkpoints import load_model, save_model

    old = {k: v for k, v in ATARI_MODEL.items() if not k.startswith("grid") and k != "discovery"}
    old.update(n_hidden=16, n_what=4, n_hidden_small=8, max_objects=6, prop_prior_residual=False)
    torch.manual_seed(0)
    path = tmp_path / "old.pt"
    save_model(path, build_model("mlp-sqair", **old), extra={"env_id": "ALE/Pacman-v5"})
    payload = torch.load(path, weights_only=True)
    for name in (
        "discovery",
        "grid_size",
        "grid_pres_prior_logit",
        "grid_reject_overlap",
        "grid_aux_weight",
        "grid_fg_threshold",
        "prop_prior_residual",
    ):
        payload["config"].pop(name)  # as an old version wrote it
    torch.save(payload, path)
    assert load_model(path).cfg.discovery == "sequential"
    env = make_sqair_env("ALE/Pacman-v5", checkpoint=path, device="cpu")
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(0)
    assert obs["pres"].shape == (6,)


def test_grid_checkpoints_written_before_the_footprint_targets_keep_the_blob_targets(tmp_path):
    """A grid checkpoint written before ``grid_targets`` existed (as the Ms. Pac-Man one of 2026-12-03 to 12-07) loads
    with the blob rule it was trained with; the shipped checkpoints record the footprint rule."""
    from sqair_world.envs.factory import CHECKPOINT_DIR, load_default_model
    from sqair_world.training.checkpoints import load_model, safe_torch_load

    payload = safe_torch_load(CHECKPOINT_DIR / "mspacman.pt")
    payload["config"].pop("grid_targets")  # as the older version wrote it
    torch.save(payload, tmp_path / "old.pt")
    assert load_model(tmp_path / "old.pt").cfg.grid_targets == "blobs"
    for game in ("Pacman", "MsPacman"):
        cfg = load_default_model(game).cfg
        assert (cfg.grid_targets, tuple(cfg.grid_footprint), cfg.grid_reject_overlap) == ("footprint", (8, 4), 0.5)
