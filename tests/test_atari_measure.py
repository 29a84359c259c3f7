"""The preprocessing measurement CLI (issue #7 facts) on a tiny budget."""

import json
import subprocess
import sys


def test_measure_cli_smoke_and_erasing_removes_blobs(capsys):
    out = subprocess.run(
        [sys.executable, "-m", "scripts.atari_measure", "--steps", "60"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout[out.stdout.index("{") :])
    assert r["observations"] > 0
    assert r["max_all_4_erased"]["blobs_max"] <= r["max_all_4"]["blobs_max"]
    from scripts.atari_measure import main  # the error path in-process

    assert main(["--env", "ALE/Breakout-v5", "--steps", "5"]) == 2
    assert "no maze preprocessing" in capsys.readouterr().err


def test_ram_positions_land_on_sprites():
    """The fitted RAM-to-screen mapping puts the player (and the isolated ghosts) on foreground pixels."""
    import numpy as np

    from scripts.atari_measure import foreground, near_foreground
    from sqair_world.envs.atari import make_maze_env

    for env_id in ("ALE/Pacman-v5", "ALE/MsPacman-v5"):
        env = make_maze_env(env_id, repeat_action_probability=0.0)
        rng = np.random.default_rng(0)
        env.reset(seed=0)
        frames, xy, action = [], [], 0
        for _ in range(150):
            if rng.random() < 0.25:
                action = int(rng.integers(env.action_space.n))
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
