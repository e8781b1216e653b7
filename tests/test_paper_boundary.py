"""The boundary between the library and the paper's code: paper/ uses keras_nrae's public names only,
keras_nrae never imports paper/, and no test imports benchmarks/."""

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _sources(folder: str):
    return sorted((ROOT / folder).rglob("*.py"))


def _public(module: str) -> list:
    return list(importlib.import_module(module).__all__)


def _is_module(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def _library_uses(tree: ast.AST):
    """(line, module, name) of each keras_nrae name a file uses: `from keras_nrae.m import n`,
    `import keras_nrae.m` / `from keras_nrae import m` (a module: its parent's n) and `alias.n`
    where alias is bound to a keras_nrae module."""
    aliases = {}  # local name -> keras_nrae module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "keras_nrae":
                    parent, _, name = alias.name.rpartition(".")
                    if parent:
                        yield node.lineno, parent, name
                    if alias.asname or not parent:
                        aliases[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "keras_nrae":
            for alias in node.names:
                yield node.lineno, node.module, alias.name
                if _is_module(f"{node.module}.{alias.name}"):
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            yield node.lineno, aliases[node.value.id], node.attr


@pytest.mark.parametrize("path", _sources("paper"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_paper_code_uses_only_public_names_of_keras_nrae(path):
    tree = ast.parse(path.read_text(), str(path))
    uses = list(_library_uses(tree))
    private = [(line, module, name) for line, module, name in uses
               if any(part.startswith("_") for part in module.split(".")) or name not in _public(module)]
    assert not private, f"{path.relative_to(ROOT)}: names outside keras_nrae's __all__: {private}"


def test_the_paper_code_is_seen_using_the_library():
    # The check above sees something: the harness's modules use keras_nrae.
    uses = {(module, name) for path in _sources("paper") for _, module, name in _library_uses(ast.parse(path.read_text()))}
    assert {("keras_nrae.recipe", "train"), ("keras_nrae.tuning", "grid_search"), ("keras_nrae.records", "read_records")} <= uses
    # ... and would flag a private one.
    assert list(_library_uses(ast.parse("from keras_nrae._files import atomic_open"))) == [(1, "keras_nrae._files", "atomic_open")]


def _imported_modules(path: Path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module


def test_keras_nrae_never_imports_the_paper_code():
    importers = [str(path.relative_to(ROOT)) for path in _sources("keras_nrae")
                 if any(module.split(".")[0] == "paper" for module in _imported_modules(path))]
    assert not importers


def test_no_test_imports_the_benchmarks():
    importers = [str(path.relative_to(ROOT)) for path in _sources("tests")
                 if any(module.split(".")[0] == "benchmarks" for module in _imported_modules(path))]
    assert not importers
