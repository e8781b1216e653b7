"""compile(jit_compile=True): same losses as without XLA, traced once."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nrae import NeighborhoodReconstructionModel, kernels
from keras_nrae.architectures import mlp_autoencoder


class CountingModel(NeighborhoodReconstructionModel):
    """Counts Python executions of train_step, i.e. traces of the train function."""

    traces = 0

    def train_step(self, data):
        CountingModel.traces += 1
        return super().train_step(data)


def _dataset():
    """16 centres in batches of 4: the first two batches hold the centre in
    slot 0, the last two do not (a model with include_center=False takes both)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype("float32")
    neighbors = rng.normal(size=(16, 3, 4)).astype("float32")
    neighbors[:8, 0] = x[:8]
    return tf.data.Dataset.from_tensor_slices({"x": x, "neighbors": neighbors}).batch(4)


def _fit(order, jit_compile):
    keras.utils.set_random_seed(0)
    encoder, decoder = mlp_autoencoder((4,), 2, hidden=(16,), activation="tanh")
    model = CountingModel(
        encoder, decoder, order=order, kernel=kernels.Binary(lam=0.5), include_center=False
    )
    model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=jit_compile)
    assert model.jit_compile is jit_compile
    CountingModel.traces = 0
    losses = model.fit(_dataset(), epochs=3, verbose=0).history["loss"]
    return losses, CountingModel.traces


@pytest.mark.parametrize("order", [1, 2])
def test_xla_matches_graph_mode_and_traces_once(order):
    graph_losses, _ = _fit(order, jit_compile=False)
    xla_losses, traces = _fit(order, jit_compile=True)
    np.testing.assert_allclose(xla_losses, graph_losses, rtol=1e-5)
    assert xla_losses[-1] < xla_losses[0]
    assert traces == 1, f"train_step traced {traces} times over 12 steps"
