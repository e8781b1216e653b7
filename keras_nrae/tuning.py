"""Choosing NRAE's settings for your data on a validation split: `grid_search`.

What the paper's code asks a user to tune is the number of neighbours k and
the kernel weight λ (and NRAE-L or NRAE-Q); Table 1 chooses them by training on
a training split and scoring reconstruction on a held-out validation split.
`grid_search` does exactly that for any `Recipe` field:

    from keras_nrae.recipe import Recipe
    from keras_nrae.tuning import grid_search
    search = grid_search(x_fit, x_val, Recipe(epochs=100),
                         {"model": ["NRAE-L", "NRAE-Q"], "k": [5, 10], "lam": [0.1, 1.0]})
    search.best_trial.recipe, search.best_model

Each trial is `keras_nrae.recipe.train(x_fit, recipe with the trial's changes,
seed)` — for NRAE on the exact k-NN graph of x_fit, built once per k — scored
by its per-pixel MSE on x_val. A diverged run (NaN/Inf loss, or flagged by the
recipe's divergence checks) scores NaN and is never chosen. With `path`, each
finished trial is appended to a JSON-lines file, and the same call after an
interruption skips the trials it finds there.
"""

import dataclasses
import hashlib
import itertools
import json
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from keras_nrae.records import append_record, read_records
from keras_nrae.finite import NonFiniteError
from keras_nrae.graph import NeighborGraph
from keras_nrae.metrics import reconstruction_mse
from keras_nrae.model import Autoencoder
from keras_nrae.recipe import NRAE_ORDERS, EncoderDecoder, Recipe, Run, train

__all__ = ["Search", "Trial", "grid_search", "validation_mse"]

Grid = Union[Mapping[str, Sequence[Any]], Sequence[Mapping[str, Any]]]


@dataclasses.dataclass(frozen=True)
class Trial:
    """One setting tried: the recipe's `changes`, the full `recipe`, its validation
    MSE (NaN when it diverged), why it diverged (None: it did not) and its training time."""

    changes: Mapping[str, Any]
    recipe: Recipe
    validation_mse: float
    divergence: Optional[str]
    seconds: float


class Search:
    """The trials in grid order, and the model the best one trained (on x_fit).

    `best_model` is None when every trial diverged. When the best trial came
    from a resumed search's file, its model is trained again (same recipe and
    seed: the same model) the first time `best_model` is read.
    """

    def __init__(self, trials: List[Trial], best_model: Optional[Autoencoder],
                 retrain: Optional[Callable[[Trial], Autoencoder]] = None):
        self.trials = trials
        self._best_model, self._retrain = best_model, retrain

    @property
    def best_model(self) -> Optional[Autoencoder]:
        if self._best_model is None and self.best_trial is not None and self._retrain is not None:
            self._best_model = self._retrain(self.best_trial)
        return self._best_model

    def best(self, **where: Any) -> Optional[Trial]:
        """The trial with the lowest finite validation MSE among those whose recipe
        has the given field values (e.g. `best(model="NRAE-Q")`); None if there is none."""
        matching = [t for t in self.trials if np.isfinite(t.validation_mse)
                    and all(getattr(t.recipe, name) == value for name, value in where.items())]
        return min(matching, key=lambda t: t.validation_mse, default=None)

    @property
    def best_trial(self) -> Optional[Trial]:
        """The trial with the lowest finite validation MSE; None when every trial diverged."""
        return self.best()


def _settings(grid: Grid) -> List[Dict[str, Any]]:
    """The grid's list of changes: a dict of value lists in product order, or the list as given."""
    if isinstance(grid, Mapping):
        names = list(grid)
        return [dict(zip(names, values)) for values in itertools.product(*(grid[n] for n in names))]
    return [dict(changes) for changes in grid]


