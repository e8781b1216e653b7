"""Training a model under the protocol, and choosing settings on validation data alone.

A protocol run is `keras_nrae.recipe.train` of `protocol.recipe`; the
selections are `keras_nrae.tuning.grid_search` over the protocol's grids, on
`protocol.validation_split` of the training images, every trial with seed 0.
"""

import dataclasses
from typing import Callable, Dict, Optional, Sequence

import keras
import numpy as np

from keras_nrae import recipe as recipes
from keras_nrae import tuning
from keras_nrae.graph import NeighborGraph

from paper.table1 import protocol
from paper.table1.protocol import BenchmarkConfig

__all__ = ["NraeSettings", "select_baseline", "select_nrae", "train_model", "validation_score"]

Log = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class NraeSettings:
    """An NRAE order's (k, λ) chosen on validation, and its validation MSE."""

    order: int
    k: int
    lam: float
    validation_mse: float


def train_model(
    name: str, x: np.ndarray, config: BenchmarkConfig, seed: int, settings: Optional[dict] = None, *,
    graph: Optional[NeighborGraph] = None, targets: Optional[np.ndarray] = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> recipes.Run:
    """Model `name` trained on x under the protocol (`protocol.recipe(name, config, x.shape[1:], settings)`).

    NRAE trains with neighbours from `graph` (x's exact k-NN graph if None);
    GRAE towards `targets` (`protocol.grae_targets(x, config)` if None).
    `Run.divergence` says why a run is not scored (None: it is).
    """
    if name == "GRAE" and targets is None:
        targets = protocol.grae_targets(x, config)
    return recipes.train(
        x, protocol.recipe(name, config, x.shape[1:], settings), seed,
        graph=graph, targets=targets if name == "GRAE" else None, callbacks=callbacks,
    )


# Per-pixel MSE, or NaN for a diverged run: the score runs are chosen and reported by.
validation_score = tuning.validation_mse


def _verdict(trial) -> str:
    if np.isfinite(trial.validation_mse):
        return f"mse={trial.validation_mse:.5f}"
    return f"DIVERGED (not selectable): {trial.divergence}"


def select_nrae(
    x_train: np.ndarray, config: BenchmarkConfig, log: Log = print, trials: Optional[str] = None
) -> Dict[int, NraeSettings]:
    """Best (k, λ) per order by validation MSE on a split of x_train alone (seed 0).

    Diverged runs are logged and never chosen; an order whose every run
    diverged is absent from the result. trials: `grid_search`'s file of
    finished trials, so that a selection killed half-way resumes.
    """
    x_fit, x_val = protocol.validation_split(x_train, config.validation_fraction)
    names = [protocol.NRAE_NAMES[order] for order in config.orders]
    start = {"k": config.k_grid[0], "lam": config.lam_grid[0]}
    search = tuning.grid_search(
        x_fit, x_val, protocol.recipe(names[0], config, x_fit.shape[1:], start),
        {"model": names, "k": list(config.k_grid), "lam": list(config.lam_grid)}, seed=0, log=None,
        path=trials,
    )
    for trial in search.trials:
        log(f"  validation  {trial.recipe.model}  k={trial.recipe.k:<3d} lam={trial.recipe.lam:<6g} {_verdict(trial)}")
    best = {}
    for order, name in zip(config.orders, names):
        trial = search.best(model=name)
        if trial is not None:
            best[order] = NraeSettings(order, trial.recipe.k, trial.recipe.lam, trial.validation_mse)
    return best


def select_baseline(
    name: str, x_train: np.ndarray, config: BenchmarkConfig, log: Log = print, trials: Optional[str] = None
) -> dict:
    """The `protocol.baseline_grid` settings of `name` with the lowest validation MSE, as `select_nrae` chooses.

    Returns {"settings": those settings or None when every run diverged,
    "validation_mse": their validation MSE or None}.
    """
    x_fit, x_val = protocol.validation_split(x_train, config.validation_fraction)
    targets = protocol.grae_targets(x_fit, config) if name == "GRAE" else None
    grid = protocol.baseline_grid(name, config)
    shape = x_fit.shape[1:]
    search = tuning.grid_search(
        x_fit, x_val, protocol.recipe(name, config, shape),
        [{"options": protocol.recipe(name, config, shape, settings).options} for settings in grid],
        seed=0, targets=targets, log=None, path=trials,
    )
    best = {"settings": None, "validation_mse": None}
    for settings, trial in zip(grid, search.trials, strict=True):
        log(f"  validation  {name}  {protocol.describe(settings)}  {_verdict(trial)}")
        if trial is search.best_trial:
            best = {"settings": settings, "validation_mse": trial.validation_mse}
    return best
