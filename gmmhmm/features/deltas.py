"""HTK regression (delta) coefficients."""

from __future__ import annotations

import numpy as np

from .._validation import check_array, check_positive_int


def deltas(features: np.ndarray, window: int = 2) -> np.ndarray:
    """Regression coefficients of each column over time, same shape as ``features``.

    HTK's formula ``d_t = sum_{n=1..W} n (c_{t+n} - c_{t-n}) / (2 sum_{n=1..W} n^2)``,
    with the first and last frames repeated past the edges.
    """
    window = check_positive_int(window, "window")
    return _deltas(check_array(features, name="features"), window)


def add_deltas(features: np.ndarray, order: int = 2, window: int = 2) -> np.ndarray:
    """Stack statics, deltas, delta-deltas, ... : shape (n_frames, D * (order + 1))."""
    order = check_positive_int(order, "order", minimum=0)
    if order:  # no deltas, no window to check
        window = check_positive_int(window, "window")
    return _add_deltas(check_array(features, name="features"), order, window)


def _deltas(x: np.ndarray, window: int) -> np.ndarray:
    """:func:`deltas` of a checked float array."""
    padded = np.concatenate([np.repeat(x[:1], window, axis=0), x, np.repeat(x[-1:], window, axis=0)])
    t = x.shape[0]
    out = np.zeros_like(x)
    for n in range(1, window + 1):  # W is 2 or 3: a loop over lags, not frames
        out += n * (padded[window + n : window + n + t] - padded[window - n : window - n + t])
    return out / (2.0 * sum(n * n for n in range(1, window + 1)))


def _add_deltas(x: np.ndarray, order: int, window: int) -> np.ndarray:
    """:func:`add_deltas` of a checked float array."""
    blocks = [x]
    for _ in range(order):
        blocks.append(_deltas(blocks[-1], window))
    return np.hstack(blocks)
