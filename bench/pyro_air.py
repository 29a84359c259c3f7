"""AIR (Eslami et al. 2016) written in Pyro at the settings of Pyro's AIR example: the side-by-side reference
for ``bench_model.py``'s ``mlp_air_batch64_3steps_seconds``.

    python bench/pyro_air.py [--iters 5] [--threads 2] [--validate]

Written for this benchmark after the structure of Pyro's AIR tutorial (no code taken from it): 50x50 frames,
batch 64, up to 3 steps, z_what 50, an LSTM guide with 256 hidden units that reads the whole image and the
previous step's latents, 20x20 windows cut and pasted by a spatial transformer (``F.affine_grid`` /
``F.grid_sample``), encoder and decoder MLPs of 200 units, a geometric-like presence prior (each step present
with probability 0.5 if the previous one was), a Gaussian likelihood of std 0.3, and a data-dependent baseline
(its own LSTM) for the non-reparameterisable presence sites. Trained with ``SVI`` + ``TraceGraph_ELBO`` and Adam
(learning rate 1e-4, 1e-3 for the baseline), with Pyro's validation checks off unless ``--validate``
(:func:`time_pyro_air` says why). Every step is computed for every row; presence masks the absent ones, so the
time of a step does not depend on what the frames hold. The command line flushes denormals, as ``bench_model.py``
does.

Needs ``pyro-ppl`` (``pip install -e '.[bench]'``); the package itself does not.
"""

from __future__ import annotations

import argparse
import statistics
import time

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.infer import SVI, TraceGraph_ELBO
from pyro.optim import Adam
from torch import nn

from sqair_world.data import load_embedded_mnist, make_moving_mnist
from sqair_world.speed import flush_denormals
from sqair_world.utils import frames_to_input

IMAGE = 50  # frame side, pixels
WINDOW = 20  # object window side, pixels
Z_WHAT = 50
HIDDEN = 256  # guide (and baseline) LSTM width
MLP = 200  # encoder / decoder hidden units
Z_PRES_PRIOR = 0.5  # P(step t present | step t-1 present): a geometric prior on the object count
Z_WHERE_PRIOR_LOC = (3.0, 0.0, 0.0)  # (scale, x, y); scale 3 puts an object over a third of the frame
Z_WHERE_PRIOR_SCALE = (0.1, 1.0, 1.0)
LIKELIHOOD_STD = 0.3
LR, BASELINE_LR = 1e-4, 1e-3


def _theta(z_where: torch.Tensor) -> torch.Tensor:
    """``[B, 3]`` (s, x, y) -> ``[B, 2, 3]`` affine matrices ``[[s, 0, x], [0, s, y]]``."""
    s, x, y = z_where.unbind(-1)
    zero = torch.zeros_like(s)
    return torch.stack([s, zero, x, zero, s, y], -1).view(-1, 2, 3)


def window_to_image(windows: torch.Tensor, z_where: torch.Tensor) -> torch.Tensor:
    """Paste ``[B, WINDOW**2]`` windows into ``[B, IMAGE**2]`` frames.

    The frame point p reads the window at s * p + (x, y) (normalised [-1, 1] coordinates), so the window covers
    2 / s of the frame's side, centred on -(x, y) / s."""
    n = windows.size(0)
    grid = F.affine_grid(_theta(z_where), [n, 1, IMAGE, IMAGE], align_corners=False)
    return F.grid_sample(windows.view(n, 1, WINDOW, WINDOW), grid, align_corners=False).view(n, IMAGE * IMAGE)


def image_to_window(images: torch.Tensor, z_where: torch.Tensor) -> torch.Tensor:
    """Cut ``[B, WINDOW**2]`` windows out of ``[B, IMAGE**2]`` frames: the inverse map of :func:`window_to_image`
    (window point q reads the frame at (q - (x, y)) / s)."""
    n = images.size(0)
    s, xy = z_where[:, :1], z_where[:, 1:]
    inverse = torch.cat([1 / s, -xy / s], -1)
    grid = F.affine_grid(_theta(inverse), [n, 1, WINDOW, WINDOW], align_corners=False)
    return F.grid_sample(images.view(n, 1, IMAGE, IMAGE), grid, align_corners=False).view(n, WINDOW * WINDOW)


def _mlp(n_in: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, MLP), nn.ReLU(), nn.Linear(MLP, n_out))


