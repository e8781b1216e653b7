"""README.md's quick start, manifold-learning and large-data blocks run as written (on less data, one epoch)."""

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SHRINK = {"[:5000]": "[:200]", "epochs=20": "epochs=1, verbose=0"}


def python_block(heading: str) -> str:
    """The first ```python block after `heading` in README.md."""
    text = README.read_text()
    section = text[text.index(heading) :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def shrunk(code: str, shrink: dict) -> str:
    for old, new in shrink.items():
        assert old in code, f"the README block no longer contains {old!r}"
        code = code.replace(old, new)
    return code


def test_quick_start_runs(tmp_path, monkeypatch):
    from keras_nrae.datasets import load_images

    try:
        load_images("mnist", "test")
    except (OSError, ValueError) as error:
        pytest.skip(f"MNIST is not available here (no ../shared/data, no tfds data): {error}")
    code = shrunk(python_block("## Quick start"), SHRINK)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["x_hat"].shape == (8, 28, 28, 1)
    assert (tmp_path / "nrae.keras").exists() and (tmp_path / "nrae_export").is_dir()


def test_manifold_learning_block_runs(tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    shrink = {"make_s_curve(1000,": "make_s_curve(60,", "random_state=0)  #": "random_state=0, epochs=1, hidden=(8,))  #"}
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(shrunk(python_block("## For manifold learning"), shrink), "README.md", "exec"), namespace)
    assert namespace["Z"].shape == (60, 2) and namespace["X_back"].shape == (60, 3)
    assert (tmp_path / "nrae_export").is_dir()


def test_large_dataset_path_runs(tmp_path, monkeypatch):
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "photos").mkdir()
    for i in range(40):
        pixels = rng.integers(0, 256, (80, 72, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / "photos" / f"{i:02d}.png")
    code = shrunk(python_block("**A worked path**"), {"batch_size=128": "batch_size=8"})
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    x = namespace["x"]
    assert isinstance(x, np.memmap) and x.shape == (40, 64, 64, 3) and x.dtype == np.uint8
    assert (tmp_path / "photos-graph.npz").exists()


def test_grae_block_runs():
    import importlib.util

    from keras_nrae.architectures import mlp_autoencoder

    shrink = {"batch_size=100, epochs=100)": "batch_size=100, epochs=1, verbose=0)", "weight=100 * 784 / 10": "weight=100 * 16 / 10"}
    if importlib.util.find_spec("phate") is None:  # the `grae` extra is optional
        shrink['method="phate"'] = 'method="spectral"'
    encoder, decoder = mlp_autoencoder((16,), 10, hidden=(8,))
    x_train = np.random.default_rng(0).uniform(size=(60, 16)).astype("float32")
    namespace = {"encoder": encoder, "decoder": decoder, "x_train": x_train}
    exec(compile(shrunk(python_block("#### GRAE and SPAE"), shrink), "README.md", "exec"), namespace)
    assert namespace["targets"].shape == (60, 10) and namespace["grae"].relax_epochs == 100


def test_graph_across_machines_block_runs(tmp_path, monkeypatch):
    """The block's step 1 as the 4 jobs of a Slurm array, one after another, then step 2."""
    from keras_nrae import NeighborGraph

    code = python_block("**A graph built across machines**")
    step_1, step_2 = code.split("# 2.")
    monkeypatch.chdir(tmp_path)
    x = np.random.default_rng(0).integers(0, 256, (50, 6, 6, 3), dtype=np.uint8)
    np.save(tmp_path / "photos.npy", x)
    for var in ("TF_CONFIG", "JOB_COMPLETION_INDEX", "SLURM_PROCID", "SLURM_NTASKS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    for task in range(4):
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", str(task))
        exec(compile(step_1, "README.md", "exec"), {})
    namespace = {}
    exec(compile(step_1.split("# 1.")[0] + shrunk("# 2." + step_2, {"wait_s=3600": "wait_s=0"}),
                 "README.md", "exec"), namespace)
    one = NeighborGraph.build(x, k=10, verbose=0)
    np.testing.assert_array_equal(namespace["graph"].indices, one.indices)
    assert len(list((tmp_path / "graph-shards").iterdir())) == 4
