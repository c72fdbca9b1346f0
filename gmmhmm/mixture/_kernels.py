"""Compiled inner loops of the E-step (numba, cached on disk)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def packed_outer(X, out):
    """out[t, p] = X[t, i] * X[t, j] over the upper triangle (i <= j), row-major."""
    n, d = X.shape
    for t in range(n):
        p = 0
        for i in range(d):
            xi = X[t, i]
            for j in range(i, d):
                out[t, p] = xi * X[t, j]
                p += 1
    return out


@njit(cache=True, nogil=True)
def fill_design(X, center, out, full):
    """Design rows ``[quadratic terms, x - c, 1]`` of a block in one pass.

    Quadratic terms are ``(x - c)**2`` (diag) or the row-major upper triangle
    of ``(x - c)(x - c)^T`` (``full``); the trailing 1 carries the per-component
    constant through the same GEMM and counts the posteriors in the statistics.
    """
    n, d = X.shape
    q = d * (d + 1) // 2 if full else d
    for t in range(n):
        for i in range(d):
            out[t, q + i] = X[t, i] - center[i]
        if full:
            p = 0
            for i in range(d):
                xi = out[t, q + i]
                for j in range(i, d):
                    out[t, p] = xi * out[t, q + j]
                    p += 1
        else:
            for i in range(d):
                out[t, i] = out[t, q + i] * out[t, q + i]
        out[t, q + d] = 1.0
    return out


# Reassociation lets LLVM vectorise the row max and sum; no 'nnan'/'ninf',
# since -inf (impossible components) and NaN (to be reported) do occur.
_ROW_MATH = {"reassoc", "nsz", "arcp", "contract"}


@njit(cache=True, nogil=True, fastmath=_ROW_MATH)
def _shift_rows(log_prob, cutoff, row_max):
    """Subtract each row's maximum (0 for an all -inf row) and write -inf at or
    below ``cutoff``; NaN stays NaN so that the caller's finiteness check sees it.
    Two loops over the (cache-resident) block: fused, they run half as fast."""
    n, k = log_prob.shape
    for t in range(n):
        m = -np.inf
        for j in range(k):
            x = log_prob[t, j]
            m = x if x > m else m
        row_max[t] = m if m > -np.inf else 0.0
    for t in range(n):
        m = row_max[t]
        for j in range(k):
            v = log_prob[t, j] - m
            log_prob[t, j] = -np.inf if v <= cutoff else v


@njit(cache=True, nogil=True, fastmath=_ROW_MATH)
def _scale_rows(prob, weights, row_max, log_norm):
    """Rows of ``prob`` times ``weights[t] / row sum``; ``log_norm[t]`` = log(row sum) + row max."""
    n, k = prob.shape
    for t in range(n):
        total = 0.0
        for j in range(k):
            total += prob[t, j]
        if total == 0.0:  # the frame is impossible under every component: a row of zeros
            log_norm[t] = -np.inf
            continue
        f = weights[t] / total
        for j in range(k):
            prob[t, j] *= f
        log_norm[t] = np.log(total) + row_max[t]


def normalize_log_resp(log_prob, weights, log_norm, cutoff):
    """Turn weighted log-probabilities into responsibilities in place.

    ``log_prob`` (N, K) becomes ``weights[t] * exp(log_prob - logsumexp)``
    row by row; ``log_norm[t]`` receives the row's logsumexp. Subtracting the
    row maximum first keeps exp() in range for any frame. Posteriors below
    ~1e-290 (float64) / ~1e-25 (float32) are flushed to 0: subnormal numbers
    make the following GEMM over ten times slower and weigh nothing
    (``cutoff`` is the log-ratio below which a posterior is dropped, see
    :func:`flush_cutoff`).

    Three passes: compiled row loops before and after numpy's exp, which is
    SIMD-vectorised and several times faster than a compiled scalar exp.
    This normalisation is the largest non-GEMM cost of the E-step.
    """
    row_max = np.empty(log_prob.shape[0], dtype=log_prob.dtype)
    _shift_rows(log_prob, cutoff, row_max)
    np.exp(log_prob, out=log_prob)
    _scale_rows(log_prob, weights, row_max, log_norm)
    return log_norm


def flush_cutoff(dtype) -> float:
    """Log-posterior ratio under which :func:`normalize_log_resp` writes 0."""
    # log(smallest normal) plus a margin for the later scaling by frame weights
    return float(np.log(np.finfo(dtype).tiny)) + 30.0
