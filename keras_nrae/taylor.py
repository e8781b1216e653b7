"""Decoder Taylor terms with forward-mode autodiff.

For a map f: (B, *in) -> (B, *out), a primal p (B, *in) and M tangents per row
t (B, M, *in), `taylor_terms` returns

    value  = f(p)                 (B, *out)
    first  = J_f(p) t             (B, M, *out)
    second = tᵀ H_f(p) t          (B, M, *out)   (order 2 only)

so that f(p + t) ≈ value + first + ½ second, the reconstruction
`taylor_expansion` returns. A Keras layer or model f is called with the given
`training` flag. `taylor_expansion(..., expand_output_activation=False)`
instead splits f = σ ∘ a at its output activation σ and returns
σ(a(p) + J_a t + ½ tᵀ H_a t) (path 1 only).

Where the saving comes from, fastest path first:

1. Layer-wise Taylor mode, when f is a `keras.Sequential` (or a Functional
   model that is one chain of layers, nested chains included) whose every
   layer is one this module knows exactly (`LAYER_RULES`: Keras's own `call`,
   no activity regularizer). The jet (value, first, second) is pushed through
   each layer: an affine core A x + b maps value → A value + b on the B primal
   rows and each tangent stream → A t on its B·M rows; an elementwise σ maps
   first → σ'(a) first and second → σ'(a) second + σ''(a) first², with
   σ'(a), σ''(a) taken once per primal row. The primal is computed once, f(p)
   comes out of the same pass, and order 2 costs two tangent streams. For
   the gradient, an affine layer after σ keeps only the streams entering σ
   and recomputes those leaving it (elementwise work, not matmuls): order 2
   keeps two tensors per layer where autodiff of the same ops keeps five.
   With `training=True`, Dropout-type layers draw one mask per step and apply
   it to the value and the tangents alike, GaussianNoise adds noise to the
   value only, and BatchNormalization normalises the value with the primal
   batch's statistics (updating its moving statistics once) and scales the
   tangents by γ / √(σ²_batch + ε): the expansion is that of the decoder with
   this step's statistics held fixed, one example at a time.
2. Otherwise a ForwardAccumulator inside `tf.vectorized_map` over the M axis:
   pfor sees that every primal activation is loop-invariant, so the primal is
   computed once per row and only the tangent streams are batched over B·M.
3. `vectorize=False`, also the automatic fallback when pfor cannot convert
   some op of f: the straightforward port of the official code, which repeats
   p M times and pays M primal passes.

Paths 2 and 3 differentiate f as a black box, which is exact for maps that
treat examples independently and deterministically. With `training=True` they
refuse a model holding layers that do not (BatchNormalization in training,
Dropout, noise): in a black box their masks, noise and batch statistics
would differ between the value and the tangents or mix examples. Paths 2 and
3 end with one plain call f(p), so the `add_loss` terms f leaves behind
(activity regularizers) are those of the real primal pass, never of tangent
streams; path 1 reproduces no such terms and so takes no layer with an
activity regularizer.
"""

import math
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

import keras
import tensorflow as tf

from keras_nrae import _keras_compat as compat
from keras_nrae._checks import check_order

TaylorTerms = Tuple[tf.Tensor, tf.Tensor, Optional[tf.Tensor]]
Jet = Tuple[tf.Tensor, tf.Tensor, Optional[tf.Tensor]]

