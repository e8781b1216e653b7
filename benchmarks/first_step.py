"""Trace cost of the NRAE train step: Taylor-term traces, graph size and first-step time.

    python benchmarks/first_step.py [--repeats 3]

For NRAE-L and NRAE-Q (MLP 784-256-256-16, B = 64, M = 4 with the centre in
slot 0) it counts how often the Taylor terms are traced while `fit` builds and
runs its first step, the number of ops in the traced train step (branch functions included), and the
wall time of that first `fit` step (tracing included); medians over fresh
models. Run it before and after a change to the step.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_nrae import NeighborhoodReconstructionModel, kernels, losses  # noqa: E402
from keras_nrae.architectures import mlp_autoencoder  # noqa: E402


def batches(batch=64, slots=4, features=784, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((batch, features), dtype=np.float32)
    neighbors = rng.random((batch, slots, features), dtype=np.float32)
    neighbors[:, 0] = x
    return tf.data.Dataset.from_tensors({"x": x, "neighbors": neighbors}).repeat(1)


def first_step(order):
    keras.utils.set_random_seed(0)
    encoder, decoder = mlp_autoencoder((784,), 16, hidden=(256, 256), output_activation="sigmoid")
    model = NeighborhoodReconstructionModel(encoder, decoder, order=order, kernel=kernels.Binary(1.0))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    traces = 0
    original = losses.taylor_terms

    def counted(*args, **kwargs):
        nonlocal traces
        traces += 1
        return original(*args, **kwargs)

    losses.taylor_terms = counted
    try:
        start = time.perf_counter()
        model.fit(batches(), epochs=1, verbose=0)
        seconds = time.perf_counter() - start
    finally:
        losses.taylor_terms = original
    batch = next(iter(batches()))
    graph_def = tf.function(model.train_step).get_concrete_function(batch).graph.as_graph_def()
    ops = len(graph_def.node) + sum(len(f.node_def) for f in graph_def.library.function)
    return traces, ops, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for order, name in ((1, "NRAE-L"), (2, "NRAE-Q")):
        runs = [first_step(order) for _ in range(args.repeats)]
        traces, ops = runs[-1][0], runs[-1][1]
        seconds = statistics.median(r[2] for r in runs)
        print(f"{name}: taylor_terms traced {traces}x, train graph ops {ops}, first fit step {seconds:.2f} s (median of {args.repeats})")


if __name__ == "__main__":
    main()
