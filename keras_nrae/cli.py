"""The `keras-nrae` command: demo, train, benchmark.

    keras-nrae demo                      # AE vs NRAE-L vs NRAE-Q on a noisy sine curve
    keras-nrae train --dataset mnist --model nrae-q --out runs/mnist

`keras-nrae <command> --help` lists each command's options. `demo` is
`keras_nrae.demo.denoising`; `train` builds a `keras_nrae.recipe.Recipe` from
its options and trains through `keras_nrae.recipe.train`. The paper's Table 1
harness is no longer part of the package: `keras-nrae benchmark` only says
that it moved to `python -m paper.table1` (in a source checkout).
"""

import argparse
import dataclasses
import json
import os
import shlex
import sys
from typing import Optional, Sequence

from keras_nrae._version import __version__

__all__ = ["main"]

_DATA_ERRORS = (FileNotFoundError, ValueError, OSError)
_MODELS = {"ae": "AE", "nrae-l": "NRAE-L", "nrae-q": "NRAE-Q"}


def _demo(args: argparse.Namespace) -> int:
    from keras_nrae import demo

    metrics = demo.denoising(args.out, args.epochs, args.seed, args.verbose)
    print("\nMean distance from each decoded curve to the true sine curve (lower is better):")
    print(demo.format_metrics(metrics))
    distance = {name: m["distance_to_true_curve"] for name, m in metrics.items()}
    verdict = all(distance[name] < distance["AE"] for name in ("NRAE-L", "NRAE-Q"))
    print(f"NRAE-L and NRAE-Q below AE: {'yes' if verdict else 'no'}")
    print(f"Wrote {os.path.join(args.out, 'denoising.png')} and metrics.json")
    return 0


class DataError(Exception):
    """The dataset is unknown or its files cannot be read."""


def _load(dataset: str, split: str):
    from keras_nrae.datasets import load_images

    try:
        return load_images(dataset, split)
    except _DATA_ERRORS as error:
        raise DataError(f"cannot load {split} images of {dataset!r}: {error}") from error


def _recipe(args: argparse.Namespace):
    """The `keras_nrae.recipe.Recipe` of `keras-nrae train`'s options: an MLP with a sigmoid output,
    the centre and 1 of its k neighbours per slot pair, and one Keras epoch per pass, of
    N // batch_size steps over a seeded, repeated stream (`progress_epochs=epochs`), as
    this command has always trained."""
    from keras_nrae.recipe import Recipe

    return Recipe(
        model=_MODELS[args.model],
        latent_dim=args.latent_dim,
        hidden=tuple(args.hidden),
        output_activation="sigmoid",
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        progress_epochs=args.epochs,
        k=args.k,
        lam=args.lam,
        neighbors_per_point=2,
        include_center=True,
        replace=False,
    )


def _train(args: argparse.Namespace) -> int:
    from keras_nrae._files import atomic_open, atomic_path
    from keras_nrae.export import export_saved_model
    from keras_nrae.metrics import reconstruction_mse
    from keras_nrae.recipe import train

    x_train = _load(args.dataset, "train")[: args.limit]
    x_test = _load(args.dataset, "test")
    recipe = _recipe(args)
    if args.verbose:
        print(f"Training {recipe.model} ({recipe.epochs} passes over {len(x_train)} images):")
    model = train(x_train, recipe, args.seed, verbose=args.verbose).model
    test_mse = reconstruction_mse(model, x_test)
    os.makedirs(args.out, exist_ok=True)
    with atomic_path(os.path.join(args.out, "model.keras")) as temporary:
        model.save(temporary)
    export_saved_model(model, os.path.join(args.out, "saved_model"))
    summary = {
        "dataset": args.dataset,
        "model": recipe.model,
        "train_images": len(x_train),
        "test_reconstruction_mse": test_mse,
        "settings": dataclasses.asdict(recipe),
    }
    with atomic_open(os.path.join(args.out, "train.json")) as f:
        json.dump(summary, f, indent=2)
    print(f"{recipe.model} on {args.dataset}: per-pixel test MSE {test_mse:.5f}")
    print(f"Wrote {args.out}/model.keras, {args.out}/saved_model/ and {args.out}/train.json")
    return 0


