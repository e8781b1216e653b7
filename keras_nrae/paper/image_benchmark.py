"""The paper's Table 1 protocol: per-pixel test reconstruction MSE of AE, DAE, CAE, VAE, WAE, NRAE-L and NRAE-Q.

For each dataset and training-set size:

 1. Training images: the first S of a fixed permutation (seed 0) of the
    training split (size "S" = `small_size`, 5,000 by default; "L" = all).
 2. NRAE selection, on validation data only: `validation_fraction` of those
    training images is held out; for each order (1 = NRAE-L, 2 = NRAE-Q) and
    each (k, λ) of the grid, NRAE (kernel `Binary(λ)`, graph of the k nearest
    neighbours) trains on the rest with seed 0 and is scored by validation
    MSE. Each order keeps its best (k, λ); the order with the lower validation
    MSE is "NRAE (best)". The test split is not loaded until step 3.
 3. For each seed, every model trains on all S training images (NRAE with the
    chosen settings, its graph rebuilt on them) and is scored on the test split.

Every model uses the same `mlp_autoencoder` (sigmoid output), Adam, epochs
and batch size (`BenchmarkConfig`); the baselines' own weights are fixed,
documented defaults (`BASELINE_SETTINGS`). Results: a Markdown table of mean ±
std over seeds and a CSV with one row per (dataset, size, model, seed).

    python -m keras_nrae.paper.image_benchmark mnist fashion_mnist --seeds 0 1 2
"""

import argparse
import csv
import dataclasses
import itertools
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import keras
import numpy as np

from keras_nrae import kernels
from keras_nrae.architectures import mlp_autoencoder
from keras_nrae.baselines import (
    Autoencoder,
    ContractiveAutoencoder,
    DenoisingAutoencoder,
    VariationalAutoencoder,
    WassersteinAutoencoder,
)
from keras_nrae.data import neighborhood_dataset
from keras_nrae.datasets import load_images
from keras_nrae.graph import NeighborGraph
from keras_nrae.metrics import reconstruction_mse
from keras_nrae.model import NeighborhoodReconstructionModel

BASELINE_SETTINGS = {
    "DAE": {"sigma": 0.1},
    "CAE": {"weight": 0.01},
    "VAE": {"beta": 1.0},
    "WAE": {"weight": 10.0, "scale": 1.0},
}
NRAE_NAMES = {1: "NRAE-L", 2: "NRAE-Q"}
NRAE_ORDERS = {name: order for order, name in NRAE_NAMES.items()}
MODEL_NAMES = ("AE", "DAE", "CAE", "VAE", "WAE", "NRAE-L", "NRAE-Q")


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    """Everything shared by all models (architecture, optimizer, schedule) and the NRAE selection grid."""

    latent_dim: int = 10
    hidden: Tuple[int, ...] = (256, 256)
    activation: str = "elu"
    learning_rate: float = 1e-3
    epochs: int = 100  # AE overfits S after 60-100 epochs: benchmarks/validation_curves.py
    batch_size: int = 100
    small_size: int = 5000
    validation_fraction: float = 0.1
    neighbors_per_point: int = 2  # slots incl. the centre: centre + 1 sampled neighbour
    k_grid: Tuple[int, ...] = (5, 10)
    lam_grid: Tuple[float, ...] = (0.1, 1.0)
    orders: Tuple[int, ...] = (1, 2)


SMOKE_CONFIG = BenchmarkConfig(
    latent_dim=2, hidden=(16,), epochs=1, batch_size=16, small_size=64,
    k_grid=(3,), lam_grid=(0.5,),
)


@dataclasses.dataclass(frozen=True)
class NraeSettings:
    order: int
    k: int
    lam: float
    validation_mse: float


# -- data ------------------------------------------------------------------------


