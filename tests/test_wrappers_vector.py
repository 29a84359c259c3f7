"""The Gymnasium vector wrapper under same-step autoreset equals per-env wrappers reset on the spot."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import sqair_world  # noqa: F401  (registers the ids)
from sqair_world.envs.factory import load_default_model, make_moving_mnist_env
from sqair_world.envs.slots import SlotEncoder
from sqair_world.envs.vector import SQAIRVectorObservation


def test_same_step_autoreset_clears_the_row_that_ends(tiny_ckpt):
    seeds, steps, seq_len = [0, 1], 7, 3
    venv = gym.vector.SyncVectorEnv(
        [lambda: make_moving_mnist_env(seq_len=seq_len) for _ in seeds], autoreset_mode=AutoresetMode.SAME_STEP
    )
    venv = SQAIRVectorObservation(venv, load_default_model("MovingMNIST", tiny_ckpt))
    assert venv.autoreset_mode == AutoresetMode.SAME_STEP
    got = [venv.reset(seed=seeds)[0]] + [venv.step(np.zeros(2, int))[0] for _ in range(steps)]
    refs = [gym.make("SQAIR-Wrapped/MovingMNIST", checkpoint=str(tiny_ckpt), seq_len=seq_len) for _ in seeds]
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
            np.testing.assert_allclose(got[t]["where"][i], ref[t][i]["where"], atol=1e-4)
            np.testing.assert_allclose(got[t]["what"][i], ref[t][i]["what"], atol=1e-4)


def test_make_vec_uses_the_batched_vector_entry_point(tiny_ckpt):
    venv = gym.make_vec("SQAIR-Wrapped/MovingMNIST", num_envs=3, checkpoint=str(tiny_ckpt))
    assert isinstance(venv, SQAIRVectorObservation)
    assert venv.observation_space["where"].shape == (3, 3, 4)
    obs, _ = venv.reset(seed=[7, 8, 9])
    obs, *_ = venv.step(np.zeros(3, int))
    for i, seed in enumerate([7, 8, 9]):
        env = gym.make("SQAIR-Wrapped/MovingMNIST", checkpoint=str(tiny_ckpt))
        env.reset(seed=seed)
        ref, *_ = env.step(0)
        np.testing.assert_array_equal(obs["id"][i], ref["id"])
        np.testing.assert_allclose(obs["what"][i], ref["what"], atol=1e-4)
    with pytest.raises(ValueError, match="num_envs"):
        gym.make_vec("SQAIR-Wrapped/MovingMNIST", num_envs=0, checkpoint=str(tiny_ckpt))


def test_disabled_autoreset_partial_reset_retracks_only_the_masked_envs(tiny_ckpt):
    seeds, seq_len = [0, 1], 3
    venv = gym.vector.SyncVectorEnv(
        [lambda: make_moving_mnist_env(seq_len=seq_len) for _ in seeds], autoreset_mode=AutoresetMode.DISABLED
    )
    venv = SQAIRVectorObservation(venv, load_default_model("MovingMNIST", tiny_ckpt), include_frame=True)
    venv.reset(seed=seeds)
    for _ in range(2):
        before, *_ = venv.step(np.zeros(2, int))
    t_before = venv.encoder.state.t.clone()
    obs, info = venv.reset(options={"reset_mask": np.array([True, False])})
    # env 1 keeps its slots and tracker (not re-tracked on a repeated frame); env 0 restarts
    np.testing.assert_array_equal(obs["id"][1], before["id"][1])
    assert int(venv.encoder.state.t[1]) == int(t_before[1]) and int(venv.encoder.state.t[0]) == 1
    fresh = SlotEncoder(load_default_model("MovingMNIST", tiny_ckpt), 1).encode(obs["frame"][:1])  # a new tracker
    np.testing.assert_array_equal(obs["id"][0], fresh["id"][0])
    np.testing.assert_allclose(obs["where"][0], fresh["where"][0], atol=1e-4)
