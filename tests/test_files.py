"""Every file keras_nrae reads fails clearly; every file it writes is replaced atomically."""

import os
import re
from pathlib import Path

import pytest

import keras_nrae
from keras_nrae import FileFormatError
from keras_nrae._files import atomic_open


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