_ELEMENTWISE = tuple(
    keras.activations.get(name)
    for name in (
        "linear", "relu", "relu6", "elu", "selu", "celu", "gelu", "silu", "mish",
        "sigmoid", "hard_sigmoid", "hard_silu", "log_sigmoid", "tanh", "softplus",
        "softsign", "exponential", "leaky_relu",
    )
)
_TRANSPOSED_CONVS = (
    keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose
)
_AFFINE = (
    keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D
) + _TRANSPOSED_CONVS
_DROPOUTS = (
    keras.layers.Dropout, keras.layers.SpatialDropout1D, keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D, keras.layers.GaussianDropout,
)
_RESHAPES = (keras.layers.Reshape, keras.layers.Flatten, keras.layers.Permute)
_ACTIVATION_LAYERS = (
    keras.layers.Activation, keras.layers.ELU, keras.layers.ReLU, keras.layers.LeakyReLU
)
# Layers whose training-mode call is random or mixes the examples of a batch.
_NOT_PER_EXAMPLE_IN_TRAINING = _DROPOUTS + (
    keras.layers.GaussianNoise, keras.layers.AlphaDropout, keras.layers.BatchNormalization
)


def bind_training(fn: Callable, training: Optional[bool]) -> Callable[[tf.Tensor], tf.Tensor]:
    """fn as a function of one tensor: a Keras layer or model is called with `training`."""
    if isinstance(fn, keras.layers.Layer):
        return lambda x: fn(x, training=training)
    return fn


# -- path 1: layer rules ---------------------------------------------------------------


def _rows(t: tf.Tensor) -> tf.Tensor:
    """(B, M, ...) -> (B·M, ...)."""
    return tf.reshape(t, tf.concat([[-1], tf.shape(t)[2:]], 0))


def _slots(t: tf.Tensor, slots: int) -> tf.Tensor:
    """(B·M, ...) -> (B, M, ...), M = slots."""
    return tf.reshape(t, tf.concat([[-1, slots], tf.shape(t)[1:]], 0))


def _streams_map(fn, first, second):
    """Apply a per-example map to the (B, M, ...) streams, one call over each stream's B·M rows.

    The streams are not concatenated: a copy of both would be made in the
    forward pass, kept for the gradient and split again in the backward pass.
    """
    over_rows = lambda t: _slots(fn(_rows(t)), first.shape[1])
    return over_rows(first), (None if second is None else over_rows(second))


def _scale_streams(factor, first, second):
    """first, second (B, M, ...) times a per-example factor (B, ...) or a broadcastable one."""
    factor = tf.cast(factor, first.dtype)
    if factor.shape.rank == first.shape.rank - 1:
        factor = factor[:, None]
    return factor * first, (None if second is None else factor * second)


def affine(
    layer: keras.layers.Layer, x: tf.Tensor, bias: bool = True, kernel: Optional[tf.Tensor] = None
) -> tf.Tensor:
    """A x (+ b) of a Dense / Conv / ConvTranspose layer: its call without the activation.

    The same ops, in the same order and dtype, as the layer's own `call` under
    `Layer.__call__` (tests/test_decoder_matrix.py pins this). `kernel`, if
    given, is the layer's kernel already read and cast to its compute dtype.
    """
    dtype = layer.compute_dtype
    x = keras.ops.cast(x, dtype)
    if kernel is None:
        kernel = keras.ops.cast(layer.kernel, dtype)
    if isinstance(layer, keras.layers.Dense):
        out = keras.ops.matmul(x, kernel)
        return keras.ops.add(out, keras.ops.cast(layer.bias, dtype)) if bias and layer.bias is not None else out
    if isinstance(layer, _TRANSPOSED_CONVS):
        out = keras.ops.conv_transpose(
            x, kernel, strides=list(layer.strides), padding=layer.padding,
            output_padding=layer.output_padding, dilation_rate=layer.dilation_rate,
            data_format=layer.data_format,
        )
    elif isinstance(layer, keras.layers.Conv1D) and layer.padding == "causal":
        left = layer.dilation_rate[0] * (layer.kernel_size[0] - 1)
        pad = [[0, 0], [left, 0], [0, 0]] if layer.data_format == "channels_last" else [[0, 0], [0, 0], [left, 0]]
        out = keras.ops.conv(
            keras.ops.pad(x, pad), kernel, strides=list(layer.strides), padding="valid",
            dilation_rate=layer.dilation_rate, data_format=layer.data_format,
        )
    else:
        out = layer.convolution_op(x, kernel)
    if not (bias and layer.use_bias):
        return out
    rank = len(layer.kernel_size)
    shape = (1,) * (rank + 1) + (layer.filters,) if layer.data_format == "channels_last" else (1, layer.filters) + (1,) * rank
    return keras.ops.add(out, keras.ops.reshape(keras.ops.cast(layer.bias, dtype), shape))