def load_split(dataset: str, split: str) -> np.ndarray:
    """float32 images (N, H, W, C) in [0, 1] of a `load_images` name or an .npz path (uint8 x_train / x_test)."""
    if dataset.endswith(".npz"):
        path = Path(dataset)
        if not path.is_file():
            raise FileNotFoundError(f"No such .npz file: {dataset}")
        return load_images(path.stem, split, data_dir=str(path))
    return load_images(dataset, split)


def training_subset(x: np.ndarray, size: str, small_size: int) -> np.ndarray:
    """The first `small_size` images of a fixed permutation for size "S", all of x for "L"."""
    if size == "L":
        return x
    if size != "S":
        raise ValueError(f'size must be "S" or "L", got {size!r}.')
    if small_size > len(x):
        raise ValueError(f"size S needs {small_size} training images, the dataset has {len(x)}.")
    return x[np.random.default_rng(0).permutation(len(x))[:small_size]]


# -- models ----------------------------------------------------------------------


def _pair(shape, config: BenchmarkConfig, latent_dim: Optional[int] = None):
    return mlp_autoencoder(
        shape, latent_dim or config.latent_dim, config.hidden, config.activation, "sigmoid"
    )


def build_baseline(name: str, shape, config: BenchmarkConfig, seed: int) -> Autoencoder:
    """One of AE, DAE, CAE, VAE, WAE with `BASELINE_SETTINGS` (weights seeded by the caller)."""
    settings = BASELINE_SETTINGS.get(name, {})
    if name == "AE":
        return Autoencoder(*_pair(shape, config))
    if name == "DAE":
        return DenoisingAutoencoder(*_pair(shape, config), seed=seed, **settings)
    if name == "CAE":
        return ContractiveAutoencoder(*_pair(shape, config), **settings)
    if name == "VAE":
        encoder = _pair(shape, config, 2 * config.latent_dim)[0]
        return VariationalAutoencoder(encoder, _pair(shape, config)[1], seed=seed, **settings)
    if name == "WAE":
        return WassersteinAutoencoder(*_pair(shape, config), seed=seed, **settings)
    raise ValueError(f"Unknown baseline {name!r}; expected one of {MODEL_NAMES[:5]}.")


Callbacks = Sequence[keras.callbacks.Callback]


def _train(model: Autoencoder, data, config: BenchmarkConfig, callbacks: Callbacks = ()) -> Autoencoder:
    model.compile(keras.optimizers.Adam(config.learning_rate))
    fit_args = {"batch_size": config.batch_size} if isinstance(data, np.ndarray) else {}
    model.fit(data, epochs=config.epochs, verbose=0, callbacks=list(callbacks), **fit_args)
    return model


def train_baseline(
    name: str, x: np.ndarray, config: BenchmarkConfig, seed: int, callbacks: Callbacks = ()
) -> Autoencoder:
    keras.utils.set_random_seed(seed)
    return _train(build_baseline(name, x.shape[1:], config, seed), x, config, callbacks)


def train_nrae(
    x: np.ndarray, order: int, k: int, lam: float, config: BenchmarkConfig, seed: int,
    graph: Optional[NeighborGraph] = None, callbacks: Callbacks = (),
) -> NeighborhoodReconstructionModel:
    """NRAE (order, Binary(lam)) trained on x with neighbours from its k-NN graph."""
    keras.utils.set_random_seed(seed)
    graph = graph or NeighborGraph.build(x, k=k, verbose=0)
    data = neighborhood_dataset(
        x, graph, config.batch_size, config.neighbors_per_point, include_center=True, seed=seed
    )
    model = NeighborhoodReconstructionModel(
        *_pair(x.shape[1:], config), order=order, kernel=kernels.Binary(lam)
    )
    return _train(model, data, config, callbacks)


# -- the protocol ----------------------------------------------------------------


def validation_split(x_train: np.ndarray, fraction: float) -> Tuple[np.ndarray, np.ndarray]:
    """(x_fit, x_val): a fixed (seed 0) `fraction` of x_train held out for validation."""
    permutation = np.random.default_rng(0).permutation(len(x_train))
    n_val = max(1, int(round(fraction * len(x_train))))
    return x_train[permutation[n_val:]], x_train[permutation[:n_val]]


