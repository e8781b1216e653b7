"""Keras 3's training contract for every model in the package.

Each check compares with an independent computation: the regularizer terms
with numpy, one SGD step with and without a regularizer (the data gradient
is the same at the same weights, so the weights must differ by exactly the
regularizer's gradient step), inference mode with the same model stripped of
its Dropout/noise layers, compiled metrics with numpy on `predict`.
"""

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nrae import Autoencoder, NeighborhoodReconstructionModel, baselines, kernels
from tests._numerics import assert_close
from tests._reference import taylor_expansion_loop, weighted_loss

B, D, LATENT, LR = 8, 6, 2, 0.01

MODELS = {
    "AE": Autoencoder,
    "NRAE-L": functools.partial(NeighborhoodReconstructionModel, order=1, kernel=kernels.Binary(0.5)),
    "NRAE-Q": functools.partial(NeighborhoodReconstructionModel, order=2, kernel=kernels.Binary(0.5)),
    "DAE": functools.partial(baselines.DenoisingAutoencoder, seed=0),
    "CAE": baselines.ContractiveAutoencoder,
    "VAE": functools.partial(baselines.VariationalAutoencoder, seed=0),
    "WAE": functools.partial(baselines.WassersteinAutoencoder, seed=0),
    "GRAE": baselines.GeometryRegularizedAutoencoder,
    "GRAE-relax": functools.partial(baselines.GeometryRegularizedAutoencoder, relax_epochs=4),
    "SPAE": baselines.StructurePreservingAutoencoder,
}
DETERMINISTIC = ("AE", "NRAE-L", "NRAE-Q", "CAE", "GRAE", "GRAE-relax", "SPAE")


class AddsLoss(keras.layers.Layer):
    """Identity that adds 0.5 · mean(x²) with add_loss."""

    def call(self, x):
        self.add_loss(0.5 * keras.ops.mean(keras.ops.square(x)))
        return x


class FlagProbe(keras.layers.Layer):
    """Identity that counts its executed calls by `training` flag (Keras's
    symbolic build runs in a stateless scope, so it is not counted)."""

    def build(self, input_shape):
        counter = lambda: self.add_weight(shape=(), initializer="zeros", dtype="int32", trainable=False)
        self.training_calls, self.inference_calls = counter(), counter()

    def call(self, x, training=None):
        (self.training_calls if training else self.inference_calls).assign_add(1)
        return x

    def counts(self):
        return int(self.training_calls.numpy()), int(self.inference_calls.numpy())


def build(kind, encoder_layers=(), decoder_layers=(), kernel_regularizer=None, activity_regularizer=None):
    keras.utils.set_random_seed(0)
    codes = 2 * LATENT if kind == "VAE" else LATENT
    encoder = keras.Sequential(
        [keras.Input((D,)), *encoder_layers,
         keras.layers.Dense(8, activation="tanh", kernel_regularizer=kernel_regularizer),
         keras.layers.Dense(codes)]
    )
    decoder = keras.Sequential(
        [keras.Input((LATENT,)),
         keras.layers.Dense(8, activation="tanh", activity_regularizer=activity_regularizer),
         *decoder_layers, keras.layers.Dense(D, activation="sigmoid")]
    )
    model = MODELS[kind](encoder, decoder)
    model.compile(optimizer=keras.optimizers.SGD(LR), metrics=["mae"])
    return model


def batch():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(B, D)).astype("float32")
    drawn = np.clip(x[:, None] + 0.1 * rng.normal(size=(B, 2, D)), 0, 1).astype("float32")
    return x, np.concatenate([x[:, None], drawn], axis=1)


def dataset(targets=False):
    """The batch; with `targets`, as (inputs, y) with y a fixed (B, d) target embedding (GRAE's)."""
    x, neighbors = batch()
    inputs = {"x": x, "neighbors": neighbors}
    if not targets:
        return tf.data.Dataset.from_tensors(inputs)
    y = np.random.default_rng(1).normal(size=(B, LATENT)).astype("float32")
    return tf.data.Dataset.from_tensors((inputs, y))


def one_step(model):
    needs_targets = isinstance(model, baselines.GeometryRegularizedAutoencoder)
    return model.fit(dataset(targets=needs_targets), epochs=1, verbose=0).history


