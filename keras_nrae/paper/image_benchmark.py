"""The paper's Table 1 protocol: per-pixel test reconstruction MSE of AE, DAE, CAE, VAE, WAE, GRAE, SPAE, NRAE-L and NRAE-Q.

For each dataset and training-set size:

 1. Training images: the first S of a fixed permutation (seed 0) of the
    training split (size "S" = `small_size`, 5,000 by default; "L" = all).
 2. NRAE selection, on validation data only: `validation_fraction` of those
    training images is held out; for each order (1 = NRAE-L, 2 = NRAE-Q) and
    each (k, λ) of the grid, NRAE (kernel `Binary(λ)`, graph of the k nearest
    neighbours) trains on the rest with seed 0 and is scored by validation
    MSE. Each order keeps its best (k, λ); the order with the lower validation
    MSE is "NRAE (best)". GRAE's λ and relax on/off and SPAE's λ are chosen
    the same way, on the same split, from `baseline_grid`. The test split is
    not loaded until step 3.
 3. For each seed, every model trains on all S training images (NRAE with the
    chosen settings, its graph rebuilt on them) and is scored on the test split.

Every model uses the same architecture (`mlp_autoencoder` or, with
`arch="conv"`, `conv_autoencoder`; sigmoid output), Adam, epochs and batch
size (`BenchmarkConfig`; colour images use its `colour` fields instead, latent
128 and 200 epochs by default); the other baselines' weights are fixed, documented
defaults (`BASELINE_SETTINGS`). GRAE's target embedding (PHATE where the `grae`
extra is installed, else spectral: `GRAE_TARGET`) is computed once per
training set. A run is reported as "diverged", and neither scored nor
selected, when its loss becomes NaN/Inf or grows past `divergence_factor` ×
its lowest epoch loss (it is stopped there), when no epoch after the first
lowers its loss (`DivergenceMonitor`), or when it ends reconstructing its own
training images worse than their mean image does (`trivial_factor`,
`failure_reason`): a run that goes wrong in its first epoch, or never gets
good, must not be scored as if it were an NRAE or baseline result.
Results: a Markdown table of mean ± std over seeds and a CSV with one row per
(dataset, size, model, seed).

    python -m keras_nrae.paper.image_benchmark mnist fashion_mnist --seeds 0 1 2
"""

import argparse
import collections
import csv
import dataclasses
import functools
import importlib.util
import itertools
import json
import os
import time
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import keras
import numpy as np

from keras_nrae import kernels
from keras_nrae._files import FileFormatError, atomic_open
from keras_nrae.architectures import conv_autoencoder, mlp_autoencoder
from keras_nrae.baselines import (
    Autoencoder,
    ContractiveAutoencoder,
    DenoisingAutoencoder,
    GeometryRegularizedAutoencoder,
    StructurePreservingAutoencoder,
    VariationalAutoencoder,
    WassersteinAutoencoder,
    target_embedding,
)
from keras_nrae.pipeline import neighborhood_dataset
from keras_nrae.datasets import load_images
from keras_nrae.divergence import DivergenceMonitor, failure_reason, mean_image_mse
from keras_nrae.finite import NonFiniteError
from keras_nrae.graph import NeighborGraph
from keras_nrae.metrics import reconstruction_mse
from keras_nrae.model import NeighborhoodReconstructionModel

__all__ = [
    "BenchmarkConfig",
    "CellStore",
    "DivergenceMonitor",
    "GRAE_TARGET",
    "MODEL_NAMES",
    "NRAE_ORDERS",
    "NraeSettings",
    "SMOKE_CONFIG",
    "baseline_grid",
    "benchmark_dataset",
    "build_baseline",
    "build_nrae",
    "encoder_decoder",
    "failure_reason",
    "grae_targets",
    "main",
    "markdown_table",
    "mean_image_mse",
    "run",
    "select_baseline",
    "select_nrae",
    "train_baseline",
    "train_nrae",
    "training_subset",
    "validation_images",
    "validation_score",
    "validation_split",
]

