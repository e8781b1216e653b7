"""`CellStore`: the harness's finished cells in a JSON-lines file, so that a killed run resumes where it stopped."""

import json
import os
import warnings
from pathlib import Path
from typing import List, Optional

from keras_nrae import FileFormatError

from paper.table1.protocol import BenchmarkConfig

__all__ = ["CellStore"]


class CellStore:
    """Finished cells in a JSON-lines file, so that a killed run resumes where it stopped.

    Each line is {"config": repr(BenchmarkConfig), "key": ..., "value": ...}:
    an NRAE selection ("selection/<dataset>/<size>"), a baseline's
    ("selection/<dataset>/<size>/<model>") or a row
    ("row/<dataset>/<size>/<model>/<seed>"). Lines written under another
    config are ignored; path None keeps nothing. Each cell is appended as
    one line and flushed to disk. A last line without its newline (a run
    killed while writing it) is cut from the file with a warning, and its
    cell computed again; any other line that is not a cell raises
    `keras_nrae.FileFormatError` naming the file and the line. The
    selections' single trials are kept apart, in `trials_path`
    (`keras_nrae.tuning.grid_search`'s file), so that a selection killed
    half-way resumes from its last finished trial.
    """

    def __init__(self, path: Optional[Path], config: BenchmarkConfig):
        self.path, self.config, self.values = path, repr(config), {}
        if path is not None and path.is_file():
            for entry in _read_cells(path):
                if entry["config"] == self.config:
                    self.values[entry["key"]] = entry["value"]

    @property
    def trials_path(self) -> Optional[str]:
        """trials.jsonl beside the cells' file, or None when nothing is kept."""
        return None if self.path is None else str(self.path.with_name("trials.jsonl"))

    def get(self, key: str):
        return self.values.get(key)

    def put(self, key: str, value) -> None:
        self.values[key] = value
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(json.dumps({"config": self.config, "key": key, "value": value}) + "\n")
                f.flush()
                os.fsync(f.fileno())


def _read_cells(path: Path) -> List[dict]:
    """The cells in the lines of path, a `CellStore` file; a torn last line is cut from it."""
    data = path.read_bytes()
    *lines, torn = data.split(b"\n")
    if torn:
        warnings.warn(
            f"{path}, line {len(lines) + 1}, is incomplete (a run was killed while writing it): "
            f"cut from the file, so its cell is computed again.", stacklevel=3,
        )
        os.truncate(path, len(data) - len(torn))
    cells = []
    for number, line in enumerate(lines, 1):
        try:
            entry = json.loads(line)
            cells.append({field: entry[field] for field in ("config", "key", "value")})
        except (KeyError, TypeError, ValueError) as error:
            raise FileFormatError(
                f"{path}, line {number}, is not a benchmark cell ({type(error).__name__}: {error}): "
                f"delete that line (its cell is computed again) or the file (every cell is)."
            ) from error
    return cells
