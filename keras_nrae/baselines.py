"""The baselines of the paper's Table 1: AE, DAE, CAE, VAE, WAE-MMD, GRAE and SPAE.

Every baseline is a `keras_nrae.model.Autoencoder`, and so keeps its Keras
contract (`model.losses` in the loss, `training` flags, compiled metrics): same
`(encoder, decoder)` constructor, `fit` on tensor or `{"x": ...}` batches (neighbours, if present,
are ignored), `encode` / `decode` / `save`, and `evaluate` reporting the
per-pixel `reconstruction_mse`. Each changes only the training loss, whose
reconstruction term is 1/B Σ_b ‖x_b − x̂_b‖² (summed over features) as for the
plain AE and NRAE. GRAE also needs a target embedding per example, passed as
Keras's y: `fit(x, target)`.

SPAE's structure-preserving term follows two public re-implementations
(README, "GRAE and SPAE").
"""

from typing import Any, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from keras_nrae._checks import integer_at_least, non_negative, positive
from keras_nrae.graph import NeighborGraph
from keras_nrae.model import Autoencoder, reconstruction_loss

__all__ = [
    "Autoencoder",
    "ContractiveAutoencoder",
    "DenoisingAutoencoder",
    "GeometryRegularizedAutoencoder",
    "StructurePreservingAutoencoder",
    "VariationalAutoencoder",
    "WassersteinAutoencoder",
    "encode_with_jacobian_norm",
    "gaussian_kl",
    "inverse_multiquadric_mmd",
    "relaxed_weight",
    "spectral_embedding",
    "structure_preserving_penalty",
    "target_embedding",
]


# -- the defining terms, as plain functions --------------------------------------


def encode_with_jacobian_norm(
    encoder: keras.Model, x: tf.Tensor, training: bool = True
) -> Tuple[tf.Tensor, tf.Tensor]:
    """(g(x) (B, d), ‖∂g(x_b)/∂x_b‖_F² (B,)) by reverse mode: one vectorised VJP per code unit.

    An encoder that opens with a Dense layer (kernel W (D, H), pre-activation
    u = x W + b) gets the same norm more cheaply: ∂g/∂x = J_u Wᵀ, so
    ‖∂g/∂x‖_F² = tr(J_u G J_uᵀ) with J_u = ∂g/∂u (d, H) and G = WᵀW (H, H),
    and the VJPs stop at the H-wide u instead of crossing the D-wide input.
    Assumes examples do not interact inside the encoder (no batch statistics).
    """
    x = tf.convert_to_tensor(x)
    split = _leading_dense(encoder, x)
    if split is not None:
        reshapes, dense, rest = split
        flat = x
        for layer in reshapes:
            flat = layer(flat, training=training)
        if flat.shape.rank == 2:
            return _jacobian_norm_after_dense(flat, dense, rest, training)
    with tf.GradientTape() as tape:
        tape.watch(x)
        z = encoder(x, training=training)
    jacobian = tape.batch_jacobian(z, x)  # (B, d, *shape)
    return z, tf.reduce_sum(tf.square(jacobian), axis=list(range(1, jacobian.shape.rank)))


def _leading_dense(encoder: keras.Model, x: tf.Tensor):
    """(reshape layers, Dense, later layers) when `encoder` is a Sequential whose
    first non-reshape layer is a plain Dense computing in x's dtype (no LoRA,
    quantization or activity regularizer, which its own call would apply); else None."""
    if not isinstance(encoder, keras.Sequential):
        return None
    for i, layer in enumerate(encoder.layers):
        if isinstance(layer, (keras.layers.Flatten, keras.layers.Reshape)):
            continue
        plain = (
            type(layer) is keras.layers.Dense and not layer.lora_enabled and layer.quantization_mode is None
            and layer.activity_regularizer is None and layer.compute_dtype == layer.variable_dtype == x.dtype
        )
        return (encoder.layers[:i], layer, encoder.layers[i + 1:]) if plain else None
    return None


