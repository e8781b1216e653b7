"""NeighborGraph against brute-force numpy k-NN."""

import numpy as np
import pytest

from keras_nrae import _knn, arrays
from keras_nrae import graph as graph_lib
from keras_nrae.graph import NeighborGraph
from tests._numerics import assert_close


def brute_force(points: np.ndarray, k: int):
    """(indices, distances) of the k nearest other rows, ties by index, in float64."""
    points = points.reshape(len(points), -1).astype(np.float64)
    distances = np.stack([np.linalg.norm(points - row, axis=1) for row in points])
    np.fill_diagonal(distances, np.inf)
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(distances, order, 1)


def recall(indices: np.ndarray, truth: np.ndarray) -> float:
    return np.mean([np.intersect1d(a, b).size for a, b in zip(indices, truth)]) / truth.shape[1]


def random_data(n=300, shape=(3, 5), seed=0):
    return np.random.default_rng(seed).normal(size=(n, *shape))


def clustered_data(n=3000, dim=24, clusters=20, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    return (centres[rng.integers(clusters, size=n)] + 0.3 * rng.normal(size=(n, dim))).astype(
        np.float32
    )


@pytest.mark.parametrize("data", [random_data(), clustered_data(n=400)], ids=["random", "clustered"])
def test_exact_equals_brute_force(data):
    graph = NeighborGraph.build(data, k=7, method="exact", verbose=0)
    indices, distances = brute_force(data, 7)
    assert graph.indices.dtype == np.int32 and graph.distances.dtype == np.float32
    np.testing.assert_array_equal(graph.indices, indices)
    assert_close(graph.distances, distances)
    assert graph.method == "exact" and graph.k == 7 and graph.num_points == len(data)


def test_exact_in_many_small_blocks_is_unchanged(monkeypatch):
    data = random_data(n=200)
    monkeypatch.setattr(_knn, "_EXACT_TILE_BYTES", 4 * 200 * 7)  # blocks of 31 queries, tiles of 32 points
    monkeypatch.setattr(_knn, "_BLOCK_BYTES", 4 * 200 * 7)  # `_rank` in sub-blocks of 4 rows
    graph = NeighborGraph.build(data, k=5, method="exact", verbose=0)
    np.testing.assert_array_equal(graph.indices, brute_force(data, 5)[0])


def test_features_and_cosine_metric():
    data = random_data(n=150)
    features = np.random.default_rng(1).normal(size=(150, 4))
    graph = NeighborGraph.build(data, k=4, features=features, verbose=0)
    np.testing.assert_array_equal(graph.indices, brute_force(features, 4)[0])

    cosine = NeighborGraph.build(features, k=4, metric="cosine", verbose=0)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    order = np.argsort(-similarity, axis=1, kind="stable")[:, :4]
    np.testing.assert_array_equal(cosine.indices, order)
    np.testing.assert_allclose(
        cosine.distances, 1 - np.take_along_axis(similarity, order, 1), atol=1e-6
    )


@pytest.mark.parametrize(
    "data",
    [random_data(n=500, shape=(64,)), random_data(n=500, shape=(3,)), clustered_data(),
     clustered_data(dim=64)],
    ids=["small-hashed", "low-dim", "partitioned", "partitioned-hashed"],
)
def test_scann_recall(data):
    graph = NeighborGraph.build(data, k=10, method="scann", verbose=0)
    truth, _ = brute_force(data, 10)
    assert graph.method == "scann"
    assert recall(graph.indices, truth) >= 0.95
    rows = np.sort(np.random.default_rng(0).choice(len(data), 200, replace=False))
    assert graph.recall(data, sample=200) == pytest.approx(recall(graph.indices[rows], truth[rows]))
    assert np.all(np.diff(graph.distances, axis=1) >= 0)
    assert np.all(graph.indices != np.arange(len(data))[:, None])
    # Reported distances are the true ones of the listed neighbours.
    listed = np.linalg.norm(data[:, None] - data[graph.indices], axis=-1)
    assert_close(graph.distances, listed, rtol=1e-5)


@pytest.mark.parametrize("method", ["exact", "scann"])
def test_duplicates_are_neighbours_but_self_is_not(method):
    rng = np.random.default_rng(0)
    base = rng.normal(size=(100, 20))
    # Rows 0..99 and their copies 100..199; row 200..219 are 20 copies of one point.
    data = np.concatenate([base, base, np.repeat(rng.normal(size=(1, 20)), 20, 0)])
    graph = NeighborGraph.build(data, k=5, method=method, verbose=0)
    n = len(data)
    assert np.all(graph.indices != np.arange(n)[:, None])
    twin = np.concatenate([np.arange(100, 200), np.arange(100)])
    np.testing.assert_array_equal(graph.indices[:200, 0], twin)
    np.testing.assert_array_equal(graph.distances[:200, 0], 0.0)
    assert np.all(graph.distances[200:] == 0) and np.all(graph.indices[200:] >= 200)


def test_auto_picks_exact_for_small_data():
    assert NeighborGraph.build(random_data(n=50), k=3, verbose=0).method == "exact"


def test_progress_bar_is_silenced_by_verbose_0(monkeypatch, capsys):
    monkeypatch.setattr(arrays, "_PROGRESS_MIN_POINTS", 10)
    NeighborGraph.build(random_data(n=50), k=3, verbose=1)
    out = capsys.readouterr().out
    assert "reading x" in out and "exact 3-NN search" in out and "50/50" in out
    NeighborGraph.build(random_data(n=50), k=3, verbose=0)
    assert capsys.readouterr().out == ""


def test_save_load_round_trip_and_fingerprint(tmp_path):
    data = random_data(n=60)
    graph = NeighborGraph.build(data, k=4, verbose=0)
    path = str(tmp_path / "graph.npz")
    graph.save(path)
    loaded = NeighborGraph.load(path, x=data.astype(np.float32))
    np.testing.assert_array_equal(loaded.indices, graph.indices)
    np.testing.assert_array_equal(loaded.distances, graph.distances)
    assert (loaded.method, loaded.metric, loaded.k) == ("exact", "euclidean", 4)

    other = data.copy()
    other[0, 0, 0] += 1.0
    with pytest.raises(ValueError, match="different data"):
        NeighborGraph.load(path, x=other)
    with pytest.raises(ValueError, match="built on 60 points but x has 59"):
        NeighborGraph.load(path, x=data[:59])


def test_uint8_memmap_and_chunked_reads_give_the_graph_of_the_floats(tmp_path, monkeypatch):
    pixels = np.random.default_rng(0).integers(0, 256, (300, 6, 5), dtype=np.uint8)
    np.save(tmp_path / "x.npy", pixels)
    floats = arrays.to_float(pixels)
    expected = NeighborGraph.build(floats, k=6, verbose=0)
    np.testing.assert_array_equal(expected.indices, brute_force(floats, 6)[0])
    monkeypatch.setattr(arrays, "_CHUNK_BYTES", 8 * 30 * 37)  # 37 rows a chunk
    for x in [pixels, np.load(tmp_path / "x.npy", mmap_mode="r")]:
        graph = NeighborGraph.build(x, k=6, verbose=0)
        np.testing.assert_array_equal(graph.indices, expected.indices)
        np.testing.assert_array_equal(graph.distances, expected.distances)
        np.testing.assert_array_equal(graph.checksums, expected.checksums)
        assert graph.fingerprint == expected.fingerprint


def test_memmapped_features(tmp_path):
    data = random_data(n=200)
    features = np.random.default_rng(1).normal(size=(200, 4)).astype(np.float32)
    np.save(tmp_path / "f.npy", features)
    graph = NeighborGraph.build(data, k=4, features=np.load(tmp_path / "f.npy", mmap_mode="r"),
                                verbose=0)
    np.testing.assert_array_equal(graph.indices, brute_force(features, 4)[0])


def test_save_and_load_memory_mapped(tmp_path):
    data = random_data(n=60)
    graph = NeighborGraph.build(data, k=4, verbose=0)
    path = str(tmp_path / "graph.npz")
    graph.save(path)
    loaded = NeighborGraph.load(path, x=data, mmap_mode="r")
    for name in ("indices", "distances", "checksums"):
        array = getattr(loaded, name)
        assert isinstance(array.base, np.memmap) or isinstance(array, np.memmap), name
        np.testing.assert_array_equal(array, getattr(graph, name))
    assert (loaded.method, loaded.metric, loaded.fingerprint) == (
        graph.method, graph.metric, graph.fingerprint)


def test_non_finite_rows_are_named_across_chunks(monkeypatch):
    monkeypatch.setattr(arrays, "_CHUNK_BYTES", 8 * 15 * 4)  # 4 rows a chunk
    data = random_data(n=20)
    data[13, 2, 4] = np.nan
    with pytest.raises(ValueError, match="x contains NaN or Inf, first in row 13"):
        NeighborGraph.build(data, k=3, verbose=0)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"x": random_data(n=10), "k": 10}, ValueError, r"1 <= k < N = 10"),
        ({"x": random_data(n=10), "k": 0}, ValueError, r"1 <= k < N"),
        ({"x": random_data(n=1), "k": 1}, ValueError, "at least 2 points, got 1"),
        ({"x": np.zeros((5, 3), np.int8), "k": 2}, TypeError, "storage dtypes"),
        ({"x": np.array([["a"], ["b"], ["c"]]), "k": 1}, TypeError, "storage dtypes"),
        ({"x": np.zeros(5), "k": 2}, ValueError, r"one point per row.*got shape \(5,\)"),
        ({"x": np.zeros((6, 5)).T, "k": 2}, ValueError, "rows are not contiguous"),
        ({"x": 3.0, "k": 2}, TypeError, "random-access source"),
        ({"x": random_data(n=10), "k": 2, "method": "kd"}, ValueError, "method must be"),
        ({"x": random_data(n=10), "k": 2, "metric": "l1"}, ValueError, "metric must be"),
        ({"x": random_data(n=10), "k": 2, "features": np.ones((9, 2))}, ValueError, "features must be"),
        ({"x": np.zeros((4, 2)), "k": 2, "metric": "cosine"}, ValueError, "row 0 of x is all zeros"),
    ],
)
def test_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        NeighborGraph.build(verbose=0, **kwargs)


