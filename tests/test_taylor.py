"""Forward-mode Taylor terms against central finite differences of the decoder."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nrae.losses import neighborhood_reconstruction_loss
from keras_nrae.taylor import layer_chain, taylor_expansion, taylor_terms
from keras_nrae.taylor.activations import DERIVATIVES, derivatives
from tests._reference import with_random_biases
from tests._numerics import assert_close

B, M, D = 3, 2, 2


class ShiftedDense(keras.layers.Dense):
    """A Dense whose call is not A x + b alone: Taylor mode must not assume it is."""

    def call(self, inputs):
        return super().call(inputs + 0.25 * inputs**2)


def mlp_decoder():
    return with_random_biases(keras.Sequential(
        [
            keras.Input((D,), dtype="float64"),
            keras.layers.Dense(16, activation="elu", dtype="float64"),
            keras.layers.Dense(5, activation="tanh", dtype="float64"),
        ]
    ))


def conv1d_decoder():
    return with_random_biases(keras.Sequential(
        [
            keras.Input((D,), dtype="float64"),
            keras.layers.Dense(4 * 3, activation="elu", dtype="float64"),
            keras.layers.Reshape((4, 3), dtype="float64"),
            keras.layers.Conv1D(3, 2, padding="causal", activation="softplus", dtype="float64"),
            keras.layers.Conv1DTranspose(2, 3, strides=2, activation="tanh", dtype="float64"),
            keras.layers.Flatten(dtype="float64"),
        ]
    ))


def subclassed_layer_decoder():
    return with_random_biases(keras.Sequential(
        [
            keras.Input((D,), dtype="float64"),
            ShiftedDense(8, activation="elu", dtype="float64"),
            keras.layers.Dense(5, activation="sigmoid", dtype="float64"),
        ]
    ))


def conv_decoder():
    return with_random_biases(keras.Sequential(
        [
            keras.Input((D,), dtype="float64"),
            keras.layers.Dense(2 * 2 * 3, activation="softplus", dtype="float64"),
            keras.layers.Reshape((2, 2, 3), dtype="float64"),
            keras.layers.Conv2DTranspose(
                2, 3, strides=2, padding="same", activation="elu", dtype="float64"
            ),
            keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid", dtype="float64"),
        ]
    ))


def central_differences(fn, z, dz, eps=1e-4):
    """J dz and dzᵀ H dz per slot from f(z ± eps dz): (B, M, *out) each."""
    first, second = [], []
    for m in range(dz.shape[1]):
        plus, minus, mid = fn(z + eps * dz[:, m]), fn(z - eps * dz[:, m]), fn(z)
        first.append((plus - minus) / (2 * eps))
        second.append((plus - 2 * mid + minus) / eps**2)
    return np.stack(first, 1), np.stack(second, 1)


def functional_decoder():
    """The conv decoder written with the functional API: one chain of layers."""
    z = keras.Input((D,), dtype="float64")
    h = keras.layers.Dense(2 * 2 * 3, activation="softplus", dtype="float64")(z)
    h = keras.layers.Reshape((2, 2, 3), dtype="float64")(h)
    h = keras.layers.Conv2DTranspose(2, 3, strides=2, padding="same", dtype="float64")(h)
    h = keras.layers.Activation("elu", dtype="float64")(h)
    return with_random_biases(keras.Model(z, keras.layers.Flatten(dtype="float64")(h)))


def branching_functional_decoder():
    """Two paths added together: not a chain, so not the layer-wise path."""
    z = keras.Input((D,), dtype="float64")
    a = keras.layers.Dense(5, activation="tanh", dtype="float64")(z)
    b = keras.layers.Dense(5, activation="elu", dtype="float64")(z)
    return with_random_biases(keras.Model(z, keras.layers.Add(dtype="float64")([a, b])))


DECODERS = [
    mlp_decoder, conv_decoder, conv1d_decoder, subclassed_layer_decoder,
    functional_decoder, branching_functional_decoder,
]


def test_layerwise_path_only_for_chains_of_known_affine_calls():
    for make_decoder in (mlp_decoder, conv_decoder, conv1d_decoder, functional_decoder):
        assert layer_chain(make_decoder()) is not None, make_decoder.__name__
    assert layer_chain(subclassed_layer_decoder()) is None
    assert layer_chain(branching_functional_decoder()) is None
    # A layer applied twice is not a chain of distinct layers either.
    z = keras.Input((D,))
    twice = keras.layers.Dense(D, activation="elu")
    assert layer_chain(keras.Model(z, twice(twice(z)))) is None
    # Nor is a model whose second layer skips the first one's output.
    first = keras.layers.Dense(3)(z)
    skip = keras.layers.Dense(3)(keras.layers.Dense(4)(z))
    assert layer_chain(keras.Model(z, keras.layers.Add()([first, skip]))) is None
    assert layer_chain(keras.Model(z, keras.layers.Dense(2)(keras.layers.Dense(5)(z)))) is not None


@pytest.mark.parametrize("make_decoder", DECODERS)
@pytest.mark.parametrize(
    "mode, method",
    [("function", "auto"), ("xla", "auto"), ("eager", "auto"), ("xla", "repeated")],
)
def test_terms_match_finite_differences(make_decoder, mode, method):
    if make_decoder is conv1d_decoder and mode == "xla" and method == "repeated":
        pytest.skip("TF 2.20 XLA cannot differentiate twice through the Pad of a causal Conv1D "
                    "(nested accumulators on the repeated path); the layer-wise path above covers it")
    decoder = make_decoder()
    rng = np.random.default_rng(1)
    z = tf.constant(rng.normal(size=(B, D)))
    dz = tf.constant(rng.normal(size=(B, M, D)))
    run = lambda z, dz: taylor_terms(decoder, z, dz, order=2, method=method)
    if mode != "eager":
        run = tf.function(run, jit_compile=mode == "xla")
    value, first, second = run(z, dz)
    fd_first, fd_second = central_differences(decoder, z, dz)
    np.testing.assert_allclose(value, decoder(z), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(first, fd_first, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(second, fd_second, rtol=1e-4, atol=1e-5)
    assert second.shape == (B, M) + tuple(decoder.output_shape[1:])


def test_order_one_returns_no_second_term_and_same_first():
    decoder = mlp_decoder()
    z = tf.random.normal((B, D), dtype="float64")
    dz = tf.random.normal((B, M, D), dtype="float64")
    value1, first1, second1 = taylor_terms(decoder, z, dz, order=1)
    _, first2, _ = taylor_terms(decoder, z, dz, order=2)
    assert second1 is None
    assert_close(first1, first2, rtol=1e-12)


def test_float32_decoder():
    decoder = keras.Sequential([keras.Input((D,)), keras.layers.Dense(4, activation="elu")])
    z = tf.random.normal((B, D))
    _, first, second = taylor_terms(decoder, z, tf.random.normal((B, M, D)), order=2)
    assert first.dtype == tf.float32 and second.dtype == tf.float32


@pytest.mark.parametrize("method", ["layerwise", "vectorized", "repeated"])
def test_gradients_flow_through_second_order_term(method):
    decoder = mlp_decoder()
    z = tf.random.normal((B, D), dtype="float64")
    dz = tf.random.normal((B, M, D), dtype="float64")
    second = lambda: taylor_terms(decoder, z, dz, order=2, method=method)[2]
    loss_fn = tf.function(lambda: tf.reduce_sum(second() ** 2))
    kernel = decoder.layers[0].kernel
    with tf.GradientTape() as tape:
        loss = loss_fn()
    grad = tape.gradient(loss, kernel)
    # Central differences of the loss in one weight.
    eps, (i, j) = 1e-6, (0, 3)
    original = kernel.numpy()
    values = []
    for sign in (1, -1):
        shifted = original.copy()
        shifted[i, j] += sign * eps
        kernel.assign(shifted)
        values.append(float(loss_fn()))
    kernel.assign(original)
    np.testing.assert_allclose(grad[i, j], (values[0] - values[1]) / (2 * eps), rtol=1e-5)


def deep_decoder():
    """Dense→σ→Dense chains, an Activation layer between two Dense layers, a linear output."""
    return with_random_biases(keras.Sequential(
        [
            keras.Input((D,), dtype="float64"),
            keras.layers.Dense(6, activation="elu", dtype="float64"),
            keras.layers.Dense(6, dtype="float64"),
            keras.layers.Activation("tanh", dtype="float64"),
            keras.layers.Dense(5, activation="silu", dtype="float64"),
            keras.layers.Dense(4, dtype="float64"),
        ]
    ))


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("make_decoder", [mlp_decoder, deep_decoder, conv1d_decoder])
def test_layerwise_gradients_equal_forward_mode_gradients(make_decoder, order):
    """The layer-wise path recomputes σ's streams in its gradient (`_recomputed_in_backward`):
    its gradients in every weight and in the primal and tangents equal those
    through vectorised nested ForwardAccumulators, in graph and eager mode."""
    keras.utils.set_random_seed(0)
    decoder = make_decoder()
    assert layer_chain(decoder) is not None
    z = tf.random.stateless_normal((B, D), seed=(1, 2), dtype="float64")
    dz = tf.random.stateless_normal((B, M, D), seed=(3, 4), dtype="float64")
    targets = tf.random.stateless_normal((B, M) + decoder.output_shape[1:], seed=(5, 6), dtype="float64")

    def gradients(method):
        with tf.GradientTape() as tape:
            tape.watch([z, dz])
            value, first, second = taylor_terms(decoder, z, dz, order, method)
            recon = value[:, None] + first + (0 if second is None else 0.5 * second)
            loss = tf.reduce_sum(tf.sin(targets - recon) ** 2)
        return tape.gradient(loss, decoder.trainable_variables + [z, dz])

    expected = tf.function(gradients)("vectorized")
    for run in (tf.function(gradients), gradients):
        if order == 2 and run is gradients:
            continue  # nested accumulators need a graph (keras_nrae.taylor.autodiff)
        for actual, wanted in zip(run("auto"), expected):
            np.testing.assert_allclose(actual, wanted, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("order", [0, 3])
def test_bad_order(order):
    decoder = mlp_decoder()
    with pytest.raises(ValueError, match="order must be 1"):
        taylor_terms(decoder, tf.zeros((1, D)), tf.zeros((1, 1, D)), order=order)


@pytest.mark.parametrize("activation", list(DERIVATIVES), ids=lambda f: f.__name__)
def test_closed_form_activation_derivatives_match_central_differences(activation):
    """(Reverse mode is no reference here: TF has no second derivative of softsign, and
    differentiates erfc with float32 constants.)"""
    rng = np.random.default_rng(0)
    a = rng.normal(scale=3.0, size=400)
    a = tf.constant(a[np.abs(a - np.round(a)) > 1e-2][:200])  # away from the kinks at 0 and 6
    value, slope, curvature = derivatives(activation, a, order=2)
    h = 1e-4
    plus, minus = activation(a + h).numpy(), activation(a - h).numpy()
    np.testing.assert_allclose(value, activation(a), rtol=1e-15)
    # atol: TF computes float64 GELU to about 1e-8 (its closed form here is exact).
    np.testing.assert_allclose(slope, (plus - minus) / (2 * h), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(curvature, (plus - 2 * value + minus) / h**2, rtol=1e-5, atol=1e-6)
    assert derivatives(activation, a, order=1)[2] is not None  # closed forms give both


# -- method= -----------------------------------------------------------------------------


def float32_decoder():
    keras.utils.set_random_seed(0)
    return with_random_biases(keras.Sequential([
        keras.Input((D,)), keras.layers.Dense(8, activation="elu"), keras.layers.Dense(5),
    ]))


def float32_codes():
    return tf.random.stateless_normal((B, D), seed=(1, 2)), tf.random.stateless_normal((B, M, D), seed=(3, 4))


@pytest.mark.parametrize("order", [1, 2])
def test_methods_agree_on_a_dense_elu_decoder(order):
    decoder = float32_decoder()
    z, dz = float32_codes()
    expected = taylor_terms(decoder, z, dz, order, method="layerwise")
    for method in ("auto", "vectorized", "repeated"):
        for actual, wanted in zip(taylor_terms(decoder, z, dz, order, method=method), expected):
            if order == 1 and wanted is None:
                assert actual is None, method
            else:
                assert_close(actual, wanted)


def test_unknown_method_lists_the_valid_ones():
    z, dz = float32_codes()
    with pytest.raises(ValueError, match="'auto', 'layerwise', 'vectorized', 'repeated'; got 'pfor'"):
        taylor_terms(float32_decoder(), z, dz, method="pfor")


@pytest.mark.parametrize("vectorize, method", [(True, "auto"), (False, "repeated")])
def test_vectorize_is_deprecated_and_means_its_method(vectorize, method):
    decoder = float32_decoder()
    z, dz = float32_codes()
    expected = taylor_terms(decoder, z, dz, order=2, method=method)
    calls = [
        lambda: taylor_terms(decoder, z, dz, order=2, vectorize=vectorize),
        lambda: taylor_terms(decoder, z, dz, 2, vectorize),  # the old positional argument
    ]
    for call in calls:
        with pytest.warns(DeprecationWarning, match=f"use method={method!r}"):
            actual = call()
        for a, b in zip(actual, expected):
            assert_close(a, b, rtol=1e-6)
    z_neighbors = z[:, None] + dz
    x_neighbors = tf.random.stateless_normal((B, M, 5), seed=(5, 6))
    loss = lambda **kwargs: neighborhood_reconstruction_loss(decoder, z, z_neighbors, x_neighbors, order=2, **kwargs)
    with pytest.warns(DeprecationWarning, match="vectorize= is deprecated"):
        deprecated = loss(vectorize=vectorize)
    assert_close(deprecated, loss(method=method), rtol=1e-6)


def test_method_and_vectorize_together_are_refused():
    z, dz = float32_codes()
    with pytest.raises(ValueError, match="method= only"):
        taylor_terms(float32_decoder(), z, dz, method="vectorized", vectorize=True)


@pytest.mark.parametrize("make_fn, named", [
    (lambda decoder: (lambda v: decoder(v)), "function '<lambda>' is not a keras.Model"),
    (lambda decoder: keras.layers.Lambda(decoder, name="wrapper"), "Lambda 'wrapper' is not a keras.Model"),
    (lambda decoder: keras.Sequential([keras.Input((D,)), keras.layers.Lambda(decoder, name="inner")]),
     r"layer 'inner' \(Lambda\) has no exact Taylor rule"),
    (lambda decoder: subclassed_layer_decoder(), r"layer '\w+' \(ShiftedDense\) overrides Dense.call"),
], ids=["function", "Lambda", "Lambda inside", "overridden call"])
def test_layerwise_method_names_what_is_not_a_chain(make_fn, named):
    z, dz = float32_codes()
    with pytest.raises(ValueError, match=f"method='layerwise' needs a decoder that is a chain of layers.*; {named}"):
        taylor_terms(make_fn(float32_decoder()), z, dz, method="layerwise")


def test_output_activation_split_needs_a_layerwise_method():
    decoder = float32_decoder()
    z, dz = float32_codes()
    with pytest.raises(ValueError, match="needs method 'auto' or 'layerwise', got 'repeated'"):
        taylor_expansion(decoder, z, dz, method="repeated", expand_output_activation=False)
    expected = taylor_expansion(decoder, z, dz, expand_output_activation=False)
    for actual, wanted in zip(taylor_expansion(decoder, z, dz, method="layerwise", expand_output_activation=False), expected):
        assert_close(actual, wanted, rtol=1e-6)
