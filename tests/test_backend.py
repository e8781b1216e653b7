"""Importing keras_nrae with another Keras backend fails with a fix-it message."""

import os
import subprocess
import sys


def test_non_tensorflow_backend_is_refused():
    env = {**os.environ, "KERAS_BACKEND": "numpy"}
    result = subprocess.run(
        [sys.executable, "-c", "import keras_nrae"], env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "needs Keras on the TensorFlow backend" in result.stderr
    assert "'numpy' backend" in result.stderr
    assert "KERAS_BACKEND=tensorflow" in result.stderr
