"""One training step on 1 device vs MirroredStrategy over 2 logical CPUs.

Run as a script (logical devices must be set before TensorFlow initialises);
prints one JSON object: for each case, the initial weights, the loss and
weights after the step on one device and under the strategy, and the
per-replica batch sizes; and the error of a fit whose second step has a NaN in
the second replica's half of the batch.
"""

import contextlib
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

[_cpu] = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_nrae import (  # noqa: E402
    NeighborGraph,
    NeighborhoodReconstructionModel,
    kernels,
    neighborhood_dataset,
)
from keras_nrae.architectures import mlp_autoencoder  # noqa: E402
from keras_nrae.finite import NonFiniteError  # noqa: E402

GLOBAL_BATCH = 8


def _model(order, include_center):
    keras.utils.set_random_seed(0)
    encoder, decoder = mlp_autoencoder((4,), 2, hidden=(16,), activation="tanh")
    model = NeighborhoodReconstructionModel(
        encoder, decoder, order=order, kernel=kernels.Binary(lam=0.5),
        include_center=include_center,
    )
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    return model


def _weights(model):
    return [v.numpy().tolist() for v in model.trainable_variables]


def _one_step(model, dataset):
    history = model.fit(dataset, epochs=1, verbose=0)
    return history.history["loss"][0], _weights(model)


def _cases():
    """(name, order, include_center, dataset factory, scope of the one-device reference) per case."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(GLOBAL_BATCH, 4)).astype("float32")
    others = rng.normal(size=(GLOBAL_BATCH, 3, 4)).astype("float32")
    for order in (1, 2):
        for center_first in (True, False):
            neighbors = np.concatenate([x[:, None], others], 1) if center_first else others
            batch = {"x": x, "neighbors": neighbors}
            make = lambda b=batch: tf.data.Dataset.from_tensors(b)
            name = f"order{order}-center_first{center_first}"
            yield name, order, center_first, make, contextlib.nullcontext
    points = rng.normal(size=(2 * GLOBAL_BATCH, 4)).astype("float32")
    graph = NeighborGraph.build(points, k=4, method="exact", verbose=0)
    # A fresh pipeline per fit: each iteration of one pipeline is a new epoch.
    make = lambda: neighborhood_dataset(
        points, graph, GLOBAL_BATCH, neighbors_per_point=3, seed=0
    ).take(1)
    # Under any strategy Keras' fit first draws one batch from a throwaway
    # iteration (its symbolic build), so it trains on the pipeline's second
    # epoch; a one-device strategy as reference sees the same epoch.
    one_device = tf.distribute.OneDeviceStrategy("/cpu:0").scope
    yield "neighborhood_dataset-order1", 1, True, make, one_device


def main():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    results = {}
    for name, order, include_center, make_dataset, reference_scope in _cases():
        with reference_scope():
            model = _model(order, include_center)
        initial_weights = _weights(model)
        loss, weights = _one_step(model, make_dataset())
        with strategy.scope():
            model = _model(order, include_center)
        distributed_loss, distributed_weights = _one_step(model, make_dataset())
        results[name] = {
            "initial_weights": initial_weights,
            "loss": loss,
            "weights": weights,
            "distributed_loss": distributed_loss,
            "distributed_weights": distributed_weights,
            "replicas": model.distribute_strategy.num_replicas_in_sync,
        }
    per_replica = next(iter(strategy.experimental_distribute_dataset(make_dataset())))
    results["replica_batch_sizes"] = [
        int(t.shape[0]) for t in strategy.experimental_local_results(per_replica["x"])
    ]
    results["non_finite_error"] = _non_finite_error(strategy)
    print(json.dumps(results))


def _non_finite_error(strategy):
    """The NonFiniteError message when replica 2's half of step 2 has a NaN, or None."""
    x = np.random.default_rng(1).normal(size=(2 * GLOBAL_BATCH, 4)).astype("float32")
    neighbors = np.stack([x, x[::-1]], axis=1)
    neighbors[GLOBAL_BATCH + GLOBAL_BATCH // 2 + 1, 1, 0] = np.nan
    data = tf.data.Dataset.from_tensor_slices({"x": x, "neighbors": neighbors}).batch(GLOBAL_BATCH)
    with strategy.scope():
        model = _model(1, True)
    try:
        model.fit(data, epochs=1, verbose=0)
    except NonFiniteError as error:
        return str(error)
    return None


if __name__ == "__main__":
    main()
