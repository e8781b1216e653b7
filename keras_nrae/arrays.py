"""Random-access arrays of points: storage dtypes, chunked reads and row checksums.

A dataset x (N, ...) is any object with `len(x)` and `x[ids]` that returns the
rows at a sorted int64 index array, or at a slice, as one array (len(ids),
*shape[1:]): a NumPy array in memory or memory-mapped (`load_npy(path)`,
`np.load(path, mmap_mode="r")`), an h5py dataset, or a tfds `data_source`
through `Feature(source, "image")`. Its `shape` and `dtype` attributes are
used when present, else inferred from x[0]. Nothing here copies x whole: it
is read in chunks or gathered by rows.

Storage dtypes and what the model sees (`to_float`):
  unsigned integers (uint8, uint16) are images, scaled as
    `tf.image.convert_image_dtype` does: float32(x) * float32(1 / max),
    so uint8 goes into [0, 1] (x * (1/255), within 1 ulp of x / 255);
  float16 becomes float32; float32 and float64 stay as they are.

Row checksums identify data independently of its storage: each row's float
values are rounded to 15 mantissa bits (so a uint8 array, its x / 255 and its
convert_image_dtype versions agree; any other change beyond ~3e-5 relative
shows) and hashed as Σ_j (bits_j · w_j mod 2³²) with fixed random odd weights w.
"""

from typing import Iterator, Optional, Sequence, Tuple

import keras
import numpy as np

from keras_nrae._files import FileKind, atomic_path, file_format

__all__ = [
    "Feature",
    "Rows",
    "float_dtype",
    "gather_plan",
    "load_npy",
    "progress_bar",
    "row_checksums",
    "to_float",
    "write_npy",
]

_CHUNK_BYTES = 16 * 2**20
_NPY_FILE = FileKind("a .npy file", "write it again, e.g. with keras_nrae.arrays.write_npy or np.save")
_PROGRESS_MIN_POINTS = 10_000
_CHECKSUM_DROPPED_BITS = 8


def float_dtype(dtype, name: str = "x") -> np.dtype:
    """The float dtype `to_float` gives rows stored as dtype, or a TypeError."""
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        return dtype
    if dtype.kind == "u" or dtype in (np.float16, np.float32):
        return np.dtype(np.float32)
    raise TypeError(
        f"{name} has dtype {dtype}; supported storage dtypes are unsigned integer "
        f"images (uint8, uint16, scaled into [0, 1]) and float16/32/64."
    )


def to_float(rows: np.ndarray) -> np.ndarray:
    """rows of any supported storage dtype as floats (module docstring)."""
    dtype = float_dtype(rows.dtype)
    if rows.dtype.kind == "u":
        return rows.astype(dtype) * dtype.type(1 / np.iinfo(rows.dtype).max)
    return rows.astype(dtype, copy=False)


def row_checksums(rows: np.ndarray) -> np.ndarray:
    """(b,) uint64 checksums of rows (b, ...) of any storage dtype (module docstring)."""
    values = np.ascontiguousarray(to_float(rows), np.float32).reshape(len(rows), -1)
    hashed = values.view(np.uint32) + np.uint32(1 << (_CHECKSUM_DROPPED_BITS - 1))
    hashed >>= np.uint32(_CHECKSUM_DROPPED_BITS)
    hashed *= _checksum_weights(values.shape[1])  # wraps mod 2^32
    return hashed.sum(axis=1, dtype=np.uint64)


def _checksum_weights(size: int) -> np.ndarray:
    weights = np.random.default_rng(0).integers(0, 2**31, size, dtype=np.uint32)
    return weights * np.uint32(2) + np.uint32(1)


class Feature:
    """The `key` entry of each item of a source whose items are dicts (a tfds data_source).

    `Feature(tfds.data_source("mnist", split="train"), "image")` reads
    x[ids] as one array (len(ids), *image_shape) through `__getitems__`.
    """

    def __init__(self, source, key: str):
        self.source, self.key = source, key

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, ids):
        """One item's array for an integer; stacked arrays for a slice or index array."""
        if isinstance(ids, slice):
            ids = range(*ids.indices(len(self)))
        elif np.ndim(ids) == 0:
            return np.asarray(self.source[int(ids)][self.key])
        items = self.source.__getitems__([int(i) for i in ids])
        return np.stack([np.asarray(item[self.key]) for item in items])


