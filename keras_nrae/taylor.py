"""Decoder Taylor terms with forward-mode autodiff.

For a map f: (B, *in) -> (B, *out), a primal p (B, *in) and M tangents per row
t (B, M, *in), `taylor_terms` returns

    value  = f(p)                 (B, *out)
    first  = J_f(p) t             (B, M, *out)
    second = tᵀ H_f(p) t          (B, M, *out)   (order 2 only)

so that f(p + t) ≈ value + first + ½ second.

Where the saving comes from, fastest path first:

1. Layer-wise Taylor mode, when f is a `keras.Sequential` (or a Functional
   model that is one chain of layers) of affine layers (Dense, Conv,
   ConvTranspose) with elementwise activations and reshapes.
   The jet (value, first, second) is pushed through each layer: the affine
   core A x + b maps value → A value + b on the B primal rows and the tangent
   streams → A t on B·M rows in one call; an elementwise σ maps
   first → σ'(a) first and second → σ'(a) second + σ''(a) first², with
   σ'(a), σ''(a) taken once per primal row. The primal is computed once, f(p)
   comes out of the same pass, and order 2 costs two tangent streams. Nested
   ForwardAccumulators need three: the outer one re-derives J t along the
   primal stream, which the inner one has already computed.
2. Otherwise a ForwardAccumulator inside `tf.vectorized_map` over the M axis:
   pfor sees that every primal activation is loop-invariant, so the primal is
   computed once per row and only the tangent streams are batched over B·M.
3. `vectorize=False`, also the automatic fallback when pfor cannot convert
   some op of f: the straightforward port of the official code, which repeats
   p M times and pays M primal passes.
"""

import functools
import threading
from typing import Callable, List, Optional, Tuple

import keras
import tensorflow as tf
from keras.src.models.functional import Functional  # keras.Model(inputs, outputs); no public name

TaylorTerms = Tuple[tf.Tensor, tf.Tensor, Optional[tf.Tensor]]


_AFFINE = (
    keras.layers.Dense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)
# The Keras calls `_linear_part` knows to be A x + b (+ activation); a
# subclass that overrides `call` takes the vectorized path instead.
_AFFINE_CALLS = {layer_class.call for layer_class in _AFFINE}
_RESHAPES = (keras.layers.Reshape, keras.layers.Flatten, keras.layers.Permute)
_ACTIVATION_LAYERS = (keras.layers.ELU, keras.layers.ReLU, keras.layers.LeakyReLU)
_ELEMENTWISE = tuple(
    keras.activations.get(name)
    for name in (
        "linear", "relu", "relu6", "elu", "selu", "celu", "gelu", "silu", "mish",
        "sigmoid", "hard_sigmoid", "hard_silu", "log_sigmoid", "tanh", "softplus",
        "softsign", "exponential", "leaky_relu",
    )
)


# _pre_activation and _linear_part switch a layer's activation (and bias) off for
# the duration of one call; replica threads (tf.distribute) must not see that state.
_ACTIVATION_SWITCH = threading.Lock()


def check_order(order: int) -> None:
    """Raise ValueError unless order is 1 (NRAE-L) or 2 (NRAE-Q)."""
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


def _has_layer_rule(layer: keras.layers.Layer) -> bool:
    if isinstance(layer, _RESHAPES + _ACTIVATION_LAYERS):
        return True
    if isinstance(layer, _AFFINE) and (
        type(layer).call not in _AFFINE_CALLS or layer.quantization_mode is not None
    ):
        return False  # a call we do not know to be A x + b
    return (
        isinstance(layer, _AFFINE + (keras.layers.Activation,))
        and layer.activation in _ELEMENTWISE
    )


def _functional_chain(model: Functional) -> Optional[List[keras.layers.Layer]]:
    """The layers of a Functional model that is a single chain (one input, each
    layer called once, on the previous layer's output), else None."""
    if type(model).call is not Functional.call or len(model.inputs) != 1 or len(model.outputs) != 1:
        return None
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    tensor = model.inputs[0]
    for layer in layers:
        nodes = layer._inbound_nodes
        if len(nodes) != 1 or len(nodes[0].input_tensors) != 1 or len(nodes[0].outputs) != 1:
            return None
        if nodes[0].input_tensors[0] is not tensor:  # `is`: KerasTensor == builds an op
            return None
        tensor = nodes[0].outputs[0]
    return layers if tensor is model.outputs[0] else None


