"""The model on CUDA: the same maths as on the CPU, no row gathering (no device syncs per slot step).

These run only where CUDA is present (``bench/gpu.sh`` runs them on a lent GPU); on a CPU-only machine they are
reported as skipped, and every behaviour they check is also tested on the CPU elsewhere.
"""

import pytest
import torch

from sqair_world.model.registry import build_model
from sqair_world.model.subsets import RowSubset

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
SMALL = dict(image_shape=(1, 24, 24), glimpse_size=(8, 8), n_what=6, n_hidden=32, n_hidden_small=16, k_particles=3)


def test_cuda_forward_and_gradients_match_the_cpu():
    torch.manual_seed(0)
    cpu = build_model("mlp-sqair", **SMALL)
    gpu = build_model("mlp-sqair", **SMALL).cuda()
    gpu.load_state_dict(cpu.state_dict())
    x = torch.rand(3, 4, 1, 24, 24)
    a, b = cpu(x, k=3, sample=False), gpu(x.cuda(), k=3, sample=False)
    a.loss.backward(), b.loss.backward()
    assert torch.allclose(a.iwae, b.iwae.cpu(), rtol=1e-4, atol=1e-2)
    assert torch.equal(a.count, b.count.cpu())
    for (name, p), q in zip(cpu.named_parameters(), gpu.parameters()):
        if p.grad is not None:
            assert torch.allclose(p.grad, q.grad.cpu(), rtol=1e-3, atol=1e-3), name


def test_no_row_gathering_on_cuda():
    subset = RowSubset(torch.tensor([True, False] * 100, device="cuda"))
    assert subset.idx is None and not subset.empty


def test_online_tracking_and_imagination_on_cuda():
    torch.manual_seed(0)
    model = build_model("mlp-sqair", **SMALL).cuda().eval()
    state = None
    for _ in range(3):
        out = model.online_step(state, torch.rand(2, 1, 24, 24, device="cuda"))
        state = out.state
    im = model.imagine(state, horizon=2, num_samples=4, render=True)
    assert im.frames.shape == (2, 2, 4, 1, 24, 24) and im.frames.is_cuda
