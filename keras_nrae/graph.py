"""NeighborGraph: the k nearest neighbours of every point, by exact search or ScaNN.

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
many leaves it searches most of them, so its time grows towards N². `"auto"`
is exact up to `AUTO_EXACT_MAX_POINTS` points and ScaNN above
(benchmarks/results/graph_mnist.txt: "tuned" was no faster than "scann" on
MNIST-60k at the same recall, so the default stayed).

x and features may have any storage dtype and be memory-mapped or another
random-access source (`keras_nrae.arrays`): they are read in chunks, uint8
scaled into [0, 1] first, so distances are those of the values the model
sees. The search holds the (N, F) points in memory (a view of a float array,
else one float copy). The graph keeps a checksum of every row of x, and saves
to one uncompressed .npz that `load(..., mmap_mode="r")` memory-maps.
"""

import hashlib
import math
import struct
import zipfile
from typing import Optional, Tuple

import numpy as np
import tensorflow as tf

from keras_nrae._files import FileFormatError, FileKind, atomic_open, open_npz
from keras_nrae.arrays import Rows, progress_bar, row_checksums, to_float

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
METHODS = ("auto", "exact", "tuned", "scann")
METRICS = ("euclidean", "cosine")
_BLOCK_BYTES = 16 * 2**20
_EXACT_QUERY_BLOCK = 1024
_FINGERPRINT_ROWS = 64
_MEMORY_MAPPED = ("indices", "distances", "checksums")
_REQUIRED = ("indices", "distances", "method", "metric", "fingerprint")  # in a saved graph
_SAVED = (*_REQUIRED, "checksums")  # the constructor's arguments
_GRAPH_FILE = FileKind(
    "a NeighborGraph file",
    "build the graph with NeighborGraph.build(x, k) and save it with graph.save(path)",
)
# ScaNN: partition into ~sqrt(N) leaves and search 1/8 of them (at most 40)
# from this many points on; quantise (4 dims per 4-bit code) from this dimension on.
_SCANN_TREE_MIN_POINTS = 2_000
_SCANN_MAX_LEAVES_SEARCHED = 40
_SCANN_HASH_MIN_DIM = 64
# method="tuned": ScaNN over at most this many principal axes of the points (all
# of them when there are fewer; PCA axes from a sample of _TUNED_PCA_SAMPLE rows);
# each query's candidates cut to the k + _TUNED_MARGIN nearest in the full space
# before the exact ranking; queries per ScaNN call and per ranking block; the
# default recall target and sample size.
_TUNED_MAX_DIM = 64
_TUNED_MARGIN = 4
_TUNED_PCA_SAMPLE = 20_000
_TUNED_SEARCH_BLOCK = 16_384
_TUNED_RANK_BLOCK = 64
RECALL_TARGET = 0.995
RECALL_SAMPLE = 1000


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


def _scan(rows: Rows, keep_points: bool, verbose: int) -> Tuple[Optional[np.ndarray], np.ndarray]:
    """One chunked pass over rows: (points (N, F) float or None, checksums (N,) uint64).

    Raises ValueError at the first row holding NaN or Inf. Points are a view of
    an in-memory or memory-mapped float array, else filled chunk by chunk.
    """
    n = len(rows)
    view = isinstance(rows.x, np.ndarray) and rows.dtype == rows.float_dtype
    points = None
    if keep_points:
        size = int(np.prod(rows.row_shape))
        points = rows.x.reshape(n, -1) if view else np.empty((n, size), rows.float_dtype)
    checksums = np.empty(n, np.uint64)
    for block, chunk in rows.chunks(verbose, f"reading {rows.name}"):
        values = to_float(chunk).reshape(len(chunk), -1)
        finite = np.isfinite(values).all(axis=1)
        if not finite.all():
            first = block.start + int(np.argmin(finite))
            raise ValueError(f"{rows.name} contains NaN or Inf, first in row {first}.")
        checksums[block] = row_checksums(values)
        if keep_points and not view:
            points[block] = values
    return points, checksums


