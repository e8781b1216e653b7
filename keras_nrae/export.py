"""Export a trained model as a TensorFlow SavedModel for serving.

The SavedModel holds the encoder g and decoder f and three signatures

    encode       x (N, *shape) -> output_0 z = g(x)      (N, d)
    decode       z (N, d)      -> output_0 f(z)          (N, *shape)
    reconstruct  x (N, *shape) -> output_0 f(g(x))       (N, *shape)
    serving_default = reconstruct

with any batch size N, the model's feature shape and its input dtype (the
encoder's `input_dtype`; outputs are cast to it, so a mixed-precision model
serves float32). It loads with `tf.saved_model.load` or TF Serving and needs
neither keras nor keras_nrae. The neighbour graph is not part of it.
"""

import os
from typing import Union

import keras
import tensorflow as tf

from keras_nrae.model import Autoencoder


def _feature_shape(model: keras.Model) -> tuple:
    if not model.built:
        raise ValueError(
            f"{model.name} is not built, so its input shape is unknown. Call "
            f"model.build((None, *feature_shape)) or fit it first, or give the "
            f"encoder a keras.Input."
        )
    return tuple(model.get_build_config()["input_shape"][1:])


def export_saved_model(model: Autoencoder, path: Union[str, os.PathLike]) -> None:
    """Write a built keras_nrae model (NRAE or any baseline) as a SavedModel at `path`.

    See the module docstring for the signatures. Calling one with inputs of
    the wrong shape or dtype raises instead of computing.
    """
    feature_shape = _feature_shape(model)
    dtype = model.encoder.input_dtype
    encoder_output_shape = tuple(model.encoder.compute_output_shape((None, *feature_shape)))
    latent_shape = tuple(model._latent_shape(encoder_output_shape)[1:])
    x_spec = tf.TensorSpec((None, *feature_shape), dtype, name="x")
    z_spec = tf.TensorSpec((None, *latent_shape), dtype, name="z")
    encode = lambda x: tf.cast(model._code(model.encoder(x, training=False)), dtype)
    decode = lambda z: tf.cast(model.decoder(z, training=False), dtype)
    archive = keras.export.ExportArchive()
    archive.track(model.encoder)
    archive.track(model.decoder)
    # The first endpoint is also exported as serving_default.
    archive.add_endpoint("reconstruct", lambda x: decode(encode(x)), [x_spec])
    archive.add_endpoint("encode", encode, [x_spec])
    archive.add_endpoint("decode", decode, [z_spec])
    archive.write_out(os.fspath(path), verbose=False)