# The GRAE authors' target: PHATE (their knn = 5), where the `grae` extra is installed.
GRAE_TARGET = "phate" if importlib.util.find_spec("phate") else "spectral"
BASELINE_SETTINGS = {
    "DAE": {"sigma": 0.1},
    "CAE": {"weight": 0.01},
    "VAE": {"beta": 1.0},
    "WAE": {"weight": 10.0, "scale": 1.0},
    # λ as their authors write it, on per-pixel (+ per-unit) MSEs: weight = λ · D / d
    # (GRAE) and λ · D (SPAE) in this sum-over-features convention. λ and relax
    # here are the authors' defaults; the protocol chooses them on validation.
    "GRAE": {"lam": 100.0, "relax": True, "target": GRAE_TARGET, "k": 5},
    "SPAE": {"lam": 1.0, "scaling": "point"},
}
NRAE_NAMES = {1: "NRAE-L", 2: "NRAE-Q"}
NRAE_ORDERS = {name: order for order, name in NRAE_NAMES.items()}
BASELINE_NAMES = ("AE", "DAE", "CAE", "VAE", "WAE", "GRAE", "SPAE")
MODEL_NAMES = BASELINE_NAMES + tuple(NRAE_NAMES.values())
ARCHITECTURES = ("mlp", "conv")


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    """Everything shared by all models (architecture, optimizer, schedule) and the NRAE selection grid."""

    latent_dim: int = 10
    arch: str = "mlp"  # "mlp" (hidden) or "conv" (conv_autoencoder's default filters)
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
    # Baseline grids (λ as in BASELINE_SETTINGS): GRAE's is its authors' search
    # range, log-uniform in [1e-2, 1e2], with and without their relax schedule.
    grae_lam_grid: Tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0)
    grae_relax_grid: Tuple[bool, ...] = (False, True)
    spae_lam_grid: Tuple[float, ...] = (0.01, 0.1, 1.0)
    divergence_factor: float = 10.0  # stop when an epoch's loss exceeds this × the lowest so far
    # Diverged when the trained model's training-image MSE exceeds this × that of
    # predicting the mean training image (None: no such check).
    trivial_factor: Optional[float] = 1.0
    # (field, value) pairs that replace the above for colour images (3 channels),
    # chosen on CIFAR-10-S validation only: benchmarks/results/cifar10-validation/.
    colour: Tuple[Tuple[str, object], ...] = (("latent_dim", 128), ("epochs", 200))

    def for_images(self, shape: Sequence[int]) -> "BenchmarkConfig":
        """This config for images of `shape` (H, W, C): `colour`'s fields replaced when C = 3."""
        if len(shape) == 3 and shape[-1] == 3:
            return dataclasses.replace(self, **dict(self.colour))
        return self


SMOKE_CONFIG = BenchmarkConfig(
    latent_dim=2, hidden=(16,), epochs=1, batch_size=16, small_size=64, colour=(),
    k_grid=(3,), lam_grid=(0.5,), grae_lam_grid=(100.0,), grae_relax_grid=(True,), spae_lam_grid=(0.1,),
    trivial_factor=None,  # one epoch on 64 noise images cannot be expected to beat the mean
)


@dataclasses.dataclass(frozen=True)
class NraeSettings:
    order: int
    k: int
    lam: float
    validation_mse: float


# -- data ------------------------------------------------------------------------


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


def encoder_decoder(shape, config: BenchmarkConfig, latent_dim: Optional[int] = None):
    """(encoder, decoder) of `config.arch` for images of `shape`, with latent_dim (default config's) codes."""
    latent_dim = latent_dim or config.latent_dim
    if config.arch == "conv":
        return conv_autoencoder(shape, latent_dim, activation=config.activation)
    if config.arch != "mlp":
        raise ValueError(f"arch must be one of {ARCHITECTURES}, got {config.arch!r}.")
    return mlp_autoencoder(shape, latent_dim, config.hidden, config.activation, "sigmoid")


def grae_targets(x: np.ndarray, config: BenchmarkConfig) -> np.ndarray:
    """GRAE's z-scored target embedding (N, latent_dim) of the training images x."""
    settings = BASELINE_SETTINGS["GRAE"]
    return target_embedding(x, config.latent_dim, settings["target"], settings["k"])


def baseline_grid(name: str, config: BenchmarkConfig) -> List[dict]:
    """The settings of baseline `name` chosen on validation: [] for a baseline with fixed ones."""
    if name == "GRAE":
        return [{"lam": lam, "relax": relax}
                for lam, relax in itertools.product(config.grae_lam_grid, config.grae_relax_grid)]
    if name == "SPAE":
        return [{"lam": lam} for lam in config.spae_lam_grid]
    return []


def _describe(settings: dict) -> str:
    return ", ".join(f"{'λ' if key == 'lam' else key}={value:g}" if isinstance(value, float)
                     else f"{key}={value}" for key, value in settings.items())


