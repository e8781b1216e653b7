"""Evaluation metrics: reconstruction error, distance to a known manifold, latent ordering,
and the geometry scores of manifold learning (trustworthiness, continuity, distance ranks)."""

import keras
import numpy as np

from keras_nrae._sklearn import require_sklearn

__all__ = [
    "continuity",
    "distance_rank_correlation",
    "latent_order_correlation",
    "manifold_distance",
    "reconstruction_mse",
    "trustworthiness",
]


def reconstruction_mse(model: keras.Model, x, batch_size: int = 1024) -> float:
    """Per-pixel MSE 1/(N·P) Σ_n ‖x_n − model(x_n)‖² for x (N, *shape) — the paper's Table 1 metric."""
    x = np.asarray(x)
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(f"x must be a non-empty batch (N, *shape), got shape {x.shape}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    total = 0.0
    for start in range(0, len(x), batch_size):
        chunk = x[start : start + batch_size]
        x_hat = np.asarray(model(chunk, training=False), dtype=np.float64)
        if x_hat.shape != chunk.shape:
            raise ValueError(
                f"The model maps inputs {chunk.shape[1:]} to outputs {x_hat.shape[1:]}; "
                f"a reconstruction must have the input's shape."
            )
        total += float(np.sum((chunk.astype(np.float64) - x_hat) ** 2))
    return total / x.size


def _as_2d(name: str, a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or len(a) == 0:
        raise ValueError(f"{name} must be a non-empty (N, D) array, got shape {a.shape}.")
    return a


def manifold_distance(points, manifold_points, chunk_size: int = 1024) -> float:
    """1/N Σ_n min_k ‖p_n − q_k‖ for points (N, D) and a dense manifold sample (K, D)."""
    points = _as_2d("points", points)
    manifold_points = _as_2d("manifold_points", manifold_points)
    if points.shape[1] != manifold_points.shape[1]:
        raise ValueError(
            f"points have D={points.shape[1]} but manifold_points have "
            f"D={manifold_points.shape[1]}."
        )
    manifold_norms = np.sum(manifold_points**2, axis=1)
    nearest = []
    for start in range(0, len(points), chunk_size):
        p = points[start : start + chunk_size]
        squared = np.sum(p**2, axis=1)[:, None] - 2 * p @ manifold_points.T + manifold_norms
        nearest.append(np.sqrt(np.maximum(squared.min(axis=1), 0.0)))
    return float(np.mean(np.concatenate(nearest)))


def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of a 1-D array, ties given their average rank."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    # Each run of equal values [start, end) gets the mean of ranks start+1 .. end.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    run_ranks = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    ranks = np.empty(len(values))
    ranks[order] = run_ranks
    return ranks


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman ρ of a, b (N,): the Pearson correlation of their ranks (ties averaged)."""
    ra = _ranks(a) - (len(a) + 1) / 2.0
    rb = _ranks(b) - (len(b) + 1) / 2.0
    denominator = np.sqrt(np.sum(ra**2) * np.sum(rb**2))
    if denominator == 0:
        raise ValueError("One of the two is constant: the rank correlation is undefined.")
    return float(np.sum(ra * rb) / denominator)


def latent_order_correlation(z, t) -> float:
    """|Spearman ρ| between a 1-D code z (N,) or (N, 1) and the true parameter t (N,).

    ρ is the Pearson correlation of the ranks (ties averaged). 1.0 means z
    orders the points exactly as t does (in either direction): the learned
    1-D manifold has the right connectivity.
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim == 2 and z.shape[1] == 1:
        z = z[:, 0]
    t = np.asarray(t, dtype=np.float64)
    if z.ndim != 1 or t.ndim != 1:
        raise ValueError(
            f"z must be (N,) or (N, 1) and t (N,); got shapes {z.shape} and {t.shape}."
        )
    if len(z) != len(t) or len(z) < 2:
        raise ValueError(f"z and t need the same length N >= 2, got {len(z)} and {len(t)}.")
    if not (np.all(np.isfinite(z)) and np.all(np.isfinite(t))):
        raise ValueError("z and t must be finite.")
    return abs(_spearman(z, t))


# -- geometry of an embedding ------------------------------------------------------


def _data_and_embedding(x, z):
    """x (N, ...) flattened to (N, D) and z (N, d), float64, finite, same N >= 3."""
    x = np.asarray(x, dtype=np.float64)
    x = _as_2d("x", x.reshape(len(x), -1) if x.ndim > 2 else x)
    z = _as_2d("z", z)
    if len(x) != len(z) or len(x) < 3:
        raise ValueError(f"x and z need the same number of points N >= 3, got {len(x)} and {len(z)}.")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(z))):
        raise ValueError("x and z must be finite.")
    return x, z


def trustworthiness(x, z, n_neighbors: int = 5) -> float:
    """Trustworthiness of an embedding z (N, d) of x (N, D) (Venna & Kaski 2001), in [0, 1].

    T(k) = 1 − 2 / (N k (2N − 3k − 1)) Σ_i Σ_{j ∈ U_k(i)} (r(i, j) − k), where
    U_k(i) are the k nearest neighbours of i in z that are not among its k
    nearest in x, and r(i, j) is j's rank among i's neighbours in x. 1 means
    no false neighbours: points close in z are close in x. Computed by
    `sklearn.manifold.trustworthiness` (needs k < N / 2); images are flattened.
    """
    require_sklearn("keras_nrae.metrics.trustworthiness")
    from sklearn.manifold import trustworthiness as sklearn_trustworthiness

    x, z = _data_and_embedding(x, z)
    return float(sklearn_trustworthiness(x, z, n_neighbors=n_neighbors))


def continuity(x, z, n_neighbors: int = 5) -> float:
    """Continuity of an embedding z (N, d) of x (N, D), in [0, 1]: trustworthiness with
    the roles of the spaces swapped, `trustworthiness(z, x)`.

    It penalises the k nearest neighbours of i in x that z moves out of its k
    nearest, by their rank in z: 1 means the embedding tears no neighbourhood apart.
    """
    x, z = _data_and_embedding(x, z)
    return trustworthiness(z, x, n_neighbors)


def _pairwise_distances(points: np.ndarray) -> np.ndarray:
    """The N(N − 1)/2 Euclidean distances ‖p_i − p_j‖, i < j, of points (N, D)."""
    i, j = np.triu_indices(len(points), k=1)
    squared = np.sum(points**2, axis=1)
    gram = points @ points.T
    return np.sqrt(np.maximum(squared[i] + squared[j] - 2 * gram[i, j], 0.0))


def distance_rank_correlation(x, z) -> float:
    """Spearman ρ between the N(N − 1)/2 pairwise Euclidean distances in x (N, D) and in z (N, d).

    1 means z orders all pairs by distance exactly as x does (the global
    geometry is kept up to a monotone map); memory O(N²), so sample large N.
    """
    x, z = _data_and_embedding(x, z)
    return _spearman(_pairwise_distances(x), _pairwise_distances(z))
