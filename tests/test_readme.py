"""README.md's quick start and estimator blocks run as written (on less data, one epoch).

The site's pages (docs/) run their own blocks: tests/test_docs_code.py.
"""

import re
from pathlib import Path

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
    exec(compile(shrunk(python_block("## Manifold learning in five lines"), shrink), "README.md", "exec"), namespace)
    assert namespace["Z"].shape == (60, 2)
