"""The three Taylor-term methods of `keras_nrae.taylor`, with and without XLA.

Times loss + decoder gradient of Σ‖x − (f(z) + J t [+ ½ tᵀH t])‖² for the
step_time decoder (16 → 512 → 512 → 512 → 784, ELU, sigmoid output), B = 128
centres, M = 4 tangents, float32, through

  layerwise   the terms pushed layer by layer (Sequential decoders)
  vectorized  a ForwardAccumulator inside tf.vectorized_map over M
  repeated    the primal repeated M times, one accumulator over B·M rows

each chosen with `taylor_terms(..., method=...)`.

Prints the median ms of `--steps` interleaved calls per row and each row's
ratio to the layer-wise row without XLA.

    python benchmarks/taylor_paths.py
"""

import argparse
import os
import statistics
import time

if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf

from keras_nrae.taylor import taylor_terms
from keras_nrae.architectures import mlp_autoencoder

B, M, LATENT, SHAPE = 128, 4, 16, (784,)
METHODS = ("layerwise", "vectorized", "repeated")


def loss_and_gradient(method, decoder, z, tangents, targets, order, jit_compile):
    """A tf.function: the squared error of the Taylor expansion and its decoder gradient."""

    def step():
        with tf.GradientTape() as tape:
            value, first, second = taylor_terms(decoder, z, tangents, order, method, training=True)
            expansion = value[:, None] + first + (0.0 if second is None else 0.5 * second)
            loss = tf.reduce_sum(tf.square(targets - expansion))
        return loss, tape.gradient(loss, decoder.trainable_variables)

    return tf.function(step, jit_compile=jit_compile)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed calls per row (default 5)")
    args = parser.parse_args()
    _, decoder = mlp_autoencoder(SHAPE, LATENT, (512, 512, 512), "elu", "sigmoid")
    z = tf.random.stateless_normal((B, LATENT), seed=(0, 1))
    tangents = 0.1 * tf.random.stateless_normal((B, M, LATENT), seed=(0, 2))
    targets = tf.random.stateless_uniform((B, M) + SHAPE, seed=(0, 3))
    print(f"TF {tf.__version__}, B={B}, M={M}, d={LATENT}, median ms of {args.steps} calls (loss + decoder gradient)")
    for order in (1, 2):
        rows = {
            (name, jit): loss_and_gradient(name, decoder, z, tangents, targets, order, jit)
            for name in METHODS
            for jit in (False, True)
        }
        for step in rows.values():
            step()  # trace and compile
        times = {key: [] for key in rows}
        for _ in range(args.steps):
            for key, step in rows.items():
                start = time.perf_counter()
                step()[0].numpy()
                times[key].append(time.perf_counter() - start)
        base = statistics.median(times["layerwise", False])
        print(f"\norder {order}\n  {'path':<11} {'XLA':>4} {'ms':>9} {'x layerwise':>12}")
        for (name, jit), samples in times.items():
            median = statistics.median(samples)
            print(f"  {name:<11} {'on' if jit else 'off':>4} {1e3 * median:9.1f} {median / base:12.2f}")


if __name__ == "__main__":
    main()
