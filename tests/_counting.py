"""A random-access array that records the rows every read returns (`keras_nrae.arrays` sources)."""

import threading

import numpy as np


class CountingRows:
    """data (N, ...) read through `x[ids]`; `read_ids()` lists every row read since `reset()`.

    Reads come from tf.data's parallel map threads as well, hence the lock.
    """

    def __init__(self, data: np.ndarray):
        self.data, self.shape, self.dtype = data, data.shape, data.dtype
        self._reads, self._lock = [], threading.Lock()

    def __len__(self):
        return len(self.data)

    def __getitem__(self, ids):
        rows = np.arange(len(self.data))[ids]
        with self._lock:
            self._reads.append(np.atleast_1d(rows).astype(np.int64))
        return self.data[ids]

    def reset(self):
        with self._lock:
            self._reads = []

    def read_ids(self) -> np.ndarray:
        """Every row id read since `reset()`, in read order, with repeats."""
        with self._lock:
            return np.concatenate(self._reads) if self._reads else np.empty(0, np.int64)
