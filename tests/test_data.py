"""MNIST loading (embedded and IDX) and the moving multi-MNIST generator's invariants."""
import gzip
import subprocess
import sys

import numpy as np
import pytest
import torch

from sqair_world.data import (MNISTFormatError, MovingMNISTConfig, load_embedded_mnist, load_mnist_idx,
                              load_moving_mnist, make_loader, make_moving_mnist, read_idx, to_tensor)


@pytest.fixture(scope="module")
def pool():
    return load_embedded_mnist("train")


@pytest.fixture(scope="module")
def data(pool):
    return make_moving_mnist(*pool, 1500, seed=0)


def test_embedded_digits_are_real_disjoint_and_offline():
    tr_img, tr_lab = load_embedded_mnist("train")
    ev_img, ev_lab = load_embedded_mnist("eval")
    assert tr_img.shape == (4000, 28, 28) and ev_img.shape == (1000, 28, 28) and tr_img.dtype == np.uint8
    assert np.bincount(tr_lab).tolist() == [400] * 10 and np.bincount(ev_lab).tolist() == [100] * 10
    tr = {im.tobytes() for im in tr_img}
    assert not any(im.tobytes() in tr for im in ev_img)  # disjoint pools
    assert 0.08 < (tr_img > 0).mean() < 0.3 and tr_img.max() == 255  # ink like MNIST digits


def _write_idx(path, array, gz, magic_type=0x08):
    header = bytes([0, 0, magic_type, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    raw = header + array.astype(">u1").tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip_and_authors_split(tmp_path, gz):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (5010, 28, 28)).astype(np.uint8)
    labs = rng.integers(0, 10, 5010).astype(np.uint8)
    ext = ".gz" if gz else ""
    raw = tmp_path / "MNIST" / "raw"  # torchvision's layout
    raw.mkdir(parents=True)
    _write_idx(raw / f"train-images-idx3-ubyte{ext}", imgs, gz)
    _write_idx(raw / f"train-labels-idx1-ubyte{ext}", labs, gz)
    _write_idx(raw / f"t10k-images-idx3-ubyte{ext}", imgs[:7], gz)
    _write_idx(raw / f"t10k-labels-idx1-ubyte{ext}", labs[:7], gz)
    tr_i, tr_l = load_mnist_idx(tmp_path, "train")
    ev_i, ev_l = load_mnist_idx(tmp_path, "eval")
    te_i, _ = load_mnist_idx(tmp_path, "test")
    assert np.array_equal(tr_i, imgs[5000:]) and np.array_equal(tr_l, labs[5000:])
    assert np.array_equal(ev_i, imgs[:5000]) and len(te_i) == 7


def test_idx_errors_name_the_file(tmp_path):
    arr = np.zeros((3, 28, 28), np.uint8)
    good = tmp_path / "x"
    _write_idx(good, arr, False)
    assert read_idx(good).shape == (3, 28, 28)
    trunc = tmp_path / "truncated"
    trunc.write_bytes(good.read_bytes()[:-10])
    with pytest.raises(MNISTFormatError, match="truncated"):
        read_idx(trunc)
    bad = tmp_path / "magic"
    bad.write_bytes(b"\x01\x02\x08\x03" + good.read_bytes()[4:])
    with pytest.raises(MNISTFormatError, match="magic"):
        read_idx(bad)
    badgz = tmp_path / "broken.gz"
    badgz.write_bytes(gzip.compress(good.read_bytes())[:20])
    with pytest.raises(MNISTFormatError, match="broken.gz"):
        read_idx(badgz)
    _write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 20, 20), np.uint8), False)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3, np.uint8), False)
    with pytest.raises(MNISTFormatError, match=r"\[M, 28, 28\]"):
        load_mnist_idx(tmp_path)
    with pytest.raises(FileNotFoundError, match="t10k-images"):
        load_mnist_idx(tmp_path, "test")


def test_count_distribution_and_labels(data):
    counts = np.bincount(data.num_digits, minlength=3) / len(data)
    assert np.all(np.abs(counts - 1 / 3) < 0.05), counts
    assert np.all((data.labels >= 0) == data.present) and np.all(data.digit_sum <= 18)
    assert data.frames.shape == (10, 1500, 50, 50) and data.frames.dtype == np.uint8


def test_first_frame_inside_and_without_overlap(data):
    b = data.boxes[0]  # [S, M, 4] (y, x, h, w)
    two = data.num_digits == 2
    assert np.all(data.visible_frac[0][data.present] == 1.0)
    y0, x0, h0, w0 = b[two, 0].T
    y1, x1, h1, w1 = b[two, 1].T
    overlap = (np.minimum(y0 + h0, y1 + h1) > np.maximum(y0, y1)) & (np.minimum(x0 + w0, x1 + w1) > np.maximum(x0, x1))
    assert not overlap.any()


