"""NeighborhoodReconstructionModel: an autoencoder trained with the NRAE loss."""

import functools
from typing import Any, Optional, Tuple, Union

import keras
import tensorflow as tf

from keras_nrae import kernels as kernels_lib
from keras_nrae.losses import (
    neighborhood_reconstruction_loss,
    squared_distances,
    taylor_reconstruction_errors,
    weighted_mean,
)
from keras_nrae.taylor import check_order

_EXPANDS = ("decoder", "autoencoder")


def _split_batch(data) -> Tuple[tf.Tensor, Optional[tf.Tensor]]:
    """(x, neighbors or None) from a {"x", "neighbors"} dict, a tensor or an (x, y) tuple."""
    x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
    if isinstance(x, dict):
        if "x" not in x:
            raise ValueError(
                f'A dict batch needs the key "x" (and optionally "neighbors"); '
                f"got keys {sorted(x)}."
            )
        return x["x"], x.get("neighbors")
    return x, None


def _check_batch(x: tf.Tensor, neighbors: Optional[tf.Tensor]) -> None:
    if not x.dtype.is_floating:
        raise TypeError(
            f"x must be floating point, got {x.dtype.name}. Scale integer images "
            f"to [0, 1] first, e.g. x.astype('float32') / 255, or load them with "
            f"keras_nrae.datasets.load_images."
        )
    if neighbors is None:
        return
    if neighbors.dtype != x.dtype:
        raise TypeError(
            f"neighbors dtype {neighbors.dtype.name} differs from x dtype {x.dtype.name}."
        )
    if neighbors.shape.rank != x.shape.rank + 1 or neighbors.shape[2:] != x.shape[1:]:
        raise ValueError(
            f"neighbors must be (B, M, *x.shape[1:]) = (B, M, "
            f"{', '.join(map(str, x.shape[1:]))}), got {tuple(neighbors.shape)}."
        )
    if neighbors.shape[1] is None:
        raise ValueError(
            "The number of neighbour slots M must be static; build the dataset "
            "with a fixed neighbors_per_point."
        )


def reconstruction_loss(x: tf.Tensor, x_hat: tf.Tensor) -> tf.Tensor:
    """1/B Σ_b ‖x_b − x̂_b‖² (summed over features) for x, x_hat (B, *shape)."""
    return weighted_mean(squared_distances(x, tf.cast(x_hat, x.dtype)[:, None]))