def _layer_chain(fn) -> Optional[List[keras.layers.Layer]]:
    """fn's layers when fn (or the function of a functools.partial) is a
    Sequential, or a single-chain Functional model, whose every layer has a
    Taylor-mode rule, else None."""
    model = fn.func if isinstance(fn, functools.partial) else fn
    layers = None
    if isinstance(model, keras.Sequential):
        layers = model.layers
    elif isinstance(model, Functional):
        layers = _functional_chain(model)
    if layers is not None and all(map(_has_layer_rule, layers)):
        return layers
    return None


def _pre_activation(layer, x):
    """A x + b: the layer called with its activation switched off."""
    activation, layer.activation = layer.activation, keras.activations.linear
    try:
        return layer(x)
    finally:
        layer.activation = activation


def _linear_part(layer, t):
    """A t for the affine core A x + b of `layer`: its own call without bias or activation.

    Direct ops, not a ForwardAccumulator around the layer: that would also
    compute the unused primal A t + b and a double-backward jvp, about a
    third of an NRAE step.
    """
    if isinstance(layer, keras.layers.Dense):  # Dense.call minus bias, cast as Layer.__call__ would
        dtype = layer.compute_dtype
        return keras.ops.matmul(keras.ops.cast(t, dtype), keras.ops.cast(layer.kernel, dtype))
    use_bias, layer.use_bias = layer.use_bias, False
    try:
        return _pre_activation(layer, t)
    finally:
        layer.use_bias = use_bias


def _push_linear(linear, first, second):
    """Apply a per-example linear map to the (B, M, ...) streams in one batched call."""
    streams = [first] if second is None else [first, second]
    merged = tf.concat(
        [tf.reshape(t, tf.concat([[-1], tf.shape(t)[2:]], 0)) for t in streams], 0
    )
    slots = first.shape[1]
    out = [
        tf.reshape(t, tf.concat([[-1, slots], tf.shape(t)[1:]], 0))
        for t in tf.split(linear(merged), len(streams), axis=0)
    ]
    return out[0], (None if second is None else out[1])


def _elementwise_jet(activation, pre, first, second, order):
    """Push the jet through σ = `activation` at pre-activations `pre` (B, ...).

    σ(a), σ'(a) first and (order 2) σ'(a) second + σ''(a) first², with first
    and second (B, M, ...) and σ', σ'' from reverse mode on the B primal rows.
    """
    zero = tf.UnconnectedGradients.ZERO
    with tf.GradientTape() as curvature_tape:
        curvature_tape.watch(pre)
        with tf.GradientTape() as slope_tape:
            slope_tape.watch(pre)
            value = activation(pre)
        slope = slope_tape.gradient(value, pre, unconnected_gradients=zero)
    first_out = slope[:, None] * first
    if order == 1:
        return value, first_out, None
    curvature = curvature_tape.gradient(slope, pre, unconnected_gradients=zero)
    second_out = curvature[:, None] * tf.square(first)
    if second is not None:
        second_out += slope[:, None] * second
    return value, first_out, second_out


def _layerwise(layers, primal, tangents, order):
    """Path 1 of the module doc: push (value, first, second) layer by layer."""
    value, first, second = primal, tangents, None
    for layer in layers:
        if isinstance(layer, _ACTIVATION_LAYERS):
            activation, pre = layer, value
        elif isinstance(layer, keras.layers.Activation):
            activation, pre = layer.activation, value
        else:
            linear = (
                layer
                if isinstance(layer, _RESHAPES)
                else functools.partial(_linear_part, layer)
            )
            first, second = _push_linear(linear, first, second)
            activation = getattr(layer, "activation", keras.activations.linear)
            if activation is keras.activations.linear:
                value = layer(value)
                continue
            pre = _pre_activation(layer, value)
        value, first, second = _elementwise_jet(activation, pre, first, second, order)
    if order == 2 and second is None:
        second = tf.zeros_like(first)
    return value, first, second


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
      vectorize: share the primal across the M tangents (paths 1 and 2 of the
        module doc); falls back to repeating it when neither applies.

    Returns:
      (value (B, *out), first (B, M, *out), second (B, M, *out) or None).
    """
    check_order(order)
    if tangents.shape.rank is None or tangents.shape[1] is None:
        raise ValueError(
            f"tangents must have a static slot axis (B, M, ...), got shape "
            f"{tangents.shape}."
        )
    if vectorize:
        with _ACTIVATION_SWITCH:
            layers = _layer_chain(fn)
            if layers is not None:
                return _layerwise(layers, primal, tangents, order)
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
