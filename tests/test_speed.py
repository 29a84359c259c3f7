"""Speed switches (sqair_world/speed.py) must not change the maths: compiled = eager, bf16 matmuls ~ float32."""
import torch

from sqair_world.registry import build_model
from sqair_world.speed import accelerate, flush_denormals, mixed_precision, reduced_precision_matmul

# two slots and two frames keep the compiled graphs (and the compile time of these tests) small
TINY = dict(image_shape=(1, 24, 24), glimpse_size=(8, 8), n_what=6, n_hidden=32, n_hidden_small=16, k_particles=3,
            max_objects=2, disc_step_bias=3.0)


def _pair():
    torch.manual_seed(0)
    eager = build_model("mlp-sqair", **TINY)
    fast = build_model("mlp-sqair", **TINY)
    fast.load_state_dict(eager.state_dict())
    return eager, fast


def test_flush_denormals_zeroes_subnormal_products():
    assert flush_denormals()
    tiny = torch.tensor([1e-30]) * torch.tensor([1e-10])  # 1e-40 is subnormal in float32
    assert tiny.item() == 0.0


def test_compiled_training_step_equals_eager():
    eager, fast = _pair()
    accelerate(fast)
    x = torch.rand(2, 2, 1, 24, 24)
    outs = []
    for model in (eager, fast):  # posterior means: inductor draws its random numbers from another stream
        out = model(x, k=3, sample=False)
        out.loss.backward()
        outs.append((out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (a, ga), (b, gb) = outs
    assert torch.allclose(a.iwae, b.iwae, rtol=1e-4, atol=1e-2)
    assert torch.equal(a.count, b.count) and a.count.sum() > 0
    assert ga.keys() == gb.keys()
    for name in ga:
        assert torch.allclose(ga[name], gb[name], rtol=1e-3, atol=1e-3), name


def test_compiled_online_step_equals_eager():
    eager, fast = _pair()
    accelerate(fast, dynamic=None, cpp_wrapper=True)  # as the env wrappers compile it on CPU
    x = torch.rand(3, 2, 1, 24, 24)
    states = [None, None]
    for t in range(3):
        outs = [m.online_step(s, x[t]) for m, s in zip((eager, fast), states)]
        states = [o.state for o in outs]
        a, b = outs
        assert torch.equal(a.state.z.pres, b.state.z.pres) and torch.equal(a.state.z.id, b.state.z.id)
        p = a.state.z.pres.unsqueeze(-1)
        assert torch.allclose(a.state.z.where * p, b.state.z.where * p, atol=1e-4)
        assert torch.allclose(a.log_lik + a.log_p - a.log_q, b.log_lik + b.log_p - b.log_q, rtol=1e-4, atol=1e-2)


def test_reduced_precision_matmul_keeps_the_bound():
    eager, _ = _pair()
    x = torch.rand(3, 4, 1, 24, 24)
    bounds = []
    for enable in (False, True):
        reduced_precision_matmul(enable)
        torch.manual_seed(1)
        with torch.no_grad():
            bounds.append(eager(x, k=3).iwae)
    reduced_precision_matmul(False)
    # bfloat16 products keep ~3 significant digits; the bound of a 3-frame sequence moves by well under 0.1%
    assert torch.allclose(bounds[0], bounds[1], rtol=1e-3)


def test_autocast_keeps_samples_and_bound_in_float32():
    eager, _ = _pair()
    x = torch.rand(3, 4, 1, 24, 24)
    outs = []
    for enable in (False, True):
        torch.manual_seed(1)
        with mixed_precision("cpu", enable):
            out = eager(x, k=3)
        out.loss.backward()
        missing = [n for n, p in eager.named_parameters() if p.requires_grad and p.grad is None]
        assert not missing and all(torch.isfinite(p.grad).all() for p in eager.parameters() if p.grad is not None)
        eager.zero_grad(set_to_none=True)
        outs.append(out)
    fp32, bf16 = outs
    for t in (bf16.iwae, bf16.canvas, bf16.latents.where, bf16.latents.what, bf16.latents.pres):
        assert t.dtype == torch.float32
    assert torch.allclose(fp32.iwae, bf16.iwae, rtol=1e-3)
