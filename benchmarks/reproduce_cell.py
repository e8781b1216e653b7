"""Recompute committed Table 1 cells through today's harness and check they match bit for bit.

For each `--key row/<dataset>/<size>/<model>/<seed>` of a harness results
folder's cells.jsonl, the cell's `BenchmarkConfig` is read back from its
repr (the store's key), every other cell of that config (the selections
above all) is copied into a fresh store, and `paper.table1.harness.
benchmark_dataset` runs that one row: the same training images, the
settings chosen on validation taken from the committed store, the same
seed, and training through `keras_nrae.recipe.train`. Prints committed and
recomputed test MSE (repr: every digit) and exits 1 unless each is the
same float (NaN matching NaN) with the same status. A key
`selection/<dataset>/<size>[/<model>]` reruns that selection on validation
(`paper.table1.selection.select_nrae` / `select_baseline`, through
`keras_nrae.tuning.grid_search`) and compares the chosen settings and their
validation MSEs.

    PYTHONPATH=. python benchmarks/reproduce_cell.py --results benchmarks/results/kmnist-S \\
        --key row/kmnist/S/NRAE-L/0 row/kmnist/S/AE/0

(one 100-epoch run of 5,000 images per key: 2-4 minutes each on 2 shared CPU cores).
Bit-for-bit equality also needs the same numerics as the committed run's
machine (TensorFlow version, CPU kernels, threads).
"""

import argparse
import ast
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras_nrae  # noqa: E402
from keras_nrae.datasets import load_images  # noqa: E402
from paper.table1.harness import benchmark_dataset  # noqa: E402
from paper.table1.protocol import MODEL_NAMES, BenchmarkConfig, training_subset  # noqa: E402
from paper.table1.selection import select_baseline, select_nrae  # noqa: E402
from paper.table1.store import CellStore  # noqa: E402


def config_from_repr(text: str) -> BenchmarkConfig:
    """The BenchmarkConfig whose repr is text (literal fields only, nothing evaluated)."""
    call = ast.parse(text, mode="eval").body
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "BenchmarkConfig"
            and not call.args):
        raise ValueError(f"Not a BenchmarkConfig repr: {text[:80]!r}")
    config = BenchmarkConfig(**{kw.arg: ast.literal_eval(kw.value) for kw in call.keywords})
    if repr(config) != text:
        raise ValueError(f"BenchmarkConfig's repr changed: the store's cells were keyed by\n{text}\nnow\n{config!r}")
    return config


def parse_key(key: str):
    """(dataset, size, model, seed) of "row/<dataset>/<size>/<model>/<seed>" (a dataset may be a path)."""
    kind, _, rest = key.partition("/")
    if kind != "row" or rest.count("/") < 3:
        raise ValueError(f"Expected row/<dataset>/<size>/<model>/<seed>, got {key!r}.")
    dataset, size, model, seed = rest.rsplit("/", 3)
    return dataset, size, model, int(seed)


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def reproduce_selection(key: str, committed, config: BenchmarkConfig, log=print) -> bool:
    """Rerun the selection cell `key` ("selection/<dataset>/<size>[/<model>]"); True if it chose the same, bit for bit."""
    rest = key.split("/", 1)[1]
    model = [rest.rsplit("/", 1)[1]] if rest.rsplit("/", 1)[1] in MODEL_NAMES else []
    dataset, size = rest.rsplit("/", 1 + len(model))[:2]
    x_train = training_subset(load_images(dataset, "train"), size, config.small_size)
    config = config.for_images(x_train.shape[1:])
    start = time.perf_counter()
    indented = lambda line: log(f"  | {line}")
    if model:
        recomputed = select_baseline(model[0], x_train, config, indented)
    else:
        recomputed = [vars(s) for s in select_nrae(x_train, config, indented).values()]
    ok = json.loads(json.dumps(recomputed)) == committed
    log(f"{key}\n  committed  {committed}\n  recomputed {recomputed}  ({time.perf_counter() - start:.0f} s)")
    log(f"  {'SAME (bit for bit)' if ok else 'DIFFERENT'}")
    return ok


def reproduce(results: Path, key: str, log=print) -> bool:
    entries = [json.loads(line) for line in (results / "cells.jsonl").read_text().splitlines()]
    matches = [e for e in entries if e["key"] == key]
    if len(matches) != 1:
        raise SystemExit(f"{results / 'cells.jsonl'} holds {len(matches)} cells {key!r}; expected one.")
    committed, text = matches[0]["value"], matches[0]["config"]
    config = config_from_repr(text)
    if key.startswith("selection/"):
        return reproduce_selection(key, committed, config, log)
    dataset, size, model, seed = parse_key(key)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cells.jsonl"
        path.write_text("".join(json.dumps(e) + "\n" for e in entries if e["config"] == text and e["key"] != key))
        start = time.perf_counter()
        rows, _ = benchmark_dataset(dataset, size, [seed], config, lambda line: log(f"  | {line}"),
                                    CellStore(path, config), models=[model])
    (row,) = rows
    ok = same(row["test_mse"], committed["test_mse"]) and row["status"] == committed["status"]
    log(f"{key}  ({results})")
    log(f"  committed  test_mse {committed['test_mse']!r}  {committed['status']}  settings: {committed['settings']}")
    log(f"  recomputed test_mse {row['test_mse']!r}  {row['status']}  settings: {row['settings']}  "
        f"({time.perf_counter() - start:.0f} s)")
    log(f"  {'SAME (bit for bit)' if ok else 'DIFFERENT'}")
    return ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", required=True, type=Path, help="a harness --out folder holding cells.jsonl")
    parser.add_argument("--key", required=True, nargs="+",
                        help="row/<dataset>/<size>/<model>/<seed> or selection/<dataset>/<size>[/<model>] cells")
    args = parser.parse_args(argv)
    print(f"keras_nrae {keras_nrae.__version__} from {Path(keras_nrae.__file__).parent}; "
          f"python {sys.version.split()[0]}", flush=True)
    results = [reproduce(args.results, key, lambda line: print(line, flush=True)) for key in args.key]
    print(f"{sum(results)} of {len(results)} cells reproduced bit for bit")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
