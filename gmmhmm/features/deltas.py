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
    x = check_array(features, name="features")
    padded = np.concatenate([np.repeat(x[:1], window, axis=0), x, np.repeat(x[-1:], window, axis=0)])
    t = x.shape[0]
    out = np.zeros_like(x)
    for n in range(1, window + 1):  # W is 2 or 3: a loop over lags, not frames
        out += n * (padded[window + n : window + n + t] - padded[window - n : window - n + t])
    return out / (2.0 * sum(n * n for n in range(1, window + 1)))


def add_deltas(features: np.ndarray, order: int = 2, window: int = 2) -> np.ndarray:
    """Stack statics, deltas, delta-deltas, ... : shape (n_frames, D * (order + 1))."""
    order = check_positive_int(order, "order", minimum=0)
    blocks = [check_array(features, name="features")]
    for _ in range(order):
        blocks.append(deltas(blocks[-1], window))
    return np.hstack(blocks)
