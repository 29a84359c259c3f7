import os
import sys

# One CPU thread for the tests and the CLIs they start: the tests use small tensors, where a second
# thread costs more in wake-ups than it gains (badly so on a loaded machine).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

sys.path.insert(0, os.path.dirname(__file__))  # tests share toy_data.py
torch.set_num_threads(1)


import pytest  # noqa: E402


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    """A small untrained moving-MNIST SQAIR checkpoint for the plugin tests."""
    from sqair_world.model.registry import build_model
    from sqair_world.training.checkpoints import save_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "mm.pt"
    save_model(path, build_model("mlp-sqair", n_hidden=32, n_what=8, n_hidden_small=16))
    return path