class PyroAIR(nn.Module):
    """AIR's generative model and guide as Pyro programs over a batch ``data [B, IMAGE**2]`` in [0, 1].

    Site names: ``z_pres_t`` ``[B, 1]`` in {0, 1}, ``z_where_t`` ``[B, 3]``, ``z_what_t`` ``[B, Z_WHAT]``
    for t < ``steps``, and ``obs`` ``[B, IMAGE**2]``; all inside the plate ``data`` (dim -1, size B)."""

    def __init__(self, steps: int = 3) -> None:
        super().__init__()
        self.steps = steps
        rnn_in = IMAGE * IMAGE + Z_WHAT + 3 + 1  # the image and the previous step's z_what, z_where, z_pres
        self.decode = _mlp(Z_WHAT, WINDOW * WINDOW)
        self.encode = _mlp(WINDOW * WINDOW, 2 * Z_WHAT)  # z_what loc and pre-softplus scale
        self.rnn = nn.LSTMCell(rnn_in, HIDDEN)
        self.predict = nn.Linear(HIDDEN, 1 + 3 + 3)  # z_pres logit, z_where loc, pre-softplus z_where scale
        self.bl_rnn = nn.LSTMCell(rnn_in, HIDDEN)
        self.bl_predict = nn.Linear(HIDDEN, 1)
        with torch.no_grad():  # windows start at the prior's size, so the inverse scale 1 / s starts bounded
            self.predict.bias[1:4] = torch.tensor(Z_WHERE_PRIOR_LOC)
        self.register_buffer("where_loc", torch.tensor(Z_WHERE_PRIOR_LOC))
        self.register_buffer("where_scale", torch.tensor(Z_WHERE_PRIOR_SCALE))

    def model(self, data: torch.Tensor) -> None:
        pyro.module("decode", self.decode)
        n = data.size(0)
        with pyro.plate("data", n):
            x_mean = data.new_zeros(n, IMAGE * IMAGE)
            z_pres = data.new_ones(n, 1)
            for t in range(self.steps):
                # once a step is absent, every later one is (probability 0): the count prior is geometric
                z_pres = pyro.sample(f"z_pres_{t}", dist.Bernoulli(Z_PRES_PRIOR * z_pres).to_event(1))
                present = z_pres.squeeze(-1).bool()
                where_prior = dist.Normal(self.where_loc.expand(n, 3), self.where_scale.expand(n, 3))
                z_where = pyro.sample(f"z_where_{t}", where_prior.to_event(1).mask(present))
                what_prior = dist.Normal(data.new_zeros(n, Z_WHAT), data.new_ones(n, Z_WHAT))
                z_what = pyro.sample(f"z_what_{t}", what_prior.to_event(1).mask(present))
                y_att = torch.sigmoid(self.decode(z_what))
                x_mean = x_mean + window_to_image(y_att, z_where) * z_pres  # absent steps draw nothing
            pyro.sample("obs", dist.Normal(x_mean, LIKELIHOOD_STD).to_event(1), obs=data)

    def guide(self, data: torch.Tensor) -> None:
        pyro.module("guide", nn.ModuleList([self.rnn, self.predict, self.encode]))
        pyro.module("baseline", nn.ModuleList([self.bl_rnn, self.bl_predict]))
        n = data.size(0)
        with pyro.plate("data", n):
            h, c = data.new_zeros(n, HIDDEN), data.new_zeros(n, HIDDEN)
            bl_h, bl_c = data.new_zeros(n, HIDDEN), data.new_zeros(n, HIDDEN)
            z_pres, z_where, z_what = data.new_ones(n, 1), data.new_zeros(n, 3), data.new_zeros(n, Z_WHAT)
            for t in range(self.steps):
                rnn_in = torch.cat([data, z_what, z_where, z_pres], -1)
                h, c = self.rnn(rnn_in, (h, c))
                out = self.predict(h)
                z_pres_p = torch.sigmoid(out[:, :1])
                where_loc, where_scale = out[:, 1:4], F.softplus(out[:, 4:])
                # the baseline sees the same inputs, detached: its squared-error loss must train only itself
                bl_h, bl_c = self.bl_rnn(rnn_in.detach(), (bl_h, bl_c))
                baseline = self.bl_predict(bl_h).squeeze(-1) * z_pres.squeeze(-1)  # no score term after a stop
                z_pres = pyro.sample(
                    f"z_pres_{t}",
                    dist.Bernoulli(z_pres_p * z_pres).to_event(1),
                    infer={"baseline": {"baseline_value": baseline}},
                )
                present = z_pres.squeeze(-1).bool()
                z_where = pyro.sample(f"z_where_{t}", dist.Normal(where_loc, where_scale).to_event(1).mask(present))
                what = self.encode(image_to_window(data, z_where))
                what_loc, what_scale = what[:, :Z_WHAT], F.softplus(what[:, Z_WHAT:])
                z_what = pyro.sample(f"z_what_{t}", dist.Normal(what_loc, what_scale).to_event(1).mask(present))


def multi_mnist_frames(batch: int, seed: int = 1) -> torch.Tensor:
    """``[batch, IMAGE**2]`` float frames in [0, 1]: the first frame of seeded moving-MNIST sequences (0-2 of the
    embedded test digits per frame), multi-MNIST-like, as the data of Pyro's example is."""
    images, labels = load_embedded_mnist("eval")
    frames = make_moving_mnist(images, labels, batch, seed=seed).frames[0]  # [batch, 50, 50] uint8
    return frames_to_input(frames).reshape(batch, IMAGE * IMAGE)


def time_pyro_air(iters: int, batch: int = 64, steps: int = 3, validate: bool = False) -> float:
    """Median seconds of one ``SVI.step`` (guide, model, TraceGraph_ELBO surrogate, backward, Adam) over ``iters``
    steps after a warm-up step, on ``batch`` multi-MNIST-like 50x50 frames with ``steps`` AIR steps.

    ``validate``: Pyro's argument and support checks (on by default in Pyro unless ``python -O``). Off by default:
    the package's own model checks nothing per step either, so leaving them on would flatter its speed-up. They
    cost little here (on / off 1.04, median of 4 alternations, 1 thread, 2026-12-02). Runs on the torch threads and
    denormal setting of the caller; clears Pyro's global parameter store."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    air = PyroAIR(steps)
    # one argument: the parameter's name as ``nn.Module.named_parameters`` gives it, prefixed by the module name
    optim = Adam(lambda name: {"lr": BASELINE_LR if name.startswith("baseline") else LR})
    svi = SVI(air.model, air.guide, optim, loss=TraceGraph_ELBO())
    data = multi_mnist_frames(batch)
    with pyro.validation_enabled(validate):
        svi.step(data)  # warm-up: creates the parameters and the Adam state
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            svi.step(data)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--validate", action="store_true", help="keep Pyro's validation checks on (its default)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    flush_denormals()
    sec = time_pyro_air(args.iters, validate=args.validate)
    print(f"BENCH pyro_air_batch64_3steps_seconds{'_validated' if args.validate else ''} {sec:.4f} s")


if __name__ == "__main__":
    main()
