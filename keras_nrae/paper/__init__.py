"""The paper's experiments: toy data, the 1-D latent experiments and the Table 1 protocol.

Used by the `keras-nrae` command, the examples and the benchmarks; never imported by
`import keras_nrae`.
"""

__all__ = ["experiments", "image_benchmark"]
