"""The Table 1 harness: every (dataset, size, model, seed) cell under the protocol, resumable, and its command line.

    python -m paper.table1 mnist fashion_mnist --seeds 0 1 2 --out benchmarks/results/mnist-S

Results: a Markdown table of mean ± std over seeds and a CSV with one row per
(dataset, size, model, seed) (`paper.table1.report`); with --out, every
finished cell is kept in OUT/cells.jsonl, so the same command resumes an
interrupted run (`paper.table1.store.CellStore`).
"""

import argparse
import dataclasses
import functools
import itertools
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from keras_nrae.datasets import load_images
from keras_nrae.graph import NeighborGraph

from paper.table1 import protocol
from paper.table1.protocol import (
    ARCHITECTURES,
    BASELINE_NAMES,
    MODEL_NAMES,
    NRAE_NAMES,
    NRAE_ORDERS,
    SMOKE_CONFIG,
    BenchmarkConfig,
    describe,
)
from paper.table1.report import report_text, write_report
from paper.table1.selection import NraeSettings, select_baseline, select_nrae, train_model, validation_score
from paper.table1.store import CellStore

__all__ = ["benchmark_dataset", "main", "run"]

Log = Callable[[str], None]


def _baseline_selection(name, x_train, dataset, size, config, log, store: CellStore) -> Optional[dict]:
    """`select_baseline`'s settings for `name`, from the store or chosen now (None: every run diverged)."""
    key = f"selection/{dataset}/{size}/{name}"
    if store.get(key) is None:
        log(f"  selecting {name} settings on validation")
        store.put(key, select_baseline(name, x_train, config, log, store.trials_path))
    chosen = store.get(key)
    log(f"  chose {name}: " + ("none converged" if chosen["settings"] is None else
                               f"{describe(chosen['settings'])} (validation mse {chosen['validation_mse']:.5f})"))
    return chosen["settings"]


def _nrae_selection(x_train, dataset, size, config, log, store: CellStore) -> Dict[int, NraeSettings]:
    """`select_nrae`'s settings per order, from the store or chosen now."""
    key = f"selection/{dataset}/{size}"
    if store.get(key) is None:
        log("  selecting NRAE settings on validation")
        chosen = select_nrae(x_train, config, log, store.trials_path)
        store.put(key, [dataclasses.asdict(s) for s in chosen.values()])
    chosen = {s["order"]: NraeSettings(**s) for s in store.get(key)}
    for settings in chosen.values():
        log(
            f"  chose {NRAE_NAMES[settings.order]}: k={settings.k}, lam={settings.lam:g} "
            f"(validation mse {settings.validation_mse:.5f})"
        )
    return chosen


def benchmark_dataset(
    dataset: str,
    size: str,
    seeds: Sequence[int],
    config: BenchmarkConfig,
    log: Log = print,
    store: Optional[CellStore] = None,
    models: Sequence[str] = MODEL_NAMES,
) -> Tuple[List[dict], Dict[int, NraeSettings]]:
    """Rows {dataset, size, model, seed, test_mse, status, settings, seconds} of `models` and the NRAE settings chosen.

    status is "ok", "diverged" (test_mse NaN) or, for an NRAE order none of
    whose validation runs converged, "no converged setting" (not trained).
    Cells already in `store` are taken from it, not trained again.
    """
    unknown = sorted(set(models) - set(MODEL_NAMES))
    if unknown:
        raise ValueError(f"Unknown models {unknown}; expected some of {MODEL_NAMES}.")
    store = store or CellStore(None, config)
    x_train = protocol.training_subset(load_images(dataset, "train"), size, config.small_size)
    config = config.for_images(x_train.shape[1:])
    log(f"{dataset}-{size}: {len(x_train)} training images, {config.arch} latent {config.latent_dim}")
    # A run of baselines alone neither needs nor pays for the NRAE selection.
    wants_nrae = any(name in NRAE_ORDERS for name in models)
    chosen = _nrae_selection(x_train, dataset, size, config, log, store) if wants_nrae else {}
    baseline_choice = {
        name: _baseline_selection(name, x_train, dataset, size, config, log, store)
        for name in BASELINE_NAMES if name in models and protocol.baseline_grid(name, config)
    }
    x_test = load_images(dataset, "test")
    # Built when a cell first needs them: resumed cells need neither.
    graph = functools.lru_cache()(lambda k: NeighborGraph.build(x_train, k=k, verbose=0))
    targets = functools.lru_cache()(lambda: protocol.grae_targets(x_train, config))
    rows = []
    for seed in seeds:
        for name in (name for name in MODEL_NAMES if name in models):
            key = f"row/{dataset}/{size}/{name}/{seed}"
            if store.get(key) is None:
                start = time.perf_counter()
                mse, status, settings, trained = float("nan"), "no converged setting", "", None
                if name in NRAE_ORDERS:
                    if NRAE_ORDERS[name] in chosen:
                        s = chosen[NRAE_ORDERS[name]]
                        trained = train_model(name, x_train, config, seed, {"k": s.k, "lam": s.lam}, graph=graph(s.k))
                        settings = describe({"k": s.k, "lam": float(s.lam)})
                elif not (name in baseline_choice and baseline_choice[name] is None):
                    grae = targets() if name == "GRAE" else None
                    trained = train_model(name, x_train, config, seed, baseline_choice.get(name), targets=grae)
                    settings = describe(baseline_choice.get(name) or {})
                if trained is not None:
                    mse = validation_score(trained, x_test)
                    status = "ok" if np.isfinite(mse) else "diverged"
                store.put(key, dict(dataset=dataset, size=size, model=name, seed=seed, test_mse=mse,
                                    status=status, settings=settings, seconds=time.perf_counter() - start))
            row = store.get(key)
            log(f"  seed {seed}  {name:<7s} test mse {row['test_mse']:.5f}  {row['status']}  "
                f"({row['seconds']:.0f} s)")
            rows.append(row)
    return rows, chosen


