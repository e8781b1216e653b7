"""README.md's quick start runs as written (on fewer images and one epoch)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SHRINK = {"[:5000]": "[:200]", "epochs=20": "epochs=1, verbose=0"}


def quick_start() -> str:
    text = README.read_text()
    section = text[text.index("## Quick start") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_quick_start_runs(tmp_path, monkeypatch):
    from keras_nrae.datasets import load_images

    try:
        load_images("mnist", "test")
    except (OSError, ValueError) as error:
        pytest.skip(f"MNIST is not available here (no ../shared/data, no tfds data): {error}")
    code = quick_start()
    for old, new in SHRINK.items():
        assert old in code, f"the quick start no longer contains {old!r}"
        code = code.replace(old, new)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["x_hat"].shape == (8, 28, 28, 1)
    assert (tmp_path / "nrae.keras").exists() and (tmp_path / "nrae_export").is_dir()
