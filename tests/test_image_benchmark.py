import csv
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

from keras_nrae.paper import image_benchmark
from keras_nrae.paper.image_benchmark import (
    MODEL_NAMES,
    NraeSettings,
    markdown_table,
    training_subset,
)


def _write_npz(path, rng):
    np.savez(
        path,
        x_train=rng.integers(0, 256, (80, 6, 6), dtype=np.uint8),
        x_test=rng.integers(0, 256, (20, 6, 6), dtype=np.uint8),
    )


def test_smoke_run_selects_on_validation_before_seeing_test(tmp_path, monkeypatch):
    _write_npz(tmp_path / "tiny.npz", np.random.default_rng(0))
    events = []
    load_split, select_nrae = image_benchmark.load_split, image_benchmark.select_nrae

    def logged_load(dataset, split):
        events.append(f"load {split}")
        return load_split(dataset, split)

    def logged_select(x_train, *args):
        events.append(f"select on {len(x_train)} images")
        return select_nrae(x_train, *args)

    monkeypatch.setattr(image_benchmark, "load_split", logged_load)
    monkeypatch.setattr(image_benchmark, "select_nrae", logged_select)
    out = tmp_path / "out"
    report = image_benchmark.main(
        [str(tmp_path / "tiny.npz"), "--smoke", "--seeds", "0", "--out", str(out)]
    )
    assert events == ["load train", "select on 64 images", "load test"]
    with open(out / "image_benchmark.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["model"] for r in rows] == list(MODEL_NAMES)
    assert all(0 < float(r["test_mse"]) < 1 for r in rows)
    assert "| NRAE (best) vs AE |" in report
    assert (out / "image_benchmark.md").read_text() == report


def test_training_subset_is_a_fixed_permutation_prefix():
    x = np.arange(50.0)[:, None]
    small = training_subset(x, "S", 20)
    expected = x[np.random.default_rng(0).permutation(50)[:20]]
    np.testing.assert_array_equal(small, expected)
    assert len(np.unique(small)) == 20
    assert training_subset(x, "L", 20) is x
    with pytest.raises(ValueError, match="needs 60 training images"):
        training_subset(x, "S", 60)
    with pytest.raises(ValueError, match='size must be "S" or "L"'):
        training_subset(x, "M", 20)


def test_markdown_table_mean_std_and_change_vs_ae():
    mse = {name: [0.010 + 0.001 * i, 0.012 + 0.001 * i] for i, name in enumerate(MODEL_NAMES)}
    rows = [
        dict(dataset="data/d.npz", size="S", model=name, seed=seed, test_mse=value)
        for name, values in mse.items()
        for seed, value in enumerate(values)
    ]
    chosen = {"d-S": {1: NraeSettings(1, 5, 0.1, 0.2), 2: NraeSettings(2, 5, 0.1, 0.1)}}
    table = markdown_table(rows, chosen).splitlines()
    assert table[0] == "| model | d-S |"
    # AE: values 10 and 12 (×10⁻³): mean 11, sample std √2.
    assert table[2] == f"| AE | 11.000 ± {np.sqrt(2):.3f} |"
    # NRAE-Q (lower validation MSE) is index 6: mean 17, +54.5 % vs 11.
    assert table[-2] == f"| NRAE (best, on validation) | NRAE-Q: 17.000 ± {np.sqrt(2):.3f} |"
    assert table[-1] == f"| NRAE (best) vs AE | {100 * (17 / 11 - 1):+.1f} % |"


def test_unknown_inputs_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="Unknown baseline 'PCA'"):
        image_benchmark.build_baseline("PCA", (6, 6), image_benchmark.SMOKE_CONFIG, 0)
    with pytest.raises(FileNotFoundError, match="No such .npz file"):
        image_benchmark.load_split(str(tmp_path / "missing.npz"), "train")


def test_validation_split_is_a_fixed_disjoint_partition():
    x = np.arange(50, dtype=np.float32)[:, None]
    x_fit, x_val = image_benchmark.validation_split(x, 0.1)
    assert len(x_val) == 5 and len(x_fit) == 45
    np.testing.assert_array_equal(np.sort(np.concatenate([x_fit, x_val])[:, 0]), x[:, 0])
    again_fit, again_val = image_benchmark.validation_split(x, 0.1)
    np.testing.assert_array_equal(again_val, x_val)
    np.testing.assert_array_equal(again_fit, x_fit)
