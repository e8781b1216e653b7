"""The shipped (optimised) NRAE loss equals the straightforward port of the official code.

The reference, `naive_slot_errors` below, expands every slot on its own:
one pair of nested ForwardAccumulators per slot (`nested_forward_terms`),
f(z) + J dz (+ ½ dzᵀH dz) against the slot's target, slot 0 not special.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nrae import NeighborhoodReconstructionModel, kernels, taylor
from keras_nrae.architectures import mlp_autoencoder
from keras_nrae.losses import (
    neighborhood_reconstruction_loss,
    squared_distances,
    weighted_mean,
)
from tests._reference import nested_forward_terms, with_random_biases

LATENT, BATCH, SLOTS = 3, 4, 3
RTOL = 1e-5


def dense_autoencoder():
    encoder, decoder = mlp_autoencoder((6,), LATENT, hidden=(8, 8), output_activation="sigmoid")
    return encoder, with_random_biases(decoder)


def conv_autoencoder():
    """4x4x1 images; the decoder is a Conv2DTranspose stack."""
    encoder = keras.Sequential(
        [
            keras.Input((4, 4, 1)),
            keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="elu"),
            keras.layers.Flatten(),
            keras.layers.Dense(LATENT),
        ]
    )
    decoder = keras.Sequential(
        [
            keras.Input((LATENT,)),
            keras.layers.Dense(2 * 2 * 4, activation="tanh"),
            keras.layers.Reshape((2, 2, 4)),
            keras.layers.Conv2DTranspose(3, 3, strides=2, padding="same", activation="elu"),
            keras.layers.Conv2DTranspose(1, 3, padding="same"),
            keras.layers.Activation("sigmoid"),
        ]
    )
    return encoder, with_random_biases(decoder)


def functional_autoencoder():
    """A decoder written with the functional API (one chain: the layer-wise path)."""
    encoder, _ = dense_autoencoder()
    z = keras.Input((LATENT,))
    h = keras.layers.Dense(8, activation="elu")(z)
    decoder = keras.Model(z, keras.layers.Dense(6, activation="sigmoid")(h))
    assert taylor.layer_chain(decoder) is not None
    return encoder, with_random_biases(decoder)


ARCHITECTURES = {
    "dense": (dense_autoencoder, (6,)),
    "conv": (conv_autoencoder, (4, 4, 1)),
    "functional": (functional_autoencoder, (6,)),
}


def batch(shape, center_first, seed=0):
    """x (B, *shape), neighbours (B, M, *shape) near x; slot 0 = x when center_first."""
    rng = np.random.default_rng(seed)
    x = rng.random((BATCH,) + shape, dtype=np.float32)
    neighbors = np.clip(
        x[:, None] + 0.1 * rng.standard_normal((BATCH, SLOTS) + shape), 0, 1
    ).astype(np.float32)
    if center_first:
        neighbors[:, 0] = x
    return tf.constant(x), tf.constant(neighbors)


def naive_slot_errors(fn, primal, slots, targets, order):
    """Per-slot errors (B, M): ‖target − (f(p) + J t [+ ½ tᵀH t])‖², t = slot − p, one slot at a time."""
    value, first, second = nested_forward_terms(fn, primal, slots - primal[:, None])
    recon = value[:, None] + first + (0.5 * second if order == 2 else 0.0)
    errors = np.sum((np.asarray(targets) - recon) ** 2, axis=tuple(range(2, recon.ndim)))
    return tf.constant(errors, tf.float32)


def naive_loss(fn, primal, slots, targets, order, weights):
    errors = naive_slot_errors(fn, primal, slots, targets, order)
    return weighted_mean(errors, weights)


@pytest.mark.parametrize("center_first", [True, False])
@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_loss_from_codes_equals_naive(architecture, order, center_first):
    build, shape = ARCHITECTURES[architecture]
    keras.utils.set_random_seed(0)
    _, decoder = build()
    _, x_neighbors = batch(shape, center_first)
    rng = np.random.default_rng(1)
    z = tf.constant(rng.standard_normal((BATCH, LATENT)), tf.float32)
    z_neighbors = z[:, None] + tf.constant(
        0.3 * rng.standard_normal((BATCH, SLOTS, LATENT)), tf.float32
    )
    if center_first:
        z_neighbors = tf.concat([z[:, None], z_neighbors[:, 1:]], axis=1)
    weights = tf.constant(rng.random((BATCH, SLOTS)), tf.float32)
    loss, errors = neighborhood_reconstruction_loss(
        decoder, z, z_neighbors, x_neighbors, weights, order, center_first,
        return_errors=True,
    )
    naive_errors = naive_slot_errors(decoder, z, z_neighbors, x_neighbors, order)
    np.testing.assert_allclose(errors, naive_errors, rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(loss, weighted_mean(naive_errors, weights), rtol=RTOL)


@pytest.mark.parametrize("center_first", [True, False])
@pytest.mark.parametrize("expand", ["decoder", "autoencoder"])
@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_model_loss_equals_naive(architecture, order, expand, center_first):
    build, shape = ARCHITECTURES[architecture]
    keras.utils.set_random_seed(0)
    encoder, decoder = build()
    kernel = kernels.Binary(lam=0.5)
    model = NeighborhoodReconstructionModel(
        encoder, decoder, order, kernel, expand, include_center=center_first
    )
    x, neighbors = batch(shape, center_first)
    weights = kernel(squared_distances(x, neighbors))
    if expand == "decoder":
        codes = encoder(tf.reshape(neighbors, (-1,) + shape))
        expected = naive_loss(
            decoder, encoder(x), tf.reshape(codes, (BATCH, SLOTS, LATENT)),
            neighbors, order, weights,
        )
    else:
        expected = naive_loss(
            lambda v: decoder(encoder(v)), x, neighbors, neighbors, order, weights
        )
    np.testing.assert_allclose(model.neighborhood_loss(x, neighbors), expected, rtol=RTOL)


@pytest.mark.parametrize("order", [1, 2])
def test_conv_decoder_takes_layerwise_path_and_trains(order):
    """Layer-wise gradients match those through vectorised ForwardAccumulators."""
    keras.utils.set_random_seed(0)
    encoder, decoder = conv_autoencoder()
    assert taylor.layer_chain(decoder) is not None
    z = tf.random.stateless_normal((BATCH, LATENT), seed=(1, 2))
    tangents = 0.3 * tf.random.stateless_normal((BATCH, SLOTS, LATENT), seed=(3, 4))

    @tf.function
    def gradients(method):
        with tf.GradientTape() as tape:
            tape.watch(z)
            terms = [t for t in taylor.taylor_terms(decoder, z, tangents, order, method) if t is not None]
            scalar = sum(tf.reduce_sum(tf.sin(t)) for t in terms)
        return tape.gradient(scalar, decoder.trainable_variables + [z])

    expected = gradients("vectorized")
    for actual, wanted in zip(gradients("auto"), expected):
        np.testing.assert_allclose(actual, wanted, rtol=1e-4, atol=1e-6)
    model = NeighborhoodReconstructionModel(encoder, decoder, order=order)
    model.compile(optimizer="adam")
    x, neighbors = batch((4, 4, 1), center_first=True)
    history = model.fit(
        tf.data.Dataset.from_tensors({"x": x, "neighbors": neighbors}), epochs=2, verbose=0
    )
    assert np.all(np.isfinite(history.history["loss"]))


def test_unsupported_decoder_falls_back_and_still_equals_naive():
    """A layer without a Taylor-mode rule (LayerNormalization) uses the general path."""
    keras.utils.set_random_seed(0)
    decoder = keras.Sequential(
        [
            keras.Input((LATENT,)),
            keras.layers.Dense(8, activation="elu"),
            keras.layers.LayerNormalization(),
            keras.layers.Dense(6),
        ]
    )
    assert taylor.layer_chain(decoder) is None
    _, x_neighbors = batch((6,), center_first=False)
    z = tf.random.stateless_normal((BATCH, LATENT), seed=(1, 2))
    z_neighbors = z[:, None] + 0.3 * tf.random.stateless_normal(
        (BATCH, SLOTS, LATENT), seed=(3, 4)
    )
    loss = neighborhood_reconstruction_loss(decoder, z, z_neighbors, x_neighbors, order=2)
    expected = naive_loss(decoder, z, z_neighbors, x_neighbors, 2, None)
    np.testing.assert_allclose(loss, expected, rtol=RTOL)
