import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nrae import baselines
from keras_nrae.architectures import mlp_autoencoder
from keras_nrae.baselines import (
    Autoencoder,
    ContractiveAutoencoder,
    DenoisingAutoencoder,
    GeometryRegularizedAutoencoder,
    VariationalAutoencoder,
    WassersteinAutoencoder,
    encode_with_jacobian_norm,
    gaussian_kl,
    inverse_multiquadric_mmd,
    relaxed_weight,
    StructurePreservingAutoencoder,
    spectral_embedding,
    structure_preserving_penalty,
    target_embedding,
)
from keras_nrae.graph import NeighborGraph
from tests._numerics import assert_close

SHAPE, LATENT = (3, 4), 2


def _linear_pair(w_enc, w_dec):
    """Bias-free linear encoder x -> x W_e and decoder z -> z W_d, for closed forms."""
    encoder = keras.Sequential([keras.Input((w_enc.shape[0],)), keras.layers.Dense(w_enc.shape[1], use_bias=False)])
    decoder = keras.Sequential([keras.Input((w_dec.shape[0],)), keras.layers.Dense(w_dec.shape[1], use_bias=False)])
    encoder.layers[0].set_weights([w_enc])
    decoder.layers[0].set_weights([w_dec])
    return encoder, decoder


def test_jacobian_norm_matches_central_differences():
    keras.utils.set_random_seed(0)
    encoder, _ = mlp_autoencoder(SHAPE, LATENT, hidden=(6,), activation="tanh", dtype="float64")
    x = np.random.default_rng(0).normal(size=(5, *SHAPE))
    _, norms = encode_with_jacobian_norm(encoder, tf.constant(x), training=False)
    eps, expected = 1e-6, np.zeros(len(x))
    for b in range(len(x)):
        for i in np.ndindex(*SHAPE):
            step = np.zeros((1, *SHAPE))
            step[(0, *i)] = eps
            column = (encoder(x[b : b + 1] + step) - encoder(x[b : b + 1] - step)) / (2 * eps)
            expected[b] += np.sum(np.asarray(column) ** 2)
    np.testing.assert_allclose(norms, expected, rtol=1e-6)


@pytest.mark.parametrize("functional", [False, True])
def test_jacobian_norm_and_its_gradient_match_the_full_jacobian(functional):
    # Sequential MLPs take the Gram-matrix form, functional ones the full
    # Jacobian: both must give ‖∂g/∂x‖² and its weight gradient exactly.
    keras.utils.set_random_seed(1)
    encoder, _ = mlp_autoencoder(SHAPE, LATENT, hidden=(5, 7), activation="elu", dtype="float64")
    if functional:
        inputs = keras.Input(SHAPE, dtype="float64")
        encoder = keras.Model(inputs, encoder(inputs))
    x = tf.constant(np.random.default_rng(1).normal(size=(4, *SHAPE)))
    with tf.GradientTape() as tape:
        z, norms = encode_with_jacobian_norm(encoder, x)
        total = tf.reduce_sum(norms)
    gradients = tape.gradient(total, encoder.trainable_variables)
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            inner.watch(x)
            expected_z = encoder(x)
        jacobian = inner.batch_jacobian(expected_z, x)
        expected_norms = tf.reduce_sum(jacobian**2, axis=[1, 2, 3])
        expected_total = tf.reduce_sum(expected_norms)
    expected_gradients = outer.gradient(expected_total, encoder.trainable_variables)
    assert_close(z, expected_z, rtol=1e-12)
    np.testing.assert_allclose(norms, expected_norms, rtol=1e-10)
    for got, want in zip(gradients, expected_gradients):  # None: the code's bias, which J ignores
        assert (got is None) == (want is None)
        if want is not None:
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_jacobian_norm_keeps_the_first_layers_activity_regularizer():
    # The Gram-matrix form bypasses the first Dense's call: a layer whose call
    # adds a loss must take the full Jacobian, which calls it.
    encoder = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activity_regularizer="l2"), keras.layers.Dense(2)])
    x = tf.constant(np.random.default_rng(2).normal(size=(5, 4)), tf.float32)
    kernel, bias = encoder.layers[0].get_weights()
    expected = 0.01 * np.sum((x.numpy() @ kernel + bias) ** 2) / len(x)
    encode_with_jacobian_norm(encoder, x)
    assert len(encoder.losses) == 1 and float(encoder.losses[0]) == pytest.approx(expected, rel=1e-5)


