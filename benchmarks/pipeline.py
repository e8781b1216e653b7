"""Benchmark: neighborhood_dataset from an in-memory float32 array vs a uint8 memmap.

Speed (default): MNIST train (60,000 images, offline from $KERAS_NRAE_DATA=../shared/data) as
float32 in memory (`load_images`) and as a page-cached uint8 .npy memmap
(written from the IDX file), one graph for both (their fingerprints match),
B=128, M=2 with the centre in slot 0, an MLP autoencoder (512-512-512,
latent 16). After a warm-up epoch of each, pipeline-only and training epochs
of both sources alternate (ABBA); prints medians of wall time and of the
process's CPU time (steadier on a shared machine) and their ratios. Targets: the
memmap's training epoch within 1.1x the in-memory one; the pipeline alone
< 10% of a training epoch.

Memory (--memory N): in a subprocess, N random float32 MNIST-sized points
(N=720,000 is 2.1 GiB) in memory, a random 10-neighbour graph, and 50
training steps; prints the data size and the process's peak RSS. With
--compare-with DIR the same runs on the keras_nrae package in DIR too (e.g.
`git archive <commit> keras_nrae | tar -x -C DIR`), for before/after figures.

    python benchmarks/pipeline.py [--repeats 4] [--points 60000] [--graph mnist-graph.npz]
    python benchmarks/pipeline.py --memory 240000 [--compare-with DIR]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MNIST_IDX = ROOT / ".." / "shared" / "data" / "mnist" / "train-images-idx3-ubyte.gz"


def timed(fn):
    """(wall seconds, CPU seconds of this process, all threads) of fn()."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def speed(repeats: int, points: int, graph_path: str) -> None:
    import keras

    from keras_nrae import NeighborGraph, NeighborhoodReconstructionModel, datasets
    from _memory import peak_rss_mib, rss_anon_mib
    from keras_nrae import neighborhood_dataset
    from keras_nrae.architectures import mlp_autoencoder

    in_memory = datasets.load_images("mnist", "train")[:points]
    folder = tempfile.mkdtemp()
    path = os.path.join(folder, "mnist.npy")
    np.save(path, datasets.read_idx(MNIST_IDX)[:points, :, :, None])
    memmap = np.load(path, mmap_mode="r")
    start = time.perf_counter()
    if graph_path and os.path.exists(graph_path):
        graph = NeighborGraph.load(graph_path, x=in_memory)
    else:
        graph = NeighborGraph.build(in_memory, k=10, verbose=0)
        if graph_path:
            graph.save(graph_path)
    graph_seconds = time.perf_counter() - start
    sources = {"float32 in memory": in_memory, "uint8 memmap": memmap}
    data = {name: neighborhood_dataset(x, graph, batch_size=128, neighbors_per_point=2, seed=0)
            for name, x in sources.items()}
    keras.utils.set_random_seed(0)
    encoder, decoder = mlp_autoencoder(in_memory.shape[1:], latent_dim=16,
                                       output_activation="sigmoid")
    model = NeighborhoodReconstructionModel(encoder, decoder, order=1)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))

    iterate = lambda ds: lambda: [None for _ in ds]
    train = lambda ds: lambda: model.fit(ds, epochs=1, verbose=0)
    steps = points // 128
    print(f"MNIST {in_memory.shape}, {steps} batches of B=128, M=2; {os.cpu_count()} CPUs; "
          f"graph ({graph.method}) built or loaded in {graph_seconds:.1f} s")
    for name, ds in data.items():
        print(f"warm-up {name}: pipeline {timed(iterate(ds))[0]:.2f} s, "
              f"training {timed(train(ds))[0]:.2f} s wall")
    times = {(name, kind): [] for name in data for kind in ("pipeline", "training")}
    for repeat in range(repeats):
        order = list(data.items())
        for name, ds in order if repeat % 2 == 0 else order[::-1]:  # ABBA cancels drift
            times[name, "pipeline"].append(timed(iterate(ds)))
            times[name, "training"].append(timed(train(ds)))
    median = {key: np.median(value, axis=0) for key, value in times.items()}
    for (name, kind), (wall, cpu) in median.items():
        print(f"{kind} epoch, {name}: median {wall:.2f} s wall ({1000 * wall / steps:.2f} "
              f"ms/batch), {cpu:.2f} s CPU, over {repeats}")
    for name in data:
        share = median[name, "pipeline"] / median[name, "training"]
        print(f"pipeline / training, {name}: {100 * share[0]:.1f}% wall, "
              f"{100 * share[1]:.1f}% CPU   (target < 10%)")
    ratio = median["uint8 memmap", "training"] / median["float32 in memory", "training"]
    print(f"training epoch uint8 memmap / float32 in memory = {ratio[0]:.3f} wall, "
          f"{ratio[1]:.3f} CPU   (target <= 1.1)")
    print(f"peak RSS {peak_rss_mib():.0f} MiB; RssAnon now {rss_anon_mib():.0f} MiB "
          f"(float32 MNIST {in_memory.nbytes / 2**20:.0f} MiB; the memmap is file-backed)")
    os.remove(path)


