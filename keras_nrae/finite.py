"""`fit` stops with an error on the first step whose loss or gradients are NaN/Inf, or that leaves a weight so.

The step itself only counts (two int32 counters, loss and gradients, in an
on-read metric that is not in `model.metrics`, so the logs are untouched): no
host callback runs inside it, so the check is XLA/TPU-safe and under
`tf.distribute` needs no extra collective. Gradients are checked through one
sum per tensor (a NaN or Inf entry makes the sum non-finite; so does a sum past
float32's range, ~3e38), the cheapest full reduction. The `StopOnNonFinite`
callback, which `fit` adds to every `Autoencoder` compiled with
`check_finite=True` (the default), reads the counters after each batch and
raises `NonFiniteError` naming the epoch, the step, what was non-finite and
the weights that are. Weights are read on the host only then and when
training ends: a weight that an update makes non-finite makes the next step's
loss NaN, and the last step is checked at the end.

Under a `keras.optimizers.LossScaleOptimizer` (mixed precision) scaled
gradients overflow by design, and the optimizer skips those steps; there
only the loss and the weights are checked.
"""

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

__all__ = ["NonFiniteCounts", "NonFiniteError", "StopOnNonFinite"]

_KINDS = ("the loss", "a gradient")


class NonFiniteError(FloatingPointError):
    """Training produced a NaN or Inf loss, gradient or weight."""


class NonFiniteCounts(keras.metrics.Metric):
    """Steps (since the last reset) whose loss / gradients had a NaN or Inf, shape (2,)."""

    def __init__(self, name: str = "non_finite_counts", **kwargs):
        super().__init__(name=name, **kwargs)
        self.counts = self.add_variable((len(_KINDS),), "zeros", dtype="int32", name="counts")

    def update_state(self, loss, gradients: Sequence) -> None:
        """Count this step: loss (scalar), gradients (a list of tensors; empty: not checked)."""
        flags = [tf.logical_not(_finite_sum([loss])), tf.logical_not(_finite_sum(gradients))]
        self.counts.assign_add(tf.cast(tf.stack(flags), "int32"))

    def result(self):
        return self.counts.value

    def reset_state(self):
        self.counts.assign(tf.zeros_like(self.counts))


def _finite_sum(tensors: Sequence) -> tf.Tensor:
    """True when the float32 sum of all entries of `tensors` is finite; True for an empty list."""
    sums = [tf.reduce_sum(tf.cast(t, "float32")) for t in tensors]
    return tf.math.is_finite(tf.add_n(sums)) if sums else tf.constant(True)


class StopOnNonFinite(keras.callbacks.Callback):
    """Raises `NonFiniteError` after the first batch whose step counted a NaN/Inf, or
    at the end of training when a weight is non-finite.

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
        first, self._steps_done = self._steps_done + 1, batch + 1
        if counts.any():
            what = " and ".join(kind for kind, count in zip(_KINDS, counts) if count)
            steps = f"step {batch + 1}" if first == batch + 1 else f"one of steps {first}–{batch + 1}"
            raise NonFiniteError(self._message(f"{what} became NaN or Inf at epoch {self._epoch + 1}, {steps}"))

    def on_train_end(self, logs=None):
        if self._non_finite_weights():
            raise NonFiniteError(self._message(
                f"a weight became NaN or Inf in the last step (epoch {self._epoch + 1}, step {self._steps_done})"
            ))

    def _non_finite_weights(self) -> list:
        return [v.path for v in self.model.trainable_variables if not np.isfinite(np.asarray(v)).all()]

    def _message(self, what: str) -> str:
        bad = self._non_finite_weights()
        if bad:
            listed = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
            weights = f"Non-finite weights now: {listed}; reload a checkpoint before training on."
        else:
            weights = "The weights are still finite."
        return (
            f"Training stopped: {what}. {weights} Look for NaN/Inf in the input batches, or lower "
            f"the learning rate; compile(check_finite=False) turns this check off."
        )
