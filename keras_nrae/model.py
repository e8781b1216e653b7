"""Autoencoder and NeighborhoodReconstructionModel: the NRAE loss inside Keras 3's training contract.

What `fit` minimises is the model's own loss plus `sum(model.losses)` (weight
and activity regularizers, `add_loss` terms of encoder and decoder), as
`keras.Model.compute_loss` adds them; `fit` logs that total as "loss". Layers
run with `training=True` in `train_step` and `training=False` everywhere else
(`evaluate`, `predict`, `encode`, `decode`, `model(x)`). Metrics given to
`compile(metrics=...)` compare the centres' reconstruction with the centres:
in `fit` the training pass's, in `evaluate` that of `model(x)`.
"""

import inspect
import warnings
from typing import Any, Optional, Tuple, Union

import keras
import tensorflow as tf

from keras_nrae import _keras_compat as compat
from keras_nrae import kernels as kernels_lib
from keras_nrae.losses import squared_distances, taylor_reconstruction_errors, weighted_mean
from keras_nrae._checks import check_order
from keras_nrae.finite import NonFiniteCounts, StopOnNonFinite
from keras_nrae.taylor import check_per_example, output_activation_split

__all__ = ["Autoencoder", "NeighborhoodReconstructionModel", "reconstruction_loss"]

_EXPANDS = ("decoder", "autoencoder")

