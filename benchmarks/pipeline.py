"""Benchmark: one epoch of neighborhood_dataset alone vs one epoch of NRAE-L training on it.

MNIST train (60,000 images, ../shared/data offline), B=128, M=2 with the
centre in slot 0, an MLP autoencoder (512-512-512, latent 16). After a
warm-up epoch of each, pipeline-only and training epochs alternate; prints
their medians and the ratio. Target: the pipeline costs < 10% of a training
epoch.

    python benchmarks/pipeline.py [--repeats 3] [--points 60000]
"""

import argparse
import os
import time

import numpy as np


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--points", type=int, default=60_000)
    args = parser.parse_args()

    import keras

    from keras_nrae import NeighborGraph, NeighborhoodReconstructionModel, datasets
    from keras_nrae import neighborhood_dataset
    from keras_nrae.architectures import mlp_autoencoder

    x = datasets.load_images("mnist", "train")[: args.points]
    start = time.perf_counter()
    graph = NeighborGraph.build(x, k=10, verbose=0)
    graph_seconds = time.perf_counter() - start
    ds = neighborhood_dataset(x, graph, batch_size=128, neighbors_per_point=2, seed=0)
    keras.utils.set_random_seed(0)
    encoder, decoder = mlp_autoencoder(x.shape[1:], latent_dim=16, output_activation="sigmoid")
    model = NeighborhoodReconstructionModel(encoder, decoder, order=1)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))

    iterate = lambda: [None for _ in ds]
    train = lambda: model.fit(ds, epochs=1, verbose=0)
    steps = len(x) // 128
    print(f"MNIST {x.shape}, {steps} batches of B=128, M=2; {os.cpu_count()} CPUs; "
          f"graph ({graph.method}) built in {graph_seconds:.1f} s")
    print(f"warm-up: pipeline {timed(iterate):.2f} s, training {timed(train):.2f} s (traces)")
    pipeline, training = [], []
    for _ in range(args.repeats):
        pipeline.append(timed(iterate))
        training.append(timed(train))
    p, t = np.median(pipeline), np.median(training)
    print(f"pipeline epoch: median {p:.2f} s over {args.repeats} ({1000 * p / steps:.2f} ms/batch)")
    print(f"training epoch: median {t:.2f} s over {args.repeats} ({1000 * t / steps:.2f} ms/step)")
    print(f"pipeline / training = {100 * p / t:.1f}%   (target < 10%)")


if __name__ == "__main__":
    main()