# -- losses as Keras defines them -------------------------------------------------------


@pytest.mark.parametrize("kind", MODELS)
def test_weight_regularizer_is_in_the_loss_and_the_gradient(kind):
    plain = build(kind)
    regularized = build(kind, kernel_regularizer=keras.regularizers.L2(10.0))
    regularized.set_weights(plain.get_weights())
    kernel = regularized.encoder.layers[0].kernel
    w0 = kernel.numpy().copy()
    difference = one_step(regularized)["loss"][0] - one_step(plain)["loss"][0]
    np.testing.assert_allclose(difference, 10.0 * np.sum(w0**2), rtol=1e-4)
    # Same data gradient at the same weights: only the L2 step differs.
    for after_reg, after_plain, variable in zip(
        regularized.get_weights(), plain.get_weights(), regularized.weights
    ):
        expected = -LR * 20.0 * w0 if variable is kernel else 0.0
        np.testing.assert_allclose(after_reg - after_plain, expected, atol=2e-6)


@pytest.mark.parametrize("kind", MODELS)
def test_decoder_activity_regularizer_sees_the_centres_real_activations(kind):
    plain = build(kind)
    regularized = build(kind, activity_regularizer=keras.regularizers.L1(1.0))
    regularized.set_weights(plain.get_weights())
    x, _ = batch()
    hidden = regularized.decoder.layers[0]
    z = regularized.encode(x).numpy()
    expected = np.abs(np.tanh(z @ hidden.kernel.numpy() + hidden.bias.numpy())).sum() / B
    difference = one_step(regularized)["loss"][0] - one_step(plain)["loss"][0]
    if kind in DETERMINISTIC:
        np.testing.assert_allclose(difference, expected, rtol=1e-4)
    else:  # the decoder sees noisy inputs or sampled codes: only the order of magnitude is known
        assert 0.3 * expected < difference < 3 * expected


@pytest.mark.parametrize("kind", ["AE", "NRAE-L", "NRAE-Q"])
def test_add_loss_in_the_encoder_counts_once_per_step(kind):
    plain = build(kind)
    with_loss = build(kind, encoder_layers=[AddsLoss()])
    with_loss.set_weights(plain.get_weights())
    x, neighbors = batch()
    # The encoder of an NRAE runs once, on the centres and the drawn neighbours together.
    encoded = x if kind == "AE" else np.concatenate([x, neighbors[:, 1:].reshape(-1, D)])
    difference = one_step(with_loss)["loss"][0] - one_step(plain)["loss"][0]
    np.testing.assert_allclose(difference, 0.5 * np.mean(encoded**2), rtol=1e-4)


@pytest.mark.parametrize("kind", MODELS)
def test_evaluate_includes_the_regularizers(kind):
    plain = build(kind)
    regularized = build(kind, kernel_regularizer=keras.regularizers.L2(10.0))
    regularized.set_weights(plain.get_weights())
    w = regularized.encoder.layers[0].kernel.numpy()
    difference = regularized.evaluate(dataset(), verbose=0, return_dict=True)["loss"] - plain.evaluate(
        dataset(), verbose=0, return_dict=True
    )["loss"]
    np.testing.assert_allclose(difference, 10.0 * np.sum(w**2), rtol=1e-4)


# -- the training flag --------------------------------------------------------------------


@pytest.mark.parametrize("kind", MODELS)
def test_training_flag_is_true_in_fit_and_false_everywhere_else(kind):
    probes = [FlagProbe(), FlagProbe()]
    model = build(kind, encoder_layers=[probes[0]], decoder_layers=[probes[1]])
    initial = [probe.counts() for probe in probes]
    one_step(model)
    trained = [probe.counts() for probe in probes]
    assert all(t > t0 and i == i0 for (t, i), (t0, i0) in zip(trained, initial))
    x, _ = batch()
    model.evaluate(dataset(), verbose=0)
    model.predict(x, verbose=0)
    model.decode(model.encode(x))
    model(x)
    used = [probe.counts() for probe in probes]
    assert all(t == t1 and i >= i1 + 4 for (t, i), (t1, i1) in zip(used, trained))


