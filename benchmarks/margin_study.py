"""Where NRAE's margin over the AE comes from: the Table 1 protocol at fewer training images and other latent sizes.

Each cell is one run of the Table 1 harness (`paper.table1`,
models AE, NRAE-L and NRAE-Q, k and λ and the order chosen on the validation
split) with `--small-size N` and, optionally, `--latent-dim D`, written to
`OUT/<dataset>-n<N>-d<D>/` (resumable: a finished cell is read back, not
trained again). Then, per cell, the margin

    margin = mean test MSE of the validation-chosen NRAE order / mean test MSE of AE − 1

is printed as a Markdown table, and drawn against N (one line per dataset and
latent size) into `OUT/margin.png`. Table 1's own cells at full size S can be
added to the table and figure with `--reference FOLDER ...` (harness `--out`
folders).

    PYTHONPATH=. python benchmarks/margin_study.py --reference benchmarks/results/mnist-S-100epochs \\
        benchmarks/results/cifar10-S-colour     # the cells below, into benchmarks/results/margin
    PYTHONPATH=. python benchmarks/margin_study.py --collect-only ...   # table and figure from finished cells only
"""

import argparse
import collections
import csv
import json
import os
import re
from pathlib import Path
from typing import Dict, List, Optional

if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

from keras_nrae.datasets import IMAGE_FORMATS
from paper.table1 import harness, protocol

# (dataset, training images N, latent size D or None for the protocol's, seeds)
CELLS = (
    *(("mnist", n, None, (0, 1, 2)) for n in (500, 1000, 2000)),
    *(("cifar10", n, None, (0, 1)) for n in (500, 1000)),
    *(("mnist", 1000, d, (0, 1)) for d in (2, 32)),
    *(("cifar10", 1000, d, (0, 1)) for d in (32, 512)),
)

def cell_folder(out: Path, dataset: str, n: int, latent: Optional[int]) -> Path:
    """OUT/<dataset>-n<N>-d<D>, D the protocol's latent size (grey or colour) when latent is None."""
    protocol_latent = protocol.BenchmarkConfig().for_images(IMAGE_FORMATS[dataset].shape).latent_dim
    return out / f"{dataset}-n{n}-d{latent or protocol_latent}"


def run_cell(out: Path, dataset: str, n: int, latent: Optional[int], seeds) -> None:
    argv = [dataset, "--small-size", str(n), "--seeds", *map(str, seeds),
            "--models", "AE", "NRAE-L", "NRAE-Q", "--out", str(cell_folder(out, dataset, n, latent))]
    harness.main(argv + (["--latent-dim", str(latent)] if latent else []))


def _read(folder: Path):
    """(rows, chosen NRAE name, config repr) of a harness --out folder, or None when unfinished.

    From cells.jsonl where the folder has one; else from image_benchmark.csv and
    the chosen order and config that image_benchmark.md states (older folders).
    """
    cells, md = folder / "cells.jsonl", folder / "image_benchmark.md"
    if cells.is_file():
        values, config = {}, None
        for line in cells.read_text().splitlines():
            entry = json.loads(line)
            values[entry["key"]], config = entry["value"], entry["config"]
        selection = [v for k, v in values.items() if re.fullmatch(r"selection/[^/]+/S", k)]
        if not selection:
            return None
        chosen = protocol.NRAE_NAMES[min(selection[0], key=lambda s: s["validation_mse"])["order"]]
        return [v for k, v in values.items() if k.startswith("row/")], chosen, config
    if md.is_file() and (folder / "image_benchmark.csv").is_file():
        text = md.read_text()
        chosen = re.search(r"\| NRAE \(best, on validation\) \| (NRAE-[LQ])", text).group(1)
        with open(folder / "image_benchmark.csv") as f:
            rows = [{**r, "test_mse": float(r["test_mse"])} for r in csv.DictReader(f)]
        return rows, chosen, re.search(r"Config: (.*)", text).group(1)
    return None


def margin(folder: Path) -> Optional[Dict]:
    """{dataset, n, latent, chosen, ae, nrae, margin, seeds} of a harness --out folder, or None."""
    read = _read(folder)
    if read is None:
        return None
    rows, chosen, config = read
    mse = collections.defaultdict(list)
    for row in rows:
        if np.isfinite(row["test_mse"]):
            mse[row["model"]].append(row["test_mse"])
    if not mse["AE"] or not mse[chosen]:
        return None
    ae, nrae = float(np.mean(mse["AE"])), float(np.mean(mse[chosen]))
    n = int(re.search(r"small_size=(\d+)", config).group(1))
    latent = int(re.search(r"latent_dim=(\d+)", config).group(1))
    colour = re.search(r"colour=\(\('latent_dim', (\d+)\)", config)
    dataset = rows[0]["dataset"]
    if colour and IMAGE_FORMATS[dataset].shape[-1] == 3:  # the harness gives colour images the colour latent size
        latent = int(colour.group(1))
    return {"dataset": dataset, "n": n, "latent": latent, "chosen": chosen, "ae": ae, "nrae": nrae,
            "margin": nrae / ae - 1, "seeds": len(mse["AE"])}


def table(results: List[Dict]) -> str:
    lines = ["| dataset | N | latent | seeds | AE ×10⁻³ | NRAE (chosen) ×10⁻³ | chosen | NRAE vs AE |",
             "|---|---|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: (r["dataset"], r["latent"], r["n"])):
        lines.append(f"| {r['dataset']} | {r['n']} | {r['latent']} | {r['seeds']} | {1e3 * r['ae']:.3f} | "
                     f"{1e3 * r['nrae']:.3f} | {r['chosen']} | {100 * r['margin']:+.1f} % |")
    return "\n".join(lines)


def figure(results: List[Dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = collections.defaultdict(list)
    for r in results:
        lines[r["dataset"], r["latent"]].append((r["n"], 100 * r["margin"]))
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for (dataset, latent), points in sorted(lines.items()):
        n, m = zip(*sorted(points))
        ax.plot(n, m, "o-", label=f"{dataset}, latent {latent}")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("training images N")
    ax.set_ylabel("NRAE (chosen) vs AE, test MSE %")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/margin"))
    parser.add_argument("--collect-only", action="store_true", help="only tabulate finished cells")
    parser.add_argument("--reference", type=Path, nargs="*", default=[],
                        help="other harness --out folders to include (e.g. Table 1's)")
    args = parser.parse_args()
    if not args.collect_only:
        for dataset, n, latent, seeds in CELLS:
            run_cell(args.out, dataset, n, latent, seeds)
    folders = [cell_folder(args.out, d, n, latent) for d, n, latent, _ in CELLS] + args.reference
    results = [r for r in map(margin, folders) if r is not None]
    print(table(results))
    figure(results, args.out / "margin.png")
    print(f"Wrote {args.out / 'margin.png'}")


if __name__ == "__main__":
    main()
