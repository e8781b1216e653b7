"""Taylor terms of many kinds of Keras decoders against nested ForwardAccumulators, one slot at a time.

The reference expands each slot separately (float64, the decoder called with
the same `training` flag), so it shares nothing with the vectorised paths.
Each decoder also states which path `taylor_terms` takes: the layer-wise path
only where every layer's computation is known exactly.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nrae import taylor
from keras_nrae.taylor import taylor_terms
from tests._numerics import assert_close
from tests._reference import with_random_biases

B, M, D, OUT = 4, 3, 2, 6
F64 = {"dtype": "float64"}


def dense(units, activation="elu"):
    return keras.layers.Dense(units, activation=activation, **F64)


class AffineOutputSequential(keras.Sequential):
    """A Sequential whose call is not its layers' chain: 2 f(z) + 1."""

    def call(self, inputs, training=None, mask=None):
        return 2.0 * super().call(inputs, training=training) + 1.0


class SubclassedDecoder(keras.Model):
    def __init__(self):
        super().__init__(**F64)
        self.hidden = dense(8, "tanh")
        self.out = dense(OUT, "sigmoid")

    def call(self, z, training=None):
        return self.out(self.hidden(z) * z[:, :1])


def sequential():
    return keras.Sequential([keras.Input((D,), **F64), dense(8), dense(OUT, "sigmoid")])


def sequential_subclass():
    return AffineOutputSequential([keras.Input((D,), **F64), dense(8), dense(OUT, "tanh")])


def chain_functional():
    z = keras.Input((D,), **F64)
    return keras.Model(z, dense(OUT, "softplus")(keras.layers.Activation("tanh", **F64)(dense(8, None)(z))))


def skip_functional():
    z = keras.Input((D,), **F64)
    h = dense(OUT, "tanh")(z)
    return keras.Model(z, keras.layers.Add(**F64)([h, dense(OUT, "elu")(dense(5)(z))]))


def subclassed_model():
    model = SubclassedDecoder()
    model(tf.zeros((1, D), "float64"))
    return model


def with_dropout():
    return keras.Sequential([
        keras.Input((D,), **F64), dense(8), keras.layers.Dropout(0.5, **F64),
        keras.layers.GaussianNoise(0.3, **F64), dense(OUT, "sigmoid"),
    ])


def with_batch_norm():
    model = keras.Sequential([
        keras.Input((D,), **F64), dense(8, None), keras.layers.BatchNormalization(**F64),
        keras.layers.Activation("elu", **F64), dense(OUT, "sigmoid"),
    ])
    norm = model.layers[1]
    rng = np.random.default_rng(3)
    norm.moving_mean.assign(rng.normal(size=8))
    norm.moving_variance.assign(rng.uniform(0.5, 2.0, size=8))
    norm.gamma.assign(rng.uniform(0.5, 1.5, size=8))
    norm.beta.assign(rng.normal(size=8))
    return model


def with_layer_norm():
    return keras.Sequential([
        keras.Input((D,), **F64), dense(8, None), keras.layers.LayerNormalization(**F64),
        keras.layers.Activation("tanh", **F64), dense(OUT, "sigmoid"),
    ])


def with_conv_transpose():
    return keras.Sequential([
        keras.Input((D,), **F64), dense(2 * 2 * 3, "softplus"), keras.layers.Reshape((2, 2, 3), **F64),
        keras.layers.Conv2DTranspose(2, 3, strides=2, padding="same", activation="elu", **F64),
        keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid", **F64),
    ])


def with_activity_regularizer():
    return keras.Sequential([
        keras.Input((D,), **F64), keras.layers.Dense(8, activation="elu", activity_regularizer="l1", **F64),
        dense(OUT, "sigmoid"),
    ])


# decoder -> takes the layer-wise path
MATRIX = {
    sequential: True,
    sequential_subclass: False,
    chain_functional: True,
    skip_functional: False,
    subclassed_model: False,
    with_dropout: True,
    with_batch_norm: True,
    with_layer_norm: False,
    with_conv_transpose: True,
    with_activity_regularizer: False,
}


def nested_accumulator_terms(decoder, z, dz, order, training):
    """(f(z), [J dz_m], [dz_mᵀ H dz_m]) expanding one slot m at a time."""
    firsts, seconds = [], []
    for m in range(dz.shape[1]):
        with tf.autodiff.ForwardAccumulator(z, dz[:, m]) as outer:
            with tf.autodiff.ForwardAccumulator(z, dz[:, m]) as inner:
                value = decoder(z, training=training)
            first = inner.jvp(value)
        firsts.append(first)
        seconds.append(outer.jvp(first))
    return value, tf.stack(firsts, 1), tf.stack(seconds, 1)


