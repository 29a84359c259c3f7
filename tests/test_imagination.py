"""Action-conditioned imagination (issue #22): the action enters the propagation prior, imagine's actions are
checked, the wrappers imagine without touching the tracker or the env, and the prediction metrics on known arrays."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from sqair_world.envs.factory import make_moving_mnist_env
from sqair_world.envs.slots import SQAIRObservation
from sqair_world.evaluation.prediction import PredictionRollout, best_baseline, prediction_errors
from sqair_world.model.types import Slots, TrackState
from sqair_world.training.trainer import TrainConfig, Trainer


def _state(model, rows: int = 2) -> TrackState:
    """One present object per row, one frame seen (so imagination runs the propagation prior)."""
    s = model.initial_state(rows)
    pres = torch.zeros_like(s.z.pres)
    pres[:, 0] = 1
    where = torch.tensor([-2.0, -2.0, 0.1, -0.2]).expand_as(s.z.where).clone()
    z = Slots(torch.randn_like(s.z.what) * pres.unsqueeze(-1), where, pres, torch.where(pres > 0, 0, -1))
    return s._replace(z=z, t=torch.ones_like(s.t), next_id=torch.ones_like(s.next_id))


def _imagined_where(model, state, actions, seed=0):
    torch.manual_seed(seed)
    return model.imagine(state, 3, 2, actions=actions).z.where


def test_the_action_enters_the_prior_and_starts_as_the_unconditional_one(tiny_sqair):
    plain, acting = tiny_sqair(), tiny_sqair(num_actions=4)
    acting.load_state_dict(plain.state_dict(), strict=False)  # the action effect keeps its zero start
    state = _state(plain)
    a0 = torch.zeros(3, 2, dtype=torch.long)
    # zero start: the action-conditioned prior imagines exactly what the unconditional one does
    assert torch.equal(_imagined_where(plain, state, None), _imagined_where(acting, state, a0))
    with torch.no_grad():
        acting.propagation.prior.action_effect[-1].weight.normal_()
    w0, w1 = _imagined_where(acting, state, a0), _imagined_where(acting, state, a0 + 1)
    assert not torch.allclose(w0[:, :, :, 0], w1[:, :, :, 0])  # another action, another imagined position
    assert torch.equal(w0, _imagined_where(acting, state, a0))  # seeded: the same actions give the same future
    per_sample = torch.zeros(3, 2, 2, dtype=torch.long)
    per_sample[:, :, 1] = 1  # [H, R, S]: the second sample takes action 1
    w = _imagined_where(acting, state, per_sample)
    assert w.shape == (3, 2, 2, acting.cfg.max_objects, 4)


def test_the_mean_rollout_follows_the_prior_means(tiny_sqair):
    """``mean=True``: tracked objects take the propagation prior's means, the same for every sample and seed, and
    stay while its presence probability is over 0.5."""
    model = tiny_sqair()
    state = _state(model)
    torch.manual_seed(0)
    a = model.imagine(state, 3, 2, mean=True).z
    torch.manual_seed(1)
    b = model.imagine(state, 3, 2, mean=True).z
    tracked = a.id == 0  # the object of slot 0 as long as it is kept
    assert torch.equal(a.where[tracked], b.where[tracked]) and torch.equal(a.pres[..., 0], b.pres[..., 0])
    assert torch.equal(a.where[:, :, 0, 0], a.where[:, :, 1, 0])  # no noise: the samples coincide
    pp = model.propagation.prior(state.z.what, state.z.where, state.z.pres, state.h_prior, None)
    kept = (pp.pres_logit[:, 0] > 0).float()
    torch.testing.assert_close(a.pres[0, :, 0, 0], kept)
    first = kept > 0
    assert first.any()
    torch.testing.assert_close(a.where[0, first, 0, 0], pp.where_mu[first, 0])
    sampled = model.imagine(state, 3, 2).z.where[0, first, :, 0]
    assert not torch.allclose(sampled, pp.where_mu[first, 0].unsqueeze(1).expand_as(sampled))


def test_imagine_and_forward_refuse_bad_actions(tiny_sqair):
    plain, acting = tiny_sqair(), tiny_sqair(num_actions=4)
    state = _state(acting)
    with pytest.raises(ValueError, match="not conditioned on actions"):
        plain.imagine(state, 3, actions=torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"shape \(3, 2\)"):
        acting.imagine(state, 3, actions=torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        acting.imagine(state, 3, actions=torch.full((3, 2), 4))
    with pytest.raises(TypeError, match="integer"):
        acting.imagine(state, 3, actions=torch.zeros(3, 2))
    x = torch.rand(3, 2, 1, 24, 24)
    with pytest.raises(ValueError, match=r"shape \(3, 2\)"):
        acting(x, k=2, actions=torch.zeros(3, 1, dtype=torch.long))
    out = acting(x, k=2, actions=torch.randint(4, (3, 2)))
    out.loss.backward()
    assert acting.propagation.prior.action_effect[-1].weight.grad is not None


def test_the_trainer_feeds_the_actions_and_refuses_missing_ones(tiny_sqair, tmp_path):
    model = tiny_sqair(num_actions=3)
    x = np.random.default_rng(0).integers(0, 255, (4, 8, 1, 24, 24), dtype=np.uint8)
    acts = np.random.default_rng(1).integers(0, 3, (4, 8))
    cfg = TrainConfig(steps=2, batch_size=4, curriculum_max=4, run_dir=str(tmp_path), progress=False, tensorboard=False)
    with pytest.raises(ValueError, match="pass train_actions"):
        Trainer(model, x, x[:, :4], cfg)
    with pytest.raises(ValueError, match="int \\[T, S\\]"):
        Trainer(model, x, x[:, :4], cfg, train_actions=acts[:, :3], val_actions=acts[:, :4])
    with pytest.raises(ValueError, match="not conditioned"):
        Trainer(tiny_sqair(), x, x[:, :4], cfg, train_actions=acts, val_actions=acts[:, :4])
    trainer = Trainer(model, x, x[:, :4], cfg, train_actions=acts, val_actions=acts[:, :4])
    before = model.propagation.prior.action_effect[0].weight.detach().clone()
    trainer.fit()
    assert trainer.step == 2
    assert not torch.equal(before, model.propagation.prior.action_effect[0].weight)  # the action effect learns


@pytest.fixture
def acting_env(tiny_sqair):
    """Moving MNIST (one action) wrapped with an action-conditioned tiny model."""
    model = tiny_sqair(image_shape=(1, 50, 50), glimpse_size=(20, 20), n_what=8, num_actions=1, disc_step_bias=5.0)
    return SQAIRObservation(make_moving_mnist_env(), model, device="cpu")


def test_wrapper_imagines_the_given_actions_without_touching_tracker_or_env(acting_env):
    env = acting_env
    env.reset(seed=0)
    env.step(0)
    before = [a.clone() for a in env.encoder.state.z] + [env.encoder.state.t.clone()]
    env_t = env.env.unwrapped._t
    im = env.imagine(4, 3, actions=np.zeros(4, np.int64))
    assert im["where"].shape == (4, 3, 3, 4) and im["id"].shape == (4, 3, 3)
    after = [*env.encoder.state.z, env.encoder.state.t]
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert env.env.unwrapped._t == env_t
    with pytest.raises(ValueError, match="4 steps but the horizon is 5"):
        env.imagine(5, 1, actions=np.zeros(4, np.int64))
    with pytest.raises(ValueError, match=r"action space \[0, 1\)"):
        env.imagine(2, 1, actions=np.array([0, 3]))


def test_wrappers_refuse_actions_for_an_unconditional_checkpoint_and_a_mismatched_action_space(tiny_ckpt, tiny_sqair):
    env = gym.make("SQAIR-Wrapped/MovingMNIST", checkpoint=str(tiny_ckpt))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="not conditioned on actions"):
        env.get_wrapper_attr("imagine")(2, 1, actions=[0, 0])
    model = tiny_sqair(image_shape=(1, 50, 50), glimpse_size=(20, 20), n_what=8, num_actions=5)
    with pytest.raises(ValueError, match="conditioned on 5 discrete actions"):
        SQAIRObservation(make_moving_mnist_env(), model, device="cpu")


@pytest.mark.parametrize("game", ["Pacman", "MsPacman"])
def test_shipped_velocity_checkpoints_load_by_name_and_follow_the_action(game):
    """The shipped action-conditioned checkpoints: RIGHT and LEFT for 5 steps move some tracked object apart."""
    env = gym.make(f"SQAIR-Wrapped/{game}", checkpoint=f"{game.lower()}_velocity")
    obs, _ = env.reset(seed=0)
    for _ in range(30):
        obs, *_ = env.step(2)
    imagine = env.get_wrapper_attr("imagine")
    right, left = (imagine(5, 1, actions=[a] * 5, mean=True)["where"][-1, 0] for a in (2, 3))  # [N, 4]
    tracked = obs["pres"] > 0
    assert tracked.sum() >= 2
    assert np.abs(right - left)[tracked, :2].max() > 0.01  # about 1 px of the 84-px frame
    with pytest.raises(FileNotFoundError, match="shipped: .*pacman_velocity"):
        gym.make(f"SQAIR-Wrapped/{game}", checkpoint="pacman_speed")


def _line_rollout(noise: float = 0.0) -> PredictionRollout:
    """One object moving 1 px per step to the right; imagination that knows it, plus ``noise`` px."""
    T, H, S = 12, 3, 2
    x = np.arange(T, dtype=float)
    centres = np.stack([x, np.full(T, 20.0)], -1)[:, None]  # [T, 1, 2]
    ids = np.zeros((T, 1), int)
    future = centres[:, None, None] + np.arange(1, H + 1)[None, :, None, None, None] * np.array([1.0, 0.0])
    future = future + noise * np.array([0.0, 1.0])
    truth = centres + np.array([0.5, 0.0])  # the true centre, half a pixel right of the box
    return PredictionRollout(ids, centres, np.zeros((T, H, S, 1), int), future, np.zeros(T, int), truth, 0)


def test_prediction_errors_on_known_motion():
    r = prediction_errors(_line_rollout())
    assert np.allclose(r["tracked"]["imagined"], 0) and np.allclose(r["tracked"]["copy_last"], [1, 2, 3])
    # exact from t = 1 on; at t = 0 there is no velocity yet and it copies the last position (error h)
    assert np.allclose(r["tracked"]["constant_velocity"], [1 / 11, 2 / 10, 3 / 9])
    assert np.allclose(r["truth"]["copy_last"], [1.5, 2.5, 3.5]) and np.allclose(r["player"]["imagined"], 0.5)
    assert r["presence_acc"] == [1.0, 1.0, 1.0] and r["coverage"] == [1.0, 1.0, 1.0]
    noisy = prediction_errors(_line_rollout(noise=2.0))
    assert np.allclose(noisy["tracked"]["imagined"], 2.0)
    assert np.allclose(best_baseline(noisy["tracked"]), r["tracked"]["constant_velocity"])
    # an episode boundary: no prediction crosses it, and the velocity is not taken across it
    roll = _line_rollout()._replace(episodes=np.repeat([0, 1], 6))
    assert prediction_errors(roll)["triples"]["tracked"] == [10, 8, 6]


def test_prediction_errors_follow_identities_not_slots():
    roll = _line_rollout()
    ids = np.concatenate([roll.ids, np.full_like(roll.ids, -1)], 1)[:, ::-1]  # the object in slot 1, slot 0 empty
    centres = np.concatenate([np.zeros_like(roll.centres), roll.centres], 1)
    im_ids = np.concatenate([roll.imagined_ids, np.full_like(roll.imagined_ids, -1)], -1)  # imagined in slot 0
    im_c = np.concatenate([roll.imagined_centres, np.full_like(roll.imagined_centres, 99.0)], -2)
    r = prediction_errors(roll._replace(ids=ids, centres=centres, imagined_ids=im_ids, imagined_centres=im_c))
    assert np.allclose(r["tracked"]["imagined"], 0)


def test_vector_wrappers_imagine_all_envs_in_one_call(tiny_sqair):
    from sqair_world.agents.vec_env import SQAIRVecEnv
    from sqair_world.envs.vector import SQAIRVectorObservation

    model = tiny_sqair(image_shape=(1, 50, 50), glimpse_size=(20, 20), n_what=8, num_actions=1, disc_step_bias=5.0)
    venv = SQAIRVectorObservation(gym.vector.SyncVectorEnv([make_moving_mnist_env] * 3), model, device="cpu")
    venv.reset(seed=0)
    venv.step(np.zeros(3, np.int64))
    im = venv.imagine(4, 2, actions=np.zeros((3, 4), np.int64))
    assert im["where"].shape == (3, 4, 2, 3, 4) and im["pres"].shape == (3, 4, 2, 3)
    with pytest.raises(ValueError, match=r"shape \[envs, horizon\]"):
        venv.imagine(4, 2, actions=np.zeros((2, 4), np.int64))
    from stable_baselines3.common.env_util import make_vec_env

    sb3 = SQAIRVecEnv(make_vec_env(make_moving_mnist_env, n_envs=2), model, device="cpu")
    sb3.reset()
    sb3.step(np.zeros(2, np.int64))
    assert sb3.imagine(3, 1, actions=np.zeros((2, 3), np.int64))["id"].shape == (2, 3, 1, 3)


def test_imagination_learns_to_follow_the_action_on_the_sprite_world():
    """A short run (800 steps, cosine-decayed lr) on the in-package sprite world, whose sprite 0 follows the
    actions: the imagined position of that sprite, with the true actions, beats copying its last position at
    every horizon 1-3. A constant lr of 3e-3 is noisy step to step (seeds swing between 0.5 and 1.2 of copy-last
    at step 400-1000), so the decay is what makes the end point stable; over seeds 0, 1, 4, 5 the worst ratio
    at the end was 0.79."""
    from sqair_world.evaluation.sprite_world import fit_sprite_world, player_errors, sprite_world_model

    torch.set_num_threads(min(2, torch.get_num_threads()))
    model = sprite_world_model(num_actions=5)
    fit_sprite_world(model, steps=800, seed=0)
    errors = player_errors(model, seen=4, horizon=3, num_sequences=32)
    assert errors.found > 0.9
    for h, (imagined, copy) in enumerate(zip(errors.imagined, errors.copy_last)):
        assert imagined < 0.9 * copy, f"H={h + 1}: imagined {imagined:.2f} px, copy-last {copy:.2f} px"
