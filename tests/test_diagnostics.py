"""Training diagnostics: the gradient split into the objective's terms, probes, the collapse guard."""

import pytest
import torch

from sqair_world.model import probes
from sqair_world.model.registry import build_model
from sqair_world.training.diagnostics import CollapseGuard, PropagationCollapseWarning, diagnose

SMALL = dict(image_shape=(1, 24, 24), glimpse_size=(8, 8), n_what=6, n_hidden=32, n_hidden_small=16, k_particles=3)


def test_diagnose_splits_the_gradient_and_leaves_grads_alone():
    torch.manual_seed(0)
    model = build_model("mlp-sqair", **SMALL)
    x = torch.rand(3, 2, 1, 24, 24)
    torch.manual_seed(1)
    stats = diagnose(model, x)
    assert all(p.grad is None for p in model.parameters())
    for key in ("grad/iwae", "grad/vimco", "grad/vimco/propagation", "ess", "prop/pres_prob/mean", "disc/kl/mean"):
        assert key in stats and stats[key] == stats[key], key  # present, not NaN
    # the two terms add up to the surrogate's gradient (same noise): their norms bound its norm (triangle inequality)
    torch.manual_seed(1)
    model(x, k=3).loss.backward()
    total = float(torch.sqrt(sum(p.grad.pow(2).sum() for p in model.parameters() if p.grad is not None)))
    iwae, vimco = stats["grad/iwae"], stats["grad/vimco"]
    assert 0 < vimco and abs(iwae - vimco) - 1e-3 <= total <= iwae + vimco + 1e-3


def test_probes_record_only_inside_a_probing_block():
    torch.manual_seed(0)
    model = build_model("mlp-sqair", **SMALL)
    x = torch.rand(2, 2, 1, 24, 24)
    probes.record("outside", torch.ones(1))  # no block open: ignored
    with probes.probing() as rec:
        model(x, k=2)
    assert "outside" not in rec and {"disc/pres_prob", "prop/pres_prob", "prop/kl"} <= set(rec)
    assert all(0 <= float(v.min()) and float(v.max()) <= 1 for v in rec["prop/pres_prob"])


def test_collapse_guard_warns_once_with_the_step():
    guard = CollapseGuard(window=5, fraction=0.2, min_peak=0.3)
    for step in range(20):
        assert not guard.update(step, 1.0)
    with pytest.warns(PropagationCollapseWarning, match=r"propagation collapse at step 2[0-9]"):
        fired = [guard.update(step, 0.0) for step in range(20, 40)]
    assert sum(fired) == 1 and guard.fired_at is not None


def test_collapse_guard_is_quiet_when_propagation_never_started():
    guard = CollapseGuard(window=5)
    assert not any(guard.update(step, 0.05) for step in range(50))
