"""Float comparisons that hold on any CPU.

Two TensorFlow graphs of the same float maths differ in the last bits, and by
how much depends on the CPU (oneDNN kernels, thread count).  The rounding error
of an entry scales with the magnitudes summed into it, not with the entry, so an
entry near zero is judged at its array's scale:

    |actual - desired| <= rtol * (|desired| + max|desired|).
"""

import numpy as np

FLOAT32_RTOL = 1e-5  # ~100 float32 ulps: different graphs, any CPU


def assert_close(actual, desired, rtol: float = FLOAT32_RTOL) -> None:
    """`assert_allclose` with `atol = rtol * max|desired|`."""
    desired = np.asarray(desired)
    scale = float(np.max(np.abs(desired))) if desired.size else 0.0
    np.testing.assert_allclose(np.asarray(actual), desired, rtol=rtol, atol=rtol * scale)
