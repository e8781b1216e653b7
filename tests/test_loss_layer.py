"""keras_nrae.losses.NeighborhoodReconstructionLoss: value, add_loss inside fit,
serialization, input errors, and the VAE example."""

import importlib.util
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nrae import kernels
from keras_nrae.architectures import mlp_autoencoder
from keras_nrae.losses import NeighborhoodReconstructionLoss, neighborhood_reconstruction_loss
from tests._numerics import assert_close

SHAPE, LATENT, BATCH, SLOTS = (3,), 2, 4, 3
ROOT = Path(__file__).resolve().parents[1]
LAM, WEIGHT = 0.5, 0.25


def _autoencoder():
    keras.utils.set_random_seed(0)
    return mlp_autoencoder(SHAPE, LATENT, hidden=(6,), activation="tanh")


def _batch(dtype="float32"):
    """Centre-first batch: slot 0 is the centre itself."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH, *SHAPE)).astype(dtype)
    neighbors = (x[:, None] + 0.5 * rng.normal(size=(BATCH, SLOTS, *SHAPE))).astype(dtype)
    neighbors[:, 0] = x
    return x, neighbors


def _codes(encoder, x, neighbors):
    z_neighbors = tf.reshape(encoder(neighbors.reshape(-1, *SHAPE)), (BATCH, SLOTS, LATENT))
    return encoder(x), z_neighbors


def test_returns_the_loss_and_adds_it_weighted():
    encoder, decoder = _autoencoder()
    x, neighbors = _batch()
    z, z_neighbors = _codes(encoder, x, neighbors)
    layer = NeighborhoodReconstructionLoss(
        decoder, kernel=kernels.Binary(lam=LAM), weight=WEIGHT
    )

    loss = layer(x, neighbors, z, z_neighbors, center_first=True)

    binary_weights = np.where(np.arange(SLOTS) == 0, 1.0, LAM) * np.ones((BATCH, 1))
    expected = neighborhood_reconstruction_loss(
        decoder, z, z_neighbors, neighbors, binary_weights.astype("float32")
    )
    np.testing.assert_allclose(loss.numpy(), expected.numpy(), rtol=1e-6)
    assert len(layer.losses) == 1
    np.testing.assert_allclose(layer.losses[0].numpy(), WEIGHT * expected.numpy(), rtol=1e-6)


class UserAutoencoder(keras.Model):
    """A user's own autoencoder class that adds the NRAE term in call()."""

    def __init__(self, encoder, decoder, neighborhood):
        super().__init__()
        self.encoder, self.decoder, self.neighborhood = encoder, decoder, neighborhood

    def call(self, inputs):
        x, neighbors = inputs["x"], inputs["neighbors"]
        z = self.encoder(x)
        z_neighbors = tf.reshape(
            self.encoder(tf.reshape(neighbors, (-1, *SHAPE))), (BATCH, SLOTS, LATENT)
        )
        self.neighborhood(x, neighbors, z, z_neighbors, center_first=True)
        return self.decoder(z)


@pytest.mark.parametrize(
    "order,jit", [(1, False), (2, False), (1, True), (2, True)]
)
def test_fit_minimises_the_added_loss(order, jit):
    encoder, decoder = _autoencoder()
    x, neighbors = _batch()
    layer = NeighborhoodReconstructionLoss(
        decoder, order=order, kernel=kernels.Binary(lam=LAM), weight=WEIGHT
    )
    model = UserAutoencoder(encoder, decoder, layer)
    expected = WEIGHT * layer(x, neighbors, *_codes(encoder, x, neighbors)).numpy()
    before = [v.numpy() for v in model.trainable_variables]
    assert len(before) == len(encoder.trainable_variables) + len(decoder.trainable_variables)

    model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=jit)
    history = model.fit({"x": x, "neighbors": neighbors}, batch_size=BATCH, epochs=1, verbose=0)

    # One step: the reported loss is the added loss before the update.
    np.testing.assert_allclose(history.history["loss"][0], expected, rtol=1e-5)
    for b, v in zip(before, model.trainable_variables):
        assert not np.allclose(b, v.numpy()), v.path


def test_config_round_trip():
    _, decoder = _autoencoder()
    layer = NeighborhoodReconstructionLoss(
        decoder, order=2, kernel=kernels.Gaussian(bandwidth=2.0), weight=WEIGHT, name="nrae"
    )
    config = keras.saving.serialize_keras_object(layer)
    assert config["registered_name"] == "keras_nrae>NeighborhoodReconstructionLoss"

    restored = keras.saving.deserialize_keras_object(config)

    assert isinstance(restored, NeighborhoodReconstructionLoss)
    assert (restored.name, restored.order, restored.weight) == ("nrae", 2, WEIGHT)
    assert restored.kernel == kernels.Gaussian(bandwidth=2.0)
    assert restored.decoder is not decoder
    assert restored.decoder.get_config() == decoder.get_config()
    restored.decoder.set_weights(decoder.get_weights())
    x, neighbors = _batch()
    codes = _codes(_autoencoder()[0], x, neighbors)
    assert_close(
        restored(x, neighbors, *codes).numpy(), layer(x, neighbors, *codes).numpy(), rtol=1e-6
    )


def test_inputs_are_not_autocast():
    encoder, decoder = _autoencoder()
    x, neighbors = _batch(dtype="float64")
    z, z_neighbors = _codes(encoder, x, neighbors)
    loss = NeighborhoodReconstructionLoss(decoder)(x, neighbors, z, z_neighbors)
    assert loss.dtype == tf.float64


def test_bad_inputs_are_named():
    encoder, decoder = _autoencoder()
    x, neighbors = _batch()
    z, z_neighbors = _codes(encoder, x, neighbors)
    layer = NeighborhoodReconstructionLoss(decoder)
    with pytest.raises(ValueError, match="x_neighbors must be"):
        layer(x, neighbors[..., :2], z, z_neighbors)
    with pytest.raises(ValueError, match="Neighbour count mismatch"):
        layer(x, neighbors[:, :2], z, z_neighbors)
    with pytest.raises(ValueError, match="order must be 1"):
        NeighborhoodReconstructionLoss(decoder, order=3)


def test_vae_example_smoke():
    path = ROOT / "examples" / "vae_with_nrae.py"
    spec = importlib.util.spec_from_file_location("vae_with_nrae", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    losses = module.main(["--smoke"])
    assert len(losses) == 3 and np.all(np.isfinite(losses))
