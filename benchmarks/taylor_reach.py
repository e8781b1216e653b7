"""How far NRAE's Taylor expansion reaches during training, epoch by epoch.

Trains NRAE (the Table 1 protocol's MLP and settings, on its fitting split)
and after every epoch prints, for 200 fixed (centre, neighbour) pairs of the
k-NN graph: validation MSE, the largest batch loss of the epoch, the mean code
norm ‖z‖, the mean / largest neighbour code distance ‖dz‖, the 99th percentile
and largest predicted change of the output layer's pre-activation |J_a dz|
(logits, before the sigmoid) and of its second-order term |½ dzᵀH_a dz|, and
the mean neighbour errors ‖x' − x̃'‖² of the first- and second-order
expansions. README "Diverged runs are reported, not scored" uses its output.

    PYTHONPATH=. python benchmarks/taylor_reach.py mnist --order 2 --k 10 --lam 1.0 --epochs 100 --seed 0
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_nrae import recipe as recipes  # noqa: E402
from keras_nrae.graph import NeighborGraph  # noqa: E402
from keras_nrae.metrics import reconstruction_mse  # noqa: E402
from keras_nrae.taylor import taylor_terms  # noqa: E402
from paper.table1 import protocol  # noqa: E402

PAIRS = 200


def _flat(t) -> np.ndarray:
    return np.reshape(np.asarray(t), (PAIRS, -1))


def _pre_activation_terms(decoder, z, dz):
    """Taylor terms of the decoder with its last Dense layer's activation switched off."""
    last = [layer for layer in decoder.layers if isinstance(layer, keras.layers.Dense)][-1]
    activation, last.activation = last.activation, keras.activations.linear
    try:
        return taylor_terms(decoder, z, dz, order=2)
    finally:
        last.activation = activation


class Reach(keras.callbacks.Callback):
    def __init__(self, x_fit, x_val, graph, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        rows = rng.choice(len(x_fit), PAIRS, replace=False)
        self.centres = x_fit[rows]
        self.neighbours = x_fit[graph.indices[rows, rng.integers(0, graph.k, PAIRS)]]
        self.x_val = x_val

    def on_epoch_begin(self, epoch, logs=None):
        self.running, self.batch_losses = 0.0, []

    def on_train_batch_end(self, batch, logs=None):  # logs hold the epoch's running mean
        self.batch_losses.append(logs["loss"] * (batch + 1) - self.running * batch)
        self.running = logs["loss"]

    def on_epoch_end(self, epoch, logs=None):
        z = self.model.encode(self.centres)
        dz = (self.model.encode(self.neighbours) - z)[:, None]
        value, first, second = (_flat(t) for t in taylor_terms(self.model.decoder, z, dz, order=2))
        _, pre_first, pre_second = (_flat(t) for t in _pre_activation_terms(self.model.decoder, z, dz))
        target, dz_norm = _flat(self.neighbours), np.linalg.norm(dz[:, 0], axis=1)
        error1 = np.sum((target - value - first) ** 2, 1)
        error2 = np.sum((target - value - first - 0.5 * second) ** 2, 1)
        print(
            f"epoch {epoch + 1} loss {logs['loss']:.3f} max_batch {max(self.batch_losses):.3f} "
            f"val_mse {reconstruction_mse(self.model, self.x_val):.5f} "
            f"|z| {np.linalg.norm(z, axis=1).mean():.1f} |dz| {dz_norm.mean():.1f}/{dz_norm.max():.1f} "
            f"|J_a dz| p99/max {np.percentile(np.abs(pre_first), 99):.2f}/{np.abs(pre_first).max():.2f} "
            f"|½ dzHdz|_a max {0.5 * np.abs(pre_second).max():.2f} "
            f"error order1/order2 {error1.mean():.2f}/{error2.mean():.2f}",
            flush=True,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--order", type=int, default=2)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--lam", type=float, default=1.0)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = protocol.BenchmarkConfig(epochs=args.epochs)
    x_fit, x_val = protocol.validation_images(args.dataset, config)
    graph = NeighborGraph.build(x_fit, k=args.k, verbose=0)
    print(f"{args.dataset} order={args.order} k={args.k} lam={args.lam:g} seed={args.seed}; {config}")
    recipe = protocol.recipe(protocol.NRAE_NAMES[args.order], config, x_fit.shape[1:], {"k": args.k, "lam": args.lam})
    recipes.train(x_fit, recipe, args.seed, graph=graph, callbacks=[Reach(x_fit, x_val, graph)])


if __name__ == "__main__":
    main()
