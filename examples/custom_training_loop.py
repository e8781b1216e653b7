"""
Title: Training an NRAE with a custom training loop
Author: keras-nrae contributors
Date created: 2026/12/06
Last modified: 2026/12/06
Description: Train an NRAE with a hand-written tf.GradientTape loop and the functional neighbourhood reconstruction loss.
Accelerator: None
"""

"""
## Introduction

`keras_nrae.losses.neighborhood_reconstruction_loss` works on codes, not
inputs: encode the centres and their neighbours yourself, weigh the slots with
any kernel, and differentiate the scalar like any other loss. Data: 50 noisy
points on y = sin x (the paper's de-noising experiment), 1-D latent.

    python examples/custom_training_loop.py [--order 2] [--epochs 300] [--smoke]
"""

"""
## Setup
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_nrae import NeighborGraph, kernels, metrics, neighborhood_dataset  # noqa: E402
from keras_nrae import toy  # noqa: E402
from keras_nrae.architectures import mlp_autoencoder  # noqa: E402
from keras_nrae.losses import neighborhood_reconstruction_loss, squared_distances  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--order", type=int, default=1, choices=(1, 2), help="1 = NRAE-L, 2 = NRAE-Q")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--lam", type=float, default=1.0, help="Binary kernel weight of true neighbours")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="3 epochs of a tiny model (for tests)")
    return parser.parse_args(argv)


def main(argv=None) -> np.ndarray:
    """Trains, prints progress, returns the mean loss of every epoch (epochs,)."""
    args = parse_args(argv)
    epochs, hidden = (3, (16,)) if args.smoke else (args.epochs, (128, 128))
    keras.utils.set_random_seed(args.seed)
    points, curve = toy.noisy_sine(n=50, noise=0.3, seed=args.seed)
    graph = NeighborGraph.build(points, k=5, verbose=0)
    # Slot 0 of every "neighbors" row is the centre itself (include_center).
    dataset = neighborhood_dataset(
        points, graph, batch_size=10, neighbors_per_point=3, include_center=True, seed=args.seed
    )
    encoder, decoder = mlp_autoencoder(points.shape[1:], 1, hidden=hidden)
    kernel = kernels.Binary(lam=args.lam)
    optimizer = keras.optimizers.Adam(1e-3)
    variables = encoder.trainable_variables + decoder.trainable_variables

    @tf.function
    def train_step(batch):
        x, neighbors = batch["x"], batch["neighbors"]  # (B, 2), (B, M, 2)
        with tf.GradientTape() as tape:
            flat = tf.reshape(neighbors, (-1, *points.shape[1:]))
            z_neighbors = tf.reshape(encoder(flat, training=True), (*neighbors.shape[:2], -1))
            loss = neighborhood_reconstruction_loss(
                decoder,
                z=z_neighbors[:, 0],  # the centre's code: slot 0 is the centre
                z_neighbors=z_neighbors,
                x_neighbors=neighbors,
                weights=kernel(squared_distances(x, neighbors)),
                order=args.order,
                center_first=True,
            )
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    losses = []
    for epoch in range(epochs):
        losses.append(np.mean([train_step(batch).numpy() for batch in dataset]))
        if epoch % max(1, epochs // 10) == 0 or epoch == epochs - 1:
            print(f"epoch {epoch + 1:4d}  loss {losses[-1]:.4f}")
    reconstructed = decoder(encoder(points)).numpy()
    print(f"distance of reconstructions to the true curve: "
          f"{metrics.manifold_distance(reconstructed, curve):.4f}")
    return np.array(losses)


if __name__ == "__main__":
    main()
