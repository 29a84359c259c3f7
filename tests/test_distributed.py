"""Process-group helpers without torchrun (the two-process gloo test is in test_train.py)."""
import pytest
import torch

from sqair_world.distributed import DistInfo, any_rank, init_distributed, select_device


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
