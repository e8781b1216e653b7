"""Expanding the decoder before its output activation: σ(a + J_a dz + ½ dzᵀ H_a dz).

The reference is a twin decoder a (same weights, output activation removed)
expanded by nested ForwardAccumulators, with σ applied afterwards.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nrae import NeighborhoodReconstructionModel, kernels
from keras_nrae.losses import NeighborhoodReconstructionLoss
from keras_nrae.taylor import taylor_expansion
from tests._reference import nested_forward_terms, weighted_loss, with_random_biases
from tests._numerics import assert_close

B, M, D = 3, 2, 2
F64 = dict(dtype="float64")


def mlp_decoder(head):
    """Dense-ELU, Dense(6, head), Reshape(2, 3): the activation inside the Dense."""
    return keras.Sequential([
        keras.Input((D,), **F64), keras.layers.Dense(8, activation="elu", **F64),
        keras.layers.Dense(6, activation=head, **F64), keras.layers.Reshape((2, 3), **F64),
    ])


def activation_layer_decoder(head):
    """The output activation as its own Activation layer."""
    layers = [keras.Input((D,), **F64), keras.layers.Dense(8, activation="tanh", **F64), keras.layers.Dense(6, **F64)]
    return keras.Sequential(layers + ([keras.layers.Activation(head, **F64)] if head else []))


def conv_decoder(head):
    return keras.Sequential([
        keras.Input((D,), **F64), keras.layers.Dense(2 * 2 * 3, activation="softplus", **F64),
        keras.layers.Reshape((2, 2, 3), **F64),
        keras.layers.Conv2DTranspose(2, 3, strides=2, padding="same", activation="elu", **F64),
        keras.layers.Conv2D(1, 3, padding="same", activation=head, **F64),
    ])


def decoder_and_twin(make_decoder):
    keras.utils.set_random_seed(0)
    decoder = with_random_biases(make_decoder("sigmoid"))
    twin = make_decoder(None)
    twin.set_weights(decoder.get_weights())
    return decoder, twin


def reference(twin, z, dz, order):
    value, first, second = nested_forward_terms(twin, z, dz)
    step = first + (0.5 * second if order == 2 else 0)
    return tf.sigmoid(value), tf.sigmoid(value[:, None] + step)


def codes():
    z = tf.random.stateless_normal((B, D), seed=(1, 2), dtype="float64")
    return z, 1.5 * tf.random.stateless_normal((B, M, D), seed=(3, 4), dtype="float64")


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("make_decoder", [mlp_decoder, activation_layer_decoder, conv_decoder])
def test_expansion_before_the_output_activation_matches_nested_forward_mode(make_decoder, order):
    decoder, twin = decoder_and_twin(make_decoder)
    z, dz = codes()
    value, recon = tf.function(taylor_expansion)(decoder, z, dz, order, expand_output_activation=False)
    expected_value, expected_recon = reference(twin, z, dz, order)
    assert_close(value, decoder(z), rtol=1e-12)
    assert_close(value, expected_value, rtol=1e-12)
    np.testing.assert_allclose(recon, expected_recon, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("order", [1, 2])
def test_weight_gradients_match_central_differences(order):
    decoder, twin = decoder_and_twin(mlp_decoder)
    z, dz = codes()
    targets = tf.random.stateless_uniform((B, M, 2, 3), seed=(5, 6), dtype="float64")
    with tf.GradientTape() as tape:
        recon = tf.function(taylor_expansion)(decoder, z, dz, order, expand_output_activation=False)[1]
        loss = tf.reduce_sum((targets - recon) ** 2)
    gradients = tape.gradient(loss, decoder.trainable_variables)
    reference_loss = lambda: float(tf.reduce_sum((targets - reference(twin, z, dz, order)[1]) ** 2))
    eps = 1e-6
    for variable, gradient in zip(twin.trainable_variables, gradients):
        expected = np.zeros(variable.shape)
        for i in np.ndindex(*variable.shape):
            start = variable.numpy()
            for sign in (1, -1):
                shifted = start.copy()
                shifted[i] += sign * eps
                variable.assign(shifted)
                expected[i] += sign * reference_loss() / (2 * eps)
            variable.assign(start)
        np.testing.assert_allclose(gradient, expected, rtol=1e-6, atol=1e-8)


def test_reconstructions_stay_in_the_activation_range():
    # Far neighbours: the sigmoid's own expansion leaves [0, 1], σ(a + ...) cannot.
    decoder, _ = decoder_and_twin(mlp_decoder)
    z, dz = codes()
    _, outside = tf.function(taylor_expansion)(decoder, z, 20 * dz, 2)
    _, inside = tf.function(taylor_expansion)(decoder, z, 20 * dz, 2, expand_output_activation=False)
    assert np.min(outside) < 0 or np.max(outside) > 1
    assert 0 <= np.min(inside) and np.max(inside) <= 1


def test_model_loss_matches_the_reference_and_survives_its_config():
    decoder, twin = decoder_and_twin(mlp_decoder)
    encoder = keras.Sequential([keras.Input((2, 3), **F64), keras.layers.Flatten(**F64), keras.layers.Dense(D, **F64)])
    model = NeighborhoodReconstructionModel(
        encoder, decoder, order=2, kernel=kernels.Binary(0.5), include_center=False, expand_output_activation=False
    )
    rng = np.random.default_rng(0)
    x, neighbors = rng.uniform(size=(B, 2, 3)), rng.uniform(size=(B, M, 2, 3))
    z = encoder(x)
    dz = tf.reshape(encoder(neighbors.reshape(B * M, 2, 3)), (B, M, D)) - z[:, None]
    _, recon = reference(twin, z, dz, order=2)
    errors = np.sum((neighbors - recon.numpy()) ** 2, axis=(2, 3))
    weights = np.where(np.sum((neighbors - x[:, None]) ** 2, axis=(2, 3)) == 0, 1.0, 0.5)
    loss = tf.function(model.neighborhood_loss)(tf.constant(x), tf.constant(neighbors))
    assert float(loss) == pytest.approx(weighted_loss(errors, weights), rel=1e-10)
    config = NeighborhoodReconstructionModel.from_config(model.get_config()).get_config()
    assert config["expand_output_activation"] is False
    layer = NeighborhoodReconstructionLoss(decoder, order=2, expand_output_activation=False)
    assert NeighborhoodReconstructionLoss.from_config(layer.get_config()).expand_output_activation is False


class Shifted(keras.layers.Dense):
    def call(self, inputs):
        return super().call(inputs + 1.0)


@pytest.mark.parametrize("layers, message", [
    ([Shifted(4, activation="sigmoid")], "chain of layers with exact Taylor rules"),
    ([keras.layers.Dense(4, activation="sigmoid"), keras.layers.Dropout(0.1)], "no output activation"),
])
def test_decoders_that_cannot_be_split_are_refused_early(layers, message):
    decoder = keras.Sequential([keras.Input((D,))] + layers)
    encoder = keras.Sequential([keras.Input((4,)), keras.layers.Dense(D)])
    with pytest.raises(ValueError, match=message):
        NeighborhoodReconstructionModel(encoder, decoder, expand_output_activation=False)
    with pytest.raises(ValueError, match=message):
        NeighborhoodReconstructionLoss(decoder, expand_output_activation=False)


def test_needs_the_decoder_expansion():
    decoder = keras.Sequential([keras.Input((D,)), keras.layers.Dense(4, activation="sigmoid")])
    encoder = keras.Sequential([keras.Input((4,)), keras.layers.Dense(D)])
    with pytest.raises(ValueError, match='needs expand="decoder"'):
        NeighborhoodReconstructionModel(encoder, decoder, expand="autoencoder", expand_output_activation=False)
