"""XLA on CPU: one NRAE-L train_step with and without jit_compile, beside a plain AE step.

MLP 784-256-256-16 (ELU, sigmoid output), B = 128 centres with M = 5 slots
(slot 0 the centre), Adam, float32. Prints the median of 3 steps after one
warm-up step, and the XLA / no-XLA ratio of each row.

    python benchmarks/xla_cpu.py
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_nrae import NeighborhoodReconstructionModel  # noqa: E402
from keras_nrae.architectures import mlp_autoencoder  # noqa: E402

B, M, D, LATENT, STEPS = 128, 5, 784, 16, 3


def median_step_ms(step) -> float:
    step()
    times = []
    for _ in range(STEPS):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(B, D)).astype("float32")
    neighbors = rng.uniform(size=(B, M, D)).astype("float32")
    neighbors[:, 0] = x
    batches = {"AE (plain batch)": tf.constant(x),
               "NRAE-L": {"x": tf.constant(x), "neighbors": tf.constant(neighbors)}}
    print(f"TF {tf.__version__}, CPU, B={B}, M={M}, median ms of {STEPS} train_steps")
    print(f"  {'row':18} {'no XLA':>9} {'XLA':>9} {'XLA/no':>7}")
    for name, batch in batches.items():
        times = []
        for jit in (False, True):
            model = NeighborhoodReconstructionModel(
                *mlp_autoencoder((D,), LATENT, hidden=(256, 256), output_activation="sigmoid")
            )
            model.compile("adam")
            model.optimizer.build(model.trainable_variables)
            step = tf.function(lambda: model.train_step(batch), jit_compile=jit)
            times.append(median_step_ms(step))
        print(f"  {name:18} {times[0]:9.1f} {times[1]:9.1f} {times[1] / times[0]:7.1f}")


if __name__ == "__main__":
    main()
