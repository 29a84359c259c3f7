"""The command lines generated from the config dataclasses (tyro), called in-process: every named experiment
trains one step through ``sqair_world.pretrain``; ``sqair_world.preview`` and ``sqair_world.agents.train_ppo``
run; ``--help`` documents the fields; bad input exits with status 2 and says what is wrong."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from sqair_world.model.config import SQAIRConfig
from sqair_world.pretrain import RESUME_LAST, experiment_args, main, next_steps, parse_args
from sqair_world.training.checkpoints import load_model, safe_torch_load
from sqair_world.training.experiments import EXPERIMENTS
from sqair_world.training.trainer import TrainConfig

# one optimiser step on a handful of sequences: seconds for all the experiments together
ONE_STEP = [
    "--steps",
    "1",
    "--num-train-sequences",
    "4",
    "--num-val-sequences",
    "2",
    "--batch-size",
    "2",
    "--curriculum-start",
    "2",
    "--curriculum-max",
    "2",
    "--val-every",
    "1",
    "--no-progress",
    "--no-tensorboard",
    "--final-eval",
    "3",
    "--final-eval-particles",
    "2",
]
TINY_SQAIR = ["--model.n-hidden", "16", "--model.n-hidden-small", "8", "--model.n-what", "4"]
TINY_VRNN = ["--model.n-hidden", "16", "--model.n-latent", "8"]


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path, monkeypatch):
    """Generated data go to a temporary cache."""
    monkeypatch.setenv("SQAIR_WORLD_CACHE", str(tmp_path / "cache"))


def _plain(text: str) -> str:
    """tyro's message or help without its box and line wrapping."""
    return " ".join(text.replace("\u2502", " ").split())