def test_non_finite_values_name_the_first_bad_row():
    data = random_data(n=20)
    data[7, 1, 2] = np.nan
    data[12, 0, 0] = np.inf
    with pytest.raises(ValueError, match="x contains NaN or Inf, first in row 7"):
        NeighborGraph.build(data, k=3, verbose=0)
    features = np.ones((20, 2))
    features[3] = -np.inf
    with pytest.raises(ValueError, match="features contains NaN or Inf, first in row 3"):
        NeighborGraph.build(random_data(n=20), k=3, features=features, verbose=0)
    with pytest.raises(ValueError, match="x contains NaN or Inf, first in row 7"):
        NeighborGraph.build(data, k=3, features=np.ones((20, 2)), verbose=0)


@pytest.mark.parametrize("tile_bytes", [4 * 64 * 52, 4 * 700 * 52], ids=["blocks", "one-block"])
def test_exact_merges_tiles_of_the_points(tile_bytes, monkeypatch):
    data = clustered_data(n=700, dim=12)
    monkeypatch.setattr(_knn, "_EXACT_QUERY_BLOCK", 64)
    # blocks of 64 queries, or all 700 queries in one; either way tiles of 48 points
    # (52 rounded down to whole groups of 16) and a last one of 28
    monkeypatch.setattr(_knn, "_EXACT_TILE_BYTES", tile_bytes)
    graph = NeighborGraph.build(data, k=6, method="exact", verbose=0)
    indices, distances = brute_force(data, 6)
    np.testing.assert_array_equal(graph.indices, indices)
    assert_close(graph.distances, distances)


