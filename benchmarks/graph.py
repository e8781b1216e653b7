"""Benchmark: 10-NN graph builders side by side, ours and peers, on one machine in one run.

Each builder runs in its own subprocess (its peak memory is its own), builds
the graph `--repeats` times and reports the median and every time; recall@k
is measured for every builder the same way, on 1,000 random points against
exact float32 search. pynndescent's numba compilation is timed apart (a first
call on 2,000 points) and not counted in its build times, and so is our first
build in a process (on 2,000 of the points: TensorFlow's and ScaNN's kernels
start up).

Data: `mnist` (the 60,000 training images, 784 dims in [0, 1], via
`keras_nrae.datasets.load_images`; $KERAS_NRAE_DATA=../shared/data offline) or
`clustered` (`graph_scale.clustered_features`: 1,000 random 8-d subspaces plus
noise, 64 dims, float32).

Builders: ours-auto (`NeighborGraph.build(x, k)`, the default), ours-tuned,
ours-nndescent, ours-scann (method=...; "scann" was the default of 0.2),
ours-exact, pynndescent-20 / -30
(n_neighbors 20 / 30, cut to k), pynndescent-15x30 (15 neighbours, max_candidates 30:
what ours-nndescent asks pynndescent for at k = 10), faiss-hnsw (IndexHNSWFlat(32), efSearch 64),
faiss-flat (exact). Peers need the `bench` extra (pip install -e .[bench]).

    nice python benchmarks/graph.py [--data mnist|clustered] [--points N] [--repeats 3]
        [--rounds 1] [--builders ours-auto,pynndescent-20,...] [--base-root OLD_CHECKOUT]

With --rounds R the builders run in turn R times and each builder's median is
over all its R × repeats builds, so slow drifts of a shared machine fall on
all builders alike; recall is the lowest of the rounds'.
"""

import argparse
import inspect
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

BUILDERS = ("ours-auto", "ours-tuned", "ours-nndescent", "ours-scann", "ours-exact",
            "pynndescent-20", "pynndescent-30", "pynndescent-15x30", "faiss-hnsw", "faiss-flat")
DEFAULT = "ours-tuned,ours-nndescent,ours-scann,pynndescent-20,pynndescent-30,faiss-hnsw"


def load(data: str, points: int, folder: str) -> np.ndarray:
    if data == "mnist":
        from keras_nrae import datasets

        x = datasets.load_images("mnist", "train")[:points]
        return np.ascontiguousarray(x.reshape(len(x), -1), np.float32)
    from graph_scale import clustered_features  # this script's folder is first on sys.path

    return np.array(clustered_features(os.path.join(folder, "features.npy"), points))


def builder(name: str, k: int):
    """(build(x) -> (N, k) indices without self, extra stats) for one builder name."""
    if name.startswith(("ours-", "base-")):
        from keras_nrae import NeighborGraph

        def build(x):
            graph = NeighborGraph.build(x, k=k, method=name[5:], verbose=0)
            return graph.indices, {"method": graph.method, "tuning": graph.tuning}
        stats = {}
        if name in ("ours-auto", "ours-nndescent"):
            stats["compile_s"] = compile_pynndescent(20)
        return build, stats
    if name.startswith("pynndescent-"):
        import pynndescent

        neighbours, _, candidates = name.split("-")[1].partition("x")
        neighbours = int(neighbours)
        options = {"max_candidates": int(candidates)} if candidates else {}
        compile_s = compile_pynndescent(neighbours)

        def build(x):
            found, _ = pynndescent.NNDescent(x, n_neighbors=neighbours + 1, random_state=0,
                                             n_jobs=-1, **options).neighbor_graph
            return without_self(found, k), {}
        return build, {"compile_s": compile_s}
    import faiss

    def build(x):
        if name == "faiss-hnsw":
            index = faiss.IndexHNSWFlat(x.shape[1], 32)
            index.hnsw.efSearch = 64
        else:
            index = faiss.IndexFlatL2(x.shape[1])
        index.add(x)
        _, found = index.search(x, k + 1)
        return without_self(found, k), {}
    return build, {}


def warm_up(method: str, x: np.ndarray, k: int) -> float:
    """Seconds of a first NeighborGraph.build in this process (TensorFlow's and ScaNN's
    kernels start up), on 2,000 of x's points by the search x itself gets."""
    from keras_nrae import NeighborGraph
    from keras_nrae import graph as graph_lib

    pick = getattr(graph_lib, "_auto_method", None)  # 0.2's "auto" was ScaNN
    if method == "auto":  # what "auto" picks for all of x: by (N,) now, by (N, dim) before
        method = pick(*x.shape[:len(inspect.signature(pick).parameters)]) if pick else "scann"
    start = time.perf_counter()
    NeighborGraph.build(x[:2000], k=k, method=method, verbose=0)
    return time.perf_counter() - start


def compile_pynndescent(neighbours: int) -> float:
    """Seconds of pynndescent's first call in this process (numba compilation), on 2,000 points."""
    import pynndescent

    start = time.perf_counter()
    pynndescent.NNDescent(np.random.default_rng(0).random((2000, 8), np.float32),
                          n_neighbors=neighbours, random_state=0).neighbor_graph
    return time.perf_counter() - start


