"""Fail early, and say how to fix it, when Keras is not on the TensorFlow backend."""

import keras


def require_tensorflow_backend() -> None:
    """Raise ImportError unless Keras runs on TensorFlow.

    keras-nrae uses `tf.autodiff.ForwardAccumulator`, `tf.data` and
    `tf.distribute`, which exist only on the TensorFlow backend.
    """
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ImportError(
            f"keras_nrae needs Keras on the TensorFlow backend, but Keras is "
            f"configured with the {backend!r} backend. Set the environment "
            f"variable KERAS_BACKEND=tensorflow before importing keras (or set "
            f'"backend": "tensorflow" in ~/.keras/keras.json).'
        )