def test_exact_by_grouped_tiles_keeps_ties_by_index(monkeypatch):
    # Integer points: many equal distances, all computed exactly. Tiles of 480
    # points (top-k by groups: 480 >= 64 (2k + 1)) and a last one of 80 (plain top_k).
    data = np.random.default_rng(5).integers(0, 3, size=(2000, 6)).astype(np.float32)
    rows = np.arange(0, 2000, 20)
    monkeypatch.setattr(_knn, "_EXACT_TILE_BYTES", 4 * 100 * 480)
    indices, distances = _knn.exact(data, rows, 3)
    truth, truth_distances = brute_force(data, 3)
    np.testing.assert_array_equal(indices, truth[rows])
    assert_close(distances, truth_distances[rows])


@pytest.mark.parametrize("bfloat16", [True, False], ids=["bfloat16", "float32"])
@pytest.mark.parametrize("data", [
    np.random.default_rng(6).integers(0, 3, size=(1500, 8)).astype(np.float32),  # ties at the radius
    np.random.default_rng(7).random((1500, 300)).astype(np.float32) ** 4,  # image-like, in [0, 1]
    np.random.default_rng(8).normal(size=(1500, 40)) + 30.0,  # float64, far from the origin
], ids=["integer", "image-like", "offset"])
def test_within_radius_of_the_kth_distance_is_exact(data, bfloat16, monkeypatch):
    # The tightest valid radius, each row's true 5th distance: every point at it
    # must pass the rounded filter, and ties go by index. Tiles of 97 points.
    monkeypatch.setattr(_knn, "_bfloat16_scores", lambda: bfloat16)
    rows = np.arange(3, 1500, 11)
    monkeypatch.setattr(_knn, "_EXACT_TILE_BYTES", 4 * len(rows) * 97)
    truth, truth_distances = brute_force(data, 5)
    radius = truth_distances[rows, -1].astype(np.float32)
    np.testing.assert_array_equal(_knn.within_radius(data, rows, 5, radius), truth[rows])


