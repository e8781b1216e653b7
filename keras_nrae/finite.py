"""`fit` stops with an error on the first step whose loss, gradients or weights are NaN/Inf.

The step itself only counts (three int32 counters in an on-read metric that is
not in `model.metrics`, so the logs are untouched): no host callback runs
inside it, so the check is XLA/TPU-safe and under `tf.distribute` needs no
extra collective. The `StopOnNonFinite` callback, which `fit` adds to every
`Autoencoder` compiled with `check_finite=True` (the default), reads the
counters after each batch and raises `NonFiniteError` naming the epoch, the
step and what was non-finite.

Under a `keras.optimizers.LossScaleOptimizer` (mixed precision) scaled
gradients overflow by design, and the optimizer skips those steps; there
only the loss and the weights are checked.
"""

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

_KINDS = ("loss", "gradient", "weight")


class NonFiniteError(FloatingPointError):
    """Training produced a NaN or Inf loss, gradient or weight."""


class NonFiniteCounts(keras.metrics.Metric):
    """Steps (since the last reset) whose loss / gradients / weights had a NaN or Inf, shape (3,)."""

    def __init__(self, name: str = "non_finite_counts", **kwargs):
        super().__init__(name=name, **kwargs)
        self.counts = self.add_variable((len(_KINDS),), "zeros", dtype="int32", name="counts")

    def update_state(self, loss, gradients: Sequence, weights: Sequence) -> None:
        """Count this step: loss (scalar), gradients and weights (lists of tensors; empty skips)."""
        flags = [tf.logical_not(_all_finite(group)) for group in ([loss], gradients, weights)]
        self.counts.assign_add(tf.cast(tf.stack(flags), "int32"))

    def result(self):
        return self.counts.value

    def reset_state(self):
        self.counts.assign(tf.zeros_like(self.counts))


def _all_finite(tensors: Sequence) -> tf.Tensor:
    """True when every entry of every (float) tensor is finite; True for an empty list."""
    values = [tf.convert_to_tensor(t) for t in tensors]
    finite = [tf.reduce_all(tf.math.is_finite(v)) for v in values if v.dtype.is_floating]
    return tf.reduce_all(tf.stack(finite)) if finite else tf.constant(True)


class StopOnNonFinite(keras.callbacks.Callback):
    """Raises `NonFiniteError` after the first batch whose step counted a NaN/Inf.

    `fit` adds it by itself when the model was compiled with
    `check_finite=True`; its counters are `model.non_finite_counts`.
    Unlike `keras.callbacks.TerminateOnNaN` it fails loudly, sees gradients
    and weights, not only the logged loss, and names the non-finite weights.
    """

    def __init__(self):
        super().__init__()
        self._epoch = 0
        self._steps_done = 0

    def on_train_begin(self, logs=None):
        self.model.non_finite_counts.reset_state()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._steps_done = 0

    def on_train_batch_end(self, batch, logs=None):
        counts = np.asarray(self.model.non_finite_counts.result())
        first = self._steps_done + 1
        self._steps_done = batch + 1
        if counts.any():
            raise NonFiniteError(self._message(counts, first, batch + 1))

    def _message(self, counts: np.ndarray, first: int, last: int) -> str:
        names = {"loss": "the loss", "gradient": "a gradient", "weight": "a weight"}
        what = [names[kind] for kind, count in zip(_KINDS, counts) if count]
        what = ", ".join(what[:-1]) + " and " + what[-1] if len(what) > 1 else what[0]
        steps = f"step {last}" if first == last else f"one of steps {first}–{last}"
        bad = [v.path for v in self.model.trainable_variables if not np.isfinite(np.asarray(v)).all()]
        if bad:
            listed = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
            weights = f"Non-finite weights now: {listed}; reload a checkpoint before training on."
        else:
            weights = "The weights are still finite."
        return (
            f"Training stopped: {what} became NaN or Inf at epoch {self._epoch + 1}, {steps}. "
            f"{weights} Look for NaN/Inf in the input batches, or lower the learning rate; "
            f"compile(check_finite=False) turns this check off."
        )
