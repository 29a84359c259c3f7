"""The Gymnasium plugin: preprocessing, slot wrappers (single and vector), registration, checkers, agents."""

import resource
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

import sqair_world  # noqa: F401  (registers the ids)
from sqair_world.agents.vec_env import SQAIRVecEnv
from sqair_world.envs.slots import SQAIRObservation
from sqair_world.envs.vector import SQAIRVectorObservation
from sqair_world.model.registry import build_model
from sqair_world.training.checkpoints import CheckpointError, save_model


@pytest.fixture(scope="module")
def atari_ckpt(tmp_path_factory):
    from sqair_world.training.experiments import ATARI_MODEL

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "pac.pt"
    save_model(
        path,
        build_model("mlp-sqair", **{**ATARI_MODEL, "n_hidden": 16, "n_what": 4, "n_hidden_small": 8}),
        extra={"env_id": "ALE/Pacman-v5"},
    )
    return path


def make_mm(tiny_ckpt, **kw):
    return gym.make("SQAIR-Wrapped/MovingMNIST", checkpoint=str(tiny_ckpt), **kw)


def test_atari_preprocessing_pools_erases_and_reports_ram():
    from sqair_world.envs.atari import make_maze_env

    env = make_maze_env("ALE/Pacman-v5", repeat_action_probability=0.0)
    obs, info = env.reset(seed=0)
    assert obs.shape == (84, 84, 3) and obs.dtype == np.uint8 and info["ram_xy"].shape == (5, 2)
    assert env._pellets.sum() > 500  # pellet positions found at reset
    for _ in range(5):
        obs, _, _, _, info = env.step(0)
    assert env.observation_space.contains(obs)
    with pytest.raises(ValueError, match="frameskip=1"):
        import ale_py

        from sqair_world.envs.atari import MazePreprocessing

        gym.register_envs(ale_py)
        MazePreprocessing(gym.make("ALE/Pacman-v5"))
    with pytest.raises(ValueError, match="no maze preprocessing"):
        make_maze_env("ALE/Breakout-v5")


def test_env_checkers_and_spaces(tiny_ckpt):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = make_mm(tiny_ckpt, imagine_horizon=2)
    space = env.observation_space
    assert space["pres"].shape == (3,) and space["where"].shape == (3, 4) and space["what"].shape == (3, 8)
    assert space["id"].dtype == np.int64 and space["imagined"].shape == (2, 3, 5)
    check_env(env, skip_render_check=True)
    with pytest.warns(UserWarning):
        sb3_check_env(env)
    obs, info = env.reset(seed=1)
    assert space.contains(obs) and np.isfinite(info["sqair_bound"])


def test_seeding_reset_and_num_slots(tiny_ckpt):
    env = make_mm(tiny_ckpt)
    a, _ = env.reset(seed=3)
    steps_a = [env.step(0)[0] for _ in range(3)]
    b, _ = env.reset(seed=3)
    steps_b = [env.step(0)[0] for _ in range(3)]
    for x, y in zip([a] + steps_a, [b] + steps_b):
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])
    env.reset(seed=4)
    inner = env
    while not isinstance(inner, SQAIRObservation):
        inner = inner.env
    assert int(inner.encoder.state.t[0]) == 1  # reset cleared the tracker: one frame seen
    more = make_mm(tiny_ckpt, num_slots=5)
    obs, _ = more.reset(seed=0)
    assert obs["pres"].shape == (5,) and np.all(obs["id"][3:] == -1)


def test_imagine_shapes_and_does_not_touch_the_env(tiny_ckpt):
    env = make_mm(tiny_ckpt)
    env.reset(seed=0)
    env.step(0)
    inner = env
    while not isinstance(inner, SQAIRObservation):
        inner = inner.env
    state_before = [t.clone() for t in inner.encoder.state.z]
    t_before = inner.env.unwrapped._t
    im = inner.imagine(horizon=4, num_samples=3, render=True)
    assert (
        im["pres"].shape == (4, 3, 3) and im["where"].shape == (4, 3, 3, 4) and im["frames"].shape == (4, 3, 50, 50, 1)
    )
    assert im["frames"].dtype == np.uint8
    assert inner.env.unwrapped._t == t_before
    assert all(torch.equal(a, b) for a, b in zip(state_before, inner.encoder.state.z))