def build_baseline(
    name: str, shape, config: BenchmarkConfig, seed: int, chosen: Optional[dict] = None
) -> Autoencoder:
    """One of `BASELINE_NAMES` with `BASELINE_SETTINGS`, updated by `chosen` (weights seeded by the caller)."""
    settings = {**BASELINE_SETTINGS.get(name, {}), **(chosen or {})}
    if name == "AE":
        return Autoencoder(*encoder_decoder(shape, config))
    if name == "DAE":
        return DenoisingAutoencoder(*encoder_decoder(shape, config), seed=seed, **settings)
    if name == "CAE":
        return ContractiveAutoencoder(*encoder_decoder(shape, config), **settings)
    if name == "VAE":
        encoder = encoder_decoder(shape, config, 2 * config.latent_dim)[0]
        return VariationalAutoencoder(encoder, encoder_decoder(shape, config)[1], seed=seed, **settings)
    if name == "WAE":
        return WassersteinAutoencoder(*encoder_decoder(shape, config), seed=seed, **settings)
    if name == "GRAE":
        weight = settings["lam"] * int(np.prod(shape)) / config.latent_dim
        relax_epochs = config.epochs if settings["relax"] else None
        return GeometryRegularizedAutoencoder(*encoder_decoder(shape, config), weight=weight, relax_epochs=relax_epochs)
    if name == "SPAE":
        weight = settings["lam"] * int(np.prod(shape))
        return StructurePreservingAutoencoder(*encoder_decoder(shape, config), weight=weight, scaling=settings["scaling"])
    raise ValueError(f"Unknown baseline {name!r}; expected one of {BASELINE_NAMES}.")


Callbacks = Sequence[keras.callbacks.Callback]


def _train(
    model: Autoencoder, data, config: BenchmarkConfig, callbacks: Callbacks = (), targets=None,
    x: Optional[np.ndarray] = None,
) -> Autoencoder:
    """model compiled and fitted on data (training images x).

    `model.diverged` says whether the run diverged, `model.divergence` why:
    `NonFiniteError` or `DivergenceMonitor` during training, then
    `failure_reason` on x.
    """
    model.compile(keras.optimizers.Adam(config.learning_rate))
    fit_args = {"batch_size": config.batch_size} if isinstance(data, np.ndarray) else {}
    monitor = DivergenceMonitor(config.divergence_factor)
    try:
        model.fit(data, targets, epochs=config.epochs, verbose=0, callbacks=[*callbacks, monitor], **fit_args)
        reason = monitor.reason
    except NonFiniteError as error:
        reason = str(error)
    if reason is None:
        reason = failure_reason(model, data if x is None else x, config.trivial_factor)
    model.diverged, model.divergence = reason is not None, reason
    return model


def train_baseline(
    name: str, x: np.ndarray, config: BenchmarkConfig, seed: int, callbacks: Callbacks = (),
    targets: Optional[np.ndarray] = None, chosen: Optional[dict] = None,
) -> Autoencoder:
    """A baseline (settings updated by `chosen`) trained on x; GRAE on `targets` (`grae_targets` if None)."""
    if name == "GRAE" and targets is None:
        targets = grae_targets(x, config)
    keras.utils.set_random_seed(seed)
    model = build_baseline(name, x.shape[1:], config, seed, chosen)
    return _train(model, x, config, callbacks, targets if name == "GRAE" else None)


def train_nrae(
    x: np.ndarray, order: int, k: int, lam: float, config: BenchmarkConfig, seed: int,
    graph: Optional[NeighborGraph] = None, callbacks: Callbacks = (), expand_output_activation: bool = True,
) -> NeighborhoodReconstructionModel:
    """NRAE (order, Binary(lam)) trained on x with neighbours from its k-NN graph."""
    keras.utils.set_random_seed(seed)
    graph = graph or NeighborGraph.build(x, k=k, verbose=0)
    data = neighborhood_dataset(
        x, graph, config.batch_size, config.neighbors_per_point, include_center=True, seed=seed
    )
    model = build_nrae(x.shape[1:], order, lam, config, expand_output_activation)
    return _train(model, data, config, callbacks, x=x)


def build_nrae(
    shape, order: int, lam: float, config: BenchmarkConfig, expand_output_activation: bool = True
) -> NeighborhoodReconstructionModel:
    """NRAE of the given order with kernel `Binary(lam)` on the protocol's architecture (weights seeded by the caller)."""
    return NeighborhoodReconstructionModel(
        *encoder_decoder(shape, config), order=order, kernel=kernels.Binary(lam),
        expand_output_activation=expand_output_activation,
    )