def select_nrae(
    x_train: np.ndarray, config: BenchmarkConfig, log: Callable[[str], None] = print
) -> Dict[int, NraeSettings]:
    """Best (k, λ) per order by validation MSE on a split of x_train alone (seed 0)."""
    x_fit, x_val = validation_split(x_train, config.validation_fraction)
    graphs = {k: NeighborGraph.build(x_fit, k=k, verbose=0) for k in config.k_grid}
    best = {}
    for order, k, lam in itertools.product(config.orders, config.k_grid, config.lam_grid):
        model = train_nrae(x_fit, order, k, lam, config, seed=0, graph=graphs[k])
        mse = reconstruction_mse(model, x_val)
        log(f"  validation  {NRAE_NAMES[order]}  k={k:<3d} lam={lam:<6g} mse={mse:.5f}")
        if order not in best or mse < best[order].validation_mse:
            best[order] = NraeSettings(order, k, lam, mse)
    return best


def benchmark_dataset(
    dataset: str,
    size: str,
    seeds: Sequence[int],
    config: BenchmarkConfig,
    log: Callable[[str], None] = print,
) -> Tuple[List[dict], Dict[int, NraeSettings]]:
    """Rows {dataset, size, model, seed, test_mse, seconds} and the NRAE settings chosen."""
    x_train = training_subset(load_split(dataset, "train"), size, config.small_size)
    log(f"{dataset}-{size}: {len(x_train)} training images; selecting NRAE settings on validation")
    chosen = select_nrae(x_train, config, log)
    for settings in chosen.values():
        log(
            f"  chose {NRAE_NAMES[settings.order]}: k={settings.k}, lam={settings.lam:g} "
            f"(validation mse {settings.validation_mse:.5f})"
        )
    x_test = load_split(dataset, "test")
    graphs = {k: NeighborGraph.build(x_train, k=k, verbose=0) for k in {s.k for s in chosen.values()}}
    rows = []
    for seed in seeds:
        for name in MODEL_NAMES:
            start = time.perf_counter()
            if name in NRAE_ORDERS:
                s = chosen[NRAE_ORDERS[name]]
                model = train_nrae(x_train, s.order, s.k, s.lam, config, seed, graphs[s.k])
            else:
                model = train_baseline(name, x_train, config, seed)
            mse = reconstruction_mse(model, x_test)
            seconds = time.perf_counter() - start
            log(f"  seed {seed}  {name:<7s} test mse {mse:.5f}  ({seconds:.0f} s)")
            rows.append(dict(dataset=dataset, size=size, model=name, seed=seed, test_mse=mse, seconds=seconds))
    return rows, chosen


# -- reporting -------------------------------------------------------------------


def _column(row: dict) -> str:
    return f"{Path(row['dataset']).stem}-{row['size']}"


