"""The neighbourhood reconstruction loss as plain functions and a Keras layer.

For a centre x with code z = g(x) and M neighbour slots x'_m with codes
z'_m = g(x'_m), slot m is reconstructed by the decoder's Taylor expansion
around z, evaluated at dz_m = z'_m − z:

    x̃'_m = f(z) + J_f(z) dz_m [+ ½ dz_mᵀ H_f(z) dz_m]      (order 1 | order 2)
    e_m  = ‖x'_m − x̃'_m‖²   (summed over features)

and the loss is the mean over the B centres of each centre's kernel-weighted
mean error:

    L = 1/B Σ_b  Σ_m w_bm e_bm / Σ_m w_bm

Normalising per centre keeps the loss independent of how a global batch is
split across replicas, and makes a kernel that only weighs the centre
(`Binary(lam=0)` with the centre in slot 0) exactly the plain autoencoder loss
1/B Σ_b ‖x_b − f(g(x_b))‖². A centre whose weights are all 0 contributes 0.
"""

from typing import Callable, Optional, Union

import keras
import tensorflow as tf

from keras_nrae import kernels as kernels_lib
from keras_nrae._checks import check_order
from keras_nrae.taylor import bind_training, output_activation_split, taylor_expansion

__all__ = [
    "NeighborhoodReconstructionLoss",
    "neighborhood_reconstruction_loss",
    "squared_distances",
    "taylor_reconstruction_errors",
    "weighted_mean",
]


def _sum_over_features(t: tf.Tensor) -> tf.Tensor:
    """(B, M, *shape) -> (B, M)."""
    return tf.reduce_sum(t, axis=list(range(2, t.shape.rank)))


def _check_output_shape(value: tf.Tensor, targets: tf.Tensor) -> None:
    if value.shape[1:] != targets.shape[2:]:
        raise ValueError(
            f"The decoder's output shape {tuple(value.shape[1:])} does not match "
            f"the data's per-example shape {tuple(targets.shape[2:])}: the "
            f"decoder must reconstruct inputs of the same shape."
        )


def taylor_reconstruction_errors(
    fn: Callable[[tf.Tensor], tf.Tensor],
    primal: tf.Tensor,
    tangents: tf.Tensor,
    targets: tf.Tensor,
    order: int = 1,
    center_first: bool = False,
    method: str = "auto",
    training: Optional[bool] = None,
    expand_output_activation: bool = True,
    *,
    vectorize: Optional[bool] = None,
):
    """Squared error of every slot's Taylor reconstruction.

    Args:
      fn: the map being expanded, (B, *in) -> (B, *out).
      primal: (B, *in) expansion points.
      tangents: (B, M, *in) displacements from the primal.
      targets: (B, M, *out) what each slot should reconstruct.
      order: 1 or 2.
      center_first: slot 0 holds the centre itself (tangent 0). Its error is
        the plain ‖targets[:, 0] − fn(primal)‖² and no Taylor term is computed
        for it.
      method: how the Taylor terms are computed; see `keras_nrae.taylor.taylor_terms`.
      training: the `training` flag a Keras `fn` is called with.
      expand_output_activation: see `keras_nrae.taylor.taylor_expansion`.
      vectorize: deprecated, see `keras_nrae.taylor.taylor_terms`.

    Returns:
      (fn(primal) (B, *out), errors (B, M)) with errors in `targets.dtype`.
    """
    expanded = tangents[:, 1:] if center_first else tangents
    if expanded.shape[1] == 0:  # the centre is the only slot
        value, reconstructions = bind_training(fn, training)(primal), None
    else:
        value, reconstructions = taylor_expansion(
            fn, primal, expanded, order, method, training, expand_output_activation, targets.dtype,
            vectorize=vectorize,
        )
    _check_output_shape(value, targets)
    # Errors slot group by slot group: no (B, M, *out) reconstruction is
    # concatenated, and only the differences are kept for the gradient.
    errors = []
    if center_first:
        errors.append(_squared_errors(tf.cast(value, targets.dtype)[:, None], targets[:, :1]))
    if reconstructions is not None:
        expanded_targets = targets[:, 1:] if center_first else targets
        errors.append(_squared_errors(reconstructions, expanded_targets))
    return value, errors[0] if len(errors) == 1 else tf.concat(errors, axis=1)


