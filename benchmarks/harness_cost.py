"""Epoch time of every Table 1 model relative to the AE's, under the harness's config for an image shape.

Each model of `paper.table1.protocol.MODEL_NAMES` is built as the harness builds it
(`keras_nrae.recipe.build_model` of `protocol.recipe` under
`BenchmarkConfig().for_images(shape)`: grey-scale images get the protocol's
latent size, colour images `BenchmarkConfig.colour`'s) and trains on N random
images for one warm-up epoch and `--repeats` timed epochs, rows interleaved;
NRAE-L / NRAE-Q train on `neighborhood_dataset` batches (k = 10, the
protocol's neighbours per point), GRAE on random targets. Prints the median
seconds per epoch and the ratio to the AE, from which the cost of a harness
run follows (epochs × epoch time, per model and seed).

    PYTHONPATH=. python benchmarks/harness_cost.py --shape 32 32 3 --images 1000
"""

import argparse
import os
import statistics
import time

if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

from keras_nrae.graph import NeighborGraph
from keras_nrae.pipeline import neighborhood_dataset
from keras_nrae.recipe import build_model
from paper.table1 import protocol


def _trainers(x: np.ndarray, config: protocol.BenchmarkConfig):
    """{model name: a function that trains one epoch on x}."""
    graph = NeighborGraph.build(x, k=10, verbose=0)
    grae_targets = np.random.default_rng(0).normal(size=(len(x), config.latent_dim)).astype(np.float32)
    trainers = {}
    for name in protocol.MODEL_NAMES:
        keras.utils.set_random_seed(0)
        settings = {"k": 10, "lam": 0.1} if name in protocol.NRAE_ORDERS else None
        model = build_model(x.shape[1:], protocol.recipe(name, config, x.shape[1:], settings), seed=0)
        if name in protocol.NRAE_ORDERS:
            data = neighborhood_dataset(x, graph, config.batch_size, config.neighbors_per_point, include_center=True)
            args, kwargs = (data,), {}
        else:
            args, kwargs = (x, grae_targets if name == "GRAE" else None), {"batch_size": config.batch_size}
        model.compile(keras.optimizers.Adam(config.learning_rate))
        trainers[name] = lambda model=model, args=args, kwargs=kwargs: model.fit(*args, epochs=1, verbose=0, **kwargs)
    return trainers


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", nargs="+", type=int, default=[32, 32, 3])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    config = protocol.BenchmarkConfig().for_images(args.shape)
    x = np.random.default_rng(0).random((args.images, *args.shape), dtype=np.float32)
    trainers = _trainers(x, config)
    seconds = {name: [] for name in trainers}
    for repeat in range(args.repeats + 1):
        for name, train in trainers.items():
            start = time.perf_counter()
            train()
            if repeat:  # the first epoch traces and warms up
                seconds[name].append(time.perf_counter() - start)
    print(f"{args.images} images {tuple(args.shape)}, {config.arch} latent {config.latent_dim}, "
          f"batch {config.batch_size}: median s/epoch of {args.repeats}, ratio to AE")
    ae = statistics.median(seconds["AE"])
    for name, values in seconds.items():
        print(f"{name:<8} {statistics.median(values):8.2f} s  {statistics.median(values) / ae:6.1f}×")


if __name__ == "__main__":
    main()
