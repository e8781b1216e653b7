"""Decoder Taylor terms with forward-mode autodiff.

For a map f: (B, *in) -> (B, *out), a primal p (B, *in) and M tangents per row
t (B, M, *in), `taylor_terms` returns

    value  = f(p)                 (B, *out)
    first  = J_f(p) t             (B, M, *out)
    second = tᵀ H_f(p) t          (B, M, *out)   (order 2 only)

so that f(p + t) ≈ value + first + ½ second.

Where the saving comes from: the M tangents of one row share the primal p.
Running a `tf.autodiff.ForwardAccumulator` inside `tf.vectorized_map` over the
M axis lets pfor see that every primal activation of f is loop-invariant, so
f(p) is computed once per row and only the tangent streams (J t, and for
order 2 the nested streams) are batched over B·M. The straightforward port of
the official code repeats p M times and pays M primal passes; that is
`vectorize=False`, which is also the automatic fallback when pfor cannot
convert some op of f.
"""

from typing import Callable, Optional, Tuple

import tensorflow as tf

TaylorTerms = Tuple[tf.Tensor, tf.Tensor, Optional[tf.Tensor]]


def _check_order(order: int) -> None:
    if order not in (1, 2):
        raise ValueError(f"order must be 1 (NRAE-L) or 2 (NRAE-Q), got {order!r}.")


def _directional_terms(fn, primal, tangent, order):
    """(f(p), J t, tᵀ H t or None) for one tangent per row, same shape as p."""
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


def _vectorized(fn, primal, tangents, order):
    def one_slot(tangent):
        _, first, second = _directional_terms(fn, primal, tangent, order)
        return first if second is None else (first, second)

    out = tf.vectorized_map(
        one_slot, _swap_leading_axes(tangents), fallback_to_while_loop=False
    )
    if order == 1:
        return fn(primal), _swap_leading_axes(out), None
    return fn(primal), _swap_leading_axes(out[0]), _swap_leading_axes(out[1])


def _repeated(fn, primal, tangents, order):
    batch = tf.shape(tangents)[0]
    slots = tangents.shape[1]
    flat = tf.reshape(tangents, tf.concat([[-1], tf.shape(tangents)[2:]], 0))
    value, first, second = _directional_terms(
        fn, tf.repeat(primal, slots, axis=0), flat, order
    )
    unflatten = lambda t: tf.reshape(
        t, tf.concat([[batch, slots], tf.shape(t)[1:]], 0)
    )
    return (
        unflatten(value)[:, 0],
        unflatten(first),
        None if second is None else unflatten(second),
    )


def taylor_terms(
    fn: Callable[[tf.Tensor], tf.Tensor],
    primal: tf.Tensor,
    tangents: tf.Tensor,
    order: int = 1,
    vectorize: bool = True,
) -> TaylorTerms:
    """Value, first and (order 2) second directional derivatives of `fn`.

    Args:
      fn: batched map (B, *in) -> (B, *out), e.g. a Keras decoder.
      primal: (B, *in) expansion points.
      tangents: (B, M, *in) directions, M static.
      order: 1 returns (f(p), J t, None); 2 also returns tᵀ H t.
      vectorize: share the primal across the M tangents (see module doc).
        Falls back to repeating the primal when pfor cannot convert `fn`.

    Returns:
      (value (B, *out), first (B, M, *out), second (B, M, *out) or None).
    """
    _check_order(order)
    if tangents.shape.rank is None or tangents.shape[1] is None:
        raise ValueError(
            f"tangents must have a static slot axis (B, M, ...), got shape "
            f"{tangents.shape}."
        )
    if vectorize:
        try:
            return _vectorized(fn, primal, tangents, order)
        except (ValueError, TypeError, NotImplementedError, tf.errors.OpError) as e:
            tf.get_logger().warning(
                "keras_nrae.taylor: vectorized Taylor terms failed (%s: %s); "
                "falling back to repeating the primal per tangent.",
                type(e).__name__,
                str(e)[:200],
            )
    if order == 2 and not tf.inside_function():
        # Nested accumulators under an eager GradientTape lose gradients
        # ("returned too few gradients"); a graph keeps them.
        return tf.function(_repeated)(fn, primal, tangents, order)
    return _repeated(fn, primal, tangents, order)
