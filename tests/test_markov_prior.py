"""The Markov propagation prior (``SQAIRConfig.prop_prior="markov"``, issue #22): it sees the last two frames only,
fine-tunes from a GRU-prior checkpoint, and keeps imagining well on tracks older than its training sequences."""

import pytest
import torch


def _prior_after(model, wheres, what):
    """The propagation prior's where mean after feeding it one present object at the given ``wheres`` in turn."""
    prior = model.propagation.prior
    pres = torch.ones(1, model.cfg.max_objects)
    h = prior.h0.expand(1, model.cfg.max_objects, -1)
    for w in wheres:
        out = prior(what, w.expand(1, model.cfg.max_objects, 4), pres, h)
        h = out.h
    return out.where_mu


def test_the_markov_prior_sees_the_last_two_frames_and_starts_without_a_displacement(tiny_sqair):
    """``prop_prior="markov"``: a track's prior depends on where_{t-1} and where_{t-1} - where_{t-2} only, not on
    the track's age; the GRU prior remembers the whole track (the contrast that makes this test able to fail)."""
    torch.manual_seed(0)
    what = torch.randn(1, 3, tiny_sqair().cfg.n_what)
    a, b, c, d = (torch.tensor([-2.0, -2.0, x, 0.0]) for x in (0.3, -0.4, 0.1, 0.2))
    for kind, same in (("markov", True), ("gru", False)):
        model = tiny_sqair(prop_prior=kind)
        with torch.no_grad():
            model.propagation.prior.head.weight.normal_()  # an untrained prior whose output moves with its input
        old, young = _prior_after(model, [a, b, c, d], what), _prior_after(model, [c, d], what)
        assert torch.allclose(old, young, atol=1e-6) == same, kind
    # the state carries (where_{t-1}, seen = 1) of present objects; a fresh track starts unseen; absent slots keep it
    prior = tiny_sqair(prop_prior="markov").propagation.prior
    h0 = prior.h0.expand(1, 3, -1)
    assert not h0[..., 4].any()
    out = prior(what, d.expand(1, 3, 4), torch.tensor([[1.0, 1.0, 0.0]]), h0)
    assert torch.equal(out.h[0, :2, :5], torch.cat([d, torch.ones(1)]).expand(2, 5)) and not out.h[0, 2].any()
    with pytest.raises(ValueError, match="prop_prior must be 'gru' or 'markov'"):
        tiny_sqair(prop_prior="lstm")


def test_a_markov_prior_fine_tunes_from_a_gru_checkpoint(tiny_sqair, tmp_path):
    """--init-from a GRU-prior checkpoint into a Markov-prior model: everything but the propagation prior is copied;
    the new prior starts as "stay as you were" (zero head)."""
    from sqair_world.pretrain import init_weights
    from sqair_world.training.checkpoints import save_model

    gru = tiny_sqair()
    save_model(tmp_path / "gru.pt", gru)
    markov = tiny_sqair(prop_prior="markov")
    init_weights(markov, str(tmp_path / "gru.pt"))
    assert torch.equal(markov.propagation.where_bias[0].weight, gru.propagation.where_bias[0].weight)
    assert not markov.propagation.prior.head.weight.any()
    assert not markov.propagation.prior.h0.any()  # a buffer, never loaded: a fresh track is "not seen"


def test_the_markov_prior_imagines_past_its_training_length_on_the_sprite_world():
    """800 steps on 6-frame sequences of the controlled sprite world (as the GRU prior's learning test in
    test_imagination), then tracking for 8 frames, longer than any training sequence, and imagining 6 with the true
    actions: the imagined player beats copying its last position by 10% at every horizon. Measured on seeds 0 and 1
    (scripts/prior_length_study.py, 2026-12-03): worst ratio 0.63 at H = 1-6, where the GRU prior's reached
    0.85-1.08 at H = 5-6 (docs/imagination.md "The Markov prior")."""
    from sqair_world.evaluation.sprite_world import fit_sprite_world, player_errors, sprite_world_model

    torch.set_num_threads(min(2, torch.get_num_threads()))
    model = sprite_world_model(num_actions=5, prop_prior="markov")
    fit_sprite_world(model, steps=800, seed=0)
    errors = player_errors(model, seen=8, horizon=6)
    assert errors.found > 0.9
    for h, (imagined, copy) in enumerate(zip(errors.imagined, errors.copy_last)):
        assert imagined < 0.9 * copy, f"H={h + 1}: imagined {imagined:.2f} px, copy-last {copy:.2f} px"


