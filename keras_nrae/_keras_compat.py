"""The one place that touches Keras internals.

Everything here relies on Keras 3 details that have no public API;
`tests/test_keras_compat.py` pins each of them to the Keras versions in
`TESTED_KERAS`, so that an upgrade that changes one fails loudly there. The
last section works around keras-team/keras#20585 (`fit` under
`MultiWorkerMirroredStrategy`) in `KerasTrainerHooks`, the mixin through
which `Autoencoder` overrides Keras' private trainer hooks: model.py itself
overrides none.
"""

import functools
from typing import Any, Callable, List, Optional

import keras
import tensorflow as tf
from keras.src.backend.tensorflow import trainer as tf_trainer
from keras.src.models.functional import Functional  # keras.Model(inputs, outputs); no public name

TESTED_KERAS = ">=3.10,<3.16"


def is_functional(model) -> bool:
    """True for a model built as `keras.Model(inputs, outputs)` whose `call` is Keras's own."""
    return isinstance(model, Functional) and type(model).call is Functional.call


def functional_chain(model) -> Optional[List[keras.layers.Layer]]:
    """The layers of a functional model that is one chain (one input, each layer
    called once, on the previous layer's output), else None."""
    if not is_functional(model) or len(model.inputs) != 1 or len(model.outputs) != 1:
        return None
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    tensor = model.inputs[0]
    for layer in layers:
        nodes = layer._inbound_nodes
        if len(nodes) != 1 or len(nodes[0].input_tensors) != 1 or len(nodes[0].outputs) != 1:
            return None
        if nodes[0].input_tensors[0] is not tensor:  # `is`: KerasTensor == builds an op
            return None
        tensor = nodes[0].outputs[0]
    return layers if tensor is model.outputs[0] else None


def all_layers(layer: keras.layers.Layer) -> List[keras.layers.Layer]:
    """layer and every layer it tracks, recursively, each once."""
    return list(layer._flatten_layers(include_self=True, recursive=True))


def record_compile_argument(model: keras.Model, name: str, value: Any) -> None:
    """Store an argument of model's own `compile` in its compile config, which
    `get_compile_config` saves and `compile_from_config` passes back."""
    model._compile_config.config[name] = value


def clear_losses(layer: keras.layers.Layer) -> None:
    """Forget the `add_loss` terms (activity regularizers included) that layer and
    its sublayers hold from earlier calls, as Keras does when a call begins."""
    layer._clear_losses()


# -- MultiWorkerMirroredStrategy in Keras' TensorFlow trainer (keras-team/keras#20585) ----------


def first_replica_batch(strategy: tf.distribute.Strategy, epoch_iterator) -> Any:
    """The first batch of a Keras epoch iterator, each leaf as this worker's first replica holds it.

    Keras' `_maybe_symbolic_build` draws one batch to build the model from
    shapes, and merges its per-replica values with `strategy.reduce("MEAN",
    batch, axis=None)`; under `MultiWorkerMirroredStrategy` that reduction
    refuses a dict ("Attempt to convert a value ({'x': PerReplica…}) to a
    Tensor"). One replica's value has the same shape and dtype, and needs no
    communication between workers.
    """
    for _, _, iterator in epoch_iterator:
        return tf.nest.map_structure(
            lambda value: strategy.experimental_local_results(value)[0], next(iterator)
        )
    raise ValueError("The dataset is empty: no batch to build the model from.")


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    """True where Keras reduces step outputs across workers (`reduce_per_replica`)."""
    return tf_trainer._collective_all_reduce_multi_worker(strategy)


def reducible_step(strategy: tf.distribute.Strategy, step: Callable) -> Callable:
    """`step` whose scalar outputs have shape (1,) under several workers, else `step` itself.

    Keras' `reduce_per_replica` averages each step output of a multi-worker
    strategy with `strategy.reduce("MEAN", v, axis=0)`, which fails on the
    scalars every step returns (its metrics). On shape (1,) it is the scalar
    mean over replicas, Σ_r v_r / R, which is what one worker's logs show.
    """
    if not is_multi_worker(strategy):
        return step

    @functools.wraps(step)
    def step_with_vector_scalars(data):
        return tf.nest.map_structure(
            lambda v: tf.reshape(v, [1]) if v.shape.rank == 0 else v, step(data)
        )

    return step_with_vector_scalars


class KerasTrainerHooks:
    """Keras' private TensorFlow-trainer hooks, overridden for `MultiWorkerMirroredStrategy`.

    A mixin listed before `keras.Model` in a model's bases (as `Autoencoder`
    does). `_maybe_symbolic_build` builds from one replica's batch
    (`first_replica_batch`), `_make_function` wraps the step so that Keras
    can reduce its outputs across workers (`reducible_step`); on one worker
    both do what Keras does. `tests/test_keras_compat.py` pins both
    signatures and their callers in `fit` and `make_train_function`.
    """

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Keras', built from one replica's batch (works under several workers)."""
        if iterator is not None and self._distribute_strategy is not None:
            data_batch = first_replica_batch(self.distribute_strategy, iterator)
        super()._maybe_symbolic_build(data_batch=data_batch)

    def _make_function(self, step_function):
        """Keras', with step outputs its multi-worker reduction takes."""
        return super()._make_function(reducible_step(self.distribute_strategy, step_function))
