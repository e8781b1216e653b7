"""A NeighborGraph built across machines: each job computes the neighbours of its share of the rows.

Every job (a worker of a tf.distribute cluster, a task of a Slurm array, a
Kubernetes indexed job, or any process told its `shard` and `num_shards`)
reads the whole data x (N, ...) from a shared file, searches the k nearest
neighbours of its rows `shard_rows(N, shard, num_shards)` among all N points
and writes them to a shard file (`build_shard`). `merge_shards` checks that
the shard files are the num_shards parts of one graph and writes them, one
shard at a time, into one graph file that `NeighborGraph.load(path,
mmap_mode="r")` memory-maps.

The search is `NeighborGraph.build`'s: with method="exact" the merged graph is
the graph one process builds (the same indices; distances to float round-off
from a different blocking of the matrix products); with "scann" every job
indexes all N points with the same seed and searches its rows, so the merged
graph has the recall of a one-process build (ScaNN's training is not
bit-reproducible, so a few rows may differ, as between two builds).

Each job holds the (N, F) points in memory, as `NeighborGraph.build` does (pass
small `features` for data larger than memory); with `features` a job reads
only its own rows of x, to checksum them.
"""

import json
import os
import time
import zipfile
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from keras_nrae import _knn
from keras_nrae._files import FileFormatError, FileKind, atomic_open, atomic_path, memory_map_npz, open_npz
from keras_nrae.arrays import Rows, progress_bar, row_checksums, to_float
from keras_nrae.graph import (
    AUTO_EXACT_MAX_POINTS,
    FORMAT_VERSION,
    METRICS,
    NeighborGraph,
    fingerprint,
)

__all__ = [
    "SHARD_FORMAT_VERSION",
    "SHARD_METHODS",
    "build_shard",
    "merge_shards",
    "shard_from_environment",
    "shard_paths",
    "shard_rows",
]

SHARD_FORMAT_VERSION = 1  # of the .npz files `build_shard` writes
_SHARD_FILE = FileKind(
    "a NeighborGraph shard file",
    "build it again with keras_nrae.graph_shards.build_shard(x, k, path, shard, num_shards)",
)
_SHARD_ARRAYS = ("indices", "distances", "checksums")
# "tuned" measures its recall on a sample of all points, which no single shard has.
SHARD_METHODS = ("auto", "exact", "scann")
_SHARD_SCALARS = ("shard", "num_shards", "start", "stop", "num_points", "method", "metric",
                  "fingerprint", "seed", "format_version")
_AGREE = ("num_shards", "num_points", "k", "method", "metric", "fingerprint")  # seed: ScaNN only
_CHUNK_BYTES = 16 * 2**20
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed, so that every job's merge writes the same bytes


def shard_rows(num_points: int, shard: int, num_shards: int) -> Tuple[int, int]:
    """(start, stop): shard `shard` of `num_shards` holds rows start:stop of N = num_points.

    Contiguous, in order, sizes differing by at most one row:
    start = ⌊shard · N / num_shards⌋.
    """
    _check_shard(shard, num_shards, num_points)
    return shard * num_points // num_shards, (shard + 1) * num_points // num_shards


def shard_paths(pattern: str, num_shards: int) -> List[str]:
    """[pattern.format(shard=i, num_shards=num_shards) for i in range(num_shards)].

    e.g. `shard_paths("graph/shard-{shard}-of-{num_shards}.npz", 4)`, the paths
    `build_shard` writes when given the same pattern.
    """
    return [pattern.format(shard=i, num_shards=num_shards) for i in range(num_shards)]


