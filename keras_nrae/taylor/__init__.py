"""Decoder Taylor terms.

For a map f: (B, *in) -> (B, *out), a primal p (B, *in) and M tangents per row
t (B, M, *in), `taylor_terms` returns

    value  = f(p)                 (B, *out)
    first  = J_f(p) t             (B, M, *out)
    second = tᵀ H_f(p) t          (B, M, *out)   (order 2 only)

so that f(p + t) ≈ value + first + ½ second, the reconstruction
`taylor_expansion` returns. A Keras layer or model f is called with the given
`training` flag. `taylor_expansion(..., expand_output_activation=False)`
instead splits f = σ ∘ a at its output activation σ and returns
σ(a(p) + J_a t + ½ tᵀ H_a t) (layer-wise only).

`method` picks how the terms are computed, fastest first:

- "layerwise" (`layerwise`): the terms pushed layer by layer through a
  `keras.Sequential` or one-chain Functional model of layers with exact rules;
  the primal is computed once and order 2 costs two tangent streams. Exact
  for Dropout, noise and BatchNormalization in training too.
- "vectorized" (`autodiff`): a ForwardAccumulator inside `tf.vectorized_map`
  over the M tangents; the primal is still computed once per row.
- "repeated" (`autodiff`): the primal repeated M times, one accumulator over
  the B·M rows; works for any f that TensorFlow can differentiate forward.
- "auto" (default): "layerwise" where f is such a chain, else "vectorized",
  falling back to "repeated" when pfor cannot convert some op of f.

The closed-form σ', σ'' the layer-wise rules use live in `activations`.
"""

import warnings
from typing import Callable, Optional, Tuple, Union

import keras
import tensorflow as tf

from keras_nrae._checks import check_order
from keras_nrae.taylor.autodiff import bind_training, check_per_example, repeated_terms, vectorized_terms
from keras_nrae.taylor.layerwise import (
    LAYER_RULES,
    affine,
    layer_chain,
    layerwise_terms,
    output_activation_split,
    require_layer_chain,
)
from keras_nrae.taylor.streams import TaylorTerms

__all__ = [
    "LAYER_RULES",
    "METHODS",
    "TaylorTerms",
    "affine",
    "bind_training",
    "check_per_example",
    "layer_chain",
    "output_activation_split",
    "taylor_expansion",
    "taylor_terms",
]

METHODS = ("auto", "layerwise", "vectorized", "repeated")


def _resolve_method(method: Union[str, bool], vectorize: Optional[bool]) -> str:
    """The method to use, from `method` and the deprecated `vectorize` flag.

    `vectorize=True` is "auto" and `vectorize=False` is "repeated" (a bool in
    `method`'s place is an old positional `vectorize`); either warns with a
    DeprecationWarning. Raises ValueError for an unknown method.
    """
    if isinstance(method, bool):
        method, vectorize = "auto", method
    if vectorize is not None:
        if method != "auto":
            raise ValueError(f"Pass method= only, not both method={method!r} and vectorize={vectorize!r}.")
        warnings.warn(
            f"vectorize= is deprecated and will be removed in the next release; use "
            f"method={'auto' if vectorize else 'repeated'!r} instead.",
            DeprecationWarning,
            stacklevel=3,
        )
        method = "auto" if vectorize else "repeated"
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}; got {method!r}.")
    return method


def _check_arguments(order: int, tangents: tf.Tensor) -> None:
    check_order(order)
    if tangents.shape.rank is None or tangents.shape[1] is None:
        raise ValueError(
            f"tangents must have a static slot axis (B, M, ...), got shape "
            f"{tangents.shape}."
        )


