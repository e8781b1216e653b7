"""Op-level profile of the AE, NRAE-L and NRAE-Q training steps of `step_time.py`.

Each row's `train_function` runs under the TensorFlow profiler
(`tf.profiler.experimental`); the host trace (XPlane) is read back and every
TensorFlow op's time is summed by op type and divided by the number of
profiled steps. The table prints ms per step for each op type and for these
groups:

  matmul      MatMul, _FusedMatMul, BatchMatMul*, Conv*
  copy        ConcatV2, Split*, Slice, StridedSlice*, Tile, Pack, Unpack,
              Transpose, Pad, Reshape-free data movement
  elementwise everything else that maps tensors to same-size tensors
  other       reductions, the optimizer, control ops

Op times overlap when TensorFlow runs independent ops in parallel, so a
column can sum to more than the wall time; compare rows, not absolutes.

    python benchmarks/profile_step.py                 # --arch mlp, d = 16, M ∈ {1, 4}
    python benchmarks/profile_step.py --arch conv --top 25
"""

import argparse
import collections
import glob
import os
import statistics
import tempfile
import time
from typing import Optional

if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2

import step_time  # the rows, models and batches profiled here; a script's own folder is on sys.path

ROWS = ("AE", "NRAE-L", "NRAE-Q")
GROUPS = {
    "matmul": ("MatMul", "_FusedMatMul", "BatchMatMulV2", "BatchMatMulV3", "Conv2D",
               "Conv2DBackpropInput", "Conv2DBackpropFilter", "_FusedConv2D"),
    "copy": ("ConcatV2", "Split", "SplitV", "Slice", "StridedSlice", "StridedSliceGrad",
             "Tile", "Pack", "Unpack", "Transpose", "Pad", "BroadcastTo"),
    "other": ("Sum", "Mean", "Prod", "Max", "Min", "ResourceApplyAdam", "AssignAddVariableOp",
              "AssignVariableOp", "ReadVariableOp", "Identity", "NoOp", "Const", "Shape",
              "Assert", "All", "Reshape", "_Arg", "_Retval", "Cast"),
}


def _group(op_type: str) -> str:
    for group, types in GROUPS.items():
        if op_type in types:
            return group
    return "elementwise"


def op_times(logdir: str) -> collections.Counter:
    """{op type: total seconds} of the TensorFlow ops in a profiler log directory."""
    (path,) = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    totals = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                op_type = name.rsplit(":", 1)[-1].strip()
                if ":" in name and "::" not in name and not op_type.startswith("__"):  # not function calls
                    totals[op_type] += event.duration_ps * 1e-12
    return totals


def matmul_flops(model, plain: bool, batch: int, slots: int) -> Optional[int]:
    """Multiply-adds of the step's matmuls, forward and backward, for an MLP.

    plain (the AE row): every layer on all B·(M+1) points. NRAE (slot 0 the centre): the
    encoder as AE; the decoder on the B centres plus, per Dense layer, one
    tangent stream of B·M rows (order 2: two from the second layer on).
    Backward costs twice the forward, less the input gradient of the first
    encoder layer. None when a layer of the model is neither Dense nor a reshape.
    """
    shapes_only = (keras.layers.InputLayer, keras.layers.Flatten, keras.layers.Reshape)
    dense = lambda part: [l for l in part.layers if not isinstance(l, shapes_only)]
    encoder, decoder = dense(model.encoder), dense(model.decoder)
    layers = encoder + decoder
    if not all(isinstance(layer, keras.layers.Dense) for layer in layers):
        return None
    points, decoder_rows = batch * slots, {}
    for i, layer in enumerate(decoder):
        streams = 1 if i == 0 else model.order
        decoder_rows[id(layer)] = points if plain else batch + streams * batch * (slots - 1)
    total = 0
    for layer in layers:
        units = layer.kernel.shape[0] * layer.kernel.shape[1]
        rows = decoder_rows.get(id(layer), points)
        total += (2 if layer is encoder[0] else 3) * rows * units
    return total


def profile_row(step, steps: int) -> (collections.Counter, float):
    """({op type: ms per step}, median wall ms per step) of `steps` profiled steps."""
    with tempfile.TemporaryDirectory() as logdir:
        walls = []
        tf.profiler.experimental.start(logdir)
        for _ in range(steps):
            start = time.perf_counter()
            step()
            walls.append(time.perf_counter() - start)
        tf.profiler.experimental.stop()
        totals = op_times(logdir)
    return collections.Counter({k: 1e3 * v / steps for k, v in totals.items()}), 1e3 * statistics.median(walls)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=sorted(step_time.ARCHS), default="mlp")
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--neighbors", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--steps", type=int, default=10, help="profiled steps per row")
    parser.add_argument("--top", type=int, default=15, help="op types listed per cell")
    args = parser.parse_args()
    arch = step_time.ARCHS[args.arch]
    print(
        f"TF {tf.__version__}, --arch {args.arch} {arch.shape}, B={arch.batch}, "
        f"d={args.latent_dim}, {args.steps} profiled steps per row after 3 warm-up, "
        f"ms per step summed by op type"
    )
    for neighbors in args.neighbors:
        plain, batch = step_time.step_batches(arch, neighbors + 1)
        models = step_time.models_to_time(arch, args.latent_dim, False)
        profiles, walls = {}, {}
        for name in ROWS:
            step = step_time.stepper(models[name], plain if name == "AE" else batch)
            for _ in range(3):
                step()
            profiles[name], walls[name] = profile_row(step, args.steps)
        print(f"\nd={args.latent_dim} M={neighbors}")
        header = f"  {'':<22}" + "".join(f"{name:>9}" for name in ROWS)
        print(header)
        print(f"  {'wall (median)':<22}" + "".join(f"{walls[n]:9.2f}" for n in ROWS))
        grouped = {n: collections.Counter() for n in ROWS}
        for name in ROWS:
            for op_type, ms in profiles[name].items():
                grouped[name][_group(op_type)] += ms
        for group in ("matmul", "elementwise", "copy", "other"):
            print(f"  {'[' + group + ']':<22}" + "".join(f"{grouped[n][group]:9.2f}" for n in ROWS))
        print(f"  {'[all ops]':<22}" + "".join(f"{sum(profiles[n].values()):9.2f}" for n in ROWS))
        flops = {n: matmul_flops(models[n], n == "AE", arch.batch, neighbors + 1) for n in ROWS}
        if flops["AE"]:
            print(f"  {'matmul FLOPs x AE':<22}" + "".join(f"{flops[n] / flops['AE']:9.2f}" for n in ROWS))
        print(f"  {'matmul time x AE':<22}" + "".join(f"{grouped[n]['matmul'] / grouped['AE']['matmul']:9.2f}" for n in ROWS))
        print(f"  {'wall x AE':<22}" + "".join(f"{walls[n] / walls['AE']:9.2f}" for n in ROWS))
        ranked = (profiles["NRAE-Q"] + profiles["NRAE-L"]).most_common(args.top)
        for op_type, _ in ranked:
            print(f"  {op_type:<22}" + "".join(f"{profiles[n][op_type]:9.2f}" for n in ROWS))


if __name__ == "__main__":
    main()
