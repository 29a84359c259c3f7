"""The preprocessing measurement CLI (issue #7 facts) on a tiny budget, in-process."""

import json

import numpy as np

from scripts.atari_measure import foreground, main, near_foreground
from sqair_world.envs.atari import make_maze_env, sticky_action


def test_measure_cli_smoke_and_erasing_removes_blobs(capsys):
    assert main(["--steps", "60"]) == 0
    out = capsys.readouterr().out
    r = json.loads(out[out.index("{") :])
    assert r["observations"] > 0
    assert r["max_all_4_erased"]["blobs_max"] <= r["max_all_4"]["blobs_max"]
    assert main(["--env", "ALE/Breakout-v5", "--steps", "5"]) == 2
    assert "error: no maze preprocessing" in capsys.readouterr().err


def test_ram_positions_land_on_sprites():
    """The fitted RAM-to-screen mapping puts the player (and the isolated ghosts) on foreground pixels."""
    for env_id in ("ALE/Pacman-v5", "ALE/MsPacman-v5"):
        env = make_maze_env(env_id, repeat_action_probability=0.0)
        rng = np.random.default_rng(0)
        env.reset(seed=0)
        frames, xy, action = [], [], 0
        for _ in range(150):
            action = sticky_action(rng, action, env.action_space.n)
            obs, _, term, trunc, info = env.step(action)
            if term or trunc:
                break
            frames.append(obs)
            xy.append(env.game.positions(info["ram_xy"]))
        frames = np.stack(frames)
        fg = foreground(frames, np.median(frames, 0).astype(np.uint8))
        player = np.mean([near_foreground(m, p[:1])[0] for m, p in zip(fg, xy)])
        assert player > 0.9, (env_id, player)
        # a mapping off by 10 px lands on background most of the time
        shifted = np.mean([near_foreground(m, p[:1] + [10, 10])[0] for m, p in zip(fg, xy)])
        assert shifted < 0.3, (env_id, shifted)
