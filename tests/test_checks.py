"""keras_nrae._checks: the shared argument checks accept what they promise and name what they refuse."""

import math

import numpy as np
import pytest

from keras_nrae._checks import check_order, integer_at_least, non_negative, positive


def test_integer_at_least():
    assert integer_at_least(3, "n") == 3 and integer_at_least(np.int64(2), "n", 2) == 2
    for bad in (0, -1, 2.0, 2.5, True, math.nan, "3"):
        with pytest.raises(ValueError, match=r"n must be an integer >= 1"):
            integer_at_least(bad, "n")


def test_non_negative_and_positive():
    assert non_negative(0, "lam") == 0.0 and positive(0.5, "scale") == 0.5
    for bad in (-1e-9, math.nan):
        with pytest.raises(ValueError, match="lam must be >= 0"):
            non_negative(bad, "lam")
    for bad in (0.0, math.nan):
        with pytest.raises(ValueError, match="scale must be > 0"):
            positive(bad, "scale")


def test_check_order():
    check_order(1)
    check_order(2)
    with pytest.raises(ValueError, match="order must be 1"):
        check_order(3)
