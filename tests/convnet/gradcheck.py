"""Central finite differences for gradient checks (float64)."""

import numpy as np


def numerical_gradient(loss, array, h=1e-6, indices=None):
    """d loss / d array by central differences, at `indices` (all elements by default).

    `loss` is called with no arguments and must read `array` (perturbed in place).
    Returns the gradient at the chosen flat indices.
    """
    flat = array.reshape(-1)
    chosen = range(flat.size) if indices is None else indices
    grads = []
    for i in chosen:
        old = flat[i]
        flat[i] = old + h
        plus = loss()
        flat[i] = old - h
        minus = loss()
        flat[i] = old
        grads.append((plus - minus) / (2 * h))
    return np.array(grads)


def check_gradient(loss, array, analytic, rtol=1e-5, atol=1e-7, samples=None, rng=None):
    """Compare `analytic` (same shape as `array`) with finite differences."""
    indices = None
    if samples is not None and array.size > samples:
        rng = rng or np.random.default_rng(0)
        indices = rng.choice(array.size, samples, replace=False)
    numeric = numerical_gradient(loss, array, indices=indices)
    got = analytic.reshape(-1) if indices is None else analytic.reshape(-1)[indices]
    np.testing.assert_allclose(got, numeric, rtol=rtol, atol=atol)
