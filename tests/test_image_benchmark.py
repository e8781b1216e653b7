import csv
import dataclasses
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pytest

from keras_nrae import recipe as recipes
from keras_nrae import tuning
from keras_nrae.datasets import load_images
from keras_nrae.divergence import DivergenceMonitor, failure_reason, mean_image_mse
from keras_nrae.metrics import reconstruction_mse
from paper.table1 import harness, protocol, selection
from paper.table1.protocol import BenchmarkConfig, MODEL_NAMES, training_subset
from paper.table1.report import markdown_table
from paper.table1.selection import NraeSettings


def _patch_training(monkeypatch, train):
    """Replace `keras_nrae.recipe.train`, the one training path, also where `keras_nrae.tuning` imported it."""
    monkeypatch.setattr(recipes, "train", train)
    monkeypatch.setattr(tuning, "train", train)


def _write_npz(path, rng):
    np.savez(
        path,
        x_train=rng.integers(0, 256, (80, 6, 6), dtype=np.uint8),
        x_test=rng.integers(0, 256, (20, 6, 6), dtype=np.uint8),
    )


def test_smoke_run_selects_on_validation_before_seeing_test(tmp_path, monkeypatch):
    _write_npz(tmp_path / "tiny.npz", np.random.default_rng(0))
    events = []
    select_nrae = harness.select_nrae

    def logged_load(dataset, split):
        events.append(f"load {split}")
        return load_images(dataset, split)

    def logged_select(x_train, *args):
        events.append(f"select on {len(x_train)} images")
        return select_nrae(x_train, *args)

    monkeypatch.setattr(harness, "load_images", logged_load)
    monkeypatch.setattr(harness, "select_nrae", logged_select)
    out = tmp_path / "out"
    report = harness.main(
        [str(tmp_path / "tiny.npz"), "--smoke", "--seeds", "0", "--out", str(out)]
    )
    assert events == ["load train", "select on 64 images", "load test"]
    with open(out / "image_benchmark.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["model"] for r in rows] == list(MODEL_NAMES)
    assert all(0 < float(r["test_mse"]) < 1 for r in rows)
    assert "| NRAE (best) vs AE |" in report
    assert (out / "image_benchmark.md").read_text() == report

    # Run again on the same folder: every cell resumes from cells.jsonl, nothing trains.
    def no_training(*args, **kwargs):
        raise AssertionError("a finished cell was trained again")

    for name in ("select_nrae", "select_baseline", "train_model"):
        monkeypatch.setattr(harness, name, no_training)
    _patch_training(monkeypatch, no_training)
    resumed = harness.main(
        [str(tmp_path / "tiny.npz"), "--smoke", "--seeds", "0", "--out", str(out)]
    )
    assert resumed == report


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
    # NRAE-Q (lower validation MSE) is index 8: mean 19, +72.7 % vs 11.
    assert MODEL_NAMES.index("NRAE-Q") == 8
    assert table[-2] == f"| NRAE (best, on validation) | NRAE-Q: 19.000 ± {np.sqrt(2):.3f} |"
    assert table[-1] == f"| NRAE (best) vs AE | {100 * (19 / 11 - 1):+.1f} % |"


def test_unknown_inputs_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="Unknown baseline 'PCA'"):
        protocol.recipe("PCA", protocol.SMOKE_CONFIG, (6, 6))
    with pytest.raises(FileNotFoundError, match="No such .npz file"):
        load_images(str(tmp_path / "missing.npz"), "train")


def test_validation_split_is_a_fixed_disjoint_partition():
    x = np.arange(50, dtype=np.float32)[:, None]
    x_fit, x_val = protocol.validation_split(x, 0.1)
    assert len(x_val) == 5 and len(x_fit) == 45
    np.testing.assert_array_equal(np.sort(np.concatenate([x_fit, x_val])[:, 0]), x[:, 0])
    again_fit, again_val = protocol.validation_split(x, 0.1)
    np.testing.assert_array_equal(again_val, x_val)
    np.testing.assert_array_equal(again_fit, x_fit)


def _monitor_on(model_logs):
    """A DivergenceMonitor fed the given ("batch" | "epoch", loss) events."""
    monitor = DivergenceMonitor(factor=10.0)
    monitor.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    for step, (kind, loss) in enumerate(model_logs):
        getattr(monitor, f"on_{'train_batch' if kind == 'batch' else 'epoch'}_end")(step, {"loss": loss})
    monitor.on_train_end()
    return monitor


