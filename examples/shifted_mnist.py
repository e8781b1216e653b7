"""Shifted MNIST: AE vs NRAE with a 1-D latent space on one MNIST digit shifted horizontally 100 times over ±10 pixels.

The images form a 1-D manifold parameterised by the shift; the digit is
MNIST training image #7 (a 3), scaled by 0.5 as in the official code. The
figure decodes images along each model's latent axis: a plain AE tends to
jump (its codes fold the sequence), NRAE shows a continuous shift. Metric:
latent-order correlation |Spearman ρ| between the codes and the true
shift (1.0 = right connectivity).

    python examples/shifted_mnist.py --out results/shifted_mnist

Reads MNIST with keras_nrae.datasets.load_images (tfds data, or IDX files in
$KERAS_NRAE_DATA, e.g. ../shared/data); writes shifted_mnist.png and metrics.json into --out.
"""

import sys

from keras_nrae.paper.experiments import example_main


def main(argv=None) -> dict:
    return example_main("shifted_mnist", __doc__, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
