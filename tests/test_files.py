"""Every file keras_nrae reads fails clearly; every file it writes is replaced atomically."""

import gzip
import json
import os
import re
import shutil
import struct
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_nrae
from keras_nrae import FileFormatError, arrays, datasets, load_model, load_saved_model
from keras_nrae._files import atomic_open, atomic_path
from keras_nrae.architectures import mlp_autoencoder
from keras_nrae.export import export_saved_model
from keras_nrae.graph import FORMAT_VERSION, NeighborGraph
from paper.table1.protocol import SMOKE_CONFIG
from paper.table1.store import CellStore


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


# .npy


def test_load_npy_round_trip(tmp_path):
    x = np.arange(12, dtype=np.uint8).reshape(4, 3)
    np.save(tmp_path / "x.npy", x)
    loaded = arrays.load_npy(str(tmp_path / "x.npy"))
    assert isinstance(loaded, np.memmap)
    np.testing.assert_array_equal(loaded, x)


@pytest.mark.parametrize("mmap_mode", [None, "r"])
def test_truncated_npy(tmp_path, mmap_mode):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((100, 8)))
    truncate(path)
    with raises(FileFormatError, path, "truncated or corrupt", "not a .npy file", "write_npy"):
        arrays.load_npy(str(path), mmap_mode)


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "npz"])
def test_npy_that_is_not_one(tmp_path, kind):
    path = tmp_path / "x.npy"
    error, words = FileFormatError, []
    if kind == "missing":
        error, words = FileNotFoundError, ["No such file"]
    elif kind == "empty":
        path.touch()
        words = ["is empty"]
    elif kind == "text":
        path.write_text("1 2 3\n")
        words = ["truncated or corrupt", "not a .npy file", "no .npy header"]
    else:
        with open(path, "wb") as f:
            np.savez(f, a=np.zeros(2))
        words = ["is not a .npy file", "it is a zip archive"]
    with raises(error, path, *words):
        arrays.load_npy(str(path))


def test_failed_write_npy_keeps_the_previous_file(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.ones((3, 2), np.uint8))
    before = path.read_bytes()
    batches = [np.zeros((2, 2), np.uint8), np.zeros((2, 5), np.uint8)]
    with pytest.raises(ValueError, match="Batch of shape"):
        arrays.write_npy(str(path), batches, num_rows=4)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["x.npy"]


# image .npz and IDX files (datasets)


@pytest.mark.parametrize("kind", ["empty", "truncated", "other arrays", "npy"])
def test_image_npz_that_does_not_load(tmp_path, kind):
    path = tmp_path / "tiny.npz"
    np.savez(path, x_train=np.zeros((40, 6, 6), np.uint8), x_test=np.zeros((4, 6, 6), np.uint8))
    words = {
        "empty": ["is empty"], "truncated": ["truncated or corrupt"],
        "other arrays": ["is not an image .npz file", "['x_train'] but no 'x_test'"],
        "npy": ["is a .npy array"],
    }[kind]
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        truncate(path)
    elif kind == "other arrays":
        np.savez(path, x_train=np.zeros((4, 6, 6), np.uint8))
    else:
        with open(path, "wb") as f:
            np.save(f, np.zeros((4, 6, 6), np.uint8))
    with raises(FileFormatError, path, *words, "np.savez(path, x_train=..., x_test=...)"):
        datasets.load_images(str(path), "test")


def _idx(pixels: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, pixels.ndim]) + struct.pack(f">{pixels.ndim}I", *pixels.shape) + pixels.tobytes()


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_truncated_idx(tmp_path, name):
    path = tmp_path / name
    raw = _idx(np.random.default_rng(0).integers(0, 256, (20, 5, 5), dtype=np.uint8))
    path.write_bytes(gzip.compress(raw) if name.endswith(".gz") else raw)
    truncate(path)
    with raises(FileFormatError, path, "truncated or corrupt", "not an IDX file", "download it again"):
        datasets.read_idx(path)


def test_empty_and_missing_idx(tmp_path):
    path = tmp_path / "images-idx3-ubyte.gz"
    with raises(FileNotFoundError, path, "No such file"):
        datasets.read_idx(path)
    path.touch()
    with raises(FileFormatError, path, "is empty"):
        datasets.read_idx(path)


# .keras files


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    encoder, decoder = mlp_autoencoder((2, 3), 2, hidden=(4,))
    return keras_nrae.NeighborhoodReconstructionModel(encoder, decoder)


