"""Issue #14 item 4: does NRAE-Q (order 2) with λ = 1 silently diverge on thin-stroke images, and why?

The reporter's held-out data set (4,000 training images, 28×28 grey, most
likely Omniglot: strokes 1, background 0, area-downsized from 105×105) is not
available here, so this script builds Omniglot-like stand-ins from real MNIST /
Fashion-MNIST training images and trains NRAE exactly as the Table-1 harness's
selection step does (`paper.table1.protocol.training_subset` of `--size`
images, `validation_split`, the k-NN graph of the fit part,
`keras_nrae.recipe.train` of the protocol's recipe under BenchmarkConfig(),
seed as given), recording per epoch:

  loss        the epoch's mean training loss (what DivergenceMonitor sees)
  rec         the epoch's mean training reconstruction MSE of the centres
  val         validation per-pixel MSE (the selection score); `trivial` is the
              MSE of predicting the fit set's mean image on the same images
  dz/spread   mean |z' − z| of the probe's neighbour pairs / RMS spread of codes
  t2/t1       mean ‖½ dzᵀH dz‖ / mean ‖J dz‖ on the probe (decoder, 784 outputs)
  sat         fraction of sigmoid outputs with |pre-activation| > 10 (+: > +10)
  wrong       fraction of outputs > 0.9 where the pixel is < 0.5
  gnorm       global gradient norm of the training loss on the probe batch
  maxpre      max |pre-activation| of the output layer on the probe

Transforms (`--data`): mnist, binary (MNIST > 0.5), thin (MNIST at 112×112,
thresholded, eroded to ~3 px strokes, 4×4 area-downsized: ~1 px antialiased
strokes like Omniglot's 105→28), thinner (eroded 4 px: ~0.5 px strokes),
thin_binary (thin > 0.5), invert (1 − MNIST), omni_mnist (MNIST redrawn at
105×105 with ~3 px strokes, randomly rotated ±40° and shifted ±10 px, then
area-resized like `datasets`' omniglot format), strokes (synthetic characters:
1-3 random polylines drawn with a 3 px pen at 105×105, area-resized),
fashion_binary, fashion_edges (binary outline of Fashion-MNIST items).

    KERAS_NRAE_DATA=../shared/data PYTHONPATH=. python benchmarks/divergence.py \\
        --data omni_mnist --order 2 --k 5 --lam 1 --seed 0 > out.txt

(~1.3 s per epoch on one CPU core with one thread). The logs of the runs
reported for issue #14 are in benchmarks/results/divergence/ (summary.md).

`--stop-when-diverged N` ends a run once its validation MSE has been above
`trivial` for N epochs in a row (0: never); `--epochs` shortens runs; `--lam 0`
is the plain autoencoder (the neighbour slot weighs 0); `--init-bias mean`
starts the decoder's output bias at logit(mean training image) instead of 0.
"""

import argparse
import dataclasses
import time

import keras
import numpy as np
import tensorflow as tf
from scipy import ndimage

from keras_nrae import recipe as recipes
from keras_nrae.datasets import load_images
from keras_nrae.graph import NeighborGraph
from keras_nrae.metrics import reconstruction_mse
from keras_nrae.taylor import taylor_terms
from paper.table1 import protocol


def _thin(x, iterations=3):
    """~1 px antialiased strokes: 4× upsample, threshold, erode, 4×4 area-downsize."""
    out = np.empty_like(x)
    for i, image in enumerate(x[..., 0]):
        big = ndimage.zoom(image, 4, order=1) > 0.5
        thin = ndimage.binary_erosion(big, iterations=iterations)
        if thin.sum() < 0.2 * big.sum():  # keep faint digits from vanishing
            thin = ndimage.binary_erosion(big, iterations=1)
        out[i, ..., 0] = thin.reshape(28, 4, 28, 4).mean(axis=(1, 3))
    return out


def _area_28(big):
    """(N, 105, 105) canvases -> (N, 28, 28, 1) by the area resize `datasets` uses for omniglot."""
    return tf.image.resize(big[..., None].astype("float32"), (28, 28), method="area").numpy()


def _omni_mnist(x, seed=0):
    """MNIST drawn like Omniglot: 105×105, ~3 px strokes, random rotation ±40° and shift ±10 px, area-resized to 28."""
    rng = np.random.default_rng(seed)
    big = np.empty((len(x), 105, 105), np.float32)
    for i, image in enumerate(x[..., 0]):
        b = ndimage.zoom(image, 3.75, order=1) > 0.5
        b = ndimage.binary_erosion(b, iterations=3) | ndimage.binary_erosion(b, iterations=30)
        b = ndimage.rotate(b.astype("float32"), rng.uniform(-40, 40), reshape=False, order=1) > 0.5
        big[i] = ndimage.shift(b.astype("float32"), rng.uniform(-10, 10, 2), order=0)
    return _area_28(big)


