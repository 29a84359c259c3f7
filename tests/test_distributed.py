"""Process-group helpers without torchrun, and the pretrain command under torchrun with two gloo processes (a
separate interpreter per rank: the one test here that cannot run in-process)."""

import os
import subprocess
import sys

import pytest
import torch

from sqair_world.training.checkpoints import safe_torch_load
from sqair_world.training.distributed import DistInfo, any_rank, init_distributed, select_device


def test_single_process_defaults(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info, device = init_distributed("cpu")
    assert info == DistInfo(0, 1, 0) and info.main and device == torch.device("cpu")
    assert any_rank([True, False], info, device) == [True, False]


def test_bad_device_and_launch_errors_say_what_to_do(monkeypatch):
    with pytest.raises(ValueError, match="unknown device"):
        select_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            select_device("cuda")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(ValueError, match="torchrun"):
        init_distributed("cpu")


def test_torchrun_cli_two_gloo_processes(tmp_path):
    """The pretrain command itself under torchrun: trains, only rank 0 writes, checkpoint loads."""
    env = {**os.environ, "SQAIR_WORLD_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "sqair_world.pretrain",
        "--device",
        "cpu",
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--curriculum-max",
        "3",
        "--num-train-sequences",
        "8",
        "--num-val-sequences",
        "4",
        "--val-every",
        "2",
        "--no-progress",
        "--final-eval",
        "2",
        "--final-eval-particles",
        "2",
        "--run-dir",
        str(tmp_path / "run"),
        "--model.k-particles",
        "2",
        "--model.n-hidden",
        "16",
        "--model.n-what",
        "4",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stderr.count("checkpoint: ") == 1  # printed by rank 0 only
    data = safe_torch_load(tmp_path / "run" / "last.pt")
    assert data["extra"]["step"] == 2
    # rank 0 alone writes the checkpoint, the logs and the closing evaluation
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["eval", "last.pt", "tb"]
    assert out.stdout.count("log p(x)") == 1
