"""MirroredStrategy over 2 logical CPUs: one step equals one step on one device.

All distributed checks run in one subprocess (tests/_distributed_step.py),
since logical devices must be configured before TensorFlow initialises.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "_distributed_step.py")
CASES = [f"order{o}-center_first{c}" for o in (1, 2) for c in (True, False)] + [
    "neighborhood_dataset-order1",
]


@pytest.fixture(scope="module")
def results():
    proc = subprocess.run(
        [sys.executable, SCRIPT],
        capture_output=True, text=True, timeout=600,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_global_batch_is_split_across_two_replicas(results):
    assert results["replica_batch_sizes"] == [4, 4]


@pytest.mark.parametrize("case", CASES)
def test_one_mirrored_step_matches_one_device(results, case):
    r = results[case]
    assert r["replicas"] == 2
    np.testing.assert_allclose(r["distributed_loss"], r["loss"], rtol=1e-5, atol=1e-5)
    moved = 0.0
    for distributed, single, initial in zip(
        r["distributed_weights"], r["weights"], r["initial_weights"], strict=True
    ):
        np.testing.assert_allclose(distributed, single, atol=1e-5)
        moved = max(moved, np.abs(np.subtract(single, initial)).max())
    assert moved > 1e-3, "the step did not change the weights"


def test_a_nan_in_one_replica_stops_fit_naming_the_step(results):
    message = results["non_finite_error"]
    assert message is not None and "the loss" in message and "epoch 1, step 2." in message
