"""Each example script runs end to end with --smoke (in-process, via its main(argv))."""

import ast
import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest


ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT / ".." / "shared" / "data" / "mnist" / "train-images-idx3-ubyte.gz"
needs_mnist = pytest.mark.skipif(
    not MNIST.is_file(), reason=f"MNIST IDX files not found at {MNIST.resolve()}"
)


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_smoke(name: str, out: Path, *extra: str) -> dict:
    metrics = _load(name).main(["--smoke", "--verbose", "0", "--out", str(out), *extra])
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return metrics


def _run(name: str, out: Path, *extra: str) -> dict:
    metrics = _run_smoke(name, out, *extra)
    assert sorted(metrics) == ["AE", "NRAE-L", "NRAE-Q"]
    return metrics


def test_denoising(tmp_path):
    metrics = _run("denoising", tmp_path)
    for values in metrics.values():
        assert sorted(values) == ["distance_to_true_curve", "true_curve_coverage"]
        # Any curve is within the data's extent of the sine curve, which spans 2π.
        assert 0 <= values["distance_to_true_curve"] < 2 * np.pi
        assert values["true_curve_coverage"] > 0


def test_connectivity(tmp_path):
    metrics = _run("connectivity", tmp_path)
    for values in metrics.values():
        assert 0 <= values["latent_order_correlation"] <= 1
        assert values["distance_to_true_curve"] >= 0


@needs_mnist
@pytest.mark.parametrize("name", ["rotated_mnist", "shifted_mnist"])
def test_digit_sequences(tmp_path, name):
    metrics = _run(name, tmp_path)
    for values in metrics.values():
        assert 0 <= values["latent_order_correlation"] <= 1


def test_manifold_learning(tmp_path):
    pytest.importorskip("sklearn")
    from sklearn.decomposition import PCA
    from sklearn.manifold import trustworthiness

    metrics = _run_smoke("manifold_learning", tmp_path, "--datasets", "s_curve")
    assert list(metrics) == ["s_curve"]
    assert list(metrics["s_curve"]) == ["NRAE-L", "NRAE-Q", "AE", "PCA", "Isomap"]
    for values in metrics["s_curve"].values():
        assert 0 <= values["trustworthiness"] <= 1 and 0 <= values["continuity"] <= 1
        assert 0 <= values["trustworthiness_to_data"] <= 1
        assert -1 <= values["distance_rank_correlation"] <= 1 and values["fit_seconds"] >= 0
    module = _load("manifold_learning")
    x, coordinates, _ = module.manifold("s_curve", 0, module.SMOKE_POINTS)
    z = PCA(2).fit_transform(x)
    assert metrics["s_curve"]["PCA"]["trustworthiness"] == pytest.approx(trustworthiness(coordinates, z, n_neighbors=module.K))
    assert metrics["s_curve"]["PCA"]["trustworthiness_to_data"] == pytest.approx(trustworthiness(x, z, n_neighbors=module.K))
    table = (tmp_path / "manifold_learning.md").read_text().splitlines()
    assert len(table) == 2 + 5 and table[2].startswith("| s_curve (40 points) | NRAE-L | ")


@pytest.mark.parametrize("name", ["s_curve", "swiss_roll"])
def test_manifold_learning_true_coordinates_are_isometric(name):
    # Nearby clean points: 3-D distance = distance in the true (arc length, height) coordinates.
    pytest.importorskip("sklearn")
    x, coordinates, _ = _load("manifold_learning").manifold(name, 0, 1000)
    i, j = np.triu_indices(len(x), k=1)
    in_3d = np.linalg.norm(x[i] - x[j], axis=1)
    close = in_3d < 0.05 * np.ptp(x)
    ratio = np.linalg.norm(coordinates[i] - coordinates[j], axis=1)[close] / in_3d[close]
    assert close.sum() > 1000 and np.median(ratio) == pytest.approx(1.0, abs=0.01)


