"""Keras callbacks that picture what the model has learned, as PNG files and TensorBoard images.

- `ManifoldPlot`, for 2-D data and a 1-D or 2-D latent space: the data, the
  decoded latent manifold f(grid) and optionally the neighbour graph.
- `LatentTraversal`, for images: f decoded along the straight latent walk
  z_t = (1 − t) z_start + t z_end, t = 0 … 1, as one image strip.

Its two steps are functions too, for a trained model: `latent_walk` (the
codes of the walk) and `image_strip` (images side by side, optionally picked
in the order of a parameter).

Both draw with matplotlib's object-oriented API (no pyplot, the user's
backend is untouched); matplotlib comes with `pip install keras-nrae[examples]`.
"""

import io
import os
from typing import Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from keras_nrae._checks import integer_at_least
from keras_nrae._files import atomic_open
from keras_nrae._plotting import png_bytes, require_matplotlib

__all__ = ["LatentTraversal", "ManifoldPlot", "image_strip", "latent_walk"]


def latent_walk(model: keras.Model, start, end, steps: int = 10) -> np.ndarray:
    """The codes (steps, d) of the straight walk z_t = (1 − t) z_start + t z_end, t = linspace(0, 1, steps).

    Args:
      model: a built autoencoder with `encode` (e.g. `keras_nrae.Autoencoder`).
      start, end: images shaped like the model's inputs (encoded here), or codes (d,).
      steps: codes on the walk, ≥ 2.
    """
    if not steps >= 2:
        raise ValueError(f"steps must be at least 2, got {steps!r}.")
    input_shape = tuple(model.get_build_config()["input_shape"][1:])

    def code(point):
        point = np.asarray(point)
        return point if point.shape != input_shape else np.asarray(model.encode(point[None]))[0]

    z_start, z_end = code(start), code(end)
    t = np.linspace(0.0, 1.0, steps, dtype=z_start.dtype)[:, None]
    return (1 - t) * z_start + t * z_end


def image_strip(images, t=None, steps: Optional[int] = None) -> np.ndarray:
    """Images (N, H, W), (N, H, W, 1), (N, H, W, 3) or (N, H, W, 4) side by side, clipped to [0, 1].

    Args:
      images: the images, in the order to show them unless `t` is given.
      t: optional (N,) parameter: the images are shown in its order.
      steps: show only this many, evenly spaced (in the order of t); None: all.

    Returns:
      (H, n·W) for grey images, (H, n·W, C) for C = 3 or 4, n = steps or N.
    """
    images = np.asarray(images, np.float32)
    order = np.arange(len(images)) if t is None else np.argsort(np.asarray(t))
    if steps is not None:
        order = order[np.linspace(0, len(order) - 1, steps).round().astype(int)]
    images = images[order]
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if not (images.ndim == 3 or (images.ndim == 4 and images.shape[-1] in (3, 4))):
        raise ValueError(
            f"image_strip needs images (N, H, W), (N, H, W, 1), (N, H, W, 3) or (N, H, W, 4); "
            f"got {(len(order), *images.shape[1:])}."
        )
    return np.clip(np.concatenate(list(images), axis=1), 0.0, 1.0)