def test_clear_errors(tiny_ckpt, atari_ckpt, tmp_path, monkeypatch):
    from sqair_world.envs import factory

    monkeypatch.setattr(factory, "CHECKPOINT_DIR", tmp_path)  # as on an install that lacks the shipped file
    with pytest.raises(FileNotFoundError, match="pretrain atari --env ALE/Pacman-v5"):
        gym.make("SQAIR-Wrapped/Pacman")
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="does not exist"):
        make_mm(tmp_path / "nope.pt")
    with pytest.raises(ValueError, match="no maze preprocessing"):
        from sqair_world.envs import make_sqair_env

        make_sqair_env("ALE/Breakout-v5", checkpoint=str(tiny_ckpt))
    with pytest.raises(ValueError, match="reads frames of shape"):  # an Atari checkpoint on MNIST frames
        make_mm(atari_ckpt)
    with pytest.raises(ValueError, match="trained on ALE/Pacman-v5"):
        gym.make("SQAIR-Wrapped/MsPacman", checkpoint=str(atari_ckpt))


def test_pacman_wrapped_env_runs(atari_ckpt):
    env = gym.make("SQAIR-Wrapped/Pacman", checkpoint=str(atari_ckpt), include_frame=True)
    obs, info = env.reset(seed=0)
    assert obs["frame"].shape == (84, 84, 3) and obs["pres"].shape == (6,) and "ram_xy" in info
    obs, r, term, trunc, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs)
    assert env.render().shape == (336, 336, 3)


def _per_env_reference(tiny_ckpt, seeds, steps, seq_len):
    envs = [make_mm(tiny_ckpt, seq_len=seq_len) for _ in seeds]
    obs = [e.reset(seed=s)[0] for e, s in zip(envs, seeds)]
    out = [obs]
    for _ in range(steps):
        row = []
        for e in envs:
            o, _, term, trunc, _ = e.step(0)
            if term or trunc:
                o, _ = e.reset()
            row.append(o)
        out.append(row)
    return out


def test_gymnasium_vector_wrapper_equals_per_env_wrappers_across_autoreset(tiny_ckpt):
    from sqair_world.envs.factory import load_default_model, make_moving_mnist_env

    seeds, steps, seq_len = [0, 1, 2], 9, 4
    venv = gym.vector.SyncVectorEnv([lambda: make_moving_mnist_env(seq_len=seq_len) for _ in seeds])
    venv = SQAIRVectorObservation(venv, load_default_model("MovingMNIST", tiny_ckpt))
    obs, _ = venv.reset(seed=seeds)
    got = [obs]
    for _ in range(steps):
        got.append(venv.step(np.zeros(3, int))[0])
    # next-step autoreset: after an episode ends, the next step returns the reset frame (no reward step)
    ref_envs = [make_mm(tiny_ckpt, seq_len=seq_len) for _ in seeds]
    ref_obs = [e.reset(seed=s)[0] for e, s in zip(ref_envs, seeds)]
    ended = [False] * 3
    for t in range(steps + 1):
        if t > 0:
            for i, e in enumerate(ref_envs):
                if ended[i]:
                    ref_obs[i], _ = e.reset()
                    ended[i] = False
                else:
                    ref_obs[i], _, term, trunc, _ = e.step(0)
                    ended[i] = term or trunc
        for i in range(3):
            np.testing.assert_array_equal(got[t]["id"][i], ref_obs[i]["id"])
            np.testing.assert_allclose(got[t]["where"][i], ref_obs[i]["where"], atol=1e-4)


