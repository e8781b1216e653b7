"""Encoder/decoder pairs used by the demo, the examples and the benchmarks."""

from typing import Optional, Sequence, Tuple

import keras
import numpy as np


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
