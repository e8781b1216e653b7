"""σ'(a) and σ''(a) of elementwise activations, for the layer-wise Taylor rules.

`ELEMENTWISE` lists the Keras activations that act entry by entry (the ones
the layer-wise rules accept). `DERIVATIVES` gives σ' and σ'' in closed form
for Keras's built-in activations with default arguments, from the
pre-activation a and the value s = σ(a) (tests/test_taylor.py checks each
against central differences); `derivatives` takes reverse mode for the
others.
"""

import math
from typing import Callable, Dict, Optional, Tuple

import keras
import tensorflow as tf

__all__ = ["DERIVATIVES", "ELEMENTWISE", "derivatives"]

ELEMENTWISE = tuple(
    keras.activations.get(name)
    for name in (
        "linear", "relu", "relu6", "elu", "selu", "celu", "gelu", "silu", "mish",
        "sigmoid", "hard_sigmoid", "hard_silu", "log_sigmoid", "tanh", "softplus",
        "softsign", "exponential", "leaky_relu",
    )
)

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


# σ -> (a, σ(a)) -> (σ'(a), σ''(a)).
DERIVATIVES: Dict[Callable, Callable[[tf.Tensor, tf.Tensor], Tuple[tf.Tensor, tf.Tensor]]] = {
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


def derivatives(
    activation: Callable, pre: tf.Tensor, order: int
) -> Tuple[tf.Tensor, tf.Tensor, Optional[tf.Tensor]]:
    """(σ(a), σ'(a), σ''(a)), each shaped like the pre-activations a: closed form
    where `DERIVATIVES` has one, else reverse mode, which skips σ'' (None) for
    order 1; a closed form gives both."""
    closed_form = DERIVATIVES.get(activation)
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