def _strokes(n, seed=0):
    """Synthetic Omniglot-like characters: 1-3 random polylines (2-4 segments), 3 px pen on 105×105."""
    rng = np.random.default_rng(seed)
    big = np.zeros((n, 105, 105), bool)
    for i in range(n):
        for _ in range(rng.integers(1, 4)):
            pts = rng.uniform(20, 85, (rng.integers(3, 6), 2))
            for a, b in zip(pts[:-1], pts[1:]):
                t = np.linspace(0, 1, 2 * int(np.linalg.norm(b - a)) + 2)[:, None]
                yx = np.rint(a + t * (b - a)).astype(int)
                big[i, yx[:, 0], yx[:, 1]] = True
        big[i] = ndimage.binary_dilation(big[i], np.ones((3, 3), bool))
    return _area_28(big)


def _edges(x):
    b = x[..., 0] > 0.5
    e = b & ~np.stack([ndimage.binary_erosion(i) for i in b])
    return e[..., None].astype("float32")


TRANSFORMS = {
    "mnist": ("mnist", lambda x: x),
    "binary": ("mnist", lambda x: (x > 0.5).astype("float32")),
    "thin": ("mnist", _thin),
    "thin_binary": ("mnist", lambda x: (_thin(x) > 0.5).astype("float32")),
    "thinner": ("mnist", lambda x: _thin(x, iterations=4)),
    "invert": ("mnist", lambda x: 1.0 - x),
    "omni_mnist": ("mnist", _omni_mnist),
    "strokes": (None, lambda n: _strokes(n)),
    "fashion_binary": ("fashion_mnist", lambda x: (x > 0.5).astype("float32")),
    "fashion_edges": ("fashion_mnist", _edges),
}


def stand_in(name, size):
    source, transform = TRANSFORMS[name]
    if source is None:  # synthetic
        return transform(size).astype("float32")
    x = protocol.training_subset(load_images(source, "train"), "S", size)
    return transform(x).astype("float32")


class Probe(keras.callbacks.Callback):
    """Per-batch loss and per-epoch diagnostics (module docstring)."""

    def __init__(self, x_fit, x_val, graph, trivial, stop_after, order, log):
        super().__init__()
        rng = np.random.default_rng(123)
        ids = rng.choice(len(x_fit), 200, replace=False)
        nb = graph.indices[ids, rng.integers(0, graph.k, len(ids))]
        self.xp, self.xn = x_fit[ids], x_fit[nb]
        self.x_val, self.trivial, self.stop_after = x_val, trivial, stop_after
        self.order, self.log, self.bad, self.rows, self.batch_losses = order, log, 0, [], []
        self._prev = 0.0

    def on_train_batch_end(self, batch, logs=None):
        running = float(logs["loss"])  # Keras logs the epoch's running mean
        self.batch_losses.append((batch + 1) * running - batch * self._prev)
        self._prev = running

    def on_epoch_begin(self, epoch, logs=None):
        self._prev = 0.0
        self._epoch_start = len(self.batch_losses)

    def diagnostics(self):
        enc, dec = self.model.encoder, self.model.decoder
        z = enc(self.xp, training=False)
        zn = enc(self.xn, training=False)
        dz = (zn - z)[:, None]
        value, first, second = taylor_terms(dec, z, dz, order=2, training=False)
        norm = lambda t: tf.sqrt(tf.reduce_sum(tf.reshape(t, [200, -1]) ** 2, -1))
        h = z
        for layer in dec.layers[:-2]:
            h = layer(h)
        out = dec.layers[-2]
        pre = h @ out.kernel + out.bias
        target = self.xp.reshape(200, -1)
        val = tf.reshape(value, [200, -1]).numpy()
        batch = {"x": tf.constant(self.xp), "neighbors": tf.constant(np.stack([self.xp, self.xn], 1))}
        with tf.GradientTape() as tape:
            loss = self.model.neighborhood_loss(batch["x"], batch["neighbors"], training=True)
        grads = tape.gradient(loss, self.model.trainable_variables)
        zall = z.numpy()
        return dict(
            dz_spread=float(np.mean(np.linalg.norm(dz[:, 0], axis=-1)) / np.sqrt(np.mean(np.sum((zall - zall.mean(0)) ** 2, -1)))),
            dz=float(np.mean(np.linalg.norm(dz[:, 0], axis=-1))),
            t2_t1=float(tf.reduce_mean(norm(0.5 * second[:, 0])) / tf.reduce_mean(norm(first[:, 0]))),
            t2=float(tf.reduce_mean(norm(0.5 * second[:, 0]))),
            sat=float(np.mean(np.abs(pre.numpy()) > 10)),
            sat_hi=float(np.mean(pre.numpy() > 10)),
            wrong=float(np.mean((val > 0.9) & (target < 0.5))),
            gnorm=float(tf.linalg.global_norm(grads)),
            maxpre=float(np.max(np.abs(pre.numpy()))),
        )

    def on_epoch_end(self, epoch, logs=None):
        val = reconstruction_mse(self.model, self.x_val)
        batches = self.batch_losses[self._epoch_start:]
        row = dict(epoch=epoch + 1, loss=float(logs["loss"]), rec=float(logs.get("reconstruction_mse", np.nan)),
                   val=val, max_batch=float(np.max(batches)), **self.diagnostics())
        self.rows.append(row)
        self.log("  ep {epoch:3d} loss {loss:8.3f} rec {rec:.4f} val {val:.4f} maxbatch {max_batch:8.2f} "
                 "dz {dz:6.2f} dz/spread {dz_spread:.3f} t2 {t2:7.2f} t2/t1 {t2_t1:6.3f} sat {sat:.3f} "
                 "(+{sat_hi:.3f}) wrong {wrong:.3f} gnorm {gnorm:9.2f} maxpre {maxpre:7.1f}".format(**row))
        self.bad = self.bad + 1 if val > self.trivial else 0
        if self.stop_after and self.bad >= self.stop_after:
            self.log(f"  stopping: validation MSE above trivial {self.trivial:.4f} for {self.bad} epochs")
            self.model.stop_training = True


