"""
Title: A variational autoencoder with the NRAE term
Author: keras-nrae contributors
Date created: 2026/12/06
Last modified: 2026/12/06
Description: A VAE whose ELBO gets the neighbourhood reconstruction term through a Keras layer.
Accelerator: None
"""

"""
## Introduction

`keras_nrae.losses.NeighborhoodReconstructionLoss` adds the NRAE loss with
`add_loss`, so a subclassed model trains on ELBO + weight · NRAE with a plain
`compile(optimizer)` / `fit`. The neighbourhood term expands the decoder
around the centre's posterior mean and asks it to reconstruct the neighbours
at their posterior means. Data: 50 noisy points on y = sin x, 1-D latent.

    python examples/vae_with_nrae.py [--nrae-weight 1.0] [--order 2] [--smoke]
"""

"""
## Setup
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_nrae import NeighborGraph, kernels, neighborhood_dataset  # noqa: E402
from keras_nrae import toy  # noqa: E402
from keras_nrae.architectures import mlp_autoencoder  # noqa: E402
from keras_nrae.losses import NeighborhoodReconstructionLoss  # noqa: E402


class NeighborhoodVAE(keras.Model):
    """Gaussian VAE, encoder x -> [mean, log_var] (B, 2d), on {"x", "neighbors"} batches."""

    def __init__(self, encoder, decoder, neighborhood: NeighborhoodReconstructionLoss, seed=0):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.neighborhood = neighborhood
        self.noise = keras.random.SeedGenerator(seed)

    def posterior(self, x):
        """(mean, log_var), each (..., d), for x (..., *shape)."""
        flat = tf.reshape(x, (-1, *x.shape[-1:]))
        mean, log_var = tf.split(self.encoder(flat), 2, axis=-1)
        latent_shape = (*x.shape[:-1], -1)
        return tf.reshape(mean, latent_shape), tf.reshape(log_var, latent_shape)

    def call(self, inputs):
        x, neighbors = inputs["x"], inputs["neighbors"]  # (B, D), (B, M, D)
        mean, log_var = self.posterior(x)
        z = mean + tf.exp(0.5 * log_var) * keras.random.normal(tf.shape(mean), seed=self.noise)
        x_hat = self.decoder(z)
        reconstruction = tf.reduce_mean(tf.reduce_sum(tf.square(x - x_hat), axis=-1))
        kl = tf.reduce_mean(
            0.5 * tf.reduce_sum(tf.square(mean) + tf.exp(log_var) - 1.0 - log_var, axis=-1)
        )
        self.add_loss(reconstruction + kl)  # the negative ELBO (unit-variance Gaussian likelihood)
        neighbor_means, _ = self.posterior(neighbors)
        self.neighborhood(x, neighbors, mean, neighbor_means, center_first=True)
        return x_hat


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nrae-weight", type=float, default=1.0, help="weight of the NRAE term")
    parser.add_argument("--order", type=int, default=1, choices=(1, 2), help="1 = NRAE-L, 2 = NRAE-Q")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="3 epochs of a tiny model (for tests)")
    return parser.parse_args(argv)


def main(argv=None) -> list:
    """Trains with `fit`, returns the per-epoch mean loss (ELBO term + weighted NRAE term)."""
    args = parse_args(argv)
    epochs, hidden = (3, (16,)) if args.smoke else (args.epochs, (128, 128))
    keras.utils.set_random_seed(args.seed)
    points, _ = toy.noisy_sine(n=50, noise=0.3, seed=args.seed)
    graph = NeighborGraph.build(points, k=5, verbose=0)
    dataset = neighborhood_dataset(
        points, graph, batch_size=10, neighbors_per_point=3, include_center=True, seed=args.seed
    )
    latent_dim = 1
    encoder, _ = mlp_autoencoder(points.shape[1:], 2 * latent_dim, hidden=hidden)
    _, decoder = mlp_autoencoder(points.shape[1:], latent_dim, hidden=hidden)
    neighborhood = NeighborhoodReconstructionLoss(
        decoder, order=args.order, kernel=kernels.Binary(lam=1.0), weight=args.nrae_weight
    )
    model = NeighborhoodVAE(encoder, decoder, neighborhood, seed=args.seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(dataset, epochs=epochs, verbose=0 if args.smoke else 2)
    return history.history["loss"]


if __name__ == "__main__":
    main()
