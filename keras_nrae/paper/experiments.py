"""The paper's small experiments as functions: train AE, NRAE-L and NRAE-Q on one dataset, measure, draw.

`train_model` trains one variant; `curve_experiment` (2-D points, e.g. the
noisy sine and the sparse spiral of `keras_nrae.paper.toy`) and
`sequence_experiment` (an image sequence along one parameter, e.g. a rotated
digit) train every variant with a 1-D latent space and measure

* `distance_to_true_curve`: `metrics.manifold_distance` from the decoded
  latent axis (`decoded_curve`) to the densely sampled true curve, and
  `true_curve_coverage`, the same distance the other way round;
* `latent_order_correlation`: |Spearman ρ| between the codes and the true
  parameter (1.0 = the learned 1-D manifold has the right connectivity).

`denoising`, `connectivity` and `digit_experiment` are the experiments end to
end with their settings; `keras-nrae demo` calls `denoising`, and each
script in examples/ is `example_main`. Figures need matplotlib
(`pip install keras-nrae[examples]`).
"""

import argparse
import dataclasses
import json
import math
import os
from typing import Dict, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from keras_nrae import kernels
from keras_nrae._files import atomic_open
from keras_nrae._plotting import png_bytes, require_matplotlib
from keras_nrae import toy
from keras_nrae.architectures import mlp_autoencoder
from keras_nrae.pipeline import neighborhood_dataset
from keras_nrae.datasets import load_images
from keras_nrae.graph import NeighborGraph
from keras_nrae.metrics import latent_order_correlation, manifold_distance
from keras_nrae.model import Autoencoder, NeighborhoodReconstructionModel

__all__ = [
    "TrainSettings",
    "connectivity",
    "decoded_curve",
    "denoising",
    "digit_experiment",
    "example_main",
    "format_metrics",
    "image_strip",
    "override_settings",
    "train_model",
]

