"""The `keras-nrae` console script: TensorFlow's start-up log off, then `keras_nrae.cli.main`.

TensorFlow's C++ log (CUDA probing, oneDNN and CPU-feature notices) is printed
while `tensorflow` is imported, which `import keras_nrae` does; so the level
must be set before the package is imported, here, outside it. The user's own
TF_CPP_MIN_LOG_LEVEL wins, and `keras-nrae --verbose COMMAND ...` keeps the log.
"""

import os
import sys
from typing import Optional, Sequence


def wants_tensorflow_log(argv: Sequence[str]) -> bool:
    """True when `--verbose` comes before the command (the command's own --verbose sets progress bars)."""
    for arg in argv:
        if not arg.startswith("-"):
            return False
        if arg == "--verbose":
            return True
    return False


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not wants_tensorflow_log(argv):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from keras_nrae import cli

    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
