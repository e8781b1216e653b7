"""De-noising: AE vs NRAE-L vs NRAE-Q on a noisy sine curve.

50 points on y = sin x with Gaussian noise 0.3, a 1-D latent space and an MLP
512×3 ELU autoencoder. A plain AE bends its curve through the noise; NRAE
reconstructs each point's neighbours from its local Taylor expansion, which
averages the noise out. Metric: mean distance from each decoded curve to the
true sine curve (lower is better).

    python examples/denoising.py --out results/denoising

Writes denoising.png and metrics.json into --out.
"""

import sys

from keras_nrae.paper.experiments import example_main


def main(argv=None) -> dict:
    return example_main("denoising", __doc__, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
