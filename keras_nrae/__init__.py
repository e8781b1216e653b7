"""keras-nrae: Neighborhood Reconstructing Autoencoders (Lee, Kwon & Park, NeurIPS 2021) for Keras."""

from keras_nrae._backend import require_tensorflow_backend

require_tensorflow_backend()

from keras_nrae import (  # noqa: E402
    architectures,
    baselines,
    arrays,
    callbacks,
    datasets,
    distribute,
    divergence,
    finite,
    graph_shards,
    kernels,
    losses,
    metrics,
    recipe,
    taylor,
    toy,
    tuning,
)
from keras_nrae._files import FileFormatError  # noqa: E402
from keras_nrae._version import __version__  # noqa: E402
from keras_nrae.pipeline import neighborhood_dataset  # noqa: E402
from keras_nrae.export import export_saved_model, load_model, load_saved_model  # noqa: E402
from keras_nrae.finite import NonFiniteError  # noqa: E402
from keras_nrae.graph import NeighborGraph  # noqa: E402
from keras_nrae.losses import NeighborhoodReconstructionLoss  # noqa: E402
from keras_nrae.model import Autoencoder, NeighborhoodReconstructionModel  # noqa: E402

__all__ = [
    "Autoencoder",
    "FileFormatError",
    "NRAE",
    "NeighborGraph",
    "NeighborhoodReconstructionLoss",
    "NeighborhoodReconstructionModel",
    "NonFiniteError",
    "architectures",
    "baselines",
    "arrays",
    "callbacks",
    "datasets",
    "distribute",
    "divergence",
    "export_saved_model",
    "finite",
    "graph_shards",
    "kernels",
    "load_model",
    "load_saved_model",
    "losses",
    "metrics",
    "neighborhood_dataset",
    "recipe",
    "taylor",
    "toy",
    "tuning",
]


def __getattr__(name: str):
    """`keras_nrae.NRAE`, imported on first use: it needs scikit-learn, an optional extra."""
    if name == "NRAE":
        from keras_nrae.estimator import NRAE

        return NRAE
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | {"NRAE"})
