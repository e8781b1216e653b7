"""
Title: A rotated MNIST digit on a 1-D latent axis
Author: keras-nrae contributors
Date created: 2026/12/06
Last modified: 2026/12/06
Description: One digit rotated 100 times is a 1-D manifold; does each autoencoder's latent axis keep the rotation's order?
Accelerator: None
"""

"""
## Introduction

Rotate one image through 180° in 100 steps and the 100 images lie on a curve
in pixel space (784-D), parameterised by the angle. An autoencoder with a 1-D
latent space has to lay that curve out on its latent axis. A plain
autoencoder (AE) only has to reconstruct each image: it may fold the curve,
giving far-apart angles nearby codes, and its decoder then jumps between
poses along the latent axis. NRAE also asks the decoder's local Taylor
expansion at each image's code to reconstruct the image's nearest
neighbours, the slightly more and slightly less rotated ones, which favours
an axis that visits the angles in order.

The digit is MNIST training image #7, a 3, scaled by 0.5 as in the official
code (so every rotation stays inside the frame).

    python examples/rotated_mnist.py --out results/rotated_mnist

It reads MNIST with `keras_nrae.datasets.load_images` (tfds data, or IDX files
in $KERAS_NRAE_DATA, e.g. ../shared/data) and writes rotated_mnist.png and
metrics.json into --out. examples/shifted_mnist.py is the same experiment on
a horizontal shift.
"""

"""
## Setup
"""

import argparse
import dataclasses
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_nrae.callbacks import image_strip  # noqa: E402
from keras_nrae.demo import (  # noqa: E402
    DENOISING,
    example_options,
    example_recipe,
    format_metrics,
    mnist_digit_sequence,
    sequence_experiment,
    strip_figure,
    write_results,
)

"""
## The data

`keras_nrae.demo.mnist_digit_sequence("rotated", index)` loads MNIST training
image #index and returns `keras_nrae.toy.rotated_digit` of it: the images
(100, 28, 28, 1) in [0, 1] and their angles (100,) in degrees, 0° to 178.2°.
The angles are the ground truth of the order; the models never see them.
"""

TITLE = "Rotated MNIST digit: images decoded along the 1-D latent axis"

"""
## The recipe

The de-noising demo's network (`keras_nrae.demo.DENOISING`: 1-D latent, MLP
512×3 ELU, Adam 1e-3, batches of 50), with a sigmoid output for pixels in
[0, 1], 300 passes over the 100 images and, for NRAE, one of each image's 10
nearest neighbours per slot.
"""

DIGITS = dataclasses.replace(DENOISING, output_activation="sigmoid", epochs=300, neighbors_per_point=2)

"""
## Training, measuring, drawing

`keras_nrae.demo.sequence_experiment` trains AE, NRAE-L and NRAE-Q with
`keras_nrae.recipe.train` and measures `latent_order_correlation`, |Spearman
ρ| between the codes and the angles (1.0 = the latent axis visits the
rotations in order). It also decodes 16 images along each latent axis, from
the code of the upright digit to that of the most rotated one
(`keras_nrae.callbacks.latent_walk`), as one strip (`image_strip`): the
figure shows them under 16 of the data in true order.
"""


def main(argv=None) -> dict:
    """Parses the options, trains the three models, writes rotated_mnist.png and metrics.json,
    returns {model: {"latent_order_correlation"}}."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    args = example_options(parser, "rotated_mnist", DIGITS, mnist_digit=True).parse_args(argv)
    images, angles = mnist_digit_sequence("rotated", args.index, args.data_dir)
    recipe = example_recipe(parser, args, DIGITS)
    metrics, strips = sequence_experiment(images, angles, recipe, seed=args.seed, verbose=args.verbose)
    data = image_strip(images, angles, steps=16)
    write_results(args.out, metrics, {"rotated_mnist": strip_figure(data, strips, metrics, TITLE)})
    print(format_metrics(metrics))
    return metrics


"""
## What to expect

With these settings and seed 0 (the README's run): ρ of AE 0.560, NRAE-L
0.387, NRAE-Q 1.000: NRAE-Q's latent axis visits the rotations in order, the
AE's folds the sequence (its strip jumps between poses) and NRAE-L collapses
towards the mean image. The AE's
failure depends on the schedule: with the official code's
(`--set learning_rate=1e-4 k=30 epochs=2001 output_activation=none lam=0.01`)
the AE orders the digit too (AE 1.000, NRAE-L 0.943, NRAE-Q 0.995).
"""

if __name__ == "__main__":
    main()
