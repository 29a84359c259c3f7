"""Agents on slots (sqair_world/agents): the extractors' invariances, the motion feature, the RAM oracle env, the
training CLI ``sqair_world.agents.train`` (``sqair-train``) for every observation type with ``--resume``, the curves
of ``sqair_world.agents.plot`` (``sqair-agents-plot``), bad input, and a slot agent that learns catch."""

import csv
import json
import re
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv

import sqair_world  # noqa: F401  (registers the ids)
from sqair_world.agents.catch import CatchSlots
from sqair_world.agents.extractors import AttentionSlotExtractor, SlotExtractor
from sqair_world.agents.motion import SlotMotion, VecSlotMotion, displacement
from sqair_world.agents.plot import main as plot_main
from sqair_world.agents.random_policy import main as random_main
from sqair_world.agents.random_policy import random_returns
from sqair_world.agents.train import TrainArgs
from sqair_world.agents.train import main as train_main
from sqair_world.envs.atari import GAMES
from sqair_world.envs.oracle import make_oracle_env

EXTRACTORS = [SlotExtractor, AttentionSlotExtractor]


def _plain(text: str) -> str:
    """tyro's boxed error message as one line of words."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def _slot_space(n=4, d=5, motion=True, horizon=0) -> gym.spaces.Dict:
    spaces = {
        "pres": gym.spaces.Box(0.0, 1.0, (n,), np.float32),
        "where": gym.spaces.Box(0.0, 1.0, (n, 4), np.float32),
        "what": gym.spaces.Box(-np.inf, np.inf, (n, d), np.float32),
        "id": gym.spaces.Box(-1, 2**31 - 1, (n,), np.int64),
    }
    if motion:
        spaces["motion"] = gym.spaces.Box(-1.0, 1.0, (n, 2), np.float32)
    if horizon:
        spaces["imagined"] = gym.spaces.Box(0.0, 1.0, (horizon, n, 5), np.float32)
    return gym.spaces.Dict(spaces)


def _obs(batch=3, n=4, d=5, present=(3, 1, 0), horizon=0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    pres = torch.zeros(batch, n)
    for b, k in enumerate(present):
        pres[b, :k] = 1.0
    obs = {
        "pres": pres,
        "where": torch.rand(batch, n, 4, generator=g),
        "what": torch.randn(batch, n, d, generator=g),
        "id": torch.where(pres > 0, torch.arange(n).expand(batch, n), -1),
        "motion": torch.randn(batch, n, 2, generator=g) * 0.1,
    }
    if horizon:
        obs["imagined"] = torch.rand(batch, horizon, n, 5, generator=g)
    return obs


# ------------------------------------------------------------------------------------------------ extractors
@pytest.mark.parametrize("cls", EXTRACTORS)
def test_extractors_ignore_slot_order_and_the_content_of_empty_slots(cls):
    torch.manual_seed(0)
    ext = cls(_slot_space(), hidden=16)
    obs = _obs()
    feats = ext(obs)
    assert feats.shape == (3, ext.features_dim) and torch.isfinite(feats).all()
    perm = [2, 0, 3, 1]
    torch.testing.assert_close(ext({k: v[:, perm] for k, v in obs.items()}), feats)
    junk = {k: v.clone() for k, v in obs.items()}
    empty = obs["pres"] == 0
    for key in ("where", "what", "motion"):
        junk[key][empty] = 1e3
    torch.testing.assert_close(ext(junk), feats)
    torch.testing.assert_close(feats[2], torch.zeros_like(feats[2]))  # no slot present: nothing to pool
    moved = dict(obs, motion=obs["motion"] + 0.5)  # the motion of present slots is read
    assert not torch.allclose(ext(moved)[0], feats[0])


@pytest.mark.parametrize("cls", EXTRACTORS)
def test_extractors_pool_the_imagined_slots_when_the_space_has_them(cls):
    torch.manual_seed(0)
    plain, imagining = cls(_slot_space(), hidden=16), cls(_slot_space(horizon=3), hidden=16)
    assert imagining.features_dim == plain.features_dim + 32
    assert cls(_slot_space(horizon=3), hidden=16, imagined=False).features_dim == plain.features_dim
    obs = _obs(horizon=3)
    feats = imagining(obs)
    perm = [3, 1, 0, 2]
    permuted = dict(obs, imagined=obs["imagined"][:, :, perm])
    torch.testing.assert_close(imagining(permuted), feats)
    unlikely = obs["imagined"].clone()
    unlikely[..., 0] = 0.0
    unlikely_junk = unlikely.clone()
    unlikely_junk[..., 1:] = 7.0  # boxes of imagined slots with presence 0 do not count
    torch.testing.assert_close(imagining(dict(obs, imagined=unlikely)), imagining(dict(obs, imagined=unlikely_junk)))


@pytest.mark.parametrize("cls", EXTRACTORS)
def test_extractors_refuse_spaces_they_cannot_read(cls):
    with pytest.raises(ValueError, match="needs a slot observation.*got Box"):
        cls(gym.spaces.Box(0, 255, (84, 84, 3), np.uint8))
    no_what = gym.spaces.Dict({k: v for k, v in _slot_space().spaces.items() if k != "what"})
    with pytest.raises(ValueError, match=r"missing \['what'\]"):
        cls(no_what)
    bad = _slot_space()
    bad.spaces["where"] = gym.spaces.Box(0.0, 1.0, (4, 3), np.float32)
    with pytest.raises(ValueError, match=r"'where' \[N, 4\].*got shapes"):
        cls(bad)
    with pytest.raises(ValueError, match="heads must divide hidden"):
        AttentionSlotExtractor(_slot_space(), hidden=10, heads=4)


# ------------------------------------------------------------------------------------------------ motion
def test_displacement_is_matched_by_track_id():
    prev_where = np.array([[0.1, 0.2, 0.1, 0.1], [0.5, 0.5, 0.1, 0.1], [0.0, 0.0, 0.0, 0.0]])
    prev_id = np.array([7, 3, -1])
    where = np.array([[0.6, 0.4, 0.1, 0.1], [0.9, 0.9, 0.1, 0.1], [0.2, 0.2, 0.1, 0.1]])
    ids = np.array([3, 9, 7])  # track 3 moved to slot 0, 9 is new, 7 moved to slot 2
    np.testing.assert_allclose(displacement(prev_where, prev_id, where, ids), [[0.1, -0.1], [0, 0], [0.1, 0.0]])
    np.testing.assert_allclose(displacement(prev_where, prev_id, where, np.array([-1, -1, 3]))[:2], 0)


def test_slot_motion_gives_the_ball_its_velocity_and_zero_after_reset():
    env = SlotMotion(CatchSlots(size=6, drift=True))
    obs, _ = env.reset(seed=1)
    assert "motion" in env.observation_space.spaces and env.observation_space.contains(obs)
    assert not obs["motion"].any()
    ball = lambda o: np.flatnonzero(o["id"] == 1)[0]
    before = obs["where"][ball(obs), :2]
    obs, *_ = env.step(1)
    b = ball(obs)
    np.testing.assert_allclose(obs["motion"][b], obs["where"][b, :2] - before, atol=1e-6)
    assert abs(obs["motion"][b, 1] - 1 / 6) < 1e-6 and abs(abs(obs["motion"][b, 0]) - 1 / 6) < 1e-6
    empty = obs["pres"] == 0
    assert not obs["motion"][empty].any()


def test_vec_slot_motion_zeroes_reset_rows_and_completes_the_terminal_observation():
    venv = VecSlotMotion(DummyVecEnv([lambda: CatchSlots(size=3, drift=False)] * 2))
    venv.seed(0)
    obs = venv.reset()
    assert obs["motion"].shape == (2, 3, 2) and not obs["motion"].any()
    obs, _, dones, infos = venv.step(np.array([1, 1]))
    assert not dones.any() and np.isclose(obs["motion"][obs["id"] == 1][:, 1], 1 / 3).all()
    obs, _, dones, infos = venv.step(np.array([1, 1]))  # the ball reaches the bottom row: both episodes end
    assert dones.all() and not obs["motion"].any()
    terminal = infos[0]["terminal_observation"]
    assert np.isclose(terminal["motion"][terminal["id"] == 1, 1], 1 / 3).all()
    with pytest.raises(ValueError, match="needs a slot observation"):
        VecSlotMotion(DummyVecEnv([lambda: gym.make("CartPole-v1")]))


# ------------------------------------------------------------------------------------------------ oracle env
@pytest.mark.parametrize("game", ["Pacman", "MsPacman"])
def test_oracle_env_has_the_sqair_slot_space_and_passes_both_checkers(game):
    from sqair_world.envs.factory import load_default_model
    from sqair_world.envs.slots import slot_space

    env = gym.make(f"SQAIR-Oracle/{game}")
    model = load_default_model(game)
    assert env.observation_space == slot_space(model, model.cfg.max_objects, False, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the unbounded 'what' box and the 2-D slot keys, as in SQAIR's space
        gym_check_env(env, skip_render_check=True)
        sb3_check_env(gym.make(f"SQAIR-Oracle/{game}"))
    rebuilt = gym.make(env.spec)
    assert rebuilt.spec == env.spec and rebuilt.observation_space == env.observation_space


@pytest.mark.parametrize("game", ["Pacman", "MsPacman"])
def test_oracle_slots_agree_with_the_ram(game):
    spec = GAMES[game]
    env = make_oracle_env(game)
    obs, info = env.reset(seed=3)
    rng = np.random.default_rng(0)
    classes = [n.rstrip("0123456789") for n in spec.names]
    for _ in range(60):
        ram = env.unwrapped.ale.getRAM()
        xy = np.stack([ram[list(spec.ram_x)], ram[list(spec.ram_y)]], -1)
        centres = spec.positions(xy.astype(float), 84)
        inside = ((centres >= 0) & (centres < 84)).all(-1)
        n = len(spec.names)
        np.testing.assert_array_equal(info["ram_xy"], xy)
        np.testing.assert_array_equal(obs["pres"][:n], inside)
        np.testing.assert_allclose(obs["where"][:n][inside, :2] * 84, centres[inside], atol=1e-3)
        np.testing.assert_array_equal(obs["id"][:n], np.where(inside, np.arange(n), -1))  # a fixed slot per sprite
        for s in np.flatnonzero(inside):
            assert obs["what"][s, ("player", "ghost", "fruit").index(classes[s])] == 1.0 and obs["what"][s].sum() == 1
        assert not obs["pres"][n:].any() and not obs["what"][~(obs["pres"] > 0)].any()
        obs, _, term, trunc, info = env.step(int(rng.integers(env.action_space.n)))
        if term or trunc:
            obs, info = env.reset()
    ghosts = [s for s, c in enumerate(classes) if c == "ghost"]
    assert np.allclose(obs["where"][ghosts][obs["pres"][ghosts] > 0, 2:], obs["where"][ghosts[0], 2:])


def test_oracle_env_refuses_bad_input():
    from sqair_world.envs.oracle import OracleSlots

    with pytest.raises(ValueError, match="no maze preprocessing is defined"):
        make_oracle_env("Breakout")
    with pytest.raises(ValueError, match="num_slots must be >= 6"):
        make_oracle_env("MsPacman", num_slots=4)
    with pytest.raises(TypeError, match="sets obs_type itself"):
        make_oracle_env("Pacman", obs_type="rgb")
    import ale_py

    gym.register_envs(ale_py)
    with pytest.raises(ValueError, match="obs_type='ram'"):
        OracleSlots(gym.make("ALE/Pacman-v5"))


# ------------------------------------------------------------------------------------------------ training CLI
_TINY = ["--n-envs", "2", "--eval-freq", "64", "--eval-episodes", "1", "--final-eval-episodes", "1"]
_TINY += ["--checkpoint-freq", "64", "--max-frames", "160", "--no-progress"]


def _eval_rows(run) -> list[dict]:
    with open(run / "eval.csv") as f:
        return list(csv.DictReader(f))


def test_train_cli_slots_with_attention_and_imagination(tiny_ckpt, tmp_path, capsys):
    run = tmp_path / "slots"
    argv = ["--env", "SQAIR-Wrapped/MovingMNIST", "--obs", "slots", "--checkpoint", str(tiny_ckpt), "--device", "cpu"]
    argv += ["--extractor", "attention", "--imagine-horizon", "2", "--timesteps", "64", "--n-steps", "32"]
    argv += ["--batch-size", "32", *_TINY, "--out", str(run)]
    torch.manual_seed(0)
    assert train_main(argv) == 0
    assert f"{run}: 64 agent steps" in capsys.readouterr().out
    rows = _eval_rows(run)
    assert [(r["steps"], r["mode"]) for r in rows] == [
        ("0", "deterministic"),
        ("0", "stochastic"),
        ("64", "deterministic"),
        ("64", "stochastic"),
    ]
    settings = json.loads((run / "settings.json").read_text())
    assert settings["options"]["extractor"] == "attention" and settings["hyperparameters"]["n_steps"] == 32
    assert settings["command"].startswith("python -m sqair_world.agents.train --env SQAIR-Wrapped/MovingMNIST")
    assert (run / "model.zip").is_file() and any((run / "tb").iterdir())


def test_train_cli_oracle_dqn_and_pixels_a2c(tmp_path, capsys):
    oracle = tmp_path / "oracle"
    argv = ["--env", "SQAIR-Oracle/MsPacman", "--obs", "oracle", "--algo", "dqn", "--timesteps", "64"]
    assert train_main([*argv, "--learning-starts", "16", "--buffer-size", "100", *_TINY, "--out", str(oracle)]) == 0
    assert _eval_rows(oracle)[-1]["steps"] == "64"
    pixels = tmp_path / "pixels"
    argv = [
        "--env",
        "ALE/Pacman-v5",
        "--obs",
        "pixels",
        "--algo",
        "a2c",
        "--pixel-pool",
        "4",
        "--timesteps",
        "64",
        "--n-steps",
        "8",
    ]
    assert train_main([*argv, *_TINY, "--out", str(pixels)]) == 0
    assert _eval_rows(pixels)[-1]["steps"] == "64"
    assert json.loads((pixels / "settings.json").read_text())["hyperparameters"]["vf_coef"] == 0.25
    # the curves of both runs
    png = tmp_path / "curve.png"
    assert plot_main([str(tmp_path), "--out", str(png), "--reference", "random=307.3"]) == 0
    out = capsys.readouterr().out
    assert png.stat().st_size > 1000 and "oracle (dqn):" in out and "pixels-pool4 (a2c):" in out
    assert plot_main([str(tmp_path / "nothing"), "--out", str(png)]) == 2
    assert plot_main([str(tmp_path), "--reference", "random", "--out", str(png)]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err


def test_train_cli_resumes_a_run_to_its_budget_and_refuses_other_settings(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["--env", "Pacman", "--obs", "oracle", "--timesteps", "192", "--n-steps", "32", "--batch-size", "64"]
    argv += [*_TINY, "--out", str(run)]
    assert train_main([*argv, "--stop-at", "64"]) == 0
    assert "stopped at 64 of 192 agent steps; continue with --resume" in capsys.readouterr().out
    assert json.loads((run / "progress.json").read_text())["steps"] == 64
    assert train_main(argv) == 2  # a fresh start over an existing run
    assert "already holds a run: pass --resume" in capsys.readouterr().err
    assert train_main([*argv, "--resume", "--seed", "1", "--no-motion"]) == 2
    err = capsys.readouterr().err
    assert "motion: saved True, given False" in err and "seed: saved 0, given 1" in err
    threads = torch.get_num_threads()
    try:  # the thread count is run control: a resumed piece may take another
        assert train_main([*argv, "--resume", "--num-threads", "1"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert f"{run}: 192 agent steps" in capsys.readouterr().out
    steps = [int(r["steps"]) for r in _eval_rows(run) if r["mode"] == "deterministic"]
    assert steps == [0, 64, 128, 192]
    assert json.loads((run / "progress.json").read_text())["steps"] == 192
    assert train_main([*argv, "--resume"]) == 0
    assert "already at its budget of 192 steps" in capsys.readouterr().out
    assert train_main([*argv[:-2], "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_train_cli_refuses_bad_options(capsys):
    for flag, value, expected in [
        ("--obs", "rgb", "invalid choice 'rgb' for argument '--obs'"),
        ("--algo", "sac", "'sac'"),
    ]:
        with pytest.raises(SystemExit) as done:
            train_main([flag, value])
        err = _plain(capsys.readouterr().err)
        assert done.value.code == 2 and expected in err, err
    with pytest.raises(SystemExit):
        train_main(["--algo", "a2c", "--batch-size", "64"])
    assert "batch_size does not apply to a2c" in _plain(capsys.readouterr().err)
    with pytest.raises(SystemExit):
        train_main(["--num-threads", "0"])
    assert "num_threads must be >= 1" in _plain(capsys.readouterr().err)
    assert train_main(["--env", "SQAIR-Wrapped/Breakout", "--out", "unused"]) == 2
    assert "unknown game in 'SQAIR-Wrapped/Breakout'" in capsys.readouterr().err
    assert train_main(["--env", "MovingMNIST", "--obs", "pixels", "--out", "unused"]) == 2
    assert "MovingMNIST has slots only" in capsys.readouterr().err
    assert train_main(["--obs", "oracle", "--imagine-horizon", "2", "--out", "unused"]) == 2
    assert "only with --obs slots" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        train_main(["--help"])
    assert done.value.code == 0 and "What the agent sees" in _plain(capsys.readouterr().out)


def test_random_policy_scores_whole_games_balanced_over_envs(capsys):
    scores = random_returns("Pacman", 3, seed=0, n_envs=2)  # 2 games in env 0, 1 in env 1
    assert scores.shape == (3,) and (scores >= 0).all() and scores.sum() > 0  # Pac-Man scores for every pellet
    assert random_main(["--env", "ALE/Pacman-v5", "--episodes", "1"]) == 0
    assert re.search(r"Pacman random policy: [\d.]+ \+- [\d.]+ over 1 games", capsys.readouterr().out)
    assert random_main(["--env", "MovingMNIST"]) == 2 and "no game score" in capsys.readouterr().err
    assert random_main(["--episodes", "0"]) == 2


def test_default_run_folder_and_hyperparameters():
    args = TrainArgs(env="SQAIR-Wrapped/MsPacman", obs="pixels", seed=2)
    assert str(args.run_dir().path) == "runs/agents/mspacman-pixels-ppo-s2"
    assert args.hyperparameters() == dict(
        n_steps=128,
        batch_size=256,
        n_epochs=4,
        learning_rate=2.5e-4,
        clip_range=0.1,
        vf_coef=0.5,
        ent_coef=0.01,
        gamma=0.99,
    )
    assert TrainArgs(learning_rate=1e-3).hyperparameters()["learning_rate"] == 1e-3


# ------------------------------------------------------------------------------------------------ learning
def test_slot_agent_learns_catch_and_beats_a_random_policy():
    """Catch with shuffled slot order: only slot content tells the paddle from the ball. A random policy loses
    about 2 balls in 3; a Deep Sets PPO agent of 16k steps (about 10 s) catches most."""
    make = lambda: CatchSlots(size=6, drift=False)
    venv = VecSlotMotion(DummyVecEnv([make] * 8))
    venv.seed(0)
    evaluation = VecSlotMotion(DummyVecEnv([make]))
    evaluation.seed(100)
    agent = PPO(
        "MultiInputPolicy",
        venv,
        n_steps=16,
        batch_size=64,
        learning_rate=1e-3,
        ent_coef=0.0,
        gamma=0.9,
        seed=0,
        policy_kwargs=dict(
            features_extractor_class=SlotExtractor, features_extractor_kwargs={"hidden": 32}, net_arch=[64]
        ),
        device="cpu",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the evaluation env has no Monitor: catch's episodes are one ball
        random_return = evaluate_policy(agent, evaluation, 200, deterministic=False)[0]
        agent.learn(16_000)
        trained = evaluate_policy(agent, evaluation, 200, deterministic=True)[0]
    assert random_return < -0.3 and trained > 0.3, (random_return, trained)


def test_curves_put_each_runs_final_evaluation_at_the_budget(tmp_path):
    """A resumed run's final evaluation lands at another step count than a straight run's; both are the budget's."""
    import json

    from sqair_world.agents.plot import curves, find_runs

    for seed, (end, value) in enumerate(((1_000_272, 600.0), (1_000_448, 500.0))):
        run = tmp_path / f"run{seed}"
        run.mkdir()
        (run / "settings.json").write_text(json.dumps({"options": {"obs": "pixels", "timesteps": 1_000_000}}))
        rows = [f"0,stochastic,10,{value / 2},1.0,1.0", f"{end},stochastic,30,{value},1.0,2.0"]
        (run / "eval.csv").write_text("steps,mode,episodes,mean,std,wall_s\n" + "\n".join(rows) + "\n")
    steps, mean, std, seeds = curves(find_runs([tmp_path]), "stochastic")["pixels"]
    assert steps.tolist() == [0, 1_000_000] and seeds.tolist() == [2, 2]
    assert mean[-1] == pytest.approx(550.0) and std[-1] == pytest.approx(50.0)