def _tiny(name: str) -> list[str]:
    cfg = EXPERIMENTS[name].model_config()
    tiny = TINY_SQAIR if isinstance(cfg, SQAIRConfig) else TINY_VRNN
    if cfg.encoder == "conv":
        tiny = tiny + ["--model.conv-channels", "4"]
    if isinstance(cfg, SQAIRConfig) and cfg.image_shape[-1] == 50:
        tiny = tiny + ["--model.glimpse-size", "8", "8"]
    if EXPERIMENTS[name].data == "pedestrians":  # the shortest synthetic video with a validation split
        tiny = tiny + ["--walkers-frames", "200"]
    return tiny


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_every_experiment_trains_one_step_through_the_cli(name, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main([name, *_tiny(name), *ONE_STEP, "--run-dir", str(run_dir), "--output", str(tmp_path / "m.pt")]) == 0
    captured = capsys.readouterr()
    assert f"checkpoint: {run_dir / 'last.pt'} (step 1)" in captured.err
    assert f"python -m sqair_world.pretrain {name} --resume" in captured.err  # how to go on
    assert safe_torch_load(run_dir / "last.pt")["extra"]["step"] == 1
    exp = EXPERIMENTS[name]
    if exp.data == "moving-mnist":  # the run ends with its scores and figures
        summary = json.loads((run_dir / "eval" / "summary.json").read_text())
        assert summary["num_sequences"] == 3 and summary["particles"] == 2 and np.isfinite(summary["log_px"])
        assert "log p(x)" in captured.out and any((run_dir / "eval").glob("*.png"))
    model = load_model(tmp_path / "m.pt")
    assert model.model_name == exp.model and model.cfg.n_hidden == 16
    assert model.cfg.k_particles == exp.model_config().k_particles  # K comes from the experiment's model config
    assert model.checkpoint_extra["experiment"] == name


def test_commands_parse_into_the_experiment_configs():
    for name, exp in EXPERIMENTS.items():
        assert parse_args([name]) == experiment_args(exp)
        assert parse_args([name]).model == exp.model_config() and parse_args([name]).train == exp.train_config()
    default = parse_args([])
    assert default.experiment == "mnist-mlp-sqair" and default.resume is None and default.init_from is None
    args = parse_args(["mnist-mlp-air", "--max-minutes", "60", "--num-threads", "1", "--model.n-hidden", "128"])
    assert args.experiment == "mnist-mlp-air" and not args.model.propagate  # the experiment's own model config
    assert args.train.max_minutes == 60.0 and args.train.num_threads == 1 and args.model.n_hidden == 128
    # options of the default experiment need no name; booleans are flags
    args = parse_args(["--lr", "1e-4", "--compile", "--no-progress", "--steps", "None"])
    assert args.experiment == "mnist-mlp-sqair" and args.train.lr == 1e-4 and args.train.steps is None
    assert args.train.compile and not args.train.progress
    args = parse_args(["atari", "--env", "ALE/MsPacman-v5", "--output", "m.pt", "--half", "--model.k-particles", "2"])
    assert args.env == "ALE/MsPacman-v5" and args.output == "m.pt" and args.half
    assert args.model.k_particles == 2 and args.model.image_shape == (3, 84, 84) and args.train.batch_size == 16
    assert parse_args(["atari"]).model.k_particles == 3
    assert "k_particles" not in {f.name for f in dataclasses.fields(TrainConfig)}  # one source of truth for K


def test_a_cpu_run_without_a_budget_ends_after_an_hour():
    cpu = torch.device("cpu")
    assert TrainConfig().resolved(cpu).max_minutes == 60.0  # the default main job ends, then evaluates
    assert TrainConfig(steps=10).resolved(cpu).max_minutes is None  # a step budget is the user's choice
    assert TrainConfig(max_minutes=5).resolved(cpu).max_minutes == 5
    assert TrainConfig(recipe="faithful").resolved(cpu).max_minutes is None  # the paper's 2M steps


def test_the_closing_hint_resumes_the_run_folder_actually_used():
    from types import SimpleNamespace

    def hint(run_dir):
        trainer = SimpleNamespace(cfg=SimpleNamespace(max_minutes=60.0, run_dir=run_dir), step=9, checkpoint_path="x")
        return next_steps(parse_args(["mnist-mlp-air"]), trainer).splitlines()[0]

    assert hint("runs/mnist-mlp-air").endswith("mnist-mlp-air --resume")
    assert hint("runs/table1/air").endswith("mnist-mlp-air --resume --run-dir runs/table1/air")


def test_resume_takes_an_optional_path():
    assert parse_args(["--resume"]).resume == RESUME_LAST
    assert parse_args(["mnist-mlp-air", "--resume", "--steps", "3"]).resume == RESUME_LAST
    assert parse_args(["--resume", "runs/x/last.pt", "--steps", "3"]).resume == "runs/x/last.pt"
    assert parse_args(["--init-from", "a.pt"]).init_from == "a.pt"


def test_help_lists_the_experiments_and_documents_the_fields(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = _plain(capsys.readouterr().out)
    for name, exp in EXPERIMENTS.items():
        assert name in out and exp.description in out
    assert "--lr {None}|FLOAT" in out and "Base learning rate (None: 1e-5 faithful, 3e-4 fast)." in out
    assert "--model.n-hidden INT" in out and "--resume [PATH]" in out and "--no-progress" in out
    with pytest.raises(SystemExit):
        main(["mnist-mlp-vrnn", "--help"])
    out = _plain(capsys.readouterr().out)
    assert "--model.n-latent INT" in out and "--model.n-what" not in out  # the VRNN's config, not SQAIR's


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--batch-size", "0"], "batch_size must be >= 1, got 0"),
        (["--num-threads", "0"], "num_threads must be >= 1 or unset"),
        (["mnist-conv-sqair", "--model.n-hidden", "0"], "n_hidden must be >= 1, got 0"),
        (["--steps", "two"], "Error parsing --steps"),
        (["--model-set", "n_hidden=16"], "Unrecognized options: --model-set"),  # the argparse era's option
        (["--model.n-latent", "8"], "options: --model.n-latent"),  # a VRNN field given to SQAIR
        (["--resume", "a.pt", "b.pt"], "--resume takes at most one checkpoint path"),
        (["--recipe", "slow"], "--recipe"),
    ],
)
def test_bad_options_exit_2_and_say_what_is_wrong(argv, message, capsys):
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    assert message in _plain(capsys.readouterr().err)