_SELU_SCALE, _SELU_ALPHA = 1.0507009873554804934193349852946, 1.6732632423543772848170429916717
_LEAKY_SLOPE = 0.20000000298023224  # float32(0.2)


def _sigmoid_like(sig):
    """(σ, σ(1 − σ)) for a sigmoid value σ."""
    return sig, sig * (1 - sig)


def _gelu_derivatives(a, s):
    """Exact GELU a·Φ(a): σ' = Φ + a φ, σ'' = φ (2 − a²)."""
    density = tf.exp(-0.5 * tf.square(a)) / math.sqrt(2 * math.pi)
    cdf = 0.5 * tf.math.erfc(-a / math.sqrt(2))  # not 1 + erf: no cancellation for a < 0
    return cdf + a * density, density * (2 - tf.square(a))


def _silu_derivatives(a, s):
    sig, slope = _sigmoid_like(tf.sigmoid(a))
    return sig + a * slope, slope * (2 + a * (1 - 2 * sig))


def _exponential_linear(scale, alpha):
    """σ', σ'' of σ(a) = scale·a (a > 0), scale·alpha·(e^a − 1) (a ≤ 0), from s = σ(a):
    on the left both are scale·alpha·e^a = s + scale·alpha (elu, celu: scale = alpha = 1)."""

    def derivatives(a, s):
        left = s + scale * alpha
        return (
            tf.where(a > 0, scale * tf.ones_like(a), left),
            tf.where(a > 0, tf.zeros_like(a), left),
        )

    return derivatives


def _softsign_derivatives(a, s):
    denominator = 1 + tf.abs(a)
    return 1 / tf.square(denominator), -2 * tf.sign(a) / denominator**3


# σ -> (a, σ(a)) -> (σ'(a), σ''(a)), in closed form, for Keras's built-in
# activations with default arguments; tests/test_taylor.py checks each against
# central differences. Others take reverse mode on the B primal rows.
_DERIVATIVES = {
    keras.activations.relu: lambda a, s: (tf.cast(a > 0, a.dtype), tf.zeros_like(a)),
    keras.activations.relu6: lambda a, s: (tf.cast((a > 0) & (a < 6), a.dtype), tf.zeros_like(a)),
    keras.activations.leaky_relu: lambda a, s: (  # TF's op holds the slope 0.2 as a float32
        tf.where(a > 0, tf.ones_like(a), _LEAKY_SLOPE * tf.ones_like(a)), tf.zeros_like(a)
    ),
    keras.activations.elu: _exponential_linear(1.0, 1.0),
    keras.activations.celu: _exponential_linear(1.0, 1.0),
    keras.activations.selu: _exponential_linear(_SELU_SCALE, _SELU_ALPHA),
    keras.activations.gelu: _gelu_derivatives,
    keras.activations.silu: _silu_derivatives,
    keras.activations.sigmoid: lambda a, s: (s * (1 - s), s * (1 - s) * (1 - 2 * s)),
    keras.activations.tanh: lambda a, s: (1 - tf.square(s), -2 * s * (1 - tf.square(s))),
    keras.activations.softplus: lambda a, s: _sigmoid_like(tf.sigmoid(a)),
    keras.activations.log_sigmoid: lambda a, s: (
        tf.sigmoid(-a), -tf.sigmoid(a) * tf.sigmoid(-a)
    ),
    keras.activations.softsign: _softsign_derivatives,
    keras.activations.exponential: lambda a, s: (s, s),
}


