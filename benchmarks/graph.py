"""Benchmark: the 10-NN graph of the 60,000 MNIST training images, ScaNN vs exact search.

Each method builds in its own subprocess, so its peak memory (max RSS) is its
own; both read MNIST with `keras_nrae.datasets.load_images` ($KERAS_NRAE_DATA=../shared/data
offline). Prints build times, their ratio, ScaNN's recall@k over all points
against the exact graph, and peak memory. Targets: recall@10 >= 0.99 and
ScaNN >= 3x faster.

    python benchmarks/graph.py [--points 60000] [--k 10]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

METHODS = ("scann", "exact")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(method: str, points: int, k: int, path: str) -> None:
    """Subprocess body: build one graph, save it to path, print JSON stats."""
    from keras_nrae import NeighborGraph, datasets

    x = datasets.load_images("mnist", "train")[:points]
    before = peak_rss_mib()
    start = time.perf_counter()
    graph = NeighborGraph.build(x, k=k, method=method, verbose=0)
    seconds = time.perf_counter() - start
    graph.save(path)
    print(json.dumps({"seconds": seconds, "rss_before": before, "rss_peak": peak_rss_mib()}))


def run(method: str, points: int, k: int, path: str) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, __file__, "--build", method, "--points", str(points),
               "--k", str(k), "--out", path]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=60_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--build", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        return build(args.build, args.points, args.k, args.out)

    from keras_nrae import NeighborGraph

    print(f"MNIST train, {args.points} points x 784 dims, k={args.k}, {os.cpu_count()} CPUs")
    stats, graphs = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        for method in METHODS:
            path = os.path.join(folder, f"{method}.npz")
            stats[method] = run(method, args.points, args.k, path)
            graphs[method] = NeighborGraph.load(path)
    exact, approx = graphs["exact"].indices, graphs["scann"].indices
    recall = np.mean([np.intersect1d(a, b).size for a, b in zip(approx, exact)]) / args.k
    print(f"{'method':8s} {'build s':>9s} {'peak RSS MiB':>13s} {'(data + imports)':>17s}")
    for method in METHODS:
        s = stats[method]
        print(f"{method:8s} {s['seconds']:9.1f} {s['rss_peak']:13.0f} {s['rss_before']:17.0f}")
    speedup = stats["exact"]["seconds"] / stats["scann"]["seconds"]
    print(f"speed-up exact/scann: {speedup:.1f}x   (target >= 3x)")
    print(f"ScaNN recall@{args.k} over all {args.points} points: {recall:.4f}   (target >= 0.99)")


if __name__ == "__main__":
    main()
