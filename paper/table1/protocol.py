"""The Table 1 protocol: which models, on which images, trained how.

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
128 and 200 epochs by default); the other baselines' weights are fixed,
documented defaults (`BASELINE_SETTINGS`). GRAE's target embedding (PHATE
where the `grae` extra is installed, else spectral: `GRAE_TARGET`) is computed
once per training set. A run is reported as "diverged", and neither scored nor
selected, when its loss becomes NaN/Inf or grows past `divergence_factor` ×
its lowest epoch loss (it is stopped there), when no epoch after the first
lowers its loss (`keras_nrae.divergence.DivergenceMonitor`), or when it ends
reconstructing its own training images worse than their mean image does
(`trivial_factor`, `keras_nrae.divergence.failure_reason`): a run that goes
wrong in its first epoch, or never gets good, must not be scored as if it
were an NRAE or baseline result.

`recipe(name, config, shape, settings)` is the one place these settings
become a `keras_nrae.recipe.Recipe`; everything trains through
`keras_nrae.recipe.train`.
"""

import dataclasses
import importlib.util
import itertools
from typing import List, Optional, Sequence, Tuple

import numpy as np

from keras_nrae.baselines import target_embedding
from keras_nrae.datasets import load_images
from keras_nrae.recipe import Recipe

__all__ = [
    "ARCHITECTURES",
    "BASELINE_NAMES",
    "BASELINE_SETTINGS",
    "BenchmarkConfig",
    "GRAE_TARGET",
    "MODEL_NAMES",
    "NRAE_NAMES",
    "NRAE_ORDERS",
    "SMOKE_CONFIG",
    "baseline_grid",
    "describe",
    "grae_targets",
    "recipe",
    "training_subset",
    "validation_images",
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


# The repr of this class (its name, fields, their order and defaults) keys every
# committed benchmarks/results/*/cells.jsonl (`CellStore`): changing it orphans them.
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


# -- models ----------------------------------------------------------------------


def recipe(name: str, config: BenchmarkConfig, shape: Sequence[int], settings: Optional[dict] = None) -> Recipe:
    """The `Recipe` of model `name` under the protocol, for images of `shape` (H, W[, C]).

    settings: NRAE's {"k", "lam"} (the protocol has no defaults for them), or
    a baseline's chosen ones, updating `BASELINE_SETTINGS` (GRAE: "lam",
    "relax"; SPAE: "lam"). Every model shares `config`'s architecture,
    optimiser, schedule and divergence checks; the images' own channels
    decide nothing here (see `BenchmarkConfig.for_images`).
    """
    if name not in MODEL_NAMES:
        raise ValueError(f"Unknown baseline {name!r}; expected one of {MODEL_NAMES}.")
    if config.arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {ARCHITECTURES}, got {config.arch!r}.")
    shared = dict(
        model=name, latent_dim=config.latent_dim, architecture=config.arch, hidden=config.hidden,
        activation=config.activation, output_activation="sigmoid", epochs=config.epochs,
        batch_size=config.batch_size, learning_rate=config.learning_rate,
        neighbors_per_point=config.neighbors_per_point,
        divergence_factor=config.divergence_factor, trivial_factor=config.trivial_factor,
    )
    if name in NRAE_ORDERS:
        if settings is None or set(settings) != {"k", "lam"}:
            raise ValueError(f"{name} needs settings {{'k': ..., 'lam': ...}}, got {settings!r}.")
        return Recipe(**shared, k=settings["k"], lam=settings["lam"])
    chosen = {**BASELINE_SETTINGS.get(name, {}), **(settings or {})}
    pixels = int(np.prod(shape))
    if name == "GRAE":
        options = {"weight": chosen["lam"] * pixels / config.latent_dim,
                   "relax_epochs": config.epochs if chosen["relax"] else None}
    elif name == "SPAE":
        options = {"weight": chosen["lam"] * pixels, "scaling": chosen["scaling"]}
    else:
        options = chosen
    return Recipe(**shared, options=options)


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


def describe(settings: dict) -> str:
    """settings as the harness logs and reports them, e.g. "λ=0.1, relax=True"."""
    return ", ".join(f"{'λ' if key == 'lam' else key}={value:g}" if isinstance(value, float)
                     else f"{key}={value}" for key, value in settings.items())


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


def validation_split(x_train: np.ndarray, fraction: float) -> Tuple[np.ndarray, np.ndarray]:
    """(x_fit, x_val): a fixed (seed 0) `fraction` of x_train held out for validation."""
    permutation = np.random.default_rng(0).permutation(len(x_train))
    n_val = max(1, int(round(fraction * len(x_train))))
    return x_train[permutation[n_val:]], x_train[permutation[:n_val]]


def validation_images(dataset: str, config: BenchmarkConfig) -> Tuple[np.ndarray, np.ndarray]:
    """(x_fit, x_val): the validation split the selection uses, of dataset's S training images.

    For studies on validation data alone (benchmarks/); a dataset with fewer
    than `config.small_size` training images uses all of them.
    """
    images = load_images(dataset, "train")
    x_train = training_subset(images, "S", min(config.small_size, len(images)))
    return validation_split(x_train, config.validation_fraction)