# -- the protocol ----------------------------------------------------------------


def validation_split(x_train: np.ndarray, fraction: float) -> Tuple[np.ndarray, np.ndarray]:
    """(x_fit, x_val): a fixed (seed 0) `fraction` of x_train held out for validation."""
    permutation = np.random.default_rng(0).permutation(len(x_train))
    n_val = max(1, int(round(fraction * len(x_train))))
    return x_train[permutation[n_val:]], x_train[permutation[:n_val]]


def validation_images(dataset: str, config: BenchmarkConfig) -> Tuple[np.ndarray, np.ndarray]:
    """(x_fit, x_val): the validation split `select_nrae` uses, of dataset's S training images.

    For studies on validation data alone (benchmarks/); a dataset with fewer
    than `config.small_size` training images uses all of them.
    """
    images = load_images(dataset, "train")
    x_train = training_subset(images, "S", min(config.small_size, len(images)))
    return validation_split(x_train, config.validation_fraction)


def validation_score(model: Autoencoder, x: np.ndarray) -> float:
    """Per-pixel MSE of model on x, or NaN for a run `_train` flagged as diverged (the score runs are chosen and reported by)."""
    if getattr(model, "diverged", False):
        return float("nan")
    mse = reconstruction_mse(model, x)
    return mse if np.isfinite(mse) else float("nan")


def select_nrae(
    x_train: np.ndarray, config: BenchmarkConfig, log: Callable[[str], None] = print
) -> Dict[int, NraeSettings]:
    """Best (k, λ) per order by validation MSE on a split of x_train alone (seed 0).

    Diverged runs are logged and never chosen; an order whose every run
    diverged is absent from the result.
    """
    x_fit, x_val = validation_split(x_train, config.validation_fraction)
    graphs = {k: NeighborGraph.build(x_fit, k=k, verbose=0) for k in config.k_grid}
    best = {}
    for order, k, lam in itertools.product(config.orders, config.k_grid, config.lam_grid):
        model = train_nrae(x_fit, order, k, lam, config, seed=0, graph=graphs[k])
        mse = validation_score(model, x_val)
        log(f"  validation  {NRAE_NAMES[order]}  k={k:<3d} lam={lam:<6g} "
            + (f"mse={mse:.5f}" if np.isfinite(mse)
               else f"DIVERGED (not selectable): {getattr(model, 'divergence', None)}"))
        if np.isfinite(mse) and (order not in best or mse < best[order].validation_mse):
            best[order] = NraeSettings(order, k, lam, mse)
    return best


def select_baseline(
    name: str, x_train: np.ndarray, config: BenchmarkConfig, log: Callable[[str], None] = print
) -> Optional[dict]:
    """The `baseline_grid` settings of `name` with the lowest validation MSE, as `select_nrae` chooses.

    Returns {"settings": those settings or None when every run diverged,
    "validation_mse": their validation MSE or None}.
    """
    x_fit, x_val = validation_split(x_train, config.validation_fraction)
    targets = grae_targets(x_fit, config) if name == "GRAE" else None
    best = {"settings": None, "validation_mse": None}
    for settings in baseline_grid(name, config):
        mse = validation_score(train_baseline(name, x_fit, config, 0, targets=targets, chosen=settings), x_val)
        log(f"  validation  {name}  {_describe(settings)}  "
            + (f"mse={mse:.5f}" if np.isfinite(mse) else "DIVERGED (not selectable)"))
        if np.isfinite(mse) and (best["settings"] is None or mse < best["validation_mse"]):
            best = {"settings": settings, "validation_mse": mse}
    return best


class CellStore:
    """Finished cells in a JSON-lines file, so that a killed run resumes where it stopped.

    Each line is {"config": repr(BenchmarkConfig), "key": ..., "value": ...}:
    an NRAE selection ("selection/<dataset>/<size>"), a baseline's
    ("selection/<dataset>/<size>/<model>") or a row
    ("row/<dataset>/<size>/<model>/<seed>"). Lines written under another
    config are ignored; path None keeps nothing. Each cell is appended as
    one line and flushed to disk. A last line without its newline (a run
    killed while writing it) is cut from the file with a warning, and its
    cell computed again; any other line that is not a cell raises
    `keras_nrae.FileFormatError` naming the file and the line.
    """

    def __init__(self, path: Optional[Path], config: BenchmarkConfig):
        self.path, self.config, self.values = path, repr(config), {}
        if path is not None and path.is_file():
            for entry in _read_cells(path):
                if entry["config"] == self.config:
                    self.values[entry["key"]] = entry["value"]

    def get(self, key: str):
        return self.values.get(key)

    def put(self, key: str, value) -> None:
        self.values[key] = value
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(json.dumps({"config": self.config, "key": key, "value": value}) + "\n")
                f.flush()
                os.fsync(f.fileno())


