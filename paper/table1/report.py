"""The harness's results as text: the Markdown table, the CSV and the report around the table."""

import collections
import contextlib
import csv
import os
import uuid
from pathlib import Path
from typing import Dict, Iterator, List, Sequence

import numpy as np

from paper.table1 import protocol
from paper.table1.protocol import BASELINE_SETTINGS, MODEL_NAMES, NRAE_NAMES, NRAE_ORDERS, BenchmarkConfig
from paper.table1.selection import NraeSettings

__all__ = ["column", "markdown_table", "report_text", "write_csv", "write_report"]

Chosen = Dict[str, Dict[int, NraeSettings]]  # column -> order -> settings


def column(row: dict) -> str:
    """The table column of a row: "<dataset file stem>-<size>", e.g. "mnist-S"."""
    return f"{Path(row['dataset']).stem}-{row['size']}"


def markdown_table(rows: List[dict], chosen: Chosen) -> str:
    """Models × dataset-size, per-pixel test MSE ×10⁻³ as mean ± std over seeds.

    "NRAE (best)" is the order with the lower validation MSE; "vs AE" is its
    mean's relative change from AE's. Diverged runs (NaN) are left out of the
    mean and counted in the cell; a model with no rows in a column shows "—".
    """
    columns = list(dict.fromkeys(column(r) for r in rows))
    mse = collections.defaultdict(list)  # (model, column) -> values; [] where the model has no rows
    for r in rows:
        mse[r["model"], column(r)].append(float(r["test_mse"]) * 1e3)
    best = {
        c: NRAE_NAMES[min(settings.values(), key=lambda s: s.validation_mse).order]
        for c, settings in chosen.items() if settings
    }

    def fmt(values):
        if not values:
            return "—"
        finite = [v for v in values if np.isfinite(v)]
        if not finite:
            return "diverged"
        std = np.std(finite, ddof=1) if len(finite) > 1 else 0.0
        failed = len(values) - len(finite)
        return f"{np.mean(finite):.3f} ± {std:.3f}" + (f" ({failed} diverged)" if failed else "")

    mean = lambda name, c: np.nanmean(mse[name, c]) if np.isfinite(mse[name, c]).any() else np.nan
    lines = [
        "| model | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    present = {r["model"] for r in rows}
    for name in (name for name in MODEL_NAMES if name in present):
        lines.append(f"| {name} | " + " | ".join(fmt(mse[name, c]) for c in columns) + " |")
    lines.append(
        "| NRAE (best, on validation) | "
        + " | ".join(f"{best[c]}: {fmt(mse[best[c], c])}" if c in best
                     else "none converged" if any(mse[name, c] for name in NRAE_ORDERS) else "—"
                     for c in columns)
        + " |"
    )
    change = lambda c: 100 * (mean(best[c], c) / mean("AE", c) - 1) if c in best else np.nan
    lines.append("| NRAE (best) vs AE | " + " | ".join(
        f"{change(c):+.1f} %" if np.isfinite(change(c)) else "—" for c in columns) + " |")
    return "\n".join(lines)


def report_text(rows: List[dict], chosen: Chosen, seeds: Sequence[int], config: BenchmarkConfig) -> str:
    """The table with the settings chosen on validation and the config (image_benchmark.md)."""
    settings = "\n".join(
        f"- {c}: " + (", ".join(
            f"{NRAE_NAMES[s.order]} k={s.k} λ={s.lam:g} (validation MSE {s.validation_mse:.5f})"
            for s in by_order.values()
        ) or "none")
        for c, by_order in chosen.items()
    )
    baselines = "\n".join(sorted({
        f"- {column(r)}: {r['model']} {r['settings']}" for r in rows
        if r["model"] in protocol.BASELINE_NAMES and protocol.baseline_grid(r["model"], config)
    }))
    return (
        f"Per-pixel test MSE ×10⁻³, mean ± std over seeds {list(seeds)}.\n\n{markdown_table(rows, chosen)}\n\n"
        f"NRAE settings chosen on validation:\n{settings}\n\n"
        f"Baseline settings chosen on validation:\n{baselines or '- none'}\n\nConfig: {config}\n"
        f"Baseline settings (defaults): {BASELINE_SETTINGS}\n"
    )


@contextlib.contextmanager
def _replacing(path: Path, **kwargs) -> Iterator:
    """A file to write path's new text to: path changes only once the block succeeds (temporary sibling, fsync, rename)."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temporary, "w", **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise


def write_csv(rows: List[dict], path: Path) -> None:
    """rows as CSV at path (one row per dataset, size, model and seed), replaced whole."""
    with _replacing(Path(path), newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_report(out_dir: Path, rows: List[dict], report: str) -> None:
    """out_dir/image_benchmark.csv (the rows) and out_dir/image_benchmark.md (the report), each replaced whole."""
    out = Path(out_dir)
    write_csv(rows, out / "image_benchmark.csv")
    with _replacing(out / "image_benchmark.md", encoding="utf-8") as f:
        f.write(report)
