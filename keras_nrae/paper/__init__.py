"""Deprecated: the paper's code moved out of the package, kept here for one release.

The Table 1 harness is `paper.table1` in the source repository
(`python -m paper.table1 ...` from a checkout); the pieces users need moved
into the library: `keras_nrae.divergence` (DivergenceMonitor,
failure_reason, mean_image_mse), `keras_nrae.toy` (the toy data),
`keras_nrae.recipe` (training) and `keras_nrae.tuning` (choosing settings on
validation). Importing this package warns; nothing in `keras_nrae` imports it.
"""

import warnings

__all__ = ["experiments", "image_benchmark"]

warnings.warn(
    "keras_nrae.paper is deprecated and will be removed in the next release: the paper's code moved to "
    "paper/ in the source repository (python -m paper.table1 ...), and its user-facing pieces into the "
    "library (keras_nrae.divergence, keras_nrae.toy, keras_nrae.recipe, keras_nrae.tuning).",
    DeprecationWarning,
    stacklevel=2,
)
