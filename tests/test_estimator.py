"""keras_nrae.NRAE follows scikit-learn's estimator conventions and embeds the S-curve faithfully."""

import pickle
import subprocess
import sys

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import make_s_curve  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from keras_nrae import NRAE, architectures, export_saved_model  # noqa: E402
from keras_nrae.estimator import _fold_standardization  # noqa: E402
from keras_nrae.metrics import trustworthiness  # noqa: E402
from tests._numerics import assert_close  # noqa: E402

# Tiny settings for the API tests: one step of a tiny MLP per fit (run eagerly, about a second).
TINY = dict(n_neighbors=3, hidden=(8,), epochs=1, random_state=0)

# scikit-learn's checks that NRAE may fail, and why (marked xfail, not strict: they
# pass on some runs). All the others pass; check_array_api_input skips itself unless
# SCIPY_ARRAY_API is set.
_FLOAT32_ROWS = (
    "transform runs float32 TensorFlow matmuls, whose rounding of a row depends on "
    "its position in the batch: results agree to ~1 ulp (rel. ~5e-7), the check "
    "demands atol 1e-9 / rtol 1e-7"
)
EXPECTED_FAILED_CHECKS = {
    "check_methods_sample_order_invariance": _FLOAT32_ROWS,
    "check_methods_subset_invariance": _FLOAT32_ROWS,
}


def _data(n=40, d=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


@pytest.fixture(scope="module")
def fitted():
    x = _data()
    return NRAE(**TINY).fit(x), x


# -- scikit-learn's own checks ------------------------------------------------------------


@parametrize_with_checks(
    [NRAE(n_neighbors=3, hidden=(8,), epochs=1, random_state=0)],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# -- the estimator API --------------------------------------------------------------------


def test_constructor_only_stores_parameters_and_clone_copies_them():
    est = NRAE(n_components=3, order=2, lam=0.5, hidden=(4, 4), random_state=7)
    assert est.get_params()["order"] == 2 and est.get_params()["hidden"] == (4, 4)
    assert not [name for name in vars(est) if name.endswith("_")]
    assert est.set_params(lam=2.0, epochs=5) is est and (est.lam, est.epochs) == (2.0, 5)
    copy = clone(est)
    assert copy is not est and copy.get_params() == est.get_params()


def test_fit_transform_inverse_transform_shapes(fitted):
    est, x = fitted
    assert est.fit(x) is est
    z = est.transform(x)
    assert z.shape == (40, 2) and z.dtype == np.float32
    assert est.inverse_transform(z).shape == (40, 3)
    np.testing.assert_array_equal(NRAE(**TINY).fit_transform(x), z)
    assert est.n_features_in_ == 3 and est.input_shape_ == (3,)
    assert isinstance(est.encoder_, keras.Model) and isinstance(est.decoder_, keras.Model)
    assert est.model_.encoder is est.encoder_ and est.model_.order == 1
    assert est.graph_.k == 3 and est.graph_.num_points == 40
    assert len(est.history_["loss"]) == TINY["epochs"]
    np.testing.assert_array_equal(est.get_feature_names_out(), ["nrae0", "nrae1"])


def test_model_works_in_the_units_of_x(fitted):
    # The standardisation is folded into the first and last Dense layers.
    est, x = fitted
    assert_close(est.model_.encode(x), est.transform(x))
    assert_close(est.model_(x.astype("float32")), est.inverse_transform(est.transform(x)))
    assert est.mean_ == pytest.approx(x.mean(axis=0))
    assert est.scale_ == pytest.approx(np.sqrt(np.mean((x - x.mean(axis=0)) ** 2)))


def test_fold_standardization_is_exact():
    encoder, decoder = architectures.mlp_autoencoder((3,), 2, hidden=(5, 4))
    rng = np.random.default_rng(1)
    x, z = rng.normal(size=(6, 3)).astype("float32"), rng.normal(size=(6, 2)).astype("float32")
    mean, scale = np.array([1.0, -2.0, 0.5]), 3.0
    expected_z = encoder((x - mean) / scale).numpy()
    expected_x = scale * decoder(z).numpy() + mean
    _fold_standardization(encoder, decoder, mean, scale)
    np.testing.assert_allclose(encoder(x), expected_z, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(decoder(z), expected_x, rtol=1e-5, atol=1e-5)


def test_transform_before_fit_raises_not_fitted():
    with pytest.raises(NotFittedError):
        NRAE().transform(_data())
    with pytest.raises(NotFittedError):
        NRAE().inverse_transform(np.zeros((2, 2)))


def test_same_random_state_same_embedding_other_state_differs():
    x = _data()
    first = NRAE(**TINY).fit_transform(x)
    np.testing.assert_array_equal(NRAE(**TINY).fit_transform(x), first)
    other = NRAE(**{**TINY, "random_state": 1}).fit_transform(x)
    assert not np.allclose(other, first)


def test_verbose_shows_keras_progress(capsys):
    NRAE(**{**TINY, "epochs": 2, "verbose": 1}).fit(_data())
    assert "Epoch 2/2" in capsys.readouterr().out
    NRAE(**TINY).fit(_data())
    assert capsys.readouterr().out == ""


# -- inputs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "x, error, match",
    [
        (np.where(np.arange(120).reshape(40, 3) == 7, np.nan, _data()), ValueError, "NaN"),
        (np.where(np.arange(120).reshape(40, 3) == 7, np.inf, _data()), ValueError, "infinity"),
        (np.zeros(40), ValueError, "Expected 2D array"),
        (_data(n=3), ValueError, "n_neighbors=3 needs more than 3 samples, got 3"),
        (np.array([["a", "b"]] * 40), ValueError, "convert"),
    ],
)
def test_bad_input_is_refused(x, error, match):
    with pytest.raises(error, match=match):
        NRAE(**TINY).fit(x)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_components": 0}, "n_components must be an integer >= 1"),
        ({"order": 3}, "order must be 1"),
        ({"lam": -1.0}, "lam must be >= 0"),
        ({"hidden": (8, 0)}, "each hidden layer size must be an integer >= 1"),
        ({"hidden": 8}, "hidden must be a sequence of layer sizes"),
        ({"epochs": 0}, "epochs must be an integer >= 1"),
        ({"learning_rate": 0}, "learning_rate must be > 0"),
        ({"architecture": "rnn"}, "architecture must be one of"),
        ({"neighbors_per_point": 5}, "raise n_neighbors or lower neighbors_per_point"),
    ],
)
def test_bad_parameters_are_refused_at_fit(params, match):
    est = NRAE(**{**TINY, **params})  # the constructor only stores them
    with pytest.raises(ValueError, match=match):
        est.fit(_data())