@pytest.mark.parametrize("width", [64, 61])
def test_true_entries_of_a_mask_match_argwhere(width):
    import tensorflow as tf

    mask = np.random.default_rng(9).random((13, width)) < 0.05
    np.testing.assert_array_equal(_knn._true_entries(tf.constant(mask)), np.argwhere(mask))


def test_within_radius_too_small_falls_back_to_exact_search():
    data = random_data(n=500, shape=(6,))
    rows = np.arange(0, 500, 7)
    radius = np.zeros(len(rows), np.float32)
    np.testing.assert_array_equal(_knn.within_radius(data, rows, 4, radius), brute_force(data, 4)[0][rows])


def test_within_radius_sends_rows_crowded_by_duplicates_to_exact_search(monkeypatch):
    # 400 copies of one point: each of them passes 399 others at distance 0, more
    # than the cap of 50, so those rows are searched exactly (ties by index).
    data = np.concatenate([np.ones((400, 5)), random_data(n=200, shape=(5,))]).astype(np.float32)
    rows = np.arange(0, 600, 9)
    monkeypatch.setattr(_knn, "_WITHIN_RADIUS_MAX_PASSING", 50)
    monkeypatch.setattr(_knn, "_EXACT_TILE_BYTES", 4 * len(rows) * 64)
    searched = []
    exact = _knn.exact
    monkeypatch.setattr(_knn, "exact", lambda points, rows, k: searched.append(rows) or exact(points, rows, k))
    truth, truth_distances = brute_force(data, 3)
    found = _knn.within_radius(data, rows, 3, truth_distances[rows, -1].astype(np.float32))
    np.testing.assert_array_equal(found, truth[rows])
    np.testing.assert_array_equal(searched[0], rows[rows < 400])