def run(
    datasets: Sequence[str],
    sizes: Sequence[str] = ("S",),
    seeds: Sequence[int] = (0, 1, 2),
    config: BenchmarkConfig = BenchmarkConfig(),
    out_dir: Optional[str] = None,
    log: Log = print,
    models: Sequence[str] = MODEL_NAMES,
) -> Tuple[List[dict], str]:
    """Benchmark every (dataset, size); returns the rows and the report (also written to out_dir).

    With out_dir, every finished cell is kept in out_dir/cells.jsonl: run the
    same command again after an interruption and it resumes (`CellStore`).
    """
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    store = CellStore(None if out_dir is None else Path(out_dir) / "cells.jsonl", config)
    rows, chosen = [], {}
    for dataset, size in itertools.product(datasets, sizes):
        dataset_rows, chosen[f"{Path(dataset).stem}-{size}"] = benchmark_dataset(
            dataset, size, seeds, config, log, store, models
        )
        rows += dataset_rows
    report = report_text(rows, chosen, seeds, config)
    if out_dir is not None:
        write_report(Path(out_dir), rows, report)
    return rows, report


def main(argv: Optional[Sequence[str]] = None) -> str:
    """The command line (`python -m paper.table1 --help`); prints and returns the report."""
    parser = argparse.ArgumentParser(
        prog="python -m paper.table1",
        description="Table 1 of the NRAE paper: per-pixel test reconstruction MSE of "
        "AE, DAE, CAE, VAE, WAE, GRAE, SPAE, NRAE-L and NRAE-Q.",
    )
    parser.add_argument("datasets", nargs="+", help="load_images names (mnist, fashion_mnist, ...) or .npz paths with uint8 x_train/x_test")
    parser.add_argument("--sizes", nargs="+", default=["S"], choices=["S", "L"], help="S = small_size training images, L = all (default: S)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", choices=MODEL_NAMES, default=list(MODEL_NAMES),
                        help="models to train and report (default: all)")
    parser.add_argument("--epochs", type=int, help=f"default {BenchmarkConfig.epochs}")
    parser.add_argument("--batch-size", type=int, help=f"default {BenchmarkConfig.batch_size}")
    parser.add_argument("--latent-dim", type=int, help=f"default {BenchmarkConfig.latent_dim}")
    parser.add_argument("--arch", choices=ARCHITECTURES, help=f"default {BenchmarkConfig.arch}")
    parser.add_argument("--small-size", type=int, help=f"images in size S, default {BenchmarkConfig.small_size}")
    parser.add_argument("--k-grid", nargs="+", type=int, help=f"NRAE k values to select from, default {BenchmarkConfig.k_grid}")
    parser.add_argument("--lam-grid", nargs="+", type=float, help=f"NRAE λ values to select from, default {BenchmarkConfig.lam_grid}")
    parser.add_argument("--out", default="benchmarks/results", help="folder for image_benchmark.md / .csv")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and 1 epoch, for tests")
    args = parser.parse_args(argv)
    config = SMOKE_CONFIG if args.smoke else BenchmarkConfig()
    overrides = {
        "epochs": args.epochs, "batch_size": args.batch_size,
        "latent_dim": args.latent_dim, "small_size": args.small_size, "arch": args.arch,
        "k_grid": args.k_grid and tuple(args.k_grid), "lam_grid": args.lam_grid and tuple(args.lam_grid),
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    # An option given on the command line holds for colour images too.
    colour = tuple((k, v) for k, v in config.colour if k not in overrides)
    config = dataclasses.replace(config, **overrides, colour=colour)
    _, report = run(args.datasets, args.sizes, args.seeds, config, args.out, models=args.models)
    print(report)
    return report