def test_contractive_loss_closed_form_for_linear_maps():
    # Linear g(x) = x W_e has Jacobian W_eᵀ for every x: penalty ‖W_e‖_F².
    rng = np.random.default_rng(1)
    w_enc, w_dec = rng.normal(size=(4, 2)), rng.normal(size=(2, 4))
    model = ContractiveAutoencoder(*_linear_pair(w_enc, w_dec), weight=0.3)
    x = rng.normal(size=(6, 4)).astype("float32")
    expected = np.mean(np.sum((x - x @ w_enc @ w_dec) ** 2, 1)) + 0.3 * np.sum(w_enc**2)
    assert float(model._plain_loss(tf.constant(x))[0]) == pytest.approx(expected, rel=1e-5)


def test_gaussian_kl_matches_monte_carlo():
    rng = np.random.default_rng(2)
    mean, log_var = rng.normal(size=(3, 2)), rng.normal(scale=0.5, size=(3, 2))
    std = np.exp(0.5 * log_var)
    z = mean + std * rng.normal(size=(400_000, 3, 2))
    log_q = -0.5 * (((z - mean) / std) ** 2 + log_var)  # the 2π terms cancel
    log_p = -0.5 * z**2
    monte_carlo = np.mean(np.sum(log_q - log_p, axis=-1), axis=0)
    np.testing.assert_allclose(gaussian_kl(mean, log_var), monte_carlo, atol=0.01)


def test_inverse_multiquadric_mmd_matches_double_loop():
    rng = np.random.default_rng(3)
    a, b, scale = rng.normal(size=(7, 3)), rng.normal(loc=0.5, size=(7, 3)), 0.8
    c = 2 * 3 * scale**2
    k = lambda u, v: c / (c + np.sum((u - v) ** 2))
    n = len(a)
    within = sum(k(a[i], a[j]) + k(b[i], b[j]) for i in range(n) for j in range(n) if i != j)
    across = sum(k(a[i], b[j]) for i in range(n) for j in range(n))
    expected = within / (n * (n - 1)) - 2 * across / n**2
    assert float(inverse_multiquadric_mmd(a, b, scale)) == pytest.approx(expected, rel=1e-10)


def test_denoising_loss_expectation_closed_form():
    # For linear maps, E‖x − (x + σε) W‖² = ‖x − x W‖² + σ² ‖W‖_F² with W = W_e W_d.
    rng = np.random.default_rng(4)
    w_enc, w_dec = rng.normal(size=(4, 2)), rng.normal(size=(2, 4))
    model = DenoisingAutoencoder(*_linear_pair(w_enc, w_dec), sigma=0.5, seed=0)
    x = np.tile(rng.normal(size=(2, 4)), (20_000, 1)).astype("float32")
    w = w_enc @ w_dec
    expected = np.mean(np.sum((x - x @ w) ** 2, 1)) + 0.25 * np.sum(w**2)
    assert float(model._plain_loss(tf.constant(x))[0]) == pytest.approx(expected, rel=0.02)


def test_vae_loss_with_zero_variance_posterior_is_reconstruction_plus_kl():
    # log-variance −30: z = μ up to e^{-15}, so the loss is the deterministic
    # ‖x − f(μ)‖² plus β·KL, the KL by the numpy formula.
    rng = np.random.default_rng(5)
    w_mean, w_dec = rng.normal(size=(4, 2)), rng.normal(size=(2, 4))
    encoder = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4)])
    encoder.layers[0].set_weights([np.concatenate([w_mean, np.zeros((4, 2))], 1), np.r_[0, 0, -30, -30.0]])
    decoder = _linear_pair(w_mean, w_dec)[1]
    model = VariationalAutoencoder(encoder, decoder, beta=2.0, seed=0)
    x = rng.normal(size=(5, 4)).astype("float32")
    mean = x @ w_mean
    kl = 0.5 * np.sum(np.exp(-30.0) + mean**2 - 1 + 30.0, axis=1)
    expected = np.mean(np.sum((x - mean @ w_dec) ** 2, 1) + 2.0 * kl)
    assert float(model._plain_loss(tf.constant(x))[0]) == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(model.encode(x), mean, rtol=1e-5, atol=1e-6)


