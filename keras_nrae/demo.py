"""The de-noising demo: AE vs NRAE-L vs NRAE-Q on a noisy sine curve (`keras-nrae demo`).

    from keras_nrae.demo import denoising, format_metrics
    print(format_metrics(denoising("nrae_demo", epochs=300)))

`denoising` trains a plain autoencoder, NRAE-L and NRAE-Q (`DENOISING`, a
`keras_nrae.recipe.Recipe`: 1-D latent, MLP 512×3 ELU) on 50 noisy points of
y = sin x and measures how close each decoded curve comes to the true one.
Its pieces serve every experiment that compares the three with a 1-D latent
space (examples/connectivity.py, rotated_mnist.py, shifted_mnist.py):

* `curve_experiment` (2-D points with a known true curve) measures
  `distance_to_true_curve`, `metrics.manifold_distance` from the decoded
  latent axis (`decoded_curve`) to the densely sampled true curve, and
  `true_curve_coverage`, the same distance the other way round; with the true
  parameter, `latent_order_correlation` (|Spearman ρ| between codes and
  parameter: 1.0 = the learned 1-D manifold has the right connectivity);
* `sequence_experiment` (images along one parameter, e.g. a rotated digit:
  `mnist_digit_sequence`) measures `latent_order_correlation` and decodes
  images along each latent axis (`keras_nrae.callbacks.latent_walk`);
* `curve_figure` / `strip_figure` draw them, `write_results` writes
  metrics.json and the PNGs, `format_metrics` prints one line a model, and
  `example_options` / `example_recipe` are the examples' common command-line
  options (--out --epochs --seed --verbose --smoke --set NAME=VALUE).

Every model trains through `keras_nrae.recipe.train`. Figures need matplotlib
(`pip install keras-nrae[examples]`).
"""

import argparse
import dataclasses
import json
import os
from typing import Dict, Iterator, Optional, Sequence, Tuple

import numpy as np

from keras_nrae import toy
from keras_nrae._files import atomic_open
from keras_nrae._plotting import png_bytes, require_matplotlib
from keras_nrae.callbacks import image_strip, latent_walk
from keras_nrae.datasets import load_images
from keras_nrae.metrics import latent_order_correlation, manifold_distance
from keras_nrae.model import Autoencoder
from keras_nrae.recipe import Recipe, train

__all__ = [
    "DENOISING",
    "DIGIT_INDEX",
    "DIGIT_SEQUENCES",
    "VARIANTS",
    "curve_experiment",
    "curve_figure",
    "decoded_curve",
    "denoising",
    "example_options",
    "example_recipe",
    "format_metrics",
    "mnist_digit_sequence",
    "sequence_experiment",
    "strip_figure",
    "write_results",
]

VARIANTS = ("AE", "NRAE-L", "NRAE-Q")
_COLORS = {"AE": "tab:red", "NRAE-L": "tab:green", "NRAE-Q": "tab:purple"}
_SHORT_NAMES = {
    "distance_to_true_curve": "distance",
    "true_curve_coverage": "coverage",
    "latent_order_correlation": "ρ",
}

# 3000 full-batch steps per model, 4 of each point's 10 nearest neighbours per
# step. noisy_sine seeds 0-4: NRAE-Q ends closer to the true curve than AE
# every time, NRAE-L 4 times out of 5 (k = 5 with 2 neighbours: 2 of the first 3).
# `model` is replaced by each of VARIANTS in turn.
DENOISING = Recipe(
    latent_dim=1,
    hidden=(512, 512, 512),
    activation="elu",
    output_activation=None,
    epochs=3000,
    batch_size=50,
    learning_rate=1e-3,
    progress_epochs=10,
    k=10,
    lam=1.0,
    neighbors_per_point=4,
    include_center=False,
    replace=True,
)


