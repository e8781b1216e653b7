"""keras_nrae.datasets.load_images: tfds (mocked), local IDX / npz files, real MNIST."""

import dataclasses
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



def test_offline_failure_says_no_folder_was_searched(monkeypatch, no_tfds):
    monkeypatch.delenv(datasets.DATA_ENV_VAR, raising=False)
    with pytest.raises(FileNotFoundError, match="neither is set, so no folder was searched"):
        datasets.load_images("nothing_here", "train")

def test_bad_split_and_bad_idx(tmp_path):
    with pytest.raises(ValueError, match="split must be one of"):
        datasets.load_images("mnist", "validation")
    (tmp_path / "junk").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="not an IDX file"):
        datasets.read_idx(tmp_path / "junk")


@pytest.mark.parametrize("name", sorted(datasets.IMAGE_FORMATS))
def test_table_datasets_from_tfds_mock_data(name):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=3):
        images = datasets.load_images(name, "train")
    assert images.dtype == np.float32
    assert images.shape == (3, *datasets.IMAGE_FORMATS[name].shape)
    assert images.min() >= 0.0 and images.max() <= 1.0


def _block_mean(x: np.ndarray, factor: int) -> np.ndarray:
    """(N, H, W, C) -> (N, H/f, W/f, C): means of f×f blocks (an area resize by an integer factor)."""
    n, h, w, c = x.shape
    return x.reshape(n, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


def test_omniglot_conversion_against_numpy():
    # Dark strokes on white, RGB: grey = channel mean, strokes 1 after 1 − x.
    rgb = np.random.default_rng(1).integers(0, 256, size=(2, 56, 56, 3), dtype=np.uint8)
    image_format = dataclasses.replace(datasets.IMAGE_FORMATS["omniglot"], shape=(28, 28, 1))
    converted = datasets.to_format(rgb.astype(np.float32) / 255, image_format)
    expected = _block_mean(1.0 - rgb.mean(axis=-1, keepdims=True) / 255, 2)
    np.testing.assert_allclose(converted, expected, atol=1e-6)


def test_celeb_a_centre_crop_against_numpy():
    # 218×178 -> the centre 140×140 (rows 39:179, columns 19:159), here resized by 2.
    rgb = np.random.default_rng(2).uniform(size=(2, 218, 178, 3)).astype(np.float32)
    image_format = dataclasses.replace(datasets.IMAGE_FORMATS["celeb_a"], shape=(70, 70, 3))
    expected = _block_mean(rgb[:, 39:179, 19:159], 2)
    np.testing.assert_allclose(datasets.to_format(rgb, image_format), expected, atol=1e-6)


def test_local_npz_raw_or_already_converted(tmp_path, no_tfds):
    rng = np.random.default_rng(3)
    raw = rng.integers(0, 256, size=(3, 105, 105, 3), dtype=np.uint8)
    ready = rng.integers(0, 256, size=(2, 28, 28), dtype=np.uint8)
    np.savez(tmp_path / "omniglot.npz", x_train=raw, x_test=ready)
    train = datasets.load_images("omniglot", "train", data_dir=str(tmp_path))
    assert train.shape == (3, 28, 28, 1)
    expected = datasets.to_format(raw.astype(np.float32) / 255, datasets.IMAGE_FORMATS["omniglot"])
    np.testing.assert_array_equal(train, expected)
    test = datasets.load_images("omniglot", "test", data_dir=str(tmp_path))
    np.testing.assert_allclose(test[..., 0], ready / 255.0, rtol=1e-6)  # taken as it is


def test_unconvertible_images_fail_clearly():
    with pytest.raises(ValueError, match="Cannot crop 140×140 from 100×100"):
        datasets.to_format(np.zeros((1, 100, 100, 3), np.float32), datasets.IMAGE_FORMATS["celeb_a"])
    with pytest.raises(ValueError, match="1 channels after the conversion"):
        datasets.to_format(np.zeros((1, 64, 64, 1), np.float32), datasets.IMAGE_FORMATS["cifar10"])


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
