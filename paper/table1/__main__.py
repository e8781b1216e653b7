"""python -m paper.table1 DATASET ... [options]: see `paper.table1.harness.main`."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from paper.table1.harness import main  # noqa: E402

main()