def test_bfloat16_scores_need_float32_sums():
    import ml_dtypes
    import tensorflow as tf

    def summing_in_bfloat16(a, b):  # each partial sum rounded to bfloat16, in order
        total = ml_dtypes.bfloat16(0)
        for term in (np.asarray(a, np.float32)[0] * np.asarray(b, np.float32)[:, 0]):
            total = ml_dtypes.bfloat16(np.float32(total) + term)
        return np.array([[total]], np.float32)

    assert _knn._sums_in_float32(tf.matmul)
    assert not _knn._sums_in_float32(summing_in_bfloat16)


@pytest.mark.parametrize("width", [64 * 21 - 1, 64 * 21 + 5])  # plain top_k, then by groups
def test_smallest_entries_match_a_full_sort_with_ties_by_index(width):
    import tensorflow as tf

    scores = np.random.default_rng(3).integers(0, 40, size=(7, width)).astype(np.float32)
    values, indices = _knn._smallest(tf.constant(scores), 21)
    order = np.argsort(scores, axis=1, kind="stable")[:, :21]
    np.testing.assert_array_equal(indices, order)
    np.testing.assert_array_equal(values, np.take_along_axis(scores, order, 1))


@pytest.mark.parametrize("data", [random_data(n=400, shape=(20,)), random_data(n=400, shape=(90,))],
                         ids=["full-space", "projected"])
def test_tuned_searching_every_candidate_is_exact(data, monkeypatch):
    # Below _SCANN_TREE_MIN_POINTS there is no tree: every point is scored, in the
    # full space (20-d) or in 64 principal axes with all points kept as candidates.
    monkeypatch.setattr(_knn, "_tuned_levels", lambda leaves, k, projected: [(1, 400)])
    graph = NeighborGraph.build(data, k=8, method="tuned", verbose=0)
    indices, distances = brute_force(data, 8)
    np.testing.assert_array_equal(graph.indices, indices)
    assert_close(graph.distances, distances)
    assert graph.method == "tuned" and graph.tuning["sampled_recall"] == 1.0


@pytest.mark.parametrize("dim", [24, 100], ids=["full-space", "projected"])
def test_tuned_reaches_its_recall_target(dim):
    data = clustered_data(n=3000, dim=dim, clusters=30)
    graph = NeighborGraph.build(data, k=10, method="tuned", verbose=0, recall_sample=500)
    truth, _ = brute_force(data, 10)
    tuning = graph.tuning
    assert tuning["recall_target"] == 0.995 and tuning["recall_sample"] == 500
    assert tuning["leaves"] == int(np.sqrt(3000)) and tuning["sampled_recall"] >= 0.995
    assert recall(graph.indices, truth) >= 0.99
    assert np.all(graph.indices != np.arange(len(data))[:, None])
    assert np.all(np.diff(graph.distances, axis=1) >= 0)
    listed = np.linalg.norm(data[:, None] - data[graph.indices], axis=-1)
    assert_close(graph.distances, listed, rtol=1e-5)
    # A lower target never searches harder. ScaNN's tree training is not
    # bit-reproducible, so a rebuild may differ in a few rows, at the same guarantee.
    easier = NeighborGraph.build(data, k=10, method="tuned", verbose=0, recall_sample=500,
                                 recall_target=0.9)
    assert easier.tuning["leaves_searched"] <= tuning["leaves_searched"]
    again = NeighborGraph.build(data, k=10, method="tuned", verbose=0, recall_sample=500)
    assert again.tuning["sampled_recall"] >= 0.995
    assert recall(again.indices, truth) >= 0.99


