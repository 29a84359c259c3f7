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


def train_through_lengths(seed: int, lr: float, stage_decay: float, stages: list[int], steps: int, run_dir):
    """SMALL MLP-SQAIR through the trainer's curriculum (fast recipe, one more frame every ``steps`` steps, from
    ``stages[0]`` to ``stages[-1]`` frames): per stage, the propagated objects per frame of each step, and its rate.
    Shared with scripts/toy_collapse.py --trainer."""
    from sqair_world.training.trainer import TrainConfig, Trainer

    if stages != list(range(stages[0], stages[-1] + 1)):
        raise ValueError(f"the trainer adds one frame per stage; stages must grow by one, got {stages}")
    torch.manual_seed(seed)
    x, _ = moving_blocks(512, T=stages[-1], seed=0)
    x_val, _ = moving_blocks(32, T=stages[-1], seed=1)
    model = build_model("mlp-sqair", **SMALL)
    model.set_background(x.mean((0, 1)))
    cfg = TrainConfig(
        steps=steps * len(stages),
        batch_size=16,
        curriculum_start=stages[0],
        curriculum_every=steps,
        curriculum_max=stages[-1],
        lr=lr,
        lr_stage_decay=stage_decay,
        recipe="fast",
        seed=seed,
        run_dir=str(run_dir),
        tensorboard=False,
        progress=False,
        val_every=10**9,
        device="cpu",
    )
    frames, frames_val = ((a * 255).round().to(torch.uint8).numpy() for a in (x, x_val))
    trainer = Trainer(model, frames, frames_val, cfg, experiment="toy")
    per_stage: dict[int, list[float]] = {}
    rates: dict[int, float] = {}
    while trainer.step < cfg.steps:
        stats = trainer.train_step()
        per_stage.setdefault(int(stats["T"]), []).append(stats["num_prop"])
        rates[int(stats["T"])] = stats["lr"]
    return [per_stage[T] for T in stages], [rates[T] for T in stages]


def test_propagation_survives_the_curriculum_length_changes(tmp_path):
    """The trainer carries a small SQAIR through three length changes (3 -> 6 frames, the fast recipe's lr x0.7 per
    stage) and objects are still propagated after each (issue 21's regression check at toy scale).

    This toy does not reproduce the full-size collapse reliably (docs/moving_mnist.md, "The fix": at rates where it
    collapses, it does so by the seed, with or without the decay), so the test guards the trainer's path through the
    length changes rather than the decay itself. Measured (AMD EPYC Zen 4): torch seeds 0-3 end every stage at 0.84-1.20
    propagated objects per frame with the decay, 0.77-1.13 without it (the data hold 1.04).
    """
    per_length, lr = train_through_lengths(0, 3e-3, 0.7, [3, 4, 5, 6], 100, tmp_path)
    assert lr[-1] == pytest.approx(3e-3 * 0.7**3)  # past the warm-up, decayed at each of the three changes
    ends = [sum(v[-20:]) / 20 for v in per_length]
    assert all(end > 0.6 for end in ends), ends
