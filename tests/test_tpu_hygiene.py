"""TPU hygiene: every model's traced training step runs on the device alone.

The traced `train_step` (and every function nested in it: gradients, loops,
vectorised maps) holds no host callback (`tf.py_function`, `tf.numpy_function`,
`tf.print`, outfeed), and lowers to XLA HLO, the form a TPU executes.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_nrae import NeighborhoodReconstructionModel, baselines, kernels
from keras_nrae.architectures import mlp_autoencoder

HOST_OPS = {
    "PyFunc", "PyFuncStateless", "EagerPyFunc",  # tf.numpy_function, tf.py_function
    "Print", "PrintV2",  # tf.print
    "OutfeedEnqueue", "OutfeedEnqueueTuple",  # data sent to the host mid-step
}

MODELS = {
    "NRAE-L": lambda e, d: NeighborhoodReconstructionModel(e, d, order=1, kernel=kernels.Binary(0.5)),
    "NRAE-Q": lambda e, d: NeighborhoodReconstructionModel(e, d, order=2, kernel=kernels.Binary(0.5)),
    "Autoencoder": baselines.Autoencoder,
    "DenoisingAutoencoder": lambda e, d: baselines.DenoisingAutoencoder(e, d, seed=0),
    "ContractiveAutoencoder": baselines.ContractiveAutoencoder,
    "VariationalAutoencoder": lambda e, d: baselines.VariationalAutoencoder(e, d, seed=0),
    "WassersteinAutoencoder": lambda e, d: baselines.WassersteinAutoencoder(e, d, seed=0),
    "StructurePreservingAutoencoder": baselines.StructurePreservingAutoencoder,
}


def op_types(concrete_function) -> set:
    """The op type of every node of a traced function and of every function in its library."""
    graph_def = concrete_function.graph.as_graph_def()
    nodes = list(graph_def.node)
    for function in graph_def.library.function:
        nodes.extend(function.node_def)
    return {node.op for node in nodes}


def _batch():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 4)).astype("float32")
    neighbors = np.concatenate([x[:, None], rng.normal(size=(8, 2, 4))], 1).astype("float32")
    return {"x": x, "neighbors": neighbors}


def test_op_types_finds_a_host_callback_nested_in_a_loop():
    @tf.function
    def inner(v):
        return tf.reshape(tf.py_function(lambda t: t + 1, [v], tf.float32), [])

    @tf.function
    def outer(v):
        return tf.while_loop(lambda i, _: i < 2, lambda i, w: (i + 1, inner(w)), [0, v])[1]

    assert "EagerPyFunc" in op_types(outer.get_concrete_function(tf.TensorSpec([], tf.float32)))


@pytest.mark.parametrize("name", list(MODELS))
def test_train_step_holds_no_host_callback_and_lowers_to_xla(name):
    widen = 2 if name == "VariationalAutoencoder" else 1
    encoder, _ = mlp_autoencoder((4,), 2 * widen, hidden=(8,), activation="tanh")
    _, decoder = mlp_autoencoder((4,), 2, hidden=(8,), activation="tanh")
    model = MODELS[name](encoder, decoder)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    batch = _batch()
    model.fit(tf.data.Dataset.from_tensors(batch), verbose=0)  # builds the optimizer's variables
    batch = tf.nest.map_structure(tf.constant, batch)
    found = op_types(tf.function(model.train_step).get_concrete_function(batch)) & HOST_OPS
    assert not found, f"{name}'s train_step calls back to the host: {sorted(found)}"
    hlo = tf.function(model.train_step, jit_compile=True).experimental_get_compiler_ir(batch)("hlo")
    assert "ENTRY" in hlo
