"""keras_nrae.tuning.grid_search against a hand-rolled loop over the same grid; resuming; diverged trials."""

import keras
import numpy as np
import pytest

from keras_nrae import FileFormatError, kernels, recipe as recipe_lib
from keras_nrae.architectures import mlp_autoencoder
from keras_nrae.graph import NeighborGraph
from keras_nrae.model import NeighborhoodReconstructionModel
from keras_nrae.pipeline import neighborhood_dataset
from keras_nrae.recipe import Recipe
from keras_nrae.tuning import grid_search

RECIPE = Recipe(latent_dim=2, hidden=(8,), epochs=4, batch_size=10)  # 4 × 4 = 16 steps: eager
GRID = {"model": ["NRAE-L", "NRAE-Q"], "k": [3, 5], "lam": [2.0]}


def _split(seed=0):
    x = np.random.default_rng(seed).random((50, 3, 3, 1)).astype("float32")
    return x[:40], x[40:]


def _by_hand(x_fit, x_val, order, k, lam):
    """One trial in plain Keras: seeded NRAE on neighbourhood batches, then numpy MSE on x_val."""
    keras.utils.set_random_seed(0)
    data = neighborhood_dataset(x_fit, NeighborGraph.build(x_fit, k=k, verbose=0), 10, 2, seed=0)
    model = NeighborhoodReconstructionModel(
        *mlp_autoencoder((3, 3, 1), 2, (8,), "elu", "sigmoid"), order=order, kernel=kernels.Binary(lam)
    )
    model.compile(keras.optimizers.Adam(1e-3), run_eagerly=True)
    model.fit(data, epochs=4, verbose=0)
    return float(np.mean((x_val - np.asarray(model(x_val))) ** 2))


def test_grid_search_scores_and_chooses_as_a_hand_rolled_loop():
    x_fit, x_val = _split()
    lines = []
    search = grid_search(x_fit, x_val, RECIPE, GRID, log=lines.append)
    expected = {(order, k, lam): _by_hand(x_fit, x_val, order, k, lam)
                for order in (1, 2) for k in (3, 5) for lam in (2.0,)}
    got = {(t.recipe.order, t.recipe.k, t.recipe.lam): t.validation_mse for t in search.trials}
    assert list(got) == list(expected)  # itertools.product order of the grid's keys
    for key, mse in expected.items():
        assert got[key] == pytest.approx(mse, rel=1e-5, abs=1e-7)
    best = min(expected, key=expected.get)
    assert (search.best_trial.recipe.order, search.best_trial.recipe.k, search.best_trial.recipe.lam) == best
    q = search.best(model="NRAE-Q")
    assert (2, q.recipe.k, q.recipe.lam) == min((key for key in expected if key[0] == 2), key=expected.get)
    assert search.best_trial.changes == dict(zip(GRID, (recipe_lib.MODEL_NAMES[7 + best[0] - 1], *best[1:])))
    assert np.mean((x_val - np.asarray(search.best_model(x_val))) ** 2) == pytest.approx(expected[best], rel=1e-5)
    assert len(lines) == 4 and lines[1].startswith("  trial 2: model=NRAE-L, k=5, lam=2.0  validation mse ")


def test_a_diverged_trial_scores_nan_and_is_never_chosen():
    x_fit, x_val = _split()
    grid = [{"learning_rate": 1e30, "output_activation": None}, {"learning_rate": 1e-3}]
    search = grid_search(x_fit, x_val, Recipe(**{**RECIPE.__dict__, "model": "AE"}), grid, log=None)
    exploded, fine = search.trials
    assert np.isnan(exploded.validation_mse) and "non-finite" in exploded.divergence.lower()
    assert search.best_trial is fine and np.isfinite(fine.validation_mse)
    all_bad = grid_search(x_fit, x_val, Recipe(**{**RECIPE.__dict__, "model": "AE"}), grid[:1], log=None)
    assert all_bad.best_trial is None and all_bad.best_model is None


def test_an_interrupted_search_resumes_from_its_file(tmp_path, monkeypatch):
    x_fit, x_val = _split()
    path = str(tmp_path / "trials.jsonl")
    first = grid_search(x_fit, x_val, RECIPE, {"k": [3, 5]}, path=path, log=None)
    calls = []
    train = recipe_lib.train
    monkeypatch.setattr("keras_nrae.tuning.train", lambda x, r, *a, **kw: calls.append(r.k) or train(x, r, *a, **kw))
    resumed = grid_search(x_fit, x_val, RECIPE, {"k": [3, 5, 4]}, path=path, log=None)
    assert [t.validation_mse for t in resumed.trials[:2]] == [t.validation_mse for t in first.trials]
    best_k = resumed.best_trial.recipe.k
    assert calls == [4]  # only the new trial trains
    # ... and the best one again, when first asked for, if it came from the file.
    assert np.array_equal(np.asarray(resumed.best_model(x_val)), np.asarray(
        (first.best_model if best_k != 4 else resumed.best_model)(x_val)))
    assert calls == [4] + ([best_k] if best_k != 4 else [])
    # A different seed or different data is a different trial.
    calls.clear()
    grid_search(x_fit, x_val, RECIPE, {"k": [3]}, seed=1, path=path, log=None)
    grid_search(x_fit[1:], x_val, RECIPE, {"k": [3]}, path=path, log=None)
    assert calls == [3, 3]


def test_a_torn_last_line_is_cut_and_a_corrupt_line_is_refused(tmp_path):
    x_fit, x_val = _split()
    path = tmp_path / "trials.jsonl"
    grid_search(x_fit, x_val, RECIPE, {"k": [3]}, path=str(path), log=None)
    complete = path.read_text()
    path.write_text(complete + '{"key": "half a li')
    with pytest.warns(UserWarning, match="line 2, is incomplete"):
        grid_search(x_fit, x_val, RECIPE, {"k": [3]}, path=str(path), log=None)
    assert path.read_text() == complete
    path.write_text("not json\n" + complete)
    with pytest.raises(FileFormatError, match="line 1, is not a grid_search trial"):
        grid_search(x_fit, x_val, RECIPE, {"k": [3]}, path=str(path), log=None)


def test_every_trial_uses_the_builder_and_mismatched_splits_are_refused():
    x_fit, x_val = _split()
    built = []

    def builder(shape, latent_dim):
        built.append(latent_dim)
        return mlp_autoencoder(shape, latent_dim, (4,), "tanh", "sigmoid")

    search = grid_search(x_fit, x_val, RECIPE, {"latent_dim": [1, 3]}, builder=builder, log=None)
    assert built == [1, 3] and search.best_model.encoder.layers[1].units == 4
    with pytest.raises(ValueError, match=r"x_fit has samples of shape \(3, 3, 1\), x_val of shape \(9,\)"):
        grid_search(x_fit, x_val.reshape(10, 9), RECIPE, {"k": [3]})