def _trained(
    x: np.ndarray, recipe: Recipe, variants: Sequence[str], seed: int, verbose: int
) -> Iterator[Tuple[str, Autoencoder]]:
    """(variant, its model trained on x with `recipe`, model replaced) for each variant, in turn."""
    for variant in variants:
        if verbose:
            print(f"Training {variant} ({recipe.epochs} passes over {len(x)} points):")
        yield variant, train(x, dataclasses.replace(recipe, model=variant), seed, verbose=verbose).model


def decoded_curve(model: Autoencoder, x: np.ndarray, resolution: int = 2000) -> np.ndarray:
    """f(z) (resolution, *shape) on a uniform grid spanning the 1-D codes g(x) of x (N, *shape)."""
    z = np.asarray(model.encode(x))
    if z.shape[1] != 1:
        raise ValueError(f"decoded_curve needs a 1-D latent space; the codes are {z.shape}.")
    grid = np.linspace(z.min(), z.max(), resolution, dtype=z.dtype)[:, None]
    return np.asarray(model.decode(grid))


def curve_experiment(
    points: np.ndarray,
    curve: np.ndarray,
    recipe: Recipe,
    t: Optional[np.ndarray] = None,
    variants: Sequence[str] = VARIANTS,
    seed: int = 0,
    verbose: int = 0,
) -> Tuple[Dict[str, dict], Dict[str, np.ndarray]]:
    """Train each variant on points (N, 2) with `recipe` (a 1-D latent space) and measure it.

    Args:
      points: the training data (N, 2).
      curve: the true curve, densely sampled (R', 2).
      recipe: how each model is trained; its `model` is replaced by each variant.
      t: optional true parameter (N,) of the points along the curve.

    Returns:
      (metrics {variant: {"distance_to_true_curve", "true_curve_coverage"
        (the mean distance the other way, from the true curve to the decoded
        one: low only if the decoded curve spans the whole true curve),
        ["latent_order_correlation" when t is given]}},
        decoded curves {variant: (R, 2)}).
    """
    metrics, curves = {}, {}
    for variant, model in _trained(points, recipe, variants, seed, verbose):
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
    recipe: Recipe,
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
    for variant, model in _trained(images, recipe, variants, seed, verbose):
        metrics[variant] = {"latent_order_correlation": latent_order_correlation(model.encode(images), t)}
        strips[variant] = image_strip(np.asarray(model.decode(latent_walk(model, start, end, steps))))
    return metrics, strips


# -- the MNIST digit sequences ---------------------------------------------------------

DIGIT_SEQUENCES = {"rotated": toy.rotated_digit, "shifted": toy.shifted_digit}
DIGIT_INDEX = 7  # MNIST training image #7, a 3 (the paper's digit)


def mnist_digit_sequence(
    transform: str, index: int = DIGIT_INDEX, data_dir: Optional[str] = None
) -> Tuple[np.ndarray, np.ndarray]:
    """MNIST training image #index, rotated 100× over 180° or shifted 100× over ±10 px.

    Args:
      transform: "rotated" (`toy.rotated_digit`) or "shifted" (`toy.shifted_digit`).
      index: which training image.
      data_dir: where MNIST is (see `keras_nrae.datasets.load_images`).

    Returns:
      (images (100, 28, 28, 1) float32 in [0, 1], t (100,): angles in degrees or shifts in pixels).
    """
    if transform not in DIGIT_SEQUENCES:
        raise ValueError(f"transform must be one of {sorted(DIGIT_SEQUENCES)}, got {transform!r}.")
    train_images = load_images("mnist", "train", data_dir)
    if not 0 <= index < len(train_images):
        raise ValueError(f"index must be in [0, {len(train_images)}), got {index}.")
    return DIGIT_SEQUENCES[transform](train_images[index])


# -- figures and files -------------------------------------------------------------


def curve_figure(
    points: np.ndarray, curve: np.ndarray, curves: Dict[str, np.ndarray], metrics: Dict[str, dict], title: str
):
    """A matplotlib Figure, one panel per variant: the data points (N, 2), the true curve (R', 2,
    dashed) and the decoded curve (R, 2), titled with its metrics."""
    require_matplotlib("keras_nrae.demo.curve_figure")
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
    """A matplotlib Figure; rows: the data strip (H, n·W) (in true order, `image_strip(images, t, n)`),
    then each variant's images decoded along its latent axis, labelled with its ρ."""
    require_matplotlib("keras_nrae.demo.strip_figure")
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


