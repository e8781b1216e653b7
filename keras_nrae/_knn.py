"""The k-nearest-neighbour searches behind `NeighborGraph.build` (see `keras_nrae.graph`).

`points_of` reads the (N, F) vectors distances are measured between (and x's
row checksums) in one chunked pass; `neighbors_of_rows` finds the k nearest of
a subset of query rows among all points by exact search or ScaNN, and `tuned`
all points' by ScaNN at the cheapest effort that reaches a sampled recall.
Shared by `keras_nrae.graph` and `keras_nrae.graph_shards`.
"""

import functools
import math
import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Tuple

import numpy as np
import tensorflow as tf

from keras_nrae.arrays import Rows, row_checksums, to_float

_BLOCK_BYTES = 16 * 2**20
# `exact`: float32 scores of one (query block, tile of the points), and with one
# block _BLOCK_BYTES of the tile's points handed to TensorFlow: fewer, wider
# tiles spend less on the per-tile merges, wide copies of the points more on
# fresh memory (1,000 queries, fresh process: 10^5 64-d points 0.15 s at 64 MiB
# of scores, 0.24 s at 16; MNIST-60k 0.62 s with 64 MiB tiles of points).
_EXACT_TILE_BYTES = 64 * 2**20
_EXACT_QUERY_BLOCK = 256
# `exact` on at most this many queries (recall samples) takes them in one block.
_EXACT_ONE_BLOCK = 2048
# `within_radius`: rows passing more points than this (duplicates at distance 0, a
# radius far too large) go to `exact`, so at most this many pairs per row are held;
# its scores in bfloat16 where `_bfloat16_scores` (2.1x the float32 matmul's speed
# for 1,000 x 784 x 60,000 on this machine's AVX512-BF16 cores).
_WITHIN_RADIUS_MAX_PASSING = 4096
_BFLOAT16_CPU_FLAGS = re.compile(r"\b(avx512_bf16|amx_bf16)\b")
# `_smallest`: rows at least this many times m wide are cut into groups of _TOP_GROUP.
_GROUPED_TOP_MIN = 64
_TOP_GROUP = 16
# ScaNN: partition into ~sqrt(N) leaves and search 1/8 of them (at most 40)
# from this many points on; quantise (4 dims per 4-bit code) from this dimension on.
_SCANN_TREE_MIN_POINTS = 2_000
_SCANN_MAX_LEAVES_SEARCHED = 40
_SCANN_HASH_MIN_DIM = 64
# method="tuned": ScaNN over at most this many principal axes of the points (all
# of them when there are fewer; PCA axes from a sample of _TUNED_PCA_SAMPLE rows);
# queries per ScaNN call and per ranking sub-block, taken in the order of their
# nearest of _TUNED_REGIONS sampled points.
_TUNED_MAX_DIM = 64
_TUNED_PCA_SAMPLE = 20_000
_TUNED_SEARCH_BLOCK = 16_384
_TUNED_RANK_BLOCK = 32
_TUNED_REGIONS = 256
# method="nndescent": pynndescent's first n_neighbors is max(_NNDESCENT_MIN, k +
# _NNDESCENT_EXTRA), each keeping _NNDESCENT_CANDIDATES_PER_NEIGHBOUR times as many
# candidates (at most pynndescent's _NNDESCENT_MAX_CANDIDATES); at most
# _NNDESCENT_ROUNDS builds.
_NNDESCENT_MIN = 15
_NNDESCENT_EXTRA = 5
_NNDESCENT_CANDIDATES_PER_NEIGHBOUR = 2
_NNDESCENT_MAX_CANDIDATES = 60
_NNDESCENT_ROUNDS = 4


def check_search(n: int, k, method: str, metric: str, methods: Tuple[str, ...], metrics: Tuple[str, ...]) -> None:
    """Raise ValueError naming the argument unless N = n >= 2, 1 <= k < N, method in methods, metric in metrics."""
    if n < 2:
        raise ValueError(f"A neighbour graph needs at least 2 points, got {n}.")
    if not isinstance(k, (int, np.integer)) or not 1 <= k < n:
        raise ValueError(f"k must be an integer with 1 <= k < N = {n}, got {k!r}.")
    if method not in methods:
        raise ValueError(f"method must be one of {methods}, got {method!r}.")
    if metric not in metrics:
        raise ValueError(f"metric must be one of {metrics}, got {metric!r}.")


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


