"""Argument checks shared by the library: each raises ValueError naming the argument."""

import numbers


def integer_at_least(value, name: str, minimum: int = 1) -> int:
    """value as an int, if it is an integer (Python or NumPy, not a bool) >= minimum."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def non_negative(value, name: str) -> float:
    """value as a float, if it is >= 0 (NaN is refused)."""
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}.")
    return float(value)


def positive(value, name: str) -> float:
    """value as a float, if it is > 0 (NaN is refused)."""
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}.")
    return float(value)


def check_order(order: int) -> None:
    """Raise ValueError unless order is 1 (NRAE-L) or 2 (NRAE-Q)."""
    if order not in (1, 2):
        raise ValueError(f"order must be 1 (NRAE-L) or 2 (NRAE-Q), got {order!r}.")