def _jacobian_norm_after_dense(x, dense, rest, training):
    """`encode_with_jacobian_norm` of x (B, D) through dense, then the layers `rest`, via G = WᵀW."""
    kernel = tf.convert_to_tensor(dense.kernel)
    with tf.GradientTape() as tape:
        u = tf.matmul(x, kernel) + (dense.bias if dense.use_bias else 0.0)
        tape.watch(u)
        z = dense.activation(u)
        for layer in rest:
            z = layer(z, training=training)
    j_u = tape.batch_jacobian(z, u)  # (B, d, H)
    gram = tf.matmul(kernel, kernel, transpose_a=True)  # (H, H)
    return z, tf.reduce_sum(tf.matmul(j_u, gram) * j_u, axis=[1, 2])


def gaussian_kl(mean: tf.Tensor, log_var: tf.Tensor) -> tf.Tensor:
    """KL(N(mean, diag exp(log_var)) ‖ N(0, I)) = ½ Σ_j (e^{log_var} + mean² − 1 − log_var), (B, d) -> (B,)."""
    return 0.5 * tf.reduce_sum(tf.exp(log_var) + tf.square(mean) - 1.0 - log_var, axis=-1)


def inverse_multiquadric_mmd(a: tf.Tensor, b: tf.Tensor, scale: float = 1.0) -> tf.Tensor:
    """Unbiased MMD² between samples a, b (n, d) under k(u, v) = C / (C + ‖u − v‖²), C = 2 d scale².

    MMD² = Σ_{i≠j} [k(a_i, a_j) + k(b_i, b_j)] / (n (n − 1)) − 2 Σ_{i,j} k(a_i, b_j) / n².
    """
    a = tf.convert_to_tensor(a)
    b = tf.cast(b, a.dtype)
    n = tf.cast(tf.shape(a)[0], a.dtype)
    c = 2.0 * tf.cast(tf.shape(a)[1], a.dtype) * scale**2

    def kernel_sum(u, v, off_diagonal):
        sq = tf.reduce_sum(u**2, 1)[:, None] + tf.reduce_sum(v**2, 1)[None] - 2 * u @ tf.transpose(v)
        k = c / (c + tf.maximum(sq, 0.0))
        return tf.reduce_sum(k) - (tf.linalg.trace(k) if off_diagonal else 0.0)

    within = tf.math.divide_no_nan(
        kernel_sum(a, a, True) + kernel_sum(b, b, True), n * (n - 1)
    )
    return within - 2.0 * kernel_sum(a, b, False) / n**2


def _pairwise_distances(a: tf.Tensor, expand: bool) -> tf.Tensor:
    """‖a_i − a_j‖ (B, B) of rows a (B, n): by differences, or by the ‖a‖² − 2ab + ‖b‖²
    expansion (for wide rows; clipped at 0). The gradient is 0, not NaN, where a distance is 0."""
    if expand:
        norms = tf.reduce_sum(tf.square(a), axis=1)
        sq = tf.maximum(norms[:, None] + norms[None] - 2.0 * tf.matmul(a, a, transpose_b=True), 0.0)
    else:
        sq = tf.reduce_sum(tf.square(a[:, None] - a[None]), axis=-1)
    positive = sq > 0
    return tf.where(positive, tf.sqrt(tf.where(positive, sq, tf.ones_like(sq))), tf.zeros_like(sq))


def _check_scaling(scaling: str) -> str:
    if scaling not in ("point", "global"):
        raise ValueError(f'scaling must be "point" (R1) or "global" (R2), got {scaling!r}.')
    return scaling