def shard_from_environment(
    num_shards: Optional[int] = None, environ: Optional[Mapping[str, str]] = None
) -> Tuple[int, int]:
    """(shard, num_shards) of this process, read from what its scheduler sets.

    Looked up in this order:
      `TF_CONFIG` (a tf.distribute cluster): the chief, if any, is shard 0,
        then the workers by index; num_shards = chiefs + workers.
      `SLURM_ARRAY_TASK_ID` (a Slurm array, `sbatch --array=0-3`): shard =
        the task id − `SLURM_ARRAY_TASK_MIN`, num_shards =
        `SLURM_ARRAY_TASK_COUNT` (arrays with a step are refused).
      `JOB_COMPLETION_INDEX` (a Kubernetes indexed Job): shard = the index;
        Kubernetes does not tell a pod the job's `completions`, so pass
        num_shards.
      `SLURM_PROCID` and `SLURM_NTASKS` (the tasks of one `srun`).

    Args:
      num_shards: the number of shards, when known: required for Kubernetes,
        elsewhere checked against what the environment says.
      environ: the environment to read (default `os.environ`).

    Raises ValueError when none of these is set, or they are inconsistent.
    """
    env = os.environ if environ is None else environ
    if env.get("TF_CONFIG"):
        shard, found = _from_tf_config(env["TF_CONFIG"])
    elif "SLURM_ARRAY_TASK_ID" in env:
        if int(env.get("SLURM_ARRAY_TASK_STEP", 1)) != 1:
            raise ValueError(
                f"This Slurm array steps by {env['SLURM_ARRAY_TASK_STEP']}, so its task ids "
                f"are not shard numbers: pass shard and num_shards explicitly."
            )
        shard = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", 0))
        found = int(env["SLURM_ARRAY_TASK_COUNT"]) if "SLURM_ARRAY_TASK_COUNT" in env else None
    elif "JOB_COMPLETION_INDEX" in env:
        shard, found = int(env["JOB_COMPLETION_INDEX"]), None
    elif "SLURM_PROCID" in env and "SLURM_NTASKS" in env:
        shard, found = int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"])
    else:
        raise ValueError(
            "Cannot tell this process's shard: none of TF_CONFIG, SLURM_ARRAY_TASK_ID, "
            "JOB_COMPLETION_INDEX or SLURM_PROCID/SLURM_NTASKS is set. Pass shard and "
            "num_shards explicitly."
        )
    if found is None and num_shards is None:
        raise ValueError(
            f"This process is shard {shard}, but its environment does not say how many "
            f"shards there are (Kubernetes does not tell a pod its Job's completions): "
            f"pass num_shards."
        )
    if found is not None and num_shards is not None and found != num_shards:
        raise ValueError(
            f"num_shards={num_shards}, but the environment describes {found} shards."
        )
    num_shards = found if found is not None else num_shards
    _check_shard(shard, num_shards)
    return shard, num_shards


def _from_tf_config(text: str) -> Tuple[int, int]:
    config = json.loads(text)
    cluster, task = config.get("cluster", {}), config.get("task", {})
    chiefs, workers = len(cluster.get("chief", [])), len(cluster.get("worker", []))
    kind, index = task.get("type"), int(task.get("index", 0))
    if kind not in ("chief", "worker"):
        raise ValueError(
            f"TF_CONFIG's task is a {kind!r}; only the chief and the workers build shards."
        )
    return (index if kind == "chief" else chiefs + index), chiefs + workers


