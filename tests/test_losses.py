"""The NRAE loss against a brute-force loop over every (centre, neighbour) pair."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nrae import NeighborhoodReconstructionModel, kernels
from tests._reference import taylor_expansion_loop, weighted_loss

B, M, D, LATENT = 3, 3, 4, 2


def tiny_autoencoder(decoder_activation="elu"):
    f64 = dict(dtype="float64")
    encoder = keras.Sequential(
        [
            keras.Input((D,), **f64),
            keras.layers.Dense(6, activation="tanh", **f64),
            keras.layers.Dense(LATENT, **f64),
        ]
    )
    decoder = keras.Sequential(
        [keras.Input((LATENT,), **f64)]
        + ([keras.layers.Dense(6, activation=decoder_activation, **f64)] if decoder_activation else [])
        + [keras.layers.Dense(D, activation="sigmoid" if decoder_activation else None, **f64)]
    )
    return encoder, decoder


def batch(center_first, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(B, D))
    neighbors = x[:, None] + 0.3 * rng.normal(size=(B, M, D))
    if center_first:
        neighbors[:, 0] = x
    return x, neighbors


def numpy_weights(kernel, x, neighbors):
    sq = ((neighbors - x[:, None]) ** 2).sum(-1)
    if isinstance(kernel, kernels.Binary):
        return np.where(sq == 0, 1.0, kernel.lam)
    return np.exp(-sq / kernel.bandwidth**2)


def brute_force_loss(model, x, neighbors):
    enc, dec = model.encoder, model.decoder
    if model.expand == "decoder":
        z = enc(x).numpy()
        tangents = enc(neighbors.reshape(B * M, D)).numpy().reshape(B, M, LATENT) - z[:, None]
        recon = taylor_expansion_loop(dec, z, tangents, model.order)
    else:
        recon = taylor_expansion_loop(lambda v: dec(enc(v)), x, neighbors - x[:, None], model.order)
    errors = ((neighbors - recon) ** 2).sum(-1)
    return weighted_loss(errors, numpy_weights(model.kernel, x, neighbors))


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("kernel", [kernels.Binary(lam=0.5), kernels.Gaussian(bandwidth=0.7)])
@pytest.mark.parametrize("expand", ["decoder", "autoencoder"])
@pytest.mark.parametrize("center_first", [True, False])
def test_loss_matches_brute_force(order, kernel, expand, center_first):
    model = NeighborhoodReconstructionModel(
        *tiny_autoencoder(), order=order, kernel=kernel, expand=expand, include_center=center_first
    )
    x, neighbors = batch(center_first)
    loss = tf.function(model.neighborhood_loss)(x, neighbors)
    np.testing.assert_allclose(float(loss), brute_force_loss(model, x, neighbors), rtol=1e-10)


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("expand", ["decoder", "autoencoder"])
def test_linear_decoder_expansion_is_exact(order, expand):
    """Taylor expansion of a linear decoder is the decoder itself (decoder mode)."""
    encoder, decoder = tiny_autoencoder(decoder_activation=None)
    if expand == "autoencoder":  # f∘g must be linear too
        encoder = keras.Sequential([keras.Input((D,), dtype="float64"), keras.layers.Dense(LATENT, dtype="float64")])
    kernel = kernels.Gaussian(0.8)
    model = NeighborhoodReconstructionModel(encoder, decoder, order=order, kernel=kernel, expand=expand)
    x, neighbors = batch(center_first=True, seed=3)
    direct = model(neighbors.reshape(B * M, D)).numpy().reshape(B, M, D)
    errors = ((neighbors - direct) ** 2).sum(-1)
    expected = weighted_loss(errors, numpy_weights(kernel, x, neighbors))
    np.testing.assert_allclose(float(model.neighborhood_loss(x, neighbors)), expected, rtol=1e-10)


@pytest.mark.parametrize("order", [1, 2])
def test_binary_lam_zero_with_center_is_plain_autoencoder_loss(order):
    model = NeighborhoodReconstructionModel(*tiny_autoencoder(), order=order, kernel=kernels.Binary(lam=0.0))
    x, neighbors = batch(center_first=True)
    plain = np.mean(((x - model(x).numpy()) ** 2).sum(-1))
    np.testing.assert_allclose(float(model.neighborhood_loss(x, neighbors)), plain, rtol=1e-12)


def test_train_step_follows_the_brute_force_gradient():
    """One SGD step moves a weight by -lr · d(brute-force loss)/d(weight)."""
    model = NeighborhoodReconstructionModel(*tiny_autoencoder(), order=2, kernel=kernels.Binary(2.0))
    x, neighbors = batch(center_first=True)
    kernel = model.decoder.layers[0].kernel
    original = kernel.numpy()
    eps, (i, j), values = 1e-6, (1, 4), []
    for sign in (1, -1):
        shifted = original.copy()
        shifted[i, j] += sign * eps
        kernel.assign(shifted)
        values.append(brute_force_loss(model, x, neighbors))
    kernel.assign(original)
    lr = 0.1
    model.compile(optimizer=keras.optimizers.SGD(lr))
    ds = tf.data.Dataset.from_tensors({"x": x, "neighbors": neighbors})
    model.fit(ds, epochs=1, verbose=0)
    step = original[i, j] - kernel.numpy()[i, j]
    np.testing.assert_allclose(step / lr, (values[0] - values[1]) / (2 * eps), rtol=1e-5)


def test_kernels_closed_form_and_serialization():
    sq = tf.constant([[0.0, 1.0, 4.0]])
    np.testing.assert_allclose(kernels.Binary(3.0)(sq), [[1.0, 3.0, 3.0]])
    np.testing.assert_allclose(kernels.Gaussian(2.0)(sq), [np.exp([0.0, -0.25, -1.0])], rtol=1e-6)
    for kernel in (kernels.Binary(3.0), kernels.Gaussian(2.0)):
        assert kernels.get(kernels.serialize(kernel)) == kernel
    assert kernels.get("gaussian") == kernels.Gaussian()
    assert kernels.get(None) == kernels.Binary()
    with pytest.raises(ValueError, match="Unknown kernel 'cosine'"):
        kernels.get("cosine")
    with pytest.raises(ValueError, match="lam must be >= 0"):
        kernels.Binary(-1.0)
    with pytest.raises(ValueError, match="bandwidth must be > 0"):
        kernels.Gaussian(0.0)
