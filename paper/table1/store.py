"""`CellStore`: the harness's finished cells in a JSON-lines file, so that a killed run resumes where it stopped."""

from pathlib import Path
from typing import Optional

from keras_nrae.records import append_record, read_records

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
            for entry in read_records(path, ("config", "key", "value"), "benchmark cell"):
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
            append_record(self.path, {"config": self.config, "key": key, "value": value})
