"""keras-nrae's NRAE training step against the official PyTorch step, side by side.

    pip install -e ".[bench]"     # PyTorch (CPU is enough), never needed by the package
    python benchmarks/vs_pytorch.py [--steps 20] [--slots 1 4]

The PyTorch row re-writes the training step of the official code
(Gabe-YHLee/NRAE-public, `models/ae.py`, `NRAE.train_step`) for timing: the
encoder runs on the centres and, separately, on all M neighbour slots; the
decoder runs on the centres; J·dz comes from `torch.autograd.functional.jvp`
(double backward) with each centre's code repeated once per slot, nested once
more for NRAE-Q; loss = mean over (b, m) of w_bm ‖x_bm − x̃_bm‖² with the binary
kernel; one Adam step. The Keras row is `NeighborhoodReconstructionModel` with
the same MLP (784→512→512→512→d, ELU, sigmoid output), B = 128, the same M
slots (the centre in slot 0) and Adam, run through `model.train_function`.
Steps alternate between the two frameworks; the table gives medians (ms) and
their ratio. Both use the same number of CPU threads. PyTorch runs in a
worker process of its own (TensorFlow and PyTorch in one process crash on
this machine), stepping when this process asks it to.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np

BATCH, FEATURES, HIDDEN, LAM = 128, 784, (512, 512, 512), 1.0


def official_step(torch):
    """(make_model(latent, order), step(model, optimizer, x_c, x_nn)) re-written from the official code."""
    nn = torch.nn

    def mlp(sizes, out_activation):
        layers = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(fan_in, fan_out), nn.ELU()]
        layers[-1] = out_activation()
        return nn.Sequential(*layers)

    def make_model(latent, order):
        encoder = mlp((FEATURES, *HIDDEN, latent), nn.Identity)
        decoder = mlp((latent, *reversed(HIDDEN), FEATURES), nn.Sigmoid)
        return encoder, decoder, order

    def expansion(decoder, z_c, dz, order):
        batch, slots, latent = dz.shape
        v = dz.reshape(-1, latent)
        repeated = z_c.unsqueeze(1).repeat(1, slots, 1).reshape(-1, latent)
        jvp = lambda f, p: torch.autograd.functional.jvp(f, p, v=v, create_graph=True)
        if order == 1:
            return jvp(decoder, repeated)[1].reshape(batch, slots, -1), 0.0
        first, second = jvp(lambda p: jvp(decoder, p)[1], repeated)
        return first.reshape(batch, slots, -1), 0.5 * second.reshape(batch, slots, -1)

    def step(model, optimizer, x_c, x_nn):
        encoder, decoder, order = model
        optimizer.zero_grad()
        batch, slots = x_nn.shape[:2]
        z_c = encoder(x_c)
        z_nn = encoder(x_nn.reshape(-1, FEATURES)).reshape(batch, slots, -1)
        first, half_second = expansion(decoder, z_c, z_nn - z_c.unsqueeze(1), order)
        recon = decoder(z_c).unsqueeze(1) + first + half_second
        errors = torch.norm(x_nn - recon, dim=2) ** 2
        weights = torch.where(torch.norm(x_c.unsqueeze(1) - x_nn, dim=2) > 1e-12, LAM, 1.0)
        loss = (weights * errors).mean()
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return make_model, step


def batch(slots, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((BATCH, FEATURES), dtype=np.float32)
    noise = 0.05 * rng.standard_normal((BATCH, slots - 1, FEATURES)).astype(np.float32)
    return x, np.concatenate([x[:, None], np.clip(x[:, None] + noise, 0, 1)], axis=1)


def keras_stepper(latent, order, x, neighbors):
    import keras
    import tensorflow as tf

    from keras_nrae import NeighborhoodReconstructionModel, kernels
    from keras_nrae.architectures import mlp_autoencoder

    keras.utils.set_random_seed(0)
    encoder, decoder = mlp_autoencoder((FEATURES,), latent, HIDDEN, output_activation="sigmoid")
    model = NeighborhoodReconstructionModel(encoder, decoder, order=order, kernel=kernels.Binary(LAM))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    iterator = iter(tf.data.Dataset.from_tensors({"x": x, "neighbors": neighbors}).repeat())
    model.make_train_function()
    return lambda: float(model.train_function(iterator)["loss"])


def torch_worker(latent, order, slots, threads):
    """Serve official steps: one line "step" in, its seconds out, until stdin closes."""
    import torch

    torch.set_num_threads(threads)
    make_model, step = official_step(torch)
    torch.manual_seed(0)
    model = make_model(latent, order)
    params = list(model[0].parameters()) + list(model[1].parameters())
    optimizer = torch.optim.Adam(params, lr=1e-3)
    x, neighbors = batch(slots)
    x_c, x_nn = torch.from_numpy(x), torch.from_numpy(neighbors)
    for _ in sys.stdin:
        print(timed(lambda: step(model, optimizer, x_c, x_nn)), flush=True)


def torch_stepper(latent, order, slots, threads):
    """A callable that asks a PyTorch worker process for one step and returns its seconds."""
    worker = subprocess.Popen(
        [sys.executable, __file__, "--torch-worker", str(latent), str(order), str(slots), str(threads)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )

    def step():
        worker.stdin.write("step\n")
        worker.stdin.flush()
        answer = worker.stdout.readline()
        if not answer:
            raise SystemExit(f"the PyTorch worker died (exit code {worker.wait()})")
        return float(answer)

    return step


def timed(step):
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per row")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--slots", type=int, nargs="+", default=[1, 4], help="M besides the centre")
    parser.add_argument("--latent", type=int, default=16)
    parser.add_argument("--torch-worker", type=int, nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_worker:
        return torch_worker(*args.torch_worker)
    try:
        import torch  # noqa: F401  (only to fail early)
    except ImportError:
        raise SystemExit('PyTorch is missing: pip install -e ".[bench]"')
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    threads = os.cpu_count()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    print(f"d = {args.latent}, B = {BATCH}, {threads} CPU threads each, medians of {args.steps} interleaved steps")
    print(f"{'M':>3} {'order':>6} {'official (ms)':>14} {'keras-nrae (ms)':>16} {'official / ours':>16}")
    for m in args.slots:
        x, neighbors = batch(m + 1)
        for order, name in ((1, "NRAE-L"), (2, "NRAE-Q")):
            official = torch_stepper(args.latent, order, m + 1, threads)
            ours = keras_stepper(args.latent, order, x, neighbors)
            times = {"official": [], "ours": []}
            for i in range(args.warmup + args.steps):
                seconds = {"official": official(), "ours": timed(ours)}
                if i >= args.warmup:
                    for key, value in seconds.items():
                        times[key].append(value)
            official_ms, ours_ms = (1e3 * statistics.median(times[key]) for key in ("official", "ours"))
            print(f"{m:>3} {name:>6} {official_ms:>14.1f} {ours_ms:>16.1f} {official_ms / ours_ms:>15.2f}x")


if __name__ == "__main__":
    main()
