"""Validation MSE against training epochs: how long to train in the Table 1 protocol.

Uses only the protocol's validation split (`paper.table1.selection.select_nrae`'s:
10 % of the S training images held out, seed 0), never the test split. Each
model (AE, DAE and NRAE-L / NRAE-Q with the given k and λ) trains once with
seed 0, the protocol's architecture, optimizer and batch size
(`paper.table1.protocol.recipe`, through `keras_nrae.recipe.train`), and is
scored every `--every` epochs. `--set NAME=VALUE ...` changes fields of each
model's `keras_nrae.recipe.Recipe` (`Recipe.replace_from_strings`). Prints one line per model: per-pixel validation MSE
×10⁻³ at epochs every, 2·every, ..., and the epoch of its minimum.

    PYTHONPATH=. python benchmarks/validation_curves.py mnist fashion_mnist --epochs 150 --every 10
    PYTHONPATH=. python benchmarks/validation_curves.py cifar10 --models AE NRAE-L --set latent_dim=64
    PYTHONPATH=. python benchmarks/validation_curves.py mnist --models NRAE-Q --lam 0.1 1 --before-output-activation

`--before-output-activation` also trains each NRAE with
`expand_output_activation=False` (the decoder expanded up to its sigmoid,
σ(a + J_a dz + ½ dzᵀ H_a dz)), marked "σ(a+…)".
"""

import argparse
import dataclasses
import os
import time

if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

from keras_nrae import recipe as recipes
from keras_nrae.graph import NeighborGraph
from keras_nrae.metrics import reconstruction_mse
from paper.table1 import protocol


class ValidationCurve(keras.callbacks.Callback):
    """Per-pixel MSE on x_val after every `every`-th epoch."""

    def __init__(self, x_val: np.ndarray, every: int):
        super().__init__()
        self.x_val, self.every, self.curve = x_val, every, []

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0:
            self.curve.append(reconstruction_mse(self.model, self.x_val))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--lam", nargs="+", type=float, default=[0.1], help="NRAE λ values, one run each")
    parser.add_argument("--before-output-activation", action="store_true",
                        help="also train each NRAE with expand_output_activation=False")
    parser.add_argument("--models", nargs="+", default=["AE", "DAE", "NRAE-L", "NRAE-Q"],
                        choices=protocol.MODEL_NAMES)
    parser.add_argument("--set", nargs="+", default=[], metavar="NAME=VALUE",
                        help="change Recipe fields of every model, e.g. --set architecture=conv latent_dim=64 neighbors_per_point=4")
    args = parser.parse_args()
    config = with_recipe_fields(protocol.BenchmarkConfig(epochs=args.epochs), args.set)
    print(f"Validation MSE x1e-3 at epochs {args.every}, {2 * args.every}, ... {args.epochs}; {config}"
          + (f"; Recipe fields {' '.join(args.set)}" if args.set else ""))
    for dataset in args.datasets:
        x_fit, x_val = protocol.validation_images(dataset, config)
        graph = NeighborGraph.build(x_fit, k=args.k, verbose=0)
        for name, lam, expand_output_activation in runs(args):
            start = time.perf_counter()
            curve = ValidationCurve(x_val, args.every)
            nrae = name in protocol.NRAE_ORDERS
            recipe = protocol.recipe(name, config, x_fit.shape[1:], {"k": args.k, "lam": lam} if nrae else None)
            recipe = dataclasses.replace(recipe.replace_from_strings(args.set),
                                         expand_output_activation=expand_output_activation)
            targets = protocol.grae_targets(x_fit, config) if name == "GRAE" else None
            shared = graph if nrae and recipe.k == args.k else None  # --set k=... builds its own
            recipes.train(x_fit, recipe, 0, graph=shared, targets=targets, callbacks=[curve])
            if nrae:
                name = f"{name} k={args.k} λ={lam:g}" + ("" if expand_output_activation else " σ(a+…)")
            values = " ".join(f"{1e3 * v:.2f}" for v in curve.curve)
            best = args.every * (1 + int(np.argmin(curve.curve))) if curve.curve else None
            print(f"{dataset:<14} {name:<18} {values}  (min at {best}; {time.perf_counter() - start:.0f} s)", flush=True)


def with_recipe_fields(config, pairs):
    """config with the fields it shares with `Recipe` (architecture: arch) set as the NAME=VALUE pairs set them,
    so that what derives from them (GRAE's weight and targets) agrees with each model's recipe."""
    parsed = recipes.Recipe().replace_from_strings(pairs)  # a wrong pair fails here, before any training
    named = {pair.partition("=")[0] for pair in pairs}
    shared = named & {field.name for field in dataclasses.fields(config)}
    return dataclasses.replace(config, **{name: getattr(parsed, name) for name in shared},
                               **({"arch": parsed.architecture} if "architecture" in named else {}))


def runs(args):
    """(model name, λ, expand_output_activation) of every run: baselines once, NRAE per λ (and expansion)."""
    for name in args.models:
        if name not in protocol.NRAE_ORDERS:
            yield name, None, True
            continue
        for lam in args.lam:
            yield name, lam, True
            if args.before_output_activation:
                yield name, lam, False


if __name__ == "__main__":
    main()
