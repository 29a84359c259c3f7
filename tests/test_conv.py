"""Convolutional blocks of CONV-SQAIR and CONV-VRNN: output sizes, contracts, gradients, errors."""

import pytest
import torch
import torch.nn.functional as F

from sqair_world.model.conv import ConvEncoder, SubpixelDecoder, conv_sqair_blocks
from sqair_world.model.nn import MLP


def n_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("lead", [(), (3,), (2, 4)])
def test_conv_encoder_keeps_leading_axes(lead):
    enc = ConvEncoder((1, 50, 50), [8, 16, 16], 32)
    out = enc(torch.rand(*lead, 1, 50, 50))
    assert out.shape == (*lead, 32)
    assert (out > -1).all()  # ends in ELU


def test_conv_encoder_flattened_size_follows_strides():
    enc = ConvEncoder((3, 20, 18), [4, 8, 8], 16, strides=[1, 2, 2])
    # 4x4 stride 2 pad 1 halves (floor); 3x3 stride 1 pad 1 keeps the size
    assert enc.fc[0].in_features == 8 * 5 * 4
    assert enc(torch.rand(5, 3, 20, 18)).shape == (5, 16)


def test_conv_encoder_rows_are_independent():
    torch.manual_seed(0)
    enc = ConvEncoder((1, 12, 12), [4, 4], 8)
    x = torch.rand(2, 3, 1, 12, 12)
    torch.testing.assert_close(enc(x)[1, 2], enc(x[1, 2]))


@pytest.mark.parametrize(
    "shape, s", [((1, 20, 20), 4), ((3, 21, 18), 4), ((1, 50, 50), 5), ((2, 7, 9), 2), ((1, 3, 3), 4)]
)
def test_subpixel_decoder_output_size(shape, s):
    dec = SubpixelDecoder(7, shape, channels=8, upscale=s)
    assert (dec.gh, dec.gw) == (-(-shape[1] // s), -(-shape[2] // s))
    assert dec.conv[-1].out_channels == shape[0] * s * s
    assert dec(torch.randn(4, 2, 7)).shape == (4, 2, *shape)
    assert dec(torch.randn(7)).shape == shape


def test_subpixel_decoder_is_pixel_shuffle_with_centre_crop():
    torch.manual_seed(0)
    dec = SubpixelDecoder(5, (1, 10, 9), channels=4, upscale=4)  # 12x12 before the crop
    z = torch.randn(3, 5)
    full = F.pixel_shuffle(dec.conv(dec.fc(z).view(3, 4, 3, 3)), 4)
    assert full.shape == (3, 1, 12, 12)
    torch.testing.assert_close(dec(z), full[..., 1:11, 1:10])
    # divisible sizes are not cropped, and the output is linear (values outside [0, 1] occur)
    dec = SubpixelDecoder(5, (1, 8, 8), channels=4, upscale=4)
    out = dec(z)
    torch.testing.assert_close(out, F.pixel_shuffle(dec.conv(dec.fc(z).view(3, 4, 2, 2)), 4))


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    enc = ConvEncoder((1, 16, 16), [4, 8], 6, strides=[1, 2])
    dec = SubpixelDecoder(6, (1, 16, 16), channels=4, upscale=4, n_hidden=10)
    loss = (dec(enc(torch.rand(3, 1, 16, 16))) - 0.5).pow(2).mean()
    loss.backward()
    for module in (enc, dec):
        for name, p in module.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_conv_sqair_blocks_contracts_and_size_match():
    image, glimpse, decoder = conv_sqair_blocks((1, 50, 50), (20, 20), 256, 50, 32)
    assert image(torch.rand(2, 3, 1, 50, 50)).shape == (2, 3, 256)
    assert glimpse(torch.rand(6, 1, 20, 20)).shape == (6, 256)
    assert decoder(torch.randn(2, 3, 50)).shape == (2, 3, 1, 20, 20)
    conv = sum(map(n_params, (image, glimpse, decoder)))
    mlp = n_params(MLP(2500, [256, 256])) + n_params(MLP(400, [256, 256])) + n_params(MLP(50, [256, 256], 400))
    assert abs(conv - mlp) / mlp < 0.1, (conv, mlp)  # about 95k more, ~3% of the whole 2.95M model


def test_bad_arguments_and_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="strides"):
        ConvEncoder((1, 20, 20), [4, 4], 8, strides=[2, 3])
    with pytest.raises(ValueError, match="strides"):
        ConvEncoder((1, 20, 20), [4, 4], 8, strides=[2])
    with pytest.raises(ValueError, match="too small"):
        ConvEncoder((1, 2, 2), [4, 4, 4], 8)
    with pytest.raises(ValueError, match="in_shape"):
        ConvEncoder((20, 20), [4], 8)
    with pytest.raises(ValueError, match="out_shape"):
        SubpixelDecoder(4, (0, 8, 8))
    with pytest.raises(ValueError, match="upscale"):
        SubpixelDecoder(4, (1, 8, 8), upscale=0)
    enc = ConvEncoder((1, 20, 20), [4], 8)
    with pytest.raises(ValueError, match=r"\[\.\.\., 1, 20, 20\]"):
        enc(torch.rand(2, 1, 20, 21))
    with pytest.raises(TypeError, match="float"):
        enc(torch.zeros(2, 1, 20, 20, dtype=torch.uint8))
    with pytest.raises(ValueError, match="n_in"):
        SubpixelDecoder(4, (1, 8, 8))(torch.rand(2, 5))
    with pytest.raises(ValueError, match="channels"):
        conv_sqair_blocks((1, 50, 50), (20, 20), 16, 4, channels=1)
