"""Several replicas and machines: a MultiWorkerMirroredStrategy that gives up on absent peers, and input each worker reads only its share of.

`tf.distribute.MultiWorkerMirroredStrategy()` blocks inside TensorFlow's C++
runtime, holding the GIL, until every worker of `TF_CONFIG` has joined; a peer
that never starts makes it wait without end (TensorFlow 2.20 offers no timeout
for this wait, and nothing in the process can interrupt it).

`distribute_neighborhood_dataset` gives `fit` a `neighborhood_dataset` whose
workers each read only the rows of their replicas' share of every global batch.
"""

import os
import subprocess
import sys
from typing import Any

import tensorflow as tf

from keras_nrae.graph import NeighborGraph
from keras_nrae.pipeline import neighborhood_dataset

__all__ = ["distribute_neighborhood_dataset", "multi_worker_strategy"]

_WATCHDOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_peer_watchdog.py")


def multi_worker_strategy(
    peer_timeout_s: float = 600.0, **kwargs: Any
) -> tf.distribute.MultiWorkerMirroredStrategy:
    """`tf.distribute.MultiWorkerMirroredStrategy(**kwargs)`, or the process killed if the cluster does not form in time.

    If the other workers of `TF_CONFIG` have not all joined within
    `peer_timeout_s` seconds, a watchdog process writes to stderr which peers
    cannot be reached and kills this process (SIGKILL). Call it first in the
    program, before any other TensorFlow op, as for the strategy itself.
    """
    watchdog = subprocess.Popen(
        [sys.executable, _WATCHDOG, str(os.getpid()), str(peer_timeout_s)], stdin=subprocess.PIPE
    )
    try:
        return tf.distribute.MultiWorkerMirroredStrategy(**kwargs)
    finally:
        watchdog.stdin.close()
        watchdog.wait()


def distribute_neighborhood_dataset(
    strategy: tf.distribute.Strategy, x, graph: NeighborGraph, batch_size: int, **kwargs: Any
) -> tf.distribute.DistributedDataset:
    """`neighborhood_dataset(x, graph, batch_size, **kwargs)` split among strategy's replicas before the read.

    batch_size is the global batch B. The global batches are those of one
    process with the same arguments (the same centres, order and neighbour
    draws, from the shared seed); each replica gets B / replicas of them, as
    `fit` splits a plain `neighborhood_dataset`, but each worker reads only the
    rows of its own replicas' shares (about 1/W of an epoch's rows for W
    workers) instead of every row of every global batch. Pass the result to
    `model.fit`. Needs B divisible by `strategy.num_replicas_in_sync` and
    drop_remainder (the default). Under MultiWorkerMirroredStrategy every
    worker must call it with the same arguments, as for the strategy itself.
    """
    return strategy.distribute_datasets_from_function(
        lambda context: neighborhood_dataset(x, graph, batch_size, input_context=context, **kwargs)
    )
