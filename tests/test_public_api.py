"""The public boundary: every public module of keras_nrae declares `__all__`, and each name in it exists."""

import importlib
import importlib.util
import pkgutil
import warnings

import pytest

import keras_nrae


def _public_modules():
    names = ["keras_nrae"]
    for info in pkgutil.walk_packages(keras_nrae.__path__, "keras_nrae."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


@pytest.mark.parametrize("name", _public_modules())
def test_every_public_module_declares_its_names(name):
    if name == "keras_nrae.estimator":
        pytest.importorskip("sklearn")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # keras_nrae.data, the deprecated alias
        module = importlib.import_module(name)
    assert isinstance(module.__all__, list), name
    missing = [n for n in module.__all__ if not hasattr(module, n) and not _is_submodule(name, n)]
    assert not missing, (name, missing)
    assert len(set(module.__all__)) == len(module.__all__), name


def _is_submodule(package, name):
    return importlib.util.find_spec(f"{package}.{name}") is not None