def _derivatives(activation, pre, order):
    """(σ(a), σ'(a), σ''(a)) at pre-activations a: closed form where known, else
    reverse mode, which skips σ'' (None) for order 1; a closed form gives both."""
    closed_form = _DERIVATIVES.get(activation)
    if closed_form is not None:
        value = activation(pre)
        return (value, *closed_form(pre, value))
    zero = tf.UnconnectedGradients.ZERO
    with tf.GradientTape() as curvature_tape:
        curvature_tape.watch(pre)
        with tf.GradientTape() as slope_tape:
            slope_tape.watch(pre)
            value = activation(pre)
        slope = slope_tape.gradient(value, pre, unconnected_gradients=zero)
    if order == 1:
        return value, slope, None
    return value, slope, curvature_tape.gradient(slope, pre, unconnected_gradients=zero)


class _Activated(NamedTuple):
    """Tangent streams after an elementwise σ at pre-activations a, not yet formed:

        first  = σ'(a) ⊙ incoming first
        second = σ'(a) ⊙ incoming second + σ''(a) ⊙ incoming first²   (order 2)

    slope σ'(a) and curvature σ''(a) (None for order 1) are (B, ...), the
    incoming streams (B, M, ...); incoming second is None where it is zero.
    An affine layer after σ (reshapes in between) takes them as they are
    (`_affine_of_activated`); any other rule forms them first (`formed`).
    """

    slope: tf.Tensor
    curvature: Optional[tf.Tensor]
    first: tf.Tensor
    second: Optional[tf.Tensor]

    def formed(self) -> Tuple[tf.Tensor, Optional[tf.Tensor]]:
        slope = self.slope[:, None]
        first = slope * self.first
        if self.curvature is None:
            return first, None
        second = self.curvature[:, None] * tf.square(self.first)
        if self.second is not None:
            second += slope * self.second
        return first, second


def _elementwise_jet(activation, pre, first, second, order) -> Jet:
    """Push the jet through σ = `activation` at pre-activations `pre` (B, ...).

    Returns (σ(a), `_Activated` streams, None), with σ', σ'' taken once per
    primal row; for the identity, (a, first, second) unchanged.
    """
    if activation is keras.activations.linear:
        return pre, first, second
    value, slope, curvature = _derivatives(activation, pre, order)
    return value, _Activated(slope, curvature if order == 2 else None, first, second), None


def _formed(jet) -> Jet:
    """The jet with `_Activated` streams formed into tensors."""
    value, first, second = jet
    return (value, *first.formed()) if isinstance(first, _Activated) else jet


def _recomputed_in_backward(fn: Callable, inputs: List[tf.Tensor]) -> List[tf.Tensor]:
    """fn(*inputs) (a list of tensors) whose gradient keeps only `inputs` alive:
    fn's intermediates are recomputed from them when the gradient is taken.

    The recomputation is made to wait for the incoming gradients, so that graph
    optimisation cannot merge it with the forward pass (which would keep the
    forward's tensors alive after all); ops of it that the gradient does not
    read (a matmul's output, for one) are pruned from the graph.
    """

    @tf.custom_gradient
    def recomputed(*inputs):
        def gradient(*output_gradients):
            with tf.control_dependencies(output_gradients):
                replayed = [tf.identity(t) for t in inputs]
            with tf.GradientTape() as tape:
                tape.watch(replayed)
                outputs = fn(*replayed)
            return tape.gradient(
                outputs, replayed, output_gradients=output_gradients,
                unconnected_gradients=tf.UnconnectedGradients.ZERO,
            )

        return fn(*inputs), gradient

    return recomputed(*inputs)


def _held(activated: _Activated) -> List[tf.Tensor]:
    return [t for t in activated if t is not None]


def _rebuilt(like: _Activated, tensors) -> _Activated:
    """`like` with its tensors replaced, in order, by `tensors`."""
    it = iter(tensors)
    return _Activated(*(None if t is None else next(it) for t in like))


