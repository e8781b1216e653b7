"""keras_nrae.callbacks, and Keras' own callbacks (checkpoints, resuming) with the model."""

import csv
import glob
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nrae import NeighborhoodReconstructionModel, kernels
from keras_nrae.architectures import mlp_autoencoder
from keras_nrae.callbacks import LatentTraversal, ManifoldPlot

RESUMABLE = os.path.join(os.path.dirname(__file__), "_resumable_train.py")


def _model(shape, latent_dim, order=1):
    encoder, decoder = mlp_autoencoder(shape, latent_dim, hidden=(8,), activation="tanh")
    model = NeighborhoodReconstructionModel(
        encoder, decoder, order=order, kernel=kernels.Binary(0.5)
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    return model


def _arc(n=20):
    t = np.linspace(0.0, np.pi, n)
    return np.stack([np.cos(t), np.sin(t)], axis=1).astype("float32")


def _neighbor_batches(x, k=2, batch_size=4):
    """Centre-first neighbourhoods from a brute-force kNN graph; also returns the graph."""
    d = ((x[:, None] - x[None]) ** 2).sum(-1)
    graph = np.argsort(d, axis=1)[:, 1 : k + 1]
    neighbors = np.concatenate([x[:, None], x[graph]], axis=1)
    data = tf.data.Dataset.from_tensor_slices({"x": x, "neighbors": neighbors})
    return data.batch(batch_size), graph


def _png_size(path_or_bytes):
    """(width, height) from the PNG IHDR chunk."""
    data = open(path_or_bytes, "rb").read(24) if isinstance(path_or_bytes, str) else path_or_bytes
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _tensorboard_images(log_dir, tag):
    """{step: (width, height)} of the image summaries `tag` under log_dir."""
    images = {}
    for path in glob.glob(os.path.join(log_dir, "**", "events.out.tfevents.*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == tag:
                    width, height = value.tensor.string_val[:2]
                    images[event.step] = (int(width), int(height))
    return images


def _line_points(figure):
    return [line.get_xydata() for line in figure.axes[0].lines]


# -- ManifoldPlot ---------------------------------------------------------------


def test_manifold_plot_writes_pngs_and_tensorboard_images(tmp_path):
    x = _arc()
    data, graph = _neighbor_batches(x)
    model = _model((2,), 1)
    plot = ManifoldPlot(
        x, graph, every=2, out_dir=str(tmp_path / "png"),
        tensorboard_dir=str(tmp_path / "tb"), figsize=(4, 3), dpi=50,
    )
    model.fit(data, epochs=4, verbose=0, callbacks=[plot])
    files = sorted(os.listdir(tmp_path / "png"))
    assert files == ["manifold_epoch0002.png", "manifold_epoch0004.png"]
    for name in files:
        assert _png_size(str(tmp_path / "png" / name)) == (200, 150)
    assert _tensorboard_images(str(tmp_path / "tb"), "manifold") == {2: (200, 150), 4: (200, 150)}


@pytest.mark.parametrize("latent_dim", [1, 2])
def test_manifold_plot_draws_the_decoded_grid_and_graph(latent_dim):
    x = _arc()
    _, graph = _neighbor_batches(x, k=3)
    model = _model((2,), latent_dim)
    plot = ManifoldPlot(x, graph, out_dir="unused", resolution=7)
    plot.set_model(model)
    lines = _line_points(plot.figure())
    # Independent grid: linspace over the range of each code axis, decoded by f.
    z = model.encoder(x).numpy()
    axes = [np.linspace(z[:, i].min(), z[:, i].max(), 7) for i in range(latent_dim)]
    if latent_dim == 1:
        expected = [model.decoder(axes[0][:, None].astype("float32")).numpy()]
    else:
        rows = [[[a, b] for b in axes[1]] for a in axes[0]]
        cols = [[[a, b] for a in axes[0]] for b in axes[1]]
        expected = [model.decoder(np.float32(line)).numpy() for line in rows + cols]
    assert len(lines) == len(expected)
    for drawn, decoded in zip(lines, expected):
        np.testing.assert_allclose(drawn, decoded, atol=1e-5)
    [edges] = plot.figure().axes[0].collections[:1]
    segments = np.asarray(edges.get_segments())
    assert segments.shape == (len(x) * 3, 2, 2)
    np.testing.assert_allclose(segments[4], [x[1], x[graph[1, 1]]])


def test_manifold_plot_rejects_non_2d_data():
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        ManifoldPlot(np.zeros((5, 3)), out_dir="unused")


# -- LatentTraversal ------------------------------------------------------------


def test_latent_traversal_strip_decodes_the_straight_walk(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(8, 4, 5)).astype("float32")
    model = _model((4, 5), 2)
    traversal = LatentTraversal(images[0], images[1], steps=6, every=1, out_dir=str(tmp_path))
    model.fit(images, epochs=1, batch_size=4, verbose=0, callbacks=[traversal])
    assert _png_size(str(tmp_path / "traversal_epoch0001.png")) == (6 * 5, 4)

    z0, z1 = model.encoder(images[:2]).numpy()
    expected = [
        np.clip(model.decoder(((1 - t) * z0 + t * z1)[None]).numpy()[0], 0, 1)
        for t in np.linspace(0, 1, 6)
    ]
    np.testing.assert_allclose(traversal.strip(), np.concatenate(expected, axis=1), atol=1e-5)
    # Codes are used as given.
    codes = LatentTraversal(z0, z1, steps=6, out_dir="unused")
    codes.set_model(model)
    np.testing.assert_allclose(codes.latent_path(), traversal.latent_path(), atol=1e-6)


def test_latent_traversal_rejects_non_image_decoders():
    traversal = LatentTraversal(np.zeros(2), np.ones(2), out_dir="unused")
    traversal.set_model(_model((2,), 2))
    with pytest.raises(ValueError, match="outputs images"):
        traversal.strip()


@pytest.mark.parametrize("callback", [ManifoldPlot, LatentTraversal])
def test_missing_matplotlib_says_how_to_install(monkeypatch, callback):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install keras-nrae\[examples\]"):
        callback(np.zeros((3, 2)), np.zeros((3, 2)), out_dir="unused")


# -- Keras callbacks ----------------------------------------------------------


def test_checkpoints_csv_and_tensorboard(tmp_path):
    x = _arc()
    data, _ = _neighbor_batches(x)
    model = _model((2,), 1, order=2)
    history = model.fit(
        data, epochs=3, verbose=0,
        callbacks=[
            keras.callbacks.ModelCheckpoint(str(tmp_path / "model.keras")),
            keras.callbacks.ModelCheckpoint(str(tmp_path / "w.weights.h5"), save_weights_only=True),
            keras.callbacks.CSVLogger(str(tmp_path / "log.csv")),
            keras.callbacks.TensorBoard(str(tmp_path / "tb")),
        ],
    ).history
    expected = model.predict(x, verbose=0)

    restored = keras.saving.load_model(str(tmp_path / "model.keras"))
    assert isinstance(restored, NeighborhoodReconstructionModel)
    assert (restored.order, restored.kernel) == (2, kernels.Binary(0.5))
    np.testing.assert_allclose(restored.predict(x, verbose=0), expected, atol=1e-6)
    fresh = _model((2,), 1, order=2)
    fresh.optimizer.build(fresh.trainable_variables)  # so its state loads too
    fresh.load_weights(str(tmp_path / "w.weights.h5"))
    np.testing.assert_allclose(fresh.predict(x, verbose=0), expected, atol=1e-6)
    steps = 3 * 5  # 3 epochs of 5 batches
    assert int(restored.optimizer.iterations) == int(fresh.optimizer.iterations) == steps

    with open(tmp_path / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    np.testing.assert_allclose([float(r["loss"]) for r in rows], history["loss"], rtol=1e-6)
    tags = set()
    for path in glob.glob(str(tmp_path / "tb" / "train" / "events.out.tfevents.*")):
        tags |= {v.tag for e in tf.compat.v1.train.summary_iterator(path) for v in e.summary.value}
    assert "epoch_loss" in tags


def test_early_stopping_stops():
    data, _ = _neighbor_batches(_arc())
    stop = keras.callbacks.EarlyStopping(monitor="loss", min_delta=1e9, patience=1)
    history = _model((2,), 1).fit(data, epochs=10, verbose=0, callbacks=[stop]).history
    # Epoch 1 sets the baseline; epoch 2 does not improve on it by 1e9: stop.
    assert len(history["loss"]) == 2


def test_terminate_on_nan_stops_at_the_first_nan_batch():
    x = _arc()
    x[9] = np.nan  # in the third batch of four
    data = tf.data.Dataset.from_tensor_slices(
        {"x": x, "neighbors": np.repeat(x[:, None], 3, axis=1)}
    ).batch(4)
    seen = []
    counter = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: seen.append(b))
    model = _model((2,), 1)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), check_finite=False)  # Keras' own handling instead
    model.fit(data, epochs=5, verbose=0, callbacks=[keras.callbacks.TerminateOnNaN(), counter])
    assert seen == [0, 1, 2]
    assert model.stop_training


def test_backup_and_restore_resumes_after_a_kill(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    run = lambda *args: subprocess.run(
        [sys.executable, RESUMABLE, str(tmp_path), *args],
        capture_output=True, text=True, env=env, timeout=300,
    )
    killed = run("--die-after-epoch", "2")
    assert killed.returncode == 17, killed.stderr[-3000:]
    assert not (tmp_path / "final.npz").exists()
    state_at_kill = dict(np.load(tmp_path / "killed.npz"))

    resumed = run()
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    epochs = (tmp_path / "epochs.txt").read_text().split()
    assert epochs == ["0", "1", "2", "3"]  # the second run began at epoch 2 (0-based)
    with open(tmp_path / "log.csv") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [0, 1, 2, 3]
    state_at_resume = np.load(tmp_path / "resumed.npz")
    assert int(state_at_kill["iterations"]) == 2 * 4
    assert sorted(state_at_resume) == sorted(state_at_kill)
    for name, value in state_at_kill.items():
        np.testing.assert_array_equal(state_at_resume[name], value, err_msg=name)
    assert int(np.load(tmp_path / "final.npz")["iterations"]) == 4 * 4
