"""keras_nrae.recipe: `train` is exactly the Keras steps it documents, and a recipe refuses what it cannot mean."""

import keras
import numpy as np
import pytest

from keras_nrae import kernels
from keras_nrae.architectures import mlp_autoencoder
from keras_nrae.finite import NonFiniteError
from keras_nrae.graph import NeighborGraph
from keras_nrae.model import Autoencoder, NeighborhoodReconstructionModel
from keras_nrae.pipeline import neighborhood_dataset
from keras_nrae.recipe import MODEL_NAMES, Recipe, build_model, train

SMALL = dict(latent_dim=2, hidden=(8,), epochs=4, batch_size=10)  # 24 steps: traced, not eager


def _images(n=60, seed=0):
    return np.random.default_rng(seed).random((n, 4, 4, 1)).astype("float32")


def _same_weights(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights(), strict=True))


def test_an_autoencoder_run_is_keras_fit_on_the_seeded_model():
    x = _images()
    run = train(x, Recipe(model="AE", **SMALL), seed=3)
    keras.utils.set_random_seed(3)
    by_hand = Autoencoder(*mlp_autoencoder((4, 4, 1), 2, (8,), "elu", "sigmoid"))
    by_hand.compile(keras.optimizers.Adam(1e-3))
    history = by_hand.fit(x, batch_size=10, epochs=4, verbose=0).history
    assert _same_weights(run.model, by_hand)
    assert run.history["loss"] == history["loss"] and run.divergence is None and not run.diverged


@pytest.mark.parametrize("order", [1, 2])
def test_an_nrae_run_is_keras_fit_on_neighborhood_batches(order):
    x = _images()
    recipe = Recipe(model=("NRAE-L", "NRAE-Q")[order - 1], k=4, lam=0.5, neighbors_per_point=3, **SMALL)
    run = train(x, recipe, seed=5)
    keras.utils.set_random_seed(5)
    data = neighborhood_dataset(x, NeighborGraph.build(x, k=4, verbose=0), 10, 3, include_center=True, seed=5)
    by_hand = NeighborhoodReconstructionModel(
        *mlp_autoencoder((4, 4, 1), 2, (8,), "elu", "sigmoid"), order=order, kernel=kernels.Binary(0.5)
    )
    by_hand.compile(keras.optimizers.Adam(1e-3))
    by_hand.fit(data, epochs=4, verbose=0)
    assert _same_weights(run.model, by_hand)


def test_progress_epochs_group_the_passes_into_equal_keras_epochs():
    x = _images(n=50)
    # 7 passes of 50 // 10 = 5 steps = 35 steps, shown as 3 epochs of ceil(35 / 3) = 12 steps.
    run = train(x, Recipe(model="NRAE-L", k=4, progress_epochs=3, **{**SMALL, "epochs": 7}))
    assert len(run.history["loss"]) == 3
    assert int(run.model.optimizer.iterations) == 36
    run = train(x, Recipe(model="AE", progress_epochs=10, **{**SMALL, "epochs": 2}))
    assert len(run.history["loss"]) == 2 and int(run.model.optimizer.iterations) == 10


def test_a_builder_replaces_the_architecture_and_a_vae_encoder_has_two_codes_per_unit():
    shapes = []

    def builder(shape, latent_dim):
        shapes.append((shape, latent_dim))
        return mlp_autoencoder(shape, latent_dim, (4,), "tanh", "sigmoid")

    model = build_model((4, 4, 1), Recipe(model="VAE", latent_dim=3), builder=builder)
    assert shapes == [((4, 4, 1), 6), ((4, 4, 1), 3)]
    assert model.encoder.output_shape == (None, 6) and model.decoder.input_shape == (None, 3)
    assert [type(build_model((4, 4, 1), Recipe(model=name))).__name__ for name in MODEL_NAMES] == [
        "Autoencoder", "DenoisingAutoencoder", "ContractiveAutoencoder", "VariationalAutoencoder",
        "WassersteinAutoencoder", "GeometryRegularizedAutoencoder", "StructurePreservingAutoencoder",
        "NeighborhoodReconstructionModel", "NeighborhoodReconstructionModel",
    ]


def test_divergence_is_reported_with_checks_and_raised_without():
    x = _images()
    exploding = Recipe(model="AE", learning_rate=1e30, output_activation=None, **SMALL)
    with pytest.raises(NonFiniteError):
        train(x, exploding)
    run = train(x, Recipe(**{**exploding.__dict__, "divergence_factor": 10.0}))
    assert run.diverged and "loss" in run.divergence
    # One step of lr 1e-9 leaves the sigmoid outputs near 0.5: worse than the mean image.
    stuck = Recipe(model="AE", learning_rate=1e-9, divergence_factor=10.0, trivial_factor=1.0,
                   **{**SMALL, "epochs": 1})
    run = train(x, stuck)
    assert run.diverged and "the MSE of predicting the mean training image" in run.divergence


@pytest.mark.parametrize("changes, message", [
    ({"model": "PCA"}, "model must be one of"),
    ({"architecture": "rnn"}, "architecture must be one of"),
    ({"epochs": 0}, "epochs must be an integer >= 1"),
    ({"learning_rate": 0.0}, "learning_rate must be > 0"),
    ({"model": "NRAE-L", "k": 2, "neighbors_per_point": 4}, "raise k or lower neighbors_per_point"),
    ({"model": "DAE", "options": {"sigmaa": 0.1}}, r"not arguments of DAE; it takes \['sigma'\]"),
    ({"model": "AE", "options": {"weight": 1.0}}, "it takes none"),
])
def test_a_recipe_refuses_what_it_cannot_mean(changes, message):
    with pytest.raises(ValueError, match=message):
        Recipe(**changes)


def test_replace_from_strings_parses_each_field_type():
    recipe = Recipe().replace_from_strings(
        ["k=30", "learning_rate=1e-4", "output_activation=none", "hidden=64,32", "include_center=False",
         "progress_epochs=5", "divergence_factor=2.5", "model=NRAE-Q"]
    )
    assert (recipe.k, recipe.learning_rate, recipe.output_activation, recipe.hidden) == (30, 1e-4, None, (64, 32))
    assert (recipe.include_center, recipe.progress_epochs, recipe.divergence_factor, recipe.order) == (False, 5, 2.5, 2)
    for bad, message in [("kk=3", "NAME=VALUE"), ("k", "NAME=VALUE"), ("replace=yes", "true or false"),
                         ("options=1", "NAME=VALUE")]:
        with pytest.raises(ValueError, match=message):
            recipe.replace_from_strings([bad])