def _points(rows: Rows, features, metric: str, verbose: int) -> Tuple[np.ndarray, np.ndarray]:
    """(the (N, F) vectors distances are measured between, x's row checksums)."""
    if features is not None:
        features = Rows(features, "features")
        if len(features.shape) != 2 or len(features) != len(rows):
            raise ValueError(
                f"features must be (N, F) with N = len(x) = {len(rows)}, got "
                f"shape {tuple(features.shape)}."
            )
    name, (points, checksums) = rows.name, _scan(rows, features is None, verbose)
    if features is not None:
        name, (points, _) = "features", _scan(features, True, verbose)
    if metric == "cosine":
        norms = np.linalg.norm(points, axis=1, keepdims=True)
        if not norms.all():
            raise ValueError(
                f'metric="cosine" needs nonzero vectors; row '
                f"{int(np.argmin(norms[:, 0]))} of {name} is all zeros."
            )
        points = points / norms
    return points, checksums


def _blocks(num_rows: int, row_bytes: int):
    """Slices over range(num_rows), each covering at most _BLOCK_BYTES of row_bytes rows."""
    step = max(1, _BLOCK_BYTES // max(row_bytes, 1))
    for start in range(0, num_rows, step):
        yield slice(start, min(start + step, num_rows))


def _without_self(found: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """found (b, c + 1) search hits -> (b, c): each row's own index removed,
    or its last hit when self was crowded out (by exact duplicates)."""
    keep = found != rows[:, None]
    keep[keep.all(axis=1), -1] = False
    return found[keep].reshape(len(rows), -1)


def _rank(points: np.ndarray, rows: np.ndarray, candidates: np.ndarray, k: int):
    """The k nearest of each row's candidates, by direct distance ‖p_row − p_c‖₂.

    rows (b,), candidates (b, c) of point indices (never the row itself).
    Returns (indices (b, k) int32, distances (b, k) float32), nearest first,
    ties by index. Computed in points' dtype (float64 input stays exact).
    """
    candidates = np.sort(candidates, axis=1)
    diff = points[candidates]
    diff -= points[rows][:, None]
    distances = np.sqrt(np.einsum("bcf,bcf->bc", diff, diff))
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return (
        np.take_along_axis(candidates, order, 1).astype(np.int32),
        np.take_along_axis(distances, order, 1).astype(np.float32),
    )


def _exact(points: np.ndarray, rows: np.ndarray, k: int, progbar=None):
    """Exact k-NN of points[rows] among all points; see `_rank` for the outputs.

    Queries go in blocks of up to _EXACT_QUERY_BLOCK against tiles of the
    points, each (block, tile) holding at most _BLOCK_BYTES of float32
    distances, so a tile is read once per block and the matmul runs at BLAS
    speed. Each tile keeps each query's 2k + 1 nearest by −2q·p + ‖p‖²
    (TensorFlow matmul + top_k); of their union the query itself is dropped
    and the 2k nearest are `_rank`ed by direct distance, so round-off in the
    expansion cannot reorder them.
    """
    n = len(points)
    data = tf.constant(points, tf.float32)
    sq_norms = tf.reduce_sum(tf.square(data), axis=1)
    num_candidates = min(2 * k, n - 1)
    out_indices = np.empty((len(rows), k), np.int32)
    out_distances = np.empty((len(rows), k), np.float32)
    # A tile at least 4 (2k + 1) points wide; `_rank` in sub-blocks of its own budget.
    queries_per_block = max(1, min(_EXACT_QUERY_BLOCK, _BLOCK_BYTES // (16 * (num_candidates + 1))))
    tile = max(num_candidates + 1, _BLOCK_BYTES // (4 * queries_per_block))
    rank_bytes = 2 * num_candidates * points.shape[1] * points.itemsize
    for start in range(0, len(rows), queries_per_block):
        block = slice(start, min(start + queries_per_block, len(rows)))
        query = tf.gather(data, tf.constant(rows[block]))
        found, scores = [], []
        for first in range(0, n, tile):
            last = min(first + tile, n)
            sq = sq_norms[first:last] - 2 * tf.matmul(query, data[first:last], transpose_b=True)
            best = tf.math.top_k(-sq, min(num_candidates + 1, last - first))
            found.append(best.indices + first)
            scores.append(best.values)
        if len(found) > 1:
            best = tf.math.top_k(tf.concat(scores, 1), num_candidates + 1)
            found = tf.gather(tf.concat(found, 1), best.indices, batch_dims=1)
        else:
            found = found[0]
        candidates = _without_self(found.numpy().astype(np.int64), rows[block])
        for part in _blocks(len(candidates), rank_bytes):
            at = slice(start + part.start, start + part.stop)
            out_indices[at], out_distances[at] = _rank(points, rows[at], candidates[part], k)
        if progbar is not None:
            progbar.add(len(candidates))
    return out_indices, out_distances


def _scann_leaves(n: int) -> Tuple[int, int]:
    """(k-means tree leaves, leaves searched per query) for n points.

    √n leaves of ~√n points; a query searches 1/8 of them, at most
    _SCANN_MAX_LEAVES_SEARCHED, so a search costs O(n^1.5), not O(n²).
    """
    leaves = int(math.sqrt(n))
    return leaves, min(max(8, leaves // 8), _SCANN_MAX_LEAVES_SEARCHED)


def _scann_searcher(data: np.ndarray, k: int, seed: int):
    """A ScaNN searcher over float32 data (N, dim) with settings chosen from (N, dim)."""
    from scann.scann_ops.py import scann_ops_pybind

    n, dim = data.shape
    builder = scann_ops_pybind.builder(data, k + 1, "squared_l2")
    if n >= _SCANN_TREE_MIN_POINTS:
        leaves, searched = _scann_leaves(n)
        builder = builder.tree(
            num_leaves=leaves,
            num_leaves_to_search=searched,
            training_sample_size=min(n, 100 * leaves),
        )
    if dim >= _SCANN_HASH_MIN_DIM:
        builder = builder.score_ah(4, training_sample_size=min(n, 20_000))
    else:
        builder = builder.score_brute_force()
    config = builder.reorder(_reorder_count(k)).create_config()
    # A fixed clustering seed and one training thread make rebuilds agree on
    # almost all rows; ScaNN's training is not bit-reproducible.
    config = config.replace("partitioning {", f"partitioning {{ clustering_seed: {seed + 1}", 1)
    return scann_ops_pybind.create_searcher(data, config, training_threads=1)


def _reorder_count(k: int) -> int:
    """How many of ScaNN's best candidates per query are re-ranked exactly."""
    return max(200, 20 * (k + 1))


def _scann(points: np.ndarray, k: int, seed: int, progbar=None, rows=None):
    """Approximate k-NN of points[rows] (default: every point) among all points; see `_rank`."""
    rows = np.arange(len(points)) if rows is None else rows
    data = np.ascontiguousarray(points, dtype=np.float32)
    searcher = _scann_searcher(data, k, seed)
    out_indices = np.empty((len(rows), k), np.int32)
    out_distances = np.empty((len(rows), k), np.float32)
    # Per query: ScaNN's (id, score) candidates, then `_rank`'s (k + 1, F) differences.
    row_bytes = 16 * _reorder_count(k) + 2 * (k + 1) * points.shape[1] * points.itemsize
    for block in _blocks(len(rows), row_bytes):
        query = rows[block]
        found, _ = searcher.search_batched_parallel(data[query], final_num_neighbors=k + 1)
        if found.shape[1] != k + 1:
            raise RuntimeError(f"ScaNN returned {found.shape[1]} neighbours, not {k + 1}.")
        candidates = _without_self(found.astype(np.int64), query)
        out_indices[block], out_distances[block] = _rank(points, query, candidates, k)
        if progbar is not None:
            progbar.add(len(query))
    return out_indices, out_distances


def _neighbors_of_rows(
    points: np.ndarray, rows: np.ndarray, k: int, method: str, seed: int = 0, progbar=None
) -> Tuple[np.ndarray, np.ndarray]:
    """The k nearest neighbours of points[rows] among all points, as `NeighborGraph.build` finds them.

    points (N, F) as `_points` returns them, rows (b,) int64 query rows, method
    "exact" or "scann" (every search `build` offers; ScaNN indexes all N points,
    with `seed`, and searches only rows). Returns (indices (b, k) int32,
    distances (b, k) float32, Euclidean between points), nearest first, ties by
    index. `keras_nrae.graph_shards` builds a graph a share of rows at a time with it.
    """
    if method == "exact":
        return _exact(points, rows, k, progbar)
    return _scann(points, k, seed, progbar, rows)


def _pca(points: np.ndarray, dim: int, seed: int) -> np.ndarray:
    """points (N, F) -> (N, dim) float32 coordinates on their top `dim` principal axes.

    Axes from a randomized SVD (two power iterations) of a sample of up to
    _TUNED_PCA_SAMPLE centred rows; points are projected in blocks, never
    copied whole.
    """
    n, f = points.shape
    rng = np.random.default_rng(seed)
    sample = points[np.sort(rng.choice(n, min(n, _TUNED_PCA_SAMPLE), replace=False))]
    sample = sample.astype(np.float32)
    mean = sample.mean(axis=0)
    sample -= mean
    basis = sample.T @ (sample @ rng.normal(size=(f, dim + 16)).astype(np.float32))
    for _ in range(2):
        basis, _ = np.linalg.qr(basis)
        basis = sample.T @ (sample @ basis)
    basis, _ = np.linalg.qr(basis)
    _, _, vt = np.linalg.svd(sample @ basis, full_matrices=False)
    axes = (basis @ vt[:dim].T).astype(np.float32)  # (F, dim), orthonormal columns
    out = np.empty((n, dim), np.float32)
    shift = mean @ axes
    for block in _blocks(n, 4 * f):
        out[block] = np.asarray(points[block], np.float32) @ axes - shift
    return out


def _tuned_levels(leaves: int, k: int, projected: bool):
    """The search efforts the tuner tries, cheapest first: (leaves searched,
    candidates kept). From 1/16 of the leaves, × ~1.4 a step up to all of them;
    on projected points the candidates kept for full-space ranking grow with it."""
    levels = []
    for effort in (1, 1.5, 2, 3, 4, 6, 8, 12, 16):
        searched = min(leaves, math.ceil(effort * leaves / 16))
        kept = math.ceil((k + 1) * (3 + effort)) if projected else k + 1
        levels.append((searched, kept))
    return levels


class _TunedSearcher:
    """ScaNN over (projected) points, searched at one of `_tuned_levels`."""

    def __init__(self, points: np.ndarray, k: int, seed: int):
        from scann.scann_ops.py import scann_ops_pybind

        self.points, self.k = points, k
        n, f = points.shape
        self.projected = f > _TUNED_MAX_DIM
        space = _pca(points, _TUNED_MAX_DIM, seed) if self.projected else (
            np.ascontiguousarray(points, dtype=np.float32))
        self.space = space
        self.leaves = int(math.sqrt(n)) if n >= _SCANN_TREE_MIN_POINTS else 1
        self.levels = _tuned_levels(self.leaves, k, self.projected)
        builder = scann_ops_pybind.builder(space, min(n, max(kept for _, kept in self.levels)),
                                           "squared_l2")
        if self.leaves > 1:
            builder = builder.tree(num_leaves=self.leaves, num_leaves_to_search=self.leaves,
                                   training_sample_size=min(n, 50 * self.leaves))
        config = builder.score_brute_force().create_config()
        config = config.replace("partitioning {", f"partitioning {{ clustering_seed: {seed + 1}", 1)
        self.searcher = scann_ops_pybind.create_searcher(space, config, training_threads=1)

    def search(self, rows: np.ndarray, level: int, progbar=None):
        """k-NN of points[rows] at search effort `level`; see `_rank` for the outputs."""
        searched, kept = self.levels[level]
        kept = min(kept, len(self.points))
        options = dict(final_num_neighbors=kept)
        if self.leaves > 1:
            options["leaves_to_search"] = searched
        out_indices = np.empty((len(rows), self.k), np.int32)
        out_distances = np.empty((len(rows), self.k), np.float32)
        # ScaNN answers blocks of queries on all cores; their candidates are ranked in
        # sub-blocks small enough that the rows they gather stay in cache.
        row_bytes = 2 * kept * self.points.shape[1] * self.points.itemsize
        for block in _blocks(len(rows), _BLOCK_BYTES // _TUNED_SEARCH_BLOCK):
            query = rows[block]
            found, _ = self.searcher.search_batched_parallel(self.space[query], **options)
            found = found.astype(np.int64)
            if found.shape[1] != kept:
                raise RuntimeError(f"ScaNN returned {found.shape[1]} neighbours, not {kept}.")
            candidates = _without_self(found, query)
            for part in _blocks(len(query), max(row_bytes, _BLOCK_BYTES // _TUNED_RANK_BLOCK)):
                at = slice(block.start + part.start, block.start + part.stop)
                near = candidates[part]
                if near.shape[1] > self.k + _TUNED_MARGIN:
                    near = self._closest(query[part], near, self.k + _TUNED_MARGIN)
                out_indices[at], out_distances[at] = _rank(self.points, query[part], near, self.k)
            if progbar is not None:
                progbar.add(len(query))
        return out_indices, out_distances

    def _closest(self, rows: np.ndarray, candidates: np.ndarray, m: int) -> np.ndarray:
        """The m of each row's candidates nearest in the full space, by ‖c‖² − 2 p·c (float32)."""
        points = self.points
        if not hasattr(self, "_sq_norms"):
            self._sq_norms = np.einsum("ij,ij->i", points, points)
        scores = self._sq_norms[candidates] - 2 * np.einsum(
            "bcf,bf->bc", points[candidates], points[rows])
        order = np.argpartition(scores, m - 1, axis=1)[:, :m]
        return np.take_along_axis(candidates, order, 1)


def _tuned(points: np.ndarray, k: int, seed: int, recall_target: float, recall_sample: int,
           progbar=None):
    """Approximate k-NN of every point at the cheapest `_tuned_levels` effort whose recall
    on `recall_sample` random points against exact search reaches recall_target.

    Returns (indices, distances, the effort's (leaves searched, candidates kept),
    its sampled recall).
    """
    n = len(points)
    searcher = _TunedSearcher(points, k, seed)
    rng = np.random.default_rng([seed, 22])  # not `recall()`'s sample
    sample = np.sort(rng.choice(n, min(n, recall_sample), replace=False))
    truth, _ = _exact(points, sample, k)
    level, sampled_recall = 0, 0.0
    for level in range(len(searcher.levels)):
        found, _ = searcher.search(sample, level)
        sampled_recall = _recall(found, truth)
        if sampled_recall >= recall_target:
            break
    indices, distances = searcher.search(np.arange(n), level, progbar)
    return indices, distances, (*searcher.levels[level], searcher.leaves), sampled_recall


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each row of truth (b, k) that the same row of found lists."""
    hits = (found[:, :, None] == truth[:, None, :]).any(axis=2).sum()
    return float(hits) / truth.size


class NeighborGraph:
    """k-nearest-neighbour graph of a dataset (module docstring).

    Attributes:
      indices: (N, k) int32, each row's neighbours, nearest first.
      distances: (N, k) float32, the matching distances.
      method: "exact", "tuned" or "scann", how it was built.
      tuning: for method="tuned" as built (not saved): leaves, leaves_searched,
        candidates, sampled_recall, recall_target, recall_sample; else None.
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
        # method="tuned": the search effort chosen and the recall it reached on the
        # sampled points (not saved).
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
          method: "exact", "tuned", "scann" or "auto" (exact up to
            AUTO_EXACT_MAX_POINTS points, "scann" above).
          metric: "euclidean" (‖a − b‖₂) or "cosine" (1 − cos(a, b)).
          features: optional (N, F) vectors to measure distance in instead.
          seed: seeds ScaNN's clustering. ScaNN's training is not
            bit-reproducible: a rebuild may differ in a few rows (`save` a
            graph to reuse it exactly). Exact graphs are deterministic.
          verbose: 0 hides the progress bars shown from 10,000 points on.
          recall_target: method="tuned" searches at the lowest effort whose
            recall@k on `recall_sample` random points, against exact search,
            is at least this (module docstring).
          recall_sample: how many points that recall is measured on.
        """
        rows = Rows(x)
        n = len(rows)
        if n < 2:
            raise ValueError(f"A neighbour graph needs at least 2 points, got {n}.")
        if not isinstance(k, (int, np.integer)) or not 1 <= k < n:
            raise ValueError(f"k must be an integer with 1 <= k < N = {n}, got {k!r}.")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}.")
        if not 0 <= recall_target <= 1:
            raise ValueError(f"recall_target must be in [0, 1], got {recall_target!r}.")
        if not isinstance(recall_sample, (int, np.integer)) or recall_sample < 1:
            raise ValueError(f"recall_sample must be a positive integer, got {recall_sample!r}.")
        points, checksums = _points(rows, features, metric, verbose)
        if method == "auto":
            method = "exact" if n <= AUTO_EXACT_MAX_POINTS else "scann"
        progbar = progress_bar(n, verbose, f"{method} {k}-NN search")
        tuning = None
        if method == "tuned":
            indices, distances, effort, sampled = _tuned(
                points, int(k), int(seed), float(recall_target), int(recall_sample), progbar)
            tuning = dict(zip(("leaves_searched", "candidates"), effort), leaves=effort[2],
                          sampled_recall=sampled, recall_target=float(recall_target),
                          recall_sample=min(n, int(recall_sample)))
            if verbose and sampled < recall_target:
                print(f"NeighborGraph.build: recall@{k} on {tuning['recall_sample']} sampled "
                      f"points reached {sampled:.4f} at the highest search effort, below "
                      f"recall_target={recall_target}; method=\"exact\" is exact.")
        else:
            indices, distances = _neighbors_of_rows(
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
        points, _ = _points(rows, features, self.metric, verbose=0)
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(self.num_points, min(sample, self.num_points), replace=False))
        exact, _ = _exact(points, sample, self.k)
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
                arrays.update(_memory_map_npz(path, _MEMORY_MAPPED, mmap_mode))
            graph = cls(**arrays)
        if x is not None:
            graph.check_data(x)
        return graph


def _memory_map_npz(path: str, keys, mode: str) -> dict:
    """The arrays named keys in an uncompressed .npz file, as np.memmap views of it."""
    arrays = {}
    with zipfile.ZipFile(path) as archive, open(path, "rb") as raw:
        for info in archive.infolist():
            key = info.filename[: -len(".npy")]
            if key not in keys:
                continue
            if info.compress_type != zipfile.ZIP_STORED:
                raise FileFormatError(
                    f"{path}: {info.filename} is compressed, so it cannot be memory-mapped: "
                    f"load it without mmap_mode, or save the graph again with graph.save(path)."
                )
            raw.seek(info.header_offset + 26)  # zip local header: name and extra lengths
            name_length, extra_length = struct.unpack("<HH", raw.read(4))
            raw.seek(info.header_offset + 30 + name_length + extra_length)
            version = np.lib.format.read_magic(raw)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}[version]
            shape, fortran_order, dtype = read_header(raw)
            arrays[key] = np.memmap(path, dtype, mode, raw.tell(), shape,
                                    "F" if fortran_order else "C")
    return arrays