def test_the_velocity_gain_extrapolates_the_last_displacement_and_starts_at_zero(tiny_sqair, tmp_path):
    """``prop_prior_velocity``: the where mean moves by tanh(10 g) * (where_{t-1} - where_{t-2}); g starts at zero, so a
    fine-tune from a Markov checkpoint starts as that checkpoint's prior; it needs the residual Markov prior."""
    from sqair_world.pretrain import init_weights
    from sqair_world.training.checkpoints import save_model

    torch.manual_seed(0)
    what = torch.randn(1, 3, tiny_sqair().cfg.n_what)
    a, b = torch.tensor([-2.0, -2.0, 0.1, 0.0]), torch.tensor([-2.0, -2.0, 0.3, -0.1])
    plain = tiny_sqair(prop_prior="markov", prop_prior_residual=True)
    save_model(tmp_path / "markov.pt", plain)
    fast = tiny_sqair(prop_prior="markov", prop_prior_residual=True, prop_prior_velocity=True)
    init_weights(fast, str(tmp_path / "markov.pt"))
    assert torch.equal(_prior_after(fast, [a, b], what), _prior_after(plain, [a, b], what))
    with torch.no_grad():
        fast.propagation.prior.velocity_gain.fill_(10.0)  # tanh(100) = 1: constant velocity on top of the MLP
    moved = _prior_after(fast, [a, b], what) - _prior_after(plain, [a, b], what)
    assert torch.allclose(moved, (b - a).expand_as(moved), atol=1e-5)
    assert torch.equal(_prior_after(fast, [b], what), _prior_after(plain, [b], what))  # a new track has not moved
    with pytest.raises(ValueError, match="prop_prior_velocity"):
        tiny_sqair(prop_prior_velocity=True)


def test_the_action_velocity_gain_depends_on_the_action_and_starts_as_the_global_gain(tiny_sqair, tmp_path):
    """``prop_prior_action_velocity``: the gain is tanh(10 g + d(features, action)) per object; d starts at zero, so a
    fine-tune from a velocity checkpoint starts as its prior, and with d trained the held action sets how far the last
    displacement carries. It needs the velocity term and actions."""
    from sqair_world.pretrain import init_weights
    from sqair_world.training.checkpoints import save_model

    torch.manual_seed(0)
    kw = dict(prop_prior="markov", prop_prior_residual=True, prop_prior_velocity=True, num_actions=3)
    what = torch.randn(1, 3, tiny_sqair().cfg.n_what)
    a, b = torch.tensor([-2.0, -2.0, 0.1, 0.0]), torch.tensor([-2.0, -2.0, 0.3, -0.1])

    def mean_after(model, action):
        prior, pres = model.propagation.prior, torch.ones(1, 3)
        h = prior(what, a.expand(1, 3, 4), pres, prior.h0.expand(1, 3, -1)).h
        return prior(what, b.expand(1, 3, 4), pres, h, torch.tensor([action])).where_mu

    plain = tiny_sqair(**kw)
    save_model(tmp_path / "velocity.pt", plain)
    acting = tiny_sqair(**kw, prop_prior_action_velocity=True)
    init_weights(acting, str(tmp_path / "velocity.pt"))
    assert not acting.propagation.prior.action_gain[-1].weight.any()
    assert all(torch.equal(mean_after(acting, k), mean_after(plain, k)) for k in range(3))
    gain = acting.propagation.prior.action_gain
    with torch.no_grad():  # d = 100: the gain is tanh(100) = 1, constant velocity on top of the MLP
        gain[-1].bias.fill_(100.0)
    held = mean_after(acting, 1) - mean_after(plain, 1)
    assert torch.allclose(held, (b - a).expand_as(held), atol=1e-5)
    with torch.no_grad():  # d of the features and the action: another action, another extrapolation
        gain[-1].bias.zero_(), gain[-1].weight.normal_()
    assert not torch.allclose(mean_after(acting, 0), mean_after(acting, 1))
    with pytest.raises(ValueError, match="prop_prior_action_velocity"):
        tiny_sqair(
            prop_prior="markov", prop_prior_residual=True, prop_prior_velocity=True, prop_prior_action_velocity=True
        )
    with pytest.raises(ValueError, match="prop_prior_action_velocity"):
        tiny_sqair(prop_prior_action_velocity=True)


