"""Table 1 of the NRAE paper: per-pixel test MSE of AE, DAE, CAE, VAE, WAE, NRAE-L and NRAE-Q.

    python examples/image_benchmark.py mnist fashion_mnist --seeds 0 1 2
    python examples/image_benchmark.py --help

The protocol and defaults are documented in keras_nrae/image_benchmark.py.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_nrae.paper.image_benchmark import main  # noqa: E402

if __name__ == "__main__":
    main()
