import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pytest

from keras_nrae.metrics import (
    continuity,
    distance_rank_correlation,
    latent_order_correlation,
    manifold_distance,
    reconstruction_mse,
    trustworthiness,
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


# -- geometry scores, against the textbook definitions computed with loops ---------------


def _neighbour_ranks(points, i):
    """{j: rank of j among i's neighbours by distance, 1 = nearest}, by a loop."""
    distances = {j: np.linalg.norm(points[i] - points[j]) for j in range(len(points)) if j != i}
    return {j: r + 1 for r, j in enumerate(sorted(distances, key=distances.get))}


def _rank_penalty_score(ranked, neighbours, k):
    """1 − 2/(N k (2N − 3k − 1)) Σ_i Σ_{j in i's k-NN in `neighbours`, not in `ranked`}
    (rank of j in `ranked` − k): trustworthiness for (x, z), continuity for (z, x)."""
    n = len(ranked)
    total = 0
    for i in range(n):
        rank, near = _neighbour_ranks(ranked, i), _neighbour_ranks(neighbours, i)
        total += sum(rank[j] - k for j, r in near.items() if r <= k and rank[j] > k)
    return 1 - 2 * total / (n * k * (2 * n - 3 * k - 1))


def _geometry_case():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(14, 5))
    return x, x[:, :2] + 0.7 * rng.normal(size=(14, 2))


@pytest.mark.parametrize("k", [1, 3, 5])
def test_trustworthiness_and_continuity_match_the_definitions(k):
    x, z = _geometry_case()
    assert trustworthiness(x, z, k) == pytest.approx(_rank_penalty_score(x, z, k), abs=1e-12)
    assert continuity(x, z, k) == pytest.approx(_rank_penalty_score(z, x, k), abs=1e-12)
    assert trustworthiness(x, z, k) != pytest.approx(continuity(x, z, k))


def test_geometry_scores_are_one_for_a_similarity():
    x, _ = _geometry_case()
    rotation, _ = np.linalg.qr(np.random.default_rng(4).normal(size=(5, 5)))
    z = 3.0 * x @ rotation + 1.0
    assert trustworthiness(x, z, 3) == pytest.approx(1.0)
    assert continuity(x, z, 3) == pytest.approx(1.0)
    assert distance_rank_correlation(x, z) == pytest.approx(1.0)


def test_distance_rank_correlation_matches_loops():
    x, z = _geometry_case()
    pairs = [(i, j) for i in range(len(x)) for j in range(i + 1, len(x))]
    dx = np.array([np.linalg.norm(x[i] - x[j]) for i, j in pairs])
    dz = np.array([np.linalg.norm(z[i] - z[j]) for i, j in pairs])
    # Without ties, a value's rank is 1 + the number of smaller values.
    ranks = lambda d: np.array([1 + np.sum(d < v) for v in d], dtype=float)
    expected = np.corrcoef(ranks(dx), ranks(dz))[0, 1]
    assert distance_rank_correlation(x, z) == pytest.approx(expected, abs=1e-12)


def test_geometry_scores_flatten_images():
    x, z = _geometry_case()
    images = x[:, :4].reshape(14, 2, 2, 1)
    assert distance_rank_correlation(images, z) == distance_rank_correlation(x[:, :4], z)
    assert trustworthiness(images, z, 2) == trustworthiness(x[:, :4], z, 2)


@pytest.mark.parametrize(
    "x, z, match",
    [
        (np.zeros((5, 3)), np.zeros((4, 2)), "same number of points"),
        (np.zeros(5), np.zeros((5, 2)), "x must be a non-empty"),
        (np.full((5, 3), np.nan), np.zeros((5, 2)), "finite"),
    ],
)
def test_geometry_scores_bad_input(x, z, match):
    for score in (trustworthiness, continuity, distance_rank_correlation):
        with pytest.raises(ValueError, match=match):
            score(x, z)
