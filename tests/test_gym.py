"""The Gymnasium plugin: preprocessing, slot wrappers (single and vector), registration, checkers, agents."""

import resource
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch

import sqair_world  # noqa: F401  (registers the ids)
from sqair_world.agents.vec_env import SQAIRVecEnv
from sqair_world.envs import ENV_IDS
from sqair_world.envs.slots import SQAIRObservation
from sqair_world.envs.vector import SQAIRVectorObservation
from sqair_world.model.registry import build_model
from sqair_world.training.checkpoints import CheckpointError, save_model


def _tiny_atari_checkpoint(path, env_id):
    from sqair_world.training.experiments import ATARI_MODEL

    torch.manual_seed(0)
    model = build_model("mlp-sqair", **{**ATARI_MODEL, "n_hidden": 16, "n_what": 4, "n_hidden_small": 8})
    save_model(path, model, extra={"env_id": env_id})
    return path


@pytest.fixture(scope="module")
def atari_ckpt(tmp_path_factory):
    return _tiny_atari_checkpoint(tmp_path_factory.mktemp("ckpt") / "pac.pt", "ALE/Pacman-v5")


def save_lively_checkpoint(path):
    """A small untrained moving-MNIST model whose presence logits start at 0 instead of favouring presence: on
    the frames of an episode objects appear and vanish and new identities are handed out, so that tests comparing
    two ways of tracking can fail."""
    torch.manual_seed(0)
    model = build_model("mlp-sqair", n_hidden=32, n_what=8, n_hidden_small=16, disc_step_bias=0.0, prop_step_bias=0.0)
    save_model(path, model)
    return path


@pytest.fixture(scope="module")
def lively_ckpt(tmp_path_factory):
    return save_lively_checkpoint(tmp_path_factory.mktemp("ckpt") / "lively.pt")


def assert_slots_change(ids: np.ndarray) -> None:
    """Slot ids ``[T, E, N]`` of a run: some slot turns on or off, and some frame shows an id its env's previous
    frame did not."""
    present = ids >= 0
    assert (present[1:] != present[:-1]).any(), "no slot turned on or off during the run"
    new = [(t, e) for t in range(1, len(ids)) for e in range(ids.shape[1]) if set(ids[t, e]) - set(ids[t - 1, e])]
    assert new, "no new identity appeared during the run"


