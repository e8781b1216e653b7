"""One job of a sharded graph build: python _graph_shard_worker.py X_NPY OUT_DIR [NUM_SHARDS].

Finds its shard in its environment (TF_CONFIG, SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX;
NUM_SHARDS for Kubernetes), memory-maps X_NPY (the data every job shares) and writes
OUT_DIR/exact-{shard}-of-{num_shards}.npz (k = 7) and OUT_DIR/scann-... (k = 10).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from keras_nrae.graph_shards import build_shard  # noqa: E402


def main():
    x_path, out = sys.argv[1], sys.argv[2]
    num_shards = int(sys.argv[3]) if len(sys.argv) > 3 else None
    x = np.load(x_path, mmap_mode="r")
    for method, k in (("exact", 7), ("scann", 10)):
        written = build_shard(x, k, os.path.join(out, method + "-{shard}-of-{num_shards}.npz"),
                              num_shards=num_shards, method=method, verbose=0)
        print("wrote", written)


if __name__ == "__main__":
    main()