def _check_shard(shard, num_shards, num_points: Optional[int] = None) -> None:
    for name, value in (("shard", shard), ("num_shards", num_shards)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise TypeError(f"{name} must be an integer, got {value!r}.")
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise ValueError(
            f"shard must be in 0..num_shards - 1 with num_shards >= 1, got shard={shard} "
            f"and num_shards={num_shards}."
        )
    if num_points is not None and num_shards > num_points:
        raise ValueError(f"num_shards={num_shards} exceeds the {num_points} points.")


def build_shard(
    x,
    k: int,
    path: str,
    shard: Optional[int] = None,
    num_shards: Optional[int] = None,
    method: str = "auto",
    metric: str = "euclidean",
    features=None,
    seed: int = 0,
    verbose: int = 1,
) -> str:
    """Search the k nearest neighbours of this shard's rows among all of x; write them to path.

    Run it in every job with the same arguments but the shard: the
    num_shards files it writes make one graph (`merge_shards`). Arguments as
    for `NeighborGraph.build`, plus:

    Args:
      x: array (N, ...), the whole data: a memory-mapped .npy
        (`np.load(path, mmap_mode="r")`) or any random-access source of
        `keras_nrae.arrays`, on storage every job reads.
      k: neighbours per point, 1 <= k < N.
      path: the shard file (.npz) to write; "{shard}" and "{num_shards}" in it
        are filled in (see `shard_paths`). Written atomically (its folder
        created if need be).
      shard, num_shards: this job's shard, 0 <= shard < num_shards <= N;
        both None: `shard_from_environment(num_shards)`. The shard holds rows
        `shard_rows(N, shard, num_shards)`.
      method: one of SHARD_METHODS, "exact", "scann" or "auto" (exact up to AUTO_EXACT_MAX_POINTS
        points, judged on all N, so every shard picks the same).
      metric, features, seed, verbose: as for `NeighborGraph.build`.

    Returns the path written. The file holds the shard's indices (rows, k)
    int32, distances (rows, k) float32 and x's row checksums (rows,) uint64,
    with what `merge_shards` checks (N, num_shards, method, metric, x's
    fingerprint, seed).
    """
    rows = Rows(x)
    n = len(rows)
    _knn.check_search(n, k, method, metric, SHARD_METHODS, METRICS)
    if shard is None:
        shard, num_shards = shard_from_environment(num_shards)
    elif num_shards is None:
        raise ValueError(f"shard={shard} needs num_shards as well.")
    start, stop = shard_rows(n, shard, num_shards)
    path = os.fspath(path).format(shard=shard, num_shards=num_shards)
    if features is None:
        points, checksums = _knn.points_of(rows, None, metric, verbose)
        checksums = checksums[start:stop]
    else:
        features = Rows(features, "features")
        if len(features.shape) != 2 or len(features) != n:
            raise ValueError(
                f"features must be (N, F) with N = len(x) = {n}, got "
                f"shape {tuple(features.shape)}."
            )
        checksums = _checksums(rows, start, stop)
        points, _ = _knn.points_of(features, None, metric, verbose)
    if method == "auto":
        method = "exact" if n <= AUTO_EXACT_MAX_POINTS else "scann"
    progbar = progress_bar(
        stop - start, verbose, f"{method} {k}-NN search, shard {shard} of {num_shards}"
    )
    indices, distances = _knn.neighbors_of_rows(
        points, np.arange(start, stop), int(k), method, int(seed), progbar
    )
    if metric == "cosine":
        distances = distances**2 / 2
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_open(path, "wb") as f:
        np.savez(
            f, indices=indices, distances=distances, checksums=checksums,
            shard=np.int64(shard), num_shards=np.int64(num_shards), start=np.int64(start),
            stop=np.int64(stop), num_points=np.int64(n), method=method, metric=metric,
            fingerprint=fingerprint(rows), seed=np.int64(seed),
            format_version=np.int64(SHARD_FORMAT_VERSION),
        )
    return path


def _checksums(rows: Rows, start: int, stop: int) -> np.ndarray:
    """(stop − start,) uint64 checksums of rows start:stop of x, read in chunks; refuses NaN/Inf."""
    step = max(1, _CHUNK_BYTES // (8 * int(np.prod(rows.row_shape))))
    checksums = np.empty(stop - start, np.uint64)
    for first in range(start, stop, step):
        block = slice(first, min(first + step, stop))
        values = to_float(rows.read(block)).reshape(block.stop - block.start, -1)
        finite = np.isfinite(values).all(axis=1)
        if not finite.all():
            bad = block.start + int(np.argmin(finite))
            raise ValueError(f"{rows.name} contains NaN or Inf, first in row {bad}.")
        checksums[block.start - start : block.stop - start] = row_checksums(values)
    return checksums


def _read_shard(path: str) -> Dict:
    """A shard file's scalars, and its arrays memory-mapped; FileFormatError when it is not one."""
    with _SHARD_FILE.reading(path), open_npz(path, _SHARD_FILE, _SHARD_ARRAYS + _SHARD_SCALARS) as f:
        version = f["format_version"].item()
        if version != SHARD_FORMAT_VERSION:
            raise FileFormatError(
                f"{path} is a NeighborGraph shard file of format version {version!r}, but this "
                f"keras-nrae reads version {SHARD_FORMAT_VERSION}: {_SHARD_FILE.fix}."
            )
        shard = {key: f[key].item() for key in _SHARD_SCALARS}
        shard.update(memory_map_npz(path, _SHARD_ARRAYS, "r"))
    rows = shard["stop"] - shard["start"]
    indices, distances, checksums = (shard[key] for key in _SHARD_ARRAYS)
    if (indices.ndim != 2 or indices.shape[0] != rows or distances.shape != indices.shape
            or checksums.shape != (rows,) or indices.dtype != np.int32
            or distances.dtype != np.float32 or checksums.dtype != np.uint64):
        raise _SHARD_FILE.error(
            path, f"rows {shard['start']}:{shard['stop']} but indices {indices.shape} "
                  f"{indices.dtype}, distances {distances.shape} {distances.dtype}, checksums "
                  f"{checksums.shape} {checksums.dtype}"
        )
    shard["k"], shard["path"] = indices.shape[1], path
    return shard


def _wait_for(paths: Sequence[str], wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        missing = [path for path in paths if not os.path.exists(path)]
        if not missing:
            return
        if time.monotonic() >= deadline:
            raise FileNotFoundError(
                f"{len(missing)} of the {len(paths)} shard files do not exist"
                f"{f' after {wait_s:g} s' if wait_s else ''}: {', '.join(missing[:5])}"
                f"{' ...' if len(missing) > 5 else ''}. Build them with build_shard, or wait "
                f"longer (wait_s)."
            )
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


def _check_shards(shards: List[Dict]) -> List[Dict]:
    """The shards of one graph, in row order; ValueError naming the files when they are not."""
    first = shards[0]
    keys = _AGREE + (("seed",) if first["method"] == "scann" else ())
    for other in shards[1:]:
        for key in keys:
            if other[key] != first[key]:
                raise ValueError(
                    f"The shard files are not parts of one graph: {first['path']} (shard "
                    f"{first['shard']}) has {key}={first[key]!r} but {other['path']} (shard "
                    f"{other['shard']}) has {key}={other[key]!r}. Build every shard with the same "
                    f"x, k, method, metric, features, seed and num_shards."
                )
    by_shard: Dict[int, Dict] = {}
    for shard in shards:
        if shard["shard"] in by_shard:
            twin = by_shard[shard["shard"]]
            raise ValueError(
                f"{twin['path']} and {shard['path']} are both shard {shard['shard']} of "
                f"{shard['num_shards']}: their rows {shard['start']}:{shard['stop']} overlap. "
                f"Pass each shard once."
            )
        by_shard[shard["shard"]] = shard
    missing = sorted(set(range(first["num_shards"])) - set(by_shard))
    if missing:
        raise ValueError(
            f"Shard{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing[:10]))}"
            f"{' ...' if len(missing) > 10 else ''} of {first['num_shards']} "
            f"{'are' if len(missing) > 1 else 'is'} missing (got {len(shards)} shard files): "
            f"pass all of them, e.g. shard_paths(pattern, {first['num_shards']})."
        )
    ordered = [by_shard[i] for i in range(first["num_shards"])]
    stop = 0
    for shard in ordered:
        expected = shard_rows(shard["num_points"], shard["shard"], shard["num_shards"])
        if (shard["start"], shard["stop"]) != expected or shard["start"] != stop:
            raise ValueError(
                f"{shard['path']} (shard {shard['shard']} of {shard['num_shards']}) holds rows "
                f"{shard['start']}:{shard['stop']}, not {expected[0]}:{expected[1]}: "
                f"{'they overlap the previous shard' if shard['start'] < stop else 'rows are missing'}."
            )
        stop = shard["stop"]
    return ordered


def merge_shards(
    paths: Sequence[str], out: str, x=None, wait_s: float = 0.0, verbose: int = 1
) -> NeighborGraph:
    """Merge the num_shards shard files of one graph into the graph file out; return it memory-mapped.

    Checks that the files are the parts of one graph: the same N, k, method,
    metric, x fingerprint, num_shards (and seed, for ScaNN), each shard once,
    rows covering 0:N without overlap. Reads one shard at a time (memory-mapped)
    and writes out, atomically, in `NeighborGraph.save`'s format: uncompressed,
    the same bytes whichever job merges, so every job may merge into its own
    copy, or all into one path.

    Args:
      paths: the shard files, in any order (see `shard_paths`).
      out: the graph file (.npz) to write.
      x: optionally the data, checked against the graph (`check_data`).
      wait_s: wait up to this many seconds for shard files still being built
        (other jobs'; a shard file exists only once complete).
      verbose: 0 hides the progress bar shown from 10,000 points on.

    Returns `NeighborGraph.load(out, x=x, mmap_mode="r")`: indices (N, k)
    int32, distances (N, k) float32, checksums (N,) uint64.

    Raises FileNotFoundError for shard files missing after wait_s,
    `keras_nrae.FileFormatError` for files that are not shard files, and
    ValueError for shards that are not the parts of one graph.
    """
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise TypeError("paths must be a list of shard files; see shard_paths(pattern, num_shards).")
    paths = [os.fspath(path) for path in paths]
    if not paths:
        raise ValueError("No shard files given.")
    _wait_for(paths, wait_s)
    shards = _check_shards([_read_shard(path) for path in paths])
    n, k = shards[0]["num_points"], shards[0]["k"]
    progbar = progress_bar(n, verbose, f"merging {len(shards)} graph shards")
    for shard in shards:
        indices = shard["indices"]
        if indices.min() >= 0 and indices.max() < n:  # reductions: no shard-sized temporary
            continue
        bad = np.flatnonzero(((indices < 0) | (indices >= n)).any(axis=1))
        if bad.size:
            raise ValueError(
                f"{shard['path']}: row {shard['start'] + int(bad[0])} lists a neighbour outside "
                f"0..{n - 1}; {_SHARD_FILE.fix}."
            )
    with atomic_path(out) as temporary, zipfile.ZipFile(temporary, "w", zipfile.ZIP_STORED) as archive:
        for key in _SHARD_ARRAYS:
            parts = [shard[key] for shard in shards]
            _write_npy(archive, key, (n, k) if key != "checksums" else (n,), parts[0].dtype, parts,
                       progbar if key == "indices" else None)
        for key, value in (("method", shards[0]["method"]), ("metric", shards[0]["metric"]),
                           ("fingerprint", shards[0]["fingerprint"]),
                           ("format_version", np.int64(FORMAT_VERSION))):
            with archive.open(_zip_info(key), "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)
    return NeighborGraph.load(out, x=x, mmap_mode="r")


def _zip_info(key: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_STORED
    return info


def _write_npy(archive: zipfile.ZipFile, key: str, shape, dtype, parts, progbar=None) -> None:
    """Write the .npy `key` of the given shape into archive from parts, ~16 MiB at a time."""
    with archive.open(_zip_info(key), "w", force_zip64=True) as f:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                  "shape": tuple(int(s) for s in shape)}
        np.lib.format.write_array_header_1_0(f, header)
        for part in parts:
            step = max(1, _CHUNK_BYTES // max(1, part[:1].nbytes))
            for start in range(0, len(part), step):
                f.write(np.ascontiguousarray(part[start : start + step]).tobytes())
                if progbar is not None:
                    progbar.add(len(part[start : start + step]))