def codes(seed=0):
    rng = np.random.default_rng(seed)
    return tf.constant(rng.normal(size=(B, D))), tf.constant(0.5 * rng.normal(size=(B, M, D)))


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("make_decoder", list(MATRIX), ids=lambda f: f.__name__)
def test_inference_terms_match_nested_accumulators(make_decoder, order):
    keras.utils.set_random_seed(0)
    decoder = with_random_biases(make_decoder())
    assert (taylor.layer_chain(decoder) is not None) is MATRIX[make_decoder]
    z, dz = codes()
    value, first, second = tf.function(
        lambda z, dz: taylor_terms(decoder, z, dz, order=order, training=False)
    )(z, dz)
    ref_value, ref_first, ref_second = tf.function(
        lambda z, dz: nested_accumulator_terms(decoder, z, dz, order, training=False)
    )(z, dz)
    np.testing.assert_allclose(value, ref_value, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(first, ref_first, rtol=1e-10, atol=1e-12)
    if order == 1:
        assert second is None
    else:
        np.testing.assert_allclose(second, ref_second, rtol=1e-9, atol=1e-11)


def test_training_batch_norm_expands_with_the_batch_statistics_held_fixed():
    """Training mode: f(z) normalises with the centres' batch statistics; the terms are
    those of the same decoder in inference mode with its moving statistics set to them."""
    keras.utils.set_random_seed(0)
    decoder = with_random_biases(with_batch_norm())
    norm = decoder.layers[1]
    z, dz = codes(seed=1)
    moving = [norm.moving_mean.numpy(), norm.moving_variance.numpy()]
    value, first, second = tf.function(
        lambda z, dz: taylor_terms(decoder, z, dz, order=2, training=True)
    )(z, dz)
    # The moving statistics moved once, towards this batch's.
    pre = decoder.layers[0](z).numpy()
    mean, variance = pre.mean(0), pre.var(0)
    assert_close(norm.moving_mean, 0.99 * moving[0] + 0.01 * mean, rtol=1e-12)
    assert_close(norm.moving_variance, 0.99 * moving[1] + 0.01 * variance, rtol=1e-12)
    # Reference: inference mode with the batch statistics as moving statistics.
    norm.moving_mean.assign(mean)
    norm.moving_variance.assign(variance)
    ref_value, ref_first, ref_second = nested_accumulator_terms(decoder, z, dz, 2, training=False)
    np.testing.assert_allclose(value, ref_value, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(first, ref_first, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(second, ref_second, rtol=1e-9, atol=1e-11)


def test_training_dropout_applies_one_mask_to_value_and_tangents():
    """Linear layers around Dropout: the expansion is exact, so value and J dz must
    be (z W + b) ⊙ mask and (dz W) ⊙ mask with the same mask of 0 and 1/(1 − rate)."""
    keras.utils.set_random_seed(0)
    linear = keras.layers.Dense(64, **F64)
    decoder = with_random_biases(keras.Sequential(
        [keras.Input((D,), **F64), linear, keras.layers.Dropout(0.5, **F64)]
    ))
    z, dz = codes(seed=2)
    value, first, _ = taylor_terms(decoder, z, dz, order=1, training=True)
    mask = value.numpy() / linear(z).numpy()
    assert set(np.round(np.unique(mask), 12)) == {0.0, 2.0}
    expected_first = np.einsum("bmd,du->bmu", dz.numpy(), linear.kernel.numpy()) * mask[:, None]
    np.testing.assert_allclose(first, expected_first, rtol=1e-12, atol=1e-12)


def test_training_gaussian_noise_leaves_the_tangents_alone():
    keras.utils.set_random_seed(0)
    linear = keras.layers.Dense(5, **F64)
    decoder = keras.Sequential([keras.Input((D,), **F64), linear, keras.layers.GaussianNoise(1.0, **F64)])
    z, dz = codes(seed=3)
    value, first, _ = taylor_terms(decoder, z, dz, order=1, training=True)
    assert np.abs(value.numpy() - linear(z).numpy()).max() > 0.1
    assert_close(first, np.einsum("bmd,du->bmu", dz.numpy(), linear.kernel.numpy()), rtol=1e-12)


@pytest.mark.parametrize("make_decoder", [skip_functional, subclassed_model])
def test_black_box_decoder_with_dropout_is_refused_in_training(make_decoder):
    decoder = make_decoder()
    z = keras.Input((D,), **F64)
    wrapped = keras.Model(z, keras.layers.Dropout(0.2, **F64)(decoder(z)))
    z, dz = codes()
    with pytest.raises(ValueError, match=r"Dropout layer .* draws noise or uses batch statistics"):
        taylor_terms(wrapped, z, dz, order=1, training=True)
    taylor_terms(wrapped, z, dz, order=1, training=False)  # inference is per example


def test_affine_reimplements_each_layer_call():
    """`taylor.affine` (+ activation) is each affine layer's own call: pins the Keras version."""
    rng = np.random.default_rng(0)
    cases = [
        (keras.layers.Dense(3, activation="elu", **F64), (4, 5)),
        (keras.layers.Conv1D(2, 3, padding="causal", dilation_rate=2, activation="tanh", **F64), (2, 7, 3)),
        (keras.layers.Conv2D(2, 3, strides=2, padding="same", **F64), (2, 6, 6, 3)),
        (keras.layers.Conv3D(2, 2, **F64), (1, 3, 3, 3, 2)),
        (keras.layers.Conv1DTranspose(2, 3, strides=2, **F64), (2, 4, 3)),
        (keras.layers.Conv2DTranspose(2, 3, strides=2, padding="same", output_padding=1, **F64), (2, 3, 3, 2)),
        (keras.layers.Conv3DTranspose(2, 2, strides=2, use_bias=False, **F64), (1, 2, 2, 2, 2)),
    ]
    for layer, shape in cases:
        x = tf.constant(rng.normal(size=shape))
        layer.build(shape)
        if layer.bias is not None:
            layer.bias.assign(rng.normal(size=layer.bias.shape))
        np.testing.assert_allclose(layer.activation(taylor.affine(layer, x)), layer(x), rtol=1e-12, atol=1e-12)
        without_bias = taylor.affine(layer, x, bias=False)
        bias = 0.0 if layer.bias is None else layer.bias.numpy()
        np.testing.assert_allclose(without_bias + bias, taylor.affine(layer, x), rtol=1e-12, atol=1e-12)
