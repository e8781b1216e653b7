"""
Title: Manifold learning with the scikit-learn estimator
Author: keras-nrae contributors
Date created: 2026/12/06
Last modified: 2026/12/06
Description: NRAE-L, NRAE-Q, a plain AE, PCA and Isomap on the S-curve and the swiss roll, clean, noisy and sparse.
Accelerator: None
"""

"""
## Introduction

`keras_nrae.NRAE`, the scikit-learn estimator, as NRAE-L, NRAE-Q and a plain
AE, against PCA and Isomap on scikit-learn's S-curve and swiss roll, clean,
noisy and sparse. Each method embeds the 3-D points in 2-D. The scores compare the embedding
with the manifold's true, isometric 2-D coordinates (u, y): u is the arc
length along the curve (t for the S-curve, whose arcs have unit radius;
½(t√(1 + t²) + asinh t) for the swiss roll) and y the height. So a noisy
set is scored against the manifold it was sampled from, not its noise.

* trustworthiness (k = 10): no false neighbours in the embedding;
* continuity (k = 10): no true neighbourhood torn apart;
* distance ρ: Spearman correlation of all pairwise distances (global shape);
* and, as users without ground truth measure it, trustworthiness against the
  3-D data themselves: it is lenient with folds, because points of the next
  layer of a roll rank far closer in 3-D than along the surface.

AE is the same network and schedule as NRAE with one slot per centre (the
centre itself), i.e. the plain reconstruction loss.

    python examples/manifold_learning.py --out results/manifold_learning

Writes manifold_learning.png, manifold_learning.md (the table) and
metrics.json into --out. Needs `pip install keras-nrae[sklearn,examples]`.
"""

"""
## Setup
"""

import argparse
import json
import os
import sys
import time
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
from sklearn.datasets import make_s_curve, make_swiss_roll
from sklearn.decomposition import PCA
from sklearn.manifold import Isomap

from keras_nrae import NRAE
from keras_nrae.metrics import continuity, distance_rank_correlation, trustworthiness

K = 10  # graph neighbours for NRAE and Isomap, and the k of the scores
# name: (generator, number of points, noise std)
DATASETS = {
    "s_curve": (make_s_curve, 1000, 0.0),
    "s_curve_noisy": (make_s_curve, 1000, 0.1),
    "s_curve_sparse": (make_s_curve, 200, 0.0),
    "swiss_roll": (make_swiss_roll, 1000, 0.0),
    "swiss_roll_noisy": (make_swiss_roll, 1000, 0.5),
    "swiss_roll_sparse": (make_swiss_roll, 200, 0.0),
}
SMOKE_POINTS = 40


