"""keras_nrae.losses.neighborhood_reconstruction_loss checked against the model,
a brute-force float64 loop with finite-difference derivatives, and autodiff."""

import importlib.util
import itertools
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nrae import kernels
from keras_nrae.architectures import mlp_autoencoder
from keras_nrae.losses import neighborhood_reconstruction_loss
from keras_nrae.model import NeighborhoodReconstructionModel
from tests._numerics import assert_close

SHAPE, LATENT, BATCH, SLOTS = (3,), 2, 4, 3
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _autoencoder(dtype="float32", activation="tanh"):
    keras.utils.set_random_seed(0)
    return mlp_autoencoder(SHAPE, LATENT, hidden=(6,), activation=activation, dtype=dtype)


def _batch(dtype="float32", center_first=False, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(BATCH, *SHAPE)).astype(dtype)
    neighbors = (x[:, None] + 0.5 * rng.normal(size=(BATCH, SLOTS, *SHAPE))).astype(dtype)
    if center_first:
        neighbors[:, 0] = x
    return x, neighbors


def _codes(encoder, x, neighbors):
    """z (B, d), z_neighbors (B, M, d) by encoding every example on its own."""
    z_neighbors = np.stack([encoder(neighbors[:, m]).numpy() for m in range(SLOTS)], axis=1)
    return encoder(x).numpy(), z_neighbors


@pytest.mark.parametrize("order,center_first", itertools.product((1, 2), (False, True)))
def test_equals_model_neighborhood_loss(order, center_first):
    encoder, decoder = _autoencoder()
    model = NeighborhoodReconstructionModel(
        encoder, decoder, order=order, kernel=kernels.Gaussian(bandwidth=1.5),
        include_center=center_first,
    )
    x, neighbors = _batch(center_first=center_first)
    z, z_neighbors = _codes(encoder, x, neighbors)
    weights = np.exp(-((neighbors - x[:, None]) ** 2).sum(-1) / 1.5**2)

    loss = neighborhood_reconstruction_loss(
        decoder, z, z_neighbors, neighbors, weights, order, center_first=center_first
    )

    expected = model.neighborhood_loss(x, neighbors)
    np.testing.assert_allclose(loss.numpy(), expected.numpy(), rtol=1e-5)


def test_weights_none_equals_all_ones():
    encoder, decoder = _autoencoder()
    x, neighbors = _batch()
    z, z_neighbors = _codes(encoder, x, neighbors)
    ones = np.ones((BATCH, SLOTS), "float32")
    a = neighborhood_reconstruction_loss(decoder, z, z_neighbors, neighbors, None)
    b = neighborhood_reconstruction_loss(decoder, z, z_neighbors, neighbors, ones)
    assert_close(a.numpy(), b.numpy(), rtol=1e-6)


def _finite_difference_taylor(f, z, h=1e-4):
    """f(z) (D,), Jacobian (D, d) and Hessian (D, d, d) by central differences."""
    d = z.shape[0]
    basis = np.eye(d) * h
    jac = np.stack([(f(z + basis[i]) - f(z - basis[i])) / (2 * h) for i in range(d)], -1)
    hess = np.empty(jac.shape + (d,))
    for i, j in itertools.product(range(d), repeat=2):
        hess[:, i, j] = (
            f(z + basis[i] + basis[j]) - f(z + basis[i] - basis[j])
            - f(z - basis[i] + basis[j]) + f(z - basis[i] - basis[j])
        ) / (4 * h * h)
    return f(z), jac, hess


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("as_callable", [False, True], ids=["keras_decoder", "callable_decoder"])
def test_brute_force_float64_loop(order, as_callable):
    encoder, decoder = _autoencoder(dtype="float64")
    x, neighbors = _batch(dtype="float64")
    z, z_neighbors = _codes(encoder, x, neighbors)
    weights = np.random.default_rng(1).uniform(0.1, 2.0, size=(BATCH, SLOTS))
    weights[2] = 0.0  # a centre with all weights 0 contributes 0

    f = lambda v: decoder(v[None]).numpy()[0].reshape(-1)
    per_centre = []
    for b in range(BATCH):
        value, jac, hess = _finite_difference_taylor(f, z[b])
        errors = []
        for m in range(SLOTS):
            dz = z_neighbors[b, m] - z[b]
            recon = value + jac @ dz
            if order == 2:
                recon = recon + 0.5 * np.einsum("kij,i,j->k", hess, dz, dz)
            errors.append(((neighbors[b, m].reshape(-1) - recon) ** 2).sum())
        total = weights[b].sum()
        per_centre.append(0.0 if total == 0 else (weights[b] * errors).sum() / total)
    expected = np.mean(per_centre)

    fn = (lambda v: decoder(v)) if as_callable else decoder
    loss = neighborhood_reconstruction_loss(fn, z, z_neighbors, neighbors, weights, order)

    assert loss.dtype == tf.float64
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-6)


