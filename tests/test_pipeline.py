"""keras_nrae.pipeline.neighborhood_dataset: coverage, sampling rules, determinism, errors and a fit."""

import collections

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nrae import NeighborhoodReconstructionModel, NeighborGraph, neighborhood_dataset
from keras_nrae.architectures import mlp_autoencoder
from keras_nrae.arrays import Feature, to_float
from keras_nrae.graph import fingerprint
from test_arrays import DictSource, RandomAccess

N, K = 40, 5


def indexed_data(n=N, dtype=np.float32):
    """Points (n, 2, 3) whose every entry is the point's own index."""
    return np.broadcast_to(np.arange(n, dtype=dtype)[:, None, None], (n, 2, 3)).copy()


def random_graph(x, k=K, seed=0):
    """A graph with arbitrary distinct non-self neighbours, to test the sampler alone."""
    rng = np.random.default_rng(seed)
    n = len(x)
    indices = np.stack([rng.choice(np.delete(np.arange(n), i), k, replace=False) for i in range(n)])
    return NeighborGraph(indices, np.ones((n, k)), "exact", "euclidean", fingerprint(x))


def ids(t) -> np.ndarray:
    """Point indices of a batch tensor (..., 2, 3) of indexed_data rows."""
    return t.numpy()[..., 0, 0].astype(np.int64)


def epoch(ds):
    return [(ids(b["x"]), ids(b["neighbors"])) for b in ds]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_static_shapes_and_dtypes(dtype):
    x = indexed_data(dtype=dtype)
    ds = neighborhood_dataset(x, random_graph(x), batch_size=8, neighbors_per_point=3)
    spec = ds.element_spec
    assert spec["x"].shape == (8, 2, 3) and spec["neighbors"].shape == (8, 3, 2, 3)
    assert spec["x"].dtype == spec["neighbors"].dtype == tf.as_dtype(dtype)
    open_ended = neighborhood_dataset(x, random_graph(x), 16, 3, drop_remainder=False)
    assert open_ended.element_spec["neighbors"].shape.as_list() == [None, 3, 2, 3]
    assert [len(b["x"]) for b in open_ended] == [16, 16, 8]


@pytest.mark.parametrize("shuffle", [True, False])
def test_each_centre_once_per_epoch_and_neighbours_from_graph(shuffle):
    x = indexed_data()
    graph = random_graph(x)
    ds = neighborhood_dataset(x, graph, 8, neighbors_per_point=4, shuffle=shuffle)
    for _ in range(2):
        batches = epoch(ds)
        centres = np.concatenate([c for c, _ in batches])
        assert sorted(centres) == list(range(N))
        assert (centres == np.arange(N)).all() != shuffle
        for c, neighbors in batches:
            np.testing.assert_array_equal(neighbors[:, 0], c)  # include_center
            for centre, drawn in zip(c, neighbors[:, 1:]):
                assert set(drawn) <= set(graph.indices[centre])
                assert len(set(drawn)) == len(drawn)  # without replacement


def test_include_center_slot_is_bit_identical():
    x = np.random.default_rng(0).random((N, 2, 3)).astype(np.float32)
    for batch in neighborhood_dataset(x, random_graph(x), 8, neighbors_per_point=2):
        assert tf.reduce_all(tf.equal(batch["neighbors"][:, 0], batch["x"]))


def test_without_center_all_slots_are_graph_neighbours():
    x = indexed_data()
    graph = random_graph(x)
    ds = neighborhood_dataset(x, graph, 10, neighbors_per_point=K, include_center=False)
    for c, neighbors in epoch(ds):
        for centre, drawn in zip(c, neighbors):
            assert sorted(drawn) == sorted(graph.indices[centre])  # all k, each once


def test_replace_allows_more_slots_than_neighbours():
    x = indexed_data()
    graph = random_graph(x)
    ds = neighborhood_dataset(x, graph, 8, neighbors_per_point=2 * K, replace=True)
    for c, neighbors in epoch(ds):
        for centre, drawn in zip(c, neighbors[:, 1:]):
            assert set(drawn) <= set(graph.indices[centre])


def test_draws_are_uniform_over_the_graph_neighbours():
    x = indexed_data(n=10)
    graph = random_graph(x, k=4)
    ds = neighborhood_dataset(x, graph, 10, neighbors_per_point=2, shuffle=False)
    counts = collections.Counter()
    for c, neighbors in epoch(ds.repeat(200)):
        counts.update(zip(c, neighbors[:, 1]))
    # 200 draws per centre over its 4 neighbours: 50 each, binomial sd ≈ 6.1.
    assert sorted(counts) == sorted((c, j) for c in range(10) for j in graph.indices[c])
    assert all(25 <= n <= 75 for n in counts.values())


