"""neighborhood_dataset under MultiWorkerMirroredStrategy, each worker reading its share; or one process.

Usage: python _sharded_input_train.py OUT_JSON

With TF_CONFIG set the process is one worker of a MultiWorkerMirroredStrategy
cluster (created first, before any other TensorFlow op); without it, the
single-process reference (no strategy). Both build the exact graph of the same
N points and read x through a row-counting source (tests/_counting.py).

Writes to OUT_JSON:
  "epoch": the "neighbors" (b, M, d) of every batch of one epoch, as this
    worker's replica holds them from `distribute_neighborhood_dataset` (one
    process: the global batches of `neighborhood_dataset`), and "rows_read",
    how many rows x returned during that epoch;
  "plain_epoch", "plain_rows_read": the same for a plain `neighborhood_dataset`
    handed to `strategy.experimental_distribute_dataset`, as `fit` does (workers only);
  per kind (NRAE-L, NRAE-Q): the final weights and per-epoch losses of EPOCHS
    epochs of `fit` on that input (one process: on `neighborhood_dataset`,
    after one throwaway pass, as `fit` makes under a strategy).
"""

import contextlib
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_nrae import NeighborGraph, NeighborhoodReconstructionModel, kernels  # noqa: E402
from keras_nrae import neighborhood_dataset  # noqa: E402
from keras_nrae.architectures import mlp_autoencoder  # noqa: E402
from keras_nrae.distribute import distribute_neighborhood_dataset, multi_worker_strategy  # noqa: E402
from tests._counting import CountingRows  # noqa: E402

NUM_POINTS, DIM, K = 512, 4, 6
GLOBAL_BATCH, SLOTS, SEED = 32, 3, 5
EPOCHS = 2
KINDS = {"NRAE-L": 1, "NRAE-Q": 2}


def _dataset(strategy, x, graph):
    if strategy is None:
        return neighborhood_dataset(x, graph, GLOBAL_BATCH, neighbors_per_point=SLOTS, seed=SEED)
    return distribute_neighborhood_dataset(
        strategy, x, graph, GLOBAL_BATCH, neighbors_per_point=SLOTS, seed=SEED
    )


def _epoch(strategy, x, dataset):
    """(this worker's first replica's "neighbors" of every batch of one epoch, rows read)."""
    x.reset()
    batches = []
    for batch in dataset:
        neighbors = batch["neighbors"]
        if strategy is not None:
            [neighbors] = strategy.experimental_local_results(neighbors)
        batches.append(np.asarray(neighbors).tolist())
    return batches, len(x.read_ids())


def _train(order, strategy, x, graph):
    keras.utils.set_random_seed(0)
    with strategy.scope() if strategy else contextlib.nullcontext():
        encoder, decoder = mlp_autoencoder((DIM,), 2, hidden=(8,), activation="tanh")
        model = NeighborhoodReconstructionModel(
            encoder, decoder, order=order, kernel=kernels.Binary(0.5)
        )
        model.compile(optimizer=keras.optimizers.SGD(0.1))
    dataset = _dataset(strategy, x, graph)
    if strategy is None:
        next(iter(dataset))  # fit's throwaway pass under a strategy (README), made here too
    history = model.fit(dataset, epochs=EPOCHS, verbose=0)
    return {
        "weights": [v.numpy().tolist() for v in model.trainable_variables],
        "losses": history.history["loss"],
    }


def main():
    strategy = multi_worker_strategy(120) if "TF_CONFIG" in os.environ else None
    data = np.random.default_rng(0).normal(size=(NUM_POINTS, DIM)).astype("float32")
    x = CountingRows(data)
    graph = NeighborGraph.build(data, k=K, method="exact", verbose=0)
    results = {"replicas": strategy.num_replicas_in_sync if strategy else 1}
    keras.utils.set_random_seed(0)
    results["epoch"], results["rows_read"] = _epoch(strategy, x, _dataset(strategy, x, graph))
    if strategy is not None:
        plain = strategy.experimental_distribute_dataset(
            neighborhood_dataset(x, graph, GLOBAL_BATCH, neighbors_per_point=SLOTS, seed=SEED)
        )
        results["plain_epoch"], results["plain_rows_read"] = _epoch(strategy, x, plain)
    results.update({kind: _train(order, strategy, x, graph) for kind, order in KINDS.items()})
    with open(sys.argv[1], "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
