"""Moving multi-MNIST: the generator's invariants against reference §1, the cache, the numpy-only import and the
benchmark script (the preview CLI is tested in test_cli.py)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sqair_world.data import (
    MovingMNISTConfig,
    load_embedded_mnist,
    load_moving_mnist,
    make_moving_mnist,
    noisy_acceleration_step,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pool():
    return load_embedded_mnist("train")


@pytest.fixture(scope="module")
def data(pool):
    return make_moving_mnist(*pool, 2000, seed=0)


def test_shapes_dtypes_and_count_distribution(data):
    S = len(data)
    assert data.frames.shape == (10, S, 50, 50) and data.frames.dtype == np.uint8
    assert data.boxes.shape == data.visible_boxes.shape == (10, S, 2, 4) and data.boxes.dtype == np.float32
    assert data.visible_frac.shape == (10, S, 2) and data.labels.shape == (S, 2) and data.labels.dtype == np.int64
    counts = np.bincount(data.num_digits, minlength=3) / S  # n ~ U{0, 1, 2}
    assert np.all(np.abs(counts - 1 / 3) < 0.04), counts
    assert np.array_equal(data.labels >= 0, data.present) and np.array_equal(data.track_ids >= 0, data.present)
    assert np.all(data.present[:, 0] >= data.present[:, 1])  # slots fill in order
    assert np.array_equal(data.digit_sum, np.where(data.present, data.labels, 0).sum(1)) and data.digit_sum.max() <= 18
    assert data.frames.max() == 255 and len(np.unique(data.frames)) > 100  # grey levels kept, not binarised


def test_first_frame_inside_and_without_overlap(data):
    b = data.boxes[0]  # [S, M, 4] (y, x, h, w)
    assert np.all(data.visible_frac[0][data.present] == 1.0) and np.all(data.num_visible[0] == data.num_digits)
    two = data.num_digits == 2
    y0, x0, h0, w0 = b[two, 0].T
    y1, x1, h1, w1 = b[two, 1].T
    overlap = (np.minimum(y0 + h0, y1 + h1) > np.maximum(y0, y1)) & (np.minimum(x0 + w0, x1 + w1) > np.maximum(x0, x1))
    assert two.sum() > 500 and not overlap.any()


def test_bounce_step_reflects_and_flips_velocity():
    cfg = MovingMNISTConfig(acceleration_noise=0.0)
    rng = np.random.default_rng(0)
    pos = np.array([[3.0, 48.0], [20.0, 20.0]])
    vel = np.array([[-5.0, 4.0], [1.0, -2.0]])
    acc = np.array([[1.0, -2.0], [0.5, 0.5]])
    p, v, a = noisy_acceleration_step(pos, vel, acc, cfg, rng)
    # pos += vel -> (-2, 52): reflected to (2, 48), vel += acc -> (-4, 2) then negated, acc negated
    assert np.allclose(p[0], [2.0, 48.0]) and np.allclose(v[0], [4.0, -2.0]) and np.allclose(a[0], [-1.0, 2.0])
    assert np.allclose(p[1], [21.0, 18.0]) and np.allclose(v[1], [1.5, -1.5]) and np.allclose(a[1], [0.5, 0.5])
    big = noisy_acceleration_step(np.zeros(2), np.array([9.5, -9.5]), np.array([2.9, -2.9]), cfg, rng)[1]
    assert np.allclose(big, [10.0, 10.0])  # clipped to |v| <= 10 (the second axis bounced at 0: sign flipped)


def test_simulated_trajectories_stay_in_bounds_and_flip_at_every_bounce():
    cfg, rng = MovingMNISTConfig(), np.random.default_rng(1)
    pos, vel, acc = rng.uniform(0, 50, (5000, 2)), rng.uniform(-10, 10, (5000, 2)), rng.uniform(-3, 3, (5000, 2))
    flips = 0
    for _ in range(30):
        free = pos + vel  # where the corner would go without the walls
        new_pos, new_vel, new_acc = noisy_acceleration_step(pos, vel, acc, cfg, rng)
        bounced = (free < 0) | (free > 50)
        assert new_pos.min() >= 0 and new_pos.max() <= 50
        assert np.abs(new_vel).max() <= 10 and np.abs(new_acc).max() <= 3
        expected = np.clip(vel + acc, -10, 10)
        assert np.allclose(new_vel[bounced], -expected[bounced]) and np.allclose(new_vel[~bounced], expected[~bounced])
        flips += bounced.sum()
        pos, vel, acc = new_pos, new_vel, new_acc
    assert flips > 1000


def test_motion_matches_the_reference_statistics(data):
    pos = data.boxes[..., :2][:, data.present]  # [T, P, 2] top-left corners
    assert pos.min() >= 0 and pos.max() <= 50 and np.array_equal(pos, np.round(pos))
    assert np.abs(np.diff(pos, axis=0)).max() <= 11  # |velocity| <= 10, plus rounding
    frac = data.visible_frac[:, data.present]  # [T, P]
    # reference §1 re-simulation: ~9.3 px per frame, 24% under half visible, 1.5% invisible, 46% tracks under 10%
    assert 8.5 < np.linalg.norm(np.diff(pos, axis=0), axis=-1).mean() < 10.0
    assert 0.20 < (frac < 0.5).mean() < 0.28 and 0.007 < (frac == 0).mean() < 0.025
    assert 0.40 < (frac < 0.1).any(0).mean() < 0.52
    # digits slide out only at the bottom/right: the visible box keeps the top-left corner
    assert np.array_equal(data.visible_boxes[..., :2], data.boxes[..., :2])
    assert (data.visible_boxes[..., 2:] < data.boxes[..., 2:]).any()


def test_objects_leave_and_come_back(pool):
    long = make_moving_mnist(*pool, 400, MovingMNISTConfig(seq_len=40), seed=3)
    gone = long.visible_frac[:, long.present] == 0  # [T, P]
    came_back = [g.any() and (~g[np.argmax(g) :]).any() for g in gone.T]
    assert sum(came_back) >= 10
    assert (long.num_visible < long.num_digits[None]).any()  # the two counting conventions differ


def test_boxes_and_visible_fraction_match_the_pixels(pool, data):
    for s in np.flatnonzero(data.num_digits == 1)[:150]:
        for t in range(10):
            y, x, h, w = data.visible_boxes[t, s, 0].astype(int)
            frame = data.frames[t, s]
            inside = np.zeros_like(frame, bool)
            inside[y : y + h, x : x + w] = True
            assert not frame[~inside].any()  # no ink outside the box
            by, bx, bh, bw = data.boxes[t, s, 0]
            assert np.isclose(data.visible_frac[t, s, 0], h * w / (bh * bw))
            if data.visible_frac[t, s, 0] == 1:  # a fully visible tight box touches ink on all four edges
                assert frame[y, x : x + w].any() and frame[y : y + h, x].any()
                assert frame[y + h - 1, x : x + w].any() and frame[y : y + h, x + w - 1].any()
    assert not data.frames[:, data.num_digits == 0].any()


def test_pixels_are_the_pixelwise_max_of_the_digits(pool):
    images, labels = pool
    one = make_moving_mnist(images[:1], labels[:1], 30, MovingMNISTConfig(max_digits=2), seed=5)
    s = np.flatnonzero(one.num_digits == 2)[0]  # both slots hold the same digit: rebuild the frame from its crop
    rows, cols = np.flatnonzero(images[0].any(1)), np.flatnonzero(images[0].any(0))
    crop = images[0][rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    for t in range(10):
        canvas = np.zeros((50 + 28, 50 + 28), np.uint8)
        for m in range(2):
            y, x = one.boxes[t, s, m, :2].astype(int)
            canvas[y : y + crop.shape[0], x : x + crop.shape[1]] = np.maximum(
                canvas[y : y + crop.shape[0], x : x + crop.shape[1]], crop
            )
        assert np.array_equal(one.frames[t, s], canvas[:50, :50])


def test_same_seed_same_data_different_seed_differs(pool):
    a = make_moving_mnist(*pool, 50, seed=7)
    b = make_moving_mnist(*pool, 50, seed=7)
    c = make_moving_mnist(*pool, 50, seed=8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a.frames, c.frames)


def test_subset_replace_and_empty(data):
    sub = data.subset(np.array([3, 1]))
    assert len(sub) == 2 and np.array_equal(sub.frames[:, 0], data.frames[:, 3])
    assert np.array_equal(sub.labels[1], data.labels[1]) and np.array_equal(
        sub.num_visible[:, 0], data.num_visible[:, 3]
    )
    with pytest.raises(ValueError, match="unknown SequenceSet fields"):
        data.replace(pixels=data.frames)
    empty = make_moving_mnist(*load_embedded_mnist("eval"), 0)
    assert len(empty) == 0 and empty.frames.shape == (10, 0, 50, 50)


def test_bad_parameters_raise_clear_errors(pool):
    with pytest.raises(ValueError, match="smaller than an MNIST digit"):
        MovingMNISTConfig(canvas_size=20)
    with pytest.raises(ValueError, match="seq_len"):
        MovingMNISTConfig(seq_len=0)
    with pytest.raises(ValueError, match="max_digits"):
        MovingMNISTConfig(max_digits=-1)
    with pytest.raises(ValueError, match="bounds"):
        MovingMNISTConfig(max_velocity=-1)
    with pytest.raises(ValueError, match="num_sequences"):
        make_moving_mnist(*pool, -3)
    with pytest.raises(TypeError, match="num_sequences"):
        make_moving_mnist(*pool, 2.5)
    with pytest.raises(TypeError, match="MovingMNISTConfig"):
        make_moving_mnist(*pool, 3, {"canvas_size": 50})
    with pytest.raises(ValueError, match="cannot fit without overlap"):
        make_moving_mnist(*pool, 5, MovingMNISTConfig(canvas_size=28, max_digits=40))
    # fits by area, not in practice: the rejection loop gives up
    with pytest.raises(ValueError, match="without overlap"):
        make_moving_mnist(*pool, 20, MovingMNISTConfig(canvas_size=28, max_digits=3), seed=0)
    with pytest.raises(ValueError, match="one label per image"):
        make_moving_mnist(pool[0], pool[1][:5], 3)
    with pytest.raises(ValueError, match="blank"):
        make_moving_mnist(np.zeros((2, 28, 28), np.uint8), np.zeros(2), 3)
    with pytest.raises(ValueError, match="split"):
        load_moving_mnist("validation", 10, cache=False)
    with pytest.raises(ValueError, match="no 'test' split"):
        load_moving_mnist("test", 10, cache=False)
    with pytest.raises(ValueError, match="seed"):
        load_moving_mnist("eval", 10, seed=-1, cache=False)


def test_cache_is_keyed_by_parameters_and_atomic(tmp_path, monkeypatch):
    a = load_moving_mnist("eval", 30, seed=1, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1 and not list(tmp_path.glob("*.tmp"))
    b = load_moving_mnist("eval", 30, seed=1, cache_dir=tmp_path)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and len(list(tmp_path.glob("*.npz"))) == 1
    c = load_moving_mnist("eval", 30, seed=1, cache_dir=tmp_path, cfg=MovingMNISTConfig(seq_len=5))
    assert c.frames.shape[0] == 5 and len(list(tmp_path.glob("*.npz"))) == 2
    d = load_moving_mnist("train", 30, seed=1, cache_dir=tmp_path)
    e = load_moving_mnist("eval", 30, seed=2, cache_dir=tmp_path)
    f = load_moving_mnist("eval", 31, seed=1, cache_dir=tmp_path)
    assert not np.array_equal(a.frames, d.frames) and not np.array_equal(a.frames, e.frames)
    assert len(f) == 31 and len(list(tmp_path.glob("*.npz"))) == 5
    for file in tmp_path.glob("*.npz"):  # a damaged cache file is regenerated, never trusted
        file.write_bytes(b"garbage")
    g = load_moving_mnist("eval", 30, seed=1, cache_dir=tmp_path)
    assert np.array_equal(a.frames, g.frames)
    monkeypatch.setenv("SQAIR_WORLD_CACHE", str(tmp_path / "env"))
    load_moving_mnist("eval", 5, seed=1)
    assert len(list((tmp_path / "env").glob("*.npz"))) == 1


def test_cache_follows_the_digit_files(tmp_path):
    from test_data_mnist import _mnist_dir

    _mnist_dir(tmp_path / "mnist", gz=True, layout="flat", n=5100)
    a = load_moving_mnist("train", 20, mnist_dir=tmp_path / "mnist", cache_dir=tmp_path / "c")
    assert a.frames.max() > 0
    _mnist_dir(tmp_path / "mnist", gz=True, layout="flat", n=5200)  # the files change: no stale cache
    b = load_moving_mnist("train", 20, mnist_dir=tmp_path / "mnist", cache_dir=tmp_path / "c")
    assert len(list((tmp_path / "c").glob("*.npz"))) == 2 and not np.array_equal(a.frames, b.frames)


def test_numpy_parts_import_neither_torch_nor_gymnasium():
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['gymnasium'] = None\n"
        "import sqair_world.data as d\n"
        "s = d.make_moving_mnist(*d.load_embedded_mnist('eval'), 8, seed=1)\n"
        "assert s.frames.shape == (10, 8, 50, 50)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    src = "".join(p.read_text() for p in (ROOT / "sqair_world" / "data").glob("*.py"))
    assert "import gymnasium" not in src and "from gymnasium" not in src


def test_bench_smoke(capsys):
    spec = importlib.util.spec_from_file_location("bench_moving_mnist", ROOT / "bench" / "bench_moving_mnist.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--num-sequences", "300"])
    lines = [ln.split() for ln in capsys.readouterr().out.splitlines() if ln.startswith("BENCH ")]
    assert [ln[1] for ln in lines] == [
        "moving_mnist_300_seconds",
        "moving_mnist_sequences_per_s",
        "moving_mnist_300_cpu_seconds",
    ]
    assert float(lines[0][2]) > 0 and lines[1][3] == "seq/s"