def test_bad_digit_index_is_refused(tmp_path):
    from keras_nrae import demo  # the digit examples' data: demo.mnist_digit_sequence

    npz = tmp_path / "mnist.npz"
    np.savez(npz, x_train=np.zeros((3, 8, 8), np.uint8), x_test=np.zeros((1, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="index must be in"):
        demo.mnist_digit_sequence("rotated", index=3, data_dir=str(npz))
    with pytest.raises(ValueError, match="transform must be one of"):
        demo.mnist_digit_sequence("flipped")


def _linear_autoencoder():
    """g(x) = x_0, f(z) = (z, 2z)."""
    import keras

    from keras_nrae.model import Autoencoder

    encoder = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    decoder = keras.Sequential([keras.Input((1,)), keras.layers.Dense(2, use_bias=False)])
    encoder.set_weights([np.array([[1.0], [0.0]])])
    decoder.set_weights([np.array([[1.0, 2.0]])])
    return Autoencoder(encoder, decoder)


def test_decoded_curve_spans_the_codes_of_the_data():
    from keras_nrae import demo

    points = np.array([[0.5, 7.0], [-1.0, 0.0], [3.0, -2.0]], "float32")
    curve = demo.decoded_curve(_linear_autoencoder(), points, resolution=9)
    s = np.linspace(-1.0, 3.0, 9)
    np.testing.assert_allclose(curve, np.stack([s, 2 * s], 1), atol=1e-6)


def test_image_strip_orders_by_the_true_parameter():
    from keras_nrae.callbacks import image_strip

    images = np.arange(5, dtype="float32")[:, None, None, None] * np.ones((5, 2, 3, 1), "float32") / 4
    t = np.array([4.0, 0.0, 3.0, 1.0, 2.0])
    strip = image_strip(images, t, steps=3)  # t = 0, 2, 4: images 1, 4, 0
    assert strip.shape == (2, 9)
    np.testing.assert_allclose(strip[0], np.repeat([0.25, 1.0, 0.0], 3))


def test_set_parses_each_field_type_of_an_example_recipe():
    # What --set does (with the checks tests/test_recipe.py does not make): Recipe.replace_from_strings.
    from keras_nrae.demo import DENOISING

    digits = dataclasses.replace(DENOISING, output_activation="sigmoid")
    settings = digits.replace_from_strings(
        ["k=30", "learning_rate=1e-4", "output_activation=none", "hidden=64,32", "include_center=True"],
    )
    assert settings.k == 30 and isinstance(settings.k, int)
    assert settings.learning_rate == 1e-4
    assert settings.output_activation is None
    assert settings.hidden == (64, 32)
    assert settings.include_center is True
    assert settings.epochs == DENOISING.epochs
    for bad, message in [("kk=3", "NAME=VALUE"), ("k", "NAME=VALUE"), ("replace=yes", "true or false")]:
        with pytest.raises(ValueError, match=message):
            settings.replace_from_strings([bad])


def test_set_option_reaches_the_training(tmp_path, capsys, monkeypatch):
    from keras_nrae import demo  # the examples train through demo's experiments, i.e. keras_nrae.recipe.train

    seen = []
    train = demo.train
    monkeypatch.setattr(
        demo, "train", lambda x, recipe, *a, **kw: seen.append(recipe) or train(x, recipe, *a, **kw)
    )
    _run("denoising", tmp_path, "--set", "output_activation=sigmoid", "hidden=8")
    assert [(s.output_activation, s.hidden, s.epochs) for s in seen] == [("sigmoid", (8,), 2)] * 3
    with pytest.raises(SystemExit):
        _run("denoising", tmp_path, "--set", "no_such_setting=1")
    assert "no_such_setting" in capsys.readouterr().err


def test_image_benchmark(tmp_path):
    rng = np.random.default_rng(0)
    npz = tmp_path / "tiny.npz"
    np.savez(npz, x_train=rng.integers(0, 256, (40, 6, 6), dtype=np.uint8),
             x_test=rng.integers(0, 256, (10, 6, 6), dtype=np.uint8))
    out = tmp_path / "out"
    metrics = _load("image_benchmark").main(["--smoke", "--verbose", "0", "--dataset", str(npz), "--out", str(out)])
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert list(metrics) == ["AE", "NRAE-L"]
    for values in metrics.values():
        assert values["divergence"] is None and values["test_mse"] > 0


def _imported_modules(path: Path) -> set:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


@pytest.mark.parametrize(
    "path",
    sorted((ROOT / "examples").glob("*.py"))
    + sorted(p for p in (ROOT / "keras_nrae").rglob("*.py") if "paper" not in p.relative_to(ROOT / "keras_nrae").parts),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_examples_and_the_library_import_no_paper_code(path):
    # The paper's code sits on top of the library: neither the examples nor the
    # library (the CLI included) may import keras_nrae.paper or the top-level paper/.
    paper = [m for m in _imported_modules(path) if m.split(".")[0] == "paper" or m.startswith("keras_nrae.paper")]
    assert not paper, (path, paper)
