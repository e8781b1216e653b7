"""Image datasets as float32 arrays (N, H, W, C) in [0, 1]: tfds when it can, local files otherwise.

`load_images(name, split)` reads `name` itself when it is a path to an
`.npz` file with uint8 `x_train` / `x_test` (formatted as its file name says,
e.g. `cifar10.npz`); otherwise it tries, in order:
  1. `tfds.load(name)` from data tfds already has (no download);
  2. local files in, for each folder: `data_dir`, `data_dir/<name>`,
     `$KERAS_NRAE_DATA` and `$KERAS_NRAE_DATA/<name>`. A folder holds IDX files
     in the MNIST layout (`train-images-idx3-ubyte[.gz]`,
     `t10k-images-idx3-ubyte[.gz]`) or `<name>.npz` with uint8
     `x_train` / `x_test`; `data_dir` may also be such an `.npz` file;
  3. `tfds.load(name)` with download.
Nothing is looked for anywhere else (no development-only paths).

Whatever the source, the images of a name in `IMAGE_FORMATS` are converted to
that format (the one the paper's Table 1 uses), unless they already have its
shape (e.g. a local `.npz` written in the benchmark format):

  mnist, fashion_mnist, kmnist      28×28×1, as they are
  cifar10, cifar100, svhn_cropped   32×32×3, as they are
  omniglot   tfds gives 105×105×3 black strokes on white: channel mean,
             inverted (strokes 1, background 0), area-resized to 28×28×1
  celeb_a    tfds gives 218×178×3: centre 140×140 crop, area-resized to 64×64×3

Other names are returned as they are.
"""

import dataclasses
import gzip
import math
import os
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

import numpy as np

from keras_nrae._files import FileKind, open_npz

__all__ = ["DATA_ENV_VAR", "IMAGE_FORMATS", "ImageFormat", "load_images", "read_idx", "to_format"]

DATA_ENV_VAR = "KERAS_NRAE_DATA"
_IDX_PREFIX = {"train": "train", "test": "t10k"}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CHUNK = 1000  # images converted at a time
_IDX_FILE = FileKind("an IDX file", "replace it with a complete copy (download it again)")
_IMAGES_NPZ = FileKind(
    "an image .npz file",
    "write one with np.savez(path, x_train=..., x_test=...) of uint8 images (N, H, W[, C])",
)


@dataclasses.dataclass(frozen=True)
class ImageFormat:
    """Target per-image shape (H, W, C) and how to get there from the source images.

    Applied in this order: `grey` (mean over channels), `invert` (1 − x),
    `crop` (centre square of that side), then an area resize to (H, W).
    """

    shape: Tuple[int, int, int]
    grey: bool = False
    invert: bool = False
    crop: Optional[int] = None


IMAGE_FORMATS = {
    **dict.fromkeys(("mnist", "fashion_mnist", "kmnist"), ImageFormat((28, 28, 1))),
    **dict.fromkeys(("cifar10", "cifar100", "svhn_cropped"), ImageFormat((32, 32, 3))),
    "omniglot": ImageFormat((28, 28, 1), grey=True, invert=True),
    "celeb_a": ImageFormat((64, 64, 3), crop=140),
}


def read_idx(path) -> np.ndarray:
    """The array in an IDX file (optionally gzip-compressed), e.g. MNIST's.

    Raises FileNotFoundError when path does not exist and
    `keras_nrae.FileFormatError` when it is empty, truncated, corrupt or not
    an IDX file.
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    with _IDX_FILE.reading(path):
        with opener(path, "rb") as f:
            raw = f.read()
        if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_DTYPES:
            raise _IDX_FILE.error(path, f"bad magic number {raw[:4]!r}")
        shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", raw[3], offset=4))
        values = np.frombuffer(raw, _IDX_DTYPES[raw[2]], offset=4 + 4 * raw[3])
    if values.size != math.prod(shape):
        raise _IDX_FILE.unreadable(
            path, f"its header gives shape {shape}, {math.prod(shape)} values, but it holds {values.size}"
        )
    return values.reshape(shape)


def _as_images(pixels: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W[, C]) -> float32 (N, H, W, C) in [0, 1]."""
    if pixels.dtype != np.uint8:
        raise TypeError(f"Expected uint8 pixels, got dtype {pixels.dtype}.")
    if pixels.ndim == 3:
        pixels = pixels[..., None]
    if pixels.ndim != 4:
        raise ValueError(f"Expected images (N, H, W[, C]), got shape {pixels.shape}.")
    return pixels.astype(np.float32) / 255.0


