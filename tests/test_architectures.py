"""keras_nrae.architectures: shapes, and the conv decoder's exact layer-wise Taylor terms."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pytest
import tensorflow as tf
from _reference import nested_forward_terms, with_random_biases

from keras_nrae import taylor
from keras_nrae.architectures import conv_autoencoder


@pytest.mark.parametrize(
    "shape, stages", [((28, 28, 1), 2), ((32, 32, 3), 3), ((64, 64, 3), 4)]
)
def test_conv_autoencoder_shapes(shape, stages):
    encoder, decoder = conv_autoencoder(shape, 5)
    x = np.random.default_rng(0).uniform(size=(2, *shape)).astype("float32")
    z = encoder(x)
    assert z.shape == (2, 5)
    x_hat = np.asarray(decoder(z))
    assert x_hat.shape == (2, *shape) and np.all((x_hat > 0) & (x_hat < 1))
    transposed = [l for l in decoder.layers if isinstance(l, keras.layers.Conv2DTranspose)]
    assert len(transposed) == stages


def test_conv_decoder_takes_the_layerwise_taylor_path():
    _, decoder = conv_autoencoder((32, 32, 3), 4, filters=(2, 3, 4))
    assert taylor.layer_chain(decoder) is not None


@pytest.mark.parametrize("order", [1, 2])
def test_conv_decoder_taylor_terms_match_nested_forward_mode(order):
    keras.utils.set_random_seed(0)
    _, decoder = conv_autoencoder((8, 8, 2), 3, filters=(3, 2), dtype="float64")
    with_random_biases(decoder)
    rng = np.random.default_rng(1)
    z = tf.constant(rng.normal(size=(2, 3)))
    dz = tf.constant(rng.normal(scale=0.5, size=(2, 3, 3)))
    value, first, second = taylor.taylor_terms(decoder, z, dz, order)
    ref_value, ref_first, ref_second = nested_forward_terms(decoder, z, dz)
    assert value.dtype == tf.float64
    np.testing.assert_allclose(value, ref_value, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(first, ref_first, rtol=1e-10, atol=1e-12)
    if order == 2:
        np.testing.assert_allclose(second, ref_second, rtol=1e-10, atol=1e-12)
    else:
        assert second is None


def test_bad_conv_shapes_fail_early():
    with pytest.raises(ValueError, match="needs images"):
        conv_autoencoder((784,), 2)
    with pytest.raises(ValueError, match="divisible by 8"):
        conv_autoencoder((28, 28, 1), 2, filters=(4, 4, 4))