def test_same_seed_same_batches_new_epochs_new_draws():
    x = indexed_data()
    graph = random_graph(x)
    make = lambda seed: neighborhood_dataset(x, graph, 8, neighbors_per_point=3, seed=seed)
    first, again, other = make(0), make(0), make(1)
    epochs = [epoch(first), epoch(first)]
    for mine, theirs in zip(epochs, [epoch(again), epoch(again)]):
        for (c1, n1), (c2, n2) in zip(mine, theirs):
            np.testing.assert_array_equal(c1, c2)
            np.testing.assert_array_equal(n1, n2)
    flat = lambda e: np.concatenate([n for _, n in e])
    assert not np.array_equal(flat(epochs[0]), flat(epochs[1]))
    assert not np.array_equal(flat(epochs[0]), flat(epoch(other)))


def images(n=N, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 4, 3), dtype=np.uint8)


def batches(ds):
    return [(b["x"].numpy(), b["neighbors"].numpy()) for b in ds]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float16])
def test_storage_dtypes_become_float32_per_batch(dtype):
    stored = images().astype(dtype)
    graph = NeighborGraph.build(stored, k=K, verbose=0)
    ds = neighborhood_dataset(stored, graph, 8, neighbors_per_point=3)
    assert ds.element_spec["x"] == tf.TensorSpec((8, 4, 3), tf.float32)
    assert ds.element_spec["neighbors"] == tf.TensorSpec((8, 3, 4, 3), tf.float32)
    converted = tf.image.convert_image_dtype(stored, tf.float32).numpy()
    for centres, neighbors in batches(ds):
        rows = [np.flatnonzero((converted == c).all(axis=(1, 2)))[0] for c in centres]
        np.testing.assert_array_equal(centres, converted[rows])
        np.testing.assert_array_equal(neighbors[:, 0], centres)
        for row, drawn in zip(rows, neighbors[:, 1:]):
            listed = converted[graph.indices[row]]
            assert all((listed == d).all(axis=(1, 2)).any() for d in drawn)


def test_memmap_and_random_access_sources_give_the_same_batches(tmp_path):
    stored = images()
    np.save(tmp_path / "x.npy", stored)
    graph = NeighborGraph.build(stored, k=K, verbose=0)
    sources = [np.load(tmp_path / "x.npy", mmap_mode="r"), RandomAccess(stored),
               Feature(DictSource(stored), "image")]
    expected = batches(neighborhood_dataset(stored, graph, 8, neighbors_per_point=3, seed=3))
    for source in sources:
        got = batches(neighborhood_dataset(source, graph, 8, neighbors_per_point=3, seed=3))
        for (c1, n1), (c2, n2) in zip(expected, got):
            np.testing.assert_array_equal(c1, c2)
            np.testing.assert_array_equal(n1, n2)


def test_h5py_dataset(tmp_path):
    h5py = pytest.importorskip("h5py")
    stored = images()
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["images"] = stored
    with h5py.File(tmp_path / "x.h5", "r") as f:
        graph = NeighborGraph.build(f["images"], k=K, verbose=0)
        got = batches(neighborhood_dataset(f["images"], graph, 8, seed=2))
    expected = batches(neighborhood_dataset(stored, graph, 8, seed=2))
    np.testing.assert_array_equal(np.stack([c for c, _ in got]), np.stack([c for c, _ in expected]))
    np.testing.assert_array_equal(np.stack([n for _, n in got]), np.stack([n for _, n in expected]))


def test_tfds_data_source():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=N):
        source = tfds.data_source("mnist", split="train")
        mock = source.data_source  # tfds 4.9's mock __getitems__ misses self; read one by one
        mock.__getitems__ = lambda keys: [mock[key] for key in keys]
        x = Feature(source, "image")
        stored = np.stack([source[i]["image"] for i in range(N)])
        graph = NeighborGraph.build(x, k=K, verbose=0)
        assert graph.fingerprint == fingerprint(stored)
        converted = to_float(stored)
        for centres, neighbors in batches(neighborhood_dataset(x, graph, 8, seed=0)):
            assert centres.shape == (8, 28, 28, 1) and centres.dtype == np.float32
            assert all((converted == c).all(axis=(1, 2, 3)).any() for c in centres)
            np.testing.assert_array_equal(neighbors[:, 0], centres)