def _models():
    def pair(latent=LATENT):
        return mlp_autoencoder(SHAPE, latent, hidden=(8,), output_activation="sigmoid")

    vae_encoder = pair(2 * LATENT)[0]
    return [
        Autoencoder(*pair()),
        DenoisingAutoencoder(*pair(), sigma=0.2, seed=1),
        ContractiveAutoencoder(*pair(), weight=0.05),
        VariationalAutoencoder(vae_encoder, pair()[1], beta=0.5, seed=1),
        WassersteinAutoencoder(*pair(), weight=3.0, scale=2.0, seed=1),
    ]


def test_every_baseline_fits_evaluates_and_round_trips(tmp_path):
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(6).uniform(size=(32, *SHAPE)).astype("float32")
    neighbors = np.stack([x, x[::-1]], axis=1)
    dict_ds = tf.data.Dataset.from_tensor_slices({"x": x, "neighbors": neighbors}).batch(8)
    for model in _models():
        model.compile(keras.optimizers.Adam(1e-2))
        history = model.fit(x, batch_size=8, epochs=2, verbose=0).history["loss"]
        history += model.fit(dict_ds, epochs=1, verbose=0).history["loss"]
        assert np.all(np.isfinite(history)), type(model).__name__
        result = model.evaluate(dict_ds, verbose=0, return_dict=True)
        x_hat = np.asarray(model(x))
        assert result["reconstruction_mse"] == pytest.approx(np.mean((x - x_hat) ** 2), rel=1e-5)
        assert model.encode(x).shape == (32, LATENT)
        assert model.decode(model.encode(x)).shape == (32, *SHAPE)
        path = tmp_path / f"{type(model).__name__}.keras"
        model.save(path)
        loaded = keras.saving.load_model(path)
        assert type(loaded) is type(model)
        hyperparameters = lambda m: {k: v for k, v in m.get_config().items() if k not in ("encoder", "decoder")}
        assert hyperparameters(loaded) == hyperparameters(model)
        np.testing.assert_allclose(loaded(x), x_hat, atol=1e-6)


def test_bad_arguments_fail_early():
    encoder, decoder = mlp_autoencoder(SHAPE, 3, hidden=(8,))
    with pytest.raises(ValueError, match="encoder must output"):
        VariationalAutoencoder(encoder, decoder)
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        DenoisingAutoencoder(*mlp_autoencoder(SHAPE, 3, hidden=(8,)), sigma=-1.0)
    with pytest.raises(ValueError, match="scale must be > 0"):
        WassersteinAutoencoder(*mlp_autoencoder(SHAPE, 3, hidden=(8,)), scale=0.0)
    with pytest.raises(ValueError, match="defines its own loss"):
        Autoencoder(*mlp_autoencoder(SHAPE, 3, hidden=(8,))).compile("adam", loss="mse")


# -- SPAE --------------------------------------------------------------------------


def brute_force_spae(x, z, scaling, epsilon=1e-12):
    """R1 / R2 by loops: log r_ij over j ≠ i, unbiased variances (as torch.var)."""
    flat = x.reshape(len(x), -1)
    rows = [
        [np.log((np.linalg.norm(z[i] - z[j]) + epsilon) / (np.linalg.norm(flat[i] - flat[j]) + epsilon))
         for j in range(len(x)) if j != i]
        for i in range(len(x))
    ]
    if scaling == "point":
        return np.mean([np.var(row, ddof=1) for row in rows])
    return np.var(np.ravel(rows), ddof=1)


@pytest.mark.parametrize("scaling", ["point", "global"])
def test_spae_penalty_matches_brute_force(scaling):
    rng = np.random.default_rng(13)
    x, z = rng.normal(size=(7, *SHAPE)), rng.normal(size=(7, 2))
    penalty = structure_preserving_penalty(tf.constant(x), tf.constant(z), scaling)
    assert float(penalty) == pytest.approx(brute_force_spae(x, z, scaling), rel=1e-10)


def test_spae_penalty_is_zero_for_scaled_distances_and_finite_on_duplicates():
    rng = np.random.default_rng(14)
    x = rng.normal(size=(6, 4))
    z = 0.3 * x @ np.linalg.qr(rng.normal(size=(4, 4)))[0]  # rotated and scaled: d_Z = 0.3 d_X
    for scaling in ("point", "global"):
        assert float(structure_preserving_penalty(tf.constant(x), tf.constant(z), scaling)) == pytest.approx(0, abs=1e-12)
    x[1], z[1] = x[0], z[0]  # a duplicate point, encoded to the same code
    z = tf.Variable(z)
    with tf.GradientTape() as tape:
        penalty = structure_preserving_penalty(tf.constant(x), z)
    assert np.isfinite(float(penalty)) and np.all(np.isfinite(tape.gradient(penalty, z).numpy()))
    with pytest.raises(ValueError, match='"point" \\(R1\\) or "global"'):
        structure_preserving_penalty(tf.constant(x), z, "local")


