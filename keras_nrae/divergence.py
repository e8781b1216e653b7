"""Telling a training run that went wrong from one that merely ended: `DivergenceMonitor` and `failure_reason`.

A run has diverged when its loss becomes NaN/Inf or explodes (`DivergenceMonitor`,
a callback for any `model.fit`), or when the finished model reconstructs its own
training data worse than their mean does (`failure_reason`): a run that is wrong
from its first epoch on, e.g. sigmoid outputs saturated on the wrong side, never
explodes relative to its lowest loss, but it cannot beat the mean either.
"""

from typing import Optional

import keras
import numpy as np

from keras_nrae.metrics import reconstruction_mse

__all__ = ["DivergenceMonitor", "failure_reason", "mean_image_mse"]


class DivergenceMonitor(keras.callbacks.Callback):
    """Flags a run as diverged (`diverged`, with the cause in `reason`).

    Stops training when the loss is NaN/Inf (checked every batch) or an
    epoch's mean loss exceeds `factor` × the lowest epoch loss so far. At the
    end of a run of two or more epochs it also flags one whose loss never went
    below its first epoch's: such a run went wrong at once, so no later epoch
    can look like an explosion relative to the lowest.
    """

    def __init__(self, factor: float = 10.0):
        super().__init__()
        self.factor = float(factor)
        self.diverged = False
        self.reason = None
        self.epoch_losses = []

    def _stop(self, reason: str):
        self.diverged = True
        self.reason = self.reason or reason
        self.model.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", 0.0))
        if not np.isfinite(loss):
            self._stop(f"loss {loss} in a batch")

    def on_epoch_end(self, epoch, logs=None):
        loss = float((logs or {}).get("loss", 0.0))
        lowest = min(self.epoch_losses, default=np.inf)
        self.epoch_losses.append(loss)
        if not np.isfinite(loss):
            self._stop(f"epoch {epoch + 1} loss {loss}")
        elif loss > self.factor * lowest:
            self._stop(f"epoch {epoch + 1} loss {loss:.4g} > {self.factor:g} × lowest {lowest:.4g}")

    def on_train_end(self, logs=None):
        losses = self.epoch_losses
        if not self.diverged and len(losses) >= 2 and not min(losses[1:]) < losses[0]:
            self.diverged = True
            self.reason = f"loss never improved on its first epoch's {losses[0]:.4g}"


def mean_image_mse(x: np.ndarray) -> float:
    """Per-pixel MSE of predicting x's mean image for every image of x: what any trained autoencoder must beat."""
    x = np.asarray(x)
    return float(np.mean(np.var(x, axis=0, dtype=np.float64)))


def failure_reason(model: keras.Model, x: np.ndarray, factor: Optional[float] = 1.0) -> Optional[str]:
    """Why a finished run on training images x counts as diverged, or None.

    Diverged: its per-pixel MSE on x is NaN/Inf or above `factor` ×
    `mean_image_mse(x)` (factor None: only NaN/Inf). Loss-based checks
    (`DivergenceMonitor`) miss a run that is wrong from its first epoch on,
    e.g. sigmoid outputs saturated on the wrong side; this one does not.
    """
    mse = reconstruction_mse(model, x)
    if not np.isfinite(mse):
        return f"training MSE {mse}"
    if factor is None:
        return None
    trivial = mean_image_mse(x)
    if mse > factor * trivial:
        return (f"training MSE {mse:.4g} > {factor:g} × {trivial:.4g}, "
                f"the MSE of predicting the mean training image")
    return None
