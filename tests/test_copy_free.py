"""Graph on features + neighborhood_dataset + fit never copy x: measured anonymous memory."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_memmap_and_in_memory_data_are_never_copied(tmp_path):
    path = tmp_path / "images.npy"
    x = np.lib.format.open_memmap(path, "w+", np.uint8, (25_000, 128, 128))  # 390 MiB
    for start in range(0, len(x), 5_000):
        x[start : start + 5_000] = np.random.default_rng(start).integers(
            0, 256, (5_000, 128, 128), dtype=np.uint8
        )
    x.flush()
    del x
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "_copy_free.py"), str(path)],
        env=env, capture_output=True, text=True, check=True, timeout=300,
    )
    growth = json.loads(result.stdout.strip().splitlines()[-1])
    # One uint8 copy of x would add 390 MiB, a float32 copy 1.5 GiB.
    assert growth["memmap"] < growth["data_mib"] / 4, growth
    assert growth["in_memory"] < growth["data_mib"] / 4, growth
