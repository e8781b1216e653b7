"""Evaluation metrics: reconstruction error, distance to a known manifold, latent ordering."""

import keras
import numpy as np


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
    rz = _ranks(z) - (len(z) + 1) / 2.0
    rt = _ranks(t) - (len(t) + 1) / 2.0
    denominator = np.sqrt(np.sum(rz**2) * np.sum(rt**2))
    if denominator == 0:
        raise ValueError("z or t is constant: the rank correlation is undefined.")
    return float(abs(np.sum(rz * rt)) / denominator)