def test_uint8_and_its_float_version_share_a_graph():
    stored = images()
    as_floats = stored / np.float32(255)  # keras_nrae.datasets.load_images' scaling
    graph = NeighborGraph.build(stored, k=K, verbose=0)
    graph.check_data(as_floats)
    from_uint8 = batches(neighborhood_dataset(stored, graph, 8, seed=1))
    from_floats = batches(neighborhood_dataset(as_floats, graph, 8, seed=1))
    for (c1, n1), (c2, n2) in zip(from_uint8, from_floats):
        np.testing.assert_allclose(c1, c2, rtol=np.finfo(np.float32).eps)  # x * (1/255) vs x / 255: 1 ulp
        np.testing.assert_allclose(n1, n2, rtol=np.finfo(np.float32).eps)


def test_a_row_changed_after_the_graph_was_built_is_an_error(tmp_path):
    np.save(tmp_path / "x.npy", images())
    x = np.load(tmp_path / "x.npy", mmap_mode="r+")
    graph = NeighborGraph.build(x, k=K, verbose=0)
    ds = neighborhood_dataset(x, graph, 8, neighbors_per_point=2, shuffle=False)
    x[5, 1, 2] ^= 1  # after the dataset checked the fingerprint
    x.flush()
    with pytest.raises(tf.errors.InvalidArgumentError, match="Row 5 of x .*changed after the graph"):
        batches(ds)


def test_distribute_dataset():
    x = indexed_data()
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    ds = neighborhood_dataset(x, random_graph(x), 8, neighbors_per_point=2)
    batches = list(strategy.experimental_distribute_dataset(ds))
    assert len(batches) == N // 8
    assert batches[0]["neighbors"].shape == (8, 2, 2, 3)


def test_fit_end_to_end():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).random((64, 4, 4)).astype(np.float32)
    graph = NeighborGraph.build(x, k=4, verbose=0)
    ds = neighborhood_dataset(x, graph, batch_size=16, neighbors_per_point=3)
    encoder, decoder = mlp_autoencoder((4, 4), latent_dim=2, hidden=(8,))
    model = NeighborhoodReconstructionModel(encoder, decoder, order=1)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(ds, epochs=3, verbose=0)
    losses = history.history["loss"]
    assert len(losses) == 3 and np.all(np.isfinite(losses))
    assert losses[-1] < losses[0]


@pytest.mark.parametrize(
    "x, kwargs, error, match",
    [
        (indexed_data().astype(np.int16), {}, TypeError, "storage dtypes"),
        (indexed_data(n=N - 1), {}, ValueError, f"built on {N} points but x has {N - 1}"),
        (indexed_data() + 1, {}, ValueError, "different data"),
        (indexed_data(), {"neighbors_per_point": K + 2}, ValueError, "replace=True"),
        (indexed_data(), {"neighbors_per_point": K + 1, "include_center": False}, ValueError, "k=5"),
        (indexed_data(), {"batch_size": N + 1}, ValueError, "no batch"),
        (indexed_data(), {"batch_size": 0}, ValueError, "batch_size must be an integer >= 1"),
        (indexed_data(), {"neighbors_per_point": 0}, ValueError, "neighbors_per_point must"),
    ],
)
def test_bad_input(x, kwargs, error, match):
    graph = random_graph(indexed_data())
    kwargs = {"batch_size": 8, **kwargs}
    with pytest.raises(error, match=match):
        neighborhood_dataset(x, graph, **kwargs)


def test_graph_must_be_a_neighbor_graph():
    with pytest.raises(TypeError, match="NeighborGraph"):
        neighborhood_dataset(indexed_data(), np.zeros((N, K), np.int32), 8)


def test_data_module_is_a_deprecated_alias():
    """keras_nrae.data, the module's old name, still imports for one release, with a warning."""
    import importlib
    import sys

    import keras_nrae.pipeline

    sys.modules.pop("keras_nrae.data", None)
    with pytest.warns(DeprecationWarning, match="keras_nrae.pipeline"):
        data = importlib.import_module("keras_nrae.data")
    assert data.neighborhood_dataset is keras_nrae.pipeline.neighborhood_dataset
    assert data.__all__ == keras_nrae.pipeline.__all__ == ["neighborhood_dataset"]