def test_divergence_monitor_flags_nan_and_exploding_loss():
    assert not _monitor_on([("epoch", 5.0), ("epoch", 2.0), ("epoch", 19.9)]).diverged
    exploding = _monitor_on([("epoch", 5.0), ("epoch", 2.0), ("epoch", 20.1)])
    assert exploding.diverged and exploding.model.stop_training
    assert _monitor_on([("batch", 1.0), ("batch", float("nan"))]).diverged
    assert _monitor_on([("epoch", float("inf"))]).diverged


def test_divergence_monitor_flags_a_loss_that_never_improves():
    # Wrong from the first epoch on: never 10x the lowest, never below the first.
    stuck = _monitor_on([("epoch", 5.0), ("epoch", 5.0), ("epoch", 7.0)])
    assert stuck.diverged and "never improved" in stuck.reason
    assert not _monitor_on([("epoch", 5.0), ("epoch", 4.9), ("epoch", 7.0)]).diverged
    assert not _monitor_on([("epoch", 5.0)]).diverged  # one epoch: nothing to compare


class _Constant:
    """A stand-in trained model: every pixel reconstructed as `value`."""

    def __init__(self, value):
        self.value = value

    def __call__(self, x, training=False):
        return np.full(np.shape(x), self.value, np.float32)


def test_failure_reason_compares_with_the_mean_image():
    x = (np.random.default_rng(3).uniform(size=(50, 6, 6, 1)) < 0.1).astype("float32")
    trivial = mean_image_mse(x)
    assert trivial == pytest.approx(np.mean((x - x.mean(0)) ** 2))
    assert failure_reason(_Halving(False), x) is None  # MSE = mean(x²)/4 < trivial
    saturated = failure_reason(_Constant(1.0), x)  # sigmoid stuck at 1
    assert saturated is not None and "mean training image" in saturated
    assert failure_reason(_Constant(1.0), x, factor=None) is None
    assert failure_reason(_Constant(np.nan), x, factor=None) is not None


def test_a_run_that_is_wrong_from_its_first_epoch_is_reported_not_scored():
    # Sparse strokes and a step size that saturates the sigmoid at once: the loss
    # stays finite and bounded (never 10x its lowest), but the model is useless.
    x = (np.random.default_rng(4).uniform(size=(64, 6, 6, 1)) < 0.1).astype("float32")
    config = protocol.BenchmarkConfig(
        latent_dim=2, hidden=(16,), batch_size=16, learning_rate=1.0, epochs=3
    )
    run = selection.train_model("AE", x, config, seed=0)
    assert reconstruction_mse(run.model, x) > np.mean((x - x.mean(0)) ** 2)  # finite, useless
    assert run.diverged and run.divergence
    assert np.isnan(selection.validation_score(run, x))


def test_a_run_that_blows_up_is_reported_not_scored():
    x = np.random.default_rng(1).uniform(size=(32, 6, 6, 1)).astype("float32")
    config = dataclasses.replace(protocol.SMOKE_CONFIG, learning_rate=1e12, epochs=5)
    run = selection.train_model("WAE", x, config, seed=0)
    assert run.diverged
    assert np.isnan(selection.validation_score(run, x))


class _Halving:
    """A stand-in trained model: x -> x / 2, flagged diverged or not."""

    def __init__(self, diverged):
        self.diverged = diverged

    def __call__(self, x, training=False):
        return np.asarray(x) / 2


def _run(model):
    """A stand-in `recipes.Run` of a stand-in model, diverged as the model is flagged."""
    return recipes.Run(model, {}, "stand-in diverged" if model.diverged else None)


def test_selection_skips_diverged_settings(monkeypatch):
    x = np.random.default_rng(2).uniform(size=(40, 6, 6, 1)).astype("float32")
    config = dataclasses.replace(protocol.SMOKE_CONFIG, lam_grid=(0.1, 1.0))
    _patch_training(  # lam = 1 and every order-2 run diverge
        monkeypatch,
        lambda x, recipe, *args, **kwargs: _run(_Halving(recipe.lam == 1.0 or recipe.order == 2)),
    )
    logs = []
    chosen = selection.select_nrae(x, config, logs.append)
    assert list(chosen) == [1] and chosen[1].lam == 0.1
    _, x_val = protocol.validation_split(x, config.validation_fraction)
    assert chosen[1].validation_mse == pytest.approx(np.mean((x_val / 2) ** 2))
    assert sum("DIVERGED" in line for line in logs) == 3


