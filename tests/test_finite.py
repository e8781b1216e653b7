"""fit stops with NonFiniteError on the first NaN/Inf loss, gradient or weight, and says where."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nrae import Autoencoder, NeighborhoodReconstructionModel
from keras_nrae.architectures import mlp_autoencoder
from keras_nrae.finite import NonFiniteError

N, D, BATCH = 32, 4, 8  # 4 steps an epoch


def batches(poisoned_step=None):
    """Fixed, unshuffled {"x", "neighbors"} batches; one NaN pixel in the given 1-based step."""
    x = np.random.default_rng(0).uniform(size=(N, D)).astype("float32")
    neighbors = np.stack([x, np.roll(x, 1, 0)], axis=1)
    if poisoned_step is not None:
        neighbors[(poisoned_step - 1) * BATCH, 1, 0] = np.nan
    return tf.data.Dataset.from_tensor_slices({"x": x, "neighbors": neighbors}).batch(BATCH)


def nrae(optimizer=None, **compile_args):
    model = NeighborhoodReconstructionModel(*mlp_autoencoder((D,), 2, hidden=(8,)))
    model.compile(optimizer or keras.optimizers.Adam(1e-3), **compile_args)
    return model


def test_nan_in_a_neighbour_batch_names_epoch_step_and_loss():
    model = nrae()
    model.fit(batches(), epochs=1, verbose=0)  # a clean epoch first: epoch 2 is the bad one
    with pytest.raises(NonFiniteError, match=r"the loss and a gradient became NaN or Inf at epoch 1, step 3\. Non-finite weights now"):
        model.fit(batches(poisoned_step=3), epochs=2, verbose=0)


def test_later_epoch_is_named_and_counters_reset_between_fits():
    clean, bad = batches(), batches(poisoned_step=2)
    model = nrae(jit_compile=True)  # the check compiles under XLA
    model.fit(clean, epochs=2, verbose=0)
    with pytest.raises(NonFiniteError, match=r"epoch 2, step 2\b"):
        model.fit(clean.concatenate(bad).take(4 + 2).repeat(), epochs=2, steps_per_epoch=4, verbose=0)


def test_diverging_learning_rate_names_the_non_finite_weights():
    model = Autoencoder(*mlp_autoencoder((D,), 2, hidden=(8,)))
    model.compile(keras.optimizers.SGD(1e30))
    x = np.random.default_rng(1).uniform(size=(N, D)).astype("float32")
    with pytest.raises(NonFiniteError, match="Non-finite weights now") as raised:
        model.fit(x, batch_size=BATCH, epochs=1, verbose=0)
    non_finite = [v.path for v in model.trainable_variables if not np.isfinite(v.numpy()).all()]
    assert non_finite and non_finite[0] in str(raised.value)


def test_a_last_update_that_overflows_the_weights_is_caught_at_the_end():
    # One step: loss and gradients finite, the update (lr 1e38) overflows to Inf.
    model = Autoencoder(*mlp_autoencoder((D,), 2, hidden=(8,)))
    model.compile(keras.optimizers.SGD(1e38))
    x = 100 * np.random.default_rng(1).uniform(size=(BATCH, D)).astype("float32")  # gradients > 10
    with pytest.raises(NonFiniteError, match=r"a weight became NaN or Inf in the last step \(epoch 1, step 1\)"):
        model.fit(x, batch_size=BATCH, epochs=1, verbose=0)


class SqrtOfRelu(keras.layers.Layer):
    """sqrt(relu(h)): finite (zero) where h < 0, but its gradient there is inf · 0 = NaN."""

    def call(self, h):
        return tf.sqrt(tf.nn.relu(h))


def test_a_non_finite_gradient_with_a_finite_loss_is_named():
    inputs = keras.Input((D,))
    encoder = keras.Model(inputs, SqrtOfRelu()(keras.layers.Dense(2, bias_initializer=keras.initializers.Constant(-10.0))(inputs)))
    _, decoder = mlp_autoencoder((D,), 2, hidden=(8,))
    model = Autoencoder(encoder, decoder)
    model.compile(keras.optimizers.SGD(1e-3))
    x = np.random.default_rng(2).uniform(size=(N, D)).astype("float32")
    assert np.isfinite(model.evaluate(x, verbose=0, return_dict=True)["loss"])
    with pytest.raises(NonFiniteError, match=r"Training stopped: a gradient became NaN or Inf at epoch 1, step 1\."):
        model.fit(x, batch_size=BATCH, epochs=1, verbose=0)


def test_check_finite_false_trains_on_and_survives_saving(tmp_path):
    model = nrae(check_finite=False)
    history = model.fit(batches(poisoned_step=1), epochs=1, verbose=0).history
    assert np.isnan(history["loss"][0])
    assert set(history) == {"loss", "reconstruction_mse"}  # the counters never reach the logs
    model.save(tmp_path / "m.keras")
    assert keras.saving.load_model(tmp_path / "m.keras").check_finite is False


def test_loss_scale_overflow_is_skipped_not_reported():
    # Under mixed_float16 a loss scale of 2^40 overflows the float16 backward pass:
    # LossScaleOptimizer skips those steps and halves the scale, as designed.
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-3), initial_scale=2.0**40)
        model = nrae(optimizer)
        model.fit(batches(), epochs=2, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert float(optimizer.dynamic_scale) < 2.0**40  # overflowed steps were skipped
