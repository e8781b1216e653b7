"""keras_nrae._keras_compat: each Keras internal it relies on, on the installed Keras.

When a Keras upgrade breaks one of these, this module fails first and names it.
"""

import re

import keras
import numpy as np
import pytest

from keras_nrae import _keras_compat as compat


def _version(text):
    return tuple(int(part) for part in re.findall(r"\d+", text)[:2])


def test_installed_keras_is_a_tested_version():
    low, high = (_version(bound) for bound in compat.TESTED_KERAS.split(","))
    assert low <= _version(keras.__version__) < high, (
        f"Keras {keras.__version__} is outside {compat.TESTED_KERAS}: re-run this module "
        f"and tests/test_decoder_matrix.py, then widen TESTED_KERAS"
    )


def test_functional_models_and_their_chains():
    z = keras.Input((3,))
    first = keras.layers.Dense(4)
    second = keras.layers.Dense(2)
    chain = keras.Model(z, second(first(z)))
    assert compat.is_functional(chain)
    assert compat.functional_chain(chain) == [first, second]
    branch = keras.Model(z, keras.layers.Add()([first(z), keras.layers.Dense(4)(z)]))
    assert compat.functional_chain(branch) is None
    assert not compat.is_functional(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))


def test_all_layers_reaches_nested_layers():
    inner = keras.layers.Dense(2)
    nested = keras.Sequential([keras.Input((3,)), keras.Sequential([keras.Input((3,)), inner])])
    assert inner in compat.all_layers(nested)
    assert nested in compat.all_layers(nested)


def test_clear_losses_forgets_earlier_add_loss_terms():
    inner = keras.layers.Dense(2, activity_regularizer="l2")
    model = keras.Sequential([keras.Input((3,)), inner])
    model(np.ones((4, 3), "float32"))
    inner(np.ones((4, 3), "float32"))  # a second, separate call adds to inner's own losses
    assert len(model.losses) == 1
    compat.clear_losses(model)
    assert model.losses == []


@pytest.mark.parametrize("layer_class", [keras.layers.Dense, keras.layers.Conv2D])
def test_layers_have_the_attributes_the_taylor_rules_read(layer_class):
    layer = layer_class(2, 3) if layer_class is keras.layers.Conv2D else layer_class(2)
    for name in ("quantization_mode", "activation", "activity_regularizer", "compute_dtype"):
        assert hasattr(layer, name), name
