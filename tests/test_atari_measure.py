"""The preprocessing measurement CLI (issue #7 facts) on a tiny budget."""
import json
import subprocess
import sys


def test_measure_cli_smoke_and_erasing_removes_blobs():
    out = subprocess.run([sys.executable, "-m", "sqair_world.wrappers.atari_measure", "--steps", "60"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout[out.stdout.index("{"):])
    assert r["observations"] > 0
    assert r["max_all_4_erased"]["blobs_max"] <= r["max_all_4"]["blobs_max"]
    bad = subprocess.run([sys.executable, "-m", "sqair_world.wrappers.atari_measure", "--env", "ALE/Breakout-v5",
                          "--steps", "5"], capture_output=True, text=True)
    assert bad.returncode == 2 and "no maze preprocessing" in bad.stderr
