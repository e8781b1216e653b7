"""keras_nrae refuses a non-TensorFlow Keras backend with a fix-it message."""

import subprocess
import sys

import keras
import pytest

from keras_nrae._backend import require_tensorflow_backend


def test_non_tensorflow_backend_is_refused(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(ImportError, match=r"'jax' backend\. Set the environment variable KERAS_BACKEND=tensorflow"):
        require_tensorflow_backend()


def test_tensorflow_backend_passes():
    require_tensorflow_backend()


def test_import_keras_nrae_loads_no_paper_code():
    # Keras itself imports scikit-learn when it is installed (keras.wrappers), so
    # check that keras_nrae loads none of its own scikit-learn code;
    # tests/test_estimator.py imports keras_nrae with scikit-learn missing.
    code = (
        "import sys, keras_nrae; "
        "loaded = sorted(m for m in sys.modules if m.startswith('keras_nrae.paper') or m == 'keras_nrae.estimator'); "
        "print(loaded); sys.exit(1 if loaded else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
