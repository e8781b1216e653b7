"""Encoder/decoder pairs used by the demo, the examples and the benchmarks: MLP and conv."""

from typing import Optional, Sequence, Tuple

import keras
import numpy as np

__all__ = ["conv_autoencoder", "mlp_autoencoder"]


def mlp_autoencoder(
    input_shape: Sequence[int],
    latent_dim: int,
    hidden: Sequence[int] = (512, 512, 512),
    activation: str = "elu",
    output_activation: Optional[str] = None,
    dtype: Optional[str] = None,
) -> Tuple[keras.Model, keras.Model]:
    """MLP encoder (*input_shape) -> (latent_dim,) and its mirror decoder.

    The encoder flattens, applies `hidden` Dense layers and a linear Dense to
    `latent_dim`; the decoder applies the reversed `hidden` layers and a Dense
    to prod(input_shape) with `output_activation` (e.g. "sigmoid" for images
    in [0, 1]), reshaped back to `input_shape`. Use a smooth `activation`
    (ELU, softplus, tanh) for NRAE-Q: a ReLU decoder has zero Hessian.
    """
    input_shape = tuple(int(s) for s in input_shape)
    size = int(np.prod(input_shape))
    dense = lambda units, act: keras.layers.Dense(units, activation=act, dtype=dtype)
    encoder = keras.Sequential(
        [keras.Input(input_shape, dtype=dtype), keras.layers.Flatten(dtype=dtype)]
        + [dense(units, activation) for units in hidden]
        + [dense(latent_dim, None)],
        name="encoder",
    )
    decoder = keras.Sequential(
        [keras.Input((latent_dim,), dtype=dtype)]
        + [dense(units, activation) for units in reversed(hidden)]
        + [dense(size, output_activation), keras.layers.Reshape(input_shape, dtype=dtype)],
        name="decoder",
    )
    return encoder, decoder


_CONV_FILTERS = (32, 64, 128, 256)


def _default_halvings(height: int, width: int) -> int:
    """Stride-2 stages until the feature map would drop below 4×4 or stop dividing evenly (≤ 4)."""
    halvings = 0
    while (
        halvings < len(_CONV_FILTERS)
        and height % 2 ** (halvings + 1) == 0 and width % 2 ** (halvings + 1) == 0
        and min(height, width) // 2 ** (halvings + 1) >= 4
    ):
        halvings += 1
    return halvings


def conv_autoencoder(
    input_shape: Sequence[int],
    latent_dim: int,
    filters: Optional[Sequence[int]] = None,
    kernel_size: int = 4,
    activation: str = "elu",
    output_activation: Optional[str] = "sigmoid",
    dtype: Optional[str] = None,
) -> Tuple[keras.Model, keras.Model]:
    """Conv encoder (H, W, C) -> (latent_dim,) and its mirrored Conv2DTranspose decoder.

    Encoder: one Conv2D(filters[i], kernel_size, stride 2, "same", activation)
    per entry of `filters`, Flatten, linear Dense to `latent_dim`. Decoder:
    Dense(h·w·filters[-1], activation) -> Reshape (h, w, filters[-1]) with
    h = H / 2^n, w = W / 2^n, n = len(filters); then Conv2DTranspose(stride 2)
    stages with filters[-2], ..., filters[0] and `activation`, and a last
    Conv2DTranspose(stride 2) to C channels with `output_activation`.

    The decoder holds only Dense, Reshape and Conv2DTranspose layers with
    elementwise activations, so NRAE takes the exact layer-wise Taylor path
    (`keras_nrae.taylor.layerwise`). Keep `activation` smooth (ELU, softplus, tanh) for
    NRAE-Q. `filters=None` picks (32, 64, ...) with as many stages as halve H
    and W evenly down to no less than 4×4 (at most 4): 2 for 28×28 (7×7),
    3 for 32×32 (4×4), 4 for 64×64 (4×4).
    """
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"conv_autoencoder needs images (H, W, C), got input_shape {input_shape}.")
    height, width, channels = input_shape
    if filters is None:
        filters = _CONV_FILTERS[: _default_halvings(height, width)]
    filters = tuple(int(f) for f in filters)
    scale = 2 ** len(filters)
    if not filters or height % scale or width % scale:
        raise ValueError(
            f"{len(filters)} stride-2 stages need H and W divisible by {scale}, got "
            f"{height}×{width}; pass fewer filters (at least one)."
        )
    conv = lambda cls, units, act: cls(
        units, kernel_size, strides=2, padding="same", activation=act, dtype=dtype
    )
    small = (height // scale, width // scale, filters[-1])
    encoder = keras.Sequential(
        [keras.Input(input_shape, dtype=dtype)]
        + [conv(keras.layers.Conv2D, units, activation) for units in filters]
        + [keras.layers.Flatten(dtype=dtype), keras.layers.Dense(latent_dim, dtype=dtype)],
        name="encoder",
    )
    decoder = keras.Sequential(
        [
            keras.Input((latent_dim,), dtype=dtype),
            keras.layers.Dense(int(np.prod(small)), activation=activation, dtype=dtype),
            keras.layers.Reshape(small, dtype=dtype),
        ]
        + [conv(keras.layers.Conv2DTranspose, units, activation) for units in reversed(filters[:-1])]
        + [conv(keras.layers.Conv2DTranspose, channels, output_activation)],
        name="decoder",
    )
    return encoder, decoder
