"""The keras-nrae command: parsing, wiring to the experiments, train + export, clear data errors."""

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_nrae import cli


def test_help_lists_the_three_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("demo", "train", "benchmark"):
        assert command in out



def test_version_is_the_package_version_and_the_installed_metadata(capsys):
    import importlib.metadata
    import tomllib

    import keras_nrae

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"keras-nrae {keras_nrae.__version__}"
    assert re.fullmatch(r"\d+\.\d+\.\d+", keras_nrae.__version__)
    assert importlib.metadata.version("keras-nrae") == keras_nrae.__version__
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    assert "version" not in project and project["dynamic"] == ["version"]  # defined once, in _version.py


def test_the_changelog_dates_this_version():
    import keras_nrae

    changelog = (Path(__file__).resolve().parents[1] / "CHANGELOG.md").read_text()
    released = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$", changelog, re.M)
    assert released and released[0][0] == keras_nrae.__version__, released[:1]
    assert changelog.index("## [Unreleased]") < changelog.index(f"## [{keras_nrae.__version__}]")

def test_unknown_command_and_bad_options_are_refused(capsys):
    for argv in (["fly"], ["demo", "--epochs", "0"], ["train", "--dataset", "mnist"], ["demo", "--colour"]):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        assert exit_info.value.code == 2
    assert "unrecognized arguments: --colour" in capsys.readouterr().err


def test_demo_passes_its_options_and_reports_the_verdict(tmp_path, monkeypatch, capsys):
    from keras_nrae import demo

    calls = []

    def fake_denoising(out_dir, epochs, seed, verbose):
        calls.append((out_dir, epochs, seed, verbose))
        return {
            "AE": {"distance_to_true_curve": 0.2},
            "NRAE-L": {"distance_to_true_curve": 0.1},
            "NRAE-Q": {"distance_to_true_curve": 0.15},
        }

    monkeypatch.setattr(demo, "denoising", fake_denoising)
    out = str(tmp_path / "demo")
    assert cli.main(["demo", "--out", out, "--epochs", "7", "--seed", "3", "--verbose", "0"]) == 0
    assert calls == [(out, 7, 3, 0)]
    printed = capsys.readouterr().out
    assert "NRAE-L  distance_to_true_curve=0.1000" in printed
    assert "NRAE-L and NRAE-Q below AE: yes" in printed


def test_benchmark_says_where_the_harness_moved_and_runs_nothing(capsys):
    assert cli.main(["benchmark", "mnist", "--seeds", "0", "1", "--smoke"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "keras-nrae benchmark: error:" in captured.err and "moved" in captured.err
    assert "python -m paper.table1 mnist --seeds 0 1 --smoke" in captured.err
    assert cli.main(["benchmark"]) == 2
    assert "python -m paper.table1 <args>" in capsys.readouterr().err


def _tiny_npz(path, seed=0):
    rng = np.random.default_rng(seed)
    np.savez(
        path,
        x_train=rng.integers(0, 256, (40, 6, 6), dtype=np.uint8),
        x_test=rng.integers(0, 256, (10, 6, 6), dtype=np.uint8),
    )


def test_train_exports_a_model_that_reproduces_its_test_mse(tmp_path):
    import tensorflow as tf

    data = tmp_path / "tiny.npz"
    _tiny_npz(data)
    out = tmp_path / "run"
    argv = ["train", "--dataset", str(data), "--model", "nrae-l", "--out", str(out),
            "--epochs", "2", "--batch-size", "8", "--latent-dim", "2", "--hidden", "8",
            "--k", "3", "--verbose", "0"]
    assert cli.main(argv) == 0
    summary = json.loads((out / "train.json").read_text())
    assert summary["model"] == "NRAE-L" and summary["train_images"] == 40
    # The settings are the Recipe that `train` trained, field for field.
    from keras_nrae.recipe import Recipe

    assert summary["settings"] == json.loads(json.dumps(dataclasses.asdict(Recipe(
        model="NRAE-L", latent_dim=2, hidden=(8,), epochs=2, batch_size=8, k=3, progress_epochs=2,
    ))))
    # Independent recomputation of the reported metric from the exported SavedModel.
    x_test = np.load(data)["x_test"].astype("float32")[..., None] / 255
    reconstruct = tf.saved_model.load(str(out / "saved_model")).signatures["reconstruct"]
    x_hat = next(iter(reconstruct(tf.constant(x_test)).values())).numpy()
    assert summary["test_reconstruction_mse"] == pytest.approx(np.mean((x_test - x_hat) ** 2), rel=1e-5)
    assert (out / "model.keras").is_file()


def test_unknown_dataset_and_unreadable_file_give_clear_errors(tmp_path, capsys):
    base = ["train", "--model", "ae", "--out", str(tmp_path / "run"), "--verbose", "0"]
    assert cli.main(base + ["--dataset", "no_such_dataset_xyz"]) == 2
    err = capsys.readouterr().err
    assert "keras-nrae train: error: cannot load train images of 'no_such_dataset_xyz'" in err
    garbage = tmp_path / "broken.npz"
    garbage.write_bytes(b"not a zip file")
    assert cli.main(base + ["--dataset", str(garbage)]) == 2
    assert "cannot load train images of" in capsys.readouterr().err
    missing = str(tmp_path / "missing.npz")
    assert cli.main(base + ["--dataset", missing]) == 2
    assert "No such .npz file" in capsys.readouterr().err


def _console_script(*argv, **env):
    """`keras-nrae ARGV` through the console script's module, TF_CPP_MIN_LOG_LEVEL unset unless given."""
    environ = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run(
        [sys.executable, "-m", "keras_nrae_cli", *argv],
        capture_output=True, text=True, timeout=300, env={**environ, **env},
    )


# TensorFlow's C++ log lines: "2026-12-06 13:25:06.639238: I tensorflow/core/util/port.cc:153] ..."
_TF_LOG_LINE = re.compile(r"^\S+ \S+: [IWEF] \S+:\d+\]", re.MULTILINE)


def test_console_script_entry_point_runs():
    result = _console_script("--help")
    assert result.returncode == 0, result.stderr
    assert "Table 1" in result.stdout


def test_console_script_prints_no_tensorflow_start_up_log(tmp_path):
    result = _console_script("demo", "--epochs", "1", "--verbose", "0", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "NRAE-L and NRAE-Q below AE" in result.stdout


def test_tensorflow_log_is_kept_when_asked():
    assert _TF_LOG_LINE.search(_console_script("--verbose", "demo", "--help").stderr)
    assert _TF_LOG_LINE.search(_console_script("demo", "--help", TF_CPP_MIN_LOG_LEVEL="0").stderr)
    assert not _TF_LOG_LINE.search(_console_script("demo", "--help").stderr)