def markdown_table(rows: List[dict], chosen: Dict[str, Dict[int, NraeSettings]]) -> str:
    """Models × dataset-size, per-pixel test MSE ×10⁻³ as mean ± std over seeds.

    "NRAE (best)" is the order with the lower validation MSE; "vs AE" is its
    mean's relative change from AE's.
    """
    columns = list(dict.fromkeys(_column(r) for r in rows))
    mse = {}
    for r in rows:
        mse.setdefault((r["model"], _column(r)), []).append(r["test_mse"] * 1e3)
    best = {
        column: NRAE_NAMES[min(settings.values(), key=lambda s: s.validation_mse).order]
        for column, settings in chosen.items()
    }
    fmt = lambda v: f"{np.mean(v):.3f} ± {np.std(v, ddof=1) if len(v) > 1 else 0.0:.3f}"
    lines = [
        "| model | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for name in MODEL_NAMES:
        lines.append(f"| {name} | " + " | ".join(fmt(mse[name, c]) for c in columns) + " |")
    lines.append(
        "| NRAE (best, on validation) | "
        + " | ".join(f"{best[c]}: {fmt(mse[best[c], c])}" for c in columns) + " |"
    )
    change = lambda c: 100 * (np.mean(mse[best[c], c]) / np.mean(mse["AE", c]) - 1)
    lines.append("| NRAE (best) vs AE | " + " | ".join(f"{change(c):+.1f} %" for c in columns) + " |")
    return "\n".join(lines)


def write_csv(rows: List[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def run(
    datasets: Sequence[str],
    sizes: Sequence[str] = ("S",),
    seeds: Sequence[int] = (0, 1, 2),
    config: BenchmarkConfig = BenchmarkConfig(),
    out_dir: Optional[str] = None,
    log: Callable[[str], None] = print,
) -> Tuple[List[dict], str]:
    """Benchmark every (dataset, size); returns the rows and the Markdown table (also written to out_dir)."""
    rows, chosen = [], {}
    for dataset, size in itertools.product(datasets, sizes):
        dataset_rows, chosen[f"{Path(dataset).stem}-{size}"] = benchmark_dataset(
            dataset, size, seeds, config, log
        )
        rows += dataset_rows
    table = markdown_table(rows, chosen)
    settings = "\n".join(
        f"- {column}: " + ", ".join(
            f"{NRAE_NAMES[s.order]} k={s.k} λ={s.lam:g} (validation MSE {s.validation_mse:.5f})"
            for s in by_order.values()
        )
        for column, by_order in chosen.items()
    )
    report = (
        f"Per-pixel test MSE ×10⁻³, mean ± std over seeds {list(seeds)}.\n\n{table}\n\n"
        f"NRAE settings chosen on validation:\n{settings}\n\nConfig: {config}\n"
        f"Baseline settings: {BASELINE_SETTINGS}\n"
    )
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_csv(rows, out / "image_benchmark.csv")
        (out / "image_benchmark.md").write_text(report)
    return rows, report


def main(argv: Optional[Sequence[str]] = None) -> str:
    parser = argparse.ArgumentParser(
        prog="image_benchmark",
        description="Table 1 of the NRAE paper: per-pixel test reconstruction MSE of "
        "AE, DAE, CAE, VAE, WAE, NRAE-L and NRAE-Q.",
    )
    parser.add_argument("datasets", nargs="+", help="load_images names (mnist, fashion_mnist, ...) or .npz paths with uint8 x_train/x_test")
    parser.add_argument("--sizes", nargs="+", default=["S"], choices=["S", "L"], help="S = small_size training images, L = all (default: S)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, help=f"default {BenchmarkConfig.epochs}")
    parser.add_argument("--batch-size", type=int, help=f"default {BenchmarkConfig.batch_size}")
    parser.add_argument("--latent-dim", type=int, help=f"default {BenchmarkConfig.latent_dim}")
    parser.add_argument("--small-size", type=int, help=f"images in size S, default {BenchmarkConfig.small_size}")
    parser.add_argument("--k-grid", nargs="+", type=int, help=f"NRAE k values to select from, default {BenchmarkConfig.k_grid}")
    parser.add_argument("--lam-grid", nargs="+", type=float, help=f"NRAE λ values to select from, default {BenchmarkConfig.lam_grid}")
    parser.add_argument("--out", default="benchmarks/results", help="folder for image_benchmark.md / .csv")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and 1 epoch, for tests")
    args = parser.parse_args(argv)
    config = SMOKE_CONFIG if args.smoke else BenchmarkConfig()
    overrides = {
        "epochs": args.epochs, "batch_size": args.batch_size,
        "latent_dim": args.latent_dim, "small_size": args.small_size,
        "k_grid": args.k_grid and tuple(args.k_grid), "lam_grid": args.lam_grid and tuple(args.lam_grid),
    }
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    _, report = run(args.datasets, args.sizes, args.seeds, config, args.out)
    print(report)
    return report


if __name__ == "__main__":
    main()