def to_format(images: np.ndarray, image_format: ImageFormat) -> np.ndarray:
    """float32 images (N, H, W, C) in [0, 1] -> (N, *image_format.shape), as `ImageFormat` says.

    Images that already have the target shape are returned unchanged.
    """
    if images.shape[1:] == image_format.shape:
        return images
    import tensorflow as tf

    x = tf.convert_to_tensor(images)
    if image_format.grey:
        x = tf.reduce_mean(x, axis=-1, keepdims=True)
    if image_format.invert:
        x = 1.0 - x
    if image_format.crop is not None:
        side, (height, width) = image_format.crop, x.shape[1:3]
        if side > min(height, width):
            raise ValueError(f"Cannot crop {side}×{side} from {height}×{width} images.")
        top, left = (height - side) // 2, (width - side) // 2
        x = x[:, top : top + side, left : left + side]
    if x.shape[-1] != image_format.shape[-1]:
        raise ValueError(
            f"Images of shape {images.shape[1:]} do not convert to {image_format.shape}: "
            f"{x.shape[-1]} channels after the conversion."
        )
    x = tf.image.resize(x, image_format.shape[:2], method="area")
    return tf.clip_by_value(x, 0.0, 1.0).numpy()


def _chunks(pixels: np.ndarray) -> List[np.ndarray]:
    """pixels in slices of `_CHUNK` images (one empty slice for no images)."""
    return [pixels[i : i + _CHUNK] for i in range(0, max(len(pixels), 1), _CHUNK)]


def _convert(name: str, batches: Iterable[np.ndarray]) -> np.ndarray:
    """uint8 batches (n, H, W[, C]) -> one float32 array in `IMAGE_FORMATS[name]` (if listed)."""
    image_format = IMAGE_FORMATS.get(name)
    converted = [
        _as_images(batch) if image_format is None else to_format(_as_images(batch), image_format)
        for batch in batches
    ]
    return np.concatenate(converted)


def _folders(name: str, data_dir: Optional[str]) -> List[Path]:
    folders = []
    for base in (data_dir, os.environ.get(DATA_ENV_VAR)):
        if base:
            folders += [Path(base), Path(base) / name]
    return list(dict.fromkeys(folders))


def _load_local(name: str, split: str, folder: Path) -> Optional[np.ndarray]:
    """Images from IDX or .npz files at folder, or None when it has none."""
    if folder.is_file() and folder.suffix == ".npz":
        npz = folder
    else:
        for suffix in (".gz", ""):
            idx = folder / f"{_IDX_PREFIX[split]}-images-idx3-ubyte{suffix}"
            if idx.is_file():
                return _convert(name, _chunks(read_idx(idx)))
        npz = folder / f"{name}.npz"
    if not npz.is_file():
        return None
    key = f"x_{split}"
    with _IMAGES_NPZ.reading(npz), open_npz(npz, _IMAGES_NPZ, [key]) as f:
        pixels = f[key]
    return _convert(name, _chunks(pixels))



def _load_tfds(name: str, split: str, data_dir: Optional[str], download: bool) -> np.ndarray:
    import tensorflow_datasets as tfds

    examples = tfds.load(name, split=split, data_dir=data_dir, download=download)
    batches = examples.map(lambda example: example["image"]).batch(_CHUNK)
    return _convert(name, tfds.as_numpy(batches))


def load_images(name: str, split: str = "train", data_dir: Optional[str] = None) -> np.ndarray:
    """float32 images (N, H, W, C) in [0, 1] of dataset `name` ("mnist", "celeb_a", ...) or an .npz path.

    Sources are tried in the order of the module docstring, and names in
    `IMAGE_FORMATS` converted to their format; when none has the
    data, the FileNotFoundError lists every source and path tried.
    """
    if split not in _IDX_PREFIX:
        raise ValueError(f"split must be one of {sorted(_IDX_PREFIX)}, got {split!r}.")
    if name.endswith(".npz"):
        path = Path(name)
        if not path.is_file():
            raise FileNotFoundError(f"No such .npz file: {name}")
        return _load_local(path.stem, split, path)
    tried = []
    try:
        return _load_tfds(name, split, data_dir, download=False)
    except Exception as error:  # tfds missing, or no prepared data: fall through.
        tried.append(f"tfds.load({name!r}, download=False): {type(error).__name__}")
    folders = _folders(name, data_dir)
    for folder in folders:
        images = _load_local(name, split, folder)
        if images is not None:
            return images
        tried.append(str(folder))
    try:
        return _load_tfds(name, split, data_dir, download=True)
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        tried.append(f"tfds.load({name!r}, download=True): {type(error).__name__}: {reason}")
    hint = (
        "in one of the folders tried, pass data_dir=, or set " + DATA_ENV_VAR if folders
        else f"in a folder and pass data_dir= or set {DATA_ENV_VAR} to it (neither is set, "
        "so no folder was searched)"
    )
    raise FileNotFoundError(
        f"Could not load {name!r} ({split}). Tried:\n  " + "\n  ".join(tried)
        + f"\nPut IDX .gz files or {name}.npz {hint}."
    )