def _read_cells(path: Path) -> List[dict]:
    """The cells in the lines of path, a `CellStore` file; a torn last line is cut from it."""
    data = path.read_bytes()
    *lines, torn = data.split(b"\n")
    if torn:
        warnings.warn(
            f"{path}, line {len(lines) + 1}, is incomplete (a run was killed while writing it): "
            f"cut from the file, so its cell is computed again.", stacklevel=3,
        )
        os.truncate(path, len(data) - len(torn))
    cells = []
    for number, line in enumerate(lines, 1):
        try:
            entry = json.loads(line)
            cells.append({field: entry[field] for field in ("config", "key", "value")})
        except (KeyError, TypeError, ValueError) as error:
            raise FileFormatError(
                f"{path}, line {number}, is not a benchmark cell ({type(error).__name__}: {error}): "
                f"delete that line (its cell is computed again) or the file (every cell is)."
            ) from error
    return cells


def _baseline_selection(name, x_train, dataset, size, config, log, store: CellStore) -> Optional[dict]:
    """`select_baseline`'s settings for `name`, from the store or chosen now (None: every run diverged)."""
    key = f"selection/{dataset}/{size}/{name}"
    if store.get(key) is None:
        log(f"  selecting {name} settings on validation")
        store.put(key, select_baseline(name, x_train, config, log))
    chosen = store.get(key)
    log(f"  chose {name}: " + ("none converged" if chosen["settings"] is None else
                               f"{_describe(chosen['settings'])} (validation mse {chosen['validation_mse']:.5f})"))
    return chosen["settings"]


def _selection(x_train, dataset, size, config, log, store: CellStore) -> Dict[int, NraeSettings]:
    key = f"selection/{dataset}/{size}"
    if store.get(key) is None:
        log("  selecting NRAE settings on validation")
        chosen = select_nrae(x_train, config, log)
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
    log: Callable[[str], None] = print,
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
    x_train = training_subset(load_images(dataset, "train"), size, config.small_size)
    config = config.for_images(x_train.shape[1:])
    log(f"{dataset}-{size}: {len(x_train)} training images, {config.arch} latent {config.latent_dim}")
    # A run of baselines alone neither needs nor pays for the NRAE selection.
    wants_nrae = any(name in NRAE_ORDERS for name in models)
    chosen = _selection(x_train, dataset, size, config, log, store) if wants_nrae else {}
    baseline_choice = {
        name: _baseline_selection(name, x_train, dataset, size, config, log, store)
        for name in BASELINE_NAMES if name in models and baseline_grid(name, config)
    }
    x_test = load_images(dataset, "test")
    # Built when a cell first needs them: resumed cells need neither.
    graph = functools.lru_cache()(lambda k: NeighborGraph.build(x_train, k=k, verbose=0))
    targets = functools.lru_cache()(lambda: grae_targets(x_train, config))
    rows = []
    for seed in seeds:
        for name in (name for name in MODEL_NAMES if name in models):
            key = f"row/{dataset}/{size}/{name}/{seed}"
            if store.get(key) is None:
                start = time.perf_counter()
                mse, status = float("nan"), "no converged setting"
                settings = ""
                if name in baseline_choice and baseline_choice[name] is None:
                    model = None
                elif name not in NRAE_ORDERS:
                    grae = targets() if name == "GRAE" else None
                    model = train_baseline(name, x_train, config, seed, targets=grae, chosen=baseline_choice.get(name))
                    settings = _describe(baseline_choice.get(name) or {})
                elif NRAE_ORDERS[name] in chosen:
                    s = chosen[NRAE_ORDERS[name]]
                    model = train_nrae(x_train, s.order, s.k, s.lam, config, seed, graph(s.k))
                    settings = _describe({"k": s.k, "lam": float(s.lam)})
                else:
                    model = None
                if model is not None:
                    mse = validation_score(model, x_test)
                    status = "ok" if np.isfinite(mse) else "diverged"
                store.put(key, dict(dataset=dataset, size=size, model=name, seed=seed, test_mse=mse,
                                    status=status, settings=settings, seconds=time.perf_counter() - start))
            row = store.get(key)
            log(f"  seed {seed}  {name:<7s} test mse {row['test_mse']:.5f}  {row['status']}  "
                f"({row['seconds']:.0f} s)")
            rows.append(row)
    return rows, chosen