def test_sb3_vecenv_wrapper_equals_per_env_wrappers_and_keeps_terminal_slots(tiny_ckpt):
    from stable_baselines3.common.vec_env import DummyVecEnv

    from sqair_world.envs.factory import load_default_model, make_moving_mnist_env

    seeds, steps, seq_len = [5, 6], 7, 4
    base = DummyVecEnv([lambda: make_moving_mnist_env(seq_len=seq_len) for _ in seeds])
    base.seed(5)  # DummyVecEnv seeds env i with seed + i
    venv = SQAIRVecEnv(base, load_default_model("MovingMNIST", tiny_ckpt))
    obs = venv.reset()
    ref = _per_env_reference(tiny_ckpt, seeds, steps, seq_len)
    np.testing.assert_array_equal(obs["id"], np.stack([o["id"] for o in ref[0]]))
    saw_terminal = False
    for t in range(1, steps + 1):
        obs, _, dones, infos = venv.step(np.zeros(2, int))
        for i in range(2):
            np.testing.assert_array_equal(obs["id"][i], ref[t][i]["id"])
            np.testing.assert_allclose(obs["where"][i], ref[t][i]["where"], atol=1e-4)
            if dones[i]:
                term = infos[i]["terminal_observation"]
                assert set(term) >= {"pres", "where", "what", "id"}
                saw_terminal = True
    assert saw_terminal


def _rss_growth_mb(env, warmup: int, steps: int) -> float:
    """Peak-RSS growth (MiB) over ``steps`` env steps after ``warmup`` steps that fill caches and pools."""
    env.reset(seed=0)
    for i in range(warmup + steps):
        if i == warmup:
            start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        _, _, term, trunc, _ = env.step(0)
        if term or trunc:
            env.reset()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start) / 1024


def test_run_does_not_grow_memory(tiny_ckpt):
    grown_mb = _rss_growth_mb(make_mm(tiny_ckpt, seq_len=1000), warmup=300, steps=1000)
    assert grown_mb < 10, grown_mb


def test_10000_step_run_does_not_grow_memory(tiny_ckpt):
    grown_mb = _rss_growth_mb(make_mm(tiny_ckpt, seq_len=1000), warmup=1000, steps=10_000)
    assert grown_mb < 30, grown_mb


def test_slot_extractor_is_permutation_invariant_and_ignores_empty_slots(tiny_ckpt):
    from sqair_world.agents import SlotExtractor

    env = make_mm(tiny_ckpt)
    ext = SlotExtractor(env.observation_space, hidden=16)
    torch.manual_seed(0)
    obs = {
        "pres": torch.tensor([[1.0, 1.0, 0.0]]),
        "where": torch.rand(1, 3, 4),
        "what": torch.randn(1, 3, 8),
        "id": torch.tensor([[3, 4, -1]]),
    }
    perm = {k: v[:, [1, 0, 2]] for k, v in obs.items()}
    torch.testing.assert_close(ext(obs), ext(perm))
    junk = dict(obs, what=obs["what"].clone())
    junk["what"][:, 2] = 1e3
    torch.testing.assert_close(ext(obs), ext(junk))
    assert ext(obs).shape == (1, ext.features_dim)


def test_ppo_cli_smoke(tiny_ckpt, capsys):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "sqair_world.agents.train_ppo",
            "--env",
            "SQAIR-Wrapped/MovingMNIST",
            "--checkpoint",
            str(tiny_ckpt),
            "--timesteps",
            "64",
            "--n-envs",
            "2",
            "--n-steps",
            "32",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    from sqair_world.agents.train_ppo import main  # the error path in-process: no second interpreter start-up

    assert main(["--env", "Pacman"]) == 2
    assert "SQAIR-Wrapped" in capsys.readouterr().err


def test_versioned_ids_follow_gymnasium_conventions():
    with pytest.raises(gym.error.Error):
        gym.make("SQAIR-Wrapped/Pacman-v0")
