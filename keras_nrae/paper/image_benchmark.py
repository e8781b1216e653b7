"""Deprecated: the Table 1 harness moved to `paper.table1` in the source repository, kept here for one release.

    python -m paper.table1 mnist fashion_mnist --seeds 0 1 2   # from a checkout of the repository

The harness is not part of the installed package any more. The divergence
checks it used are library API: this module re-exports `DivergenceMonitor`,
`failure_reason` and `mean_image_mse` from `keras_nrae.divergence` (import
them from there); every other old name raises an AttributeError that says
where it went, and `python -m keras_nrae.paper.image_benchmark` exits with
status 2.
"""

import sys
import warnings

from keras_nrae.divergence import DivergenceMonitor, failure_reason, mean_image_mse

__all__ = ["DivergenceMonitor", "failure_reason", "mean_image_mse"]

_MOVED = "moved to paper.table1 in the source repository (python -m paper.table1 DATASET ... from a checkout)"
_WHERE = (
    "the harness's protocol, selection, store and report are paper.table1.protocol / .selection / .store / "
    ".report; DivergenceMonitor, failure_reason and mean_image_mse are in keras_nrae.divergence, training "
    "is keras_nrae.recipe.train and selection on validation keras_nrae.tuning.grid_search."
)

if __name__ != "__main__":
    warnings.warn(
        "keras_nrae.paper.image_benchmark is deprecated and will be removed in the next release; import "
        f"DivergenceMonitor, failure_reason and mean_image_mse from keras_nrae.divergence. The Table 1 harness {_MOVED}.",
        DeprecationWarning,
        stacklevel=2,
    )


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    raise AttributeError(f"keras_nrae.paper.image_benchmark.{name} {_MOVED}: {_WHERE}")


if __name__ == "__main__":
    print(f"python -m keras_nrae.paper.image_benchmark: the Table 1 harness {_MOVED}: {_WHERE}", file=sys.stderr)
    sys.exit(2)