class _PeriodicImage(keras.callbacks.Callback):
    """Every `every` epochs, writes `_png()` to out_dir/{name}_epoch{E:04d}.png
    (E counted from 1) and, with `tensorboard_dir`, as image summary `name`."""

    name = "image"

    def __init__(self, every: int, out_dir: Optional[str], tensorboard_dir: Optional[str]):
        super().__init__()
        require_matplotlib(f"keras_nrae.callbacks.{type(self).__name__}")
        every = integer_at_least(every, "every")
        if out_dir is None and tensorboard_dir is None:
            raise ValueError("Give out_dir, tensorboard_dir or both: nowhere to draw to.")
        self.every = every
        self.out_dir = out_dir
        self.tensorboard_dir = tensorboard_dir
        self._writer = None

    def _png(self) -> bytes:
        raise NotImplementedError

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0:
            self.write(epoch + 1)

    def write(self, step: int) -> None:
        """Draw now and write the image for epoch `step`."""
        png = self._png()
        if self.out_dir is not None:
            os.makedirs(self.out_dir, exist_ok=True)
            with atomic_open(os.path.join(self.out_dir, f"{self.name}_epoch{step:04d}.png"), "wb") as f:
                f.write(png)
        if self.tensorboard_dir is not None:
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(self.tensorboard_dir)
            with self._writer.as_default():
                tf.summary.image(self.name, tf.image.decode_png(png)[None], step=step)
            self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class ManifoldPlot(_PeriodicImage):
    """Plots 2-D data, the decoded latent manifold and the neighbour graph.

    The manifold is f on a grid spanning the codes g(x) of the data: a curve
    of `resolution` points for a 1-D latent space, a `resolution`² wireframe
    (one line per grid row and column) for a 2-D one.

    Args:
      x: (N, 2) data points.
      graph: optional `NeighborGraph` or (N, k) neighbour indices; draws an
        edge from every point to each of its neighbours.
      every: plot every this many epochs.
      out_dir: where to write manifold_epochNNNN.png (None: no files).
      tensorboard_dir: log directory for the "manifold" image summary.
      resolution: grid points per latent axis.
      figsize, dpi: the PNG is figsize·dpi pixels.
    """

    name = "manifold"

    def __init__(
        self,
        x,
        graph=None,
        every: int = 1,
        out_dir: Optional[str] = None,
        tensorboard_dir: Optional[str] = None,
        resolution: int = 50,
        figsize: Sequence[float] = (4.0, 4.0),
        dpi: int = 100,
    ):
        super().__init__(every, out_dir, tensorboard_dir)
        self.x = np.asarray(x)
        if self.x.ndim != 2 or self.x.shape[1] != 2:
            raise ValueError(f"ManifoldPlot draws 2-D data: x must be (N, 2), got {self.x.shape}.")
        self.edges = None if graph is None else np.asarray(getattr(graph, "indices", graph))
        if self.edges is not None and (self.edges.ndim != 2 or len(self.edges) != len(self.x)):
            raise ValueError(
                f"graph must have one row of neighbour indices per point, (N, k) = "
                f"({len(self.x)}, k); got {self.edges.shape}."
            )
        self.resolution = resolution
        self.figsize = tuple(figsize)
        self.dpi = dpi

    def latent_grid(self) -> np.ndarray:
        """(resolution, 1) or (resolution², 2) codes spanning g(x); row-major for 2-D."""
        z = np.asarray(self.model.encode(self.x))
        if z.ndim != 2 or z.shape[1] not in (1, 2):
            raise ValueError(
                f"ManifoldPlot needs a 1-D or 2-D latent space; the codes have shape {z.shape}."
            )
        axes = [np.linspace(lo, hi, self.resolution) for lo, hi in zip(z.min(0), z.max(0))]
        return np.stack([a.ravel() for a in np.meshgrid(*axes, indexing="ij")], axis=-1)

    def figure(self):
        """The matplotlib Figure for the model's current state."""
        from matplotlib.collections import LineCollection
        from matplotlib.figure import Figure

        grid = self.latent_grid()
        decoded = np.asarray(self.model.decode(grid.astype(self.x.dtype)))
        figure = Figure(figsize=self.figsize, dpi=self.dpi)
        ax = figure.add_subplot()
        if self.edges is not None:
            segments = np.stack(
                [np.repeat(self.x, self.edges.shape[1], 0), self.x[self.edges.ravel()]], axis=1
            )
            ax.add_collection(LineCollection(segments, colors="0.8", linewidths=0.5, zorder=0))
        ax.scatter(self.x[:, 0], self.x[:, 1], s=4, c="tab:blue", zorder=1)
        if grid.shape[1] == 1:
            ax.plot(decoded[:, 0], decoded[:, 1], c="tab:red", zorder=2)
        else:
            mesh = decoded.reshape(self.resolution, self.resolution, 2)
            for line in [*mesh, *mesh.transpose(1, 0, 2)]:
                ax.plot(line[:, 0], line[:, 1], c="tab:red", lw=0.5, zorder=2)
        ax.set_aspect("equal", adjustable="datalim")
        return figure

    def _png(self):
        return png_bytes(self.figure())


class LatentTraversal(_PeriodicImage):
    """Decodes a straight walk through latent space into one image strip.

    The strip is `steps` decoded images f(z_t), z_t = (1 − t) z_start + t z_end
    for t = linspace(0, 1, steps), side by side: (H, steps·W) pixels for
    decoded images (H, W) or (H, W, 1), (H, steps·W, C) for C = 3 or 4.
    Values are clipped to [0, 1].

    Args:
      start, end: images shaped like the model's inputs (encoded afresh each
        time, as the encoder changes), or codes (d,).
      steps: images in the strip, ≥ 2.
      every: draw every this many epochs.
      out_dir: where to write traversal_epochNNNN.png (None: no files).
      tensorboard_dir: log directory for the "traversal" image summary.
    """

    name = "traversal"

    def __init__(
        self,
        start,
        end,
        steps: int = 10,
        every: int = 1,
        out_dir: Optional[str] = None,
        tensorboard_dir: Optional[str] = None,
    ):
        super().__init__(every, out_dir, tensorboard_dir)
        self.start, self.end = np.asarray(start), np.asarray(end)
        if self.start.shape != self.end.shape:
            raise ValueError(
                f"start and end must have the same shape, got {self.start.shape} "
                f"and {self.end.shape}."
            )
        if not steps >= 2:
            raise ValueError(f"steps must be at least 2, got {steps!r}.")
        self.steps = steps

    def latent_path(self) -> np.ndarray:
        """(steps, d) codes of the walk (`latent_walk`; image ends are encoded afresh)."""
        return latent_walk(self.model, self.start, self.end, self.steps)

    def strip(self) -> np.ndarray:
        """The decoded walk side by side, (H, steps·W) or (H, steps·W, C), in [0, 1] (`image_strip`)."""
        images = np.asarray(self.model.decode(self.latent_path()))
        try:
            return image_strip(images)
        except ValueError:
            raise ValueError(
                f"LatentTraversal needs a decoder that outputs images (H, W), "
                f"(H, W, 1), (H, W, 3) or (H, W, 4); it outputs {images.shape[1:]}."
            ) from None

    def _png(self):
        import matplotlib.image

        buffer = io.BytesIO()
        matplotlib.image.imsave(buffer, self.strip(), cmap="gray", vmin=0.0, vmax=1.0, format="png")
        return buffer.getvalue()
