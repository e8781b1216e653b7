"""keras_nrae.toy: the generators against closed forms and numpy image operations."""

import numpy as np
import pytest

from keras_nrae import toy


def test_noisy_sine_without_noise_lies_on_the_sine_curve():
    points, curve = toy.noisy_sine(n=50, noise=0.0, dense=300)
    np.testing.assert_allclose(points[:, 0], np.linspace(-np.pi, np.pi, 50), rtol=0, atol=1e-6)
    np.testing.assert_allclose(points[:, 1], np.sin(points[:, 0]), atol=1e-6)
    assert curve.shape == (300, 2)
    np.testing.assert_allclose(curve[:, 1], np.sin(curve[:, 0]), atol=1e-12)
    np.testing.assert_allclose(curve[[0, -1], 0], [-np.pi, np.pi])


def test_noisy_sine_noise_is_seeded_gaussian_of_the_given_scale():
    clean, _ = toy.noisy_sine(n=20000, noise=0.0)
    noisy, _ = toy.noisy_sine(n=20000, noise=0.3, seed=1)
    residual = noisy - clean
    assert abs(residual.mean()) < 0.01
    np.testing.assert_allclose(residual.std(axis=0), [0.3, 0.3], rtol=0.02)
    np.testing.assert_array_equal(noisy, toy.noisy_sine(n=20000, noise=0.3, seed=1)[0])
    assert not np.array_equal(noisy, toy.noisy_sine(n=20000, noise=0.3, seed=2)[0])
    assert noisy.dtype == np.float32


def test_sparse_spiral_matches_its_closed_form():
    points, t, curve = toy.sparse_spiral(n=30, noise=0.0, dense=500)
    np.testing.assert_allclose(t, np.arange(30) / 30)
    radius = 0.1 + 2.9 * t
    expected = np.stack([radius * np.cos(2 * np.pi * t), 0.6 * radius * np.sin(2 * np.pi * t)], 1)
    np.testing.assert_allclose(points, expected, atol=1e-6)
    assert curve.shape == (500, 2)
    np.testing.assert_allclose(curve[[0, -1]], expected[[0, -1]], atol=1e-6)
    # The dense curve passes through every clean point.
    gaps = np.min(np.linalg.norm(expected[:, None] - curve[None], axis=-1), axis=1)
    assert gaps.max() < 0.02


def _image(size=9, seed=0):
    return np.random.default_rng(seed).uniform(size=(size, size)).astype("float32")


def test_rotated_digit_at_0_and_90_degrees_matches_numpy():
    image = _image()
    images, angles = toy.rotated_digit(image, n=2, degrees=180, scale=1.0)
    np.testing.assert_allclose(angles, [0.0, 90.0])
    assert images.shape == (2, 9, 9, 1)
    np.testing.assert_allclose(images[0, ..., 0], image, atol=1e-5)
    np.testing.assert_allclose(images[1, ..., 0], np.rot90(image, k=-1), atol=1e-5)


def test_rotation_by_180_degrees_in_two_steps_equals_one_step():
    image = _image()
    half = toy.rotated_digit(image, n=2, degrees=360, scale=1.0)[0][1, ..., 0]
    np.testing.assert_allclose(half, np.rot90(image, k=2), atol=1e-5)


def test_shifted_digit_integer_shifts_match_numpy():
    image = _image()
    images, shifts = toy.shifted_digit(image, n=3, max_shift=2, scale=1.0)
    np.testing.assert_allclose(shifts, [-2.0, 0.0, 2.0])
    right = np.zeros_like(image)
    right[:, 2:] = image[:, :-2]
    left = np.zeros_like(image)
    left[:, :-2] = image[:, 2:]
    np.testing.assert_allclose(images[2, ..., 0], right, atol=1e-5)
    np.testing.assert_allclose(images[1, ..., 0], image, atol=1e-5)
    np.testing.assert_allclose(images[0, ..., 0], left, atol=1e-5)


def test_half_scale_shrinks_about_the_centre():
    # A 9x9 image of ones scaled by 0.5 covers exactly the central 5x5 pixels.
    images, _ = toy.shifted_digit(np.ones((9, 9), "float32"), n=2, max_shift=0, scale=0.5)
    expected = np.zeros((9, 9))
    expected[2:7, 2:7] = 1
    np.testing.assert_allclose(images[0, ..., 0], expected, atol=1e-5)


def test_fractional_shift_is_bilinear():
    image = _image()
    images, _ = toy.shifted_digit(image, n=2, max_shift=0.5, scale=1.0)
    # Shift by +0.5 px: each interior pixel is the mean of itself and its left neighbour.
    np.testing.assert_allclose(
        images[1, :, 1:, 0], 0.5 * (image[:, 1:] + image[:, :-1]), atol=1e-5
    )


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="noise"):
        toy.noisy_sine(noise=-0.1)
    with pytest.raises(ValueError, match="n must be"):
        toy.sparse_spiral(n=1)
    with pytest.raises(TypeError, match="floating point"):
        toy.rotated_digit(np.zeros((9, 9), np.uint8))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        toy.rotated_digit(np.zeros((2, 9, 9, 1), "float32"))
    with pytest.raises(ValueError, match="scale"):
        toy.shifted_digit(_image(), scale=0.0)
