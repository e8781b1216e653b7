"""Every ```python block of the site's pages runs, as written or shrunk (tests/_doc_blocks.py)."""

from pathlib import Path

import numpy as np
import pytest

from _doc_blocks import missing_modules, python_blocks, run_page

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if python_blocks(p))


def photo_folder(namespace):
    """photos/: 40 random 80×72 RGB PNG files, for the data guide's worked path."""
    from PIL import Image

    rng = np.random.default_rng(0)
    Path("photos").mkdir()
    for i in range(40):
        Image.fromarray(rng.integers(0, 256, (80, 72, 3), dtype=np.uint8)).save(f"photos/{i:02d}.png")


SETUPS = {"photo_folder": photo_folder}


def test_the_guides_have_code():
    names = {p.relative_to(DOCS).as_posix() for p in PAGES}
    assert {"guides/custom-models.md", "guides/data.md", "guides/estimator.md"} <= names, names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_page_code_runs(page, tmp_path, monkeypatch):
    missing = missing_modules(python_blocks(page))
    if missing:
        pytest.skip(f"{page.name} needs {', '.join(missing)} (an optional extra)")
    monkeypatch.chdir(tmp_path)
    run_page(page, SETUPS)
