"""The random policy's game score under the agents' evaluation protocol: the reference line of the curves.

    python -m sqair_world.agents.random_policy --env MsPacman --episodes 30 --seed 0

Uniform random actions in the evaluation envs of :mod:`sqair_world.agents.envs` (whole games, unclipped
scores, 4 frames per step, sticky actions p = 0.25), so the score is measured like the agents' and not taken from
papers that used other protocols (the literature's 307.3 on Ms. Pac-Man uses no-op starts without sticky actions).
The RAM-observation env is used: the game is the same for every observation type and it draws no frames.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tyro

from sqair_world.agents.envs import EnvSettings, game_of, make_vec_env


def random_returns(game: str, episodes: int, seed: int = 0, n_envs: int = 8) -> np.ndarray:
    """Game scores ``[episodes]`` of uniform random actions in ``n_envs`` evaluation envs seeded ``seed, ...``."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    n = min(n_envs, episodes)
    venv = make_vec_env(EnvSettings(game=game, obs="oracle", motion=False), n, seed, False)
    rng = np.random.default_rng(seed)
    # a fixed share of the games per env (as SB3's evaluate_policy): taking the first games to end would favour
    # short, low-scoring ones
    target = np.array([episodes // n + (i < episodes % n) for i in range(n)])
    returns: list[list[float]] = [[] for _ in range(n)]
    venv.reset()
    while any(len(r) < k for r, k in zip(returns, target)):
        _, _, dones, infos = venv.step(rng.integers(venv.action_space.n, size=n))
        for i in np.flatnonzero(dones):
            if "episode" in infos[i] and len(returns[i]) < target[i]:
                returns[i].append(float(infos[i]["episode"]["r"]))
    venv.close()
    return np.asarray([r for env in returns for r in env], dtype=np.float64)


@dataclass(frozen=True)
class RandomArgs:
    """Score the uniform random policy of a maze game under the agents' evaluation protocol."""

    env: str = "MsPacman"
    """The game, in any form --env of sqair_world.agents.train takes (MsPacman, SQAIR-Wrapped/Pacman, ...)."""
    episodes: int = 30
    """Whole games to play."""
    seed: int = 0
    """Seed of the envs and of the actions."""


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (0 done, 2 bad input)."""
    args = tyro.cli(RandomArgs, args=argv, prog="python -m sqair_world.agents.random_policy")
    try:
        game = game_of(args.env)
        if game == "MovingMNIST":
            raise ValueError("MovingMNIST has no game score: give Pacman or MsPacman")
        scores = random_returns(game, args.episodes, args.seed)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{game} random policy: {scores.mean():.1f} +- {scores.std():.1f} over {len(scores)} games")
    return 0


if __name__ == "__main__":
    sys.exit(main())
