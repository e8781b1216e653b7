"""Layer-wise Taylor mode: the terms pushed through a chain of known layers.

Applies when f is a `keras.Sequential` (or a Functional model that is one
chain of layers, nested chains included) whose every layer is one this module
knows exactly (`LAYER_RULES`: Keras's own `call`, no activity regularizer;
`layer_chain`). The terms (value, first, second) are pushed through each
layer: an affine core A x + b maps value → A value + b on the B primal rows
and each tangent stream → A t on its B·M rows; an elementwise σ maps
first → σ'(a) first and second → σ'(a) second + σ''(a) first², with σ'(a),
σ''(a) taken once per primal row (`keras_nrae.taylor.activations`). The
primal is computed once, f(p) comes out of the same pass, and order 2 costs
two tangent streams. For the gradient, an affine layer after σ keeps only the
streams entering σ and recomputes those leaving it (elementwise work, not
matmuls): order 2 keeps two tensors per layer where autodiff of the same ops
keeps five.

With `training=True`, Dropout-type layers draw one mask per step and apply it
to the value and the tangents alike, GaussianNoise adds noise to the value
only, and BatchNormalization normalises the value with the primal batch's
statistics (updating its moving statistics once) and scales the tangents by
γ / √(σ²_batch + ε): the expansion is that of the decoder with this step's
statistics held fixed, one example at a time. This path reproduces no
`add_loss` terms, and so takes no layer with an activity regularizer.

`output_activation_split` splits such a chain f = σ ∘ a at its output
activation σ, for `taylor_expansion(..., expand_output_activation=False)`.
"""

from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

import keras
import tensorflow as tf

from keras_nrae import _keras_compat as compat
from keras_nrae.taylor.activations import ELEMENTWISE, derivatives
from keras_nrae.taylor.streams import TaylorTerms, rows, slots

__all__ = [
    "CHAIN_REQUIREMENT",
    "DROPOUTS",
    "LAYER_RULES",
    "affine",
    "layer_chain",
    "layerwise_terms",
    "output_activation_split",
    "require_layer_chain",
]

_TRANSPOSED_CONVS = (
    keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose
)
_AFFINE = (
    keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D
) + _TRANSPOSED_CONVS
DROPOUTS = (
    keras.layers.Dropout, keras.layers.SpatialDropout1D, keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D, keras.layers.GaussianDropout,
)
_RESHAPES = (keras.layers.Reshape, keras.layers.Flatten, keras.layers.Permute)
_ACTIVATION_LAYERS = (
    keras.layers.Activation, keras.layers.ELU, keras.layers.ReLU, keras.layers.LeakyReLU
)

Chain = List[Tuple[keras.layers.Layer, Callable]]


def _streams_map(fn, first, second):
    """Apply a per-example map to the (B, M, ...) streams, one call over each stream's B·M rows.

    The streams are not concatenated: a copy of both would be made in the
    forward pass, kept for the gradient and split again in the backward pass.
    """
    over_rows = lambda t: slots(fn(rows(t)), first.shape[1])
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


def _elementwise_terms(activation, pre, first, second, order) -> TaylorTerms:
    """Push the terms through σ = `activation` at pre-activations `pre` (B, ...).

    Returns (σ(a), `_Activated` streams, None), with σ', σ'' taken once per
    primal row; for the identity, (a, first, second) unchanged.
    """
    if activation is keras.activations.linear:
        return pre, first, second
    value, slope, curvature = derivatives(activation, pre, order)
    return value, _Activated(slope, curvature if order == 2 else None, first, second), None


def _formed(terms) -> TaylorTerms:
    """The terms with `_Activated` streams formed into tensors."""
    value, first, second = terms
    return (value, *first.formed()) if isinstance(first, _Activated) else terms


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
            affine(layer, rows(t), bias=False, kernel=kernel)
            for t in _rebuilt(activated, held).formed() if t is not None
        ]

    kernel = keras.ops.cast(layer.kernel, layer.compute_dtype)
    out = [  # back to (B, M, ...) outside: the gradient must not read a matmul's output shape
        slots(t, activated.first.shape[1])
        for t in _recomputed_in_backward(rows_out, _held(activated) + [kernel])
    ]
    return out[0], (out[1] if len(out) == 2 else None)


def _affine_rule(layer, terms, order, training, activation=None) -> TaylorTerms:
    """A x + b, then the layer's activation (or `activation`, if given)."""
    value, first, second = terms
    if isinstance(first, _Activated):
        first, second = _affine_of_activated(layer, first)
    else:
        first, second = _streams_map(lambda t: affine(layer, t, bias=False), first, second)
    activation = layer.activation if activation is None else activation
    return _elementwise_terms(activation, affine(layer, value), first, second, order)


def _pre_activation_rule(layer, terms, order, training) -> TaylorTerms:
    """`_affine_rule` that stops at the pre-activation A x + b."""
    return _affine_rule(layer, terms, order, training, activation=keras.activations.linear)


def _activation_rule(layer, terms, order, training) -> TaylorTerms:
    value, first, second = terms
    activation = layer.activation if isinstance(layer, keras.layers.Activation) else layer
    return _elementwise_terms(activation, value, first, second, order)


def _reshape_rule(layer, terms, order, training) -> TaylorTerms:
    """Reshapes move entries and commute with σ: `_Activated` streams pass through unformed."""
    value, first, second = terms
    if isinstance(first, _Activated):
        slope, curvature, incoming_first, incoming_second = first
        first = _Activated(
            layer(slope), None if curvature is None else layer(curvature),
            *_streams_map(layer, incoming_first, incoming_second),
        )
        return layer(value), first, None
    return (layer(value), *_streams_map(layer, first, second))