def test_spae_loss_adds_the_weighted_penalty_and_survives_saving(tmp_path):
    rng = np.random.default_rng(15)
    w_enc, w_dec = rng.normal(size=(4, 2)), rng.normal(size=(2, 4))
    model = StructurePreservingAutoencoder(*_linear_pair(w_enc, w_dec), weight=0.4, scaling="global")
    x = rng.normal(size=(6, 4)).astype("float32")
    z = x @ w_enc
    expected = np.mean(np.sum((x - z @ w_dec) ** 2, 1)) + 0.4 * brute_force_spae(x, z, "global")
    assert float(model._plain_loss(tf.constant(x))[0]) == pytest.approx(expected, rel=1e-4)
    model.compile(keras.optimizers.Adam(1e-3))
    model.fit(x, batch_size=6, epochs=1, verbose=0)
    model.save(tmp_path / "spae.keras")
    loaded = keras.saving.load_model(tmp_path / "spae.keras")
    assert (loaded.weight, loaded.scaling, loaded.epsilon) == (0.4, "global", 1e-12)
    with pytest.raises(ValueError, match="weight must be >= 0"):
        StructurePreservingAutoencoder(*_linear_pair(w_enc, w_dec), weight=-1.0)


# -- GRAE --------------------------------------------------------------------------


def test_grae_loss_matches_numpy_for_linear_maps():
    rng = np.random.default_rng(7)
    w_enc, w_dec = rng.normal(size=(4, 2)), rng.normal(size=(2, 4))
    model = GeometryRegularizedAutoencoder(*_linear_pair(w_enc, w_dec), weight=0.7)
    x = rng.normal(size=(6, 4)).astype("float32")
    target = rng.normal(size=(6, 2)).astype("float32")
    z = x @ w_enc
    expected = np.mean(np.sum((x - z @ w_dec) ** 2, 1)) + 0.7 * np.mean(np.sum((z - target) ** 2, 1))
    loss = model._training_loss(tf.constant(x), None, tf.constant(target))[0]
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_relaxed_weight_is_the_authors_sigmoid():
    # Their end_epoch(epoch), 1-based: lam = -lam0 e^{0.2 (epoch - E/2)} / (1 + e^{...}) + lam0.
    lam0, epochs = 100.0, 200
    for epoch in range(1, epochs):
        a = np.exp((epoch - epochs / 2) * 0.2)
        assert relaxed_weight(lam0, epoch, epochs) == pytest.approx(-lam0 * a / (1 + a) + lam0, rel=1e-12)
    assert relaxed_weight(lam0, 0, epochs) == lam0
    assert relaxed_weight(lam0, 100, epochs) == 50.0 and relaxed_weight(lam0, 150, epochs) < 1e-2


def test_relax_schedule_sets_each_epoch_resumes_and_saves(tmp_path):
    x = np.random.default_rng(11).uniform(size=(16, *SHAPE)).astype("float32")
    target = np.random.default_rng(12).normal(size=(16, LATENT)).astype("float32")
    model = GeometryRegularizedAutoencoder(*mlp_autoencoder(SHAPE, LATENT, hidden=(8,)), weight=3.0, relax_epochs=6)
    model.compile(keras.optimizers.Adam(1e-3))
    seen = []
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(float(model.regression_weight)))
    model.fit(x, target, batch_size=8, epochs=3, verbose=0, callbacks=[record])
    model.fit(x, target, batch_size=8, initial_epoch=3, epochs=6, verbose=0, callbacks=[record])  # resumed
    assert seen == pytest.approx([relaxed_weight(3.0, e, 6) for e in range(6)], rel=1e-6)
    # The step reads the variable: with λ = 0 the loss is the plain AE's.
    model.regression_weight.assign(0.0)
    plain = np.mean(np.sum((x - model(x).numpy()) ** 2, axis=(1, 2)))
    assert float(model._training_loss(tf.constant(x), None, tf.constant(target))[0]) == pytest.approx(plain, rel=1e-5)
    model.save(tmp_path / "relaxed.keras")
    loaded = keras.saving.load_model(tmp_path / "relaxed.keras")
    assert (loaded.weight, loaded.relax_epochs) == (3.0, 6)
    with pytest.raises(ValueError, match="relax_epochs must be an integer >= 1"):
        GeometryRegularizedAutoencoder(*mlp_autoencoder(SHAPE, LATENT, hidden=(8,)), relax_epochs=0)