class Rows:
    """x (N, ...) read by rows: `shape`, storage `dtype`, `read(ids)`, `chunks()`.

    Raises a clear error for objects that are not random-access arrays of
    rows, arrays without a point axis, NumPy arrays whose rows are not
    contiguous (a transposed or column-sliced view: reading it would be slow),
    and reads that return rows of the wrong shape or dtype.
    """

    def __init__(self, x, name: str = "x"):
        if isinstance(x, (list, tuple)) or hasattr(x, "numpy"):  # in memory anyway: a tf.Tensor
            x = np.asarray(x)
        self.x, self.name = x, name
        if not (hasattr(x, "__len__") and hasattr(x, "__getitem__")) or isinstance(x, (str, bytes)):
            raise TypeError(
                f"{name} must be an array (N, ...) or a random-access source with "
                f"len() and [ids], got {type(x).__name__}."
            )
        if isinstance(x, np.ndarray):
            self.shape, self.dtype = x.shape, x.dtype
        else:
            first = x[0] if len(x) else None
            if isinstance(first, dict):
                raise TypeError(
                    f"{name}[0] is a dict with keys {sorted(first)}; select one array, "
                    f"e.g. keras_nrae.arrays.Feature({name}, {sorted(first)[0]!r})."
                )
            first = np.asarray(first)
            self.shape = tuple(getattr(x, "shape", (len(x), *first.shape)))
            self.dtype = np.dtype(getattr(x, "dtype", first.dtype))
        self.float_dtype = float_dtype(self.dtype, name)
        if len(self.shape) < 2 or 0 in self.shape[1:]:
            raise ValueError(
                f"{name} must hold one point per row, shape (N, d, ...) with d > 0, "
                f"got shape {tuple(self.shape)}; reshape it, e.g. {name}.reshape(-1, 1)."
            )
        if isinstance(x, np.ndarray) and x.size and not x[0].flags.c_contiguous:
            raise ValueError(
                f"{name}'s rows are not contiguous in memory (strides {x.strides}, e.g. a "
                f"transposed or column-sliced view): pass np.ascontiguousarray({name}), "
                f"or store it row by row."
            )

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def row_shape(self) -> Tuple[int, ...]:
        return tuple(self.shape[1:])

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.row_shape)) * self.dtype.itemsize

    def read(self, ids) -> np.ndarray:
        """x[ids] in storage dtype, checked; ids a sorted int64 array or a slice."""
        rows = np.asarray(self.x[ids])
        expected = len(range(len(self))[ids]) if isinstance(ids, slice) else len(ids)
        if rows.shape != (expected, *self.row_shape) or rows.dtype != self.dtype:
            raise ValueError(
                f"Reading {expected} rows of {self.name} returned shape {rows.shape} and "
                f"dtype {rows.dtype}, not {(expected, *self.row_shape)} and {self.dtype}."
            )
        return rows

    def chunks(self, verbose: int = 0, what: str = "") -> Iterator[Tuple[slice, np.ndarray]]:
        """(rows slice, x[slice] in storage dtype) over all of x, ~16 MiB of float64 each.

        Shows a progress bar from 10,000 points on when verbose.
        """
        step = max(1, _CHUNK_BYTES // (8 * int(np.prod(self.row_shape))))
        progbar = progress_bar(len(self), verbose, what or f"reading {self.name}")
        for start in range(0, len(self), step):
            block = slice(start, min(start + step, len(self)))
            yield block, self.read(block)
            if progbar is not None:
                progbar.add(block.stop - block.start)


def progress_bar(num_points: int, verbose: int, what: str) -> Optional[keras.utils.Progbar]:
    """A Keras progress bar over num_points when verbose and num_points >= 10,000."""
    if verbose and num_points >= _PROGRESS_MIN_POINTS:
        print(what)
        return keras.utils.Progbar(num_points, unit_name="point")
    return None


def write_npy(path: str, batches, num_rows: int, verbose: int = 1) -> np.ndarray:
    """Write batches of rows into a new .npy file at path; return it memory-mapped read-only.

    Args:
      path: the .npy file to create.
      batches: an iterable of arrays (b, ...) of one shape and dtype, e.g.
        `tfds.as_numpy(ds.map(lambda e: e["image"]).batch(1024))`, or a
        `keras.utils.image_dataset_from_directory(..., labels=None)` mapped to uint8.
      num_rows: N, the total number of rows (the file is sized up front).
      verbose: 0 hides the progress bar.

    Only one batch is in memory at a time. Raises ValueError when the batches
    change shape or dtype or do not add up to num_rows. The file is written
    under a temporary name and renamed onto path once complete, so a write
    that fails keeps the file path held before.
    """
    if num_rows < 1:
        raise ValueError(f"num_rows must be positive, got {num_rows}.")
    out, filled = None, 0
    progbar = progress_bar(num_rows, verbose, f"writing {path}")
    with atomic_path(path) as temporary:
        for batch in batches:
            batch = np.asarray(batch)
            if out is None:
                out = np.lib.format.open_memmap(temporary, "w+", batch.dtype, (num_rows, *batch.shape[1:]))
            if batch.shape[1:] != out.shape[1:] or batch.dtype != out.dtype:
                raise ValueError(
                    f"Batch of shape {batch.shape} and dtype {batch.dtype} after rows of "
                    f"shape {out.shape[1:]} and dtype {out.dtype}."
                )
            if filled + len(batch) > num_rows:
                raise ValueError(f"The batches hold more than num_rows={num_rows} rows.")
            out[filled : filled + len(batch)] = batch
            filled += len(batch)
            if progbar is not None:
                progbar.add(len(batch))
        if filled != num_rows:
            raise ValueError(f"The batches held {filled} rows, not num_rows={num_rows}.")
        out.flush()
        del out
    return load_npy(path)


def load_npy(path: str, mmap_mode: Optional[str] = "r") -> np.ndarray:
    """The array in the .npy file at path, memory-mapped with mmap_mode (None reads it into memory).

    Raises FileNotFoundError when path does not exist and
    `keras_nrae.FileFormatError` when it is empty, truncated, corrupt or not
    a .npy file.
    """
    with _NPY_FILE.reading(path):
        found = file_format(path)
        if found == "zip":
            raise _NPY_FILE.error(path, "it is a zip archive, e.g. an .npz file of several arrays")
        if found != "npy":
            raise _NPY_FILE.unreadable(path, "no .npy header")
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)


def gather_plan(ids: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
    """(sorted unique ids, positions): ids == unique[positions], for one sorted read."""
    return np.unique(np.asarray(ids, np.int64), return_inverse=True)
