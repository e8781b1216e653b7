"""keras_nrae.arrays: storage dtypes, random-access sources, checksums and write_npy."""

import numpy as np
import pytest
import tensorflow as tf

from keras_nrae import arrays
from keras_nrae.arrays import Feature, Rows, row_checksums, to_float, write_npy


class RandomAccess:
    """A minimal random-access source (like an h5py dataset): len, shape, dtype, x[ids]."""

    def __init__(self, data):
        self.data, self.shape, self.dtype = data, data.shape, data.dtype

    def __len__(self):
        return len(self.data)

    def __getitem__(self, ids):
        return self.data[ids]


class DictSource:
    """A tfds data_source look-alike: items are dicts, read in bulk with __getitems__."""

    def __init__(self, images):
        self.items = [{"image": image, "label": i} for i, image in enumerate(images)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]

    def __getitems__(self, ids):
        return [self.items[i] for i in ids]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float16, np.float32, np.float64])
def test_to_float_is_convert_image_dtype(dtype):
    info = np.iinfo(dtype) if np.dtype(dtype).kind == "u" else None
    rows = np.arange(info.max + 1 if info else 100).astype(dtype).reshape(-1, 4)
    expected = tf.image.convert_image_dtype(rows, tf.float64 if dtype == np.float64 else tf.float32)
    np.testing.assert_array_equal(to_float(rows), expected.numpy())
    assert to_float(rows).dtype == (np.float64 if dtype == np.float64 else np.float32)


def test_checksums_match_across_storage_and_catch_changes():
    pixels = np.arange(256, dtype=np.uint8).reshape(4, 64)
    versions = [pixels, pixels / 255.0, (pixels / np.float32(255)).astype(np.float32),
                to_float(pixels), to_float(pixels).astype(np.float16)]
    for version in versions[:4]:
        np.testing.assert_array_equal(row_checksums(version), row_checksums(pixels))
    assert (row_checksums(versions[4]) != row_checksums(pixels)).any()  # float16 rounds
    swapped = pixels.copy()
    swapped[0, [3, 7]] = swapped[0, [7, 3]]
    changed = pixels.copy()
    changed[2, 5] += 1
    assert list(row_checksums(swapped) != row_checksums(pixels)) == [True, False, False, False]
    assert list(row_checksums(changed) != row_checksums(pixels)) == [False, False, True, False]


def test_sources_read_the_same_rows():
    data = np.random.default_rng(0).integers(0, 256, (30, 4, 5), dtype=np.uint8)
    ids = np.array([2, 3, 17, 29])
    for source in [data, RandomAccess(data), Feature(DictSource(data), "image"), tf.constant(data)]:
        rows = Rows(source)
        assert rows.shape == (30, 4, 5) and rows.dtype == np.uint8 and len(rows) == 30
        np.testing.assert_array_equal(rows.read(ids), data[ids])
        chunks = list(rows.chunks())
        np.testing.assert_array_equal(np.concatenate([chunk for _, chunk in chunks]), data)


def test_lists_are_arrays():
    rows = Rows([[0.5, 1.0], [2.0, 3.0]])
    assert rows.shape == (2, 2) and rows.dtype == np.float64


def test_chunks_cover_every_row_once(monkeypatch):
    monkeypatch.setattr(arrays, "_CHUNK_BYTES", 8 * 20 * 7)  # 7 rows of 20 values a chunk
    data = np.arange(50 * 20, dtype=np.float32).reshape(50, 20)
    blocks = [block for block, _ in Rows(data).chunks()]
    assert [b.stop - b.start for b in blocks] == [7] * 7 + [1]


@pytest.mark.parametrize(
    "source, error, match",
    [
        (DictSource(np.zeros((3, 2))), TypeError, r"Feature\(x, 'image'\)"),
        (RandomAccess(np.zeros((3, 2), np.int32)), TypeError, "storage dtypes"),
        (np.zeros((3, 0)), ValueError, "one point per row"),
        (np.zeros((4, 3, 2))[:, :, 0], ValueError, "rows are not contiguous"),
        (object(), TypeError, "random-access source"),
    ],
)
def test_bad_sources(source, error, match):
    with pytest.raises(error, match=match):
        Rows(source)


def test_a_read_of_the_wrong_shape_is_an_error():
    class Truncating(RandomAccess):
        def __getitem__(self, ids):
            return self.data[ids][:-1]

    with pytest.raises(ValueError, match=r"Reading 3 rows of x returned shape \(2, 2\)"):
        Rows(Truncating(np.zeros((5, 2)))).read(np.array([0, 1, 2]))


def test_write_npy_from_batches(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, (25, 3, 3), dtype=np.uint8)
    batches = tf.data.Dataset.from_tensor_slices(data).batch(10).as_numpy_iterator()
    x = write_npy(str(tmp_path / "x.npy"), batches, num_rows=25)
    assert isinstance(x, np.memmap) and x.dtype == np.uint8
    np.testing.assert_array_equal(x, data)
    with pytest.raises(ValueError, match="held 20 rows, not num_rows=25"):
        write_npy(str(tmp_path / "y.npy"), [data[:10], data[10:20]], num_rows=25)
    with pytest.raises(ValueError, match="more than num_rows=5"):
        write_npy(str(tmp_path / "y.npy"), [data[:10]], num_rows=5)
    with pytest.raises(ValueError, match="dtype float64 after rows"):
        write_npy(str(tmp_path / "y.npy"), [data[:10], data[10:].astype(float)], num_rows=25)
