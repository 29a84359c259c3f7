"""How predictable is the player, and from what? A supervised ceiling for issue 22's player target.

    python scripts/player_ceiling.py --env ALE/Pacman-v5
    python scripts/player_ceiling.py --env ALE/MsPacman-v5

Plays the sticky random policy of the training data and evaluation (``envs.atari.sticky_action``) and reads the
player's position from RAM, so the positions are exact. An MLP is fitted on seeds 0-3 to predict the player's
displacement ``--horizon`` steps ahead from [position, last displacement] and from [position, last displacement, the
next ``--horizon`` actions]; seed 4 is held out. Prints the held-out mean error beside copy-last and constant velocity,
in pixels of the 84x84 frame, as one JSON line. A world model's prior sees no more than this (its where, its last
displacement and the actions) and sees it through its own noisy posterior, so the ratio is about the best it can
reach against the baselines.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from sqair_world.envs.atari import game_from_env_id, make_maze_env, sticky_action


def play(env_id: str, seed: int, steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Player centres ``[steps, 2]`` px, the actions taken after each ``[steps]`` and episode numbers ``[steps]``."""
    game, env = game_from_env_id(env_id), make_maze_env(env_id)
    rng = np.random.default_rng(seed)
    _, info = env.reset(seed=seed)
    action, episode, out = 0, 0, []
    for _ in range(steps):
        action = sticky_action(rng, action, env.action_space.n)
        out.append((game.positions(np.asarray(info["ram_xy"], float))[0], action, episode))
        _, _, term, trunc, info = env.step(action)
        if term or trunc:
            _, info = env.reset(seed=int(rng.integers(2**31)))
            episode += 1
    pos, act, ep = zip(*out)
    return np.array(pos), np.array(act), np.array(ep), int(env.action_space.n)


def examples(pos, act, ep, num_actions: int, horizon: int, max_step: float = 6.0):
    """Features [position / 84, last displacement, one-hot next actions], targets (displacement over ``horizon``
    steps) and last displacements; windows across an episode end, a death or a tunnel (a step over ``max_step`` px)
    are left out."""
    feats, targets, last = [], [], []
    for t in range(1, len(pos) - horizon):
        steps = np.diff(pos[t - 1 : t + horizon + 1], axis=0)
        if ep[t - 1] != ep[t + horizon] or np.abs(steps).max() > max_step:
            continue
        v = pos[t] - pos[t - 1]
        feats.append(np.concatenate([pos[t] / 84, v, np.eye(num_actions)[act[t : t + horizon]].ravel()]))
        targets.append(pos[t + horizon] - pos[t])
        last.append(v)
    return np.array(feats, np.float32), np.array(targets, np.float32), np.array(last, np.float32)


def fit_error(x_train, y_train, x_test, y_test, iterations: int = 3000) -> float:
    """Held-out mean Euclidean error (px) of a 2x128 ELU MLP fitted to the mean Euclidean error."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(x_train.shape[1], 128), torch.nn.ELU(), torch.nn.Linear(128, 128), torch.nn.ELU(),
        torch.nn.Linear(128, 2),
    )  # fmt: skip
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x, y = torch.from_numpy(x_train), torch.from_numpy(y_train)
    for _ in range(iterations):
        i = torch.randint(len(x), (256,))
        loss = (net(x[i]) - y[i]).norm(dim=1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return (net(torch.from_numpy(x_test)) - torch.from_numpy(y_test)).norm(dim=1).mean().item()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="ALE/Pacman-v5")
    p.add_argument("--horizon", type=int, default=5)
    p.add_argument("--steps", type=int, default=3000, help="steps played per seed (seeds 0-4)")
    args = p.parse_args()
    data = [examples(*play(args.env, seed, args.steps), args.horizon) for seed in range(5)]
    x_train, y_train = (np.concatenate([d[i] for d in data[:4]]) for i in (0, 1))
    x_test, y_test, last = data[4]
    copy = float(np.linalg.norm(y_test, axis=1).mean())
    velocity = float(np.linalg.norm(y_test - args.horizon * last, axis=1).mean())
    motion = fit_error(x_train[:, :4], y_train, x_test[:, :4], y_test)
    actions = fit_error(x_train, y_train, x_test, y_test)
    best = min(copy, velocity)
    print(json.dumps(dict(
        env=args.env, horizon=args.horizon, train=len(x_train), test=len(x_test), copy_last=round(copy, 2),
        constant_velocity=round(velocity, 2), mlp_position_motion=round(motion, 2),
        mlp_position_motion_actions=round(actions, 2), ratio_to_best_baseline=round(actions / best, 2),
        ratio_without_actions=round(motion / best, 2),
    )))  # fmt: skip


if __name__ == "__main__":
    main()