def _affine_of_activated(layer, activated: _Activated):
    """A·first, A·second (B, M, ...) of an affine layer for `_Activated` streams.

    The value is that of `_streams_map(affine(layer, ·, bias=False), *activated.formed())`,
    but the gradient keeps only what `activated` holds and recomputes the formed
    streams (a few elementwise ops) when it is taken, instead of keeping both
    the streams going into σ and the ones coming out of it: for order 2 that
    is two (B·M, units) tensors kept per layer instead of five.
    """
    def rows_out(*tensors):
        *held, kernel = tensors
        return [
            affine(layer, _rows(t), bias=False, kernel=kernel)
            for t in _rebuilt(activated, held).formed() if t is not None
        ]

    kernel = keras.ops.cast(layer.kernel, layer.compute_dtype)
    out = [  # back to (B, M, ...) outside: the gradient must not read a matmul's output shape
        _slots(t, activated.first.shape[1])
        for t in _recomputed_in_backward(rows_out, _held(activated) + [kernel])
    ]
    return out[0], (out[1] if len(out) == 2 else None)


def _affine_rule(layer, jet, order, training, activation=None) -> Jet:
    """A x + b, then the layer's activation (or `activation`, if given)."""
    value, first, second = jet
    if isinstance(first, _Activated):
        first, second = _affine_of_activated(layer, first)
    else:
        first, second = _streams_map(lambda t: affine(layer, t, bias=False), first, second)
    activation = layer.activation if activation is None else activation
    return _elementwise_jet(activation, affine(layer, value), first, second, order)


def _pre_activation_rule(layer, jet, order, training) -> Jet:
    """`_affine_rule` that stops at the pre-activation A x + b."""
    return _affine_rule(layer, jet, order, training, activation=keras.activations.linear)


def _activation_rule(layer, jet, order, training) -> Jet:
    value, first, second = jet
    activation = layer.activation if isinstance(layer, keras.layers.Activation) else layer
    return _elementwise_jet(activation, value, first, second, order)


def _reshape_rule(layer, jet, order, training) -> Jet:
    """Reshapes move entries and commute with σ: `_Activated` streams pass through unformed."""
    value, first, second = jet
    if isinstance(first, _Activated):
        slope, curvature, incoming_first, incoming_second = first
        first = _Activated(
            layer(slope), None if curvature is None else layer(curvature),
            *_streams_map(layer, incoming_first, incoming_second),
        )
        return layer(value), first, None
    return (layer(value), *_streams_map(layer, first, second))


def _dropout_rule(layer, jet, order, training) -> Jet:
    """x ↦ x ⊙ mask: one mask (drawn by the layer itself) for the value and its tangents."""
    value, first, second = jet
    if not training:
        return jet
    mask = layer(tf.ones_like(value), training=True)
    return (value * mask, *_scale_streams(mask, first, second))


def _noise_rule(layer, jet, order, training) -> Jet:
    """x ↦ x + noise: the tangents are unchanged."""
    value, first, second = jet
    return layer(value, training=training), first, second


def _batch_norm_rule(layer, jet, order, training) -> Jet:
    """x ↦ γ (x − μ) / √(σ² + ε) + β with the statistics of this call held fixed."""
    value, first, second = jet
    axis = layer.axis % value.shape.rank
    if training and layer.trainable:
        x = keras.ops.cast(value, keras.backend.result_type(value.dtype, "float32"))
        reduced = [i for i in range(value.shape.rank) if i != axis]
        variance = keras.ops.moments(x, axes=reduced)[1]
    else:
        variance = layer.moving_variance
    scale = tf.math.rsqrt(tf.cast(variance, first.dtype) + layer.epsilon)
    if layer.scale:
        scale *= tf.cast(layer.gamma, first.dtype)
    shape = [1] * (first.shape.rank - 1)
    shape[axis] = -1
    return (layer(value, training=training), *_scale_streams(tf.reshape(scale, shape), first, second))


