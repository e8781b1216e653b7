import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pytest

from keras_nrae.metrics import (
    latent_order_correlation,
    manifold_distance,
    reconstruction_mse,
)


class _Scale(keras.Model):
    """x -> c·x, so the per-pixel MSE is (1 − c)² mean(x²) in closed form."""

    def __init__(self, c):
        super().__init__()
        self.c = c

    def call(self, x, training=None):
        return self.c * x


def test_reconstruction_mse_closed_form_across_chunks():
    x = np.random.default_rng(0).uniform(size=(37, 4, 3)).astype("float32")
    expected = (1 - 0.75) ** 2 * np.mean(x.astype(np.float64) ** 2)
    assert reconstruction_mse(_Scale(0.75), x, batch_size=8) == pytest.approx(expected, rel=1e-5)
    assert reconstruction_mse(_Scale(1.0), x) == 0.0


def test_reconstruction_mse_rejects_shape_changing_model():
    with pytest.raises(ValueError, match="input's shape"):
        reconstruction_mse(keras.Sequential([keras.layers.Dense(2)]), np.ones((3, 5), "float32"))


def test_manifold_distance_circle_closed_form():
    # Points at radius r from the origin, unit circle sampled densely: distance |r − 1|.
    theta = np.linspace(0, 2 * np.pi, 20000, endpoint=False)
    circle = np.stack([np.cos(theta), np.sin(theta)], 1)
    rng = np.random.default_rng(1)
    radii = rng.uniform(0.2, 2.0, size=50)
    phi = rng.uniform(0, 2 * np.pi, size=50)
    points = radii[:, None] * np.stack([np.cos(phi), np.sin(phi)], 1)
    got = manifold_distance(points, circle, chunk_size=7)
    assert got == pytest.approx(np.mean(np.abs(radii - 1)), abs=1e-6)
    assert manifold_distance(circle[::100], circle) == pytest.approx(0.0, abs=1e-6)


def test_manifold_distance_rejects_dimension_mismatch():
    with pytest.raises(ValueError, match="D=2 but manifold_points have D=3"):
        manifold_distance(np.zeros((4, 2)), np.zeros((5, 3)))


def test_latent_order_correlation_monotone_is_one():
    t = np.linspace(-3, 3, 41)
    assert latent_order_correlation(np.exp(t), t) == pytest.approx(1.0)
    assert latent_order_correlation(-(t**3)[:, None], t) == pytest.approx(1.0)


def test_latent_order_correlation_matches_textbook_formula_without_ties():
    # Spearman without ties: ρ = 1 − 6 Σ d² / (n (n² − 1)).
    rng = np.random.default_rng(2)
    z, t = rng.normal(size=30), rng.normal(size=30)
    d = np.argsort(np.argsort(z)) - np.argsort(np.argsort(t))
    n = len(z)
    expected = abs(1 - 6 * np.sum(d**2) / (n * (n**2 - 1)))
    assert latent_order_correlation(z, t) == pytest.approx(expected)


def test_latent_order_correlation_averages_ties():
    # z ranks (1.5, 1.5, 3, 4), t ranks (1, 2, 3, 4): Pearson of the ranks by hand.
    z, t = np.array([0.0, 0.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0, 4.0])
    rz, rt = np.array([-1.0, -1.0, 0.5, 1.5]), np.array([-1.5, -0.5, 0.5, 1.5])
    expected = rz @ rt / np.sqrt((rz @ rz) * (rt @ rt))
    assert latent_order_correlation(z, t) == pytest.approx(expected)


@pytest.mark.parametrize(
    "z, t, match",
    [
        (np.zeros((5, 2)), np.arange(5.0), "z must be"),
        (np.arange(4.0), np.arange(5.0), "same length"),
        (np.ones(5), np.arange(5.0), "constant"),
    ],
)
def test_latent_order_correlation_bad_input(z, t, match):
    with pytest.raises(ValueError, match=match):
        latent_order_correlation(z, t)
