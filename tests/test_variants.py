"""The other four models of Table 1: CONV-SQAIR, MLP-AIR, MLP-VRNN, CONV-VRNN, through one registry."""

import pytest
import torch
from toy_data import fit, moving_blocks

from sqair_world.model.conv import ConvEncoder, SubpixelDecoder
from sqair_world.model.registry import MODEL_NAMES, build_model
from sqair_world.training.checkpoints import load_model, save_model

SMALL = {
    "mlp-sqair": dict(n_hidden=16, n_what=4, n_hidden_small=8, glimpse_size=(8, 8)),
    "conv-sqair": dict(n_hidden=16, n_what=4, n_hidden_small=8, glimpse_size=(8, 8), conv_channels=4),
    "mlp-air": dict(n_hidden=16, n_what=4, n_hidden_small=8, glimpse_size=(8, 8)),
    "mlp-vrnn": dict(n_hidden=16, n_latent=12),
    "conv-vrnn": dict(n_hidden=16, n_latent=12, conv_channels=4),
}


def small(name, **kw):
    torch.manual_seed(0)
    return build_model(name, image_shape=(1, 24, 24), **{**SMALL[name], **kw})


def test_registry_has_the_five_models_with_matched_sizes():
    assert set(MODEL_NAMES) == {"mlp-sqair", "conv-sqair", "mlp-air", "mlp-vrnn", "conv-vrnn"}
    n = {name: build_model(name).num_parameters() for name in MODEL_NAMES}
    assert abs(n["conv-sqair"] - n["mlp-sqair"]) / n["mlp-sqair"] < 0.05
    assert abs(n["mlp-vrnn"] - n["mlp-sqair"]) / n["mlp-sqair"] < 0.01
    assert abs(n["conv-vrnn"] - n["conv-sqair"]) / n["conv-sqair"] < 0.01
    assert build_model("mlp-vrnn").cfg.n_latent == 165 == 3 * (50 + 4 + 1)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_shapes_gradients_elbo_and_round_trip(name, tmp_path):
    model = small(name)
    x = torch.rand(3, 2, 1, 24, 24)
    out = model(x)
    K = 5
    assert out.log_weights.shape == (2, K) and out.canvas.shape == (3, 2, K, 1, 24, 24)
    assert out.slot_features.shape[:3] == (3, 2, K) and out.slot_mask.shape == out.slot_features.shape[:4]
    assert (out.count is None) == name.endswith("vrnn")
    out.loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    torch.manual_seed(1)
    one = model(x, k=1)
    torch.testing.assert_close(one.iwae, one.log_weights[:, 0])
    torch.testing.assert_close(one.iwae, one.rec - one.kl, rtol=1e-5, atol=1e-3)
    save_model(tmp_path / "m.pt", model)
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.cfg == model.cfg and type(loaded) is type(model)
    torch.manual_seed(2)
    a = model(x, sample=False).iwae
    torch.manual_seed(2)
    torch.testing.assert_close(loaded(x, sample=False).iwae, a)


def test_conv_blocks_output_sizes():
    enc = ConvEncoder((3, 50, 50), [8, 16, 16], 32)
    assert enc(torch.rand(2, 5, 3, 50, 50)).shape == (2, 5, 32)
    for shape in [(1, 20, 20), (3, 21, 18), (1, 50, 50)]:
        dec = SubpixelDecoder(7, shape, channels=8, upscale=4)
        assert dec(torch.randn(4, 2, 7)).shape == (4, 2, *shape)


def test_conv_sqair_uses_convolutions():
    model = build_model("conv-sqair")
    kinds = {type(m).__name__ for m in model.modules()}
    assert {"Conv2d", "ConvEncoder", "SubpixelDecoder"} <= kinds


@pytest.mark.parametrize("name", ["mlp-vrnn", "conv-vrnn", "conv-sqair"])
def test_short_learning(name):
    x, _ = moving_blocks(256, T=3, seed=0)
    x_val, _ = moving_blocks(64, T=3, seed=1)
    model = small(name, k_particles=2)
    model.set_background(x.mean((0, 1)))
    with torch.no_grad():
        before = model(x_val).iwae.mean().item()
    fit(model, x, steps=120, lr=2e-3)
    with torch.no_grad():
        after = model(x_val).iwae.mean().item()
    assert after > before + 200, (before, after)  # nats per 3-frame sequence
