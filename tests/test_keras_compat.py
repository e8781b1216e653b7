"""keras_nrae._keras_compat: each Keras internal it relies on, on the installed Keras.

When a Keras upgrade breaks one of these, this module fails first and names it.
"""

import inspect
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.backend.tensorflow import trainer as tf_trainer

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


# -- MultiWorkerMirroredStrategy (keras-team/keras#20585) ------------------------------


def test_the_trainer_hooks_the_model_overrides_keep_their_signatures():
    hooks = {"_maybe_symbolic_build": ["self", "iterator", "data_batch"],
             "_make_function": ["self", "step_function"]}
    for name, parameters in hooks.items():
        hook = getattr(tf_trainer.TensorFlowTrainer, name)
        assert list(inspect.signature(hook).parameters) == parameters, name
    trainer = tf_trainer.TensorFlowTrainer
    assert "self._maybe_symbolic_build(iterator=epoch_iterator)" in inspect.getsource(trainer.fit)
    assert "self._make_function(self.train_step)" in inspect.getsource(trainer.make_train_function)


def test_keras_internals_are_overridden_only_through_keras_trainer_hooks():
    """The models override no private keras.Model attribute themselves: `KerasTrainerHooks` does,
    with the signatures pinned above."""
    from keras_nrae import Autoencoder, baselines, model

    private = {name for name in dir(keras.Model) if name.startswith("_") and not name.startswith("__")}
    for module in (model, baselines):
        for cls in vars(module).values():
            if isinstance(cls, type) and issubclass(cls, keras.Model):
                assert not private & set(vars(cls)), cls
    assert Autoencoder.__mro__[1:3] == (compat.KerasTrainerHooks, keras.Model)
    for name in ("_maybe_symbolic_build", "_make_function"):
        ours, keras_hook = getattr(compat.KerasTrainerHooks, name), getattr(tf_trainer.TensorFlowTrainer, name)
        assert inspect.signature(ours) == inspect.signature(keras_hook), name


def test_record_compile_argument_reaches_compile_from_config():
    from keras_nrae import Autoencoder
    from keras_nrae.architectures import mlp_autoencoder

    model = Autoencoder(*mlp_autoencoder((3,), 1, hidden=(4,)))
    model.compile(check_finite=False)
    assert model.get_compile_config()["check_finite"] is False


def test_keras_reduces_step_outputs_of_several_workers_with_a_mean_over_axis_0():
    source = inspect.getsource(tf_trainer.reduce_per_replica)
    assert 'strategy.reduce("MEAN", v, axis=0)' in source
    assert "_collective_all_reduce_multi_worker(strategy)" in source
    assert "reduce_per_replica(" in inspect.getsource(tf_trainer.TensorFlowTrainer._make_function)
    assert not compat.is_multi_worker(tf.distribute.get_strategy())
    assert not compat.is_multi_worker(tf.distribute.MirroredStrategy(["/cpu:0"]))


def test_reducible_step_gives_scalars_shape_1_only_under_several_workers(monkeypatch):
    strategy = tf.distribute.get_strategy()
    step = lambda data: {"loss": tf.reduce_mean(data), "rows": data}
    assert compat.reducible_step(strategy, step) is step
    monkeypatch.setattr(compat, "is_multi_worker", lambda _: True)
    data = tf.constant([1.0, 2.0, 6.0])
    outputs = compat.reducible_step(strategy, step)(data)
    assert outputs["loss"].shape == (1,) and outputs["rows"].shape == (3,)
    assert float(strategy.reduce("MEAN", outputs["loss"], axis=0)) == 3.0


def test_first_replica_batch_takes_each_leaf_from_keras_epoch_iterator():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    x = np.arange(24, dtype="float32").reshape(6, 4)
    dataset = tf.data.Dataset.from_tensor_slices({"x": x, "neighbors": x[:, None]}).batch(3)
    epoch_iterator = tf_trainer.TFEpochIterator(
        x=dataset, distribute_strategy=strategy, steps_per_execution=1
    )
    batch = compat.first_replica_batch(strategy, epoch_iterator)
    np.testing.assert_array_equal(batch["x"], x[:3])
    assert batch["neighbors"].shape == (3, 1, 4)