def mean_image_bias(x_fit, recipe):
    """A `keras_nrae.recipe.train` builder: recipe's encoder/decoder, the decoder's output bias at logit(mean training image)."""
    logit = np.log(np.clip(x_fit.mean(0), 1e-3, 1 - 1e-3)) - np.log1p(-np.clip(x_fit.mean(0), 1e-3, 1 - 1e-3))

    def builder(shape, latent_dim):
        encoder, decoder = recipes.encoder_decoder(shape, recipe, latent_dim)
        decoder.layers[-2].bias.assign(logit.reshape(-1))
        return encoder, decoder

    return builder


def run(data, order, k, lam, seed, epochs, size, stop_after, init_bias="zeros", log=print):
    x = stand_in(data, size)
    x_fit, x_val = protocol.validation_split(x, protocol.BenchmarkConfig().validation_fraction)
    trivial = float(np.mean((x_val - x_fit.mean(0)) ** 2))
    config = dataclasses.replace(protocol.BenchmarkConfig(), epochs=epochs)
    recipe = protocol.recipe(protocol.NRAE_NAMES[order], config, x_fit.shape[1:], {"k": k, "lam": lam})
    builder = mean_image_bias(x_fit, recipe) if init_bias == "mean" else None
    graph = NeighborGraph.build(x_fit, k=k, verbose=0)
    log(f"{data}: fit {len(x_fit)} val {len(x_val)} mean pixel {x.mean():.4f} trivial val mse {trivial:.4f}; "
        f"order {order} k {k} lam {lam:g} seed {seed} output bias {init_bias}")
    probe = Probe(x_fit, x_val, graph, trivial, stop_after, order, log)
    start = time.perf_counter()
    run = recipes.train(x_fit, recipe, seed, graph=graph, callbacks=[probe], builder=builder)
    log(f"  done: {len(probe.rows)} epochs, harness diverged={run.diverged} ({run.divergence}), final val "
        f"{probe.rows[-1]['val']:.4f} (trivial {trivial:.4f}), {time.perf_counter() - start:.0f} s")
    return probe, run.model


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="thin", choices=sorted(TRANSFORMS))
    p.add_argument("--order", type=int, default=2)
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--lam", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--size", type=int, default=4000)
    p.add_argument("--stop-when-diverged", type=int, default=10, help="0: never")
    p.add_argument("--init-bias", default="zeros", choices=["zeros", "mean"],
                   help="decoder output bias at init: Keras' zeros, or logit(mean training image)")
    a = p.parse_args()
    run(a.data, a.order, a.k, a.lam, a.seed, a.epochs, a.size, a.stop_when_diverged, a.init_bias)


if __name__ == "__main__":
    main()