def test_gradients_flow_to_encoder_and_decoder():
    encoder, decoder = _autoencoder()
    x, neighbors = _batch()
    with tf.GradientTape() as tape:
        z = encoder(x)
        z_neighbors = tf.reshape(encoder(neighbors.reshape(-1, *SHAPE)), (BATCH, SLOTS, LATENT))
        loss = neighborhood_reconstruction_loss(decoder, z, z_neighbors, neighbors, order=2)
    variables = encoder.trainable_variables + decoder.trainable_variables
    for v, g in zip(variables, tape.gradient(loss, variables)):
        assert g is not None and np.abs(g.numpy()).max() > 0, v.path


@pytest.mark.parametrize("order", [1, 2])
def test_code_gradients_match_finite_differences(order):
    """Directional derivatives of the loss in (z, z_neighbors), float64: reverse
    mode over the forward-mode Taylor terms against central differences."""
    _, decoder = _autoencoder(dtype="float64")
    rng = np.random.default_rng(2)
    z = tf.constant(rng.normal(size=(BATCH, LATENT)))
    z_neighbors = tf.constant(z[:, None] + 0.3 * rng.normal(size=(BATCH, SLOTS, LATENT)))
    _, neighbors = _batch(dtype="float64")
    loss = tf.function(
        lambda a, b: neighborhood_reconstruction_loss(decoder, a, b, neighbors, order=order)
    )

    @tf.function
    def gradients(a, b):
        with tf.GradientTape() as tape:
            tape.watch([a, b])
            value = loss(a, b)
        return tape.gradient(value, [a, b])

    grad_z, grad_zn = gradients(z, z_neighbors)

    h = 1e-5
    for _ in range(3):
        v, vn = rng.normal(size=z.shape), rng.normal(size=z_neighbors.shape)
        fd = (loss(z + h * v, z_neighbors + h * vn) - loss(z - h * v, z_neighbors - h * vn)) / (2 * h)
        analytic = np.sum(grad_z.numpy() * v) + np.sum(grad_zn.numpy() * vn)
        np.testing.assert_allclose(analytic, fd.numpy(), rtol=1e-6)


@pytest.mark.parametrize(
    "z_shape,zn_shape,xn_shape,message",
    [
        ((BATCH, LATENT), (BATCH, SLOTS, LATENT), (BATCH, SLOTS - 1, *SHAPE), "Neighbour count mismatch"),
        ((BATCH, LATENT), (BATCH, SLOTS, LATENT + 1), (BATCH, SLOTS, *SHAPE), "Latent size mismatch"),
        ((BATCH, LATENT), (BATCH, SLOTS, LATENT), (BATCH, SLOTS, 5), "does not match the data's per-example shape"),
    ],
)
def test_shape_errors_are_clear(z_shape, zn_shape, xn_shape, message):
    _, decoder = _autoencoder()
    with pytest.raises(ValueError, match=message):
        neighborhood_reconstruction_loss(
            decoder, tf.zeros(z_shape), tf.zeros(zn_shape), tf.zeros(xn_shape)
        )


@pytest.mark.parametrize(
    "order,jit",
    [
        (1, False),
        (1, True),
        (2, False),
        (2, True),
    ],
)
def test_same_value_under_tf_function_and_xla(order, jit):
    encoder, decoder = _autoencoder()
    x, neighbors = _batch(center_first=True)
    z, z_neighbors = _codes(encoder, x, neighbors)
    weights = np.random.default_rng(3).uniform(size=(BATCH, SLOTS)).astype("float32")
    as_function = lambda v: decoder(v)  # any callable: the general (vectorized_map) path
    loss = lambda *a: neighborhood_reconstruction_loss(
        as_function, *a, order=order, center_first=True
    )
    eager = loss(z, z_neighbors, neighbors, weights)
    traced = tf.function(loss, jit_compile=jit)(z, z_neighbors, neighbors, weights)
    assert_close(traced.numpy(), eager.numpy(), rtol=1e-5)


def test_runs_in_a_distribute_replica_context():
    """Loss and decoder gradients from strategy.run equal the plain computation."""
    encoder, decoder = _autoencoder()
    x, neighbors = _batch(center_first=True)
    z, z_neighbors = _codes(encoder, x, neighbors)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])

    def loss_and_gradients():
        with tf.GradientTape() as tape:
            loss = neighborhood_reconstruction_loss(
                decoder, z, z_neighbors, neighbors, center_first=True
            )
        return loss, tape.gradient(loss, decoder.trainable_variables)

    replica_loss, replica_grads = tf.function(lambda: strategy.run(loss_and_gradients))()
    loss, grads = loss_and_gradients()
    np.testing.assert_allclose(replica_loss.numpy(), loss.numpy(), rtol=1e-6)
    for a, b in zip(replica_grads, grads):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-7)


def _load_example(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_custom_training_loop_example_smoke():
    losses = _load_example("custom_training_loop").main(["--smoke"])
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
