"""Deprecated alias of `keras_nrae.toy` (the toy data moved into the library); removed in the next release."""

import warnings

from keras_nrae.toy import (  # noqa: F401
    __all__,
    noisy_sine,
    rotated_digit,
    shifted_digit,
    sine_curve,
    sparse_spiral,
    spiral_curve,
)

warnings.warn(
    "keras_nrae.paper.toy is deprecated and will be removed in the next release: use keras_nrae.toy.",
    DeprecationWarning,
    stacklevel=2,
)
