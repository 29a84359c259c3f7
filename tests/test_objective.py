"""IWAE, VIMCO control variates and the surrogate gradient against direct computations."""

import math

import pytest
import torch

from sqair_world.model.objective import (
    effective_sample_size,
    iwae_bound,
    iwae_vimco_loss,
    vimco_control_variates,
    vimco_learning_signal,
)


def test_iwae_k1_is_elbo_and_bounds_increase_with_k():
    log_w = torch.randn(4, 1)
    torch.testing.assert_close(iwae_bound(log_w), log_w[:, 0])
    lw = torch.randn(3, 8)
    assert torch.all(iwae_bound(lw) >= lw.mean(-1))  # Jensen


def test_control_variates_match_a_direct_loop():
    torch.manual_seed(0)
    log_w = torch.randn(2, 4) * 3
    cv = vimco_control_variates(log_w)
    K = 4
    for b in range(2):
        for j in range(K):
            others = [i for i in range(K) if i != j]
            geo = log_w[b, others].mean()
            direct = math.log((log_w[b, others].exp().sum() + geo.exp()) / K)
            assert abs(cv[b, j].item() - direct) < 1e-5
    sig = vimco_learning_signal(log_w, "standard")
    torch.testing.assert_close(sig, iwae_bound(log_w).unsqueeze(-1) - cv)
    torch.testing.assert_close(vimco_learning_signal(log_w, "code"), log_w - cv)
    with pytest.raises(ValueError, match="at least 2 particles"):
        vimco_control_variates(torch.zeros(1, 1))


def test_surrogate_gradient_is_vimco_on_a_bernoulli_toy():
    """log w_k = f(b_k) with b_k ~ Bernoulli(sigmoid(theta)); the surrogate's gradient in theta must be
    sum_k (L - cv_k) d log q(b_k) (score part; f does not depend on theta)."""
    torch.manual_seed(1)
    theta = torch.tensor(0.3, requires_grad=True)
    b = torch.tensor([[1.0, 0.0, 1.0, 1.0, 0.0]])
    f = torch.tensor([[2.0, -1.0, 0.5, 1.5, -3.0]])
    log_q = b * torch.nn.functional.logsigmoid(theta) + (1 - b) * torch.nn.functional.logsigmoid(-theta)
    loss = iwae_vimco_loss(f, log_q, seq_len=1, signal="standard").loss
    loss.backward()
    p = torch.sigmoid(torch.tensor(0.3))
    dlogq = b - p  # d/dtheta log Bernoulli(b | sigmoid(theta))
    expected = -(vimco_learning_signal(f, "standard") * dlogq).sum()
    assert abs(theta.grad.item() - expected.item()) < 1e-5


def test_loss_divided_by_t_and_ess_range():
    lw = torch.randn(5, 3)
    assert torch.allclose(iwae_vimco_loss(lw, None, 4).loss * 4, -iwae_bound(lw).mean())
    ess = effective_sample_size(lw)
    assert torch.all((ess >= 1 - 1e-5) & (ess <= 3 + 1e-5))
    assert torch.allclose(effective_sample_size(torch.zeros(1, 3)), torch.tensor([3.0]))