_BENCHMARK_MOVED = (
    "the paper's Table 1 harness moved out of the keras-nrae package into the repository's "
    "paper/ folder, and this command no longer runs it. From the root of a source checkout "
    "of keras-nrae, run:\n\n    python -m paper.table1 {args}\n"
)


def _benchmark(rest: Sequence[str]) -> int:
    """`keras-nrae benchmark ARGS`: says where the harness moved, runs nothing; exit status 2."""
    args = shlex.join(rest) if rest else "<args>"
    print(f"keras-nrae benchmark: error: {_BENCHMARK_MOVED.format(args=args)}", file=sys.stderr)
    return 2


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keras-nrae",
        description="Neighborhood Reconstructing Autoencoders (Lee, Kwon & Park, NeurIPS 2021) for Keras.",
    )
    parser.add_argument(
        "--verbose", action="store_true", dest="tensorflow_log",
        help="keep TensorFlow's start-up log (CUDA, oneDNN notices), which is off unless "
        "TF_CPP_MIN_LOG_LEVEL is set; each command's own --verbose sets its progress bars",
    )
    parser.add_argument("--version", action="version", version=f"keras-nrae {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="AE vs NRAE-L vs NRAE-Q on a noisy sine curve (a few minutes on 2 CPU cores)",
        description="Trains a plain AE, NRAE-L and NRAE-Q (1-D latent, MLP 512x3 ELU) on 50 "
        "points of y = sin x with noise 0.3, prints each model's mean distance from its "
        "decoded curve to the true curve and writes a PNG of the three learned curves.",
    )
    demo.add_argument("--out", default="nrae_demo", help="folder for denoising.png and metrics.json (default nrae_demo)")
    demo.add_argument("--epochs", type=_positive_int, help="passes over the 50 points (default: the tuned setting)")
    demo.add_argument("--seed", type=int, default=0, help="seeds the data, the weights and the neighbour draws (default 0)")
    demo.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2], help="Keras progress bars: 0 none, 1 bars, 2 one line per epoch")

    train = commands.add_parser(
        "train",
        help="train one model on an image dataset and export it",
        description="Trains AE, NRAE-L or NRAE-Q (MLP, sigmoid output) on a dataset's training "
        "split, reports the per-pixel test MSE and writes model.keras, a SavedModel "
        "(saved_model/, with encode/decode/reconstruct signatures) and train.json.",
    )
    train.add_argument("--dataset", required=True, help="a keras_nrae.datasets.load_images name (mnist, fashion_mnist, ...) or an .npz path with uint8 x_train/x_test")
    train.add_argument("--model", required=True, choices=sorted(_MODELS), help="ae, nrae-l (first order) or nrae-q (second order)")
    train.add_argument("--out", required=True, help="output folder")
    train.add_argument("--epochs", type=_positive_int, default=20, help="passes over the training images (default 20)")
    train.add_argument("--batch-size", type=_positive_int, default=100, help="default 100")
    train.add_argument("--latent-dim", type=_positive_int, default=10, help="default 10")
    train.add_argument("--hidden", type=_positive_int, nargs="+", default=[256, 256], help="hidden layer widths of encoder and decoder (default 256 256)")
    train.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    train.add_argument("--k", type=_positive_int, default=10, help="neighbours per point in the k-NN graph (default 10)")
    train.add_argument("--lam", type=float, default=1.0, help="Binary kernel weight of the neighbours; the centre weighs 1 (default 1.0)")
    train.add_argument("--limit", type=_positive_int, help="use only the first LIMIT training images")
    train.add_argument("--seed", type=int, default=0, help="default 0")
    train.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2], help="Keras progress bars: 0 none, 1 bars, 2 one line per epoch")

    commands.add_parser(
        "benchmark",
        add_help=False,
        help="moved: the paper's Table 1 is `python -m paper.table1` in a source checkout",
        description="The paper's Table 1 harness moved out of the package: python -m paper.table1 <args>.",
    )
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of `keras-nrae`; returns the exit status."""
    parser = build_parser()
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if rest and args.command != "benchmark":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        if args.command == "demo":
            return _demo(args)
        if args.command == "train":
            return _train(args)
        return _benchmark(rest)
    except DataError as error:
        print(f"keras-nrae {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