def manifold(name: str, seed: int, points: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x (N, 3) with noise, true coordinates (N, 2) = (arc length u, height y), t (N,))."""
    make, n, noise = DATASETS[name]
    n = points or n
    x, t = make(n, noise=noise, random_state=seed)
    clean, _ = make(n, noise=0.0, random_state=seed)  # the same draws of t and y, no noise
    arc = t if make is make_s_curve else 0.5 * (t * np.sqrt(1 + t**2) + np.arcsinh(t))
    return x, np.stack([arc, clean[:, 1]], axis=1), t


def methods(seed: int, smoke: bool) -> Dict[str, Callable[[], object]]:
    """name -> a fresh estimator with fit_transform."""
    nn = dict(n_neighbors=K, random_state=seed, **(dict(hidden=(8,), epochs=1) if smoke else {}))
    return {
        "NRAE-L": lambda: NRAE(order=1, **nn),
        "NRAE-Q": lambda: NRAE(order=2, **nn),
        "AE": lambda: NRAE(neighbors_per_point=1, **nn),
        "PCA": lambda: PCA(2),
        "Isomap": lambda: Isomap(n_neighbors=K, n_components=2),
    }


def scores(x: np.ndarray, coordinates: np.ndarray, z: np.ndarray) -> Dict[str, float]:
    """The geometry scores of an embedding z (N, 2) of x (N, 3) with true coordinates (N, 2)."""
    return {
        "trustworthiness": trustworthiness(coordinates, z, K),
        "continuity": continuity(coordinates, z, K),
        "distance_rank_correlation": distance_rank_correlation(coordinates, z),
        "trustworthiness_to_data": trustworthiness(x, z, K),
    }


def run(names: Sequence[str], seed: int, smoke: bool, verbose: int):
    """({dataset: {method: scores + fit_seconds}}, {dataset: (x, t, {method: z})})."""
    metrics, embeddings = {}, {}
    for name in names:
        x, coordinates, t = manifold(name, seed, SMOKE_POINTS if smoke else None)
        metrics[name], codes = {}, {}
        for method, make in methods(seed, smoke).items():
            start = time.perf_counter()
            codes[method] = np.asarray(make().fit_transform(x))
            seconds = time.perf_counter() - start
            metrics[name][method] = {**scores(x, coordinates, codes[method]), "fit_seconds": seconds}
            if verbose:
                print(f"{name:18s} {method:7s} " + "  ".join(f"{k}={v:.3f}" for k, v in metrics[name][method].items()), flush=True)
        embeddings[name] = (x, t, codes)
    return metrics, embeddings


def table(metrics: dict, embeddings: dict) -> str:
    """Markdown: one row per dataset and method."""
    lines = [
        "| data | method | trustworthiness | continuity | distance ρ | trustworthiness to the 3-D data | fit time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, by_method in metrics.items():
        noise = DATASETS[name][2]
        label = f"{name} ({len(embeddings[name][0])} points{f', noise {noise}' if noise else ''})"
        for method, m in by_method.items():
            lines.append(
                f"| {label} | {method} | {m['trustworthiness']:.3f} | {m['continuity']:.3f} | "
                f"{m['distance_rank_correlation']:.3f} | {m['trustworthiness_to_data']:.3f} | "
                f"{m['fit_seconds']:.1f} |"
            )
    return "\n".join(lines) + "\n"


def figure(metrics: dict, embeddings: dict):
    """One row per dataset: the data (x against z), then each method's 2-D embedding, coloured by t."""
    from matplotlib.figure import Figure

    rows, columns = len(embeddings), 1 + len(next(iter(metrics.values())))
    fig = Figure(figsize=(2.2 * columns, 2.2 * rows), dpi=60)
    for r, (name, (x, t, codes)) in enumerate(embeddings.items()):
        panels = {"data (x, z)": x[:, [0, 2]], **codes}
        for c, (title, points) in enumerate(panels.items()):
            ax = fig.add_subplot(rows, columns, r * columns + c + 1)
            # Without antialiasing the PNG is half the size.
            ax.scatter(points[:, 0], points[:, 1], c=t, cmap="Spectral", s=2, linewidths=0, antialiased=False)
            ax.set_xticks([])
            ax.set_yticks([])
            if title in metrics[name]:
                title += f"\nT={metrics[name][title]['trustworthiness']:.3f}"
            ax.set_title(title, fontsize=8)
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.tight_layout()
    return fig


def main(argv: Optional[Sequence[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results/manifold_learning", help="output folder")
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=list(DATASETS))
    parser.add_argument("--seed", type=int, default=0, help="seeds the data and the networks (default 0)")
    parser.add_argument("--verbose", type=int, default=1, choices=[0, 1], help="print each score as it comes")
    parser.add_argument("--smoke", action="store_true", help=f"{SMOKE_POINTS} points, one step: only checks that everything runs")
    args = parser.parse_args(argv)
    metrics, embeddings = run(args.datasets, args.seed, args.smoke, args.verbose)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    with open(os.path.join(args.out, "manifold_learning.md"), "w") as f:
        f.write(table(metrics, embeddings))
    figure(metrics, embeddings).savefig(os.path.join(args.out, "manifold_learning.png"))
    print(table(metrics, embeddings))
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
