"""keras_nrae.graph_shards: a graph built by several jobs, one shard each, against one process.

Two processes on localhost (tests/_graph_shard_worker.py), each one worker of a
2-worker TF_CONFIG, build their shards from one shared .npy memmap; the merged
graph is compared with `NeighborGraph.build` in this process and with brute force.
The checks of `merge_shards`, the environment detection and the reads of x run
in this process.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_nrae import FileFormatError
from keras_nrae.graph import NeighborGraph
from keras_nrae.graph_shards import (
    build_shard,
    merge_shards,
    shard_from_environment,
    shard_paths,
    shard_rows,
)
from tests._counting import CountingRows
from tests._doc_blocks import python_blocks
from tests._numerics import assert_close
from tests.test_graph import brute_force, clustered_data, recall

WORKER = os.path.join(os.path.dirname(__file__), "_graph_shard_worker.py")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 300


@pytest.fixture(scope="module")
def two_jobs(tmp_path_factory):
    """{"x": the shared data (3000, 64), "dir": where both workers wrote their shards}."""
    tmp = tmp_path_factory.mktemp("graph_shards")
    x = clustered_data(dim=64)
    np.save(tmp / "x.npy", x)
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}  # read for the shard only: nothing listens
    procs = []
    for index in range(2):
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT,
                   TF_CONFIG=json.dumps(tf_config))
        procs.append(subprocess.Popen(
            [sys.executable, WORKER, str(tmp / "x.npy"), str(tmp)], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        ))
    try:
        outcomes = [(p.wait(timeout=TIMEOUT_S), p.stdout.read()) for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail(f"a shard job did not finish within {TIMEOUT_S} s; both were killed")
    for code, output in outcomes:
        assert code == 0, output[-3000:]
    return {"x": np.load(tmp / "x.npy", mmap_mode="r"), "dir": tmp}


def test_two_processes_build_the_exact_graph_of_one(two_jobs):
    x, tmp = two_jobs["x"], two_jobs["dir"]
    paths = shard_paths(str(tmp / "exact-{shard}-of-{num_shards}.npz"), 2)
    merged = merge_shards(paths, str(tmp / "exact.npz"), x=x, verbose=0)
    one = NeighborGraph.build(x, k=7, method="exact", verbose=0)
    np.testing.assert_array_equal(merged.indices, one.indices)
    assert_close(merged.distances, one.distances)
    np.testing.assert_array_equal(merged.checksums, one.checksums)
    assert (merged.method, merged.metric, merged.fingerprint) == ("exact", "euclidean", one.fingerprint)
    truth, distances = brute_force(np.asarray(x), 7)
    np.testing.assert_array_equal(merged.indices, truth)
    assert_close(merged.distances, distances)
    # The merged file is a graph file, memory-mapped as NeighborGraph.load maps it.
    loaded = NeighborGraph.load(str(tmp / "exact.npz"), x=x, mmap_mode="r")
    assert isinstance(loaded.indices.base, np.memmap) or isinstance(loaded.indices, np.memmap)
    np.testing.assert_array_equal(loaded.indices, one.indices)


def test_two_processes_build_a_scann_graph_of_the_recall_of_one(two_jobs):
    x, tmp = two_jobs["x"], two_jobs["dir"]
    merged = merge_shards(shard_paths(str(tmp / "scann-{shard}-of-{num_shards}.npz"), 2),
                          str(tmp / "scann.npz"), x=x, verbose=0)
    one = NeighborGraph.build(x, k=10, method="scann", verbose=0)
    truth, _ = brute_force(np.asarray(x), 10)
    assert merged.method == "scann"
    sharded, single = recall(merged.indices, truth), recall(one.indices, truth)
    # Measured: both 0.998-1.0 over repeated builds. ScaNN's training is not
    # bit-reproducible, so the two are compared within 0.02, not for equality.
    assert sharded >= 0.95, (sharded, single)
    assert sharded == pytest.approx(single, abs=0.02), (sharded, single)
    listed = np.linalg.norm(x[:, None] - x[merged.indices], axis=-1)
    assert_close(merged.distances, listed)
    assert np.all(merged.indices != np.arange(len(x))[:, None])


def random_x(n=120, dim=6, seed=0):
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def build_all(x, k, pattern, num_shards, **kwargs):
    return [build_shard(x, k, pattern, i, num_shards, verbose=0, **kwargs) for i in range(num_shards)]


@pytest.mark.parametrize("num_shards", [1, 3, 7])
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_shards_in_one_process_equal_build(tmp_path, num_shards, metric):
    x = random_x()
    paths = build_all(x, 5, str(tmp_path / "s{shard}.npz"), num_shards, metric=metric)
    assert paths == shard_paths(str(tmp_path / "s{shard}.npz"), num_shards)
    merged = merge_shards(paths[::-1], str(tmp_path / "g.npz"), x=x, verbose=0)
    one = NeighborGraph.build(x, k=5, metric=metric, verbose=0)
    np.testing.assert_array_equal(merged.indices, one.indices)
    assert_close(merged.distances, one.distances)
    assert merged.metric == metric


def test_shard_rows_cover_every_row_once():
    for n, shards in [(10, 1), (10, 3), (10, 10), (1001, 7)]:
        ranges = [shard_rows(n, i, shards) for i in range(shards)]
        assert np.array_equal(np.concatenate([np.arange(a, b) for a, b in ranges]), np.arange(n))
        sizes = [b - a for a, b in ranges]
        assert max(sizes) - min(sizes) <= 1
    with pytest.raises(ValueError, match="exceeds the 4 points"):
        shard_rows(4, 0, 5)
    with pytest.raises(ValueError, match="shard must be in"):
        shard_rows(4, 2, 2)


def test_with_features_a_shard_reads_only_its_rows_of_x(tmp_path):
    data = random_x(n=200, dim=12)
    features = data[:, :3].copy()
    x = CountingRows(data)
    build_shard(x, 4, str(tmp_path / "s1.npz"), 1, 4, features=features, verbose=0)
    start, stop = shard_rows(200, 1, 4)
    read = np.unique(x.read_ids())
    outside = np.setdiff1d(read, np.arange(start, stop))
    assert len(outside) <= 65  # x[0] and the 64 rows of the fingerprint
    assert set(range(start, stop)) <= set(read)
    paths = build_all(data, 4, str(tmp_path / "s{shard}.npz"), 4, features=features)
    merged = merge_shards(paths, str(tmp_path / "g.npz"), x=data, verbose=0)
    one = NeighborGraph.build(data, k=4, features=features, verbose=0)
    np.testing.assert_array_equal(merged.indices, one.indices)
    np.testing.assert_array_equal(merged.checksums, one.checksums)


def test_every_merge_writes_the_same_bytes(tmp_path):
    paths = build_all(random_x(), 3, str(tmp_path / "s{shard}.npz"), 2)
    merge_shards(paths, str(tmp_path / "a.npz"), verbose=0)
    merge_shards(paths[::-1], str(tmp_path / "b.npz"), verbose=0)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


@pytest.fixture
def shards(tmp_path):
    return build_all(random_x(), 4, str(tmp_path / "s{shard}-of-{num_shards}.npz"), 3)


def test_a_missing_shard_is_named(tmp_path, shards):
    with pytest.raises(ValueError, match=r"Shard 1 of 3 is missing \(got 2 shard files\)"):
        merge_shards([shards[0], shards[2]], str(tmp_path / "g.npz"))
    with pytest.raises(FileNotFoundError, match="1 of the 3 shard files do not exist"):
        merge_shards(shards[:2] + [str(tmp_path / "absent.npz")], str(tmp_path / "g.npz"))
    assert not (tmp_path / "g.npz").exists()


def test_a_shard_twice_overlaps(tmp_path, shards):
    with pytest.raises(ValueError, match=r"both shard 1 of 3: their rows 40:80 overlap"):
        merge_shards([shards[0], shards[1], shards[1], shards[2]], str(tmp_path / "g.npz"))


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(k=5), "has k=4 but .* has k=5"),
        (dict(metric="cosine"), "has metric='euclidean' but .* has metric='cosine'"),
        (dict(x=random_x(seed=1)), "has fingerprint="),
        (dict(num_shards=2), "has num_shards=3 but .* has num_shards=2"),
    ],
    ids=["k", "metric", "other-data", "num_shards"],
)
def test_shards_of_different_builds_are_refused(tmp_path, shards, change, match):
    kwargs = dict(x=random_x(), k=4, num_shards=3, metric="euclidean") | change
    other = build_shard(kwargs.pop("x"), kwargs.pop("k"), str(tmp_path / "other.npz"), 1,
                        verbose=0, **kwargs)
    with pytest.raises(ValueError, match=match):
        merge_shards([shards[0], other, shards[2]], str(tmp_path / "g.npz"))


def test_files_that_are_not_shards_are_refused(tmp_path, shards):
    graph = tmp_path / "graph.npz"
    NeighborGraph.build(random_x(), k=4, verbose=0).save(str(graph))
    with pytest.raises(FileFormatError, match="graph.npz is not a NeighborGraph shard file"):
        merge_shards([shards[0], str(graph), shards[2]], str(tmp_path / "g.npz"))
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(FileFormatError, match="empty"):
        merge_shards([str(tmp_path / "empty.npz")], str(tmp_path / "g.npz"))
    with pytest.raises(TypeError, match="list of shard files"):
        merge_shards(shards[0], str(tmp_path / "g.npz"))


def test_a_failed_merge_keeps_the_file_out_held(tmp_path, shards):
    out = tmp_path / "g.npz"
    merge_shards(shards, str(out), verbose=0)
    before = out.read_bytes()
    with pytest.raises(ValueError):
        merge_shards(shards[:2], str(out))
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [os.path.basename(p) for p in shards] + ["g.npz"]
    )


def test_merge_waits_for_shards_still_being_built(tmp_path, shards):
    import threading

    late = tmp_path / "late.npz"
    os.rename(shards[2], late)
    threading.Timer(1.0, os.rename, (late, shards[2])).start()
    graph = merge_shards(shards, str(tmp_path / "g.npz"), wait_s=30, verbose=0)
    assert graph.num_points == 120


def tf_config(kind, index, chiefs=0, workers=2):
    cluster = {"worker": [f"w{i}:1" for i in range(workers)]}
    if chiefs:
        cluster["chief"] = ["c:1"]
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}})}


@pytest.mark.parametrize(
    "environ, num_shards, expected",
    [
        (tf_config("worker", 1), None, (1, 2)),
        (tf_config("chief", 0, chiefs=1), None, (0, 3)),
        (tf_config("worker", 1, chiefs=1), None, (2, 3)),
        ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4"}, None, (3, 4)),
        ({"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_MIN": "1",
          "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_PROCID": "0", "SLURM_NTASKS": "1"}, 4, (3, 4)),
        ({"JOB_COMPLETION_INDEX": "5"}, 8, (5, 8)),
        ({"SLURM_PROCID": "2", "SLURM_NTASKS": "3"}, None, (2, 3)),
    ],
    ids=["tf-worker", "tf-chief", "tf-worker-after-chief", "slurm-array", "slurm-array-from-1",
         "kubernetes", "srun"],
)
def test_shard_from_environment(environ, num_shards, expected):
    assert shard_from_environment(num_shards, environ) == expected


@pytest.mark.parametrize(
    "environ, num_shards, match",
    [
        ({}, None, "none of TF_CONFIG, SLURM_ARRAY_TASK_ID"),
        ({"JOB_COMPLETION_INDEX": "1"}, None, "pass num_shards"),
        ({"JOB_COMPLETION_INDEX": "8"}, 8, "shard must be in"),
        (tf_config("evaluator", 0), None, "only the chief and the workers"),
        (tf_config("worker", 0), 3, "num_shards=3, but the environment describes 2"),
        ({"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_STEP": "2",
          "SLURM_ARRAY_TASK_COUNT": "4"}, None, "steps by 2"),
    ],
    ids=["nothing", "kubernetes-without-count", "index-too-large", "evaluator", "count-differs",
         "slurm-step"],
)
def test_shard_from_environment_errors(environ, num_shards, match):
    with pytest.raises(ValueError, match=match):
        shard_from_environment(num_shards, environ)


def test_build_shard_takes_its_shard_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    path = build_shard(random_x(), 3, str(tmp_path / "s{shard}-of-{num_shards}.npz"),
                       num_shards=2, verbose=0)
    assert path == str(tmp_path / "s1-of-2.npz")
    with pytest.raises(ValueError, match="needs num_shards"):
        build_shard(random_x(), 3, str(tmp_path / "x.npz"), shard=0)


def test_a_shard_listing_points_outside_the_data_is_refused(tmp_path, shards):
    with np.load(shards[1]) as f:
        arrays = dict(f)
    arrays["indices"][3, 0] = 120
    with open(shards[1], "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(ValueError, match="row 43 lists a neighbour outside 0..119"):
        merge_shards(shards, str(tmp_path / "g.npz"))


def test_the_guide_example_as_a_slurm_array(tmp_path, monkeypatch):
    """docs/guides/data.md's block: its step 1 as the 4 jobs of a Slurm array, one after another, then step 2."""
    page = Path(__file__).resolve().parents[1] / "docs" / "guides" / "data.md"
    (code,) = [code for _, code, _ in python_blocks(page) if "build_shard(" in code]
    step_1, step_2 = code.split("# 2.")
    monkeypatch.chdir(tmp_path)
    x = np.random.default_rng(0).integers(0, 256, (50, 6, 6, 3), dtype=np.uint8)
    np.save(tmp_path / "photos.npy", x)
    for var in ("TF_CONFIG", "JOB_COMPLETION_INDEX", "SLURM_PROCID", "SLURM_NTASKS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    for task in range(4):
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", str(task))
        exec(compile(step_1, str(page), "exec"), {})
    assert "wait_s=3600" in step_2
    namespace = {}
    exec(compile(step_1.split("# 1.")[0] + "# 2." + step_2.replace("wait_s=3600", "wait_s=0"), str(page), "exec"),
         namespace)
    one = NeighborGraph.build(x, k=10, verbose=0)
    np.testing.assert_array_equal(namespace["graph"].indices, one.indices)
    assert len(list((tmp_path / "graph-shards").iterdir())) == 4