# -- reporting -------------------------------------------------------------------


def _column(row: dict) -> str:
    return f"{Path(row['dataset']).stem}-{row['size']}"


def markdown_table(rows: List[dict], chosen: Dict[str, Dict[int, NraeSettings]]) -> str:
    """Models × dataset-size, per-pixel test MSE ×10⁻³ as mean ± std over seeds.

    "NRAE (best)" is the order with the lower validation MSE; "vs AE" is its
    mean's relative change from AE's. Diverged runs (NaN) are left out of the
    mean and counted in the cell; a model with no rows in a column shows "—".
    """
    columns = list(dict.fromkeys(_column(r) for r in rows))
    mse = collections.defaultdict(list)  # (model, column) -> values; [] where the model has no rows
    for r in rows:
        mse[r["model"], _column(r)].append(float(r["test_mse"]) * 1e3)
    best = {
        column: NRAE_NAMES[min(settings.values(), key=lambda s: s.validation_mse).order]
        for column, settings in chosen.items() if settings
    }

    def fmt(values):
        if not values:
            return "—"
        finite = [v for v in values if np.isfinite(v)]
        if not finite:
            return "diverged"
        std = np.std(finite, ddof=1) if len(finite) > 1 else 0.0
        failed = len(values) - len(finite)
        return f"{np.mean(finite):.3f} ± {std:.3f}" + (f" ({failed} diverged)" if failed else "")

    mean = lambda name, c: np.nanmean(mse[name, c]) if np.isfinite(mse[name, c]).any() else np.nan
    lines = [
        "| model | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    present = {r["model"] for r in rows}
    for name in (name for name in MODEL_NAMES if name in present):
        lines.append(f"| {name} | " + " | ".join(fmt(mse[name, c]) for c in columns) + " |")
    lines.append(
        "| NRAE (best, on validation) | "
        + " | ".join(f"{best[c]}: {fmt(mse[best[c], c])}" if c in best
                     else "none converged" if any(mse[name, c] for name in NRAE_ORDERS) else "—"
                     for c in columns)
        + " |"
    )
    change = lambda c: 100 * (mean(best[c], c) / mean("AE", c) - 1) if c in best else np.nan
    lines.append("| NRAE (best) vs AE | " + " | ".join(
        f"{change(c):+.1f} %" if np.isfinite(change(c)) else "—" for c in columns) + " |")
    return "\n".join(lines)


def write_csv(rows: List[dict], path: Path) -> None:
    with atomic_open(path, "w", newline="") as f:
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
    models: Sequence[str] = MODEL_NAMES,
) -> Tuple[List[dict], str]:
    """Benchmark every (dataset, size); returns the rows and the Markdown table (also written to out_dir).

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
    table = markdown_table(rows, chosen)
    settings = "\n".join(
        f"- {column}: " + (", ".join(
            f"{NRAE_NAMES[s.order]} k={s.k} λ={s.lam:g} (validation MSE {s.validation_mse:.5f})"
            for s in by_order.values()
        ) or "none")
        for column, by_order in chosen.items()
    )
    baselines = "\n".join(sorted({
        f"- {_column(r)}: {r['model']} {r['settings']}" for r in rows
        if r["model"] in BASELINE_NAMES and baseline_grid(r["model"], config)
    }))
    report = (
        f"Per-pixel test MSE ×10⁻³, mean ± std over seeds {list(seeds)}.\n\n{table}\n\n"
        f"NRAE settings chosen on validation:\n{settings}\n\n"
        f"Baseline settings chosen on validation:\n{baselines or '- none'}\n\nConfig: {config}\n"
        f"Baseline settings (defaults): {BASELINE_SETTINGS}\n"
    )
    if out_dir is not None:
        out = Path(out_dir)
        write_csv(rows, out / "image_benchmark.csv")
        with atomic_open(out / "image_benchmark.md") as f:
            f.write(report)
    return rows, report


def main(argv: Optional[Sequence[str]] = None) -> str:
    parser = argparse.ArgumentParser(
        prog="image_benchmark",
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


if __name__ == "__main__":
    main()
