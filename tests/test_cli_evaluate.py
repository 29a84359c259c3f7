"""``python -m sqair_world.evaluate {mnist,atari,tracking}``, in-process: one small run of each subcommand on tiny
checkpoints, ``--help``, and bad input as ``error: ...`` with exit code 2."""

import json
import os
import pickle

import pytest
import torch

from sqair_world.evaluate import main
from sqair_world.model.registry import build_model
from sqair_world.training.checkpoints import CheckpointError, safe_torch_load, save_model
from sqair_world.training.experiments import ATARI_MODEL


class NotATensor:
    """A class that a sqair-world checkpoint never holds."""


@pytest.fixture(scope="module")
def pacman_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "pac.pt"
    model = build_model("mlp-sqair", **{**ATARI_MODEL, "n_hidden": 16, "n_what": 4, "n_hidden_small": 8})
    save_model(path, model, extra={"env_id": "ALE/Pacman-v5"})
    return path


@pytest.fixture()
def corrupt_ckpts(tmp_path):
    """A pickle of a custom class, a torch zip holding one, and random bytes."""
    with open(tmp_path / "pickled.pt", "wb") as f:
        pickle.dump(NotATensor(), f, protocol=2)  # the protocol torch expects: no warning about it
    torch.save({"format": "sqair-world/1", "model": NotATensor()}, tmp_path / "zipped.pt")
    (tmp_path / "random.pt").write_bytes(os.urandom(4096))
    return [tmp_path / name for name in ("pickled.pt", "zipped.pt", "random.pt")]


