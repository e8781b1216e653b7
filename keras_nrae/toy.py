"""Data of the paper's toy experiments, each with its ground truth.

* `noisy_sine`: points on y = sin x, x ∈ [−π, π], with Gaussian noise (the
  de-noising experiment), and the noiseless curve sampled densely.
* `sparse_spiral`: a few points on the spiral (r cos θ, 0.6 r sin θ) (the
  connectivity experiment), their curve position and the dense spiral.
* `rotated_digit` / `shifted_digit`: one image rotated or shifted along a
  1-D parameter (the MNIST experiments), with that parameter.

The curves follow the official code (Gabe-YHLee/NRAE-public,
loader/synthetic_dataset.py and loader/MNIST_dataset.py).
"""

from typing import Tuple

import keras
import numpy as np

from keras_nrae._checks import integer_at_least, non_negative

__all__ = ["noisy_sine", "rotated_digit", "shifted_digit", "sparse_spiral"]

Curve = Tuple[np.ndarray, np.ndarray]


def sine_curve(t: np.ndarray) -> np.ndarray:
    """(sin curve points (N, 2)) = (x, sin x) for x = t (N,)."""
    return np.stack([t, np.sin(t)], axis=1)


def noisy_sine(
    n: int = 50, noise: float = 0.3, seed: int = 0, dense: int = 2000
) -> Curve:
    """n points (x_i, sin x_i) + N(0, noise² I), x_i evenly spaced on [−π, π].

    Returns:
      (points (n, 2) float32, curve (dense, 2) float64: the noiseless curve).
    """
    integer_at_least(n, "n", 2)
    integer_at_least(dense, "dense", 2)
    non_negative(noise, "noise")
    rng = np.random.default_rng(seed)
    points = sine_curve(np.linspace(-np.pi, np.pi, n))
    points = points + noise * rng.standard_normal(points.shape)
    return points.astype("float32"), sine_curve(np.linspace(-np.pi, np.pi, dense))


def spiral_curve(t: np.ndarray) -> np.ndarray:
    """Spiral points (N, 2) at positions t ∈ [0, 1] (N,): radius 0.1 + 2.9 t, angle 2π t."""
    radius, angle = 0.1 + 2.9 * t, 2 * np.pi * t
    return np.stack([radius * np.cos(angle), 0.6 * radius * np.sin(angle)], axis=1)


def sparse_spiral(
    n: int = 30, noise: float = 0.01, seed: int = 0, dense: int = 2000
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n points at positions t_i = i/n along the spiral, + N(0, noise² I).

    Consecutive points are farther apart along the curve than some points on
    adjacent turns are across it, which is what breaks a plain autoencoder's
    ordering.

    Returns:
      (points (n, 2) float32, t (n,) the true positions in [0, 1),
        curve (dense, 2) float64: the spiral over the same range of t).
    """
    integer_at_least(n, "n", 2)
    integer_at_least(dense, "dense", 2)
    non_negative(noise, "noise")
    rng = np.random.default_rng(seed)
    t = np.arange(n) / n
    points = spiral_curve(t) + noise * rng.standard_normal((n, 2))
    curve = spiral_curve(np.linspace(0.0, t[-1], dense))
    return points.astype("float32"), t, curve


def _as_image(image) -> np.ndarray:
    """(H, W) or (H, W, C) -> float32 (H, W, C)."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3:
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {image.shape}.")
    if not np.issubdtype(image.dtype, np.floating):
        raise TypeError(
            f"image must be floating point (e.g. in [0, 1]), got {image.dtype}."
        )
    return image.astype("float32")


def _transform(image: np.ndarray, angles_deg, shifts, scale: float) -> np.ndarray:
    """image (H, W, C) scaled by `scale`, rotated by angles (N,) degrees about
    its centre, then shifted right by shifts (N,) pixels; bilinear, zero fill.

    Output pixel p comes from input pixel c + R(−θ)(p − c − (s, 0)) / scale,
    with (x, y) = (column, row) and c the image centre.
    """
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale!r}.")
    height, width = image.shape[:2]
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    theta = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    cos, sin = np.cos(theta) / scale, np.sin(theta) / scale
    a = np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], -2)  # (N, 2, 2)
    shift = np.stack([np.asarray(shifts, np.float64), np.zeros_like(theta)], -1)
    offset = centre - np.einsum("nij,nj->ni", a, centre + shift)
    transforms = np.concatenate(
        [a[:, 0], offset[:, :1], a[:, 1], offset[:, 1:], np.zeros((len(theta), 2))],
        axis=1,
    )
    images = np.repeat(image[None], len(theta), axis=0)
    out = keras.ops.image.affine_transform(
        images, transforms.astype("float32"), interpolation="bilinear", fill_mode="constant"
    )
    return keras.ops.convert_to_numpy(out)


def rotated_digit(
    image, n: int = 100, degrees: float = 180.0, scale: float = 0.5
) -> Tuple[np.ndarray, np.ndarray]:
    """`image` scaled by `scale` and rotated by angles i·degrees/n, i = 0..n−1.

    The paper's rotated-MNIST set is one digit, scale 0.5, 100 angles over
    180° (the scale keeps every rotation inside the frame).

    Args:
      image: (H, W) or (H, W, C) float image.

    Returns:
      (images (n, H, W, C) float32, angles (n,) in degrees).
    """
    integer_at_least(n, "n", 2)
    image = _as_image(image)
    angles = np.arange(n) * degrees / n
    return _transform(image, angles, np.zeros(n), scale), angles


def shifted_digit(
    image, n: int = 100, max_shift: float = 10.0, scale: float = 0.5
) -> Tuple[np.ndarray, np.ndarray]:
    """`image` scaled by `scale` and shifted horizontally by n shifts evenly
    spaced on [−max_shift, max_shift] pixels (bilinear for fractional shifts).

    Args:
      image: (H, W) or (H, W, C) float image.

    Returns:
      (images (n, H, W, C) float32, shifts (n,) in pixels, positive = right).
    """
    integer_at_least(n, "n", 2)
    image = _as_image(image)
    shifts = np.linspace(-max_shift, max_shift, n)
    return _transform(image, np.zeros(n), shifts, scale), shifts
