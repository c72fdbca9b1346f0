"""Compiled inner loops of the E-step (numba, cached on disk)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


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


@njit(cache=True, nogil=True, parallel=True)
def fill_design(X, center, out, full):
    """Design rows ``[quadratic terms, x - c, 1]`` of a block in one pass.

    Quadratic terms are ``(x - c)**2`` (diag) or the row-major upper triangle
    of ``(x - c)(x - c)^T`` (``full``); the trailing 1 carries the per-component
    constant through the same GEMM and counts the posteriors in the statistics.
    Rows are filled in parallel: this pass is memory-bound and sits between
    two GEMMs.
    """
    n, d = X.shape
    q = d * (d + 1) // 2 if full else d
    for t in prange(n):
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


def normalize_log_resp(log_prob, weights, log_norm, cutoff):
    """Turn weighted log-probabilities into responsibilities in place.

    ``log_prob`` (N, K) becomes ``weights[t] * exp(log_prob - logsumexp)``
    row by row; ``log_norm[t]`` receives the row's logsumexp. Subtracting the
    row maximum first keeps exp() in range for any frame. Posteriors below
    ~1e-290 (float64) / ~1e-25 (float32) are flushed to 0: subnormal numbers
    make the following GEMM over ten times slower and weigh nothing
    (``cutoff`` is the log-ratio below which a posterior is dropped, see
    :func:`flush_cutoff`).

    Whole-array numpy passes rather than a compiled row loop: numpy's exp is
    SIMD-vectorised, a scalar exp per element is about twice as slow, and
    this normalisation is the largest non-GEMM cost of the E-step.
    """
    row_max = log_prob.max(axis=1)
    impossible = row_max == -np.inf  # the frame is impossible under every component
    if impossible.any():
        row_max[impossible] = 0.0
    np.subtract(log_prob, row_max[:, None], out=log_prob)
    log_prob[log_prob <= cutoff] = -np.inf
    np.exp(log_prob, out=log_prob)
    total = log_prob.sum(axis=1)
    if impossible.any():
        total[impossible] = 1.0  # rows of zeros; their log-norm is -inf below
    np.multiply(log_prob, (weights / total)[:, None], out=log_prob)
    np.add(np.log(total), row_max, out=log_norm)
    if impossible.any():
        log_norm[impossible] = -np.inf
    return log_norm


def flush_cutoff(dtype) -> float:
    """Log-posterior ratio under which :func:`normalize_log_resp` writes 0."""
    # log(smallest normal) plus a margin for the later scaling by frame weights
    return float(np.log(np.finfo(dtype).tiny)) + 30.0
