"""Neighbour weights w(x, x') as functions of the squared data-space distance.

A kernel maps squared distances ‖x − x'‖² (B, M) to weights (B, M). Weights
are data, not parameters: no gradient flows through them.
"""

from typing import Any, Union

import keras
import tensorflow as tf

from keras_nrae._checks import non_negative, positive

__all__ = ["Binary", "Gaussian", "Kernel", "get", "serialize"]

_PACKAGE = "keras_nrae"


class Kernel:
    """Base class: `kernel(sq_distances) -> weights`, both (B, M)."""

    def __call__(self, sq_distances: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict) -> "Kernel":
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: Any) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Binary(Kernel):
    """The official code's kernel: 1 where x' is x itself (distance 0), `lam` elsewhere.

    A slot whose neighbour equals the centre exactly (the centre itself, or an
    exact duplicate of it) gets weight 1; every other neighbour gets `lam`.
    """

    def __init__(self, lam: float = 1.0):
        self.lam = non_negative(lam, "lam")

    def __call__(self, sq_distances):
        ones = tf.ones_like(sq_distances)
        return tf.where(sq_distances == 0, ones, self.lam * ones)

    def get_config(self):
        return {"lam": self.lam}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Gaussian(Kernel):
    """Heat kernel w = exp(−‖x − x'‖² / bandwidth²)."""

    def __init__(self, bandwidth: float = 1.0):
        self.bandwidth = positive(bandwidth, "bandwidth")

    def __call__(self, sq_distances):
        return tf.exp(-sq_distances / (self.bandwidth**2))

    def get_config(self):
        return {"bandwidth": self.bandwidth}


_BY_NAME = {"binary": Binary, "gaussian": Gaussian}


def get(identifier: Union[None, str, dict, Kernel]) -> Kernel:
    """A kernel from an instance, a name ("binary", "gaussian"), a config dict or None (Binary())."""
    if identifier is None:
        return Binary()
    if isinstance(identifier, Kernel):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in _BY_NAME:
            raise ValueError(
                f"Unknown kernel {identifier!r}; expected one of {sorted(_BY_NAME)}."
            )
        return _BY_NAME[key]()
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    raise TypeError(f"Cannot interpret {identifier!r} as a kernel.")


def serialize(kernel: Kernel) -> dict:
    return keras.saving.serialize_keras_object(kernel)
