"""A MultiWorkerMirroredStrategy that gives up on absent peers instead of waiting for them forever.

`tf.distribute.MultiWorkerMirroredStrategy()` blocks inside TensorFlow's C++
runtime, holding the GIL, until every worker of `TF_CONFIG` has joined; a peer
that never starts makes it wait without end (TensorFlow 2.20 offers no timeout
for this wait, and nothing in the process can interrupt it).
"""

import os
import subprocess
import sys
from typing import Any

import tensorflow as tf

__all__ = ["multi_worker_strategy"]

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