def _dropout_rule(layer, terms, order, training) -> TaylorTerms:
    """x ↦ x ⊙ mask: one mask (drawn by the layer itself) for the value and its tangents."""
    value, first, second = terms
    if not training:
        return terms
    mask = layer(tf.ones_like(value), training=True)
    return (value * mask, *_scale_streams(mask, first, second))


def _noise_rule(layer, terms, order, training) -> TaylorTerms:
    """x ↦ x + noise: the tangents are unchanged."""
    value, first, second = terms
    return layer(value, training=training), first, second


def _batch_norm_rule(layer, terms, order, training) -> TaylorTerms:
    """x ↦ γ (x − μ) / √(σ² + ε) + β with the statistics of this call held fixed."""
    value, first, second = terms
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
    return layer.quantization_mode is None and layer.activation in ELEMENTWISE


def _activation_ok(layer) -> bool:
    return not isinstance(layer, keras.layers.Activation) or layer.activation in ELEMENTWISE


def _batch_norm_ok(layer) -> bool:
    return not (layer.synchronized or layer.renorm)


# class -> (rule, when the rule applies); a layer takes the rule only when its
# `call` is that class's own (a subclass overriding `call` is unknown).
LAYER_RULES: Dict[type, Tuple[Callable, Callable]] = {
    **{cls: (_affine_rule, _affine_ok) for cls in _AFFINE},
    **{cls: (_activation_rule, _activation_ok) for cls in _ACTIVATION_LAYERS},
    **{cls: (_reshape_rule, lambda layer: True) for cls in _RESHAPES},
    **{cls: (_dropout_rule, lambda layer: True) for cls in DROPOUTS},
    keras.layers.GaussianNoise: (_noise_rule, lambda layer: True),
    keras.layers.BatchNormalization: (_batch_norm_rule, _batch_norm_ok),
}


CHAIN_REQUIREMENT = (
    f"a chain of layers with exact Taylor rules (a keras.Sequential or one-chain Functional "
    f"model of {', '.join(sorted(cls.__name__ for cls in LAYER_RULES))}, without activity "
    f"regularizers)"
)


class _NotAChain(Exception):
    """Why a map is not a chain of layers with exact rules: the first thing that is not."""


def _rule(layer) -> Callable:
    """The layer's rule from LAYER_RULES; raises _NotAChain when it has none or it does not apply."""
    name = f"layer {layer.name!r} ({type(layer).__name__})"
    if layer.activity_regularizer is not None:
        raise _NotAChain(f"{name} has an activity regularizer")
    for cls in type(layer).__mro__:
        if cls in LAYER_RULES:
            rule, applies = LAYER_RULES[cls]
            if type(layer).call is not cls.call:
                raise _NotAChain(f"{name} overrides {cls.__name__}.call")
            if not applies(layer):
                raise _NotAChain(
                    f"{name} is configured beyond its rule (quantized, a non-elementwise "
                    f"activation, or a synchronized or renorm BatchNormalization)"
                )
            return rule
    raise _NotAChain(f"{name} has no exact Taylor rule")


def _chain(fn) -> Chain:
    """(layer, its rule) for fn's layers, nested chains flattened; raises _NotAChain."""
    if not isinstance(fn, keras.Model):
        name = getattr(fn, "name", getattr(fn, "__name__", None))
        raise _NotAChain(f"{type(fn).__name__} {name!r} is not a keras.Model")
    if fn.activity_regularizer is not None:
        raise _NotAChain(f"model {fn.name!r} has an activity regularizer")
    if type(fn).call is keras.Sequential.call:
        layers = fn.layers
    else:
        layers = compat.functional_chain(fn)
    if layers is None:
        raise _NotAChain(
            f"model {fn.name!r} is not one chain of layers (each called once, on the previous "
            f"one's output, with Keras's own Sequential or Functional call)"
        )
    chain = []
    for layer in layers:
        chain += _chain(layer) if isinstance(layer, keras.Model) else [(layer, _rule(layer))]
    return chain


def layer_chain(fn: Callable) -> Optional[Chain]:
    """(layer, its rule) for fn's layers, nested chains flattened, when fn is a
    Sequential or a single-chain Functional model of layers that all have a
    rule; else None."""
    try:
        return _chain(fn)
    except _NotAChain:
        return None


def require_layer_chain(fn: Callable, purpose: str) -> Chain:
    """`layer_chain(fn)`, or ValueError saying that `purpose` needs one and what is not."""
    try:
        return _chain(fn)
    except _NotAChain as reason:
        raise ValueError(f"{purpose} needs a decoder that is {CHAIN_REQUIREMENT}; {reason}.") from None


def layerwise_terms(
    chain: Chain, primal: tf.Tensor, tangents: tf.Tensor, order: int, training: Optional[bool]
) -> TaylorTerms:
    """Terms of the chain at p (B, *in) for tangents (B, M, *in), pushed layer by layer:
    (value (B, *out), first (B, M, *out), second (B, M, *out) or None for order 1)."""
    terms = (primal, tangents, None)
    for layer, rule in chain:
        terms = rule(layer, terms if rule in _TAKE_ACTIVATED else _formed(terms), order, training)
    value, first, second = _formed(terms)
    if order == 2 and second is None:
        second = tf.zeros_like(first)
    return value, first, second


def output_activation_split(fn: Callable) -> Tuple[Chain, Callable]:
    """(chain of a, σ) for f = σ ∘ a, σ the elementwise activation that ends f
    (only reshapes after it); σ is the identity when f's output is linear.

    Raises ValueError unless f is a chain of layers with exact rules.
    """
    chain = require_layer_chain(fn, "Expanding the decoder before its output activation")
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


