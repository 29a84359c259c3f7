"""Learning tests: small models on seeded toy sequences must improve the bound and learn to count."""

import pytest
import torch
from toy_data import fit, moving_blocks

from sqair_world.model.registry import build_model

SMALL = dict(
    image_shape=(1, 24, 24),
    glimpse_size=(8, 8),
    n_what=8,
    n_hidden=64,
    n_hidden_small=32,
    max_objects=2,
    k_particles=3,
    where_prior_bias=(-1.0, -1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0),
)


def _count_accuracy(model, x, counts):
    with torch.no_grad():
        out = model(x, k=3)
    acc = ((out.count.float() == counts.view(1, -1, 1)).float() * out.weights.unsqueeze(0)).sum(-1).mean()
    return out.iwae.mean().item(), acc.item()


@pytest.mark.parametrize("name", ["mlp-sqair", "mlp-air"])
def test_small_model_learns_to_explain_and_count(name):
    torch.manual_seed(0)
    x, counts = moving_blocks(512, T=4, seed=0)
    x_val, counts_val = moving_blocks(128, T=4, seed=1)
    model = build_model(name, **SMALL)
    model.set_background(x.mean((0, 1)))
    bound0, acc0 = _count_accuracy(model, x_val, counts_val)
    fit(model, x, steps=150, lr=2e-3)
    bound1, acc1 = _count_accuracy(model, x_val, counts_val)
    # measured over torch seeds 0-3: the bound gains 380-570 nats per 4-frame sequence, counting accuracy 0.69-0.86
    assert bound1 > bound0 + 300, (bound0, bound1)
    assert acc1 > max(acc0 + 0.15, 0.6), (acc0, acc1)


def test_propagation_survives_the_curriculum_length_changes(tmp_path):
    """The trainer carries a small SQAIR through three length changes (3 -> 6 frames, the fast recipe's lr x0.7 per
    stage) and objects are still propagated after each (issue 21's regression check at toy scale).

    This toy does not reproduce the full-size collapse reliably (docs/moving_mnist.md, "The fix": at rates where it
    collapses, it does so by the seed, with or without the decay), so the test guards the trainer's path through the
    length changes rather than the decay itself. Measured (AMD EPYC Zen 4): torch seeds 0-3 end every stage at 0.84-1.20
    propagated objects per frame with the decay, 0.77-1.13 without it (the data hold 1.04).
    """
    import numpy as np

    from sqair_world.training.trainer import TrainConfig, Trainer

    torch.manual_seed(0)
    x, _ = moving_blocks(512, T=6, seed=0)
    x_val, _ = moving_blocks(32, T=6, seed=1)
    model = build_model("mlp-sqair", **SMALL)
    model.set_background(x.mean((0, 1)))
    as_uint8 = lambda a: (a * 255).round().to(torch.uint8).numpy()
    cfg = TrainConfig(
        steps=400,
        batch_size=16,
        curriculum_start=3,
        curriculum_every=100,
        curriculum_max=6,
        lr=3e-3,
        recipe="fast",
        run_dir=str(tmp_path),
        tensorboard=False,
        progress=False,
        val_every=10**6,
        device="cpu",
    )
    trainer = Trainer(model, as_uint8(x), as_uint8(x_val), cfg, experiment="toy")
    per_length: dict[int, list[float]] = {}
    lr = {}
    while trainer.step < cfg.steps:
        stats = trainer.train_step()
        per_length.setdefault(int(stats["T"]), []).append(stats["num_prop"])
        lr[int(stats["T"])] = stats["lr"]
    assert sorted(per_length) == [3, 4, 5, 6]
    assert lr[6] == pytest.approx(3e-3 * 0.7**3)
    ends = {T: float(np.mean(v[-20:])) for T, v in per_length.items()}
    assert all(end > 0.6 for end in ends.values()), ends
