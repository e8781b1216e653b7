"""NeighborhoodReconstructionModel: fit, evaluate, save/load and input errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nrae import NeighborhoodReconstructionModel, kernels
from keras_nrae.architectures import mlp_autoencoder
from tests._numerics import assert_close

N, D, LATENT, M = 64, 5, 2, 3


def data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(N, D)).astype("float32")
    neighbors = np.stack([x, np.roll(x, 1, 0), np.roll(x, -1, 0)], axis=1)
    return x, neighbors


def dataset(x, neighbors, batch_size=16):
    return tf.data.Dataset.from_tensor_slices({"x": x, "neighbors": neighbors}).batch(
        batch_size, drop_remainder=True
    )


def model(order=1, **kwargs):
    encoder, decoder = mlp_autoencoder((D,), LATENT, hidden=(16,), output_activation="sigmoid")
    return NeighborhoodReconstructionModel(encoder, decoder, order=order, kernel=kernels.Binary(2.0), **kwargs)


@pytest.mark.parametrize("order", [1, 2])
def test_one_epoch_lowers_the_loss(order):
    nrae = model(order)
    nrae.compile(keras.optimizers.Adam(1e-2))
    x, neighbors = data()
    before = float(nrae.neighborhood_loss(x, neighbors))
    nrae.fit(dataset(x, neighbors), epochs=1, verbose=0)
    assert float(nrae.neighborhood_loss(x, neighbors)) < before


def test_evaluate_reports_per_pixel_mse_and_the_loss():
    nrae = model()
    nrae.compile("adam")
    x, neighbors = data()
    result = nrae.evaluate(dataset(x, neighbors, batch_size=N), verbose=0, return_dict=True)
    expected_mse = np.mean((x - nrae(x).numpy()) ** 2)
    np.testing.assert_allclose(result["reconstruction_mse"], expected_mse, rtol=1e-5)
    np.testing.assert_allclose(result["loss"], float(nrae.neighborhood_loss(x, neighbors)), rtol=1e-5)


def test_plain_tensor_batches_train_as_an_autoencoder():
    nrae = model()
    nrae.compile(keras.optimizers.Adam(1e-2))
    x, _ = data()
    plain = lambda: np.mean(((x - nrae(x).numpy()) ** 2).sum(-1))
    before = plain()
    history = nrae.fit(tf.data.Dataset.from_tensor_slices(x).batch(N), epochs=3, verbose=0)
    # The first logged loss is the plain AE loss at the initial weights.
    np.testing.assert_allclose(history.history["loss"][0], before, rtol=1e-5)
    assert plain() < before


def test_encode_decode_accept_numpy_and_any_batch_size():
    nrae = model()
    x, _ = data()
    z = nrae.encode(x, batch_size=10)
    assert_close(z, nrae.encoder(x))
    np.testing.assert_allclose(nrae.decode(z.numpy(), batch_size=7), nrae(x), rtol=1e-5, atol=1e-6)
    assert nrae.encode(x[:1]).shape == (1, LATENT)


def test_save_load_round_trip_and_resume_training(tmp_path):
    nrae = model(order=1, expand="decoder")
    nrae.compile(keras.optimizers.Adam(1e-2))
    x, neighbors = data()
    nrae.fit(dataset(x, neighbors), epochs=1, verbose=0)
    path = str(tmp_path / "m.keras")
    nrae.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, NeighborhoodReconstructionModel)
    assert (loaded.order, loaded.kernel, loaded.expand) == (1, kernels.Binary(2.0), "decoder")
    np.testing.assert_array_equal(loaded.encode(x), nrae.encode(x))
    np.testing.assert_array_equal(loaded.decode(nrae.encode(x)), nrae.decode(nrae.encode(x)))
    before = float(loaded.neighborhood_loss(x, neighbors))
    loaded.fit(dataset(x, neighbors), epochs=2, verbose=0)
    assert float(loaded.neighborhood_loss(x, neighbors)) < before


def test_config_round_trip():
    nrae = model(order=2, expand="autoencoder")
    clone = NeighborhoodReconstructionModel.from_config(nrae.get_config())
    assert clone.get_config()["kernel"] == nrae.get_config()["kernel"]
    assert (clone.order, clone.expand) == (2, "autoencoder")


def test_order_two_runs_eagerly_and_matches_graph_mode():
    x, neighbors = data()
    losses = []
    for run_eagerly in (True, False):
        keras.utils.set_random_seed(0)
        nrae = model(order=2)
        nrae.compile(keras.optimizers.SGD(0.1), run_eagerly=run_eagerly)
        history = nrae.fit(dataset(x[:16], neighbors[:16]), epochs=1, verbose=0)
        losses.append(history.history["loss"][0])
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)


# -- bad input ----------------------------------------------------------------


@pytest.mark.parametrize("order", [0, 3, "2"])
def test_bad_order(order):
    with pytest.raises(ValueError, match="order must be 1"):
        model(order)


def test_bad_expand():
    with pytest.raises(ValueError, match="expand must be one of"):
        model(expand="encoder")


def test_decoder_output_must_match_input_shape():
    encoder, _ = mlp_autoencoder((D,), LATENT, hidden=(8,))
    _, decoder = mlp_autoencoder((D + 1,), LATENT, hidden=(8,))
    with pytest.raises(ValueError, match=r"decoder's output shape \(6,\) does not match the input shape \(5,\)"):
        NeighborhoodReconstructionModel(encoder, decoder)


def test_neighbors_with_wrong_trailing_shape():
    nrae = model()
    nrae.compile("adam")
    x, _ = data()
    bad = np.zeros((N, M, D + 1), "float32")
    with pytest.raises(ValueError, match=r"neighbors must be \(B, M, \*x.shape\[1:\]\) = \(B, M, 5\), got"):
        nrae.fit(dataset(x, bad), epochs=1, verbose=0)


def test_integer_data_is_refused():
    nrae = model()
    nrae.compile("adam")
    x = np.zeros((N, D), "uint8")
    with pytest.raises(TypeError, match="x must be floating point, got uint8. Scale integer images"):
        nrae.fit(dataset(x, np.zeros((N, M, D), "uint8")), epochs=1, verbose=0)


def test_compile_refuses_a_loss():
    with pytest.raises(ValueError, match="defines its own loss"):
        model().compile("adam", loss="mse")


def test_code_and_latent_shape_are_public_hooks():
    """A subclass whose encoder outputs more than the code overrides `code` and `latent_shape`."""
    from keras_nrae import Autoencoder

    class FirstHalf(NeighborhoodReconstructionModel):
        def latent_shape(self, encoder_output_shape):
            return (encoder_output_shape[0], encoder_output_shape[1] // 2)

        def code(self, encoder_output):
            return encoder_output[:, : encoder_output.shape[1] // 2]

    encoder, _ = mlp_autoencoder((D,), 2 * LATENT, hidden=(16,))
    _, decoder = mlp_autoencoder((D,), LATENT, hidden=(16,))
    nrae = FirstHalf(encoder, decoder)
    x, neighbors = data()
    assert nrae.encode(x).shape == (N, LATENT)
    assert np.isfinite(float(nrae.neighborhood_loss(x, neighbors)))
    # The old private names still answer for one release, through the public hooks.
    assert nrae._latent_shape((None, 2 * LATENT)) == (None, LATENT)
    assert_close(nrae._code(encoder(x)), nrae.code(encoder(x)))
    plain = Autoencoder(*mlp_autoencoder((D,), LATENT, hidden=(16,)))
    assert plain._latent_shape((None, LATENT)) == (None, LATENT)


def test_overriding_an_old_private_hook_warns_and_is_still_used():
    """`_code` / `_latent_shape`, the hooks' old names: a DeprecationWarning when the class is
    defined, and the override is what `code` / `latent_shape` do (no silent change)."""
    with pytest.warns(DeprecationWarning, match="overrides _code.*override code instead"):
        with pytest.warns(DeprecationWarning, match="overrides _latent_shape"):

            class OldStyle(NeighborhoodReconstructionModel):
                def _latent_shape(self, encoder_output_shape):
                    return (encoder_output_shape[0], encoder_output_shape[1] // 2)

                def _code(self, encoder_output):
                    return 2.0 * super()._code(encoder_output[:, : encoder_output.shape[1] // 2])

    assert OldStyle.code is OldStyle._code and OldStyle.latent_shape is OldStyle._latent_shape
    encoder, _ = mlp_autoencoder((D,), 2 * LATENT, hidden=(16,))
    _, decoder = mlp_autoencoder((D,), LATENT, hidden=(16,))
    nrae = OldStyle(encoder, decoder)
    x, neighbors = data()
    assert_close(nrae.encode(x), 2.0 * encoder(x)[:, :LATENT])  # super()._code: the inherited identity
    assert np.isfinite(float(nrae.neighborhood_loss(x, neighbors)))

    with pytest.warns(DeprecationWarning, match="overrides _code"):

        class OlderStyle(OldStyle):  # an old-style override of an old-style override
            def _code(self, encoder_output):
                return super()._code(encoder_output) + 1.0

    nrae = OlderStyle(encoder, decoder)
    assert_close(nrae.encode(x), 2.0 * encoder(x)[:, :LATENT] + 1.0)
