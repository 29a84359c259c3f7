"""The Gymnasium vector wrapper under same-step autoreset equals per-env wrappers reset on the spot; make_vec and
partial resets. The comparisons run on a model whose objects appear and vanish (test_gym.save_lively_checkpoint)."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from test_gym import assert_slots_change, save_lively_checkpoint

import sqair_world  # noqa: F401  (registers the ids)
from sqair_world.envs.factory import load_default_model, make_moving_mnist_env
from sqair_world.envs.slots import SlotEncoder
from sqair_world.envs.vector import SQAIRVectorObservation


@pytest.fixture(scope="module")
def lively_ckpt(tmp_path_factory):
    return save_lively_checkpoint(tmp_path_factory.mktemp("ckpt") / "lively.pt")


def test_same_step_autoreset_clears_the_row_that_ends(lively_ckpt):
    seeds, steps, seq_len = [0, 1], 7, 3
    venv = gym.vector.SyncVectorEnv(
        [lambda: make_moving_mnist_env(seq_len=seq_len) for _ in seeds], autoreset_mode=AutoresetMode.SAME_STEP
    )
    venv = SQAIRVectorObservation(venv, str(lively_ckpt))
    assert venv.autoreset_mode == AutoresetMode.SAME_STEP
    got = [venv.reset(seed=seeds)[0]] + [venv.step(np.zeros(2, int))[0] for _ in range(steps)]
    assert_slots_change(np.stack([o["id"] for o in got]))
    refs = [gym.make("SQAIR-Wrapped/MovingMNIST", checkpoint=str(lively_ckpt), seq_len=seq_len) for _ in seeds]
    ref = [[e.reset(seed=s)[0] for e, s in zip(refs, seeds)]]
    for _ in range(steps):
        row = []
        for e in refs:
            o, _, term, trunc, _ = e.step(0)
            row.append(e.reset()[0] if term or trunc else o)
        ref.append(row)
    for t in range(steps + 1):
        for i in range(2):
            np.testing.assert_array_equal(got[t]["id"][i], ref[t][i]["id"])
            np.testing.assert_array_equal(got[t]["pres"][i], ref[t][i]["pres"])
            np.testing.assert_allclose(got[t]["where"][i], ref[t][i]["where"], atol=1e-4)
            np.testing.assert_allclose(got[t]["what"][i], ref[t][i]["what"], atol=1e-4)


def test_make_vec_uses_the_batched_vector_entry_point(lively_ckpt):
    venv = gym.make_vec("SQAIR-Wrapped/MovingMNIST", num_envs=3, checkpoint=str(lively_ckpt), num_slots=2)
    assert isinstance(venv, SQAIRVectorObservation)
    assert venv.observation_space["where"].shape == (3, 2, 4)
    got = [venv.reset(seed=[7, 8, 9])[0]] + [venv.step(np.zeros(3, int))[0] for _ in range(4)]
    assert_slots_change(np.stack([o["id"] for o in got]))
    for i, seed in enumerate([7, 8, 9]):
        env = gym.make("SQAIR-Wrapped/MovingMNIST", checkpoint=str(lively_ckpt), num_slots=2)
        ref = [env.reset(seed=seed)[0]] + [env.step(0)[0] for _ in range(4)]
        for t in range(5):
            np.testing.assert_array_equal(got[t]["id"][i], ref[t]["id"])
            np.testing.assert_allclose(got[t]["what"][i], ref[t]["what"], atol=1e-4)
    with pytest.raises(ValueError, match="num_envs must be >= 1, got 0"):
        gym.make_vec("SQAIR-Wrapped/MovingMNIST", num_envs=0, checkpoint=str(lively_ckpt))
    with pytest.raises(ValueError, match=r"num_slots must be in 1\.\.3"):
        gym.make_vec("SQAIR-Wrapped/MovingMNIST", num_envs=2, checkpoint=str(lively_ckpt), num_slots=7)


def test_disabled_autoreset_partial_reset_retracks_only_the_masked_envs(lively_ckpt):
    seeds, seq_len = [0, 1], 3
    venv = gym.vector.SyncVectorEnv(
        [lambda: make_moving_mnist_env(seq_len=seq_len) for _ in seeds], autoreset_mode=AutoresetMode.DISABLED
    )
    venv = SQAIRVectorObservation(venv, load_default_model("MovingMNIST", lively_ckpt), include_frame=True)
    venv.reset(seed=seeds)
    for _ in range(2):
        before, *_ = venv.step(np.zeros(2, int))
    t_before = venv.encoder.state.t.clone()
    obs, info = venv.reset(options={"reset_mask": np.array([True, False])})
    # env 1 keeps its slots and tracker (not re-tracked on a repeated frame); env 0 restarts
    np.testing.assert_array_equal(obs["id"][1], before["id"][1])
    assert int(venv.encoder.state.t[1]) == int(t_before[1]) and int(venv.encoder.state.t[0]) == 1
    fresh = SlotEncoder(load_default_model("MovingMNIST", lively_ckpt), 1).encode(obs["frame"][:1])  # a new tracker
    np.testing.assert_array_equal(obs["id"][0], fresh["id"][0])
    np.testing.assert_allclose(obs["where"][0], fresh["where"][0], atol=1e-4)
