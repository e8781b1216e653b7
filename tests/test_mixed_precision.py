"""mixed_float16: the model trains with loss scaling and its loss tracks float32."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nrae import NeighborhoodReconstructionModel, kernels
from keras_nrae.architectures import mlp_autoencoder


@pytest.fixture
def policy():
    """Set the global dtype policy for the test, then restore it."""
    previous = keras.mixed_precision.global_policy()
    yield keras.mixed_precision.set_global_policy
    keras.mixed_precision.set_global_policy(previous)


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    others = x[:, None] + 0.3 * rng.normal(size=(32, 2, 4))
    neighbors = np.concatenate([x[:, None], others], axis=1).astype("float32")
    return x, neighbors


def _model(order):
    keras.utils.set_random_seed(0)
    encoder, decoder = mlp_autoencoder((4,), 2, hidden=(16,), activation="tanh")
    model = NeighborhoodReconstructionModel(
        encoder, decoder, order=order, kernel=kernels.Binary(1.0)
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    return model


@pytest.mark.parametrize("order", [1, 2])
def test_mixed_float16_trains_and_matches_float32_loss(policy, order):
    x, neighbors = _data()
    policy("float32")
    reference = float(_model(order).neighborhood_loss(x, neighbors))
    policy("mixed_float16")
    model = _model(order)
    assert model.decoder.compute_dtype == "float16"
    assert all(v.dtype == "float32" for v in model.trainable_variables)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    # Same initial weights: float16 compute changes the loss by float16 rounding only.
    np.testing.assert_allclose(float(model.neighborhood_loss(x, neighbors)), reference, rtol=1e-3)
    data = tf.data.Dataset.from_tensor_slices({"x": x, "neighbors": neighbors}).batch(8)
    losses = model.fit(data, epochs=4, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.8 * losses[0]
