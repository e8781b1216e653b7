"""scikit-learn is optional (the `sklearn` extra): fail early, and say how to install it."""

import importlib

INSTALL_HINT = "pip install keras-nrae[sklearn]"


def require_sklearn(owner: str) -> None:
    """Raise ImportError naming `owner` and the extra unless scikit-learn imports."""
    try:
        importlib.import_module("sklearn")
    except ImportError as e:
        raise ImportError(
            f"{owner} needs scikit-learn, which is not installed. Install it with "
            f"`{INSTALL_HINT}` (or `pip install scikit-learn`)."
        ) from e
