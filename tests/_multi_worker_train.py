"""Train every model kind of keras_nrae on fixed global batches; one worker of a cluster, or alone.

Usage: python _multi_worker_train.py OUT_JSON [--peer-timeout S]
           [--resume-dir DIR [--die-after-epoch N] [--only-resumable]]

With TF_CONFIG set the process is one worker of a MultiWorkerMirroredStrategy
cluster (created first, before any other TensorFlow op; the process is killed
if its peers do not join within S seconds);
without it, the single-process reference (no strategy). Every kind trains
EPOCHS epochs of the same 2 global batches of GLOBAL_BATCH centres, from seed
0, with SGD. Writes to OUT_JSON, per kind, the final weights and the per-epoch
losses, plus the replica count and this worker's per-replica batch sizes.

With --resume-dir NRAE-L then trains once more, as "resumable", under
BackupAndRestore(DIR/worker<task>) (each worker its own backup); with
--die-after-epoch N both workers exit at once after epoch N is backed up, like
preempted machines; --only-resumable skips the other runs.
"""

import argparse
import contextlib
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_nrae import NeighborhoodReconstructionModel, baselines, kernels  # noqa: E402
from keras_nrae.architectures import mlp_autoencoder  # noqa: E402
from keras_nrae.distribute import multi_worker_strategy  # noqa: E402

GLOBAL_BATCH = 8
EPOCHS = 3


def _nrae(order):
    return lambda e, d: NeighborhoodReconstructionModel(e, d, order=order, kernel=kernels.Binary(0.5))


# kind: (model class or factory, encoder output width = latent width × this)
KINDS = {
    "Autoencoder": (baselines.Autoencoder, 1),
    "NRAE-L": (_nrae(1), 1),
    "NRAE-Q": (_nrae(2), 1),
    "DenoisingAutoencoder": (lambda e, d: baselines.DenoisingAutoencoder(e, d, seed=0), 1),
    "ContractiveAutoencoder": (baselines.ContractiveAutoencoder, 1),
    "VariationalAutoencoder": (lambda e, d: baselines.VariationalAutoencoder(e, d, seed=0), 2),
    "WassersteinAutoencoder": (lambda e, d: baselines.WassersteinAutoencoder(e, d, seed=0), 1),
    "StructurePreservingAutoencoder": (baselines.StructurePreservingAutoencoder, 1),
}


def _dataset():
    """2 global batches of {"x": (8, 4), "neighbors": (8, 3, 4)}, centre in slot 0; the same every epoch."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2 * GLOBAL_BATCH, 4)).astype("float32")
    neighbors = np.concatenate([x[:, None], rng.normal(size=(2 * GLOBAL_BATCH, 2, 4))], 1)
    dataset = tf.data.Dataset.from_tensor_slices({"x": x, "neighbors": neighbors.astype("float32")})
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.batch(GLOBAL_BATCH, drop_remainder=True).with_options(options)


def _model(kind, strategy):
    make, widen = KINDS[kind]
    keras.utils.set_random_seed(0)
    with strategy.scope() if strategy else contextlib.nullcontext():
        encoder, _ = mlp_autoencoder((4,), 2 * widen, hidden=(8,), activation="tanh")
        _, decoder = mlp_autoencoder((4,), 2, hidden=(8,), activation="tanh")
        model = make(encoder, decoder)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
    return model


def _replica_batch_sizes(strategy):
    if strategy is None:
        return [GLOBAL_BATCH]
    batch = next(iter(strategy.experimental_distribute_dataset(_dataset())))
    return [int(t.shape[0]) for t in strategy.experimental_local_results(batch["x"])]


class _DieAfterEpoch(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            os._exit(17)  # no cleanup, like a preempted worker


def _train(kind, strategy, callbacks=()):
    model = _model(kind, strategy)
    history = model.fit(_dataset(), epochs=EPOCHS, verbose=0, callbacks=list(callbacks))
    return {
        "weights": [v.numpy().tolist() for v in model.trainable_variables],
        "losses": history.history["loss"],
    }


def _write(path, results):
    with open(path, "w") as f:
        json.dump(results, f)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--peer-timeout", type=float, default=120.0)
    parser.add_argument("--resume-dir")
    parser.add_argument("--only-resumable", action="store_true")
    parser.add_argument("--die-after-epoch", type=int, default=0)
    args = parser.parse_args()
    strategy = multi_worker_strategy(args.peer_timeout) if "TF_CONFIG" in os.environ else None
    results = {
        "replicas": strategy.num_replicas_in_sync if strategy else 1,
        "replica_batch_sizes": _replica_batch_sizes(strategy),
    }
    if not args.only_resumable:
        results.update({kind: _train(kind, strategy) for kind in KINDS})
        _write(args.out, results)
    if args.resume_dir:
        task = json.loads(os.environ.get("TF_CONFIG", '{"task": {"index": 0}}'))["task"]["index"]
        callbacks = [  # BackupAndRestore first: it must back up before the worker dies
            keras.callbacks.BackupAndRestore(os.path.join(args.resume_dir, f"worker{task}")),
            _DieAfterEpoch(args.die_after_epoch),
        ]
        results["resumable"] = _train("NRAE-L", strategy, callbacks)
        _write(args.out, results)


if __name__ == "__main__":
    main()