def _fingerprint(*arrays: np.ndarray) -> str:
    digest = hashlib.sha1()
    for a in arrays:
        digest.update(repr((a.shape, a.dtype.str)).encode())
        digest.update(np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()


def _key(recipe: Recipe, seed: int, data: str) -> str:
    return json.dumps({"recipe": repr(recipe), "seed": seed, "data": data})


def _read_trials(path: str) -> Dict[str, dict]:
    """{key: trial} of a grid_search file (see `keras_nrae.records.read_records`)."""
    records = read_records(path, ("key", "validation_mse", "divergence", "seconds"), "grid_search trial")
    return {record.pop("key"): record for record in records}


def validation_mse(run: Run, x_val: np.ndarray) -> float:
    """Per-pixel MSE of run's model on x_val, or NaN for a run that diverged or gives a non-finite
    MSE: the score a trial is chosen by (never NaN's)."""
    if run.diverged:
        return float("nan")
    mse = reconstruction_mse(run.model, x_val)
    return mse if np.isfinite(mse) else float("nan")


def _trial(changes, candidate: Recipe, x_fit, x_val, seed, graph, targets, builder):
    """(the Trial of candidate trained on x_fit and scored on x_val, its model or None if it raised)."""
    start = time.perf_counter()
    try:
        run = train(x_fit, candidate, seed, graph=graph, targets=targets, builder=builder)
    except NonFiniteError as error:  # a recipe without divergence checks
        return Trial(changes, candidate, float("nan"), str(error), time.perf_counter() - start), None
    return Trial(changes, candidate, validation_mse(run, x_val), run.divergence,
                 time.perf_counter() - start), run.model


def grid_search(
    x_fit: np.ndarray,
    x_val: np.ndarray,
    recipe: Recipe,
    grid: Grid,
    *,
    seed: int = 0,
    targets: Optional[np.ndarray] = None,
    builder: Optional[EncoderDecoder] = None,
    log: Optional[Callable[[str], None]] = print,
    path: Optional[str] = None,
) -> Search:
    """Train `recipe` changed by each setting of `grid` on x_fit; score each on x_val.

    Args:
      x_fit: (N, *shape) training data of every trial.
      x_val: (V, *shape) validation data, scored by per-pixel MSE.
      recipe: what every trial shares.
      grid: {field: values} (every combination, in `itertools.product` order
        of the dict's keys) or a list of {field: value} changes.
      seed: every trial's seed (`keras_nrae.recipe.train`).
      targets: GRAE's target embedding of x_fit, shared by its trials.
      builder: `builder(shape, latent_dim)` → (encoder, decoder), for every trial.
      log: called with one line per trial (None: silent).
      path: a JSON-lines file of finished trials, so that an interrupted search
        resumes; a trial is found there by its full recipe, seed and a digest of
        x_fit and x_val. The best model, when its trial came from the file, is
        trained again (with the same seed: the same model) when first asked for.

    Returns:
      `Search` with every trial and the best trial's model (None if all diverged).
    """
    x_fit, x_val = np.asarray(x_fit), np.asarray(x_val)
    if x_fit.shape[1:] != x_val.shape[1:]:
        raise ValueError(f"x_fit has samples of shape {x_fit.shape[1:]}, x_val of shape {x_val.shape[1:]}.")
    data = _fingerprint(x_fit, x_val) if path else ""
    finished = _read_trials(path) if path else {}
    graphs: Dict[int, NeighborGraph] = {}

    def run(changes, candidate):
        graph = None
        if candidate.model in NRAE_ORDERS:
            if candidate.k not in graphs:
                graphs[candidate.k] = NeighborGraph.build(x_fit, k=candidate.k, verbose=0)
            graph = graphs[candidate.k]
        return _trial(changes, candidate, x_fit, x_val, seed, graph, targets, builder)

    trials, best_mse, best_model = [], np.inf, None
    for changes in _settings(grid):
        candidate = dataclasses.replace(recipe, **changes)
        key = _key(candidate, seed, data)
        if key in finished:
            values = finished[key]
            trial, model = Trial(changes, candidate, float(values["validation_mse"]), values["divergence"],
                                 values["seconds"]), None
        else:
            trial, model = run(changes, candidate)
            if path:
                append_record(path, {"key": key, "validation_mse": trial.validation_mse,
                               "divergence": trial.divergence, "seconds": trial.seconds})
        if np.isfinite(trial.validation_mse) and trial.validation_mse < best_mse:
            best_mse, best_model = trial.validation_mse, model
        trials.append(trial)
        if log:
            described = ", ".join(f"{name}={value}" for name, value in changes.items())
            log(f"  trial {len(trials)}: {described}  " + (
                f"validation mse {trial.validation_mse:.5f}" if np.isfinite(trial.validation_mse)
                else f"DIVERGED (not selectable): {trial.divergence}"))
    return Search(trials, best_model, retrain=lambda trial: run(trial.changes, trial.recipe)[1])
