"""Each worker reads only its share: neighborhood_dataset split per worker before the read.

Two worker processes on localhost under MultiWorkerMirroredStrategy and one
process without a strategy run tests/_sharded_input_train.py together. Each
worker's batches are its slice of the one-process global batches, it reads only
the rows of that slice (counted by the source x), and NRAE-L / NRAE-Q trained
on that input end where one process does. `input_context` itself is checked in
this process with hand-made `tf.distribute.InputContext`s, 1 or 2 replicas per pipeline.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from keras_nrae import NeighborGraph, neighborhood_dataset
from tests._counting import CountingRows
from tests.test_multi_worker import _env, _free_ports, _load, _max_diff, _wait

SCRIPT = os.path.join(os.path.dirname(__file__), "_sharded_input_train.py")
WORKERS = 2


def _start_script(out, tf_config=None):
    return subprocess.Popen(
        [sys.executable, SCRIPT, str(out)], env=_env(tf_config),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{"workers": [worker 0, worker 1], "single": one process} results of _sharded_input_train."""
    tmp = tmp_path_factory.mktemp("sharded_input")
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(WORKERS)]}
    procs = [
        _start_script(tmp / f"worker{i}.json",
                      {"cluster": cluster, "task": {"type": "worker", "index": i}})
        for i in range(WORKERS)
    ] + [_start_script(tmp / "single.json")]
    for code, output in _wait(procs, timeout=600):
        assert code == 0, output[-3000:]
    return {
        "workers": [_load(tmp / f"worker{i}.json") for i in range(WORKERS)],
        "single": _load(tmp / "single.json"),
    }


def _slices(single_epoch, worker):
    """Worker `worker`'s slice of each one-process global batch, as MultiWorkerMirroredStrategy cuts it."""
    per_worker = len(single_epoch[0]) // WORKERS
    return [np.asarray(batch)[worker * per_worker : (worker + 1) * per_worker] for batch in single_epoch]


def _distinct_rows(batches):
    """Σ over batches of the number of distinct points a batch's neighbour slots hold (slot 0: centre)."""
    return sum(len(np.unique(b.reshape(-1, b.shape[-1]), axis=0)) for b in batches)


def test_each_worker_gets_its_slice_of_the_one_process_global_batches(runs):
    single = runs["single"]["epoch"]
    for index, worker in enumerate(runs["workers"]):
        assert worker["replicas"] == WORKERS
        expected = _slices(single, index)
        assert len(worker["epoch"]) == len(expected) == 16
        for got, want in zip(worker["epoch"], expected, strict=True):
            np.testing.assert_array_equal(got, want)  # bit-identical
        # fit's own split of a plain neighborhood_dataset: the same slices.
        for got, want in zip(worker["plain_epoch"], expected, strict=True):
            np.testing.assert_array_equal(got, want)


def test_each_worker_reads_only_the_rows_of_its_share(runs):
    single = runs["single"]
    for index, worker in enumerate(runs["workers"]):
        # Exactly the distinct rows of its slice of every global batch ...
        assert worker["rows_read"] == _distinct_rows(_slices(single["epoch"], index))
        # ... about 1/W of the rows one process reads (neighbours shared between
        # the two halves of a batch are read by both workers) ...
        assert 0.45 < worker["rows_read"] / single["rows_read"] < 0.56
        # ... where without the split each worker reads every row of every global batch.
        assert worker["plain_rows_read"] == single["rows_read"]
    assert sum(w["rows_read"] for w in runs["workers"]) >= single["rows_read"]


@pytest.mark.parametrize("kind", ["NRAE-L", "NRAE-Q"])
def test_training_on_the_shares_matches_one_process(runs, kind):
    first, second = (worker[kind] for worker in runs["workers"])
    assert _max_diff(first["weights"], second["weights"]) == 0.0
    single = runs["single"][kind]
    assert _max_diff(first["weights"], single["weights"]) < 1e-6
    np.testing.assert_allclose(first["losses"], single["losses"], rtol=1e-6)
    assert single["losses"][-1] < single["losses"][0]


@pytest.fixture(scope="module")
def small():
    data = np.random.default_rng(0).normal(size=(300, 3)).astype("float32")
    return data, NeighborGraph.build(data, k=5, verbose=0)


@pytest.mark.parametrize("pipelines, per_pipeline", [(1, 1), (2, 1), (2, 2), (1, 3), (3, 2)])
@pytest.mark.parametrize("replace", [False, True])
def test_input_context_yields_each_replicas_slice(small, pipelines, per_pipeline, replace):
    data, graph = small
    replicas, batch = pipelines * per_pipeline, 12
    kwargs = dict(neighbors_per_point=3, seed=3, replace=replace)
    x = CountingRows(data)
    one = list(neighborhood_dataset(x, graph, batch, **kwargs).as_numpy_iterator())
    x.reset()
    list(neighborhood_dataset(x, graph, batch, **kwargs))
    one_read = len(x.read_ids())
    b = batch // replicas
    for pipeline in range(pipelines):
        context = tf.distribute.InputContext(pipelines, pipeline, replicas)
        dataset = neighborhood_dataset(x, graph, batch, input_context=context, **kwargs)
        assert dataset.cardinality() == len(one) * per_pipeline
        x.reset()
        got = list(dataset.as_numpy_iterator())
        assert len(got) == len(one) * per_pipeline
        for step, global_batch in enumerate(one):
            for r in range(per_pipeline):
                replica = pipeline * per_pipeline + r
                for key in ("x", "neighbors"):
                    np.testing.assert_array_equal(
                        got[step * per_pipeline + r][key],
                        global_batch[key][replica * b : (replica + 1) * b],
                    )
        if per_pipeline == 1:
            assert len(x.read_ids()) == _distinct_rows(
                [g["neighbors"][pipeline * b : (pipeline + 1) * b] for g in one]
            )
            assert len(x.read_ids()) <= one_read / pipelines * 1.15


def test_input_context_needs_equal_shares(small):
    data, graph = small
    with pytest.raises(ValueError, match="divisible by the 4 replicas"):
        neighborhood_dataset(data, graph, 10, input_context=tf.distribute.InputContext(2, 0, 4))
    with pytest.raises(ValueError, match="needs drop_remainder=True"):
        neighborhood_dataset(data, graph, 8, drop_remainder=False,
                             input_context=tf.distribute.InputContext(2, 0, 2))
