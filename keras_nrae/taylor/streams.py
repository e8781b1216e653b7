"""The layout every Taylor-term path shares.

Terms are (value (B, *out), first (B, M, *out), second (B, M, *out) or None):
one value per primal row and M tangent streams per row. Maps that act on
examples one at a time see the streams as B·M rows.
"""

from typing import Optional, Tuple

import tensorflow as tf

__all__ = ["TaylorTerms", "rows", "slots"]

TaylorTerms = Tuple[tf.Tensor, tf.Tensor, Optional[tf.Tensor]]


def rows(t: tf.Tensor) -> tf.Tensor:
    """(B, M, ...) -> (B·M, ...)."""
    return tf.reshape(t, tf.concat([[-1], tf.shape(t)[2:]], 0))


def slots(t: tf.Tensor, count: int) -> tf.Tensor:
    """(B·M, ...) -> (B, M, ...), M = count."""
    return tf.reshape(t, tf.concat([[-1, count], tf.shape(t)[1:]], 0))