def test_load_model_round_trip(tmp_path, model):
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    x = np.random.default_rng(0).uniform(size=(3, 2, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded.decoder(loaded.encoder(x)), model.decoder(model.encoder(x)), atol=1e-6)


@pytest.mark.parametrize("kind", ["missing", "empty", "truncated", "text", "npz", "folder"])
def test_keras_file_that_does_not_load(tmp_path, model, kind):
    path = tmp_path / "m.keras"
    error, words = FileFormatError, ["truncated or corrupt", "not a .keras model file"]
    if kind == "missing":
        error, words = FileNotFoundError, ["No such file"]
    elif kind == "empty":
        path.touch()
        words = ["is empty"]
    elif kind == "truncated":
        model.save(path)
        truncate(path)
        words.append("not a readable zip archive")
    elif kind == "text":
        path.write_text("{}")
    elif kind == "npz":
        with open(path, "wb") as f:
            np.savez(f, a=np.zeros(2))
        words.append("config.json")
    else:
        path.mkdir()
        words = ["it is a folder"]
    with raises(error, path, *words, "model.save(path)"):
        load_model(path)


def test_failed_model_save_keeps_the_previous_file(tmp_path, model, monkeypatch):
    path = tmp_path / "m.keras"
    model.save(path)
    before = path.read_bytes()
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(path) as temporary:
            assert temporary.endswith(".keras") and Path(temporary).parent == tmp_path
            model.save(temporary)
            raise KeyboardInterrupt  # killed after writing, before the rename
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.keras"]


# SavedModel folders


def snapshot(folder: Path) -> dict:
    """Every file under folder (relative path -> bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def export(tmp_path_factory, model):
    path = tmp_path_factory.mktemp("export") / "nrae"
    export_saved_model(model, path)
    return path


def test_load_saved_model_round_trip(export, model):
    x = np.random.default_rng(0).uniform(size=(3, 2, 3)).astype(np.float32)
    loaded = load_saved_model(export)  # kept: its functions need its variables alive
    np.testing.assert_allclose(loaded.reconstruct(x), model.decoder(model.encoder(x)), atol=1e-6)


@pytest.mark.parametrize("kind", ["missing", "file", "empty", "truncated graph", "truncated weights"])
def test_saved_model_that_does_not_load(tmp_path, export, kind):
    path = tmp_path / "nrae"
    error, words = FileFormatError, ["truncated or corrupt", "not a SavedModel folder"]
    if kind == "missing":
        error, words = FileNotFoundError, ["No such folder"]
    elif kind == "file":
        path.write_bytes(b"model")
        words = ["it is a file"]
    elif kind == "empty":
        path.mkdir()
        words = ["is empty (no files)"]
    else:
        shutil.copytree(export, path)
        truncate(path / "saved_model.pb" if kind == "truncated graph"
                 else path / "variables" / "variables.data-00000-of-00001")
    with raises(error, path, *words, "export_saved_model(model, path)"):
        load_saved_model(path)


def test_interrupted_export_keeps_the_previous_saved_model(tmp_path, model, monkeypatch):
    path = tmp_path / "nrae"
    export_saved_model(model, path)
    before = snapshot(path)
    archive = type(keras.export.ExportArchive())  # the backend's class
    write_out = archive.write_out

    def fail_after_writing(self, filepath, **kwargs):
        write_out(self, filepath, **kwargs)
        raise OSError("killed")

    monkeypatch.setattr(archive, "write_out", fail_after_writing)
    with pytest.raises(OSError, match="killed"):
        export_saved_model(model, path)
    assert snapshot(path) == before and os.listdir(tmp_path) == ["nrae"]
    monkeypatch.undo()
    export_saved_model(model, path)  # an export replaces an earlier one
    assert os.listdir(tmp_path) == ["nrae"] and "reconstruct" in load_saved_model(path).signatures


def test_export_refuses_to_replace_a_folder_that_is_not_a_saved_model(tmp_path, model):
    (tmp_path / "notes.txt").write_text("keep me")
    with raises(FileExistsError, tmp_path, "no SavedModel", "new folder"):
        export_saved_model(model, tmp_path)
    assert os.listdir(tmp_path) == ["notes.txt"]


# the benchmark harness's cells.jsonl


def _cells(path: Path, *cells) -> CellStore:
    store = CellStore(path, SMOKE_CONFIG)
    for key, value in cells:
        store.put(key, value)
    return store


def test_torn_last_cell_is_cut_with_a_warning(tmp_path):
    path = tmp_path / "cells.jsonl"
    _cells(path, ("row/a", 1), ("row/b", 2))
    complete = path.read_bytes()
    path.write_bytes(complete + b'{"config": "Bench')  # killed while writing line 3
    with pytest.warns(UserWarning, match=re.escape(f"{path}, line 3, is incomplete")):
        store = _cells(path)
    assert store.values == {"row/a": 1, "row/b": 2} and path.read_bytes() == complete
    _cells(path, ("row/c", 3))
    assert _cells(path).values == {"row/a": 1, "row/b": 2, "row/c": 3}


@pytest.mark.parametrize("bad", [b"{not json", b"[1, 2]", b'{"key": "row/x"}', b"\xff\xfe"])
def test_corrupt_cell_in_the_middle_names_file_and_line(tmp_path, bad):
    path = tmp_path / "cells.jsonl"
    _cells(path, ("row/a", 1), ("row/b", 2))
    first, second, _ = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join([first, bad, second, b""]))
    with raises(FileFormatError, path, "line 2, is not a benchmark cell", "delete that line"):
        _cells(path)


def test_cells_file_of_another_kind(tmp_path):
    path = tmp_path / "cells.jsonl"
    path.write_text("dataset,model,mse\nmnist,AE,0.01\n")
    with raises(FileFormatError, path, "line 1, is not a benchmark cell"):
        _cells(path)


def test_empty_cells_file_is_no_cells(tmp_path):
    (tmp_path / "cells.jsonl").touch()
    assert _cells(tmp_path / "cells.jsonl").values == {}


def test_appended_cells_are_whole_lines(tmp_path):
    path = tmp_path / "cells.jsonl"
    _cells(path, ("row/a", [1.5]), ("selection/b", {"k": 3}))
    lines = path.read_text().splitlines(keepends=True)
    assert len(lines) == 2 and all(line.endswith("\n") and json.loads(line) for line in lines)


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


def test_records_read_back_what_was_appended_and_a_missing_file_has_none(tmp_path):
    from keras_nrae.records import append_record, read_records

    path = tmp_path / "runs.jsonl"
    assert read_records(path, ("key",), "run") == []
    append_record(path, {"key": "a", "mse": 0.5, "extra": 1})
    append_record(path, {"key": "b", "mse": 0.25})
    assert read_records(path, ("key", "mse"), "run") == [{"key": "a", "mse": 0.5}, {"key": "b", "mse": 0.25}]
    with raises(FileFormatError, path, "line 2, is not a run", "KeyError"):
        read_records(path, ("key", "extra"), "run")
