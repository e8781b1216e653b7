"""Append-only JSON-lines files of finished work, as `keras_nrae.tuning.grid_search`
keeps its trials (and the Table 1 harness its cells): each record one line,
flushed to disk, so that a killed run resumes where it stopped and loses at
most the record it was writing.

    done = {r["key"]: r["mse"] for r in read_records("runs.jsonl", ("key", "mse"), "run")}
    append_record("runs.jsonl", {"key": key, "mse": mse})  # after each finished run
"""

import json
import os
import warnings
from typing import List, Sequence

from keras_nrae._files import FileFormatError

__all__ = ["append_record", "read_records"]


def append_record(path, record: dict) -> None:
    """Append record as one JSON line to path and flush it to disk."""
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_records(path, fields: Sequence[str], what: str) -> List[dict]:
    """The records of path, each line's `fields`; none when path is missing.

    A last line without its newline (a run killed while writing it) is cut
    from the file with a warning, so its work is done again; any other line
    that is not a JSON object with those fields raises `FileFormatError`
    naming the file, the line and `what` it should be.
    """
    if not os.path.isfile(path):
        return []
    with open(path, "rb") as f:
        data = f.read()
    *lines, torn = data.split(b"\n")
    if torn:
        warnings.warn(
            f"{path}, line {len(lines) + 1}, is incomplete (a run was killed while writing it): "
            f"cut from the file, so that {what} is done again.", stacklevel=3,
        )
        os.truncate(path, len(data) - len(torn))
    records = []
    for number, line in enumerate(lines, 1):
        try:
            entry = json.loads(line)
            records.append({field: entry[field] for field in fields})
        except (KeyError, TypeError, ValueError) as error:
            raise FileFormatError(
                f"{path}, line {number}, is not a {what} ({type(error).__name__}: {error}): "
                f"delete that line (its {what} is done again) or the file (all are)."
            ) from error
    return records