def test_bounce_rule_and_motion_bounds(data):
    pos = data.boxes[..., :2][:, data.present]  # [T, P, 2] top-left corners
    assert pos.min() >= 0 and pos.max() <= 50
    step = np.abs(np.diff(pos, axis=0))
    assert step.max() <= 10 + 1  # |velocity| <= 10 (plus rounding)
    assert 5 < step.mean() < 14  # the reference re-simulation: about 9.3 px per frame
    # digits slide out at the bottom/right but never at the top/left
    vis = data.visible_boxes[..., 2:][:, data.present]
    assert (vis[..., 0] < data.boxes[..., 2][:, data.present]).any()  # clipped at the bottom somewhere
    assert np.all(data.visible_boxes[..., :2] == data.boxes[..., :2] * 1)  # never clipped at top/left


def test_objects_leave_and_come_back(pool):
    long = make_moving_mnist(*pool, 400, MovingMNISTConfig(seq_len=40), seed=3)
    frac = long.visible_frac[:, long.present]  # [T, P]
    gone = frac == 0
    came_back = [(g.any() and (~g[np.argmax(g):]).any()) for g in gone.T]
    assert sum(came_back) >= 5


def test_boxes_match_the_pixels(data):
    one = np.flatnonzero(data.num_digits == 1)[:200]
    for t in (0, 5, 9):
        for s in one:
            y, x, h, w = data.visible_boxes[t, s, 0].astype(int)
            frame = data.frames[t, s]
            inside = np.zeros_like(frame, bool)
            inside[y:y + h, x:x + w] = True
            assert not frame[~inside].any()  # no ink outside the box
            if data.visible_frac[t, s, 0] == 1:  # a fully visible tight box touches ink on all four edges
                assert frame[y, x:x + w].any() and frame[y:y + h, x].any()
                assert frame[y + h - 1, x:x + w].any() and frame[y:y + h, x + w - 1].any()
    assert not data.frames[:, data.num_digits == 0].any()


def test_same_seed_same_data_different_seed_differs(pool):
    a = make_moving_mnist(*pool, 50, seed=7)
    b = make_moving_mnist(*pool, 50, seed=7)
    c = make_moving_mnist(*pool, 50, seed=8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a.frames, c.frames)


def test_bad_parameters_raise_clear_errors(pool):
    with pytest.raises(ValueError, match="smaller than an MNIST digit"):
        MovingMNISTConfig(canvas_size=20)
    with pytest.raises(ValueError, match="seq_len"):
        MovingMNISTConfig(seq_len=0)
    with pytest.raises(ValueError, match="max_digits"):
        MovingMNISTConfig(max_digits=-1)
    with pytest.raises(ValueError, match="num_sequences"):
        make_moving_mnist(*pool, -3)
    with pytest.raises(ValueError, match="without overlap"):
        make_moving_mnist(*pool, 20, MovingMNISTConfig(canvas_size=28, max_digits=3), seed=0)
    with pytest.raises(ValueError, match="split"):
        load_moving_mnist("validation", 10, cache=False)


def test_cache_is_keyed_by_parameters(tmp_path):
    a = load_moving_mnist("eval", 30, seed=1, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    b = load_moving_mnist("eval", 30, seed=1, cache_dir=tmp_path)
    assert np.array_equal(a.frames, b.frames) and len(list(tmp_path.glob("*.npz"))) == 1
    c = load_moving_mnist("eval", 30, seed=1, cache_dir=tmp_path, cfg=MovingMNISTConfig(seq_len=5))
    assert c.frames.shape[0] == 5 and len(list(tmp_path.glob("*.npz"))) == 2
    d = load_moving_mnist("train", 30, seed=1, cache_dir=tmp_path)
    assert not np.array_equal(a.frames, d.frames)
    for f in tmp_path.glob("*.npz"):  # a damaged cache file is regenerated
        f.write_bytes(b"garbage")
    e = load_moving_mnist("eval", 30, seed=1, cache_dir=tmp_path)
    assert np.array_equal(a.frames, e.frames)


def test_torch_loader_is_time_major(data):
    loader = make_loader(data.subset(slice(0, 64)), batch_size=16, seed=0)
    x, gt = next(iter(loader))
    assert x.shape == (10, 16, 1, 50, 50) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert gt["boxes"].shape == (10, 16, 2, 4) and gt["labels"].shape == (16, 2) and gt["num_visible"].shape == (10, 16)
    assert torch.equal(to_tensor(data.frames[:, :2]), torch.from_numpy(data.frames[:, :2]).unsqueeze(2).float() / 255)


def test_preview_cli_writes_gif_and_png(tmp_path):
    out = subprocess.run([sys.executable, "-m", "sqair_world.data.preview", "--out", str(tmp_path / "p.gif"),
                          "--png", str(tmp_path / "p.png"), "--num-sequences", "2"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    import imageio.v3 as iio

    gif = iio.imread(tmp_path / "p.gif")
    assert gif.shape[0] == 10 and gif.shape[-1] in (3, 4)
    assert iio.imread(tmp_path / "p.png").ndim == 3
