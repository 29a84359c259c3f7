"""Atari checkpoint evaluation against console-RAM ground truth: CLI smoke test (tiny untrained model), matching rule."""

import json
import subprocess
import sys

import numpy as np
import torch

from sqair_world.model.registry import build_model
from sqair_world.training.checkpoints import save_model
from sqair_world.training.experiments import ATARI_MODEL


def test_atari_eval_cli_smoke(tmp_path, capsys):
    torch.manual_seed(0)
    ckpt = tmp_path / "pac.pt"
    save_model(
        ckpt,
        build_model("mlp-sqair", **{**ATARI_MODEL, "n_hidden": 16, "n_what": 4, "n_hidden_small": 8}),
        extra={"env_id": "ALE/Pacman-v5"},
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "sqair_world.evaluation.atari",
            "--checkpoint",
            str(ckpt),
            "--steps",
            "30",
            "--gif",
            str(tmp_path / "ep.gif"),
            "--gif-steps",
            "5",
            "--json",
            str(tmp_path / "r.json"),
            "--reconstructions",
            str(tmp_path / "rec.png"),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    r = json.loads((tmp_path / "r.json").read_text())
    assert 0.0 <= r["count_acc"] <= 1.0 and r["steps"] == 30 and (tmp_path / "ep.gif").stat().st_size > 0
    assert list(r["found_by_sprite"]) == ["player", "ghost1", "ghost2", "ghost3", "ghost4"]
    assert all(0.0 <= v <= 1.0 for v in r["found_by_sprite"].values())
    import imageio.v3 as iio

    rec = iio.imread(tmp_path / "rec.png")  # 3 sequences x (input, reconstruction) rows of 6 frames at 2x
    assert rec.shape[0] > 6 * 84 * 2 and rec.shape[1] > 6 * 84 * 2 and rec.shape[2] == 3
    from sqair_world.evaluation.atari import main  # the error path in-process

    assert main(["--env", "ALE/MsPacman-v5", "--checkpoint", str(ckpt), "--steps", "5"]) == 2
    assert "trained on ALE/Pacman-v5" in capsys.readouterr().err


def test_sprites_found_within_the_distance():
    from sqair_world.evaluation.atari import centre_distances, sprites_found

    truth = np.array([[10.0, 10.0], [40.0, 40.0], [42.0, 41.0]])
    centres = np.array([[13.0, 14.0], [41.0, 40.5]])  # 5 px from the first sprite; one box for two close sprites
    d = centre_distances(truth, centres)
    assert d.shape == (3, 2) and abs(d[0, 0] - 5.0) < 1e-9
    assert sprites_found(d, 5.0).tolist() == [True, True, True]
    assert sprites_found(d, 4.9).tolist() == [False, True, True]
    empty = centre_distances(truth, np.zeros((0, 2)))
    assert empty.shape == (3, 0) and sprites_found(empty, 5.0).tolist() == [False, False, False]
