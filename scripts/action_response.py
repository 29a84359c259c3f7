"""Does the prior move the player as the game does? The imagined response to each action against the game's own.

    python scripts/action_response.py --env ALE/Pacman-v5 --checkpoint pacman_velocity

Plays the sticky random policy on the slot-wrapped game. Every ``--every`` steps, from the tracker state, for each
action a held for ``--horizon`` steps: the player's displacement in the prior's point forecast
(``imagine(H, 1, actions=[a] * H, mean=True)``, the track on the player's RAM position), and in the game itself (the
emulator's state cloned, a played ``4 H`` raw frames, the RAM read, the state restored). Prints, per action, the mean
displacement of both, the forecast's error against the game's, and the error of copying the last position, in pixels
of the 84x84 frame; and how far the displacements spread across the actions of one state (what the action decides).
Windows where the player jumps (tunnel, death) are left out.
"""

from __future__ import annotations

import argparse
import json

import gymnasium as gym
import numpy as np
import torch

import sqair_world  # noqa: F401  (registers SQAIR-Wrapped/*)
from sqair_world.envs.atari import sticky_action


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="ALE/Pacman-v5")
    p.add_argument("--checkpoint", default="pacman_velocity", help="an action-conditioned checkpoint")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--every", type=int, default=4, help="probe every this many steps")
    p.add_argument("--horizon", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    name = args.env.split("/")[-1].split("-")[0]
    env = gym.make(f"SQAIR-Wrapped/{name}", checkpoint=args.checkpoint)
    game, size, H = env.get_wrapper_attr("game"), env.get_wrapper_attr("size"), args.horizon
    imagine, ram_xy = env.get_wrapper_attr("imagine"), env.get_wrapper_attr("ram_xy")
    ale, action_set = env.unwrapped.ale, env.unwrapped._action_set
    nA = env.action_space.n
    rng = np.random.default_rng(args.seed)
    _, info = env.reset(seed=args.seed)
    action, imagined, true = 0, [], []
    for t in range(args.steps):
        action = sticky_action(rng, action, nA)
        obs, _, term, trunc, info = env.step(action)
        if term or trunc:
            _, info = env.reset(seed=int(rng.integers(2**31)))
            continue
        if t % args.every:
            continue
        player = game.positions(info["ram_xy"], size)[0]
        d = np.linalg.norm(obs["where"][:, :2] * size - player, axis=-1)
        d[obs["pres"] <= 0] = np.inf
        n = int(d.argmin())
        if d[n] > 4:  # the player is not tracked here
            continue
        im, tr = [], []
        for a in range(nA):
            f = imagine(H, 1, actions=np.full(H, a), mean=True)
            kept = np.flatnonzero(f["id"][H - 1, 0] == obs["id"][n])
            if not len(kept):
                break
            im.append(f["where"][H - 1, 0, kept[0], :2] * size - obs["where"][n, :2] * size)
            state = ale.cloneState()
            for _ in range(4 * H):  # MazePreprocessing repeats each action over 4 raw frames
                ale.act(action_set[a])
            tr.append(game.positions(ram_xy(), size)[0] - player)
            ale.restoreState(state)
        if len(im) == nA:
            imagined.append(im), true.append(tr)
    im, tr = np.array(imagined), np.array(true)  # [states, actions, 2]
    keep = (np.abs(tr) < 20).all((1, 2))  # no tunnel or death inside the window
    im, tr = im[keep], tr[keep]
    names = env.unwrapped.get_action_meanings()
    rows = {}
    for a in range(nA):
        rows[names[a]] = {
            "imagined_mean_px": [round(float(v), 2) for v in im[:, a].mean(0)],
            "game_mean_px": [round(float(v), 2) for v in tr[:, a].mean(0)],
            "forecast_error_px": round(float(np.linalg.norm(im[:, a] - tr[:, a], axis=-1).mean()), 2),
            "copy_last_error_px": round(float(np.linalg.norm(tr[:, a], axis=-1).mean()), 2),
        }
    spread = lambda x: round(float(np.linalg.norm(x - x.mean(1, keepdims=True), axis=-1).mean()), 2)
    print(
        "| action | imagined mean (x, y) | game mean (x, y) | forecast error | copy-last error |\n|---|---|---|---|---|"
    )
    for a, r in rows.items():
        print(
            f"| {a} | {r['imagined_mean_px']} | {r['game_mean_px']} | {r['forecast_error_px']} | "
            f"{r['copy_last_error_px']} |"
        )
    out = {"states": len(im), "horizon": H, "spread_game_px": spread(tr), "spread_imagined_px": spread(im), **rows}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