# Rules that take `_Activated` streams as they are; the others get them formed.
_TAKE_ACTIVATED = (_affine_rule, _pre_activation_rule, _reshape_rule)


def _affine_ok(layer) -> bool:
    return layer.quantization_mode is None and layer.activation in _ELEMENTWISE


def _activation_ok(layer) -> bool:
    return not isinstance(layer, keras.layers.Activation) or layer.activation in _ELEMENTWISE


def _batch_norm_ok(layer) -> bool:
    return not (layer.synchronized or layer.renorm)


# class -> (rule, when the rule applies); a layer takes the rule only when its
# `call` is that class's own (a subclass overriding `call` is unknown).
LAYER_RULES: Dict[type, Tuple[Callable, Callable]] = {
    **{cls: (_affine_rule, _affine_ok) for cls in _AFFINE},
    **{cls: (_activation_rule, _activation_ok) for cls in _ACTIVATION_LAYERS},
    **{cls: (_reshape_rule, lambda layer: True) for cls in _RESHAPES},
    **{cls: (_dropout_rule, lambda layer: True) for cls in _DROPOUTS},
    keras.layers.GaussianNoise: (_noise_rule, lambda layer: True),
    keras.layers.BatchNormalization: (_batch_norm_rule, _batch_norm_ok),
}


def _rule(layer) -> Optional[Callable]:
    """The layer's rule from LAYER_RULES, or None when it has none or it does not apply."""
    if layer.activity_regularizer is not None:
        return None
    for cls in type(layer).__mro__:
        if cls in LAYER_RULES:
            rule, applies = LAYER_RULES[cls]
            return rule if type(layer).call is cls.call and applies(layer) else None
    return None


def _layer_chain(fn) -> Optional[List[Tuple[keras.layers.Layer, Callable]]]:
    """(layer, its rule) for fn's layers, nested chains flattened, when fn is a
    Sequential or a single-chain Functional model of layers that all have a
    rule; else None."""
    if not isinstance(fn, keras.Model) or fn.activity_regularizer is not None:
        return None
    if type(fn).call is keras.Sequential.call:
        layers = fn.layers
    else:
        layers = compat.functional_chain(fn)
    if layers is None:
        return None
    chain = []
    for layer in layers:
        inner = _layer_chain(layer)
        if inner is not None:
            chain += inner
            continue
        rule = _rule(layer)
        if rule is None:
            return None
        chain.append((layer, rule))
    return chain


def _layerwise(chain, primal, tangents, order, training) -> TaylorTerms:
    """Path 1 of the module doc: push (value, first, second) through `_layer_chain(f)`."""
    jet = (primal, tangents, None)
    for layer, rule in chain:
        jet = rule(layer, jet if rule in _TAKE_ACTIVATED else _formed(jet), order, training)
    value, first, second = _formed(jet)
    if order == 2 and second is None:
        second = tf.zeros_like(first)
    return value, first, second


def output_activation_split(fn) -> Tuple[List[Tuple[keras.layers.Layer, Callable]], Callable]:
    """(chain of a, σ) for f = σ ∘ a, σ the elementwise activation that ends f
    (only reshapes after it); σ is the identity when f's output is linear.

    Raises ValueError unless f is a chain of layers with exact rules (path 1).
    """
    chain = _layer_chain(fn)
    if chain is None:
        raise ValueError(
            f"Expanding the decoder before its output activation needs a decoder that is a chain "
            f"of layers with exact Taylor rules (a keras.Sequential or one-chain Functional model "
            f"of {', '.join(sorted(cls.__name__ for cls in LAYER_RULES))}, without activity "
            f"regularizers); got {getattr(fn, 'name', fn)!r}."
        )
    last = max((i for i, (_, rule) in enumerate(chain) if rule is not _reshape_rule), default=None)
    layer, rule = chain[last] if last is not None else (None, None)
    if rule is _affine_rule:
        return chain[:last] + [(layer, _pre_activation_rule)] + chain[last + 1:], layer.activation
    if rule is _activation_rule:
        activation = layer.activation if isinstance(layer, keras.layers.Activation) else layer
        return chain[:last] + chain[last + 1:], activation
    raise ValueError(
        f"The decoder's last layer that is not a reshape, {getattr(layer, 'name', None)!r}, is "
        f"neither an affine layer nor an activation: it has no output activation to expand before."
    )