def write_results(out_dir: str, metrics: dict, figures: Dict[str, object]) -> None:
    """out_dir/metrics.json and out_dir/<name>.png for each matplotlib figure {name: Figure}."""
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


# -- the demo, end to end ------------------------------------------------------------


def denoising(
    out_dir: Optional[str] = None,
    epochs: Optional[int] = None,
    seed: int = 0,
    verbose: int = 0,
    recipe: Recipe = DENOISING,
) -> Dict[str, dict]:
    """The de-noising experiment: AE, NRAE-L, NRAE-Q on `toy.noisy_sine(seed=seed)` (50 points, noise 0.3).

    Args:
      out_dir: where to write denoising.png and metrics.json (None: nowhere).
      epochs: passes over the 50 points (None: the recipe's, 3000 for `DENOISING`).
      seed: seeds the data, the weights and the neighbour draws.
      verbose: Keras progress bars: 0 none, 1 bars, 2 one line per epoch.
      recipe: how each model is trained (its `model` is replaced by each variant).

    Returns:
      {variant: {"distance_to_true_curve": mean distance from the decoded curve
        to y = sin x, "true_curve_coverage": the same the other way round}}.
    """
    recipe = recipe if epochs is None else dataclasses.replace(recipe, epochs=epochs)
    points, curve = toy.noisy_sine(seed=seed)
    metrics, curves = curve_experiment(points, curve, recipe, seed=seed, verbose=verbose)
    if out_dir is not None:
        title = "De-noising: noisy sine curve (50 points, noise 0.3)"
        write_results(out_dir, metrics, {"denoising": curve_figure(points, curve, curves, metrics, title)})
    return metrics


# -- the examples' command line ----------------------------------------------------------


def example_options(
    parser: argparse.ArgumentParser, name: str, recipe: Recipe, mnist_digit: bool = False
) -> argparse.ArgumentParser:
    """Adds the examples' common options to parser and returns it: --out (default results/<name>),
    --epochs, --seed, --verbose, --smoke (2 passes), --set NAME=VALUE (fields of `recipe`) and,
    with mnist_digit, --index and --data-dir (`mnist_digit_sequence`'s index and data_dir)."""
    out = f"results/{name}"
    parser.add_argument("--out", default=out, help=f"folder for {name}.png and metrics.json (default {out})")
    parser.add_argument("--epochs", type=int, help=f"passes over the data (default {recipe.epochs})")
    parser.add_argument("--seed", type=int, default=0, help="seeds the data, the weights and the neighbour draws (default 0)")
    parser.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2], help="Keras progress bars: 0 none, 1 bars, 2 one line per epoch")
    parser.add_argument("--smoke", action="store_true", help="2 epochs, only to check that everything runs")
    parser.add_argument(
        "--set", nargs="+", default=[], metavar="NAME=VALUE",
        help=f"change Recipe fields, e.g. --set k=30 learning_rate=1e-4 output_activation=none (defaults: {recipe})",
    )
    if mnist_digit:
        parser.add_argument("--index", type=int, default=DIGIT_INDEX, help=f"which MNIST training image to transform (default {DIGIT_INDEX}, a 3)")
        parser.add_argument("--data-dir", help="folder with MNIST IDX files, or an .npz (default: see keras_nrae.datasets)")
    return parser


def example_recipe(parser: argparse.ArgumentParser, args: argparse.Namespace, recipe: Recipe) -> Recipe:
    """recipe with the --set fields, then --epochs (or 2 with --smoke); a bad --set exits through parser.error."""
    try:
        recipe = recipe.replace_from_strings(args.set)
    except ValueError as error:
        parser.error(str(error))
    epochs = 2 if args.smoke else args.epochs
    return recipe if epochs is None else dataclasses.replace(recipe, epochs=epochs)
