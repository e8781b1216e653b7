"""paper.table1 trains through the library's one path: a harness cell is `keras_nrae.recipe.train` of the
protocol's settings written out by hand; committed result stores still resume; the old module says where it went."""

import dataclasses
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_nrae import divergence
from keras_nrae.baselines import target_embedding
from keras_nrae.datasets import load_images
from keras_nrae.graph import NeighborGraph
from keras_nrae.metrics import reconstruction_mse
from keras_nrae.recipe import Recipe, train
from paper.table1 import harness
from paper.table1.protocol import GRAE_TARGET, SMOKE_CONFIG, BenchmarkConfig, training_subset, validation_split
from paper.table1.store import CellStore

ROOT = Path(__file__).resolve().parents[1]
# The config every committed benchmarks/results/*/cells.jsonl of the default protocol is keyed by (kmnist-S's).
COMMITTED_REPR = (
    "BenchmarkConfig(latent_dim=10, arch='mlp', hidden=(256, 256), activation='elu', learning_rate=0.001, "
    "epochs=100, batch_size=100, small_size=5000, validation_fraction=0.1, neighbors_per_point=2, "
    "k_grid=(5, 10), lam_grid=(0.1, 1.0), orders=(1, 2), grae_lam_grid=(0.01, 0.1, 1.0, 10.0, 100.0), "
    "grae_relax_grid=(False, True), spae_lam_grid=(0.01, 0.1, 1.0), divergence_factor=10.0, "
    "trivial_factor=1.0, colour=(('latent_dim', 128), ('epochs', 200)))"
)


def test_the_config_repr_still_keys_the_committed_cells(tmp_path):
    assert repr(BenchmarkConfig()) == COMMITTED_REPR
    path = tmp_path / "cells.jsonl"
    path.write_text(json.dumps({"config": COMMITTED_REPR, "key": "row/a", "value": 1}) + "\n")
    assert CellStore(path, BenchmarkConfig()).values == {"row/a": 1}


def test_a_harness_cell_is_recipe_train_of_the_protocol_settings(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "tiny.npz"
    np.savez(data, x_train=rng.integers(0, 256, (80, 6, 6), dtype=np.uint8),
             x_test=rng.integers(0, 256, (20, 6, 6), dtype=np.uint8))
    config = dataclasses.replace(SMOKE_CONFIG, epochs=2, orders=(2,))
    models = ["AE", "DAE", "GRAE", "SPAE", "NRAE-Q"]
    rows, chosen = harness.benchmark_dataset(str(data), "S", [1], config, log=lambda line: None, models=models)

    # The protocol written out by hand: the same Recipe fields, seeds, graphs and targets.
    x, x_test = training_subset(load_images(str(data), "train"), "S", 64), load_images(str(data), "test")
    shared = dict(latent_dim=2, hidden=(16,), epochs=2, batch_size=16, divergence_factor=10.0, trivial_factor=None)
    (nrae,) = chosen.values()
    assert (nrae.order, nrae.k, nrae.lam) == (2, 3, 0.5)  # the smoke grid's only setting
    x_fit, x_val = validation_split(x, 0.1)
    selected = train(x_fit, Recipe(model="NRAE-Q", k=3, lam=0.5, **shared), 0,
                     graph=NeighborGraph.build(x_fit, k=3, verbose=0))
    assert nrae.validation_mse == reconstruction_mse(selected.model, x_val)
    by_hand = {
        "AE": train(x, Recipe(model="AE", **shared), 1),
        "DAE": train(x, Recipe(model="DAE", options={"sigma": 0.1}, **shared), 1),
        "GRAE": train(x, Recipe(model="GRAE", options={"weight": 100.0 * 36 / 2, "relax_epochs": 2}, **shared), 1,
                      targets=target_embedding(x, 2, GRAE_TARGET, 5)),
        "SPAE": train(x, Recipe(model="SPAE", options={"weight": 0.1 * 36, "scaling": "point"}, **shared), 1),
        "NRAE-Q": train(x, Recipe(model="NRAE-Q", k=3, lam=0.5, **shared), 1,
                        graph=NeighborGraph.build(x, k=3, verbose=0)),
    }
    assert [row["model"] for row in rows] == models
    for row in rows:
        assert row["test_mse"] == reconstruction_mse(by_hand[row["model"]].model, x_test), row["model"]


def test_the_old_module_warns_and_says_where_the_harness_went():
    sys.modules.pop("keras_nrae.paper.image_benchmark", None)
    with pytest.warns(DeprecationWarning, match="import DivergenceMonitor.*from keras_nrae.divergence"):
        old = importlib.import_module("keras_nrae.paper.image_benchmark")
    assert (old.DivergenceMonitor, old.failure_reason, old.mean_image_mse) == (
        divergence.DivergenceMonitor, divergence.failure_reason, divergence.mean_image_mse)
    for name in ("train_nrae", "BenchmarkConfig", "main", "CellStore"):
        with pytest.raises(AttributeError, match=rf"{name} moved to paper\.table1 in the source repository "
                                                 r"\(python -m paper\.table1"):
            getattr(old, name)
    with pytest.raises(ImportError):
        exec("from keras_nrae.paper.image_benchmark import select_nrae", {})


def test_the_old_command_exits_2_and_the_new_one_runs():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    old = subprocess.run([sys.executable, "-m", "keras_nrae.paper.image_benchmark", "mnist"], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert old.returncode == 2 and "moved to paper.table1 in the source repository" in old.stderr, old.stderr
    new = subprocess.run([sys.executable, "-m", "paper.table1", "--help"], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert new.returncode == 0 and "Table 1 of the NRAE paper" in new.stdout, new.stderr


def test_a_selection_killed_half_way_resumes_from_its_trials(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    data = tmp_path / "tiny.npz"
    np.savez(data, x_train=rng.integers(0, 256, (80, 6, 6), dtype=np.uint8),
             x_test=rng.integers(0, 256, (20, 6, 6), dtype=np.uint8))
    config = dataclasses.replace(SMOKE_CONFIG, spae_lam_grid=(0.1, 1.0))
    out = tmp_path / "out"
    weights, kill_at = [], [2]

    def train_or_die(x, recipe, *args, **kwargs):
        weights.append(recipe.options["weight"])
        if len(weights) == kill_at[0]:
            raise KeyboardInterrupt  # the run is killed during its second trial
        return train(x, recipe, *args, **kwargs)

    monkeypatch.setattr("keras_nrae.tuning.train", train_or_die)
    run = lambda: harness.run([str(data)], ["S"], [0], config, str(out), log=lambda line: None, models=["SPAE"])
    with pytest.raises(KeyboardInterrupt):
        run()
    assert weights == [0.1 * 36, 1.0 * 36] and len((out / "trials.jsonl").read_text().splitlines()) == 1
    weights.clear()
    kill_at[0] = 0
    run()
    assert weights == [1.0 * 36]  # only the trial the first run did not finish