def test_spectral_embedding_matches_dense_eigendecomposition():
    x = np.random.default_rng(8).normal(size=(80, 3)).astype("float32")
    graph = NeighborGraph.build(x, k=6, method="exact", verbose=0)
    adjacency = np.zeros((80, 80))
    adjacency[np.repeat(np.arange(80), 6), graph.indices.ravel()] = 1
    adjacency = np.maximum(adjacency, adjacency.T)
    degree = adjacency.sum(1)
    values, vectors = np.linalg.eigh(adjacency / np.sqrt(np.outer(degree, degree)))
    expected = vectors[:, np.argsort(values)[::-1][1:4]] / np.sqrt(degree)[:, None]
    embedding = spectral_embedding(graph, 3)
    for got, want in zip(embedding.T, expected.T):  # eigenvectors up to sign
        cosine = got @ want / np.linalg.norm(got) / np.linalg.norm(want)
        assert abs(cosine) == pytest.approx(1.0, abs=1e-6)


def test_target_embedding_is_z_scored_and_grae_fits_on_it(tmp_path):
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(9).uniform(size=(40, *SHAPE)).astype("float32")
    target = target_embedding(x, LATENT, k=5)
    assert target.shape == (40, LATENT) and target.dtype == np.float32
    np.testing.assert_allclose(target.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(target.std(0), 1, atol=1e-5)
    model = GeometryRegularizedAutoencoder(*mlp_autoencoder(SHAPE, LATENT, hidden=(8,)), weight=2.0)
    model.compile(keras.optimizers.Adam(1e-2))
    history = model.fit(x, target, batch_size=8, epochs=2, verbose=0).history["loss"]
    assert np.all(np.isfinite(history)) and history[-1] < history[0]
    model.save(tmp_path / "grae.keras")
    loaded = keras.saving.load_model(tmp_path / "grae.keras")
    assert loaded.weight == 2.0
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)
    with pytest.raises(ValueError, match="fit\\(x, targets\\)"):
        model.fit(x, batch_size=8, epochs=1, verbose=0)
    with pytest.raises(ValueError, match='"spectral" or "phate"'):
        target_embedding(x, LATENT, method="umap")


def test_phate_target_embedding():
    pytest.importorskip("phate")
    x = np.random.default_rng(10).uniform(size=(60, 5)).astype("float32")
    target = target_embedding(x, 2, method="phate", k=5)
    assert target.shape == (60, 2)
    np.testing.assert_allclose(target.std(0), 1, atol=1e-5)


def test_target_embedding_rtol_leaves_near_empty_columns_near_zero(monkeypatch):
    # Columns 2, 3 hold 1e-4 of the others' std: z-scored (the authors' default)
    # they weigh as much as the geometry; with rtol they stay centred / max std.
    rng = np.random.default_rng(11)
    geometry = rng.standard_normal((50, 2)) * [3.0, 1.0]
    raw = np.hstack([geometry, 1e-4 * rng.standard_normal((50, 2))]) + 5.0
    monkeypatch.setattr(baselines, "spectral_embedding", lambda graph, dim, seed=0: raw)
    x = rng.uniform(size=(50, 3)).astype("float32")
    target = target_embedding(x, 4, k=5, rtol=1e-3)
    centred = raw - raw.mean(0)
    np.testing.assert_allclose(target[:, :2], centred[:, :2] / centred[:, :2].std(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(target[:, 2:], centred[:, 2:] / centred[:, 0].std(), rtol=1e-5, atol=1e-10)
    assert np.abs(target[:, 2:]).max() < 1e-3
    with pytest.raises(ValueError, match="rtol"):
        target_embedding(x, 4, k=5, rtol=-1.0)
    authors = target_embedding(x, 4, k=5)
    np.testing.assert_allclose(authors.std(0), 1, atol=1e-5)
    np.testing.assert_allclose(authors[:, 2:], centred[:, 2:] / centred[:, 2:].std(0), rtol=1e-4, atol=1e-5)