def memory_body(points: int, steps: int) -> None:
    """Subprocess: train `steps` steps on `points` random float32 points; print JSON stats."""
    import keras

    from _memory import peak_rss_mib, rss_anon_mib
    from keras_nrae import NeighborGraph, NeighborhoodReconstructionModel, neighborhood_dataset
    from keras_nrae.architectures import mlp_autoencoder
    from keras_nrae.graph import fingerprint

    rng = np.random.default_rng(0)
    x = np.empty((points, 784), np.float32)
    for start in range(0, points, 10_000):
        x[start : start + 10_000] = rng.random((min(10_000, points - start), 784), np.float32)
    indices = rng.integers(points, size=(points, 10), dtype=np.int32)
    graph = NeighborGraph(indices, np.ones(indices.shape), "exact", "euclidean", fingerprint(x))
    keras.utils.set_random_seed(0)
    encoder, decoder = mlp_autoencoder((784,), latent_dim=16, output_activation="sigmoid")
    model = NeighborhoodReconstructionModel(encoder, decoder, order=1)
    model.compile(optimizer="adam")
    before = rss_anon_mib()
    ds = neighborhood_dataset(x, graph, batch_size=128, neighbors_per_point=2, seed=0)
    seconds, _ = timed(lambda: model.fit(ds.take(steps), epochs=1, verbose=0))
    print(json.dumps({"data_mib": x.nbytes / 2**20, "anon_before_fit_mib": before,
                      "peak_rss_mib": peak_rss_mib(), "fit_s": seconds}))


def memory(points: int, steps: int, roots) -> None:
    for root in roots:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=f"{root}{os.pathsep}{ROOT}")
        command = [sys.executable, __file__, "--memory-body", str(points), "--steps", str(steps)]
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        if result.returncode:
            sys.exit(f"memory run on {root} failed:\n{result.stderr[-3000:]}")
        stats = json.loads(result.stdout.strip().splitlines()[-1])
        print(f"{root}: {points} x 784 float32 = {stats['data_mib'] / 1024:.2f} GiB, "
              f"{steps} steps in {stats['fit_s']:.1f} s: peak RSS "
              f"{stats['peak_rss_mib'] / 1024:.2f} GiB "
              f"({stats['peak_rss_mib'] / stats['data_mib']:.2f}x the data)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--points", type=int, default=60_000)
    parser.add_argument("--graph", help="save the MNIST graph here, or load it if it exists")
    parser.add_argument("--memory", type=int, metavar="N", help="run the memory case on N points")
    parser.add_argument("--steps", type=int, default=50, help="training steps of the memory case")
    parser.add_argument("--compare-with", metavar="DIR", help="another keras_nrae package root")
    parser.add_argument("--memory-body", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_body:
        memory_body(args.memory_body, args.steps)
    elif args.memory:
        memory(args.memory, args.steps, [ROOT] + ([args.compare_with] if args.compare_with else []))
    else:
        speed(args.repeats, args.points, args.graph)


if __name__ == "__main__":
    main()
