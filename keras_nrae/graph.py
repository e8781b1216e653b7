"""NeighborGraph: the k nearest neighbours of every point, by exact search, ScaNN or NN-descent.

Points are the flattened rows of x (N, ...), or the rows of `features` (N, F)
when given. Distances are Euclidean, ‖p_i − p_j‖₂ (not squared); with
metric="cosine" they are 1 − cos(p_i, p_j). Each row of `indices` lists the
k nearest other points, nearest first (ties by index); a point is never its
own neighbour, but an exact duplicate of it is, at distance 0.

`method="exact"` compares blocks of queries against all points (each block
holds at most ~16 MiB of distances, never an N × N matrix); `"scann"` uses
ScaNN: a k-means tree of ~√N leaves (from 2,000 points on) of which a query
searches 1/8, at most 40 (so 10⁶ points take minutes, not hours), 4-bit asymmetric
hashing of 4-dimension blocks (from 64 dimensions on), and exact re-ranking
of the best max(200, 20(k + 1)) candidates. It is approximate: `recall()`
measures how close it came. `"tuned"` searches a ScaNN k-means tree of ~√N
leaves over the points' 64 principal axes (the points themselves when they
have at most 64 dimensions), scoring every point of the leaves searched
exactly in that space; on projected points each query's best candidates are
then ranked by their full-space distance. It first measures recall@k on
`recall_sample` random points against exact search and takes the cheapest of
`_tuned_levels` (leaves searched, candidates kept) that reaches
`recall_target` (0.995 by default), so the recall it reports in
`graph.tuning` is measured, not assumed; on data whose neighbours spread over
many leaves it searches most of them, so its time grows towards N².
`"nndescent"` is NN-descent (pynndescent, the `nndescent` extra: UMAP's
builder) with as many neighbours per point as the same sampled recall needs,
its candidates then ranked by direct distance like the others. `"auto"` (the
default) is exact up to `AUTO_EXACT_MAX_POINTS` points; above, "nndescent"
where pynndescent is installed, else "tuned". Both measure their recall;
"nndescent" is the faster on MNIST-60k (784-d) and on 10⁵ clustered 64-d
points, where "tuned" needs most of its leaves
(benchmarks/results/graph_mnist.txt, graph_clustered_100k.txt).

x and features may have any storage dtype and be memory-mapped or another
random-access source (`keras_nrae.arrays`): they are read in chunks, uint8
scaled into [0, 1] first, so distances are those of the values the model
sees. The search holds the (N, F) points in memory (a view of a float array,
else one float copy). The graph keeps a checksum of every row of x, and saves
to one uncompressed .npz that `load(..., mmap_mode="r")` memory-maps.
"""

import hashlib
import importlib.util
from typing import Optional

import numpy as np

from keras_nrae import _knn
from keras_nrae._files import FileFormatError, FileKind, atomic_open, memory_map_npz, open_npz
from keras_nrae.arrays import Rows, progress_bar, row_checksums

__all__ = [
    "AUTO_EXACT_MAX_POINTS",
    "FORMAT_VERSION",
    "METHODS",
    "METRICS",
    "NeighborGraph",
    "RECALL_SAMPLE",
    "RECALL_TARGET",
    "fingerprint",
]

AUTO_EXACT_MAX_POINTS = 10_000
FORMAT_VERSION = 1  # of the .npz files `NeighborGraph.save` writes
METHODS = ("auto", "exact", "tuned", "nndescent", "scann")
METRICS = ("euclidean", "cosine")
_FINGERPRINT_ROWS = 64
_MEMORY_MAPPED = ("indices", "distances", "checksums")
_REQUIRED = ("indices", "distances", "method", "metric", "fingerprint")  # in a saved graph
_SAVED = (*_REQUIRED, "checksums")  # the constructor's arguments
_GRAPH_FILE = FileKind(
    "a NeighborGraph file",
    "build the graph with NeighborGraph.build(x, k) and save it with graph.save(path)",
)
# The default recall target and sample size of method="tuned".
RECALL_TARGET = 0.995
RECALL_SAMPLE = 1000


def _auto_method(n: int) -> str:
    """method="auto" for n points (module docstring)."""
    if n <= AUTO_EXACT_MAX_POINTS:
        return "exact"
    if importlib.util.find_spec("pynndescent"):
        return "nndescent"
    return "tuned"


def fingerprint(x) -> str:
    """sha256 of x's shape and of the row checksums of 64 evenly spaced rows.

    Storage-independent (see `keras_nrae.arrays`): a uint8 array and its
    float32 version in [0, 1] have the same fingerprint.
    """
    rows = x if isinstance(x, Rows) else Rows(x)
    sample = np.unique(np.linspace(0, len(rows) - 1, _FINGERPRINT_ROWS).astype(np.int64))
    digest = hashlib.sha256(repr(tuple(rows.shape)).encode())
    digest.update(row_checksums(rows.read(sample)).tobytes())
    return digest.hexdigest()


