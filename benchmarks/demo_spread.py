"""How far `keras-nrae demo`'s numbers move with the CPU's numerics, same seed.

Float32 results of the same graph differ in the last bits between CPUs
(oneDNN kernels, vector width, thread count), and 1,000s of training steps
grow those bits into a visible spread. This runs the demo (seed 0, default
epochs) once per setting in a fresh process and prints each model's
distance_to_true_curve and the spread (max − min) across settings.

    python benchmarks/demo_spread.py            # 4 settings, ~4 × the demo's time
"""

import json
import os
import subprocess
import sys
import tempfile

SETTINGS = {
    "default": {},
    "1 thread": {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1"},
    "oneDNN off": {"TF_ENABLE_ONEDNN_OPTS": "0"},
    "oneDNN off, 1 thread": {
        "TF_ENABLE_ONEDNN_OPTS": "0", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    },
}


def run_demo(env: dict) -> dict:
    """{model: distance_to_true_curve} of one `keras-nrae demo --seed 0` in a fresh process."""
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [sys.executable, "-m", "keras_nrae_cli", "demo", "--out", out, "--verbose", "0"],
            env={**os.environ, **env}, check=True, capture_output=True,
        )
        with open(os.path.join(out, "metrics.json")) as f:
            metrics = json.load(f)
    return {name: m["distance_to_true_curve"] for name, m in metrics.items()}


def main():
    results = {}
    for name, env in SETTINGS.items():
        results[name] = run_demo(env)
        print(f"{name:<22}" + "  ".join(f"{m} {d:.4f}" for m, d in results[name].items()), flush=True)
    models = next(iter(results.values()))
    print("spread (max - min):   " + "  ".join(
        f"{m} {max(r[m] for r in results.values()) - min(r[m] for r in results.values()):.4f}" for m in models
    ))
    below = all(r["NRAE-L"] < r["AE"] and r["NRAE-Q"] < r["AE"] for r in results.values())
    print(f"NRAE-L and NRAE-Q below AE in every setting: {'yes' if below else 'no'}")


if __name__ == "__main__":
    main()