def test_transform_checks_the_number_of_features_and_codes(fitted):
    est, _ = fitted
    with pytest.raises(ValueError, match="X has 4 features, but NRAE is expecting 3"):
        est.transform(_data(d=4))
    with pytest.raises(ValueError, match="Z has 3 columns, but NRAE has n_components=2"):
        est.inverse_transform(np.zeros((5, 3)))


def test_images_are_flattened_for_the_mlp():
    images = np.random.default_rng(2).uniform(size=(30, 4, 4, 1)).astype("float32")
    est = NRAE(**TINY).fit(images)
    assert est.input_shape_ == (4, 4, 1) and est.n_features_in_ == 16
    z = est.transform(images)
    np.testing.assert_array_equal(est.transform(images.reshape(30, 16)), z)
    assert est.inverse_transform(z).shape == (30, 4, 4, 1)
    with pytest.raises(ValueError, match=r"samples of shape \(4, 2, 2\), but NRAE was fitted on samples of shape \(4, 4, 1\)"):
        est.transform(images.reshape(30, 4, 2, 2))


def test_conv_architecture_uses_conv_autoencoder(monkeypatch):
    images = np.random.default_rng(2).uniform(size=(30, 4, 4, 1)).astype("float32")
    with pytest.raises(ValueError, match='architecture="conv" needs images'):
        NRAE(**TINY, architecture="conv").fit(images.reshape(30, 16))
    calls = []

    def conv_autoencoder(input_shape, latent_dim, **options):
        calls.append((input_shape, latent_dim, options))
        return architectures.mlp_autoencoder(input_shape, latent_dim, hidden=(8,))

    monkeypatch.setattr("keras_nrae.recipe.conv_autoencoder", conv_autoencoder)
    est = NRAE(**TINY, architecture="conv").fit(images)
    assert calls == [((4, 4, 1), 2, {"activation": "elu", "output_activation": "sigmoid"})]
    assert est.scale_ == 1.0 and not est.mean_.any()  # X is used as given
    assert est.transform(images).shape == (30, 2)


# -- pickling and export ---------------------------------------------------------------------


def test_pickle_round_trip_transforms_the_same(fitted):
    est, x = fitted
    z = est.transform(x)
    loaded = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(loaded.transform(x), z)
    np.testing.assert_array_equal(loaded.inverse_transform(z), est.inverse_transform(z))
    assert loaded.get_params() == est.get_params()
    np.testing.assert_array_equal(loaded.graph_.indices, est.graph_.indices)
    assert loaded.history_ == est.history_
    assert loaded.model_.encoder is loaded.encoder_
    assert "encoder_" in vars(est)  # pickling leaves the original intact


def test_model_exports_as_saved_model(fitted, tmp_path):
    est, x = fitted
    export_saved_model(est.model_, str(tmp_path / "nrae"))
    served = tf.saved_model.load(str(tmp_path / "nrae"))
    assert_close(served.encode(x.astype("float32")), est.transform(x))


# -- scikit-learn is an optional extra ---------------------------------------------------------


def test_missing_sklearn_says_how_to_install_it():
    code = """
import sys
sys.modules["sklearn"] = None  # import sklearn now raises ImportError
import keras_nrae
assert "NRAE" in dir(keras_nrae)
for attempt in ("keras_nrae.NRAE", "keras_nrae.metrics.trustworthiness([[0.0]] * 3, [[0.0]] * 3)"):
    try:
        eval(attempt)
    except ImportError as e:
        print(e)
    else:
        raise SystemExit(attempt + " did not raise ImportError")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 and all("pip install keras-nrae[sklearn]" in line for line in lines)
    assert lines[0].startswith("keras_nrae.NRAE needs scikit-learn")


# -- item 2: a faithful embedding out of the box -------------------------------------------------


def test_default_embedding_of_the_s_curve_is_trustworthy():
    x, _ = make_s_curve(1000, random_state=0)
    nrae = trustworthiness(x, NRAE(random_state=0).fit_transform(x), n_neighbors=10)
    pca = trustworthiness(x, PCA(2).fit_transform(x), n_neighbors=10)
    assert pca < 0.95 and nrae > 0.98 and nrae - pca > 0.04
