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

`load_saved_model` and `load_model` (a `.keras` file) load as TensorFlow and
Keras do, but a missing, empty, truncated or corrupt file fails with an error
naming it and what to do.
"""

import os
from typing import Union

import keras
import tensorflow as tf

from keras_nrae._files import READ_ERRORS, FileKind, atomic_path, file_format
from keras_nrae.model import Autoencoder

__all__ = ["export_saved_model", "load_model", "load_saved_model"]

_SAVED_MODEL = FileKind(
    "a SavedModel folder", "export the model again with keras_nrae.export_saved_model(model, path)",
    folder=True,
)
_KERAS_FILE = FileKind("a .keras model file", "save the model again with model.save(path)")


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
    the wrong shape or dtype raises instead of computing. The SavedModel is
    written to a temporary sibling folder that then replaces path, so an
    export that fails keeps the SavedModel path held before. Raises
    FileExistsError when path is a folder with files but no SavedModel
    (it would be replaced).
    """
    path = os.fspath(path)
    if os.path.isdir(path) and os.listdir(path) and not tf.saved_model.contains_saved_model(path):
        raise FileExistsError(
            f"{path} is a folder with files but no SavedModel, and export_saved_model replaces "
            f"the folder at path: export to a new folder or to an earlier export's."
        )
    feature_shape = _feature_shape(model)
    dtype = model.encoder.input_dtype
    encoder_output_shape = tuple(model.encoder.compute_output_shape((None, *feature_shape)))
    latent_shape = tuple(model.latent_shape(encoder_output_shape)[1:])
    x_spec = tf.TensorSpec((None, *feature_shape), dtype, name="x")
    z_spec = tf.TensorSpec((None, *latent_shape), dtype, name="z")
    encode = lambda x: tf.cast(model.code(model.encoder(x, training=False)), dtype)
    decode = lambda z: tf.cast(model.decoder(z, training=False), dtype)
    archive = keras.export.ExportArchive()
    archive.track(model.encoder)
    archive.track(model.decoder)
    # The first endpoint is also exported as serving_default.
    archive.add_endpoint("reconstruct", lambda x: decode(encode(x)), [x_spec])
    archive.add_endpoint("encode", encode, [x_spec])
    archive.add_endpoint("decode", decode, [z_spec])
    with atomic_path(path) as temporary:
        archive.write_out(temporary, verbose=False)


def load_saved_model(path: Union[str, os.PathLike]):
    """`tf.saved_model.load(path)`, e.g. of an `export_saved_model` export.

    Raises FileNotFoundError when path does not exist and
    `keras_nrae.FileFormatError` when it is a file, an empty folder, or a
    truncated or corrupt SavedModel.
    """
    with _SAVED_MODEL.reading(path, READ_ERRORS + (tf.errors.OpError,)):
        return tf.saved_model.load(os.fspath(path))


def load_model(path: Union[str, os.PathLike], **kwargs) -> keras.Model:
    """`keras.saving.load_model(path, **kwargs)`, e.g. of a `.keras` file (`model.save`).

    Raises FileNotFoundError when path does not exist and
    `keras_nrae.FileFormatError` when it is empty, a folder, truncated,
    corrupt or (a `.keras` path) not a zip archive.
    """
    with _KERAS_FILE.reading(path):
        if os.fspath(path).endswith(".keras") and file_format(path) != "zip":
            raise _KERAS_FILE.unreadable(path, "not a readable zip archive")
        return keras.saving.load_model(path, **kwargs)
