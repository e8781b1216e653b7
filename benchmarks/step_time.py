"""Training-step time of NRAE-L / NRAE-Q against a plain AE step and a naive port.

Every row trains the same autoencoder with Adam on B centres, each with M
neighbours plus the centre itself in slot 0 (`include_center=True`):

  --arch mlp   (default) MLP 784→512→512→512→d, mirrored ELU decoder with a
               sigmoid output, B = 128
  --arch conv  `conv_autoencoder((32, 32, 3), d)`: Conv2D 32-64-128 (stride 2,
               ELU) and the mirrored Conv2DTranspose decoder, sigmoid output,
               B = 64

Rows:

  AE       plain autoencoder step on the same B·(M+1) points
  NRAE-L   NeighborhoodReconstructionModel(order=1), the shipped defaults
  NRAE-Q   NeighborhoodReconstructionModel(order=2)
  NRAE-L*  NRAE-L compiled with check_finite=False: the price of the
           in-step NaN/Inf check (`keras_nrae.finite`) is NRAE-L / NRAE-L*
  naive-L  the straightforward port of the official code: z repeated once per
  naive-Q  slot (centre included), one ForwardAccumulator (nested for Q) over
           all B·(M+1) slots, so f(z) is recomputed per slot

Each step goes through the model's `train_function` (what `model.fit` runs).
All rows of one grid cell are interleaved step by step in this process; the
table prints median ms per step, the ratio to the AE row and the median peak
allocator memory of one step (`tf.config.experimental.get_memory_info`, which works on
CPU through the BFC allocator this script switches on).

    python benchmarks/step_time.py              # d ∈ {2, 16}, M ∈ {1, 4}
    python benchmarks/step_time.py --quick      # d = 16 only, 8 steps
    python benchmarks/step_time.py --xla both   # also jit_compile=True
    python benchmarks/step_time.py --arch conv  # d = 16, M ∈ {1, 4}

On a CPU-only machine `--xla auto` runs jit_compile=False only, which is what
Keras' default `jit_compile="auto"` picks there; with a GPU it runs both.
"""

import argparse
import dataclasses
import os
import statistics
import time
from typing import Callable, Dict, Optional, Tuple

if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

import keras
import numpy as np
import tensorflow as tf

from keras_nrae import NeighborhoodReconstructionModel
from keras_nrae.architectures import conv_autoencoder, mlp_autoencoder
from keras_nrae.losses import squared_distances, weighted_mean


@dataclasses.dataclass(frozen=True)
class Arch:
    """Batch size, example shape, encoder/decoder builder and step-time targets."""

    batch: int
    shape: Tuple[int, ...]
    build: Callable[[Tuple[int, ...], int], Tuple[keras.Model, keras.Model]]
    # row -> (max time × AE, max peak memory × AE or None, min × faster than naive or None)
    targets: Dict[str, Tuple[float, Optional[float], Optional[float]]]
    dims: Tuple[int, ...] = (2, 16)


ARCHS = {
    "mlp": Arch(
        128, (784,), lambda shape, d: mlp_autoencoder(shape, d, output_activation="sigmoid"),
        {"NRAE-L": (1.05, None, 1.3), "NRAE-Q": (1.4, 1.8, 1.5)},
    ),
    "conv": Arch(
        64, (32, 32, 3), conv_autoencoder,
        {"NRAE-L": (1.15, None, None), "NRAE-Q": (1.6, None, None)}, (16,),
    ),
}


def naive_slot_errors(decoder, z, z_slots, targets, order):
    """Per-slot errors (B, S) of the straightforward port, slot 0 not special.

    z (B, d) is repeated once per slot, one ForwardAccumulator (two nested for
    order 2) runs over all B·S rows, so f(z) is recomputed for every slot.
    """
    batch, slots = tf.shape(z)[0], z_slots.shape[1]
    primal = tf.repeat(z, slots, axis=0)
    tangent = tf.reshape(z_slots, tf.shape(primal)) - primal
    if order == 1:
        with tf.autodiff.ForwardAccumulator(primal, tangent) as acc:
            value = decoder(primal)
        recon = value + acc.jvp(value)
    else:
        with tf.autodiff.ForwardAccumulator(primal, tangent) as outer:
            with tf.autodiff.ForwardAccumulator(primal, tangent) as inner:
                value = decoder(primal)
            first = inner.jvp(value)
        recon = value + first + 0.5 * outer.jvp(first)
    recon = tf.reshape(recon, tf.concat([[batch, slots], tf.shape(recon)[1:]], 0))
    features = list(range(2, targets.shape.rank))
    return tf.reduce_sum(tf.math.squared_difference(targets, recon), axis=features)


class NaiveModel(NeighborhoodReconstructionModel):
    """The official code's step: encode centres and all slots, expand naively."""

    def _neighborhood_loss(self, x, neighbors, training):
        batch, slots = tf.shape(x)[0], neighbors.shape[1]
        flat = tf.reshape(neighbors, tf.concat([[-1], tf.shape(x)[1:]], 0))
        z_all = self.encoder(tf.concat([x, flat], 0), training=training)
        z_slots = tf.reshape(z_all[batch:], [batch, slots, z_all.shape[-1]])
        decoder = lambda z: self.decoder(z, training=training)
        errors = naive_slot_errors(decoder, z_all[:batch], z_slots, neighbors, self.order)
        return weighted_mean(errors, self.kernel(squared_distances(x, neighbors))), neighbors[:, 0]


