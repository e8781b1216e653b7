"""One way to build, compile and train an autoencoder: a `Recipe` and `train(x, recipe)`.

    from keras_nrae.recipe import Recipe, train
    run = train(x, Recipe(model="NRAE-L", k=10, lam=1.0, epochs=100), seed=0)
    run.model.encode(x)

A `Recipe` names the model (an NRAE order or one of `keras_nrae.baselines`),
its encoder/decoder (`keras_nrae.architectures`, or any builder you pass), the
optimiser and schedule, the neighbourhoods and whether to watch for divergence.
`train` is the library's single build-compile-fit path: the scikit-learn
estimator, the `keras-nrae train` command, the examples, the paper's Table 1
harness and `keras_nrae.tuning` all train through it, so a setting means the
same thing everywhere.

With a fixed seed a run is reproducible: `train` calls
`keras.utils.set_random_seed(seed)`, builds the neighbour graph (NRAE; exact
k-NN unless one is passed), the data and then the model, in that order.
"""

import dataclasses
import inspect
import math
import typing
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from keras_nrae import kernels
from keras_nrae._checks import check_order, integer_at_least, non_negative, positive
from keras_nrae.architectures import conv_autoencoder, mlp_autoencoder
from keras_nrae.baselines import (
    ContractiveAutoencoder,
    DenoisingAutoencoder,
    GeometryRegularizedAutoencoder,
    StructurePreservingAutoencoder,
    VariationalAutoencoder,
    WassersteinAutoencoder,
    target_embedding,
)
from keras_nrae.divergence import DivergenceMonitor, failure_reason
from keras_nrae.finite import NonFiniteError
from keras_nrae.graph import NeighborGraph
from keras_nrae.model import Autoencoder, NeighborhoodReconstructionModel
from keras_nrae.pipeline import neighborhood_dataset

__all__ = [
    "ARCHITECTURES",
    "BASELINES",
    "EAGER_MAX_STEPS",
    "MODEL_NAMES",
    "NRAE_ORDERS",
    "Recipe",
    "Run",
    "build_model",
    "encoder_decoder",
    "train",
]

NRAE_ORDERS = {"NRAE-L": 1, "NRAE-Q": 2}
BASELINES = {
    "AE": Autoencoder,
    "DAE": DenoisingAutoencoder,
    "CAE": ContractiveAutoencoder,
    "VAE": VariationalAutoencoder,
    "WAE": WassersteinAutoencoder,
    "GRAE": GeometryRegularizedAutoencoder,
    "SPAE": StructurePreservingAutoencoder,
}
MODEL_NAMES = tuple(BASELINES) + tuple(NRAE_ORDERS)
ARCHITECTURES = ("mlp", "conv")
# Baselines whose noise (corruption, sampling) is seeded with the run's seed.
_SEEDED = ("DAE", "VAE", "WAE")
# Tracing a train step takes seconds; a run of at most this many steps runs eagerly, which is faster.
EAGER_MAX_STEPS = 20