def taylor_terms(
    fn: Callable[[tf.Tensor], tf.Tensor],
    primal: tf.Tensor,
    tangents: tf.Tensor,
    order: int = 1,
    method: str = "auto",
    training: Optional[bool] = None,
    *,
    vectorize: Optional[bool] = None,
) -> TaylorTerms:
    """Value, first and (order 2) second directional derivatives of `fn`.

    Args:
      fn: batched map (B, *in) -> (B, *out): a Keras layer or model (called
        with `training`), or any function of one tensor.
      primal: (B, *in) expansion points.
      tangents: (B, M, *in) directions, M static.
      order: 1 returns (f(p), J t, None); 2 also returns tᵀ H t.
      method: one of `METHODS` (module doc). "layerwise" raises ValueError
        naming the first layer without an exact rule; "vectorized" raises
        what pfor raises instead of falling back.
      training: the `training` flag a Keras `fn` is called with.
      vectorize: deprecated; True is method="auto", False method="repeated".

    Returns:
      (value (B, *out), first (B, M, *out), second (B, M, *out) or None).
    """
    method = _resolve_method(method, vectorize)
    _check_arguments(order, tangents)
    if method == "layerwise":
        chain = require_layer_chain(fn, "method='layerwise'")
    else:
        chain = layer_chain(fn) if method == "auto" else None
    if chain is not None:
        return layerwise_terms(chain, primal, tangents, order, training)
    if isinstance(fn, keras.layers.Layer):
        check_per_example(fn, training)
    fn = bind_training(fn, training)
    if method == "repeated":
        return repeated_terms(fn, primal, tangents, order)
    if method == "vectorized":
        return vectorized_terms(fn, primal, tangents, order)
    try:
        return vectorized_terms(fn, primal, tangents, order)
    except (ValueError, TypeError, NotImplementedError, tf.errors.OpError) as e:
        tf.get_logger().warning(
            "keras_nrae.taylor: vectorized Taylor terms failed (%s: %s); "
            "falling back to repeating the primal per tangent.",
            type(e).__name__,
            str(e)[:200],
        )
    return repeated_terms(fn, primal, tangents, order)


def _expansion(value, first, second, dtype):
    """value + first (+ ½ second), (B, *out) and (B, M, *out) -> (B, M, *out), in dtype."""
    # Sum the Taylor step before broadcasting the value: XLA on TF 2.20 CPU
    # miscompiles value[:, None] + first + 0.5 * second for pfor-made terms.
    step = tf.cast(first, dtype)
    if second is not None:
        step += 0.5 * tf.cast(second, dtype)
    return tf.cast(value, dtype)[:, None] + step


def taylor_expansion(
    fn: Callable[[tf.Tensor], tf.Tensor],
    primal: tf.Tensor,
    tangents: tf.Tensor,
    order: int = 1,
    method: str = "auto",
    training: Optional[bool] = None,
    expand_output_activation: bool = True,
    dtype: Optional[tf.DType] = None,
    *,
    vectorize: Optional[bool] = None,
) -> Tuple[tf.Tensor, tf.Tensor]:
    """(f(p) (B, *out), f̃(p + t) (B, M, *out)): f's order-`order` Taylor reconstruction at p + t.

    With `expand_output_activation` (the paper's NRAE), f̃ = f(p) + J t [+ ½ tᵀ H t].
    Without, f = σ ∘ a is split at its output activation σ
    (`output_activation_split`) and only a is expanded, layer-wise:
    f̃ = σ(a(p) + J_a t [+ ½ tᵀ H_a t]), which stays in σ's range (a sigmoid's
    Taylor series around a logit a converges only within π of a); f(p) and
    f̃(p) are unchanged. That needs method "auto" or "layerwise" (a deprecated
    `vectorize` is ignored there, as it always was). Arguments as for
    `taylor_terms`; `dtype` (default f's output dtype) is the dtype f̃ is
    summed in.
    """
    terms_method = _resolve_method(method, vectorize)
    if expand_output_activation:
        value, first, second = taylor_terms(fn, primal, tangents, order, terms_method, training)
        return value, _expansion(value, first, second, dtype or value.dtype)
    if method in ("vectorized", "repeated"):
        raise ValueError(
            f"expand_output_activation=False expands layer-wise: it needs method 'auto' or "
            f"'layerwise', got {method!r}."
        )
    _check_arguments(order, tangents)
    chain, activation = output_activation_split(fn)
    pre, first, second = layerwise_terms(chain, primal, tangents, order, training)
    return activation(pre), activation(_expansion(pre, first, second, dtype or pre.dtype))