def models_to_time(arch, latent_dim, jit_compile):
    """{row name: compiled model}, all starting from the same weights."""
    rows = {  # name: (class, order, check_finite)
        "AE": (NeighborhoodReconstructionModel, 1, True),
        "NRAE-L": (NeighborhoodReconstructionModel, 1, True),
        "NRAE-L*": (NeighborhoodReconstructionModel, 1, False),
        "NRAE-Q": (NeighborhoodReconstructionModel, 2, True),
        "naive-L": (NaiveModel, 1, True),
        "naive-Q": (NaiveModel, 2, True),
    }
    models = {}
    for name, (cls, order, check_finite) in rows.items():
        keras.utils.set_random_seed(0)
        encoder, decoder = arch.build(arch.shape, latent_dim)
        model = cls(encoder, decoder, order=order)
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit_compile, check_finite=check_finite
        )
        models[name] = model
    return models


def step_batches(arch, slots):
    """(plain AE batch of B·(M+1) points, NRAE batch with the centre in slot 0)."""
    rng = np.random.default_rng(0)
    x = rng.random((arch.batch,) + arch.shape, dtype=np.float32)
    noise = 0.05 * rng.standard_normal((arch.batch, slots - 1) + arch.shape).astype(np.float32)
    neighbors = np.concatenate([x[:, None], np.clip(x[:, None] + noise, 0, 1)], axis=1)
    plain = neighbors.reshape((-1,) + arch.shape)
    return plain, {"x": x, "neighbors": neighbors}


def stepper(model, batch):
    """A zero-argument callable running one `train_function` step, synchronised."""
    iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
    model.make_train_function()

    def step():
        logs = model.train_function(iterator)
        return float(logs["loss"])

    return step


def _run_cell(arch, latent_dim, neighbors, jit_compile, steps, warmup):
    """{row: (median s, median peak bytes)} for one grid cell, rows interleaved."""
    plain, batch = step_batches(arch, neighbors + 1)
    models = models_to_time(arch, latent_dim, jit_compile)
    steppers = {
        name: stepper(model, plain if name == "AE" else batch)
        for name, model in models.items()
    }
    times = {name: [] for name in steppers}
    peaks = {name: [] for name in steppers}
    for i in range(warmup + steps):
        for name, step in steppers.items():
            tf.config.experimental.reset_memory_stats("CPU:0")
            before = tf.config.experimental.get_memory_info("CPU:0")["current"]
            start = time.perf_counter()
            step()
            elapsed = time.perf_counter() - start
            peak = tf.config.experimental.get_memory_info("CPU:0")["peak"] - before
            if i >= warmup:
                times[name].append(elapsed)
                peaks[name].append(peak)
    return {name: (statistics.median(times[name]), statistics.median(peaks[name])) for name in steppers}


def _check(arch, results, latent_dim):
    """Target verdicts for the NRAE rows of one cell (targets apply at d = 16)."""
    ae_time, ae_peak = results["AE"]
    lines = []
    for name, (max_time, max_peak, min_vs_naive) in arch.targets.items():
        time_ratio, peak_ratio = results[name][0] / ae_time, results[name][1] / ae_peak
        vs_naive = results["naive-" + name[-1]][0] / results[name][0]
        ok = (
            time_ratio <= max_time
            and (max_peak is None or peak_ratio <= max_peak)
            and (min_vs_naive is None or vs_naive >= min_vs_naive)
        )
        verdict = ("PASS" if ok else "FAIL") if latent_dim == 16 else "n/a"
        peak_target = "" if max_peak is None else f" (target <= {max_peak})"
        naive_target = "none" if min_vs_naive is None else f">= {min_vs_naive}"
        lines.append(
            f"  {name}: {time_ratio:.2f}x AE time (target <= {max_time}), "
            f"{peak_ratio:.2f}x AE peak memory{peak_target}, "
            f"{vs_naive:.2f}x faster than naive (target {naive_target}): {verdict}"
        )
    check_ratio = results["NRAE-L"][0] / results["NRAE-L*"][0]
    lines.append(f"  check_finite: NRAE-L takes {check_ratio:.3f}x the time of NRAE-L* (unchecked)")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="d=16 only, 8 steps")
    parser.add_argument("--arch", choices=sorted(ARCHS), default="mlp", help="see the module doc")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per row")
    parser.add_argument(
        "--xla",
        choices=("auto", "off", "on", "both"),
        default="auto",
        help="jit_compile settings to run; auto = both with a GPU, off on CPU "
        "only (Keras' own jit_compile='auto' default there)",
    )
    args = parser.parse_args()
    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    xla = args.xla if args.xla != "auto" else ("both" if has_gpu else "off")
    jit_settings = {"off": (False,), "on": (True,), "both": (False, True)}[xla]
    steps = args.steps or (8 if args.quick else 20)
    warmup = 2
    arch = ARCHS[args.arch]
    dims = (16,) if args.quick else arch.dims
    print(
        f"TF {tf.__version__}, Keras {keras.__version__}, device "
        f"{'GPU' if has_gpu else 'CPU'}, --arch {args.arch} {arch.shape}, "
        f"B={arch.batch}, float32, {steps} timed steps after {warmup} warm-up, "
        f"median ms per train_function step"
    )
    for jit_compile in jit_settings:
        for latent_dim in dims:
            for neighbors in (1, 4):
                results = _run_cell(arch, latent_dim, neighbors, jit_compile, steps, warmup)
                ae = results["AE"][0]
                print(f"\nd={latent_dim} M={neighbors} jit_compile={jit_compile}")
                print(f"  {'row':<8} {'ms':>8} {'x AE':>6} {'steps/s':>8} {'peak MiB':>9}")
                for name, (median, peak) in results.items():
                    print(
                        f"  {name:<8} {1e3 * median:8.1f} {median / ae:6.2f} "
                        f"{1 / median:8.1f} {peak / 2**20:9.1f}"
                    )
                print("\n".join(_check(arch, results, latent_dim)))


if __name__ == "__main__":
    main()