def make_mm(ckpt, **kw):
    return gym.make("SQAIR-Wrapped/MovingMNIST", checkpoint=str(ckpt), **kw)


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
    with pytest.warns(UserWarning, match="Box observation space (minimum|maximum) value is"):  # what is unbounded
        check_env(env)
    with pytest.warns(UserWarning, match="observation (what|where) has an unconventional shape"):
        sb3_check_env(env)
    obs, info = env.reset(seed=1)
    assert space.contains(obs) and np.isfinite(info["sqair_bound"])


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_every_id_passes_check_env_and_is_rebuilt_from_its_spec(env_id, tiny_ckpt, tmp_path):
    """gym.make(env.spec) rebuilds the same env with its keyword arguments (every wrapper records them), and the
    spec names the registered id, not the ALE game inside. MsPacman runs on the shipped checkpoint (no checkpoint=
    in its spec), the others on tiny ones."""
    from gymnasium.utils.env_checker import check_env

    kwargs = {"num_slots": 2, "frameskip": 3} if env_id != "SQAIR-Wrapped/MovingMNIST" else {"num_slots": 2}
    if env_id == "SQAIR-Wrapped/MovingMNIST":
        kwargs["checkpoint"] = str(tiny_ckpt)
    elif env_id == "SQAIR-Wrapped/Pacman":
        kwargs["checkpoint"] = str(_tiny_atari_checkpoint(tmp_path / "pac.pt", "ALE/Pacman-v5"))
    env = gym.make(env_id, **kwargs)
    assert env.spec.id == env_id and env.spec.kwargs == {"game": env_id.split("/")[1], **kwargs}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*Box observation space (minimum|maximum) value is")  # what is unbounded
        warnings.filterwarnings("ignore", ".*is different from the unwrapped version")  # gym.make's wrappers
        check_env(env)
    again = gym.make(env.spec)
    assert again.spec == env.spec and again.observation_space == env.observation_space
    recorded = {w.name: w.kwargs for w in again.spec.additional_wrappers}
    assert recorded["SQAIRObservation"]["num_slots"] == 2
    if env_id != "SQAIR-Wrapped/MovingMNIST":
        assert recorded["MazePreprocessing"]["repeat"] == 3
    for a, b in [(env.reset(seed=0)[0], again.reset(seed=0)[0]), (env.step(0)[0], again.step(0)[0])]:
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_a_wrapper_applied_by_hand_is_rebuilt_from_its_spec(lively_ckpt):
    """A wrapper applied to a made env of frames, with a model in memory (never saved), is recreated from the spec;
    a loaded model is recorded by its checkpoint path."""
    from sqair_world.envs import load_default_model

    if "SQAIRTest/MovingMNISTFrames-v0" not in gym.registry:
        gym.register("SQAIRTest/MovingMNISTFrames-v0", entry_point="sqair_world.envs.moving_mnist:MovingMNISTEnv")
    model = build_model("mlp-sqair", n_hidden=32, n_what=8, n_hidden_small=16)
    env = SQAIRObservation(gym.make("SQAIRTest/MovingMNISTFrames-v0", seq_len=4), model, device="cpu", num_slots=2)
    again = gym.make(env.spec)
    assert isinstance(again, SQAIRObservation) and again.observation_space == env.observation_space
    for a, b in [(env.reset(seed=1)[0], again.reset(seed=1)[0]), (env.step(0)[0], again.step(0)[0])]:
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    frames = gym.make("SQAIRTest/MovingMNISTFrames-v0")
    saved = SQAIRObservation(frames, load_default_model("MovingMNIST", lively_ckpt))
    assert saved.spec.additional_wrappers[-1].kwargs["model"] == str(lively_ckpt)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_slots": 0}, r"num_slots must be in 1\.\.3 .* got 0"),
        ({"num_slots": 4}, r"num_slots must be in 1\.\.3 .* got 4"),
        ({"imagine_horizon": -1}, r"imagine_horizon must be >= 0 .* got -1"),
        ({"threads": 0}, r"threads must be >= 1 or None .* got 0"),
        ({"device": "tpu"}, r"unknown device 'tpu'; use auto, cpu, cuda or cuda:N"),
        ({"seq_len": 1}, r"seq_len \(frames per episode\) must be >= 2, got 1"),
        ({"render_mode": "human"}, r"render_mode must be None or 'rgb_array'.* got 'human'"),
    ],
)
def test_invalid_arguments_are_refused_at_make_time(tiny_ckpt, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_mm(tiny_ckpt, **kwargs)


def test_invalid_atari_arguments_are_refused_at_make_time(atari_ckpt):
    with pytest.raises(ValueError, match=r"frameskip \(raw frames pooled per step\) must be >= 1, got 0"):
        gym.make("SQAIR-Wrapped/Pacman", checkpoint=str(atari_ckpt), frameskip=0)
    with pytest.raises(ValueError, match=r"num_slots must be in 1\.\.8 .* got 0"):  # the example
        gym.make("SQAIR-Wrapped/Pacman", checkpoint=str(atari_ckpt), num_slots=0)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda' requested but CUDA is not available"):
            gym.make("SQAIR-Wrapped/Pacman", checkpoint=str(atari_ckpt), device="cuda")
    with pytest.raises(ValueError, match="num_envs must be >= 1, got 0"):
        gym.make_vec("SQAIR-Wrapped/Pacman", num_envs=0, checkpoint=str(atari_ckpt))
    with pytest.raises(ValueError, match="autoreset_mode must be one of"):
        gym.make_vec("SQAIR-Wrapped/Pacman", num_envs=1, checkpoint=str(atari_ckpt), autoreset_mode="Sometimes")


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
    fewer = make_mm(tiny_ckpt, num_slots=2)
    obs, _ = fewer.reset(seed=3)
    assert obs["pres"].shape == (2,) and fewer.observation_space.contains(obs)
    np.testing.assert_array_equal(obs["id"], a["id"][:2])  # the first slots, where the present objects are


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
    assert obs["frame"].shape == (84, 84, 3) and obs["pres"].shape == (8,) and "ram_xy" in info
    obs, r, term, trunc, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs)
    assert env.render().shape == (336, 336, 3)


def _per_env_reference(ckpt, seeds, steps, seq_len):
    envs = [make_mm(ckpt, seq_len=seq_len) for _ in seeds]
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