class _Scaling:
    """A stand-in trained model: x -> factor · x (validation MSE (1 − factor)² · mean x²)."""

    def __init__(self, factor):
        self.factor, self.diverged = factor, not np.isfinite(factor)

    def __call__(self, x, training=False):
        return self.factor * np.asarray(x)


def test_baseline_selection_takes_the_lowest_validation_mse(monkeypatch):
    x = np.random.default_rng(3).uniform(size=(40, 6, 6, 1)).astype("float32")
    config = dataclasses.replace(protocol.SMOKE_CONFIG, grae_lam_grid=(0.1, 1.0, 10.0),
                                 grae_relax_grid=(False, True))
    # λ = 1 with relax reconstructs best; λ = 10 diverges.
    factor = lambda s: np.nan if s["lam"] == 10.0 else 0.9 if (s["lam"], s["relax"]) == (1.0, True) else 0.5
    seen = []
    monkeypatch.setattr(protocol, "grae_targets", lambda x, config: seen.append(len(x)))

    def chosen(recipe):  # the GRAE settings behind a recipe: weight = λ · D / d, relax_epochs = epochs or None
        return {"lam": recipe.options["weight"] * recipe.latent_dim / 36,
                "relax": recipe.options["relax_epochs"] is not None}

    _patch_training(
        monkeypatch,
        lambda x, recipe, seed, **kwargs: seen.append(chosen(recipe)) or _run(_Scaling(factor(chosen(recipe)))),
    )
    logs = []
    best = selection.select_baseline("GRAE", x, config, logs.append)
    _, x_val = protocol.validation_split(x, config.validation_fraction)
    assert best["settings"] == {"lam": 1.0, "relax": True}
    assert best["validation_mse"] == pytest.approx(np.mean((0.1 * x_val) ** 2))
    assert seen[0] == 36 and len(seen) == 1 + 6  # targets of the 36 fitting images, then the grid
    assert sum("DIVERGED" in line for line in logs) == 2


def test_baselines_get_the_chosen_weights_and_schedule():
    config, shape = protocol.SMOKE_CONFIG, (6, 6, 1)
    build = lambda name, chosen: recipes.build_model(shape, protocol.recipe(name, config, shape, chosen))
    grae = build("GRAE", {"lam": 2.0, "relax": True})
    assert grae.weight == 2.0 * 36 / config.latent_dim and grae.relax_epochs == config.epochs
    assert build("GRAE", {"lam": 2.0, "relax": False}).relax_epochs is None
    spae = build("SPAE", {"lam": 0.5})
    assert spae.weight == 0.5 * 36 and spae.scaling == "point"
    assert protocol.baseline_grid("AE", config) == [] and len(protocol.baseline_grid("GRAE", BenchmarkConfig())) == 10


def test_markdown_table_reports_diverged_runs():
    rows = [
        dict(dataset="d", size="S", model=name, seed=seed, test_mse=0.01)
        for name in MODEL_NAMES for seed in (0, 1)
    ]
    rows[MODEL_NAMES.index("NRAE-Q") * 2]["test_mse"] = float("nan")
    table = markdown_table(rows, {"d-S": {1: NraeSettings(1, 5, 0.1, 0.2)}}).splitlines()
    assert table[2 + MODEL_NAMES.index("NRAE-Q")] == "| NRAE-Q | 10.000 ± 0.000 (1 diverged) |"
    assert table[-2] == "| NRAE (best, on validation) | NRAE-L: 10.000 ± 0.000 |"