@keras.saving.register_keras_serializable(package="keras_nrae")
class Autoencoder(keras.Model):
    """A plain autoencoder f∘g, and the base of every model in keras_nrae.

    Minimises 1/B Σ_b ‖x_b − f(g(x_b))‖² (summed over features). Batches are
    tensors, (x, y) tuples or `{"x": ...}` dicts; `evaluate` reports the
    per-pixel `reconstruction_mse`. Subclasses change the training loss
    (`_plain_loss`) and, when the encoder's output is not the code itself,
    `_code` and `_latent_shape`.

    Args:
      encoder: Keras model g, (B, *shape) -> (B, d).
      decoder: Keras model f, (B, d) -> (B, *shape).
    """

    def __init__(self, encoder: keras.Model, decoder: keras.Model, **kwargs: Any):
        # The wrapper has no weights of its own: let the encoder cast inputs,
        # so that model(x) keeps float64 data float64.
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.mse_tracker = keras.metrics.Mean(name="reconstruction_mse")
        input_shape = getattr(encoder, "input_shape", None) if encoder.built else None
        if input_shape is not None:
            self.build(input_shape)

    # -- building and calling ------------------------------------------------

    def build(self, input_shape):
        if isinstance(input_shape, dict):
            input_shape = input_shape["x"]
        input_shape = tuple(input_shape)
        if not self.encoder.built:
            self.encoder.build(input_shape)
        latent_shape = self._latent_shape(tuple(self.encoder.compute_output_shape(input_shape)))
        if not self.decoder.built:
            self.decoder.build(latent_shape)
        output_shape = tuple(self.decoder.compute_output_shape(latent_shape))
        if output_shape[1:] != input_shape[1:]:
            raise ValueError(
                f"The decoder's output shape {output_shape[1:]} does not match the "
                f"input shape {input_shape[1:]}: the decoder must reconstruct "
                f"inputs of the same shape."
            )
        super().build(input_shape)

    def _latent_shape(self, encoder_output_shape: tuple) -> tuple:
        """The decoder's input shape given the encoder's output shape."""
        return encoder_output_shape

    def _code(self, encoder_output: tf.Tensor) -> tf.Tensor:
        """The code z (B, d) given the encoder's output."""
        return encoder_output

    def call(self, inputs, training=None):
        """f(g(x)) for x (B, *shape), or a {"x": ...} batch."""
        x = inputs["x"] if isinstance(inputs, dict) else inputs
        return self.decoder(self._code(self.encoder(x, training=training)), training=training)

    def encode(self, x, batch_size: int = 1024) -> tf.Tensor:
        """g(x) (N, d) for x (N, *shape), numpy or tensor, in chunks of `batch_size`."""
        return self._code(self._map_in_chunks(self.encoder, x, batch_size))

    def decode(self, z, batch_size: int = 1024) -> tf.Tensor:
        """f(z) (N, *shape) for codes z (N, d), numpy or tensor, in chunks of `batch_size`."""
        return self._map_in_chunks(self.decoder, z, batch_size)

    @staticmethod
    def _map_in_chunks(layer, x, batch_size):
        x = tf.convert_to_tensor(x)
        chunks = [
            layer(x[i : i + batch_size], training=False)
            for i in range(0, int(x.shape[0]), batch_size)
        ]
        return tf.concat(chunks, axis=0)

    # -- the loss --------------------------------------------------------------

    def _plain_loss(self, x):
        """The training loss of a batch x (B, *shape) without neighbours."""
        return reconstruction_loss(x, self(x, training=True))

    # -- Keras hooks -----------------------------------------------------------

    def compile(self, optimizer="adam", **kwargs):
        for unsupported in ("loss", "loss_weights"):
            if kwargs.get(unsupported) is not None:
                raise ValueError(
                    f"{type(self).__name__} defines its own loss; do not pass "
                    f"{unsupported}= to compile()."
                )
        super().compile(optimizer=optimizer, **kwargs)

    def fit(self, x=None, *args, **kwargs):
        """`keras.Model.fit`; a `tf.data.Dataset` shuffles itself (see
        `neighborhood_dataset`), so Keras's ignored `shuffle=True` is not passed."""
        if isinstance(x, tf.data.Dataset) and len(args) < 7:
            kwargs.setdefault("shuffle", False)
        return super().fit(x, *args, **kwargs)

    def compile_from_config(self, config):
        """Recompile a loaded model (Keras skips models that override compile)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    @property
    def metrics(self):
        return [self.loss_tracker, self.mse_tracker]

    def train_step(self, data):
        x, neighbors = _split_batch(data)
        _check_batch(x, neighbors)
        loss, gradients = self._training_loss_and_gradients(x, neighbors)
        self.optimizer.apply(gradients, self.trainable_variables)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def _training_loss_and_gradients(self, x, neighbors):
        """Neighbours, if any, are ignored: the loss is `_plain_loss(x)`."""
        return self._loss_and_gradients(self._plain_loss, x)

    def _loss_and_gradients(self, loss_fn, *args):
        """(loss, dense gradients); the gradient is of loss / num_replicas."""
        variables = self.trainable_variables
        with tf.GradientTape() as tape:
            loss = loss_fn(*args)
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled = self.optimizer.scale_loss(loss / replicas)
        gradients = tape.gradient(scaled, variables)
        return loss, [
            tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
            for g, v in zip(gradients, variables)
        ]

    def test_step(self, data):
        x, neighbors = _split_batch(data)
        _check_batch(x, neighbors)
        x_hat = tf.cast(self(x, training=False), x.dtype)
        self.mse_tracker.update_state(tf.reduce_mean(tf.math.squared_difference(x, x_hat)))
        self.loss_tracker.update_state(self._test_loss(x, x_hat, neighbors))
        return {m.name: m.result() for m in self.metrics}

    def _test_loss(self, x, x_hat, neighbors):
        """The deterministic reconstruction loss 1/B Σ_b ‖x_b − x̂_b‖²."""
        return reconstruction_loss(x, x_hat)

    def predict_step(self, data):
        x, _ = _split_batch(data)
        return self(x, training=False)

    # -- serialization ---------------------------------------------------------

    def get_config(self):
        return {
            "name": self.name,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "decoder"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_nrae")
class NeighborhoodReconstructionModel(Autoencoder):
    """An autoencoder f∘g trained with the neighbourhood reconstruction loss.

    Batches are `{"x": (B, *shape), "neighbors": (B, M, *shape)}` (see
    `keras_nrae.neighborhood_dataset`); a plain tensor batch trains as a plain
    autoencoder. The loss is `keras_nrae.losses` (module docstring) with
    weights `kernel(‖x − x'‖²)`.

    Args:
      encoder: Keras model g, (B, *shape) -> (B, d).
      decoder: Keras model f, (B, d) -> (B, *shape).
      order: 1 (NRAE-L, first-order expansion) or 2 (NRAE-Q, second-order).
      kernel: a `keras_nrae.kernels` kernel, its name or config. Default
        `Binary(lam=1.0)`.
      expand: "decoder" expands f around g(x), evaluated at g(x');
        "autoencoder" expands f∘g around x, evaluated at x'.
    """

    def __init__(
        self,
        encoder: keras.Model,
        decoder: keras.Model,
        order: int = 1,
        kernel: Union[None, str, dict, kernels_lib.Kernel] = None,
        expand: str = "decoder",
        **kwargs: Any,
    ):
        check_order(order)
        if expand not in _EXPANDS:
            raise ValueError(f"expand must be one of {_EXPANDS}, got {expand!r}.")
        super().__init__(encoder, decoder, **kwargs)
        self.order = order
        self.kernel = kernels_lib.get(kernel)
        self.expand = expand

    # -- the loss --------------------------------------------------------------

    def neighborhood_loss(self, x: tf.Tensor, neighbors: tf.Tensor) -> tf.Tensor:
        """The scalar `train_step` minimises for centres x (B, *shape), neighbours (B, M, *shape)."""
        x = tf.convert_to_tensor(x)
        neighbors = tf.convert_to_tensor(neighbors, dtype=x.dtype)
        _check_batch(x, neighbors)
        return tf.cond(
            self._center_first(x, neighbors),
            lambda: self._loss(x, neighbors, center_first=True),
            lambda: self._loss(x, neighbors, center_first=False),
        )

    @staticmethod
    def _center_first(x, neighbors):
        """True when slot 0 holds the centre (the pipeline's include_center):
        then that slot needs neither encoding nor a Taylor term."""
        return tf.reduce_all(tf.equal(neighbors[:, 0], x))

    def _loss(self, x, neighbors, center_first):
        weights = self.kernel(squared_distances(x, neighbors))
        decoder = functools.partial(self.decoder, training=True)
        if self.expand == "autoencoder":
            autoencoder = lambda v: decoder(self.encoder(v, training=True))
            _, errors = taylor_reconstruction_errors(
                autoencoder, x, neighbors - x[:, None], neighbors, self.order, center_first
            )
            return weighted_mean(errors, weights)
        encoded = neighbors[:, 1:] if center_first else neighbors
        batch, slots = tf.shape(x)[0], encoded.shape[1]
        z_all = self.encoder(
            tf.concat([x, tf.reshape(encoded, tf.concat([[-1], tf.shape(x)[1:]], 0))], 0),
            training=True,
        )
        z = z_all[:batch]
        z_neighbors = tf.reshape(z_all[batch:], [batch, slots, z_all.shape[-1]])
        if center_first:
            z_neighbors = tf.concat([z[:, None], z_neighbors], axis=1)
        return neighborhood_reconstruction_loss(
            decoder, z, z_neighbors, neighbors, weights, self.order, center_first
        )

    # -- Keras hooks -----------------------------------------------------------

    def _training_loss_and_gradients(self, x, neighbors):
        if neighbors is None:
            return super()._training_loss_and_gradients(x, neighbors)
        # The branch holds the whole tape: XLA cannot differentiate
        # through a tf.cond around forward-mode (pfor) terms.
        return tf.cond(
            self._center_first(x, neighbors),
            lambda: self._loss_and_gradients(self._loss, x, neighbors, True),
            lambda: self._loss_and_gradients(self._loss, x, neighbors, False),
        )

    def _test_loss(self, x, x_hat, neighbors):
        if neighbors is None:
            return super()._test_loss(x, x_hat, neighbors)
        return self.neighborhood_loss(x, neighbors)

    # -- serialization ---------------------------------------------------------

    def get_config(self):
        return {
            **super().get_config(),
            "order": self.order,
            "kernel": kernels_lib.serialize(self.kernel),
            "expand": self.expand,
        }