def test_gymnasium_vector_wrapper_equals_per_env_wrappers_across_autoreset(lively_ckpt):
    from sqair_world.envs.factory import make_moving_mnist_env

    seeds, steps, seq_len = [0, 1, 2], 9, 4
    venv = gym.vector.SyncVectorEnv([lambda: make_moving_mnist_env(seq_len=seq_len) for _ in seeds])
    venv = SQAIRVectorObservation(venv, str(lively_ckpt))
    obs, _ = venv.reset(seed=seeds)
    got = [obs]
    for _ in range(steps):
        got.append(venv.step(np.zeros(3, int))[0])
    # next-step autoreset: after an episode ends, the next step returns the reset frame (no reward step)
    ref_envs = [make_mm(lively_ckpt, seq_len=seq_len) for _ in seeds]
    ref_obs = [e.reset(seed=s)[0] for e, s in zip(ref_envs, seeds)]
    ended = [False] * 3
    assert_slots_change(np.stack([o["id"] for o in got]))
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
            np.testing.assert_array_equal(got[t]["pres"][i], ref_obs[i]["pres"])
            np.testing.assert_allclose(got[t]["where"][i], ref_obs[i]["where"], atol=1e-4)


def test_sb3_vecenv_wrapper_equals_per_env_wrappers_and_keeps_terminal_slots(lively_ckpt):
    from stable_baselines3.common.vec_env import DummyVecEnv

    from sqair_world.envs.factory import make_moving_mnist_env

    seeds, steps, seq_len = [5, 6], 7, 4
    base = DummyVecEnv([lambda: make_moving_mnist_env(seq_len=seq_len) for _ in seeds])
    base.seed(5)  # DummyVecEnv seeds env i with seed + i
    venv = SQAIRVecEnv(base, str(lively_ckpt))
    obs = venv.reset()
    ref = _per_env_reference(lively_ckpt, seeds, steps, seq_len)
    assert_slots_change(np.stack([np.stack([o["id"] for o in row]) for row in ref]))
    np.testing.assert_array_equal(obs["id"], np.stack([o["id"] for o in ref[0]]))
    saw_terminal = False
    for t in range(1, steps + 1):
        obs, _, dones, infos = venv.step(np.zeros(2, int))
        for i in range(2):
            np.testing.assert_array_equal(obs["id"][i], ref[t][i]["id"])
            np.testing.assert_array_equal(obs["pres"][i], ref[t][i]["pres"])
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


def test_versioned_ids_follow_gymnasium_conventions():
    with pytest.raises(gym.error.Error, match="v0"):
        gym.make("SQAIR-Wrapped/Pacman-v0")


def test_guard_skipping_step_skips_after_a_checked_tracking_step_and_falls_back(monkeypatch):
    """The compiled single-env step (sqair_world/speed/guards.py): guards are skipped only once a tracking step ran
    with them evaluated; an input that no compiled graph fits makes it evaluate guards from then on. With the
    compiled model itself: tests/test_speed.py."""
    from contextlib import contextmanager
    from types import SimpleNamespace

    from sqair_world.speed.guards import GuardSkippingStep

    skipping_now, skipped = [False], []

    @contextmanager
    def set_stance(stance, skip_guard_eval_unsafe=False):
        skipping_now[0] = skip_guard_eval_unsafe
        try:
            yield
        finally:
            skipping_now[0] = False

    def step_fn(state, x, sample=False, action=None):
        if skipping_now[0]:
            if x == "unfit":  # what dynamo raises before running anything
                raise RuntimeError("no compiled graph fits the inputs (skip_guard_eval_unsafe)")
            skipped.append(x)
        return x

    monkeypatch.setattr(torch.compiler, "set_stance", set_stance)
    step = GuardSkippingStep(step_fn)
    first, tracking = SimpleNamespace(t=torch.tensor([0])), SimpleNamespace(t=torch.tensor([3]))
    for state, x in [(first, "a"), (tracking, "b"), (first, "c"), (tracking, "d"), (tracking, "unfit")]:
        assert step(state, x) == x
    assert skipped == ["c", "d"] and not step.enabled  # after b's checked tracking step; unfit ran with guards
    step(tracking, "e")
    assert skipped == ["c", "d"] and not step.skipping
    # an action where the last call had none is another graph: its guards are checked, not skipped
    step = GuardSkippingStep(step_fn)
    step(tracking, "f")
    step(tracking, "g", action=torch.tensor([1]))
    step(tracking, "h", action=torch.tensor([2]))
    assert skipped == ["c", "d", "h"]