def points_of(rows: Rows, features, metric: str, verbose: int) -> Tuple[np.ndarray, np.ndarray]:
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


def _without_self(found: np.ndarray, rows: np.ndarray, *also: np.ndarray):
    """found (b, c + 1) search hits -> (b, c): each row's own index removed,
    or its last hit when self was crowded out (by exact duplicates); with
    arrays `also` shaped like found, (found, *also) each cut the same way."""
    keep = found != rows[:, None]
    keep[keep.all(axis=1), -1] = False
    cut = [a[keep].reshape(len(rows), -1) for a in (found, *also)]
    return tuple(cut) if also else cut[0]


def _rank(points: np.ndarray, rows: np.ndarray, candidates: np.ndarray, k: int):
    """The k nearest of each row's candidates, by direct distance ‖p_row − p_c‖₂.

    rows (b,), candidates (b, c) of point indices (never the row itself).
    Returns (indices (b, k) int32, distances (b, k) float32), nearest first,
    ties by index. Computed in points' dtype (float64 input stays exact).
    """
    candidates = np.sort(candidates, axis=1)
    diff = points[candidates]
    diff -= points[rows][:, None]
    return _nearest_first(candidates, np.sqrt(np.einsum("bcf,bcf->bc", diff, diff)), k)


def _nearest_first(candidates: np.ndarray, distances: np.ndarray, k: int):
    """candidates (b, c), each row sorted by index, and their distances -> the k
    nearest (indices (b, k) int32, distances (b, k) float32), nearest first, ties by index."""
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return (
        np.take_along_axis(candidates, order, 1).astype(np.int32),
        np.take_along_axis(distances, order, 1).astype(np.float32),
    )


