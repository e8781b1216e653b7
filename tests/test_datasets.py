"""keras_nrae.datasets.load_images: tfds (mocked), local IDX / npz files, real MNIST."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from keras_nrae import datasets

MNIST_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"


def write_idx(path: Path, pixels: np.ndarray) -> None:
    """The IDX layout by hand: 0, 0, type 0x08 (uint8), ndim, big-endian dims, data."""
    header = bytes([0, 0, 0x08, pixels.ndim]) + struct.pack(f">{pixels.ndim}I", *pixels.shape)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(header + pixels.astype(np.uint8).tobytes())


@pytest.fixture
def no_tfds(monkeypatch):
    """Make every tfds.load attempt fail, as offline without prepared data."""

    def fail(*args, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "_load_tfds", fail)


@pytest.fixture
def pixels():
    return np.random.default_rng(0).integers(0, 256, size=(6, 5, 4), dtype=np.uint8)


@pytest.mark.parametrize("name", ["t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte"])
def test_local_idx_folder(tmp_path, pixels, no_tfds, name):
    write_idx(tmp_path / name, pixels)
    images = datasets.load_images("digits", "test", data_dir=str(tmp_path))
    assert images.dtype == np.float32 and images.shape == (6, 5, 4, 1)
    np.testing.assert_array_equal(images[..., 0] * 255, pixels)


def test_local_npz_via_environment_variable(tmp_path, pixels, no_tfds, monkeypatch):
    (tmp_path / "digits").mkdir()
    rgb = np.stack([pixels, 255 - pixels, pixels // 2], axis=-1)
    np.savez(tmp_path / "digits" / "digits.npz", x_train=rgb, x_test=pixels[:2])
    monkeypatch.setenv(datasets.DATA_ENV_VAR, str(tmp_path))
    images = datasets.load_images("digits", "train")
    assert images.shape == (6, 5, 4, 3)
    np.testing.assert_allclose(images, rgb / 255.0, rtol=1e-6)
    assert datasets.load_images("digits", "test").shape == (2, 5, 4, 1)


def test_offline_failure_lists_the_paths_tried(tmp_path, no_tfds):
    with pytest.raises(FileNotFoundError) as info:
        datasets.load_images("nothing_here", "train", data_dir=str(tmp_path))
    message = str(info.value)
    assert str(tmp_path) in message and str(tmp_path / "nothing_here") in message
    assert "tfds.load('nothing_here', download=False)" in message
    assert datasets.DATA_ENV_VAR in message


def test_bad_split_and_bad_idx(tmp_path):
    with pytest.raises(ValueError, match="split must be one of"):
        datasets.load_images("mnist", "validation")
    (tmp_path / "junk").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="not an IDX file"):
        datasets.read_idx(tmp_path / "junk")


def test_tfds_path_with_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=7):
        images = datasets.load_images("mnist", "train")
    assert images.dtype == np.float32 and images.shape == (7, 28, 28, 1)
    assert images.min() >= 0.0 and images.max() <= 1.0


@pytest.mark.skipif(
    not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
    reason=f"real MNIST IDX files not found in {MNIST_DIR.resolve()}",
)
def test_real_mnist_from_shared_data(no_tfds):
    images = datasets.load_images("mnist", "test")
    assert images.shape == (10_000, 28, 28, 1) and images.dtype == np.float32
    with gzip.open(MNIST_DIR / "t10k-images-idx3-ubyte.gz") as f:
        raw = np.frombuffer(f.read(), np.uint8, offset=16).reshape(10_000, 28, 28)
    np.testing.assert_array_equal(np.round(images[..., 0] * 255).astype(np.uint8), raw)
    assert images.min() == 0.0 and images.max() == 1.0