VARIANTS = ("AE", "NRAE-L", "NRAE-Q")
_ORDERS = {"NRAE-L": 1, "NRAE-Q": 2}
_COLORS = {"AE": "tab:red", "NRAE-L": "tab:green", "NRAE-Q": "tab:purple"}
_SHORT_NAMES = {
    "distance_to_true_curve": "distance",
    "true_curve_coverage": "coverage",
    "latent_order_correlation": "ρ",
}


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """How one model is trained: architecture, optimiser, schedule and neighbourhoods.

    `epochs` counts passes over the data. On a small set many passes are
    grouped into one Keras epoch, so the progress bar shows at most
    `progress_lines` epochs.
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


def override_settings(settings: TrainSettings, pairs: Sequence[str]) -> TrainSettings:
    """settings with fields replaced from "name=value" strings, e.g. ["k=30", "learning_rate=1e-4",
    "output_activation=none", "hidden=256,256", "include_center=true"]."""
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


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"Unknown model {variant!r}; expected one of {VARIANTS}.")


def training_data(x: np.ndarray, variant: str, settings: TrainSettings, seed: int) -> tf.data.Dataset:
    """One pass over x: plain batches for "AE", `neighborhood_dataset` batches
    from the exact k-NN graph of x for NRAE."""
    _check_variant(variant)
    batch_size = min(settings.batch_size, len(x))
    if variant == "AE":
        data = tf.data.Dataset.from_tensor_slices(x).shuffle(len(x), seed=seed)
        return data.batch(batch_size, drop_remainder=True)
    graph = NeighborGraph.build(x, k=settings.k, verbose=0)
    return neighborhood_dataset(
        x, graph, batch_size, settings.neighbors_per_point,
        include_center=settings.include_center, replace=settings.replace, seed=seed,
    )


def train_model(
    x: np.ndarray, variant: str, settings: TrainSettings, seed: int = 0, verbose: int = 0
) -> Autoencoder:
    """An `mlp_autoencoder` (ELU) trained on x (N, *shape) as "AE", "NRAE-L" or "NRAE-Q" (kernel Binary(lam))."""
    _check_variant(variant)
    if settings.epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {settings.epochs}.")
    keras.utils.set_random_seed(seed)
    encoder, decoder = mlp_autoencoder(
        x.shape[1:], settings.latent_dim, settings.hidden, "elu", settings.output_activation
    )
    if variant == "AE":
        model = Autoencoder(encoder, decoder)
    else:
        model = NeighborhoodReconstructionModel(
            encoder, decoder, order=_ORDERS[variant], kernel=kernels.Binary(settings.lam),
            include_center=settings.include_center,
        )
    model.compile(keras.optimizers.Adam(settings.learning_rate))
    steps = settings.epochs * (len(x) // min(settings.batch_size, len(x)))
    shown = max(1, min(settings.progress_lines, settings.epochs))
    data = training_data(x, variant, settings, seed).repeat()
    if verbose:
        print(f"Training {variant} ({settings.epochs} passes over {len(x)} points):")
    model.fit(data, epochs=shown, steps_per_epoch=math.ceil(steps / shown), verbose=verbose)
    return model


def decoded_curve(model: Autoencoder, x: np.ndarray, resolution: int = 2000) -> np.ndarray:
    """f(z) (resolution, *shape) on a uniform grid spanning the 1-D codes g(x)."""
    z = np.asarray(model.encode(x))
    if z.shape[1] != 1:
        raise ValueError(f"decoded_curve needs a 1-D latent space; the codes are {z.shape}.")
    grid = np.linspace(z.min(), z.max(), resolution, dtype=z.dtype)[:, None]
    return np.asarray(model.decode(grid))


def curve_experiment(
    points: np.ndarray,
    curve: np.ndarray,
    settings: TrainSettings,
    t: Optional[np.ndarray] = None,
    variants: Sequence[str] = VARIANTS,
    seed: int = 0,
    verbose: int = 0,
) -> Tuple[Dict[str, dict], Dict[str, np.ndarray]]:
    """Train each variant on points (N, 2) with a 1-D latent space.

    Returns:
      (metrics {variant: {"distance_to_true_curve", "true_curve_coverage"
       (the mean distance the other way, from the true curve to the decoded
       one: low only if the decoded curve spans the whole true curve),
       ["latent_order_correlation" when the true parameter t (N,) is given]}},
       decoded curves {variant: (R, 2)}).
    """
    metrics, curves = {}, {}
    for variant in variants:
        model = train_model(points, variant, settings, seed, verbose)
        curves[variant] = decoded_curve(model, points)
        metrics[variant] = {
            "distance_to_true_curve": manifold_distance(curves[variant], curve),
            "true_curve_coverage": manifold_distance(curve, curves[variant]),
        }
        if t is not None:
            metrics[variant]["latent_order_correlation"] = latent_order_correlation(
                model.encode(points), t
            )
    return metrics, curves


def sequence_experiment(
    images: np.ndarray,
    t: np.ndarray,
    settings: TrainSettings,
    variants: Sequence[str] = VARIANTS,
    steps: int = 16,
    seed: int = 0,
    verbose: int = 0,
) -> Tuple[Dict[str, dict], Dict[str, np.ndarray]]:
    """Train each variant on images (N, H, W, C) that vary along one parameter t (N,).

    Returns:
      (metrics {variant: {"latent_order_correlation"}}, strips {variant:
       `steps` images decoded along the latent axis from the code of the
       first image (t smallest) to the last, side by side, (H, steps·W[, C])}).
    """
    start, end = images[np.argmin(t)], images[np.argmax(t)]
    metrics, strips = {}, {}
    for variant in variants:
        model = train_model(images, variant, settings, seed, verbose)
        metrics[variant] = {"latent_order_correlation": latent_order_correlation(model.encode(images), t)}
        z_start, z_end = np.asarray(model.encode(np.stack([start, end])))
        path = np.linspace(z_start, z_end, steps)
        strips[variant] = image_strip(np.asarray(model.decode(path)), np.arange(steps), steps)
    return metrics, strips


# -- figures and files -------------------------------------------------------------


def curve_figure(points: np.ndarray, curve: np.ndarray, curves: Dict[str, np.ndarray], metrics: Dict[str, dict], title: str):
    """One panel per variant: the data, the true curve (dashed) and the decoded curve."""
    require_matplotlib("keras_nrae.paper.experiments.curve_figure")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.2 * len(curves), 3.6), dpi=100)
    for i, (variant, decoded) in enumerate(curves.items()):
        ax = figure.add_subplot(1, len(curves), i + 1)
        ax.plot(curve[:, 0], curve[:, 1], "--", c="k", lw=1.5, label="true curve")
        ax.scatter(points[:, 0], points[:, 1], s=10, c="tab:blue", label="data", zorder=2)
        ax.plot(decoded[:, 0], decoded[:, 1], c=_COLORS.get(variant, "tab:red"), lw=2.5, label="learned")
        score = ", ".join(f"{_SHORT_NAMES[k]} {v:.3f}" for k, v in metrics[variant].items())
        ax.set_title(f"{variant}: {score}", fontsize=9)
        ax.set_aspect("equal", adjustable="datalim")
    figure.axes[0].legend(loc="upper left", fontsize=7)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def strip_figure(data_strip: np.ndarray, strips: Dict[str, np.ndarray], metrics: Dict[str, dict], title: str):
    """Rows: the data (in true order), then each variant's images decoded along its latent axis."""
    require_matplotlib("keras_nrae.paper.experiments.strip_figure")
    from matplotlib.figure import Figure

    rows = {"data (true order)": data_strip, **strips}
    width = data_strip.shape[1] / data_strip.shape[0]
    figure = Figure(figsize=(0.6 * width + 1, 0.75 * len(rows) + 0.5), dpi=100)
    for i, (name, strip) in enumerate(rows.items()):
        ax = figure.add_subplot(len(rows), 1, i + 1)
        ax.imshow(strip, cmap="gray", vmin=0.0, vmax=1.0)
        ax.set_xticks([])
        ax.set_yticks([])
        label = name
        if name in metrics:
            label += f"\nρ = {metrics[name]['latent_order_correlation']:.3f}"
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    figure.suptitle(title, fontsize=10)
    return figure