class NeighborGraph:
    """k-nearest-neighbour graph of a dataset (module docstring).

    Attributes:
      indices: (N, k) int32, each row's neighbours, nearest first.
      distances: (N, k) float32, the matching distances.
      method: "exact", "tuned", "nndescent" or "scann", how it was built.
      tuning: as built (not saved), for method="tuned": leaves, leaves_searched,
        candidates; for "nndescent": n_neighbors; for both sampled_recall,
        recall_target, recall_sample. None for the others.
      metric: "euclidean" or "cosine".
      fingerprint: shape + hash of sampled rows of the data it was built on.
      checksums: (N,) uint64 checksum of every row of that data
        (`keras_nrae.arrays.row_checksums`), or None; `neighborhood_dataset`
        checks every row it reads against it.
    """

    def __init__(
        self,
        indices: np.ndarray,
        distances: np.ndarray,
        method: str,
        metric: str,
        fingerprint: str,
        checksums: Optional[np.ndarray] = None,
    ):
        indices = np.asarray(indices, np.int32)
        distances = np.asarray(distances, np.float32)
        if indices.ndim != 2 or indices.shape != distances.shape:
            raise ValueError(
                f"indices and distances must both be (N, k), got {indices.shape} "
                f"and {distances.shape}."
            )
        if checksums is not None:
            checksums = np.asarray(checksums, np.uint64)
            if checksums.shape != indices.shape[:1]:
                raise ValueError(
                    f"checksums must be (N,) = ({len(indices)},), got {checksums.shape}."
                )
        self.indices = indices
        self.distances = distances
        self.method = str(method)
        self.metric = str(metric)
        self.fingerprint = str(fingerprint)
        self.checksums = checksums
        # method="tuned" / "nndescent": the search effort chosen and the recall it
        # reached on the sampled points (not saved).
        self.tuning: Optional[dict] = None

    @property
    def num_points(self) -> int:
        return self.indices.shape[0]

    @property
    def k(self) -> int:
        return self.indices.shape[1]

    def __repr__(self) -> str:
        return (
            f"NeighborGraph(num_points={self.num_points}, k={self.k}, "
            f"method={self.method!r}, metric={self.metric!r})"
        )

    @classmethod
    def build(
        cls,
        x,
        k: int = 10,
        method: str = "auto",
        metric: str = "euclidean",
        features=None,
        seed: int = 0,
        verbose: int = 1,
        recall_target: float = RECALL_TARGET,
        recall_sample: int = RECALL_SAMPLE,
    ) -> "NeighborGraph":
        """The k-NN graph of x (N, ...), measured on x or on `features` (N, F).

        x and features are read in chunks (`keras_nrae.arrays`: any storage
        dtype, in memory, memory-mapped or another random-access source),
        never copied whole. The search holds the (N, F) points in memory: a
        view of x or features when they are float NumPy arrays, else one
        float copy (uint8 x: 4 bytes per pixel). For x larger than memory pass
        small `features` (e.g. an encoder's codes, or pooled pixels).

        Args:
          x: array (N, ...), flattened per point; uint8 is scaled into [0, 1].
          k: neighbours per point, 1 <= k < N.
          method: "exact", "tuned", "nndescent", "scann" or "auto" (exact up
            to AUTO_EXACT_MAX_POINTS points, above it "nndescent" where
            pynndescent is installed, else "tuned").
          metric: "euclidean" (‖a − b‖₂) or "cosine" (1 − cos(a, b)).
          features: optional (N, F) vectors to measure distance in instead.
          seed: seeds ScaNN's clustering. ScaNN's training is not
            bit-reproducible: a rebuild may differ in a few rows (`save` a
            graph to reuse it exactly). Exact graphs are deterministic.
          verbose: 0 hides the progress bars shown from 10,000 points on.
          recall_target: methods "tuned" and "nndescent" search at the lowest effort whose
            recall@k on `recall_sample` random points, against exact search,
            is at least this (module docstring).
          recall_sample: how many points that recall is measured on.
        """
        rows = Rows(x)
        n = len(rows)
        _knn.check_search(n, k, method, metric, METHODS, METRICS)
        if not 0 <= recall_target <= 1:
            raise ValueError(f"recall_target must be in [0, 1], got {recall_target!r}.")
        if not isinstance(recall_sample, (int, np.integer)) or recall_sample < 1:
            raise ValueError(f"recall_sample must be a positive integer, got {recall_sample!r}.")
        points, checksums = _knn.points_of(rows, features, metric, verbose)
        if method == "auto":
            method = _auto_method(len(points))
        progbar = progress_bar(n, verbose, f"{method} {k}-NN search")
        tuning = None
        if method in ("tuned", "nndescent"):
            search = _knn.tuned if method == "tuned" else _knn.nndescent
            indices, distances, effort, sampled = search(
                points, int(k), int(seed), float(recall_target), int(recall_sample), progbar)
            tuning = dict(leaves_searched=effort[0], candidates=effort[1], leaves=effort[2]) if (
                method == "tuned") else dict(n_neighbors=effort)
            tuning.update(sampled_recall=sampled, recall_target=float(recall_target),
                          recall_sample=min(n, int(recall_sample)))
            if verbose and sampled < recall_target:
                print(f"NeighborGraph.build: recall@{k} on {tuning['recall_sample']} sampled "
                      f"points reached {sampled:.4f} at the highest search effort, below "
                      f"recall_target={recall_target}; method=\"exact\" is exact.")
        else:
            indices, distances = _knn.neighbors_of_rows(
                points, np.arange(n), int(k), method, int(seed), progbar
            )
        if metric == "cosine":
            distances = distances**2 / 2
        graph = cls(indices, distances, method, metric, fingerprint(rows), checksums)
        graph.tuning = tuning
        return graph

    def recall(self, x, sample: int = 1000, seed: int = 0, features=None) -> float:
        """Recall@k against exact search over `sample` random points of x.

        The fraction of each sampled point's true k nearest neighbours that
        the graph lists, averaged; 1.0 for an exact graph. Pass the same
        `features` the graph was built with, if any.
        """
        rows = Rows(x)
        self.check_data(rows)
        points, _ = _knn.points_of(rows, features, self.metric, verbose=0)
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(self.num_points, min(sample, self.num_points), replace=False))
        exact, _ = _knn.exact(points, sample, self.k)
        hits = [np.intersect1d(a, b).size for a, b in zip(self.indices[sample], exact)]
        return float(np.mean(hits)) / self.k

    def check_data(self, x) -> None:
        """Raise ValueError unless x (or its `Rows`) is the data this graph was built on."""
        rows = x if isinstance(x, Rows) else Rows(x)
        if len(rows) != self.num_points:
            raise ValueError(
                f"The graph was built on {self.num_points} points but {rows.name} has "
                f"{len(rows)}; build the graph on this {rows.name} (NeighborGraph.build)."
            )
        if fingerprint(rows) != self.fingerprint:
            raise ValueError(
                f"The graph was built on different data than {rows.name} (shape "
                f"{tuple(rows.shape)}): fingerprints differ. Build the graph on this "
                f"{rows.name} (NeighborGraph.build)."
            )

    def check_rows(self, ids: np.ndarray, rows: np.ndarray) -> None:
        """Raise ValueError unless rows (b, ...) are the rows ids (b,) the graph was built on."""
        if self.checksums is None:
            return
        changed = np.flatnonzero(row_checksums(rows) != self.checksums[ids])
        if changed.size:
            raise ValueError(
                f"Row {int(ids[changed[0]])} of x (and {changed.size - 1} more of this "
                f"batch) changed after the graph was built: its checksum differs. "
                f"Rebuild the graph on the current data."
            )

    def save(self, path: str) -> None:
        """Write the graph to one uncompressed .npz file at path (memory-mappable by `load`).

        The file is written under a temporary name and renamed onto path
        once complete, so a save that fails keeps the file path held before.
        """
        arrays = dict(indices=self.indices, distances=self.distances, method=self.method,
                      metric=self.metric, fingerprint=self.fingerprint,
                      format_version=np.int64(FORMAT_VERSION))
        if self.checksums is not None:
            arrays["checksums"] = self.checksums
        with atomic_open(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str, x=None, mmap_mode: Optional[str] = None) -> "NeighborGraph":
        """Read a graph written by `save`; with x, refuse it unless built on x.

        mmap_mode="r" memory-maps indices, distances and checksums from the
        file instead of reading them (as `np.load` does for .npy files).
        A file without a format version (saved before keras-nrae recorded one)
        is read as version 1, the same layout. Raises FileNotFoundError when
        path does not exist, `keras_nrae.FileFormatError` when it is empty,
        truncated, corrupt, not a graph file or a graph of another
        `FORMAT_VERSION`, and ValueError when x is not the graph's data.
        """
        with _GRAPH_FILE.reading(path), open_npz(path, _GRAPH_FILE, _REQUIRED) as f:
            version = f["format_version"].item() if "format_version" in f.files else FORMAT_VERSION
            if version != FORMAT_VERSION:
                raise FileFormatError(
                    f"{path} is a NeighborGraph file of format version {version!r}, but this "
                    f"keras-nrae reads version {FORMAT_VERSION}: load it with the keras-nrae "
                    f"that saved it, or {_GRAPH_FILE.fix}."
                )
            arrays = {key: f[key] for key in _SAVED
                      if key in f.files and not (mmap_mode and key in _MEMORY_MAPPED)}
            if mmap_mode:
                arrays.update(memory_map_npz(path, _MEMORY_MAPPED, mmap_mode))
            graph = cls(**arrays)
        if x is not None:
            graph.check_data(x)
        return graph
