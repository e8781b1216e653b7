"""Every file keras_nrae reads fails clearly; every file it writes is replaced atomically."""

import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

import keras_nrae
from keras_nrae import FileFormatError
from keras_nrae._files import atomic_open
from keras_nrae.graph import FORMAT_VERSION, NeighborGraph


def truncate(path: Path) -> None:
    """Cut the file at path to half its bytes."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def raises(error, path, *words):
    """pytest.raises(error) whose message names path and each of words."""
    pattern = "".join(f"(?=.*{re.escape(str(word))})" for word in (str(path), *words))
    return pytest.raises(error, match=re.compile(pattern, re.S))


def test_file_format_error_is_public_and_a_value_error():
    assert keras_nrae.FileFormatError is FileFormatError and issubclass(FileFormatError, ValueError)


# NeighborGraph .npz


@pytest.fixture
def data():
    return np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)


@pytest.fixture
def graph_path(tmp_path, data):
    path = tmp_path / "graph.npz"
    NeighborGraph.build(data, k=3, verbose=0).save(str(path))
    return path


@pytest.mark.parametrize("mmap_mode", [None, "r"])
def test_graph_round_trip_records_the_format_version(graph_path, data, mmap_mode):
    with np.load(graph_path) as f:
        assert f["format_version"] == FORMAT_VERSION == 1
    assert NeighborGraph.load(str(graph_path), x=data, mmap_mode=mmap_mode).k == 3


def test_graph_without_a_format_version_still_loads(graph_path, data):
    with np.load(graph_path) as f:
        old = {key: f[key] for key in f.files if key != "format_version"}
    np.savez(graph_path, **old)
    assert NeighborGraph.load(str(graph_path), x=data).k == 3


def test_graph_of_another_version(graph_path):
    with np.load(graph_path) as f:
        arrays_ = dict(f)
    np.savez(graph_path, **{**arrays_, "format_version": np.int64(2)})
    with raises(FileFormatError, graph_path, "format version 2", "reads version 1", "NeighborGraph.build"):
        NeighborGraph.load(str(graph_path))


def test_missing_graph(tmp_path):
    path = tmp_path / "nothing.npz"
    with raises(FileNotFoundError, path, "No such file", "NeighborGraph.build"):
        NeighborGraph.load(str(path))


def test_empty_graph(tmp_path):
    path = tmp_path / "graph.npz"
    path.touch()
    with raises(FileFormatError, path, "is empty (0 bytes)", "graph.save(path)"):
        NeighborGraph.load(str(path))


@pytest.mark.parametrize("mmap_mode", [None, "r"])
def test_truncated_graph(graph_path, mmap_mode):
    truncate(graph_path)
    with raises(FileFormatError, graph_path, "truncated or corrupt", "not a readable zip archive", "NeighborGraph.build"):
        NeighborGraph.load(str(graph_path), mmap_mode=mmap_mode)


def test_graph_with_a_corrupt_byte(graph_path):
    raw = bytearray(graph_path.read_bytes())
    raw[len(raw) // 4] ^= 0xFF  # inside indices.npy's data: its CRC no longer matches
    graph_path.write_bytes(bytes(raw))
    with raises(FileFormatError, graph_path, "truncated or corrupt", "CRC") as info:
        NeighborGraph.load(str(graph_path))
    assert isinstance(info.value.__cause__, zipfile.BadZipFile)


def test_npz_that_is_not_a_graph(tmp_path):
    path = tmp_path / "graph.npz"
    np.savez(path, a=np.zeros(2), b=np.ones(3))
    with raises(FileFormatError, path, "is not a NeighborGraph file", "['a', 'b']", "'indices'", "graph.save"):
        NeighborGraph.load(str(path))


@pytest.mark.parametrize("kind", ["text", "npy", "folder"])
def test_graph_path_of_another_kind(tmp_path, kind):
    path = tmp_path / "graph.npz"
    if kind == "text":
        path.write_text("indices,distances\n1,2\n")
        words = ["truncated or corrupt", "not a NeighborGraph file", "not a readable zip archive"]
    elif kind == "npy":
        with open(path, "wb") as f:
            np.save(f, np.zeros((4, 2)))
        words = ["is a .npy array, not an .npz archive"]
    else:
        path.mkdir()
        words = ["it is a folder"]
    with raises(FileFormatError, path, *words):
        NeighborGraph.load(str(path))


def test_compressed_graph_refuses_memory_mapping(graph_path, data):
    with np.load(graph_path) as f:
        arrays_ = dict(f)
    np.savez_compressed(graph_path, **arrays_)
    assert NeighborGraph.load(str(graph_path), x=data).k == 3
    with raises(FileFormatError, graph_path, "is compressed", "without mmap_mode"):
        NeighborGraph.load(str(graph_path), mmap_mode="r")


def test_interrupted_graph_save_keeps_the_previous_file(graph_path, data, monkeypatch):
    before = graph_path.read_bytes()

    def fail_half_way(f, **arrays_):
        f.write(before[:100])
        raise OSError("No space left on device")

    monkeypatch.setattr(np, "savez", fail_half_way)
    with pytest.raises(OSError, match="No space left"):
        NeighborGraph.build(data[::-1].copy(), k=2, verbose=0).save(str(graph_path))
    assert graph_path.read_bytes() == before
    assert os.listdir(graph_path.parent) == ["graph.npz"]


# whole-file writes


def test_failed_atomic_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "image_benchmark.csv"
    path.write_text("model,mse\nAE,1.0\n")
    before = path.read_bytes()
    with pytest.raises(RuntimeError):
        with atomic_open(path) as f:
            f.write("model,mse\nhalf")
            raise RuntimeError("killed")
    assert path.read_bytes() == before and os.listdir(tmp_path) == [path.name]


def test_atomic_rename_failure_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "train.json"
    path.write_text("{}")

    def fail(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="rename failed"):
        with atomic_open(path) as f:
            f.write('{"new": 1}')
    assert path.read_text() == "{}" and os.listdir(tmp_path) == ["train.json"]


def test_a_file_never_replaces_a_folder(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep").write_text("x")
    with pytest.raises(IsADirectoryError):
        with atomic_open(tmp_path / "out") as f:
            f.write("y")
    assert os.listdir(tmp_path) == ["out"] and (tmp_path / "out" / "keep").read_text() == "x"
