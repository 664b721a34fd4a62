import numpy as np
import pytest
import torch

from mnist_core import data
from mnist_core.data import DataError, load_mnist, read_idx, read_split, write_idx, write_mnist
from tests.conftest import synthetic_digits


def test_idx_round_trip(tmp_path):
    arr = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    write_idx(tmp_path / "x", arr)
    assert (tmp_path / "x").stat().st_size == 16 + arr.size
    np.testing.assert_array_equal(read_idx(tmp_path / "x", 0x803, (28, 28)), arr)


def test_load_synthetic_split(synthetic_root):
    train, test = load_mnist(synthetic_root, download=False)
    assert train.images.shape == (1200, 28, 28) and train.images.dtype == torch.uint8
    assert test.labels.shape == (300,) and test.labels.dtype == torch.int64


def _root(tmp_path):
    return write_mnist(tmp_path, synthetic_digits(20, 0), synthetic_digits(10, 1))


def test_truncated_file_is_reported_clearly(tmp_path):
    root = _root(tmp_path)
    f = root / "MNIST/raw/train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated"):
        load_mnist(root, download=False)


def test_short_header_and_wrong_magic(tmp_path):
    root = _root(tmp_path)
    (root / "MNIST/raw/t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="too short"):
        read_split(root / "MNIST/raw", train=False)
    (root / "MNIST/raw/t10k-labels-idx1-ubyte").write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 20)  # gzip bytes
    with pytest.raises(DataError, match="magic"):
        read_split(root / "MNIST/raw", train=False)


def test_count_mismatch(tmp_path):
    root = _root(tmp_path)
    write_idx(root / "MNIST/raw/train-labels-idx1-ubyte", np.zeros(19, np.uint8))
    with pytest.raises(DataError, match="20 images but .* 19 labels"):
        read_split(root / "MNIST/raw", train=True)


def test_wrong_image_size(tmp_path):
    root = _root(tmp_path)
    write_idx(root / "MNIST/raw/train-images-idx3-ubyte", np.zeros((20, 32, 32), np.uint8))
    with pytest.raises(DataError, match="expected 28x28"):
        read_split(root / "MNIST/raw", train=True)


def test_missing_files_and_failed_download_say_where(tmp_path, monkeypatch):
    import torchvision.datasets

    class NoNetwork:
        def __init__(self, *a, **k):
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: "
                               "[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "MNIST", NoNetwork)
    with pytest.raises(DataError) as e:
        load_mnist(tmp_path / "nowhere", download=True)
    msg = str(e.value)
    assert "download failed" in msg and "MNIST/raw" in msg and "--data-dir" in msg and "MNIST_DATA_DIR" in msg
    assert "\n" not in msg  # one sentence, no traceback


def test_missing_without_download(tmp_path):
    with pytest.raises(DataError, match="downloading is switched off"):
        load_mnist(tmp_path, download=False)


def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path / "env"))
    assert data.resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert data.resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv("MNIST_DATA_DIR")
    assert str(data.resolve_data_dir(None)) == "data"


def test_real_mnist_shapes(real_mnist):
    train, test = load_mnist(real_mnist, download=False)
    assert len(train) == 60000 and len(test) == 10000
    assert torch.bincount(test.labels).tolist()[:2] == [980, 1135]


def test_cli_says_where_the_data_must_go(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT
    out = subprocess.run([sys.executable, "-m", "mnist_core", "evaluate", "--data-dir", str(tmp_path / "none"),
                          "--no-download"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.startswith("error: MNIST is not in") and "Traceback" not in out.stderr
    assert "--data-dir" in out.stderr and out.stderr.count("\n") == 1
