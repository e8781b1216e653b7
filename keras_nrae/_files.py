"""Reading files with clear errors, and writing them atomically.

`FileKind.reading(path)` turns a failure to read a file (NumPy, zip, pickle,
gzip, TensorFlow) into a `FileFormatError` that names the file, what is wrong
and what to do. `atomic_path(path)` and `atomic_open(path)` write to a
temporary sibling and rename it onto path only once it is complete and on
disk, so a write that fails half-way leaves what path held before.
"""

import contextlib
import dataclasses
import os
import pickle
import shutil
import struct
import uuid
import zipfile
import zlib
from typing import IO, Iterator, Optional, Sequence, Tuple, Type

import numpy as np

# What readers raise on an empty, truncated, corrupt or foreign file (EOFError,
# zipfile.BadZipFile, "cannot reshape", "Read less bytes than requested", ...).
READ_ERRORS: Tuple[Type[BaseException], ...] = (
    EOFError, LookupError, OSError, ValueError, pickle.UnpicklingError, struct.error,
    zipfile.BadZipFile, zlib.error,
)
_NPY_MAGIC = b"\x93NUMPY"


class FileFormatError(ValueError):
    """A file keras_nrae reads is empty, truncated, corrupt or of the wrong kind.

    The message names the file, what is wrong with it and what to do.
    """


@dataclasses.dataclass(frozen=True)
class FileKind:
    """A kind of file keras_nrae reads: its name with article ("a NeighborGraph file") and the fix."""

    name: str
    fix: str
    folder: bool = False

    def error(self, path, what: str) -> FileFormatError:
        """The error for path, readable but not of this kind: `what` says what it is instead."""
        return FileFormatError(f"{os.fspath(path)} is not {self.name} ({what}): {self.fix}.")

    def unreadable(self, path, detail: str) -> FileFormatError:
        """The error for path, which cannot be read as this kind (`detail` says why)."""
        return FileFormatError(
            f"{os.fspath(path)} is truncated or corrupt, or not {self.name} ({detail}): {self.fix}."
        )

    @contextlib.contextmanager
    def reading(self, path, errors: Tuple[Type[BaseException], ...] = READ_ERRORS) -> Iterator[None]:
        """Read path in the block; `errors` raised there become `unreadable` (chained).

        Raises FileNotFoundError when path does not exist and FileFormatError
        when it is empty or a file where a folder belongs (or the reverse).
        A FileFormatError or PermissionError from the block passes unchanged.
        """
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"No such {'folder' if self.folder else 'file'}: {path}; {self.fix}.")
        if os.path.isdir(path) != self.folder:
            raise self.error(path, "it is a folder" if not self.folder else "it is a file")
        if not (os.listdir(path) if self.folder else os.path.getsize(path)):
            raise FileFormatError(
                f"{path} is empty ({'no files' if self.folder else '0 bytes'}), not {self.name}: {self.fix}."
            )
        try:
            yield
        except (FileFormatError, PermissionError):
            raise
        except errors as error:
            detail = (str(error).strip().splitlines() or [""])[0][:300]
            raise self.unreadable(path, f"{type(error).__name__}: {detail}") from error


def file_format(path) -> Optional[str]:
    """What path holds by its bytes: "npy", "zip" (.npz, .keras) or None (neither, or truncated)."""
    with open(path, "rb") as f:
        start = f.read(len(_NPY_MAGIC))
    return "npy" if start == _NPY_MAGIC else "zip" if zipfile.is_zipfile(path) else None


def open_npz(path, kind: FileKind, keys: Sequence[str]) -> np.lib.npyio.NpzFile:
    """The .npz archive at path, open, holding arrays `keys`; call inside `kind.reading(path)`.

    Raises FileFormatError when path is not a readable zip archive or lacks one of keys.
    """
    found = file_format(path)
    if found == "npy":
        raise kind.error(path, "it is a .npy array, not an .npz archive")
    if found != "zip":
        raise kind.unreadable(path, "not a readable zip archive")
    archive = np.load(path, allow_pickle=False)
    missing = [key for key in keys if key not in archive.files]
    if missing:
        archive.close()
        raise kind.error(path, f"it has arrays {sorted(archive.files)} but no {', '.join(map(repr, missing))}")
    return archive


def _fsync(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _files_in(folder: str) -> Iterator[str]:
    for root, _, files in os.walk(folder):
        yield from (os.path.join(root, file) for file in files)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


@contextlib.contextmanager
def atomic_path(path) -> Iterator[str]:
    """A temporary sibling of path (same extension) to write a file or folder at in the block.

    When the block ends without error, the file (or every file of the folder)
    is flushed to disk and renamed onto path; a folder at path is replaced by
    a folder (moved aside, then deleted). On an error the temporary is
    deleted and path keeps what it held.
    """
    path = os.path.abspath(os.fspath(path))
    directory, name = os.path.split(path)
    temporary = os.path.join(directory, f".{name}.{uuid.uuid4().hex[:8]}.tmp{os.path.splitext(name)[1]}")
    try:
        yield temporary
        folder = os.path.isdir(temporary)
        for file in _files_in(temporary) if folder else [temporary]:
            _fsync(file)
        if folder and os.path.isdir(path):
            aside = f"{temporary}.old"
            os.replace(path, aside)
            try:
                os.replace(temporary, path)
            except BaseException:
                os.replace(aside, path)
                raise
            shutil.rmtree(aside)
        else:
            os.replace(temporary, path)
    except BaseException:
        _remove(temporary)
        raise
    if os.name == "posix":
        _fsync(directory)


@contextlib.contextmanager
def atomic_open(path, mode: str = "w", **kwargs) -> Iterator[IO]:
    """`open(path, mode, **kwargs)` through `atomic_path`: path changes only once the block succeeds."""
    with atomic_path(path) as temporary, open(temporary, mode, **kwargs) as f:
        yield f


def memory_map_npz(path: str, keys, mode: str) -> dict:
    """The arrays named keys in an uncompressed .npz file, as np.memmap views of it."""
    arrays = {}
    with zipfile.ZipFile(path) as archive, open(path, "rb") as raw:
        for info in archive.infolist():
            key = info.filename[: -len(".npy")]
            if key not in keys:
                continue
            if info.compress_type != zipfile.ZIP_STORED:
                raise FileFormatError(
                    f"{path}: {info.filename} is compressed, so it cannot be memory-mapped: "
                    f"load it without mmap_mode, or save the graph again with graph.save(path)."
                )
            raw.seek(info.header_offset + 26)  # zip local header: name and extra lengths
            name_length, extra_length = struct.unpack("<HH", raw.read(4))
            raw.seek(info.header_offset + 30 + name_length + extra_length)
            version = np.lib.format.read_magic(raw)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}[version]
            shape, fortran_order, dtype = read_header(raw)
            arrays[key] = np.memmap(path, dtype, mode, raw.tell(), shape,
                                    "F" if fortran_order else "C")
    return arrays
