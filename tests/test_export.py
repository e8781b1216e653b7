"""export_saved_model: signatures, specs, and serving without keras_nrae."""

import os
import shutil
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nrae import NeighborhoodReconstructionModel, export_saved_model
from keras_nrae.architectures import mlp_autoencoder

SHAPE = (2, 3)
SIGNATURES = ("encode", "decode", "reconstruct", "serving_default")

# Runs in a fresh interpreter: loads the SavedModel with plain TensorFlow,
# evaluates every signature and records whether a wrong shape is refused.
_SERVE = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    import tensorflow as tf
    export_dir, io = sys.argv[1], sys.argv[2]
    inputs = np.load(os.path.join(io, "inputs.npz"))
    x, z = tf.constant(inputs["x"]), tf.constant(inputs["z"])
    loaded = tf.saved_model.load(export_dir)
    out = {
        "encode": loaded.encode(x),
        "decode": loaded.decode(z),
        "reconstruct": loaded.reconstruct(x),
        "serving_default": loaded.signatures["serving_default"](x=x)["output_0"],
    }
    try:
        loaded.reconstruct(tf.zeros((2, 5)))
        wrong_shape = "accepted"
    except (TypeError, ValueError) as e:
        wrong_shape = type(e).__name__
    assert "keras_nrae" not in sys.modules, "the SavedModel pulled in keras_nrae"
    np.savez(
        os.path.join(io, "outputs.npz"),
        wrong_shape=wrong_shape,
        signatures=sorted(loaded.signatures),
        **{k: v.numpy() for k, v in out.items()},
    )
    """
)


def _model(dtype=None):
    encoder, decoder = mlp_autoencoder(SHAPE, 2, hidden=(8,), activation="tanh", dtype=dtype)
    return NeighborhoodReconstructionModel(encoder, decoder)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(1)
    model = _model()
    path = tmp_path_factory.mktemp("export") / "nrae"
    export_saved_model(model, path)
    return model, path


def test_fresh_process_serves_same_outputs_without_keras_nrae(exported, tmp_path):
    model, path = exported
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(5, *SHAPE)).astype("float32")
    z = rng.normal(size=(7, 2)).astype("float32")
    np.savez(tmp_path / "inputs.npz", x=x, z=z)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-c", _SERVE, str(path), str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = np.load(tmp_path / "outputs.npz")
    assert sorted(out["signatures"]) == sorted(SIGNATURES)
    # Keras forward passes, layer by layer, as the independent reference.
    z_keras = model.encoder(x).numpy()
    x_hat = model.decoder(model.encoder(x)).numpy()
    np.testing.assert_allclose(out["encode"], z_keras, atol=1e-6)
    np.testing.assert_allclose(out["decode"], model.decoder(z).numpy(), atol=1e-6)
    np.testing.assert_allclose(out["reconstruct"], x_hat, atol=1e-6)
    np.testing.assert_allclose(out["serving_default"], x_hat, atol=1e-6)
    assert str(out["wrong_shape"]) != "accepted"


def test_signature_specs_follow_model_shape_and_dtype(tmp_path):
    export_saved_model(_model(dtype="float64"), tmp_path)
    loaded = tf.saved_model.load(str(tmp_path))
    specs = {
        name: (fn.structured_input_signature[1], fn.structured_outputs["output_0"])
        for name, fn in loaded.signatures.items()
    }
    x_spec = tf.TensorSpec((None, *SHAPE), tf.float64)
    z_spec = tf.TensorSpec((None, 2), tf.float64)
    for name, (inputs, output) in specs.items():
        [spec] = inputs.values()
        expected_in = z_spec if name == "decode" else x_spec
        expected_out = z_spec if name == "encode" else x_spec
        assert (spec.shape.as_list(), spec.dtype) == (expected_in.shape.as_list(), tf.float64)
        assert (output.shape.as_list(), output.dtype) == (expected_out.shape.as_list(), tf.float64)


@pytest.mark.skipif(shutil.which("saved_model_cli") is None, reason="saved_model_cli not on PATH")
def test_saved_model_cli_lists_the_signatures(exported):
    _, path = exported
    proc = subprocess.run(
        ["saved_model_cli", "show", "--all", "--dir", str(path)],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in SIGNATURES:
        assert f"signature_def['{name}']" in proc.stdout


def test_unbuilt_model_is_refused(tmp_path):
    encoder = keras.Sequential([keras.layers.Dense(2)])
    decoder = keras.Sequential([keras.layers.Dense(4)])
    with pytest.raises(ValueError, match="not built"):
        export_saved_model(NeighborhoodReconstructionModel(encoder, decoder), tmp_path)