def without_self(found: np.ndarray, k: int) -> np.ndarray:
    """(N, >k) hits -> (N, k): each row's own index dropped (else its last hit)."""
    keep = found != np.arange(len(found))[:, None]
    keep[keep.sum(axis=1) > k, -1] = False
    out = np.stack([row[mask][:k] for row, mask in zip(found, keep)])
    return out


def exact_sample(x: np.ndarray, k: int, sample: np.ndarray) -> np.ndarray:
    """The exact k nearest other points of x[sample] (N, F), brute force in float64, ties by index."""
    x = np.asarray(x, np.float64)
    squared = np.einsum("ij,ij->i", x, x)
    found = []
    for block in np.array_split(sample, max(1, len(sample) // 100)):
        distances = squared[block, None] - 2 * x[block] @ x.T + squared[None]
        distances[np.arange(len(block)), block] = np.inf
        found.append(np.argsort(distances, axis=1, kind="stable")[:, :k])
    return np.concatenate(found)


def run_builder(args) -> None:
    """Subprocess body: build args.build `repeats` times; print JSON stats."""
    with tempfile.TemporaryDirectory() as folder:
        x = load(args.data, args.points, folder)
    build, stats = builder(args.build, args.k)
    if args.build.startswith(("ours-", "base-")):
        stats["warmup_s"] = warm_up(args.build[5:], x, args.k)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        indices, extra = build(x)
        times.append(time.perf_counter() - start)
    sample = np.sort(np.random.default_rng(1).choice(len(x), 1000, replace=False))
    truth = exact_sample(x, args.k, sample)
    hits = (np.asarray(indices)[sample][:, :, None] == truth[:, None, :]).any(axis=2).sum()
    stats.update(extra, times=times, median_s=statistics.median(times),
                 recall=float(hits) / truth.size,
                 peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(stats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=("mnist", "clustered"), default="mnist")
    parser.add_argument("--points", type=int, default=60_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--builders", default=DEFAULT, help=f"comma-separated, of {BUILDERS}, "
                        "or base-<method> (method= of the --base-root checkout)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the builders in turn this many times (times pooled per builder)")
    parser.add_argument("--base-root", help="another checkout (e.g. a git worktree of an "
                        "earlier commit) whose keras_nrae the base-<method> builders import")
    parser.add_argument("--build", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        return run_builder(args)
    names = args.builders.split(",")
    unknown = {n for n in names if not n.startswith("base-")} - set(BUILDERS)
    if unknown:
        parser.error(f"unknown builders {sorted(unknown)}; choose from {BUILDERS}")
    if any(n.startswith("base-") for n in names) and not args.base_root:
        parser.error("base-<method> builders need --base-root")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    load_avg = os.getloadavg()
    print(f"{args.data}, {args.points} points, k={args.k}, {args.rounds} round(s) of "
          f"{args.repeats} repeats, {os.cpu_count()} CPUs, load average {load_avg[0]:.1f} at start",
          flush=True)
    runs = {}
    for _ in range(args.rounds):
        for name in names:
            library = args.base_root if name.startswith("base-") else root
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=os.pathsep.join(
                filter(None, [os.path.abspath(library), os.environ.get("PYTHONPATH")])))
            command = [sys.executable, __file__, "--build", name, "--data", args.data,
                       "--points", str(args.points), "--k", str(args.k),
                       "--repeats", str(args.repeats)]
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            if done.returncode:
                print(f"{name:16s} failed: {done.stderr.strip().splitlines()[-1:]}", flush=True)
                continue
            runs.setdefault(name, []).append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"{'builder':16s} {'median s':>9s} {'vs first':>8s} {'recall@k':>9s} {'RSS MiB':>8s}"
          f"  times s; notes", flush=True)
    medians = {name: statistics.median(t for s in ss for t in s["times"]) for name, ss in runs.items()}
    for name, ss in runs.items():
        s = ss[-1]
        first = medians.get(names[0], medians[name])
        notes = " | ".join(", ".join(f"{t:.1f}" for t in r["times"]) for r in ss)
        if "compile_s" in s:
            notes += f"; numba compile {s['compile_s']:.1f} s apart"
        if "warmup_s" in s:
            notes += f"; first call {s['warmup_s']:.1f} s apart"
        if s.get("tuning"):
            t = s["tuning"]
            effort = (f"{t['n_neighbors']} neighbours" if "n_neighbors" in t else
                      f"{t['leaves_searched']}/{t['leaves']} leaves, {t['candidates']} candidates")
            notes += f"; {s['method']}: {effort}, sampled recall {t['sampled_recall']:.4f}"
        recall = min(r["recall"] for r in ss)
        print(f"{name:16s} {medians[name]:9.2f} {medians[name] / first:7.2f}x "
              f"{recall:9.4f} {max(r['peak_rss_mib'] for r in ss):8.0f}  {notes}", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at end", flush=True)


if __name__ == "__main__":
    main()
