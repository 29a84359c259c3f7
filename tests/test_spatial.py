"""Spatial transformer: agreement with affine_grid/grid_sample, round trips, boxes."""

import math

import pytest
import torch
import torch.nn.functional as F

from sqair_world.model.spatial import (
    box_coverage,
    box_to_where,
    glimpse_to_image,
    image_to_glimpse,
    pixel_boxes,
    where_to_box,
    where_to_scale_shift,
)


def _theta(scale, shift):
    z = torch.zeros_like(scale[..., 0])
    return torch.stack(
        [torch.stack([scale[..., 0], z, shift[..., 0]], -1), torch.stack([z, scale[..., 1], shift[..., 1]], -1)], -2
    )


def test_extraction_matches_grid_sample_corner_aligned():
    torch.manual_seed(0)
    img, where = torch.rand(3, 2, 50, 50), torch.randn(3, 4, 4)
    g = image_to_glimpse(img, where, (20, 12))
    assert g.shape == (3, 4, 2, 20, 12)
    s, t = where_to_scale_shift(where)
    grid = F.affine_grid(_theta(s, t).view(12, 2, 3), (12, 2, 20, 12), align_corners=True)
    ref = F.grid_sample(img.repeat_interleave(4, 0), grid, align_corners=True, padding_mode="zeros")
    torch.testing.assert_close(g.reshape(12, 2, 20, 12), ref, atol=1e-6, rtol=0)


def test_writing_back_is_the_inverse_warp():
    torch.manual_seed(1)
    glimpse, where = torch.rand(6, 1, 20, 20), torch.randn(6, 4)
    out = glimpse_to_image(glimpse, where, (50, 50))
    s, t = where_to_scale_shift(where)
    grid = F.affine_grid(_theta(1 / s, -t / s), (6, 1, 50, 50), align_corners=True)
    torch.testing.assert_close(out, F.grid_sample(glimpse, grid, align_corners=True), atol=1e-5, rtol=0)
    cover = box_coverage(where, (50, 50), (20, 20))
    torch.testing.assert_close(
        cover, glimpse_to_image(torch.ones(6, 1, 20, 20), where, (50, 50))[:, 0], atol=1e-5, rtol=0
    )


def test_place_then_extract_returns_the_patch():
    # pixel-aligned box: glimpse spacing of exactly one image pixel (s = 19/49) at integer positions -> exact
    patch = torch.rand(2, 1, 20, 20)
    s = torch.logit(torch.tensor(19 / 49))
    where = torch.tensor([[s, s, 0.0, 0.0], [s, s, math.atanh(2 / 24.5), math.atanh(-3 / 24.5)]])
    image = glimpse_to_image(patch, where, (50, 50))
    back = image_to_glimpse(image, where.unsqueeze(1), (20, 20))[:, 0]
    torch.testing.assert_close(back, patch, atol=1e-5, rtol=0)
    # any box: a smooth patch comes back closely (bilinear resampling both ways blurs)
    torch.manual_seed(2)
    smooth = F.interpolate(torch.rand(4, 1, 5, 5), size=(20, 20), mode="bilinear", align_corners=True)
    box = torch.tensor([[0.5, 0.5, 0.45, 0.45], [0.3, 0.6, 0.5, 0.35], [0.7, 0.3, 0.3, 0.5], [0.45, 0.55, 0.6, 0.6]])
    back = image_to_glimpse(
        glimpse_to_image(smooth, box_to_where(box), (50, 50)), box_to_where(box).unsqueeze(1), (20, 20)
    )
    assert (back[:, 0] - smooth).abs().mean() < 0.03


def test_identity_where_gives_identity():
    img = torch.rand(1, 1, 20, 20)
    where = torch.tensor([[[20.0, 20.0, 0.0, 0.0]]])  # sigmoid(20) ~ 1: the whole image
    torch.testing.assert_close(image_to_glimpse(img, where, (20, 20))[0, 0], img[0], atol=1e-6, rtol=0)


def test_box_round_trip_and_pixels():
    box = torch.tensor([[0.25, 0.75, 0.2, 0.4]])
    torch.testing.assert_close(where_to_box(box_to_where(box)), box, atol=1e-5, rtol=0)
    px = pixel_boxes(box_to_where(box), (50, 100))  # H=50, W=100
    torch.testing.assert_close(px, torch.tensor([[15.0, 27.5, 20.0, 20.0]]), atol=1e-3, rtol=0)


def test_scale_floor_is_straight_through():
    where = torch.tensor([[-30.0, 0.0, 0.0, 0.0]], requires_grad=True)
    s, _ = where_to_scale_shift(where)
    assert s[0, 0] >= 1e-4
    s.sum().backward()
    assert where.grad[0, 0] != 0 or torch.sigmoid(torch.tensor(-30.0)) * (1 - torch.sigmoid(torch.tensor(-30.0))) == 0


def test_cap_scale_bounds_the_box_size_and_is_the_identity_without_a_cap():
    from sqair_world.model.spatial import cap_scale

    where = torch.randn(100, 4) * 5
    assert torch.equal(cap_scale(where, 1.0), where)
    capped = cap_scale(where, 0.15)
    assert torch.equal(capped[:, 2:], where[:, 2:])
    assert (torch.sigmoid(capped[:, :2]) <= 0.15 + 1e-6).all()
    small = torch.full((1, 4), -8.0)  # far below the cap (scale 3e-4 against 0.15): nearly unchanged
    assert torch.allclose(cap_scale(small, 0.15), small, atol=0.01)


def test_posterior_mean_boxes_respect_max_scale(tiny_sqair):
    model = tiny_sqair(max_scale=0.2, disc_step_bias=30.0, prop_step_bias=30.0)
    state = None
    for _ in range(3):
        state = model.online_step(state, torch.rand(2, 1, 24, 24)).state
        assert (torch.sigmoid(state.z.where[..., :2]) <= 0.2 + 1e-6).all()


def test_cap_scale_per_side_caps_width_and_height_apart_with_finite_gradients():
    from sqair_world.model.spatial import cap_scale, where_to_scale_shift

    where = torch.tensor([[4.0, 4.0, 0.3, -0.2]], requires_grad=True)
    capped = cap_scale(where, (0.3, 1.0))  # width capped, height free
    scale, _ = where_to_scale_shift(capped)
    assert scale[0, 0] <= 0.3 + 1e-6 and torch.allclose(capped[0, 1:], where[0, 1:])
    capped.sum().backward()
    assert torch.isfinite(where.grad).all() and where.grad[0, 1] == 1.0
    assert torch.equal(cap_scale(where, (0.15, 0.15)), cap_scale(where, 0.15))


def test_max_scale_config_takes_one_or_two_fractions():
    from sqair_world.model.config import SQAIRConfig, config_from_dict

    cfg = SQAIRConfig(max_scale=(0.3, 0.75))
    assert config_from_dict(SQAIRConfig, cfg.to_dict()).max_scale == (0.3, 0.75)
    with pytest.raises(ValueError, match="max_scale is a fraction"):
        SQAIRConfig(max_scale=(0.3, 1.5))
