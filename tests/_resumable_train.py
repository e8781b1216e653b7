"""Train 4 epochs with BackupAndRestore; optionally die right after epoch 2.

Usage: python _resumable_train.py WORKDIR [--die-after-epoch N]

Writes into WORKDIR: log.csv (CSVLogger, appended across runs), epochs.txt
(one line per epoch begun), killed.npz (weights and optimizer variables just
before dying), resumed.npz (the same right after BackupAndRestore restored
them) and final.npz (at the end of training).
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_nrae import NeighborhoodReconstructionModel, kernels  # noqa: E402
from keras_nrae.architectures import mlp_autoencoder  # noqa: E402

EPOCHS = 4


def _state(model):
    arrays = [v.numpy() for v in model.weights + model.optimizer.variables]
    state = {f"v{i}": a for i, a in enumerate(arrays)}
    return {"iterations": int(model.optimizer.iterations), **state}


class _Recorder(keras.callbacks.Callback):
    def __init__(self, workdir, die_after_epoch):
        super().__init__()
        self.workdir = workdir
        self.die_after_epoch = die_after_epoch

    def _save(self, name):
        np.savez(os.path.join(self.workdir, name), **_state(self.model))

    def on_train_begin(self, logs=None):
        self._save("resumed.npz")

    def on_epoch_begin(self, epoch, logs=None):
        with open(os.path.join(self.workdir, "epochs.txt"), "a") as f:
            f.write(f"{epoch}\n")

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.die_after_epoch:
            self._save("killed.npz")
            os._exit(17)  # no cleanup, like a preempted worker

    def on_train_end(self, logs=None):
        self._save("final.npz")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir")
    parser.add_argument("--die-after-epoch", type=int, default=0)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype("float32")
    neighbors = np.concatenate([x[:, None], rng.normal(size=(16, 2, 4))], 1).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices({"x": x, "neighbors": neighbors}).batch(4)
    encoder, decoder = mlp_autoencoder((4,), 2, hidden=(16,), activation="tanh")
    model = NeighborhoodReconstructionModel(encoder, decoder, order=1, kernel=kernels.Binary(0.5))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(
        dataset,
        epochs=EPOCHS,
        verbose=0,
        callbacks=[  # BackupAndRestore first: it must back up before the recorder dies
            keras.callbacks.BackupAndRestore(os.path.join(args.workdir, "backup")),
            keras.callbacks.CSVLogger(os.path.join(args.workdir, "log.csv"), append=True),
            _Recorder(args.workdir, args.die_after_epoch),
        ],
    )


if __name__ == "__main__":
    main()