def image_strip(images: np.ndarray, t: np.ndarray, steps: int = 16) -> np.ndarray:
    """`steps` of images (N, H, W[, C]) evenly spaced in true order, side by side, in [0, 1]."""
    picks = np.argsort(t)[np.linspace(0, len(t) - 1, steps).round().astype(int)]
    chosen = images[picks]
    if chosen.ndim == 4 and chosen.shape[-1] == 1:
        chosen = chosen[..., 0]
    return np.clip(np.concatenate(list(chosen), axis=1), 0.0, 1.0)


def write_results(out_dir: str, metrics: dict, figures: Dict[str, object]) -> None:
    """out_dir/metrics.json and out_dir/<name>.png for each matplotlib figure."""
    os.makedirs(out_dir, exist_ok=True)
    with atomic_open(os.path.join(out_dir, "metrics.json")) as f:
        json.dump(metrics, f, indent=2)
    for name, figure in figures.items():
        with atomic_open(os.path.join(out_dir, f"{name}.png"), "wb") as f:
            f.write(png_bytes(figure))


def format_metrics(metrics: Dict[str, dict]) -> str:
    """One line per variant: `name  metric=value ...`."""
    return "\n".join(
        f"{variant:7s} " + "  ".join(f"{k}={v:.4f}" for k, v in values.items())
        for variant, values in metrics.items()
    )


# -- the toy experiments, end to end ------------------------------------------------

# 3000 full-batch steps per model, 4 of each point's 10 nearest neighbours per
# step. noisy_sine seeds 0-4: NRAE-Q ends closer to the true curve than AE
# every time, NRAE-L 4 times out of 5 (k = 5 with 2 neighbours: 2 of the first 3).
DENOISING = TrainSettings(epochs=3000, learning_rate=1e-3, k=10, neighbors_per_point=4)
# The official code's spiral setting: the centre plus 1 of its 2 nearest neighbours.
CONNECTIVITY = TrainSettings(
    epochs=3000, learning_rate=1e-3, k=2, include_center=True, replace=False, lam=2.0
)


def denoising(
    out_dir: Optional[str] = None, epochs: Optional[int] = None, seed: int = 0, verbose: int = 0,
    settings: TrainSettings = DENOISING,
) -> Dict[str, dict]:
    """The de-noising experiment: AE, NRAE-L, NRAE-Q on `toy.noisy_sine()` (50 points, noise 0.3).

    Writes denoising.png and metrics.json into out_dir (if given); returns
    {variant: {"distance_to_true_curve": mean distance from the decoded curve to y = sin x}}.
    """
    settings = settings if epochs is None else dataclasses.replace(settings, epochs=epochs)
    points, curve = toy.noisy_sine(seed=seed)
    metrics, curves = curve_experiment(points, curve, settings, seed=seed, verbose=verbose)
    if out_dir is not None:
        title = "De-noising: noisy sine curve (50 points, noise 0.3)"
        write_results(out_dir, metrics, {"denoising": curve_figure(points, curve, curves, metrics, title)})
    return metrics


def connectivity(
    out_dir: Optional[str] = None, epochs: Optional[int] = None, seed: int = 0, verbose: int = 0,
    settings: TrainSettings = CONNECTIVITY,
) -> Dict[str, dict]:
    """The connectivity experiment: AE, NRAE-L, NRAE-Q on `toy.sparse_spiral()` (30 points).

    Writes connectivity.png and metrics.json into out_dir (if given); returns
    {variant: {"distance_to_true_curve", "latent_order_correlation"}}.
    """
    settings = settings if epochs is None else dataclasses.replace(settings, epochs=epochs)
    points, t, curve = toy.sparse_spiral(seed=seed)
    metrics, curves = curve_experiment(points, curve, settings, t=t, seed=seed, verbose=verbose)
    if out_dir is not None:
        title = "Connectivity: sparse spiral (30 points)"
        write_results(out_dir, metrics, {"connectivity": curve_figure(points, curve, curves, metrics, title)})
    return metrics


