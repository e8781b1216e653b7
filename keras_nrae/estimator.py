"""NRAE: a scikit-learn style manifold learner (fit / transform / inverse_transform).

It is the Keras pieces end to end, nothing new: `NeighborGraph.build` on the
training data, `neighborhood_dataset` batches (each centre with M − 1 of its
k graph neighbours), a `NeighborhoodReconstructionModel` trained with
`model.fit`; `transform` is the encoder g, `inverse_transform` the decoder f.

Needs scikit-learn (`pip install keras-nrae[sklearn]`); `import keras_nrae`
does not import it, `keras_nrae.NRAE` does (a lazy attribute of the package).
"""

from typing import Optional, Sequence, Tuple

import keras
import numpy as np

from keras_nrae._sklearn import require_sklearn

__all__ = ["NRAE"]

require_sklearn("keras_nrae.NRAE")

from sklearn.base import (  # noqa: E402
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.utils import check_random_state  # noqa: E402
from sklearn.utils.validation import check_array, check_is_fitted, validate_data  # noqa: E402

from keras_nrae._checks import check_order, integer_at_least, non_negative, positive  # noqa: E402
from keras_nrae.graph import NeighborGraph  # noqa: E402
from keras_nrae.recipe import ARCHITECTURES, NRAE_ORDERS, Recipe, train  # noqa: E402

NRAE_NAMES = {order: name for name, order in NRAE_ORDERS.items()}
_POSITIVE_INTS = ("n_components", "n_neighbors", "batch_size", "neighbors_per_point")
# epochs=None: e.g. 100 passes over 1,000 points in batches of 100, 1,000 passes over 100 points.
MIN_EPOCHS, MIN_STEPS = 100, 1000
# Keras shows (and history_ records) training as at most this many epochs:
# a Keras epoch costs far more than a step, and a pass may be a single step.
PROGRESS_EPOCHS = 10


def _fold_standardization(
    encoder: keras.Model, decoder: keras.Model, mean: np.ndarray, scale: float
) -> None:
    """Rewrite an `mlp_autoencoder` trained on (x − mean) / scale to work on x itself.

    With Dense(x) = x·K + b, the encoder's first Dense becomes K / scale,
    b − (mean / scale)·K and the decoder's (linear) last Dense becomes
    scale·K, scale·b + mean: then g(x) = g_s((x − mean) / scale) and
    f(z) = scale·f_s(z) + mean exactly, with no extra layer in either.
    mean: (D,), the flattened per-feature mean.
    """
    first = [layer for layer in encoder.layers if isinstance(layer, keras.layers.Dense)][0]
    last = [layer for layer in decoder.layers if isinstance(layer, keras.layers.Dense)][-1]
    kernel, bias = (w.astype(np.float64) for w in first.get_weights())
    first.set_weights([kernel / scale, bias - (mean / scale) @ kernel])
    kernel, bias = (w.astype(np.float64) for w in last.get_weights())
    last.set_weights([kernel * scale, bias * scale + mean])


class NRAE(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Neighborhood Reconstructing Autoencoder as a scikit-learn transformer.

    `fit(X)` builds the k-NN graph of X (N, D) (or images (N, H, W[, C])),
    trains an autoencoder g: X → R^n_components, f: R^n_components → X on
    the NRAE loss (kernel `Binary(lam)`: weight 1 for the centre, `lam` for
    each of its M − 1 = `neighbors_per_point` − 1 sampled neighbours) and
    keeps it; `transform(X)` = g(X) (N, n_components), `inverse_transform(Z)`
    = f(Z) (N, *X.shape[1:]).

    With `architecture="mlp"` the data are centred per feature and divided by
    one overall standard deviation (an isotropic map: neighbourhoods and
    shapes are unchanged) for training, and that map is then folded into the
    first and last Dense layers, so `encoder_`, `decoder_` and `model_` work
    on X in its own units. `architecture="conv"` needs images and uses
    `keras_nrae.architectures.conv_autoencoder(input_shape, n_components,
    activation)` on X as given (e.g. in [0, 1]).

    fit trains through `keras_nrae.recipe.train` (`Recipe` of these settings),
    the path every front end of the library shares.

    Args:
      n_components: latent dimension d.
      order: 1 (NRAE-L, first-order Taylor expansion of f) or 2 (NRAE-Q).
      n_neighbors: k of the neighbour graph; fit needs more than k points.
      lam: weight of a neighbour relative to the centre (`kernels.Binary`).
      hidden: widths of the MLP's hidden layers (the decoder mirrors them).
      activation: the encoder/decoder's activation; keep it smooth (ELU, tanh,
        softplus) for order 2, since a ReLU decoder has zero Hessian.
      epochs: passes over the data (every point is a centre once per pass);
        None: at least MIN_EPOCHS and enough for MIN_STEPS gradient steps.
        Keras shows them as min(epochs, PROGRESS_EPOCHS) epochs.
      batch_size: centres per step (at most N).
      learning_rate: Adam's learning rate.
      neighbors_per_point: M, slots per centre: the centre plus M − 1
        neighbours drawn afresh every pass from its k nearest (M − 1 <= k).
      architecture: "mlp" or "conv" (images).
      random_state: None, an int or a `np.random.RandomState`. fit draws one
        seed from it, calls `keras.utils.set_random_seed(seed)` (which seeds
        Python's, NumPy's and TensorFlow's global generators) and seeds the
        neighbour sampling with it: the same int gives the same embedding.
      verbose: 0 silent, 1 Keras progress bars, 2 one line per epoch.

    Attributes (after fit):
      encoder_, decoder_: the Keras models g (N, *input_shape_) → (N, d) and f.
      model_: the trained `NeighborhoodReconstructionModel` (for
        `keras_nrae.export_saved_model`, `model_.save`); compiled after fit,
        not after unpickling.
      graph_: the `NeighborGraph` the model trained on (built on the
        standardised data for "mlp": distances are divided by `scale_`).
      history_: `{"loss": [mean training loss of each Keras epoch]}`
        (Keras's History.history; see `epochs`).
      mean_ (D,), scale_: the standardisation used in training (0 and 1 for "conv").
      input_shape_: the shape of one sample, e.g. (D,) or (H, W, C).
      n_features_in_: D, the number of values per sample.
    """

    def __init__(
        self,
        n_components: int = 2,
        order: int = 1,
        n_neighbors: int = 10,
        lam: float = 1.0,
        hidden: Sequence[int] = (128, 128, 128),
        activation: str = "elu",
        epochs: Optional[int] = None,
        batch_size: int = 100,
        learning_rate: float = 3e-3,
        neighbors_per_point: int = 4,
        architecture: str = "mlp",
        random_state=None,
        verbose: int = 0,
    ):
        self.n_components = n_components
        self.order = order
        self.n_neighbors = n_neighbors
        self.lam = lam
        self.hidden = hidden
        self.activation = activation
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.neighbors_per_point = neighbors_per_point
        self.architecture = architecture
        self.random_state = random_state
        self.verbose = verbose

    # -- parameters and inputs --------------------------------------------------

    def _check_params(self) -> None:
        for name in _POSITIVE_INTS:
            integer_at_least(getattr(self, name), name)
        if self.epochs is not None:
            integer_at_least(self.epochs, "epochs")
        check_order(self.order)
        non_negative(self.lam, "lam")
        positive(self.learning_rate, "learning_rate")
        if isinstance(self.hidden, (str, bytes)) or not hasattr(self.hidden, "__iter__"):
            raise ValueError(f"hidden must be a sequence of layer sizes, got {self.hidden!r}.")
        for units in self.hidden:
            integer_at_least(units, "each hidden layer size")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}.")
        if self.neighbors_per_point - 1 > self.n_neighbors:
            raise ValueError(
                f"neighbors_per_point={self.neighbors_per_point} draws "
                f"{self.neighbors_per_point - 1} neighbours besides the centre from "
                f"n_neighbors={self.n_neighbors}; raise n_neighbors or lower neighbors_per_point."
            )

    def _validate(self, X, reset: bool) -> np.ndarray:
        """X as float32 (N, *input_shape_), checked by scikit-learn's rules.

        Images (N, H, W[, C]) are flattened for the checks (so n_features_in_
        = H·W·C) and reshaped back; after fit, flattened images are accepted too.
        """
        if not hasattr(X, "shape"):  # a list, or another array-like without a shape
            X = np.asarray(X)
        shape = X.shape
        if len(shape) > 2:
            if not reset and tuple(shape[1:]) != self.input_shape_:
                raise ValueError(
                    f"X has samples of shape {tuple(shape[1:])}, but NRAE was fitted "
                    f"on samples of shape {self.input_shape_}."
                )
            X = np.reshape(np.asarray(X), (shape[0], -1))
        x = validate_data(self, X, reset=reset, dtype=np.float32, order="C")
        if reset:
            self.input_shape_ = tuple(int(s) for s in shape[1:])
        return x.reshape((len(x), *self.input_shape_))

    # -- fitting ------------------------------------------------------------------

    def _standardization(self, x: np.ndarray) -> Tuple[np.ndarray, float]:
        """(mean (D,), scale): the per-feature mean and the overall standard
        deviation of x for "mlp"; (0, 1) for "conv", which sees X as given."""
        flat = x.reshape(len(x), -1).astype(np.float64)
        if self.architecture != "mlp":
            return np.zeros(flat.shape[1]), 1.0
        mean = flat.mean(axis=0)
        return mean, float(np.sqrt(np.mean((flat - mean) ** 2))) or 1.0

    def _recipe(self, num_points: int) -> Recipe:
        """The `Recipe` fit trains: NRAE of `order` on `architecture`, `epochs` passes
        (None: the default schedule) shown as at most PROGRESS_EPOCHS Keras epochs."""
        passes = self.epochs
        if passes is None:
            steps_per_pass = num_points // min(self.batch_size, num_points)
            passes = max(MIN_EPOCHS, -(-MIN_STEPS // steps_per_pass))
        return Recipe(
            model=NRAE_NAMES[self.order], latent_dim=self.n_components, architecture=self.architecture,
            hidden=tuple(self.hidden), activation=self.activation,
            output_activation=None if self.architecture == "mlp" else "sigmoid",
            epochs=passes, batch_size=self.batch_size, learning_rate=self.learning_rate,
            progress_epochs=PROGRESS_EPOCHS, k=self.n_neighbors, lam=self.lam,
            neighbors_per_point=self.neighbors_per_point,
        )

    def fit(self, X, y=None) -> "NRAE":
        """Train on X (N, D) or images (N, H, W[, C]), float; y is ignored. Returns self."""
        self._check_params()
        x = self._validate(X, reset=True)
        if len(x) <= self.n_neighbors:
            raise ValueError(
                f"n_neighbors={self.n_neighbors} needs more than {self.n_neighbors} "
                f"samples, got {len(x)} sample(s); lower n_neighbors or pass more samples."
            )
        if self.architecture == "conv" and len(self.input_shape_) < 2:
            raise ValueError(
                f'architecture="conv" needs images (N, H, W[, C]), got samples of shape '
                f"{self.input_shape_}; use architecture=\"mlp\" for (N, D) data."
            )
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        keras.utils.set_random_seed(seed)
        mean, scale = self._standardization(x)
        x_train = ((x.reshape(len(x), -1) - mean) / scale).astype(np.float32).reshape(x.shape)
        graph = NeighborGraph.build(x_train, k=self.n_neighbors, verbose=self.verbose)
        run = train(x_train, self._recipe(len(x)), seed, graph=graph, verbose=self.verbose)
        model, history = run.model, run.history
        if self.architecture == "mlp":
            _fold_standardization(model.encoder, model.decoder, mean, scale)
        self.mean_, self.scale_, self.graph_, self.model_, self.history_ = (
            mean, scale, graph, model, history
        )
        self.encoder_, self.decoder_ = model.encoder, model.decoder
        self._n_features_out = self.n_components
        return self

    # -- mapping ------------------------------------------------------------------

    def transform(self, X) -> np.ndarray:
        """g(X): (N, n_components) float32 codes of X (N, *input_shape_) or (N, D)."""
        check_is_fitted(self)
        return np.asarray(self.model_.encode(self._validate(X, reset=False)))

    def inverse_transform(self, Z) -> np.ndarray:
        """f(Z): (N, *input_shape_) float32 points decoded from codes Z (N, n_components)."""
        check_is_fitted(self)
        z = check_array(Z, dtype=np.float32, input_name="Z", estimator=self)
        if z.shape[1] != self.n_components:
            raise ValueError(
                f"Z has {z.shape[1]} columns, but NRAE has n_components={self.n_components}."
            )
        return np.asarray(self.model_.decode(z))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    # -- pickling -----------------------------------------------------------------

    def __getstate__(self) -> dict:
        """The estimator's state with the Keras models as (config, weights)."""
        state = dict(super().__getstate__())
        model = state.pop("model_", None)
        if model is not None:
            del state["encoder_"], state["decoder_"]
            state["_saved_model"] = (keras.saving.serialize_keras_object(model), model.get_weights())
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        saved: Optional[tuple] = state.pop("_saved_model", None)
        super().__setstate__(state)
        if saved is not None:
            config, weights = saved
            model = keras.saving.deserialize_keras_object(config)
            model.set_weights(weights)
            self.model_, self.encoder_, self.decoder_ = model, model.encoder, model.decoder