def structure_preserving_penalty(
    x: tf.Tensor, z: tf.Tensor, scaling: str = "point", epsilon: float = 1e-12
) -> tf.Tensor:
    """SPAE's term: the spread of log r_ij, r_ij = (d_Z(z_i, z_j) + ε) / (d_X(x_i, x_j) + ε), i ≠ j.

    x (B, *shape), z (B, d), Euclidean distances. scaling "point" (R1): the
    mean over i of the unbiased variance of log r_ij over j ≠ i, zero when
    each point's distances are scaled by a constant c_i; "global" (R2): the
    unbiased variance over all B (B − 1) pairs, zero for one constant c.
    """
    batch = tf.shape(z)[0]
    d_x = _pairwise_distances(tf.cast(tf.reshape(x, [batch, -1]), z.dtype), expand=True)
    d_z = _pairwise_distances(z, expand=False)
    log_ratio = tf.math.log((d_z + epsilon) / (d_x + epsilon))
    pairs = 1.0 - tf.eye(batch, dtype=z.dtype)  # i ≠ j
    axis = {"point": 1, "global": None}[_check_scaling(scaling)]
    count = tf.reduce_sum(pairs, axis=axis, keepdims=True)
    mean = tf.reduce_sum(pairs * log_ratio, axis=axis, keepdims=True) / count
    variance = tf.reduce_sum(pairs * tf.square(log_ratio - mean), axis=axis, keepdims=True) / (count - 1.0)
    return tf.reduce_mean(variance)


# -- the models ------------------------------------------------------------------


class _StochasticAutoencoder(Autoencoder):
    """An Autoencoder whose loss draws Gaussian noise from a seeded generator."""

    def __init__(self, encoder, decoder, seed: Optional[int] = None, **kwargs: Any):
        self.seed = seed
        super().__init__(encoder, decoder, **kwargs)

    def build(self, input_shape):
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        super().build(input_shape)

    def _standard_normal(self, like: tf.Tensor) -> tf.Tensor:
        return keras.random.normal(tf.shape(like), dtype=like.dtype, seed=self.seed_generator)

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package="keras_nrae")
class DenoisingAutoencoder(_StochasticAutoencoder):
    """DAE: loss 1/B Σ_b ‖x_b − f(g(x_b + σ ε_b))‖², ε_b ~ N(0, I) drawn every step.

    Args:
      encoder, decoder: as for `Autoencoder`.
      sigma: standard deviation σ of the input noise.
      seed: seed of the noise.
    """

    def __init__(self, encoder, decoder, sigma: float = 0.1, seed: Optional[int] = None, **kwargs):
        self.sigma = non_negative(sigma, "sigma")
        super().__init__(encoder, decoder, seed=seed, **kwargs)

    def _plain_loss(self, x):
        x_hat = self(x + self.sigma * self._standard_normal(x), training=True)
        return reconstruction_loss(x, x_hat), x_hat

    def get_config(self):
        return {**super().get_config(), "sigma": self.sigma}


@keras.saving.register_keras_serializable(package="keras_nrae")
class ContractiveAutoencoder(Autoencoder):
    """CAE: loss 1/B Σ_b [‖x_b − f(g(x_b))‖² + weight · ‖∂g(x_b)/∂x_b‖_F²].

    The Jacobian norm is exact, by reverse mode (`encode_with_jacobian_norm`):
    d vectorised VJPs for a d-dimensional code.

    Args:
      encoder, decoder: as for `Autoencoder`.
      weight: the penalty's weight.
    """

    def __init__(self, encoder, decoder, weight: float = 0.1, **kwargs):
        self.weight = non_negative(weight, "weight")
        super().__init__(encoder, decoder, **kwargs)

    def _plain_loss(self, x):
        z, jacobian_norms = encode_with_jacobian_norm(self.encoder, x)
        x_hat = self.decoder(z, training=True)
        return reconstruction_loss(x, x_hat) + self.weight * tf.reduce_mean(jacobian_norms), x_hat

    def get_config(self):
        return {**super().get_config(), "weight": self.weight}


