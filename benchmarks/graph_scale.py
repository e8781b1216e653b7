"""Benchmark: graphs and training at scale, each case in its own subprocess.

  graph   the 10-NN graph of 10^6 points of 64-dimensional features (1,000
          clusters, each a random 8-dimensional subspace plus noise), read
          from a .npy memmap: build time, peak memory (max RSS and peak
          anonymous growth) and recall@10 on 1,000 sampled points against
          exact search (a first build in the process, on 2,000 points, timed
          apart). Target: recall@10 >= 0.95 within memory.
  growth  the graph case at each of --sizes (default 10^5, 3·10^5, 10^6), each in
          its own subprocess: build time, recall@10 (on 1,000 points, apart
          from the build's own sampled recall), time / (N log N) relative to
          the smallest size, and the exponent b of time ∝ N^b between sizes.
  memmap  a 4 GiB uint8 memmap of 64x64x3 images (349,525 of them; random
          pixels): 16 features per image (4x4 mean-pooled grey) computed in
          chunks, the graph on them, `neighborhood_dataset` and `fit` for a
          few steps. Target: anonymous memory grows by < 1 GiB.

    nice python benchmarks/graph_scale.py [graph|growth|memmap ...] [--points 1000000]
        [--sizes 100000,300000,1000000] [--folder /tmp]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

IMAGE_SHAPE = (64, 64, 3)
MEMMAP_BYTES = 4 * 2**30


def clustered_features(path: str, points: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    """Write (points, dim) float32 features to path in chunks; return them memory-mapped."""
    from keras_nrae.arrays import write_npy

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(1000, dim)).astype(np.float32)
    bases = rng.normal(size=(1000, 8, dim)).astype(np.float32) / 2

    def chunks():
        for start in range(0, points, 20_000):
            size = min(20_000, points - start)
            cluster = rng.integers(len(centres), size=size)
            local = np.einsum("bi,bij->bj", rng.normal(size=(size, 8)).astype(np.float32),
                              bases[cluster])
            yield centres[cluster] + local + 0.05 * rng.normal(size=(size, dim)).astype(np.float32)

    return write_npy(path, chunks(), points, verbose=0)


def graph_case(folder: str, points: int, method: str = "auto") -> dict:
    from _memory import PeakAnon, peak_rss_mib
    from keras_nrae import NeighborGraph
    from keras_nrae import graph as graph_lib

    features = clustered_features(os.path.join(folder, "features.npy"), points)
    # A first build in this process (numba's compilation for "nndescent", TensorFlow's and
    # ScaNN's kernels starting up) is timed apart, on 2,000 points, by the search N points get.
    first_method = graph_lib._auto_method(len(features)) if method == "auto" else method
    start = time.perf_counter()
    NeighborGraph.build(features[:2000], k=10, method=first_method, verbose=0)
    warmup_s = time.perf_counter() - start
    with PeakAnon() as memory:
        start = time.perf_counter()
        graph = NeighborGraph.build(features, k=10, method=method, verbose=0)
        seconds = time.perf_counter() - start
    tuning = graph.tuning
    path = os.path.join(folder, "graph.npz")
    graph.save(path)
    graph = NeighborGraph.load(path, mmap_mode="r")
    start = time.perf_counter()
    recall = graph.recall(features, sample=1000)
    stats = {"points": points, "method": graph.method, "build_s": seconds, "warmup_s": warmup_s,
             "anon_growth_mib": memory.growth, "peak_rss_mib": peak_rss_mib(),
             "recall@10": recall, "recall_s": time.perf_counter() - start}
    if tuning:
        stats.update({f"tuned_{key}": value for key, value in tuning.items()})
    return stats


def pooled_grey(images: np.ndarray) -> np.ndarray:
    """(b, 64, 64, 3) uint8 -> (b, 16) float32: mean grey level of each 16x16 tile, in [0, 1]."""
    grey = images.mean(axis=3, dtype=np.float32) / 255
    return grey.reshape(len(images), 4, 16, 4, 16).mean(axis=(2, 4)).reshape(len(images), 16)


def memmap_case(folder: str) -> dict:
    import keras

    from _memory import PeakAnon, peak_rss_mib, rss_anon_mib
    from keras_nrae import NeighborGraph, NeighborhoodReconstructionModel, neighborhood_dataset
    from keras_nrae.architectures import mlp_autoencoder
    from keras_nrae.arrays import Rows, write_npy

    points = MEMMAP_BYTES // int(np.prod(IMAGE_SHAPE))
    path = os.path.join(folder, "images.npy")
    rng = np.random.default_rng(0)
    batches = (rng.integers(0, 256, (min(10_000, points - s), *IMAGE_SHAPE), dtype=np.uint8)
               for s in range(0, points, 10_000))
    start = time.perf_counter()
    write_npy(path, batches, points, verbose=0)
    write_s = time.perf_counter() - start
    x = np.load(path, mmap_mode="r")
    keras.utils.set_random_seed(0)
    encoder, decoder = mlp_autoencoder(IMAGE_SHAPE, latent_dim=16, hidden=(64,),
                                       output_activation="sigmoid")
    model = NeighborhoodReconstructionModel(encoder, decoder, order=1)
    model.compile(optimizer="adam")
    anon_start = rss_anon_mib()
    with PeakAnon() as memory:
        start = time.perf_counter()
        features = np.concatenate([pooled_grey(chunk) for _, chunk in Rows(x).chunks()])
        features_s = time.perf_counter() - start
        start = time.perf_counter()
        graph = NeighborGraph.build(x, k=10, features=features, verbose=0)
        graph_s = time.perf_counter() - start
        ds = neighborhood_dataset(x, graph, batch_size=128, neighbors_per_point=2, seed=0)
        start = time.perf_counter()
        model.fit(ds.take(20), epochs=1, verbose=0)
        fit_s = time.perf_counter() - start
    return {"data_gib": x.nbytes / 2**30, "points": points, "write_s": write_s,
            "features_s": features_s, "graph_s": graph_s, "graph_method": graph.method,
            "fit_20_steps_s": fit_s, "anon_before_mib": anon_start,
            "anon_growth_mib": memory.growth, "peak_rss_mib": peak_rss_mib()}


CASES = {"graph": graph_case, "growth": None, "memmap": memmap_case}


def growth(rows: list) -> None:
    """Print the growth table of graph-case results at increasing sizes."""
    import math

    print(f"{'N':>9s} {'build s':>8s} {'recall@10':>9s} {'sampled':>8s} {'leaves':>11s} "
          f"{'cand.':>5s} {'s/(N log N) rel.':>16s} {'exponent':>8s}")
    base = rows[0]["build_s"] / (rows[0]["points"] * math.log(rows[0]["points"]))
    for i, r in enumerate(rows):
        n, t = r["points"], r["build_s"]
        slope = "" if i == 0 else f"{math.log(t / rows[i - 1]['build_s']) / math.log(n / rows[i - 1]['points']):.2f}"
        leaves = (f"{r['tuned_n_neighbors']} nbrs" if "tuned_n_neighbors" in r else
                  f"{r.get('tuned_leaves_searched', '-')}/{r.get('tuned_leaves', '-')}")
        print(f"{n:9d} {t:8.1f} {r['recall@10']:9.4f} {r.get('tuned_sampled_recall', float('nan')):8.4f} "
              f"{leaves:>11s} {r.get('tuned_candidates', '-')!s:>5s} "
              f"{t / (n * math.log(n)) / base:16.2f} {slope:>8s}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help=f"any of {list(CASES)} (default: all)")
    parser.add_argument("--points", type=int, default=1_000_000, help="graph case")
    parser.add_argument("--sizes", default="100000,300000,1000000", help="growth case")
    parser.add_argument("--method", default="auto", help="graph and growth cases")
    parser.add_argument("--folder", default=tempfile.gettempdir(), help="for the .npy files")
    parser.add_argument("--run", choices=CASES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        with tempfile.TemporaryDirectory(dir=args.folder) as folder:
            kwargs = {"points": args.points, "method": args.method} if args.run == "graph" else {}
            print(json.dumps(CASES[args.run](folder, **kwargs)))
        return
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=root)
    unknown = set(args.cases) - set(CASES)
    if unknown:
        parser.error(f"unknown cases {sorted(unknown)}; choose from {list(CASES)}")
    print(f"{os.cpu_count()} CPUs")
    def run(case: str, points: int) -> dict:
        command = [sys.executable, __file__, "--run", case, "--points", str(points),
                   "--folder", args.folder, "--method", args.method]
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        if result.returncode:
            sys.exit(f"{case} failed:\n{result.stderr[-3000:]}")
        stats = json.loads(result.stdout.strip().splitlines()[-1])
        print(f"{case}: " + ", ".join(
            f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
            for key, value in stats.items()), flush=True)
        return stats

    for case in args.cases or CASES:
        if case == "growth":
            print(f"load average {os.getloadavg()[0]:.1f} at start", flush=True)
            growth([run("graph", int(n)) for n in args.sizes.split(",")])
            print(f"load average {os.getloadavg()[0]:.1f} at end", flush=True)
        else:
            run(case, args.points)


if __name__ == "__main__":
    main()