# -- the MNIST sequence experiments ----------------------------------------------------

DIGIT_SEQUENCES = {"rotated": toy.rotated_digit, "shifted": toy.shifted_digit}
DIGIT_SETTINGS = {
    "rotated": TrainSettings(output_activation="sigmoid", epochs=300, k=10),
    "shifted": TrainSettings(output_activation="sigmoid", epochs=300, k=10),
}
DIGIT_INDEX = 7  # MNIST training image #7, a 3 (the paper's digit)


def digit_experiment(
    transform: str,
    out_dir: Optional[str] = None,
    epochs: Optional[int] = None,
    index: int = DIGIT_INDEX,
    seed: int = 0,
    verbose: int = 0,
    data_dir: Optional[str] = None,
    settings: Optional[TrainSettings] = None,
) -> Dict[str, dict]:
    """One MNIST training image, rotated 100× over 180° or shifted 100× over ±10 px
    (`toy.rotated_digit` / `toy.shifted_digit`); AE, NRAE-L, NRAE-Q with a 1-D latent.

    Writes <transform>_mnist.png (images decoded along each latent axis) and
    metrics.json into out_dir (if given); returns {variant: {"latent_order_correlation"}}.
    """
    if transform not in DIGIT_SEQUENCES:
        raise ValueError(f"transform must be one of {sorted(DIGIT_SEQUENCES)}, got {transform!r}.")
    train_images = load_images("mnist", "train", data_dir)
    if not 0 <= index < len(train_images):
        raise ValueError(f"index must be in [0, {len(train_images)}), got {index}.")
    images, t = DIGIT_SEQUENCES[transform](train_images[index])
    settings = settings or DIGIT_SETTINGS[transform]
    if epochs is not None:
        settings = dataclasses.replace(settings, epochs=epochs)
    metrics, strips = sequence_experiment(images, t, settings, seed=seed, verbose=verbose)
    if out_dir is not None:
        title = f"{transform.capitalize()} MNIST digit: images decoded along the 1-D latent axis"
        figure = strip_figure(image_strip(images, t), strips, metrics, title)
        write_results(out_dir, metrics, {f"{transform}_mnist": figure})
    return metrics


# -- the example scripts ----------------------------------------------------------------

_TOY_EXAMPLES = {"denoising": (denoising, DENOISING), "connectivity": (connectivity, CONNECTIVITY)}
_DIGIT_EXAMPLES = {"rotated_mnist": "rotated", "shifted_mnist": "shifted"}


def example_main(name: str, doc: str, argv: Optional[Sequence[str]] = None) -> Dict[str, dict]:
    """`main(argv)` of examples/<name>.py: parse the options, run the experiment,
    print and return its metrics. `name` is "denoising", "connectivity",
    "rotated_mnist" or "shifted_mnist"; `doc` is the script's --help text."""
    if name not in {**_TOY_EXAMPLES, **_DIGIT_EXAMPLES}:
        raise ValueError(f"Unknown example {name!r}.")
    transform = _DIGIT_EXAMPLES.get(name)
    defaults = DIGIT_SETTINGS[transform] if transform else _TOY_EXAMPLES[name][1]
    epochs = defaults.epochs
    out = f"results/{name}"
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=out, help=f"folder for {name}.png and metrics.json (default {out})")
    parser.add_argument("--epochs", type=int, help=f"passes over the data (default {epochs})")
    parser.add_argument("--seed", type=int, default=0, help="seeds the data, the weights and the neighbour draws (default 0)")
    parser.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2], help="Keras progress bars: 0 none, 1 bars, 2 one line per epoch")
    parser.add_argument("--smoke", action="store_true", help="2 epochs, only to check that everything runs")
    parser.add_argument(
        "--set", nargs="+", default=[], metavar="NAME=VALUE",
        help=f"change training settings, e.g. --set k=30 learning_rate=1e-4 output_activation=none (defaults: {defaults})",
    )
    if transform:
        parser.add_argument("--index", type=int, default=DIGIT_INDEX, help=f"which MNIST training image to transform (default {DIGIT_INDEX}, a 3)")
        parser.add_argument("--data-dir", help="folder with MNIST IDX files, or an .npz (default: see keras_nrae.datasets)")
    args = parser.parse_args(argv)
    epochs = 2 if args.smoke else args.epochs
    try:
        settings = override_settings(defaults, args.set)
    except ValueError as e:
        parser.error(str(e))
    if transform:
        metrics = digit_experiment(
            transform, args.out, epochs, args.index, args.seed, args.verbose, args.data_dir, settings
        )
    else:
        metrics = _TOY_EXAMPLES[name][0](args.out, epochs, args.seed, args.verbose, settings)
    print(format_metrics(metrics))
    return metrics
