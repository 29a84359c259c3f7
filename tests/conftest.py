import os
import sys

# One CPU thread for the tests and the CLIs they start: the tests use small tensors, where a second
# thread costs more in wake-ups than it gains (badly so on a loaded machine).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

sys.path.insert(0, os.path.dirname(__file__))  # tests share toy_data.py
torch.set_num_threads(1)


import pytest  # noqa: E402

#: The tiny SQAIR the model tests share: 24x24 frames, 8x8 glimpses, N = 3 slots, K = 3 particles.
TINY_SQAIR = dict(image_shape=(1, 24, 24), glimpse_size=(8, 8), n_what=6, n_hidden=32, n_hidden_small=16, k_particles=3)


@pytest.fixture(scope="session")
def tiny_sqair():
    """``tiny_sqair(name="mlp-sqair", **overrides)`` builds a tiny model of the SQAIR family (``mlp-sqair``,
    ``conv-sqair``, ``mlp-air``) from :data:`TINY_SQAIR` and ``overrides``, with torch's seed 0: a fresh model per
    call, since tests change its weights and train it."""
    from sqair_world.model.registry import build_model

    def build(name: str = "mlp-sqair", **overrides):
        torch.manual_seed(0)
        return build_model(name, **{**TINY_SQAIR, **overrides})

    return build


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory, tiny_sqair):
    """A small untrained moving-MNIST SQAIR checkpoint (50x50 frames, the plugin's) for the plugin tests; read-only."""
    from sqair_world.training.checkpoints import save_model

    path = tmp_path_factory.mktemp("ckpt") / "mm.pt"
    model = tiny_sqair(image_shape=(1, 50, 50), glimpse_size=(20, 20), n_what=8, k_particles=5)
    save_model(path, model)
    return path