def test_colour_images_train_with_the_colour_settings(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    for name, shape in (("grey", (6, 6)), ("colour", (6, 6, 3))):
        np.savez(tmp_path / f"{name}.npz", x_train=rng.integers(0, 256, (80, *shape), dtype=np.uint8),
                 x_test=rng.integers(0, 256, (20, *shape), dtype=np.uint8))
    trained = []
    train = recipes.train

    def recorded(x, recipe, *args, **kwargs):  # every training run, selection's included
        trained.append((x.shape[-1], recipe.model, recipe.latent_dim, recipe.epochs))
        return train(x, recipe, *args, **kwargs)

    _patch_training(monkeypatch, recorded)
    config = dataclasses.replace(protocol.SMOKE_CONFIG, colour=(("latent_dim", 3), ("epochs", 2)))
    harness.run([str(tmp_path / "grey.npz"), str(tmp_path / "colour.npz")], seeds=[0], config=config,
                        log=lambda line: None)
    # Grey images are (N, 6, 6, 1): last axis 1; every model and selection run counted
    # (NRAE: 2 orders; GRAE, SPAE: 1 setting each in the smoke grids).
    assert {t[2:] for t in trained if t[0] == 1} == {(2, 1)}
    assert {t[2:] for t in trained if t[0] == 3} == {(3, 2)}
    assert len(trained) == 2 * (len(MODEL_NAMES) + 2 + 2)


def test_command_line_options_hold_for_colour_images_too(monkeypatch):
    configs = []
    monkeypatch.setattr(harness, "run", lambda *args, **kwargs: (configs.append(args[3]), ([], ""))[1])
    harness.main(["cifar10"])
    harness.main(["cifar10", "--latent-dim", "7"])
    default, latent_7 = configs
    assert default == protocol.BenchmarkConfig()
    assert dict(default.colour) == {"latent_dim": 128, "epochs": 200}
    assert latent_7.latent_dim == 7 and dict(latent_7.colour) == {"epochs": 200}
    assert latent_7.for_images((32, 32, 3)).latent_dim == 7
    assert latent_7.for_images((32, 32, 3)).epochs == 200
    assert latent_7.for_images((28, 28, 1)) == latent_7


def test_models_option_trains_and_reports_only_those_models(tmp_path, monkeypatch):
    _write_npz(tmp_path / "tiny.npz", np.random.default_rng(0))
    trained = []
    train_model = harness.train_model
    monkeypatch.setattr(harness, "train_model",  # baselines trained (NRAE-Q trains too, through the same path)
                        lambda name, *args, **kwargs: (name in protocol.BASELINE_NAMES and trained.append(name))
                        or train_model(name, *args, **kwargs))
    report = harness.main([str(tmp_path / "tiny.npz"), "--smoke", "--seeds", "0", "--models", "AE", "NRAE-Q",
                                   "--out", str(tmp_path / "out")])
    assert trained == ["AE"]
    with open(tmp_path / "out" / "image_benchmark.csv") as f:
        assert [r["model"] for r in csv.DictReader(f)] == ["AE", "NRAE-Q"]
    rows = [line.split(" |")[0] for line in report.splitlines() if line.startswith("| ")]
    assert rows == ["| model", "| AE", "| NRAE-Q", "| NRAE (best, on validation)", "| NRAE (best) vs AE"]
    with pytest.raises(ValueError, match=r"Unknown models \['PCA'\]"):
        harness.benchmark_dataset(str(tmp_path / "tiny.npz"), "S", [0], protocol.SMOKE_CONFIG,
                                          models=["AE", "PCA"])


def test_baselines_alone_skip_the_nrae_selection(tmp_path, monkeypatch):
    _write_npz(tmp_path / "tiny.npz", np.random.default_rng(0))
    monkeypatch.setattr(harness, "select_nrae", lambda *args, **kwargs: pytest.fail("selection ran"))
    report = harness.main([str(tmp_path / "tiny.npz"), "--smoke", "--seeds", "0", "--models", "AE",
                                   "--out", str(tmp_path / "out")])
    assert "| NRAE (best, on validation) | — |" in report


def test_markdown_table_marks_cells_without_rows():
    rows = [dict(dataset="a", size="S", model="AE", seed=0, test_mse=0.01),
            dict(dataset="b", size="S", model="AE", seed=0, test_mse=0.02),
            dict(dataset="a", size="S", model="NRAE-L", seed=0, test_mse=0.009)]
    chosen = {"a-S": {1: NraeSettings(1, 5, 0.1, 0.2)}, "b-S": {1: NraeSettings(1, 5, 0.1, 0.2)}}
    table = markdown_table(rows, chosen).splitlines()
    assert table[3] == "| NRAE-L | 9.000 ± 0.000 | — |"
    assert table[-1] == "| NRAE (best) vs AE | -10.0 % | — |"
    # An NRAE order that was run but never converged is not a missing cell.
    rows.append(dict(dataset="b", size="S", model="NRAE-L", seed=0, test_mse=float("nan")))
    table = markdown_table(rows, {"a-S": chosen["a-S"], "b-S": {}}).splitlines()
    assert table[-2] == "| NRAE (best, on validation) | NRAE-L: 9.000 ± 0.000 | none converged |"
    assert table[-1] == "| NRAE (best) vs AE | -10.0 % | — |"