# Old private names of the public subclass hooks, deprecated for one release.
_RENAMED_HOOKS = {"_code": "code", "_latent_shape": "latent_shape"}


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
class Autoencoder(compat.KerasTrainerHooks, keras.Model):
    """A plain autoencoder f∘g, and the base of every model in keras_nrae.

    Minimises 1/B Σ_b ‖x_b − f(g(x_b))‖² (summed over features). Batches are
    tensors, (x, y) tuples or `{"x": ...}` dicts; `evaluate` reports the
    per-pixel `reconstruction_mse`. Subclasses change the training loss
    (`_plain_loss`) and, when the encoder's output is not the code itself,
    the public hooks `code` and `latent_shape` (as `VariationalAutoencoder`
    does). Their old private names `_code` and `_latent_shape` are deprecated
    for one release: a subclass that overrides one gets a DeprecationWarning
    when it is defined, and its override is used as the public hook.

    Keras' private trainer hooks that `fit` needs changed under
    `MultiWorkerMirroredStrategy` come from `_keras_compat.KerasTrainerHooks`;
    everything this class overrides itself is public Keras API.

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
        self.non_finite_counts = NonFiniteCounts()
        self.check_finite = True
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
        latent_shape = self.latent_shape(tuple(self.encoder.compute_output_shape(input_shape)))
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

    # -- subclass hooks ----------------------------------------------------------

    def latent_shape(self, encoder_output_shape: tuple) -> tuple:
        """Subclass hook: the decoder's input shape (B, d) given the encoder's output shape.

        The identity here; override it with `code` when the encoder's output
        is not the code itself.
        """
        return encoder_output_shape

    def code(self, encoder_output: tf.Tensor) -> tf.Tensor:
        """Subclass hook: the code z (B, d), the decoder's input, given the encoder's output.

        The identity here; `VariationalAutoencoder` returns the mean of its
        [mean, log-variance] output. `call`, `encode`, the NRAE loss and
        `export_saved_model` all take the code through this hook.
        """
        return encoder_output

    def _latent_shape(self, encoder_output_shape: tuple) -> tuple:
        """Deprecated alias of `latent_shape`, for one release."""
        return _inherited_hook(self, "_latent_shape")(encoder_output_shape)

    def _code(self, encoder_output: tf.Tensor) -> tf.Tensor:
        """Deprecated alias of `code`, for one release."""
        return _inherited_hook(self, "_code")(encoder_output)

    def __init_subclass__(cls, **kwargs):
        """Warn about, and keep using, an override of a hook's old private name."""
        super().__init_subclass__(**kwargs)
        for old, new in _RENAMED_HOOKS.items():
            if old not in vars(cls):
                continue
            warnings.warn(
                f"{cls.__qualname__} overrides {old}, the old name of the subclass hook "
                f"Autoencoder.{new}; override {new} instead. {old} is deprecated and will "
                f"be removed in the next release; until then {cls.__qualname__}.{old} is "
                f"used as its {new}.",
                DeprecationWarning,
                stacklevel=2,
            )
            if new not in vars(cls):
                setattr(cls, new, vars(cls)[old])

    def call(self, inputs, training=None):
        """f(g(x)) for x (B, *shape), or a {"x": ...} batch."""
        x = inputs["x"] if isinstance(inputs, dict) else inputs
        return self.decoder(self.code(self.encoder(x, training=training)), training=training)

    def encode(self, x, batch_size: int = 1024) -> tf.Tensor:
        """g(x) (N, d) for x (N, *shape), numpy or tensor, in chunks of `batch_size`."""
        return self.code(self._map_in_chunks(self.encoder, x, batch_size))

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

    def _training_loss(self, x, neighbors, targets) -> Tuple[tf.Tensor, tf.Tensor]:
        """(own training loss, centres' reconstruction (B, *shape)) with training=True.

        Neighbours and targets (the y of `fit(x, y)`), if any, are ignored: the
        loss is `_plain_loss(x)`.
        """
        return self._plain_loss(x)

    def _plain_loss(self, x):
        """(training loss, reconstruction) of a batch x (B, *shape) without neighbours."""
        x_hat = self(x, training=True)
        return reconstruction_loss(x, x_hat), x_hat

    def _test_loss(self, x, neighbors) -> Tuple[tf.Tensor, tf.Tensor]:
        """(deterministic loss 1/B Σ_b ‖x_b − x̂_b‖², x̂ = model(x)) with training=False."""
        x_hat = self(x, training=False)
        return reconstruction_loss(x, x_hat), x_hat

    def _with_added_losses(self, loss: tf.Tensor) -> tf.Tensor:
        """loss + sum(self.losses), each term summed as `keras.Model.compute_loss` does."""
        for added in self.losses:
            loss += tf.cast(tf.reduce_sum(added), loss.dtype)
        return loss

    # -- Keras hooks -----------------------------------------------------------

    def compile(self, optimizer="adam", check_finite: bool = True, **kwargs):
        """`keras.Model.compile` without `loss=`; `check_finite=False` turns off
        the NaN/Inf check of every step (see `keras_nrae.finite`)."""
        for unsupported in ("loss", "loss_weights"):
            if kwargs.get(unsupported) is not None:
                raise ValueError(
                    f"{type(self).__name__} defines its own loss; do not pass "
                    f"{unsupported}= to compile()."
                )
        super().compile(optimizer=optimizer, **kwargs)
        self.check_finite = bool(check_finite)
        compat.record_compile_argument(self, "check_finite", self.check_finite)

    def fit(self, x=None, *args, **kwargs):
        """`keras.Model.fit`, with the model's own callbacks added (`StopOnNonFinite`
        when compiled with `check_finite=True`); a `tf.data.Dataset` shuffles itself
        (see `neighborhood_dataset`), so Keras's ignored `shuffle=True` is not passed."""
        arguments = inspect.signature(keras.Model.fit).bind(self, x, *args, **kwargs).arguments
        arguments.pop("self")
        if isinstance(x, tf.data.Dataset):
            arguments.setdefault("shuffle", False)
        callbacks = list(arguments.get("callbacks") or [])
        passed = tuple(type(c) for c in callbacks)
        arguments["callbacks"] = callbacks + [c for c in self._own_callbacks() if not isinstance(c, passed)]
        return super().fit(**arguments)

    def _own_callbacks(self) -> list:
        """Callbacks `fit` adds unless one of the same class is passed: `StopOnNonFinite`."""
        return [StopOnNonFinite()] if self.check_finite else []

    def compile_from_config(self, config):
        """Recompile a loaded model (Keras skips models that override compile)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    @property
    def metrics(self):
        """loss (this model's total, not Keras's own tracker), compiled metrics, reconstruction_mse."""
        shown = [m for m in super().metrics if m.name != "loss" and m is not self.non_finite_counts]
        return [self.loss_tracker] + shown

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Update the compiled metrics with y = the centres; return every metric's value."""
        centres, _ = _split_batch(x)
        return super().compute_metrics(x, centres, tf.cast(y_pred, centres.dtype), sample_weight)

    def train_step(self, data):
        x, neighbors = _split_batch(data)
        _check_batch(x, neighbors)
        targets = keras.utils.unpack_x_y_sample_weight(data)[1]
        variables = self.trainable_variables
        with tf.GradientTape() as tape:
            compat.clear_losses(self)
            loss, x_hat = self._training_loss(x, neighbors, targets)
            loss = self._with_added_losses(loss)
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled = self.optimizer.scale_loss(loss / replicas)
        gradients = tape.gradient(scaled, variables)
        gradients = [
            tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
            for g, v in zip(gradients, variables)
        ]
        self.optimizer.apply(gradients, variables)
        if self.check_finite:
            # Scaled gradients overflow by design under loss scaling, which skips those steps.
            scaled_away = isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer)
            self.non_finite_counts.update_state(loss, [] if scaled_away else gradients)
        return self._update_metrics(x, x_hat, loss)

    def test_step(self, data):
        x, neighbors = _split_batch(data)
        _check_batch(x, neighbors)
        compat.clear_losses(self)
        loss, x_hat = self._test_loss(x, neighbors)
        return self._update_metrics(x, x_hat, self._with_added_losses(loss))

    def _update_metrics(self, x, x_hat, loss):
        x_hat = tf.cast(x_hat, x.dtype)
        self.loss_tracker.update_state(loss)
        self.mse_tracker.update_state(tf.reduce_mean(tf.math.squared_difference(x, x_hat)))
        return self.compute_metrics(x, x, x_hat)

    def predict_step(self, data):
        x, _ = _split_batch(data)
        return self(x, training=False)

    # -- serialization ---------------------------------------------------------

    def get_config(self):
        return {
            **super().get_config(),
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

    In a training step the encoder runs once, on the centres and their drawn
    neighbours together (one batch of real points: BatchNormalization takes
    its statistics from it and updates its moving statistics once; activity
    regularizers see those points). The decoder runs its real forward pass on
    the centres' codes only; the Taylor terms reuse that pass (see
    `keras_nrae.taylor.layerwise`: its mask for Dropout, its statistics for
    BatchNormalization), and activity regularizers see only its activations.

    Args:
      encoder: Keras model g, (B, *shape) -> (B, d).
      decoder: Keras model f, (B, d) -> (B, *shape).
      order: 1 (NRAE-L, first-order expansion) or 2 (NRAE-Q, second-order).
      kernel: a `keras_nrae.kernels` kernel, its name or config. Default
        `Binary(lam=1.0)`.
      expand: "decoder" expands f around g(x), evaluated at g(x');
        "autoencoder" expands f∘g around x, evaluated at x'.
      expand_output_activation: True (the paper's) expands the whole decoder;
        False splits f = σ ∘ a at its output activation σ (a sigmoid, say)
        and reconstructs a neighbour by σ(a(z) + J_a dz [+ ½ dzᵀ H_a dz]),
        which stays in σ's range where the expansion of σ itself leaves it
        (`keras_nrae.taylor.taylor_expansion`). Needs expand="decoder" and a
        decoder that is a chain of layers with exact Taylor rules.
      include_center: slot 0 of "neighbors" holds the centre itself, as
        `neighborhood_dataset(..., include_center=True)` (the default) builds
        it; that slot then costs neither an encoder pass nor a Taylor term. A
        batch whose slot 0 is not the centre is refused (the loss turns NaN
        under XLA, which drops assertions). With False every slot is expanded,
        which is right for either layout, only slower.
    """

    def __init__(
        self,
        encoder: keras.Model,
        decoder: keras.Model,
        order: int = 1,
        kernel: Union[None, str, dict, kernels_lib.Kernel] = None,
        expand: str = "decoder",
        include_center: bool = True,
        expand_output_activation: bool = True,
        **kwargs: Any,
    ):
        check_order(order)
        if expand not in _EXPANDS:
            raise ValueError(f"expand must be one of {_EXPANDS}, got {expand!r}.")
        if not expand_output_activation:
            if expand != "decoder":
                raise ValueError('expand_output_activation=False needs expand="decoder".')
            output_activation_split(decoder)  # raises unless the decoder can be split
        if not isinstance(include_center, bool):
            raise TypeError(f"include_center must be True or False, got {include_center!r}.")
        super().__init__(encoder, decoder, **kwargs)
        self.order = order
        self.kernel = kernels_lib.get(kernel)
        self.expand = expand
        self.include_center = include_center
        self.expand_output_activation = bool(expand_output_activation)

    # -- the loss --------------------------------------------------------------

    def neighborhood_loss(self, x, neighbors, training: bool = False) -> tf.Tensor:
        """The NRAE loss (without `model.losses`) of centres x (B, *shape), neighbours (B, M, *shape)."""
        x = tf.convert_to_tensor(x)
        neighbors = tf.convert_to_tensor(neighbors, dtype=x.dtype)
        _check_batch(x, neighbors)
        return self._neighborhood_loss(x, neighbors, training)[0]

    def _neighborhood_loss(self, x, neighbors, training):
        """(loss, centres' reconstruction f(g(x)) (B, *shape))."""
        weights = self.kernel(squared_distances(x, neighbors))
        if self.expand == "autoencoder":
            for part in (self.encoder, self.decoder):
                check_per_example(part, training)
            autoencoder = lambda v: self.call(v, training=training)
            x_hat, errors = taylor_reconstruction_errors(
                autoencoder, x, neighbors - x[:, None], neighbors, self.order,
                self.include_center,
            )
        else:
            z, z_neighbors = self._codes(x, neighbors, training)
            x_hat, errors = taylor_reconstruction_errors(
                self.decoder, z, z_neighbors - z[:, None], neighbors, self.order,
                self.include_center, training=training,
                expand_output_activation=self.expand_output_activation,
            )
        loss = weighted_mean(errors, weights)
        if self.include_center:
            loss = _refuse_unless_center_first(x, neighbors, loss)
        return loss, x_hat

    def _codes(self, x, neighbors, training):
        """(z (B, d), z_neighbors (B, M, d)) from one encoder pass over all slots.

        With `include_center` slot 0 is x itself, so the slots are all the
        points there are: the encoder runs on `neighbors` as it is laid out
        (B·M rows, no copy) and z is slot 0's code. Otherwise on [x; slots].
        """
        rows = lambda t: tf.reshape(t, tf.concat([[-1], tf.shape(x)[1:]], 0))
        slots = neighbors.shape[1]
        if self.include_center:
            codes = self.code(self.encoder(rows(neighbors), training=training))
            z_neighbors = tf.reshape(codes, [-1, slots, codes.shape[-1]])
            return z_neighbors[:, 0], z_neighbors
        batch = tf.shape(x)[0]
        codes = self.code(self.encoder(tf.concat([x, rows(neighbors)], 0), training=training))
        return codes[:batch], tf.reshape(codes[batch:], [-1, slots, codes.shape[-1]])

    def _training_loss(self, x, neighbors, targets):
        if neighbors is None:
            return super()._training_loss(x, neighbors, targets)
        return self._neighborhood_loss(x, neighbors, training=True)

    def _test_loss(self, x, neighbors):
        if neighbors is None:
            return super()._test_loss(x, neighbors)
        return self._neighborhood_loss(x, neighbors, training=False)

    # -- serialization ---------------------------------------------------------

    def get_config(self):
        return {
            **super().get_config(),
            "order": self.order,
            "kernel": kernels_lib.serialize(self.kernel),
            "expand": self.expand,
            "include_center": self.include_center,
            "expand_output_activation": self.expand_output_activation,
        }


def _inherited_hook(model: Autoencoder, old: str):
    """The public hook that the deprecated name `old` means on model.

    Reached from outside, or from an override of `old` calling `super().<old>(...)`:
    then it is the hook that the class nearest to `Autoencoder` that overrides
    `old` inherits (its own `old` is its public hook, see `__init_subclass__`).
    """
    new = _RENAMED_HOOKS[old]
    overriding = [c for c in type(model).__mro__ if c is not Autoencoder and old in vars(c)]
    return getattr(super(overriding[-1], model), new) if overriding else getattr(model, new)


def _refuse_unless_center_first(x, neighbors, loss):
    """loss, after asserting that slot 0 of neighbors is x; NaN where the assertion is dropped (XLA)."""
    slot = neighbors[:, 0]
    same = tf.equal(slot, x) | (tf.math.is_nan(slot) & tf.math.is_nan(x))  # NaN data: a NaN loss, not this error
    center_first = tf.reduce_all(same)
    tf.debugging.Assert(center_first, [
        'Slot 0 of "neighbors" is not the centre "x", but the model was built with '
        "include_center=True. Build the data with neighborhood_dataset(..., "
        "include_center=True), or the model with include_center=False."
    ])
    return tf.where(center_first, loss, tf.constant(float("nan"), loss.dtype))