@keras.saving.register_keras_serializable(package="keras_nrae")
class VariationalAutoencoder(_StochasticAutoencoder):
    """VAE with q(z|x) = N(μ, diag e^{s}), prior N(0, I), decoder output the mean of p(x|z).

    The encoder outputs 2d units [μ, s] (mean, log-variance); the decoder takes
    d. Loss 1/B Σ_b [‖x_b − f(z_b)‖² + beta · KL(q(z|x_b) ‖ N(0, I))] with
    z_b = μ_b + e^{s_b/2} ε_b (reparameterised): the negative ELBO, up to a
    constant, of a Gaussian decoder of variance ½ when beta = 1. `encode`,
    `call` and `predict` use z = μ.

    Args:
      encoder: Keras model, (B, *shape) -> (B, 2d).
      decoder: Keras model, (B, d) -> (B, *shape).
      beta: weight of the KL term.
      seed: seed of the reparameterisation noise.
    """

    def __init__(self, encoder, decoder, beta: float = 1.0, seed: Optional[int] = None, **kwargs):
        self.beta = non_negative(beta, "beta")
        super().__init__(encoder, decoder, seed=seed, **kwargs)

    def latent_shape(self, encoder_output_shape):
        units = encoder_output_shape[-1]
        if len(encoder_output_shape) != 2 or units is None or units % 2:
            raise ValueError(
                f"A VariationalAutoencoder's encoder must output (B, 2d) = [mean, "
                f"log-variance]; got output shape {encoder_output_shape}. Build the "
                f"encoder with twice the decoder's latent size."
            )
        return (encoder_output_shape[0], units // 2)

    @staticmethod
    def _mean_and_log_var(encoder_output):
        return tf.split(encoder_output, 2, axis=-1)

    def code(self, encoder_output):
        return self._mean_and_log_var(encoder_output)[0]

    def _plain_loss(self, x):
        mean, log_var = self._mean_and_log_var(self.encoder(x, training=True))
        z = mean + tf.exp(0.5 * log_var) * self._standard_normal(mean)
        kl = tf.reduce_mean(gaussian_kl(mean, log_var))
        x_hat = self.decoder(z, training=True)
        return reconstruction_loss(x, x_hat) + self.beta * tf.cast(kl, x.dtype), x_hat

    def get_config(self):
        return {**super().get_config(), "beta": self.beta}


@keras.saving.register_keras_serializable(package="keras_nrae")
class WassersteinAutoencoder(_StochasticAutoencoder):
    """WAE-MMD (Tolstikhin et al., 2018) with an inverse multiquadric kernel and a N(0, I) prior.

    Loss 1/B Σ_b ‖x_b − f(g(x_b))‖² + weight · MMD²({g(x_b)}, {z̃_b}), with
    z̃_b ~ N(0, I) drawn every step and MMD² from `inverse_multiquadric_mmd`
    (C = 2 d scale²).

    Args:
      encoder, decoder: as for `Autoencoder`.
      weight: weight λ of the MMD term.
      scale: the kernel's scale (the prior's standard deviation for scale = 1).
      seed: seed of the prior samples.
    """

    def __init__(
        self,
        encoder,
        decoder,
        weight: float = 10.0,
        scale: float = 1.0,
        seed: Optional[int] = None,
        **kwargs,
    ):
        self.weight = non_negative(weight, "weight")
        self.scale = positive(scale, "scale")
        super().__init__(encoder, decoder, seed=seed, **kwargs)

    def _plain_loss(self, x):
        z = self.encoder(x, training=True)
        mmd = inverse_multiquadric_mmd(z, self._standard_normal(z), self.scale)
        x_hat = self.decoder(z, training=True)
        return reconstruction_loss(x, x_hat) + self.weight * tf.cast(mmd, x.dtype), x_hat

    def get_config(self):
        return {**super().get_config(), "weight": self.weight, "scale": self.scale}


@keras.saving.register_keras_serializable(package="keras_nrae")
class StructurePreservingAutoencoder(Autoencoder):
    """SPAE (Chen et al., IEEE TNNLS 2021): loss 1/B Σ_b ‖x_b − f(g(x_b))‖² + weight · R.

    R = `structure_preserving_penalty` of the batch: latent distances should
    be input distances scaled by a constant, per point (R1, scaling="point",
    the default) or for the whole batch (R2, scaling="global"). The definition
    is that of two public re-implementations that agree (qipengz/BLAE's
    `SPAELoss`, laurent-cheret/manifold-matching-autoencoders' `models/spae.py`);
    the paper's own text was not available.

    Args:
      encoder, decoder: as for `Autoencoder`.
      weight: weight of R.
      scaling: "point" (R1) or "global" (R2).
      epsilon: ε of r_ij, which keeps duplicate points finite.
    """

    def __init__(self, encoder, decoder, weight: float = 1.0, scaling: str = "point", epsilon: float = 1e-12, **kwargs):
        self.weight = non_negative(weight, "weight")
        self.scaling = _check_scaling(scaling)
        self.epsilon = positive(epsilon, "epsilon")
        super().__init__(encoder, decoder, **kwargs)

    def _plain_loss(self, x):
        z = self.encoder(x, training=True)
        penalty = structure_preserving_penalty(x, z, self.scaling, self.epsilon)
        x_hat = self.decoder(z, training=True)
        return reconstruction_loss(x, x_hat) + self.weight * tf.cast(penalty, x.dtype), x_hat

    def get_config(self):
        return {**super().get_config(), "weight": self.weight, "scaling": self.scaling, "epsilon": self.epsilon}


# -- GRAE: regression of the codes on a fixed target embedding ------------------


def spectral_embedding(
    graph: NeighborGraph, dim: int, iterations: int = 500, seed: int = 0
) -> np.ndarray:
    """(N, dim) diffusion-map coordinates D^{-1/2} u_2 … D^{-1/2} u_{dim+1} of a k-NN graph.

    W is the symmetrised 0/1 adjacency (i ~ j if either lists the other), D its
    degrees and u_1, u_2, … the eigenvectors of S = D^{-1/2} W D^{-1/2} by
    decreasing eigenvalue (u_1 ∝ D^{1/2} 1 is dropped). They come from block
    subspace iteration on (I + S)/2 with 2(dim + 1) vectors, re-orthonormalised
    every 10 steps, and a final Rayleigh–Ritz step: sparse products only, no
    dense N × N matrix.
    """
    n, rows = graph.num_points, np.repeat(np.arange(graph.num_points), graph.k)
    pairs = np.unique(np.stack([np.r_[rows, graph.indices.ravel()],
                                np.r_[graph.indices.ravel(), rows]], 1), axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    scale = 1.0 / np.sqrt(np.bincount(pairs[:, 0], minlength=n))
    s = tf.sparse.SparseTensor(pairs, scale[pairs[:, 0]] * scale[pairs[:, 1]], (n, n))
    lazy_s = lambda v: 0.5 * (v + tf.sparse.sparse_dense_matmul(s, v).numpy())  # (I + S) v / 2

    block = np.random.default_rng(seed).standard_normal((n, 2 * (dim + 1)))
    for step in range(iterations):
        block = lazy_s(block)
        if step % 10 == 9:
            block = np.linalg.qr(block)[0]
    block = np.linalg.qr(block)[0]
    values, vectors = np.linalg.eigh(block.T @ lazy_s(block))
    top = block @ vectors[:, np.argsort(values)[::-1][1 : dim + 1]]
    return scale[:, None] * top


def target_embedding(
    x, dim: int, method: str = "spectral", k: int = 10, seed: int = 0, rtol: Optional[float] = None
) -> np.ndarray:
    """GRAE's target: a z-scored (N, dim) embedding of x (N, *shape), float32.

    method "spectral" (default, no extra dependency): `spectral_embedding` of
    x's k-NN graph. "phate": PHATE (`pip install keras-nrae[grae]`), what the
    GRAE authors use. Each column is z-scored (mean 0, std 1), as they do.
    That gives a column holding almost none of the embedding's variance the
    weight of the leading one (PHATE of 3,600 CIFAR-10 images in 128 columns:
    the 8th has 5e-4 of the 1st's std, the 40th 6e-7). With rtol, columns
    whose std is below rtol × the largest are centred and divided by the
    largest std instead (≈ 0, as in the raw embedding).
    """
    if rtol is not None:
        rtol = non_negative(rtol, "rtol")
    x = np.asarray(x)
    if method == "spectral":
        embedding = spectral_embedding(NeighborGraph.build(x, k=k, verbose=0), dim, seed=seed)
    elif method == "phate":
        try:
            import phate
        except ImportError as error:
            raise ImportError('target_embedding(method="phate") needs `pip install phate`.') from error
        embedding = phate.PHATE(n_components=dim, knn=k, random_state=seed, verbose=0).fit_transform(
            x.reshape(len(x), -1)
        )
    else:
        raise ValueError(f'method must be "spectral" or "phate", got {method!r}.')
    return _standardized(embedding, rtol)


def _standardized(embedding: np.ndarray, rtol: Optional[float]) -> np.ndarray:
    """embedding (N, d) with each column z-scored; with rtol, columns of std < rtol × max std scaled by the max."""
    embedding = embedding - embedding.mean(0)
    std = embedding.std(0)
    if rtol is not None:
        std = np.where(std < rtol * std.max(), std.max(), std)
    return (embedding / std).astype(np.float32)


@keras.saving.register_keras_serializable(package="keras_nrae")
class GeometryRegularizedAutoencoder(Autoencoder):
    """GRAE (Duque et al., 2020): loss 1/B Σ_b [‖x_b − f(g(x_b))‖² + λ_e · ‖g(x_b) − e_b‖²].

    e_b is example b's row of a target embedding computed once before training
    (`target_embedding`); train with `fit(x, targets)`, targets (N, d) aligned
    with x (N, *shape), so Keras batches and shuffles them together. The
    authors' loss is per-pixel MSE + λ · per-dimension MSE with λ = 100; in
    this sum-over-features convention that is weight = λ · D / d for D pixels
    and d latent units.

    λ_e = weight throughout, or with `relax_epochs` = E the authors' "relax"
    schedule, `relaxed_weight`: λ falls along a sigmoid from `weight` to ~0
    around epoch E/2, so the second half trains as a plain AE. `fit` sets λ_e
    at the start of each epoch from the epoch number (so resuming with
    `initial_epoch` or `BackupAndRestore` continues the schedule); its current
    value is the non-trainable variable `regression_weight`.

    Args:
      encoder, decoder: as for `Autoencoder`.
      weight: weight of the embedding term (at the start, with `relax_epochs`).
      relax_epochs: E, the length of the relax schedule in epochs; None: constant.
    """

    def __init__(self, encoder, decoder, weight: float = 1.0, relax_epochs: Optional[int] = None, **kwargs):
        self.weight = non_negative(weight, "weight")
        self.relax_epochs = None if relax_epochs is None else integer_at_least(relax_epochs, "relax_epochs")
        super().__init__(encoder, decoder, **kwargs)

    def build(self, input_shape):
        self.regression_weight = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(self.weight), trainable=False,
            name="regression_weight",
        )
        super().build(input_shape)

    def _own_callbacks(self) -> list:
        relax = [] if self.relax_epochs is None else [_RelaxGeometry()]
        return super()._own_callbacks() + relax

    def _training_loss(self, x, neighbors, targets):
        if targets is None:
            raise ValueError(
                "GeometryRegularizedAutoencoder trains on (x, target embedding) "
                "pairs: call fit(x, targets) with targets (N, d) from target_embedding()."
            )
        z = self.encoder(x, training=True)
        regression = tf.reduce_mean(tf.reduce_sum(tf.square(z - tf.cast(targets, z.dtype)), axis=-1))
        x_hat = self.decoder(z, training=True)
        weight = tf.cast(self.regression_weight, x.dtype)
        return reconstruction_loss(x, x_hat) + weight * tf.cast(regression, x.dtype), x_hat

    def get_config(self):
        return {**super().get_config(), "weight": self.weight, "relax_epochs": self.relax_epochs}


def relaxed_weight(weight: float, epoch: int, relax_epochs: int) -> float:
    """GRAE's λ during 0-based epoch e of the authors' relax schedule over E epochs.

    `weight` in epoch 0; then weight · (1 − σ(0.2 (e − E/2))), σ the logistic
    function: what their `end_epoch` set after each (1-based) epoch e.
    """
    if epoch == 0:
        return float(weight)
    return float(weight) / (1.0 + np.exp(0.2 * (epoch - relax_epochs / 2)))


class _RelaxGeometry(keras.callbacks.Callback):
    """Sets a GRAE's `regression_weight` to `relaxed_weight` at the start of each epoch."""

    def on_epoch_begin(self, epoch, logs=None):
        model = self.model
        model.regression_weight.assign(relaxed_weight(model.weight, epoch, model.relax_epochs))