def _squared_errors(recon: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
    """‖targets − recon‖² (B, M) over the features of (B, M, *shape) tensors (or broadcastable)."""
    return _sum_over_features(tf.square(recon - targets))


def weighted_mean(errors: tf.Tensor, weights: Optional[tf.Tensor] = None) -> tf.Tensor:
    """1/B Σ_b (Σ_m w_bm e_bm / Σ_m w_bm); weights None means all ones."""
    if weights is None:
        return tf.reduce_mean(errors)
    weights = tf.stop_gradient(tf.cast(weights, errors.dtype))
    per_centre = tf.math.divide_no_nan(
        tf.reduce_sum(weights * errors, axis=1), tf.reduce_sum(weights, axis=1)
    )
    return tf.reduce_mean(per_centre)


def _check_latent_shapes(z, z_neighbors, x_neighbors, weights):
    if z.shape.rank != 2:
        raise ValueError(f"z must be (B, d), got shape {z.shape}.")
    if z_neighbors.shape.rank != 3:
        raise ValueError(f"z_neighbors must be (B, M, d), got shape {z_neighbors.shape}.")
    if z_neighbors.shape[2] != z.shape[1]:
        raise ValueError(
            f"Latent size mismatch: z is {z.shape} but z_neighbors is "
            f"{z_neighbors.shape} (last axes differ)."
        )
    if x_neighbors.shape.rank is None or x_neighbors.shape.rank < 3:
        raise ValueError(
            f"x_neighbors must be (B, M, *shape), got shape {x_neighbors.shape}."
        )
    if x_neighbors.shape[1] != z_neighbors.shape[1]:
        raise ValueError(
            f"Neighbour count mismatch: z_neighbors has M={z_neighbors.shape[1]} "
            f"slots but x_neighbors has M={x_neighbors.shape[1]}."
        )
    if weights is not None and weights.shape != z_neighbors.shape[:2]:
        raise ValueError(
            f"weights must be (B, M) = {tuple(z_neighbors.shape[:2])}, got "
            f"{tuple(weights.shape)}."
        )


def neighborhood_reconstruction_loss(
    decoder: Callable[[tf.Tensor], tf.Tensor],
    z: tf.Tensor,
    z_neighbors: tf.Tensor,
    x_neighbors: tf.Tensor,
    weights: Optional[tf.Tensor] = None,
    order: int = 1,
    center_first: bool = False,
    return_errors: bool = False,
    method: str = "auto",
    training: Optional[bool] = None,
    expand_output_activation: bool = True,
    *,
    vectorize: Optional[bool] = None,
):
    """NRAE loss (module docstring) from codes; differentiable in z, z_neighbors and the decoder.

    Args:
      decoder: (B, d) -> (B, *shape), e.g. a Keras model.
      z: (B, d) codes of the centres.
      z_neighbors: (B, M, d) codes of the neighbours.
      x_neighbors: (B, M, *shape) the neighbours themselves.
      weights: (B, M) kernel weights, or None for all ones.
      order: 1 (NRAE-L) or 2 (NRAE-Q).
      center_first: slot 0 is the centre itself; skips its Taylor term (the
        result is the same, only cheaper).
      return_errors: also return the per-slot errors e (B, M).
      method: how the Taylor terms are computed; see `keras_nrae.taylor.taylor_terms`.
      training: the `training` flag a Keras `decoder` is called with.
      expand_output_activation: False expands the decoder only up to its
        output activation σ and reconstructs σ(a + J_a dz [+ ½ dzᵀ H_a dz])
        (`keras_nrae.taylor.taylor_expansion`).
      vectorize: deprecated, see `keras_nrae.taylor.taylor_terms`.

    Returns:
      The scalar loss, or (loss, errors) with `return_errors=True`.
    """
    z = tf.convert_to_tensor(z)
    z_neighbors = tf.convert_to_tensor(z_neighbors)
    x_neighbors = tf.convert_to_tensor(x_neighbors)
    if weights is not None:
        weights = tf.convert_to_tensor(weights)
    _check_latent_shapes(z, z_neighbors, x_neighbors, weights)
    _, errors = taylor_reconstruction_errors(
        decoder,
        z,
        z_neighbors - z[:, None],
        x_neighbors,
        order,
        center_first,
        method,
        training,
        expand_output_activation,
        vectorize=vectorize,
    )
    loss = weighted_mean(errors, weights)
    return (loss, errors) if return_errors else loss


def squared_distances(x: tf.Tensor, x_neighbors: tf.Tensor) -> tf.Tensor:
    """‖x_b − x'_bm‖² (B, M) for x (B, *shape) and x_neighbors (B, M, *shape)."""
    return _squared_errors(x_neighbors, x[:, None])


@keras.saving.register_keras_serializable(package="keras_nrae")
class NeighborhoodReconstructionLoss(keras.layers.Layer):
    """The NRAE loss as a layer, for models that collect losses with `add_loss`.

    `layer(x, x_neighbors, z, z_neighbors)` weighs slot m of centre b with
    `kernel(‖x_b − x'_bm‖²)`, evaluates `neighborhood_reconstruction_loss`
    with the layer's decoder and order, adds `weight · loss` with `add_loss`
    (so a subclassed model's default `compute_loss` minimises it) and returns
    the unweighted scalar loss (for logging, or for a hand-written total).

    Pass the decoder object your model reconstructs with: the layer tracks it,
    so its variables are shared, not copied. Inputs are not autocast (the loss
    is computed in the data's dtype, also under mixed precision) unless
    `autocast=True` is passed.

    Args:
      decoder: Keras model f, (B, d) -> (B, *shape).
      order: 1 (NRAE-L) or 2 (NRAE-Q).
      kernel: a `keras_nrae.kernels` kernel, its name or config. Default
        `Binary(lam=1.0)`, i.e. every slot weighs 1.
      weight: factor on the loss given to `add_loss`.
      expand_output_activation: see `neighborhood_reconstruction_loss`.
      **layer_kwargs: `keras.layers.Layer` arguments (name, dtype, ...).
    """

    def __init__(
        self,
        decoder: keras.Model,
        order: int = 1,
        kernel: Union[None, str, dict, kernels_lib.Kernel] = None,
        weight: float = 1.0,
        expand_output_activation: bool = True,
        **layer_kwargs,
    ):
        layer_kwargs.setdefault("autocast", False)
        super().__init__(**layer_kwargs)
        check_order(order)
        if not expand_output_activation:
            output_activation_split(decoder)  # raises unless the decoder can be split
        self.decoder = decoder
        self.order = order
        self.kernel = kernels_lib.get(kernel)
        self.weight = float(weight)
        self.expand_output_activation = bool(expand_output_activation)

    def call(self, x, x_neighbors, z, z_neighbors, center_first: bool = False, training=None):
        """Scalar loss for x (B, *shape), x_neighbors (B, M, *shape), z (B, d), z_neighbors (B, M, d).

        `center_first=True` when slot 0 holds the centre itself (the
        pipeline's `include_center`): same loss, one Taylor term fewer.
        """
        if x_neighbors.shape.rank != x.shape.rank + 1 or x_neighbors.shape[2:] != x.shape[1:]:
            raise ValueError(
                f"x_neighbors must be (B, M, *x.shape[1:]) with x of shape "
                f"{tuple(x.shape)}, got {tuple(x_neighbors.shape)}."
            )
        weights = self.kernel(squared_distances(x, x_neighbors))
        loss = neighborhood_reconstruction_loss(
            self.decoder, z, z_neighbors, x_neighbors, weights, self.order, center_first,
            training=training, expand_output_activation=self.expand_output_activation,
        )
        self.add_loss(self.weight * loss)
        return loss

    def compute_output_shape(self, *input_shapes):
        return ()

    def get_config(self):
        return {
            **super().get_config(),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "order": self.order,
            "kernel": kernels_lib.serialize(self.kernel),
            "weight": self.weight,
            "expand_output_activation": self.expand_output_activation,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["decoder"] = keras.saving.deserialize_keras_object(config["decoder"])
        return cls(**config)
