"""Deprecated alias of `keras_nrae.pipeline`, kept for one release.

The tf.data pipeline (`neighborhood_dataset`) moved to `keras_nrae.pipeline`,
a name that is not confused with `keras_nrae.datasets` (image datasets) or
`keras_nrae.arrays`. Importing this module warns; it re-exports the same names.
"""

import warnings

from keras_nrae.pipeline import __all__, neighborhood_dataset  # noqa: F401

warnings.warn(
    "keras_nrae.data is deprecated and will be removed in the next release; "
    "import neighborhood_dataset from keras_nrae.pipeline (or keras_nrae) instead.",
    DeprecationWarning,
    stacklevel=2,
)
