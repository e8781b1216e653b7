"""keras_nrae refuses a non-TensorFlow Keras backend with a fix-it message."""

import keras
import pytest

from keras_nrae._backend import require_tensorflow_backend


def test_non_tensorflow_backend_is_refused(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(ImportError, match=r"'jax' backend\. Set the environment variable KERAS_BACKEND=tensorflow"):
        require_tensorflow_backend()


def test_tensorflow_backend_passes():
    require_tensorflow_backend()
