"""Subprocess body for tests/test_copy_free.py: peak anonymous memory of graph + pipeline + fit.

    python tests/_copy_free.py DATA.npy

Warms TensorFlow up on a tiny slice, then, on DATA.npy memory-mapped and
again loaded into memory: builds a graph on small features, makes
`neighborhood_dataset` and fits 5 steps, sampling RssAnon (/proc/self/status)
every millisecond. Prints JSON: the data size and each run's peak growth (MiB).
"""

import json
import sys
import threading

import numpy as np


def rss_anon_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("RssAnon:"))


def train(x, features, model, steps: int) -> None:
    from keras_nrae import NeighborGraph, neighborhood_dataset

    graph = NeighborGraph.build(x, k=4, method="exact", features=features, verbose=0)
    ds = neighborhood_dataset(x, graph, batch_size=8, neighbors_per_point=3)
    model.fit(ds.take(steps), epochs=1, verbose=0)


def growth_mib(x, features, model) -> float:
    """Peak RssAnon growth over `train` on x, in MiB: a thread samples it every millisecond."""
    before = rss_anon_kib()
    samples = [before]
    done = threading.Event()

    def sample():
        while not done.wait(0.001):
            samples.append(rss_anon_kib())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        train(x, features, model, steps=5)
    finally:
        done.set()
        sampler.join()
    return (max(samples + [rss_anon_kib()]) - before) / 1024


def main() -> None:
    import keras

    from keras_nrae import NeighborhoodReconstructionModel
    from keras_nrae.architectures import mlp_autoencoder

    x = np.load(sys.argv[1], mmap_mode="r")
    features = np.random.default_rng(0).normal(size=(len(x), 8)).astype(np.float32)
    keras.utils.set_random_seed(0)
    encoder, decoder = mlp_autoencoder(x.shape[1:], latent_dim=2, hidden=(8,))
    model = NeighborhoodReconstructionModel(encoder, decoder, order=1)
    model.compile(optimizer="adam")
    train(np.ascontiguousarray(x[:500]), features[:500], model, steps=2)  # traces, starts pools
    memmap = growth_mib(x, features, model)
    in_memory = growth_mib(np.load(sys.argv[1]), features, model)
    print(json.dumps({"data_mib": x.nbytes / 2**20, "memmap": memmap, "in_memory": in_memory}))


if __name__ == "__main__":
    main()