# -- paths 2 and 3: forward-mode autodiff of f as a black box --------------------------


def check_per_example(layer: keras.layers.Layer, training) -> None:
    """Raise ValueError when `layer` holds a layer whose training-mode call is random
    or mixes examples, and `training` is set: forward-mode autodiff of the whole
    model cannot expand it one example at a time (module doc, paths 2 and 3)."""
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
            f"batch statistics, and is not a chain of layers with exact Taylor rules "
            f"(a keras.Sequential or one-chain Functional model of "
            f"{', '.join(sorted(cls.__name__ for cls in LAYER_RULES))}, without activity "
            f"regularizers). Make it such a chain, drop or freeze that layer "
            f"(a BatchNormalization with trainable=False uses its moving statistics), "
            f"or use LayerNormalization."
        )


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
    first, second = (_swap_leading_axes(t) for t in out)
    return fn(primal), first, second


def _repeated(fn, primal, tangents, order):
    slots = tangents.shape[1]
    _, first, second = _directional_terms(fn, tf.repeat(primal, slots, axis=0), _rows(tangents), order)
    return fn(primal), _slots(first, slots), None if second is None else _slots(second, slots)


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
    vectorize: bool = True,
    training: Optional[bool] = None,
) -> TaylorTerms:
    """Value, first and (order 2) second directional derivatives of `fn`.

    Args:
      fn: batched map (B, *in) -> (B, *out): a Keras layer or model (called
        with `training`), or any function of one tensor.
      primal: (B, *in) expansion points.
      tangents: (B, M, *in) directions, M static.
      order: 1 returns (f(p), J t, None); 2 also returns tᵀ H t.
      vectorize: share the primal across the M tangents (paths 1 and 2 of the
        module doc); falls back to repeating it when neither applies.
      training: the `training` flag a Keras `fn` is called with.

    Returns:
      (value (B, *out), first (B, M, *out), second (B, M, *out) or None).
    """
    _check_arguments(order, tangents)
    chain = _layer_chain(fn) if vectorize else None
    if chain is not None:
        return _layerwise(chain, primal, tangents, order, training)
    if isinstance(fn, keras.layers.Layer):
        check_per_example(fn, training)
    fn = bind_training(fn, training)
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
    vectorize: bool = True,
    training: Optional[bool] = None,
    expand_output_activation: bool = True,
    dtype: Optional[tf.DType] = None,
) -> Tuple[tf.Tensor, tf.Tensor]:
    """(f(p) (B, *out), f̃(p + t) (B, M, *out)): f's order-`order` Taylor reconstruction at p + t.

    With `expand_output_activation` (the paper's NRAE), f̃ = f(p) + J t [+ ½ tᵀ H t].
    Without, f = σ ∘ a is split at its output activation σ
    (`output_activation_split`) and only a is expanded:
    f̃ = σ(a(p) + J_a t [+ ½ tᵀ H_a t]), which stays in σ's range (a sigmoid's
    Taylor series around a logit a converges only within π of a); f(p) and
    f̃(p) are unchanged. Arguments as for `taylor_terms`; `dtype` (default f's
    output dtype) is the dtype f̃ is summed in.
    """
    if expand_output_activation:
        value, first, second = taylor_terms(fn, primal, tangents, order, vectorize, training)
        return value, _expansion(value, first, second, dtype or value.dtype)
    _check_arguments(order, tangents)
    chain, activation = output_activation_split(fn)
    pre, first, second = _layerwise(chain, primal, tangents, order, training)
    return activation(pre), activation(_expansion(pre, first, second, dtype or pre.dtype))
