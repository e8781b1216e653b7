"""Deprecated: the paper's small experiments moved into the library and the examples.

* `denoising`, `curve_experiment`, `sequence_experiment`, `decoded_curve`,
  `curve_figure`, `strip_figure`, `write_results`, `format_metrics`:
  `keras_nrae.demo` (they take a `keras_nrae.recipe.Recipe` now);
  `image_strip`: `keras_nrae.callbacks`; the toy data: `keras_nrae.toy`.
* Training: `keras_nrae.recipe.Recipe` (instead of `TrainSettings`),
  `Recipe.replace_from_strings` (instead of `override_settings`) and
  `keras_nrae.recipe.train` (instead of `train_model`). The three old names
  still work for one release, through the recipe.
* `connectivity`, `digit_experiment` and `example_main`: the self-contained
  scripts examples/connectivity.py, rotated_mnist.py and shifted_mnist.py.

Importing this module warns (DeprecationWarning); it will be removed in the
next release.
"""

import dataclasses
import warnings
from typing import Optional, Sequence, Tuple

import numpy as np

from keras_nrae.callbacks import image_strip
from keras_nrae.demo import (
    DIGIT_INDEX,
    DIGIT_SEQUENCES,
    VARIANTS,
    curve_experiment,
    curve_figure,
    decoded_curve,
    denoising,
    format_metrics,
    sequence_experiment,
    strip_figure,
    write_results,
)
from keras_nrae.model import Autoencoder
from keras_nrae.recipe import Recipe, train

warnings.warn(
    "keras_nrae.paper.experiments is deprecated and will be removed in the next release: "
    "the demo and the curve/sequence experiments are keras_nrae.demo, the training recipe is "
    "keras_nrae.recipe (Recipe, Recipe.replace_from_strings, train), image_strip is "
    "keras_nrae.callbacks.image_strip, the toy data keras_nrae.toy, and the connectivity and "
    "MNIST experiments are the scripts in examples/.",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "DIGIT_INDEX",
    "DIGIT_SEQUENCES",
    "TrainSettings",
    "VARIANTS",
    "curve_experiment",
    "curve_figure",
    "decoded_curve",
    "denoising",
    "format_metrics",
    "image_strip",
    "override_settings",
    "sequence_experiment",
    "strip_figure",
    "train_model",
    "write_results",
]

_MOVED = {
    "connectivity": "examples/connectivity.py (its main(argv))",
    "CONNECTIVITY": "examples/connectivity.py (CONNECTIVITY, a keras_nrae.recipe.Recipe)",
    "digit_experiment": "examples/rotated_mnist.py and examples/shifted_mnist.py (their main(argv)), "
    "built on keras_nrae.demo.mnist_digit_sequence and keras_nrae.demo.sequence_experiment",
    "DIGIT_SETTINGS": "examples/rotated_mnist.py and examples/shifted_mnist.py (DIGITS, a keras_nrae.recipe.Recipe)",
    "example_main": "the self-contained scripts in examples/ (with keras_nrae.demo.example_options "
    "and keras_nrae.demo.example_recipe for their common options)",
    "training_data": "keras_nrae.recipe.train, which builds the data itself",
}


def __getattr__(name: str):
    if name in _MOVED:
        raise AttributeError(
            f"keras_nrae.paper.experiments.{name} was removed; it moved to {_MOVED[name]}."
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Deprecated: use `keras_nrae.recipe.Recipe` (`as_recipe` converts). How one model was trained.

    `epochs` counts passes over the data; the progress bar shows at most
    `progress_lines` Keras epochs (`Recipe.progress_epochs`).
    """

    latent_dim: int = 1
    hidden: Tuple[int, ...] = (512, 512, 512)
    output_activation: Optional[str] = None
    epochs: int = 1000
    batch_size: int = 50
    learning_rate: float = 1e-3
    k: int = 5
    neighbors_per_point: int = 2
    include_center: bool = False
    replace: bool = True
    lam: float = 1.0
    progress_lines: int = 10

    def as_recipe(self, model: str = "NRAE-L") -> Recipe:
        """The same training as a `Recipe` for `model` (an ELU MLP), bit for bit."""
        fields = dataclasses.asdict(self)
        fields["progress_epochs"] = fields.pop("progress_lines")
        return Recipe(model=model, activation="elu", **fields)


def override_settings(settings, pairs: Sequence[str]):
    """Deprecated: use `Recipe.replace_from_strings`. settings (any dataclass) with fields replaced
    from "name=value" strings, e.g. ["k=30", "learning_rate=1e-4", "output_activation=none",
    "hidden=256,256", "include_center=true"]."""
    fields = {field.name: getattr(settings, field.name) for field in dataclasses.fields(settings)}
    changes = {}
    for pair in pairs:
        name, _, text = pair.partition("=")
        if name not in fields or not text:
            raise ValueError(f"Expected NAME=VALUE with NAME one of {sorted(fields)}, got {pair!r}.")
        default = fields[name]
        if isinstance(default, bool):
            if text.lower() not in ("true", "false"):
                raise ValueError(f"{name} must be true or false, got {text!r}.")
            changes[name] = text.lower() == "true"
        elif isinstance(default, tuple):
            changes[name] = tuple(int(v) for v in text.split(","))
        elif isinstance(default, (int, float)):
            changes[name] = type(default)(text)
        else:  # output_activation: an activation name or none
            changes[name] = None if text.lower() == "none" else text
    return dataclasses.replace(settings, **changes)


def train_model(
    x: np.ndarray, variant: str, settings: TrainSettings, seed: int = 0, verbose: int = 0
) -> Autoencoder:
    """Deprecated: use `keras_nrae.recipe.train(x, settings.as_recipe(variant), seed).model`."""
    if variant not in VARIANTS:
        raise ValueError(f"Unknown model {variant!r}; expected one of {VARIANTS}.")
    return train(x, settings.as_recipe(variant), seed, verbose=verbose).model
