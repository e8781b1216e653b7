"""model.fit under MultiWorkerMirroredStrategy: 2 worker processes on localhost vs one process.

Each worker is a fresh process (tests/_multi_worker_train.py; the strategy must
exist before any TensorFlow op), joined through TF_CONFIG on free ports. One pair
trains every model kind on the same global batches as one process without a
strategy, then trains NRAE-L under BackupAndRestore and dies after epoch 2; a
second pair resumes it.
"""

import json
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "_multi_worker_train.py")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 900  # a loaded 2-core machine; each worker needs ~20 s to import TensorFlow
KINDS = [
    "Autoencoder", "NRAE-L", "NRAE-Q", "DenoisingAutoencoder", "ContractiveAutoencoder",
    "VariationalAutoencoder", "WassersteinAutoencoder", "StructurePreservingAutoencoder",
]
DETERMINISTIC = ["Autoencoder", "NRAE-L", "NRAE-Q", "ContractiveAutoencoder"]
DIED = 17  # _multi_worker_train's exit status after --die-after-epoch


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _env(tf_config=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def _start(out, args=(), tf_config=None):
    return subprocess.Popen(
        [sys.executable, SCRIPT, str(out), *args], env=_env(tf_config),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _start_workers(tmp_path, name, args=(), workers=2):
    """`workers` processes of a cluster of 2 on free localhost ports, writing tmp_path/name<i>.json."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    return [
        _start(tmp_path / f"{name}{i}.json", args,
               {"cluster": cluster, "task": {"type": "worker", "index": i}})
        for i in range(workers)
    ]


def _wait(procs, timeout=TIMEOUT_S):
    """[(return code, output)] of each process; kills all of them and fails on timeout."""
    try:
        return [(p.wait(timeout=timeout), p.stdout.read()) for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail(f"a worker did not finish within {timeout} s; all were killed")


def _succeeded(procs):
    for code, output in _wait(procs):
        assert code == 0, output[-3000:]


def _load(path):
    with open(path) as f:
        return json.load(f)


def _max_diff(a, b):
    return max(np.abs(np.subtract(u, v)).max() for u, v in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{"workers": [worker 0, worker 1], "single": one process, "resumed": [...]} results."""
    tmp = tmp_path_factory.mktemp("multi_worker")
    backup = str(tmp / "backup")
    pair = _start_workers(tmp, "worker", ["--resume-dir", backup, "--die-after-epoch", "2"])
    single = _start(tmp / "single.json")
    # The first pair writes worker<i>.json, then trains NRAE-L under BackupAndRestore and dies.
    outcomes = _wait(pair + [single])
    for code, output in outcomes[:2]:
        assert code == DIED, output[-3000:]
    assert outcomes[2][0] == 0, outcomes[2][1][-3000:]
    _succeeded(_start_workers(tmp, "resumed", ["--resume-dir", backup, "--only-resumable"]))
    return {
        "workers": [_load(tmp / f"worker{i}.json") for i in range(2)],
        "single": _load(tmp / "single.json"),
        "resumed": [_load(tmp / f"resumed{i}.json") for i in range(2)],
    }


def test_each_worker_holds_half_of_each_global_batch(runs):
    for worker in runs["workers"]:
        assert worker["replicas"] == 2
        assert worker["replica_batch_sizes"] == [4]


@pytest.mark.parametrize("kind", KINDS)
def test_workers_end_with_identical_weights(runs, kind):
    first, second = (worker[kind] for worker in runs["workers"])
    assert _max_diff(first["weights"], second["weights"]) == 0.0
    assert first["losses"] == second["losses"]
    assert np.isfinite(first["losses"]).all()


@pytest.mark.parametrize("kind", DETERMINISTIC)
def test_workers_match_one_process_on_the_same_global_batches(runs, kind):
    worker, single = runs["workers"][0][kind], runs["single"][kind]
    assert _max_diff(worker["weights"], single["weights"]) < 1e-6
    np.testing.assert_allclose(worker["losses"], single["losses"], rtol=1e-6)
    assert single["losses"][-1] < single["losses"][0]


def test_backup_and_restore_resumes_both_workers_at_the_next_epoch(runs):
    uninterrupted = runs["workers"][0]["NRAE-L"]
    for worker in runs["resumed"]:
        resumed = worker["resumable"]
        # One epoch left after the restart: fit logs only the epochs it ran.
        assert len(resumed["losses"]) == 1
        assert _max_diff(resumed["weights"], uninterrupted["weights"]) < 1e-6
        np.testing.assert_allclose(resumed["losses"], uninterrupted["losses"][-1:], rtol=1e-6)


def test_a_worker_without_its_peer_exits_naming_it(tmp_path):
    [lone] = _start_workers(tmp_path, "lone", ["--peer-timeout", "5"], workers=1)
    [(code, output)] = _wait([lone], timeout=300)
    assert code == -signal.SIGKILL, output[-3000:]
    assert "cannot reach /job:worker/task:1 (127.0.0.1:" in output