def _moving_states(model, frames: int, velocity: torch.Tensor):
    """Posterior states of two objects moving at a constant ``velocity [4]`` per frame (the Markov prior's state
    carries where_{t-1})."""
    from sqair_world.model.types import Slots, TrackState

    cfg, R, N = model.cfg, 2, model.cfg.max_objects
    start = torch.tensor([-2.0, -2.0, -0.5, 0.0]).expand(R, N, 4).clone()
    start[:, 1, 2] = 0.4
    pres = torch.tensor([1.0, 1.0] + [0.0] * (N - 2)).expand(R, N)
    ids = torch.tensor([0, 1] + [-1] * (N - 2)).expand(R, N)
    what = torch.zeros(R, N, cfg.n_what)
    states = []
    for t in range(frames):
        h = torch.zeros(R, N, cfg.n_hidden)
        h[..., :4], h[..., 4] = start + (t - 1) * velocity, float(t > 0)
        z = Slots(what, start + t * velocity, pres, ids)
        states.append(TrackState(z, torch.zeros_like(h), h, torch.full((R,), 2), torch.full((R,), t + 1)))
    return states


def test_the_rollout_loss_trains_the_prior_alone_and_prefers_the_true_motion(tiny_sqair):
    """``prior_rollout_steps``: the mean rollout is scored 2..k frames ahead against the posterior; on objects moving
    at constant velocity a prior that extrapolates it (velocity gain tanh(10 g) = 1) scores better than one that stays,
    and the loss's gradient reaches the propagation prior's parameters only."""
    from sqair_world.model.priors import prior_rollout_loss

    model = tiny_sqair(prop_prior="markov", prop_prior_residual=True, prop_prior_velocity=True, prior_rollout_steps=3)
    prior = model.propagation.prior
    states = _moving_states(model, 6, torch.tensor([0.0, 0.0, 0.05, -0.03]))
    actions = [None] * 6
    stay = prior_rollout_loss(prior, states, actions, 3)
    stay.backward()
    assert (prior.velocity_gain.grad[2:] < 0).all()  # descent raises the gain of the coordinates that move
    grads = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert grads and all(n.startswith("propagation.prior.") for n in grads)
    with torch.no_grad():
        prior.velocity_gain.fill_(10.0)
    assert prior_rollout_loss(prior, states, actions, 3) < stay
    with pytest.raises(ValueError, match="prior_rollout_steps"):
        tiny_sqair(prior_rollout_steps=1)


def test_the_rollout_loss_enters_the_training_loss_only(tiny_sqair):
    """SQAIR.forward adds the rollout loss in training mode; evaluation (and the bound) is the paper's."""
    x = torch.rand(4, 2, *tiny_sqair().cfg.image_shape)
    losses = {}
    for steps in (0, 3):
        model = tiny_sqair(prop_prior="markov", prop_prior_residual=True, prior_rollout_steps=steps)
        for mode in ("train", "eval"):
            getattr(model, mode)()
            torch.manual_seed(1)
            out = model(x)
            losses[steps, mode] = (out.loss.item(), out.iwae.detach())
    assert losses[0, "train"][0] != losses[3, "train"][0]
    assert losses[0, "eval"][0] == losses[3, "eval"][0]
    assert torch.equal(losses[0, "train"][1], losses[3, "train"][1])