EncoderDecoder = Callable[[Tuple[int, ...], int], Tuple[keras.Model, keras.Model]]


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How one autoencoder is built, compiled and trained.

    Attributes:
      model: one of `MODEL_NAMES`: "NRAE-L" / "NRAE-Q" (order 1 / 2) or a baseline.
      latent_dim: d, the size of the codes.
      architecture: "mlp" (`mlp_autoencoder` with `hidden`) or "conv"
        (`conv_autoencoder`'s default filters); ignored when `train` gets a builder.
      hidden, activation, output_activation: the encoder/decoder's hidden
        widths, activation and decoder output activation (None: linear).
      epochs: passes over the data.
      batch_size: examples (NRAE: centres) per step, at most N.
      learning_rate: Adam's.
      progress_epochs: None: one Keras epoch per pass. A number: the passes are
        grouped into at most that many Keras epochs (of equal steps, over a
        repeated stream), so a run of many short passes shows a few epochs.
      k: neighbours per point in the graph (NRAE).
      lam: `kernels.Binary(lam)`: a neighbour's weight; the centre weighs 1 (NRAE).
      neighbors_per_point: M, slots per centre (NRAE; see `neighborhood_dataset`).
      include_center: whether slot 0 holds the centre itself (NRAE).
      replace: draw the M − 1 neighbours with replacement (NRAE).
      expand_output_activation: see `NeighborhoodReconstructionModel`.
      options: the baseline's own arguments, e.g. {"sigma": 0.1} for DAE.
      divergence_factor: None: no divergence checks (a NaN/Inf loss still
        raises `NonFiniteError`). A number: the run is watched by
        `DivergenceMonitor(divergence_factor)`, a NaN/Inf loss stops it, and
        `Run.divergence` says what went wrong instead of an exception.
      trivial_factor: with divergence checks, also `failure_reason(model, x,
        trivial_factor)` on the training data once training ends.
    """

    model: str = "NRAE-L"
    latent_dim: int = 10
    architecture: str = "mlp"
    hidden: Tuple[int, ...] = (256, 256)
    activation: str = "elu"
    output_activation: Optional[str] = "sigmoid"
    epochs: int = 100
    batch_size: int = 100
    learning_rate: float = 1e-3
    progress_epochs: Optional[int] = None
    k: int = 10
    lam: float = 1.0
    neighbors_per_point: int = 2
    include_center: bool = True
    replace: bool = False
    expand_output_activation: bool = True
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    divergence_factor: Optional[float] = None
    trivial_factor: Optional[float] = None

    def __post_init__(self):
        if self.model not in MODEL_NAMES:
            raise ValueError(f"model must be one of {MODEL_NAMES}, got {self.model!r}.")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}.")
        for name in ("latent_dim", "epochs", "batch_size", "k", "neighbors_per_point"):
            integer_at_least(getattr(self, name), name)
        for units in self.hidden:
            integer_at_least(units, "each hidden layer size")
        if self.progress_epochs is not None:
            integer_at_least(self.progress_epochs, "progress_epochs")
        positive(self.learning_rate, "learning_rate")
        non_negative(self.lam, "lam")
        if self.divergence_factor is not None:
            positive(self.divergence_factor, "divergence_factor")
        if self.model in NRAE_ORDERS and self.neighbors_per_point - 1 > self.k:
            raise ValueError(
                f"neighbors_per_point={self.neighbors_per_point} draws {self.neighbors_per_point - 1} "
                f"neighbours besides the centre from k={self.k}; raise k or lower neighbors_per_point."
            )
        unknown = set(self.options) - _option_names(self.model)
        if unknown:
            raise ValueError(
                f"options {sorted(unknown)} are not arguments of {self.model}; "
                f"it takes {sorted(_option_names(self.model)) or 'none'}."
            )

    @property
    def order(self) -> Optional[int]:
        """1 or 2 for NRAE-L / NRAE-Q, None for a baseline."""
        return NRAE_ORDERS.get(self.model)

    def replace_from_strings(self, pairs: Sequence[str]) -> "Recipe":
        """This recipe with fields replaced from "name=value" strings (a command line's), e.g.
        ["k=30", "learning_rate=1e-4", "output_activation=none", "hidden=256,256", "include_center=true"]."""
        kinds = {f.name: f.type for f in dataclasses.fields(self) if f.name != "options"}
        changes = {}
        for pair in pairs:
            name, _, text = pair.partition("=")
            if name not in kinds or not text:
                raise ValueError(f"Expected NAME=VALUE with NAME one of {sorted(kinds)}, got {pair!r}.")
            changes[name] = _parse(name, kinds[name], text)
        return dataclasses.replace(self, **changes)


def _parse(name: str, kind, text: str):
    """text as a value of the field type `kind`: a bool, int, float, str, tuple of ints, or Optional of one ("none")."""
    if type(None) in typing.get_args(kind):
        if text.lower() == "none":
            return None
        kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
    if kind is bool:
        if text.lower() not in ("true", "false"):
            raise ValueError(f"{name} must be true or false, got {text!r}.")
        return text.lower() == "true"
    if typing.get_origin(kind) is tuple:
        return tuple(int(v) for v in text.split(","))
    return kind(text)


def _option_names(model: str) -> set:
    """The arguments of model's class beyond encoder, decoder, seed and Keras's own."""
    if model in NRAE_ORDERS:
        return set()
    parameters = inspect.signature(BASELINES[model].__init__).parameters
    return {name for name, p in parameters.items()
            if name not in ("self", "encoder", "decoder", "seed") and p.kind is p.POSITIONAL_OR_KEYWORD}


@dataclasses.dataclass(frozen=True)
class Run:
    """What `train` returns: the trained model, its Keras History.history and, with
    divergence checks, why it diverged (None: it did not)."""

    model: Autoencoder
    history: Mapping[str, list]
    divergence: Optional[str] = None

    @property
    def diverged(self) -> bool:
        return self.divergence is not None


def encoder_decoder(shape: Sequence[int], recipe: Recipe, latent_dim: Optional[int] = None):
    """(encoder, decoder) of `recipe.architecture` for inputs of `shape`, with latent_dim (default the recipe's) codes."""
    latent_dim = latent_dim or recipe.latent_dim
    if recipe.architecture == "conv":
        return conv_autoencoder(shape, latent_dim, activation=recipe.activation,
                                output_activation=recipe.output_activation)
    return mlp_autoencoder(shape, latent_dim, recipe.hidden, recipe.activation, recipe.output_activation)


def build_model(
    shape: Sequence[int], recipe: Recipe, seed: int = 0, builder: Optional[EncoderDecoder] = None
) -> Autoencoder:
    """The recipe's model for inputs of `shape` (its weights drawn from Keras's global generator:
    seed that first). `builder(shape, latent_dim)` → (encoder, decoder) replaces the recipe's
    architecture; a VAE's encoder is built with 2·d outputs (mean, log-variance)."""
    shape = tuple(int(s) for s in shape)
    build = builder or (lambda shape, latent_dim: encoder_decoder(shape, recipe, latent_dim))
    if recipe.model in NRAE_ORDERS:
        return NeighborhoodReconstructionModel(
            *build(shape, recipe.latent_dim), order=recipe.order, kernel=kernels.Binary(recipe.lam),
            include_center=recipe.include_center, expand_output_activation=recipe.expand_output_activation,
        )
    options = dict(recipe.options)
    if recipe.model in _SEEDED:
        options["seed"] = seed
    if recipe.model == "VAE":
        encoder, decoder = build(shape, 2 * recipe.latent_dim)[0], build(shape, recipe.latent_dim)[1]
    else:
        encoder, decoder = build(shape, recipe.latent_dim)
    return BASELINES[recipe.model](encoder, decoder, **options)


def _schedule(num_examples: int, recipe: Recipe) -> Tuple[int, dict]:
    """(batch size, fit's epochs / steps_per_epoch) for `recipe.epochs` passes over num_examples."""
    batch_size = min(recipe.batch_size, num_examples)
    if recipe.progress_epochs is None:
        return batch_size, {"epochs": recipe.epochs}
    steps = recipe.epochs * (num_examples // batch_size)
    shown = max(1, min(recipe.progress_epochs, recipe.epochs))
    return batch_size, {"epochs": shown, "steps_per_epoch": math.ceil(steps / shown)}


def train(
    x: np.ndarray,
    recipe: Recipe,
    seed: int = 0,
    *,
    graph: Optional[NeighborGraph] = None,
    targets: Optional[np.ndarray] = None,
    builder: Optional[EncoderDecoder] = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int = 0,
) -> Run:
    """The recipe's model, compiled (Adam) and trained on x (N, *shape) with `model.fit`.

    Args:
      x: the training data, e.g. float32 images in [0, 1] (what the model reconstructs).
      recipe: what to build and how to train it.
      seed: seeds the weights (`keras.utils.set_random_seed`), the baselines'
        noise and the order of the data (and NRAE's neighbour draws).
      graph: NRAE's k-NN graph of x (built exactly with `recipe.k` if None).
      targets: GRAE's target embedding (N, d); `target_embedding(x, d)` if None.
      builder: `builder(shape, latent_dim)` → (encoder, decoder), instead of
        the recipe's architecture.
      callbacks: passed to fit (before the recipe's `DivergenceMonitor`, if any).
      verbose: Keras progress bars: 0 none, 1 bars, 2 one line per epoch.

    NRAE trains on `neighborhood_dataset` batches (reshuffled, neighbours
    redrawn every pass); a baseline on x itself, shuffled by Keras every pass
    (or, with `progress_epochs`, by a seeded tf.data stream).
    """
    x = np.asarray(x)
    keras.utils.set_random_seed(seed)
    batch_size, schedule = _schedule(len(x), recipe)
    if recipe.model == "GRAE" and targets is None:
        targets = target_embedding(x, recipe.latent_dim)
    if recipe.model in NRAE_ORDERS:
        graph = graph or NeighborGraph.build(x, k=recipe.k, verbose=0)
        data = neighborhood_dataset(
            x, graph, batch_size, recipe.neighbors_per_point,
            include_center=recipe.include_center, replace=recipe.replace, seed=seed,
        )
        inputs = {"x": data.repeat() if "steps_per_epoch" in schedule else data}
    elif "steps_per_epoch" in schedule:
        examples = x if recipe.model != "GRAE" else (x, targets)
        data = tf.data.Dataset.from_tensor_slices(examples).shuffle(len(x), seed=seed)
        inputs = {"x": data.batch(batch_size, drop_remainder=True).repeat()}
    else:
        inputs = {"x": x, "y": targets if recipe.model == "GRAE" else None, "batch_size": batch_size}
    model = build_model(x.shape[1:], recipe, seed, builder)
    steps = schedule["epochs"] * schedule.get("steps_per_epoch", -(-len(x) // batch_size))
    model.compile(keras.optimizers.Adam(recipe.learning_rate), run_eagerly=steps <= EAGER_MAX_STEPS)
    monitor = None if recipe.divergence_factor is None else DivergenceMonitor(recipe.divergence_factor)
    try:
        history = model.fit(
            **inputs, **schedule, verbose=verbose, callbacks=[*callbacks, *([monitor] if monitor else [])]
        ).history
    except NonFiniteError as error:
        if monitor is None:
            raise
        return Run(model, {}, str(error))
    divergence = None
    if monitor is not None:
        divergence = monitor.reason or failure_reason(model, x, recipe.trivial_factor)
    return Run(model, history, divergence)
