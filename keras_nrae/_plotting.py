"""Package-private matplotlib helpers shared by `keras_nrae.callbacks` and `keras_nrae.demo`.

matplotlib is optional (`pip install keras-nrae[examples]`): it is imported
only when a figure is drawn, with the object-oriented API (no pyplot).
"""

import io

_INSTALL_HINT = (
    "needs matplotlib, which is not installed. Install it with "
    "`pip install keras-nrae[examples]` (or `pip install matplotlib`)."
)


def require_matplotlib(owner: str) -> None:
    """Raise an ImportError naming `owner` (a dotted name) and the install command, without matplotlib."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise ImportError(f"{owner} {_INSTALL_HINT}") from e


def png_bytes(figure) -> bytes:
    """A matplotlib `Figure` as PNG bytes, drawn with the Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return buffer.getvalue()
