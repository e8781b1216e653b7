"""The NRAE paper's experiments, on top of keras-nrae's public API.

This folder lives in the source repository only (the wheel ships `keras_nrae`
alone); run it from a checkout, e.g. `python -m paper.table1 mnist --seeds 0 1 2`.
It imports only public names of `keras_nrae` (each module's `__all__`), and
nothing in `keras_nrae` imports it.

- `paper.table1`: the Table 1 harness (protocol, selection on validation,
  resumable store, report).
"""
