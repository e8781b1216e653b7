"""The one place that touches Keras internals.

Everything here relies on Keras 3 details that have no public API;
`tests/test_keras_compat.py` pins each of them to the Keras versions in
`TESTED_KERAS`, so that an upgrade that changes one fails loudly there.
"""

from typing import List, Optional

import keras
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


def clear_losses(layer: keras.layers.Layer) -> None:
    """Forget the `add_loss` terms (activity regularizers included) that layer and
    its sublayers hold from earlier calls, as Keras does when a call begins."""
    layer._clear_losses()