def test_mnist_writes_table_metrics_and_figures(tiny_ckpt, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SQAIR_WORLD_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "eval"
    args = ["--num-sequences", "2", "--particles", "2", "--chunk", "1", "--batch-size", "2"]
    assert main(["mnist", str(tiny_ckpt), *args, "--addition-train-sequences", "4", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "log p(x)" in text and "mlp-sqair (paper)" in text and "MOTA" in text
    assert "addition classifier on 4 training sequences" in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["particles"] == 2 and metrics["num_sequences"] == 2 and 0 <= metrics["count_acc"] <= 1
    assert metrics["addition_train_sequences"] == 4
    for fig in ("fig4_reconstructions.png", "fig5_prior_samples.png", "fig6_conditional_generation.png"):
        assert (out / fig).is_file()


def test_atari_writes_scores_gif_and_reconstructions(pacman_ckpt, tmp_path, capsys):
    import imageio.v3 as iio

    args = ["atari", "--checkpoint", str(pacman_ckpt), "--steps", "3", "--gif", str(tmp_path / "ep.gif")]
    args += ["--gif-steps", "2", "--json", str(tmp_path / "r.json"), "--reconstructions", str(tmp_path / "rec.png")]
    assert main(args) == 0
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["env_id"] == "ALE/Pacman-v5" and r["steps"] == 3 and r["seeds"] == [0]
    for who in ("model", "classical"):  # the model's row and the classical baseline's, under both matching rules
        for rule in ("frame", "native"):
            assert r[who][rule]["rule"] == rule and 0.0 <= r[who][rule]["count_acc"] <= 1.0
            assert list(r[who][rule]["found_by_sprite"]) == ["player", "ghost1", "ghost2", "ghost3", "ghost4"]
    assert (tmp_path / "ep.gif").stat().st_size > 0
    rec = iio.imread(tmp_path / "rec.png")  # 3 sequences x (input, reconstruction) rows of 6 frames at 2x
    assert rec.shape[0] > 6 * 84 * 2 and rec.shape[1] > 6 * 84 * 2 and rec.shape[2] == 3
    assert '"mota"' in capsys.readouterr().out


def test_prediction_writes_errors_plot_and_gif_with_the_true_actions(tmp_path, capsys):
    import imageio.v3 as iio

    torch.manual_seed(0)
    ckpt = tmp_path / "pac_act.pt"  # an action-conditioned Pac-Man model (5 actions)
    small = {**ATARI_MODEL, "n_hidden": 16, "n_what": 4, "n_hidden_small": 8, "num_actions": 5}
    save_model(ckpt, build_model("mlp-sqair", **small), extra={"env_id": "ALE/Pacman-v5"})
    args = ["prediction", "--checkpoint", str(ckpt), "--steps", "6", "--horizon", "2", "--samples", "2"]
    args += ["--json", str(tmp_path / "p.json"), "--plot", str(tmp_path / "p.png"), "--gif", str(tmp_path / "p.gif")]
    assert main(args) == 0
    r = json.loads((tmp_path / "p.json").read_text())
    assert r["action_conditioned"] and r["horizons"] == [1, 2] and r["steps"] == 6
    assert set(r["tracked"]) == {"imagined", "copy_last", "constant_velocity"} and len(r["presence_acc"]) == 2
    assert iio.imread(tmp_path / "p.png").shape[-1] in (3, 4)
    gif = iio.imread(tmp_path / "p.gif")  # real | imagined, side by side at 3x
    assert gif.shape[0] >= 2 and gif.shape[2] > 2 * 84 * 3
    assert "| copy_last |" in capsys.readouterr().err
    mean = ["prediction", "--checkpoint", str(ckpt), "--steps", "4", "--horizon", "2", "--mean-rollout"]
    assert main([*mean, "--json", str(tmp_path / "m.json")]) == 0
    r = json.loads((tmp_path / "m.json").read_text())
    assert r["mean_rollout"] and r["samples"] == 1 and len(r["tracked"]["imagined"]) == 2


def test_tracking_prints_scores(tiny_ckpt, tmp_path, capsys):
    assert (
        main(["tracking", "--checkpoint", str(tiny_ckpt), "--episodes", "1", "--json", str(tmp_path / "t.json")]) == 0
    )
    assert '"idf1"' in capsys.readouterr().out
    r = json.loads((tmp_path / "t.json").read_text())
    assert r["episodes"] == 1 and r["match"] == "iou" and 0.0 <= r["idf1"] <= 1.0


@pytest.mark.parametrize(
    "command, flags",
    [
        ("mnist", ["CHECKPOINT", "--num-sequences", "--particles", "--no-figures", "--max-iou-distance"]),
        (
            "atari",
            ["--env", "--checkpoint", "--steps", "--seed", "--seeds", "--gif", "--max-distance", "--reconstructions"],
        ),
        ("tracking", ["--checkpoint", "--episodes", "--match", "{iou,centre}"]),
        (
            "prediction",
            [
                "--env",
                "--checkpoint",
                "--horizon",
                "--samples",
                "--mean-rollout",
                "--no-true-actions",
                "--plot",
                "--gif",
            ],
        ),
    ],
)
def test_help_lists_each_subcommands_options(command, flags, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "python -m sqair_world.evaluate " + command in text and all(flag in text for flag in flags)


def test_help_lists_the_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert all(name in text for name in ("mnist", "atari", "tracking", "prediction"))


def test_bad_input_is_an_error_line_and_exit_code_2(tiny_ckpt, pacman_ckpt, tmp_path, capsys):
    assert main(["mnist", str(tmp_path / "missing.pt")]) == 2
    assert "error: checkpoint" in capsys.readouterr().err
    assert main(["mnist", str(pacman_ckpt), "--num-sequences", "1"]) == 2
    assert "scores moving-MNIST (1, 50, 50) models" in capsys.readouterr().err
    assert main(["atari", "--env", "ALE/MsPacman-v5", "--checkpoint", str(pacman_ckpt), "--steps", "5"]) == 2
    assert "trained on ALE/Pacman-v5" in capsys.readouterr().err
    assert main(["tracking", "--checkpoint", str(tmp_path / "no.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["tracking", "--checkpoint", str(tiny_ckpt), "--device", "tpu"]) == 2
    assert "error: unknown device 'tpu'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # a value out of range is refused while parsing
        main(["mnist", str(tiny_ckpt), "--particles", "0"])
    message = " ".join(capsys.readouterr().err.replace("\u2502", " ").split())  # without tyro's box
    assert exit_.value.code == 2 and "--particles must be >= 1, got 0" in message


def test_a_corrupt_checkpoint_is_named_and_never_to_be_unpickled(corrupt_ckpts, capsys):
    """torch's message advises loading with weights_only=False, which would run the file's code: never pass it on."""
    for path in corrupt_ckpts:
        with pytest.raises(CheckpointError, match="is corrupt or not a sqair-world checkpoint") as err:
            safe_torch_load(path)
        assert "python -m sqair_world.pretrain" in str(err.value)
        chain = [err.value, err.value.__cause__, err.value.__context__ if not err.value.__suppress_context__ else None]
        assert not any("weights_only" in str(e) for e in chain if e is not None), path.name
        assert main(["mnist", str(path)]) == 2
        message = capsys.readouterr().err
        assert message.startswith("error: ") and "weights_only" not in message and "pretrain" in message
