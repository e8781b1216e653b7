"""Taylor terms of any map f by forward-mode autodiff of f as a black box.

`directional_terms` runs f under a `tf.autodiff.ForwardAccumulator` (nested
for order 2) for one tangent per primal row. The M tangents per row are
taken in one of two ways:

- `vectorized_terms`: the accumulator inside `tf.vectorized_map` over the M
  axis. pfor sees that every primal activation is loop-invariant, so the
  primal is computed once per row and only the tangent streams are batched
  over B·M.
- `repeated_terms`: the straightforward port of the official code, which
  repeats p M times and pays M primal passes; it works where pfor cannot
  convert some op of f.

Both are exact for maps that treat examples independently and
deterministically. With `training=True` a model holding layers that do not
(BatchNormalization in training, Dropout, noise) is refused
(`check_per_example`): in a black box their masks, noise and batch statistics
would differ between the value and the tangents or mix examples. Both end
with one plain call f(p), so the `add_loss` terms f leaves behind (activity
regularizers) are those of the real primal pass, never of tangent streams.
"""

from typing import Callable, Optional

import keras
import tensorflow as tf

from keras_nrae import _keras_compat as compat
from keras_nrae.taylor.layerwise import CHAIN_REQUIREMENT, DROPOUTS
from keras_nrae.taylor.streams import TaylorTerms, rows, slots

__all__ = ["bind_training", "check_per_example", "repeated_terms", "vectorized_terms"]

# Layers whose training-mode call is random or mixes the examples of a batch.
_NOT_PER_EXAMPLE_IN_TRAINING = DROPOUTS + (
    keras.layers.GaussianNoise, keras.layers.AlphaDropout, keras.layers.BatchNormalization
)


def bind_training(fn: Callable, training: Optional[bool]) -> Callable[[tf.Tensor], tf.Tensor]:
    """fn as a function of one tensor: a Keras layer or model is called with `training`."""
    if isinstance(fn, keras.layers.Layer):
        return lambda x: fn(x, training=training)
    return fn


def check_per_example(layer: keras.layers.Layer, training: Optional[bool]) -> None:
    """Raise ValueError when `layer` holds a layer whose training-mode call is random
    or mixes examples, and `training` is set: forward-mode autodiff of the whole
    model cannot expand it one example at a time (module doc)."""
    if not training:
        return
    for inner in compat.all_layers(layer):
        if not isinstance(inner, _NOT_PER_EXAMPLE_IN_TRAINING):
            continue
        if isinstance(inner, keras.layers.BatchNormalization) and not inner.trainable:
            continue  # a frozen BatchNormalization runs in inference mode
        raise ValueError(
            f"Cannot take per-example Taylor terms of {layer.name!r} in training mode: it "
            f"holds {type(inner).__name__} layer {inner.name!r}, which draws noise or uses "
            f"batch statistics, and is not {CHAIN_REQUIREMENT}. Make it such a chain, drop or "
            f"freeze that layer (a BatchNormalization with trainable=False uses its moving "
            f"statistics), or use LayerNormalization."
        )


def directional_terms(fn: Callable, primal: tf.Tensor, tangent: tf.Tensor, order: int) -> TaylorTerms:
    """(f(p), J t, tᵀ H t or None) for one tangent t per row, shaped like p (B, *in)."""
    if order == 1:
        with tf.autodiff.ForwardAccumulator(primal, tangent) as acc:
            value = fn(primal)
        return value, acc.jvp(value), None
    with tf.autodiff.ForwardAccumulator(primal, tangent) as outer:
        with tf.autodiff.ForwardAccumulator(primal, tangent) as inner:
            value = fn(primal)
        first = inner.jvp(value)
    return value, first, outer.jvp(first)


def _swap_leading_axes(t: tf.Tensor) -> tf.Tensor:
    """(B, M, ...) <-> (M, B, ...)."""
    perm = [1, 0] + list(range(2, t.shape.rank))
    return tf.transpose(t, perm)


def vectorized_terms(fn: Callable, primal: tf.Tensor, tangents: tf.Tensor, order: int) -> TaylorTerms:
    """Terms of fn at p (B, *in) for tangents (B, M, *in), vectorised over M with pfor.

    Raises what pfor raises when it cannot convert an op of fn (no while-loop fallback).
    """

    def one_slot(tangent):
        _, first, second = directional_terms(fn, primal, tangent, order)
        return first if second is None else (first, second)

    out = tf.vectorized_map(
        one_slot, _swap_leading_axes(tangents), fallback_to_while_loop=False
    )
    if order == 1:
        return fn(primal), _swap_leading_axes(out), None
    first, second = (_swap_leading_axes(t) for t in out)
    return fn(primal), first, second


def repeated_terms(fn: Callable, primal: tf.Tensor, tangents: tf.Tensor, order: int) -> TaylorTerms:
    """Terms of fn at p (B, *in) for tangents (B, M, *in), p repeated M times (B·M rows)."""
    if order == 2 and not tf.inside_function():
        # Nested accumulators under an eager GradientTape lose gradients
        # ("returned too few gradients"); a graph keeps them.
        return tf.function(repeated_terms)(fn, primal, tangents, order)
    count = tangents.shape[1]
    _, first, second = directional_terms(fn, tf.repeat(primal, count, axis=0), rows(tangents), order)
    return fn(primal), slots(first, count), None if second is None else slots(second, count)
