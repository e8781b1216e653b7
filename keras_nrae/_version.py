"""The one place the version is defined: `keras_nrae.__version__`, `keras-nrae --version` and the wheel's metadata (pyproject.toml reads it)."""

__version__ = "0.2.0"
