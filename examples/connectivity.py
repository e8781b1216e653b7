"""Connectivity (the paper's sparse-data experiment): AE vs NRAE on 30 points of a spiral.

With so few points, a plain AE's 1-D latent space can join points that are
close in the plane but far apart along the spiral, so its codes no longer
follow the curve. NRAE reconstructs each point's graph neighbours from its
local Taylor expansion, which ties consecutive points together. Metrics:
latent-order correlation |Spearman ρ| between the codes and the position
along the spiral (1.0 = right connectivity), and the mean distance from the
decoded curve to the true spiral.

    python examples/connectivity.py --out results/connectivity

Writes connectivity.png and metrics.json into --out.
"""

import sys

from keras_nrae.paper.experiments import example_main


def main(argv=None) -> dict:
    return example_main("connectivity", __doc__, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