def test_unknown_experiment_is_an_error_with_a_suggestion(capsys):
    assert main(["mnist-mlp-sqiar", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown experiment 'mnist-mlp-sqiar'") and "Did you mean 'mnist-mlp-sqair'?" in err


# ------------------------------------------------------------------------------------------------ preview
def test_preview_cli_writes_gif_and_png(tmp_path, capsys):
    import imageio.v3 as iio

    from sqair_world.preview import main as preview

    gif, png = tmp_path / "p.gif", tmp_path / "p.png"
    argv = ["--out", str(gif), "--png", str(png), "--num-sequences", "2", "--split", "train", "--seed", "1"]
    assert preview(argv) == 0
    assert f"wrote {gif}" in capsys.readouterr().out
    frames = iio.imread(gif)
    assert frames.shape[0] == 10 and frames.shape[-1] in (3, 4)
    strip = iio.imread(png)
    assert strip.ndim == 3 and strip.shape[1] > 2 * strip.shape[0]  # a strip: 10 frames wide, 2 sequences tall
    colours = strip.reshape(-1, strip.shape[-1])[:, :3]
    assert (colours.max(1) != colours.min(1)).any()  # coloured boxes on the grey frames
    with pytest.raises(SystemExit) as done:
        preview(["--num-sequences", "0"])
    assert done.value.code == 2 and "num_sequences must be >= 1, got 0" in _plain(capsys.readouterr().err)
    with pytest.raises(SystemExit) as done:
        preview(["--help"])
    assert done.value.code == 0 and "--split {train,eval}" in _plain(capsys.readouterr().out)


def test_preview_boxes_enclose_the_digits_ink():
    """``visible_tracks`` in the drawing convention (x, y, w, h): every lit pixel lies in a box of its frame, and
    every box holds ink (with x and y swapped neither holds)."""
    from sqair_world.data import MovingMNISTConfig, load_moving_mnist
    from sqair_world.data.preview import busiest_sequences, visible_tracks

    data = load_moving_mnist("eval", 8, seed=0, cfg=MovingMNISTConfig(), cache=False)
    idx = busiest_sequences(data, 3)
    assert list(data.num_digits[idx]) == sorted(data.num_digits, reverse=True)[:3]
    for t in range(data.frames.shape[0]):
        for s in idx:
            frame = data.frames[t, s]
            covered = np.zeros(frame.shape, bool)
            for (x, y, w, h), i in zip(*visible_tracks(data, t, s)):
                if i >= 0:
                    x0, y0, x1, y1 = int(x), int(y), int(x + w), int(y + h)
                    covered[y0:y1, x0:x1] = True
                    assert (frame[y0:y1, x0:x1] > 0).any()
            assert covered[frame > 0].all()


# ------------------------------------------------------------------------------------------------ PPO
def test_train_ppo_cli_trains_and_saves_an_agent(tiny_ckpt, tmp_path, capsys):
    from sqair_world.agents.train_ppo import main as train_ppo

    agent = tmp_path / "agent.zip"
    argv = ["--env", "SQAIR-Wrapped/MovingMNIST", "--checkpoint", str(tiny_ckpt), "--timesteps", "32"]
    torch.manual_seed(0)
    assert train_ppo([*argv, "--n-envs", "2", "--n-steps", "16", "--device", "cpu", "--save", str(agent)]) == 0
    assert agent.is_file() and f"saved {agent}" in capsys.readouterr().out
    assert train_ppo(["--env", "Pacman"]) == 2
    assert "error: expected an id like SQAIR-Wrapped/Pacman" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        train_ppo(["--n-envs", "0"])
    assert done.value.code == 2 and "n_envs must be >= 1, got 0" in _plain(capsys.readouterr().err)
    with pytest.raises(SystemExit) as done:
        train_ppo(["--help"])
    assert done.value.code == 0 and "PPO rollout length per env" in _plain(capsys.readouterr().out)