def exact(points: np.ndarray, rows: np.ndarray, k: int, progbar=None):
    """Exact k-NN of points[rows] among all points; see `_rank` for the outputs.

    Queries go in blocks of up to _EXACT_QUERY_BLOCK (at most _EXACT_ONE_BLOCK
    queries, as recall samples, in one) against tiles of the points, each
    (block, tile) holding at most _EXACT_TILE_BYTES of float32 distances (with one
    block, a tile at most _BLOCK_BYTES of float32 points), so a tile
    is read once per block and the matmul runs at BLAS speed; with one block the
    tiles go to TensorFlow one at a time, never all points at once. Each tile
    keeps each query's 2k + 1 nearest by −2q·p + ‖p‖² (TensorFlow matmul +
    `_smallest`); of their union the query itself is dropped and the 2k nearest
    are `_rank`ed by direct distance, so round-off in the expansion cannot
    reorder them.
    """
    n = len(points)
    num_candidates = min(2 * k, n - 1)
    out_indices = np.empty((len(rows), k), np.int32)
    out_distances = np.empty((len(rows), k), np.float32)
    # Blocks of at most `widest` queries keep a tile at least 4 (2k + 1) points wide;
    # `_rank` goes in sub-blocks of its own budget.
    widest = max(1, _EXACT_TILE_BYTES // (16 * (num_candidates + 1)))
    if len(rows) <= min(_EXACT_ONE_BLOCK, widest):
        queries_per_block = max(1, len(rows))
        points_per_tile = _BLOCK_BYTES // (4 * points.shape[1])

        def tile_of(first: int, last: int):
            tile = tf.constant(points[first:last], tf.float32)
            return tile, tf.reduce_sum(tf.square(tile), axis=1)
    else:
        queries_per_block = min(_EXACT_QUERY_BLOCK, widest)
        points_per_tile = n
        data = tf.constant(points, tf.float32)
        sq_norms = tf.reduce_sum(tf.square(data), axis=1)

        def tile_of(first: int, last: int):
            return data[first:last], sq_norms[first:last]
    # Tiles a whole number of `_smallest`'s groups wide need no padding.
    tile = min(_EXACT_TILE_BYTES // (4 * queries_per_block), points_per_tile)
    tile = max(num_candidates + 1, tile // _TOP_GROUP * _TOP_GROUP)
    rank_bytes = 2 * num_candidates * points.shape[1] * points.itemsize
    for start in range(0, len(rows), queries_per_block):
        block = slice(start, min(start + queries_per_block, len(rows)))
        minus_twice_query = -2 * tf.constant(points[rows[block]], tf.float32)  # exact: a power of 2
        found, scores = [], []
        for first in range(0, n, tile):
            last = min(first + tile, n)
            tile_points, tile_sq_norms = tile_of(first, last)
            sq = tf.matmul(minus_twice_query, tile_points, transpose_b=True) + tile_sq_norms
            values, indices = _smallest(sq, min(num_candidates + 1, last - first))
            found.append(indices + first)
            scores.append(-values)
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


def _smallest(scores: tf.Tensor, m: int) -> Tuple[tf.Tensor, tf.Tensor]:
    """(values, indices) (b, m) of the m smallest entries of each row of scores (b, w),
    smallest first, ties by index.

    Rows at least _GROUPED_TOP_MIN · m wide go by groups of _TOP_GROUP entries:
    the m groups with the smallest minima hold the m smallest entries (a group
    left out has m chosen groups at or below its minimum, so m entries at or
    below each of its own), and top_k runs on their m · _TOP_GROUP entries and
    on the w / _TOP_GROUP minima instead of on all w.
    """
    b, w = scores.shape
    if w < _GROUPED_TOP_MIN * m:
        best = tf.math.top_k(-scores, m)
        return -best.values, best.indices
    if w % _TOP_GROUP:
        scores = tf.pad(scores, [[0, 0], [0, -w % _TOP_GROUP]], constant_values=np.inf)
    groups = tf.reshape(scores, (b, -1, _TOP_GROUP))
    chosen = tf.sort(tf.math.top_k(-tf.reduce_min(groups, axis=2), m).indices, axis=1)
    best = tf.math.top_k(-tf.reshape(tf.gather(groups, chosen, batch_dims=1), (b, -1)), m)
    group = tf.gather(chosen, best.indices // _TOP_GROUP, batch_dims=1)
    return -best.values, group * _TOP_GROUP + best.indices % _TOP_GROUP


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


def neighbors_of_rows(
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
        return exact(points, rows, k, progbar)
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
    on projected points the candidates kept for full-space ranking grow with it,
    from 3.5 (k + 1) (MNIST-60k, 784 dims: 4 (k + 1) at 3/16 of the leaves gives
    recall@10 0.9955, 6 (k + 1) 0.9967 for 1.4× the ranking time)."""
    levels = []
    for effort in (1, 1.5, 2, 3, 4, 6, 8, 12, 16):
        searched = min(leaves, math.ceil(effort * leaves / 16))
        kept = math.ceil((k + 1) * (3 + effort / 2)) if projected else k + 1
        levels.append((searched, kept))
    return levels


class _TunedSearcher:
    """ScaNN over (projected) points, searched at one of `_tuned_levels`."""

    def __init__(self, points: np.ndarray, k: int, seed: int):
        from scann.scann_ops.py import scann_ops_pybind

        self.points, self.k, self.seed = points, k, seed
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
        self._regions = None

    def search(self, rows: np.ndarray, level: int, progbar=None):
        """k-NN of points[rows] at search effort `level`; see `_rank` for the outputs."""
        searched, kept = self.levels[level]
        kept = min(kept, len(self.points))
        options = dict(final_num_neighbors=kept)
        if self.leaves > 1:
            options["leaves_to_search"] = searched
        out_indices = np.empty((len(rows), self.k), np.int32)
        out_distances = np.empty((len(rows), self.k), np.float32)
        # Queries go region by region, so the rows a block of candidates gathers
        # are mostly in cache; ScaNN answers a block on all cores, and its
        # candidates are ranked in small sub-blocks on all cores.
        by_region = np.argsort(self._region_of(rows), kind="stable")
        with ThreadPoolExecutor(_cpus()) as pool:
            for block in _blocks(len(rows), _BLOCK_BYTES // _TUNED_SEARCH_BLOCK):
                at = by_region[block]
                found, _ = self.searcher.search_batched_parallel(self.space[rows[at]], **options)
                if found.shape[1] != kept:
                    raise RuntimeError(f"ScaNN returned {found.shape[1]} neighbours, not {kept}.")
                candidates = _without_self(found.astype(np.int64), rows[at])
                _rank_on_all_cores(pool, self.points, rows, at, candidates, self.k,
                                   out_indices, out_distances)
                if progbar is not None:
                    progbar.add(len(at))
        return out_indices, out_distances

    def _region_of(self, rows: np.ndarray) -> np.ndarray:
        """rows (b,) -> (b,) the nearest of up to _TUNED_REGIONS points sampled as
        region centres, in the search space (computed for all points once)."""
        if self._regions is None:
            n = len(self.space)
            rng = np.random.default_rng([self.seed, 23])
            centres = self.space[np.sort(rng.choice(n, min(n, _TUNED_REGIONS), replace=False))]
            half_sq_norms = 0.5 * np.einsum("ij,ij->i", centres, centres)
            self._regions = np.empty(n, np.int32)
            for block in _blocks(n, 4 * len(centres)):
                self._regions[block] = np.argmin(half_sq_norms - self.space[block] @ centres.T, 1)
        return self._regions[rows]


def _rank_on_all_cores(pool, points, rows, at, candidates, k, out_indices, out_distances) -> None:
    """out_*[at] = `_rank`(points, rows[at], candidates, k), in sub-blocks of at most
    _TUNED_RANK_BLOCK rows (and _BLOCK_BYTES of gathered rows) over the pool's threads."""
    row_bytes = 2 * candidates.shape[1] * points.shape[1] * points.itemsize

    def rank(part: slice) -> None:
        out_indices[at[part]], out_distances[at[part]] = _rank(
            points, rows[at[part]], candidates[part], k)

    list(pool.map(rank, _blocks(len(at), max(row_bytes, _BLOCK_BYTES // _TUNED_RANK_BLOCK))))


def _cpus() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def tuned(points: np.ndarray, k: int, seed: int, recall_target: float, recall_sample: int,
           progbar=None):
    """Approximate k-NN of every point at the cheapest `_tuned_levels` effort whose recall
    on `recall_sample` random points against exact search reaches recall_target.

    Returns (indices, distances, the effort's (leaves searched, candidates kept),
    its sampled recall).
    """
    n = len(points)
    searcher = _TunedSearcher(points, k, seed)
    sample, truth = _recall_sample(n, seed, recall_sample), None
    level, sampled_recall = 0, 0.0
    for level in range(len(searcher.levels)):
        found, found_distances = searcher.search(sample, level)
        if truth is None:
            truth = within_radius(points, sample, k, found_distances[:, -1])
        sampled_recall = _recall(found, truth)
        if sampled_recall >= recall_target:
            break
    indices, distances = searcher.search(np.arange(n), level, progbar)
    return indices, distances, (*searcher.levels[level], searcher.leaves), sampled_recall


def nndescent(points: np.ndarray, k: int, seed: int, recall_target: float, recall_sample: int,
              progbar=None):
    """Approximate k-NN of every point by NN-descent (pynndescent), with as many
    neighbours per point as its recall on `recall_sample` random points against
    exact search needs to reach recall_target.

    pynndescent searches for max(15, k + 5) neighbours with twice as many
    candidates per iteration as its default (MNIST-60k, k = 10: recall@10 0.9962
    in 0.78× the time of its default search for 20, which reaches 0.9972), ×1.5
    a round while the sampled recall is short (at most _NNDESCENT_ROUNDS rounds). Self is dropped, ties go by index, rows
    pynndescent left short are searched exactly, and points that are not
    float32 have their candidates `_rank`ed in their own dtype. Returns
    (indices, distances, n_neighbors, sampled recall).
    """
    try:
        import pynndescent
    except ImportError as error:
        raise ImportError('method="nndescent" needs pynndescent: pip install '
                          '"keras-nrae[nndescent]" (or method="tuned").') from error
    n = len(points)
    data = np.ascontiguousarray(points, np.float32)
    sample, truth = _recall_sample(n, seed, recall_sample), None
    neighbours = min(n - 1, max(_NNDESCENT_MIN, k + _NNDESCENT_EXTRA))
    for round_ in range(_NNDESCENT_ROUNDS):
        candidates = min(_NNDESCENT_MAX_CANDIDATES, _NNDESCENT_CANDIDATES_PER_NEIGHBOUR * neighbours)
        found, found_distances = pynndescent.NNDescent(
            data, n_neighbors=neighbours + 1, max_candidates=candidates, random_state=seed,
            n_jobs=_cpus()).neighbor_graph
        found = np.asarray(found, np.int64)
        hits, hit_distances = _rank_hits(points, sample, found[sample], k)
        if truth is None:  # after the first build, within its k-th distances: before it, it slowed that build
            truth = within_radius(points, sample, k, hit_distances[:, -1])
        sampled_recall = _recall(hits, truth)
        if sampled_recall >= recall_target or neighbours == n - 1 or round_ + 1 == _NNDESCENT_ROUNDS:
            break
        neighbours = min(n - 1, math.ceil(1.5 * neighbours))
    # pynndescent's float32 distances are those of float32 points; others are re-ranked.
    indices, distances = _rank_hits(points, np.arange(n), found, k,
                                    found_distances if points.dtype == np.float32 else None)
    if progbar is not None:
        progbar.add(n)
    return indices, distances, neighbours, sampled_recall


def _rank_hits(points: np.ndarray, rows: np.ndarray, found: np.ndarray, k: int,
               found_distances: Optional[np.ndarray] = None):
    """Each row's k nearest search hits found (b, c + 1), self dropped, ties by
    index: `_rank`ed on all cores, or by found_distances (b, c + 1) when given;
    rows with missing hits (−1) are searched exactly."""
    if found_distances is None:
        candidates = _without_self(found, rows)
    else:
        candidates, found_distances = _without_self(found, rows, found_distances)
    indices = np.empty((len(rows), k), np.int32)
    distances = np.empty((len(rows), k), np.float32)
    short = (candidates < 0).any(axis=1)
    if found_distances is None:
        with ThreadPoolExecutor(_cpus()) as pool:
            _rank_on_all_cores(pool, points, rows, np.flatnonzero(~short), candidates[~short], k,
                               indices, distances)
    else:
        by_index = np.argsort(candidates[~short], axis=1)
        indices[~short], distances[~short] = _nearest_first(
            np.take_along_axis(candidates[~short], by_index, 1),
            np.take_along_axis(found_distances[~short], by_index, 1), k)
    if short.any():
        indices[short], distances[short] = exact(points, rows[short], k)
    return indices, distances


def _recall_sample(n: int, seed: int, size: int) -> np.ndarray:
    """size random rows of n, sorted: where tuned searches' recall is measured."""
    rng = np.random.default_rng([seed, 22])  # not `NeighborGraph.recall()`'s sample
    return np.sort(rng.choice(n, min(n, size), replace=False))


def within_radius(points: np.ndarray, rows: np.ndarray, k: int, radius: np.ndarray) -> np.ndarray:
    """Exact k-NN indices (b, k) of points[rows] (b,), ties by index, given radius (b,)
    within which each row has k other points (the k-th distance of any k of them).

    With q, p centred on the rows' mean, the k nearest pass the filter
    (1 − ε)‖p‖² − 2q·p ≤ r² − (1 − ε)‖q‖², ε (`_score_round_off`) at least the
    scores' relative round-off, so that no point within r fails; the passing
    points are ranked by direct distance. One matmul per tile of the points (the
    norms a column of it) and a comparison, no top-k; rows that pass fewer than k
    (a radius too small) or more than _WITHIN_RADIUS_MAX_PASSING (crowds of
    duplicates) are searched by `exact`.
    """
    n, features = points.shape
    dtype = tf.bfloat16 if _bfloat16_scores() else tf.float32
    slack = _score_round_off(dtype, features)
    query = points[rows]
    centre = query.mean(axis=0, dtype=np.float64).astype(np.float32)
    query = query - centre.astype(np.float64)
    query_sq_norms = np.einsum("bf,bf->b", query, query)
    threshold = (np.square(radius.astype(np.float64)) * (1 + 2 * (features + 2) * 2.0**-24)
                 - (1 - slack) * query_sq_norms)
    threshold = tf.cast(threshold + 2.0**-7 * np.abs(threshold), dtype)[:, None]  # rounds up
    query_and_one = tf.cast(np.concatenate([-2 * query, np.ones((len(rows), 1))], axis=1), dtype)
    points_per_tile = max(1, min(_BLOCK_BYTES // (4 * features), _EXACT_TILE_BYTES // (4 * len(rows))))
    passed, counts = [], np.zeros(len(rows), np.int64)
    for first in range(0, n, points_per_tile):
        tile = tf.constant(points[first:first + points_per_tile], tf.float32) - centre
        columns = tf.concat([tile, (1 - slack) * tf.reduce_sum(tf.square(tile), axis=1, keepdims=True)], 1)
        scores = tf.matmul(query_and_one, tf.cast(columns, dtype), transpose_b=True)
        passed.append(_true_entries(scores <= threshold) + [0, first])
        counts += np.bincount(passed[-1][:, 0], minlength=len(rows))
        crowded = counts > _WITHIN_RADIUS_MAX_PASSING
        if crowded.any():  # those rows pass nothing more
            threshold = tf.where(crowded[:, None], tf.constant(-np.inf, dtype), threshold)
    at, candidate = np.concatenate(passed).T
    keep = (candidate != rows[at]) & ~crowded[at]
    at, candidate = at[keep], candidate[keep]
    distances = np.empty(len(at), points.dtype)
    for part in _blocks(len(at), points.shape[1] * points.itemsize):
        diff = points[candidate[part]] - points[rows[at[part]]]
        distances[part] = np.sqrt(np.einsum("bf,bf->b", diff, diff))
    order = np.lexsort((candidate, distances, at))  # by row, then distance, then index
    at, candidate = at[order], candidate[order]
    starts = np.searchsorted(at, np.arange(len(rows)))
    full = np.diff(np.r_[starts, len(at)]) >= k
    indices = np.empty((len(rows), k), np.int32)
    indices[full] = candidate[starts[full, None] + np.arange(k)]
    if not full.all():
        indices[~full] = exact(points, rows[~full], k)[0]
    return indices


def _true_entries(mask: tf.Tensor) -> np.ndarray:
    """(row, column) (m, 2) of the True entries of a sparse mask (b, w), row-major:
    `tf.where` over its bytes read 8 at a time as int64 words, then within the
    words that hold any (half the time of `tf.where` on the mask)."""
    b, w = mask.shape
    octets = tf.cast(mask, tf.uint8)
    if w % 8:
        octets = tf.pad(octets, [[0, 0], [0, -w % 8]])
    octets = tf.reshape(octets, (b, -1, 8))
    words = tf.where(tf.bitcast(octets, tf.int64) != 0)
    hit, byte = np.nonzero(tf.gather_nd(octets, words).numpy())
    words = words.numpy()[hit]
    return np.stack([words[:, 0], 8 * words[:, 1] + byte], axis=1)


def _score_round_off(dtype: tf.DType, features: int) -> float:
    """ε ≥ |s̃ − s| / (‖q‖² + ‖p‖²) for `within_radius`'s scores s̃ of
    s = (1 − ε)‖p‖² − 2q·p: inputs and norms rounded to dtype (unit round-off u),
    products and sums of the features + 1 terms in float32 (2⁻²⁴ each), the
    output rounded to dtype: 5u + 3(F + 1)·2⁻²⁴, and a margin."""
    unit = 2.0**-8 if dtype == tf.bfloat16 else 2.0**-24
    return 6 * unit + 4 * (features + 1) * 2.0**-24


@functools.lru_cache(maxsize=None)
def _bfloat16_scores() -> bool:
    """Whether `within_radius` scores in bfloat16: where the CPU multiplies it natively
    (Linux flags avx512_bf16 or amx_bf16), TensorFlow runs it through oneDNN (without,
    as with TF_ENABLE_ONEDNN_OPTS=0, bfloat16 is 1.4x slower than float32) and its
    bfloat16 matmul sums in float32."""
    try:
        from tensorflow.python.util import _pywrap_util_port

        with open("/proc/cpuinfo") as cpuinfo:
            native = bool(_BFLOAT16_CPU_FLAGS.search(cpuinfo.read())) and _pywrap_util_port.IsMklEnabled()
    except (ImportError, AttributeError, OSError):
        native = False
    return native and _sums_in_float32(tf.matmul)


def _sums_in_float32(matmul) -> bool:
    """Whether matmul of bfloat16 (1, 1024) · (1024, 1) sums in float32: 512 entries
    ±256 in random order cancel around 512 of 1/8, whose sum 64 is exact in float32
    in every order and lost by bfloat16 partial sums (spacing 2 at 256)."""
    column = np.random.default_rng(0).permutation(np.repeat([256.0, -256.0, 0.125], [256, 256, 512]))
    product = matmul(tf.ones((1, 1024), tf.bfloat16), tf.constant(column[:, None], tf.bfloat16))
    return float(product[0, 0]) == 64.0


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each row of truth (b, k) that the same row of found lists."""
    hits = (found[:, :, None] == truth[:, None, :]).any(axis=2).sum()
    return float(hits) / truth.size