@pytest.mark.parametrize("kind", MODELS)
def test_dropout_and_noise_are_off_outside_training(kind):
    noisy = build(
        kind,
        encoder_layers=[keras.layers.GaussianNoise(0.5)],
        decoder_layers=[keras.layers.Dropout(0.5)],
    )
    clean = build(kind)
    clean.set_weights(noisy.get_weights())
    first = noisy.evaluate(dataset(), verbose=0, return_dict=True)
    second = noisy.evaluate(dataset(), verbose=0, return_dict=True)
    reference = clean.evaluate(dataset(), verbose=0, return_dict=True)
    assert first == second
    for name in ("loss", "reconstruction_mse", "mae"):
        np.testing.assert_allclose(first[name], reference[name], rtol=1e-6)
    x, _ = batch()
    assert_close(noisy.predict(x, verbose=0), clean.predict(x, verbose=0))
    one_step(noisy)  # and it trains


@pytest.mark.parametrize("kind", MODELS)
def test_batch_norm_keeps_its_moving_statistics_outside_training(kind):
    model = build(
        kind,
        encoder_layers=[keras.layers.BatchNormalization()],
        decoder_layers=[keras.layers.BatchNormalization()],
    )
    norms = [model.encoder.layers[0], model.decoder.layers[1]]
    statistics = lambda: [v.numpy().copy() for n in norms for v in (n.moving_mean, n.moving_variance)]
    before = statistics()
    x, _ = batch()
    first = model.evaluate(dataset(), verbose=0, return_dict=True)
    model.predict(x, verbose=0)
    model.decode(model.encode(x))
    assert model.evaluate(dataset(), verbose=0, return_dict=True) == first
    for now, then in zip(statistics(), before):
        np.testing.assert_array_equal(now, then)
    one_step(model)
    assert all(np.abs(now - then).max() > 0 for now, then in zip(statistics(), before))


# -- Taylor terms of a decoder whose call is not its layers' chain -------------------------


class AffineOutputSequential(keras.Sequential):
    def call(self, inputs, training=None, mask=None):
        return 2.0 * super().call(inputs, training=training) + 1.0


@pytest.mark.parametrize("order", [1, 2])
def test_sequential_subclass_overriding_call_gets_its_own_taylor_terms(order):
    keras.utils.set_random_seed(0)
    f64 = {"dtype": "float64"}
    encoder = keras.Sequential([keras.Input((D,), **f64), keras.layers.Dense(LATENT, activation="tanh", **f64)])
    decoder = AffineOutputSequential(
        [keras.Input((LATENT,), **f64), keras.layers.Dense(8, activation="elu", **f64),
         keras.layers.Dense(D, activation="sigmoid", **f64)]
    )
    model = NeighborhoodReconstructionModel(encoder, decoder, order=order, kernel=kernels.Binary(0.5))
    x, neighbors = (a.astype("float64") for a in batch())
    z = encoder(x).numpy()
    tangents = encoder(neighbors.reshape(-1, D)).numpy().reshape(B, 3, LATENT) - z[:, None]
    recon = taylor_expansion_loop(decoder, z, tangents, order)
    errors = ((neighbors - recon) ** 2).sum(-1)
    weights = np.where(((neighbors - x[:, None]) ** 2).sum(-1) == 0, 1.0, 0.5)
    expected = weighted_loss(errors, weights)
    np.testing.assert_allclose(float(tf.function(model.neighborhood_loss)(x, neighbors)), expected, rtol=1e-10)


# -- compiled metrics -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", MODELS)
def test_compiled_metrics_compare_the_reconstruction_with_the_centres(kind):
    model = build(kind)
    history = one_step(model)
    assert set(history) == {"loss", "mae", "reconstruction_mse"}
    x, _ = batch()
    result = model.evaluate(dataset(), verbose=0, return_dict=True)
    x_hat = model.predict(x, verbose=0)
    np.testing.assert_allclose(result["mae"], np.mean(np.abs(x - x_hat)), rtol=1e-5)
    np.testing.assert_allclose(result["reconstruction_mse"], np.mean((x - x_hat) ** 2), rtol=1e-5)