def test_tuned_on_few_points_and_auto_above_the_exact_limit(monkeypatch):
    import importlib.util

    data = random_data(n=300, shape=(80,))
    graph = NeighborGraph.build(data, k=5, method="tuned", verbose=0)
    assert graph.method == "tuned" and graph.tuning["sampled_recall"] >= 0.995
    assert recall(graph.indices, brute_force(data, 5)[0]) >= 0.99
    monkeypatch.setattr(graph_lib, "AUTO_EXACT_MAX_POINTS", 100)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # no pynndescent
    graph = NeighborGraph.build(data, k=5, verbose=0)
    assert graph.method == "tuned" and graph.tuning["sampled_recall"] >= 0.995


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nndescent_reaches_its_recall_target(dtype):
    pytest.importorskip("pynndescent")
    data = clustered_data(n=3000, dim=24, clusters=30).astype(dtype)
    graph = NeighborGraph.build(data, k=10, method="nndescent", verbose=0, recall_sample=500)
    truth, _ = brute_force(data, 10)
    assert graph.method == "nndescent" and graph.tuning["n_neighbors"] >= 15
    assert graph.tuning["sampled_recall"] >= 0.995 and recall(graph.indices, truth) >= 0.99
    assert np.all(graph.indices != np.arange(len(data))[:, None])
    assert np.all(np.diff(graph.distances, axis=1) >= 0)
    listed = np.linalg.norm(data[:, None] - data[graph.indices], axis=-1)
    assert_close(graph.distances, listed, rtol=1e-5)


class _FakeNNDescent:
    """pynndescent.NNDescent stand-in: brute-force hits, self first, every
    other row's hits scrambled below 30 neighbours, row 0 short of hits (-1)."""

    built = []

    def __init__(self, data, n_neighbors, max_candidates, random_state, n_jobs):
        self.built.append((n_neighbors, max_candidates))
        distances = np.linalg.norm(data[:, None] - data[None], axis=-1)
        found = np.argsort(distances, axis=1, kind="stable")[:, :n_neighbors]
        if n_neighbors < 30:
            odd = np.arange(1, len(data), 2)[:, None]  # scrambled, never self
            offsets = np.random.default_rng(0).integers(1, len(data), size=(len(odd), n_neighbors - 1))
            found[1::2, 1:] = (odd + offsets) % len(data)
        found[0, -1] = -1
        self.neighbor_graph = (found, np.take_along_axis(distances, found, 1).astype(np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nndescent_adds_neighbours_until_the_sampled_recall_is_reached(dtype, monkeypatch):
    import sys
    import types

    monkeypatch.setitem(sys.modules, "pynndescent", types.SimpleNamespace(NNDescent=_FakeNNDescent))
    _FakeNNDescent.built.clear()
    data = random_data(n=200, shape=(5,)).astype(dtype)
    graph = NeighborGraph.build(data, k=6, method="nndescent", verbose=0, recall_sample=200)
    # max(15, k + 5) = 15 neighbours (+ self) scramble half the rows, and so do 23; 35
    # find them all; each with twice as many candidates, at most 60.
    assert _FakeNNDescent.built == [(16, 30), (24, 46), (36, 60)]
    assert graph.tuning["n_neighbors"] == 35 and graph.tuning["sampled_recall"] == 1.0
    indices, distances = brute_force(data, 6)
    np.testing.assert_array_equal(graph.indices, indices)
    assert_close(graph.distances, distances)


def test_nndescent_without_pynndescent_says_what_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pynndescent", None)
    with pytest.raises(ImportError, match=r"keras-nrae\[nndescent\]"):
        NeighborGraph.build(random_data(n=50), k=3, method="nndescent", verbose=0)


def test_auto_picks_by_size_and_what_is_installed(monkeypatch):
    import importlib.util

    assert graph_lib._auto_method(graph_lib.AUTO_EXACT_MAX_POINTS) == "exact"
    big = graph_lib.AUTO_EXACT_MAX_POINTS + 1
    installed = importlib.util.find_spec("pynndescent") is not None
    assert graph_lib._auto_method(big) == ("nndescent" if installed else "tuned")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert graph_lib._auto_method(big) == "tuned"


@pytest.mark.parametrize("kwargs, match", [({"recall_target": 1.5}, "recall_target"),
                                           ({"recall_sample": 0}, "recall_sample")])
def test_bad_tuning_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NeighborGraph.build(random_data(n=20), k=3, verbose=0, **kwargs)
