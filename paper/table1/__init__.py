"""Table 1 of the NRAE paper: per-pixel test reconstruction MSE of AE, DAE, CAE, VAE, WAE, GRAE, SPAE, NRAE-L and NRAE-Q.

    python -m paper.table1 mnist fashion_mnist --seeds 0 1 2 --out benchmarks/results/mnist-S

One idea a module:

- `protocol`: what is compared and how (`BenchmarkConfig`, the baselines'
  settings, the training and validation images, and `recipe`, the one place
  a model's protocol settings become a `keras_nrae.recipe.Recipe`).
- `selection`: training a model under the protocol (`keras_nrae.recipe.train`)
  and choosing NRAE's (k, λ) and GRAE's / SPAE's λ on validation
  (`keras_nrae.tuning.grid_search`).
- `store`: `CellStore`, finished cells in a JSON-lines file, so a killed run resumes.
- `report`: the Markdown table, the CSV and the report text.
- `harness`: every (dataset, size, model, seed) cell, and the command line.
"""
