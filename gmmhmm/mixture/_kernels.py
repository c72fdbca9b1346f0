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
        m = log_prob.dtype.type(-np.inf)  # in the data's precision: float32 runs 8 lanes wide
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
    """Rows of ``prob`` times ``weights[t] / row sum``; ``log_norm[t]`` = log(row sum) + row max.
    Returns ``sum_t weights[t] * log_norm[t]``, accumulated in float64.

    The row sums run in the data's precision (float32: 8 lanes, no
    conversions; a row's largest term is 1, so a sum of K terms loses at
    most about K ulps)."""
    n, k = prob.shape
    zero = prob.dtype.type(0.0)
    ll = 0.0
    for t in range(n):
        total = zero
        for j in range(k):
            total += prob[t, j]
        if total == zero:  # the frame is impossible under every component: a row of zeros
            log_norm[t] = -np.inf
        else:
            f = weights[t] / total
            for j in range(k):
                prob[t, j] *= f
            log_norm[t] = np.log(total) + row_max[t]
        ll += np.float64(weights[t]) * np.float64(log_norm[t])
    return ll


# exp(x) = 2**k * exp(r), k = round(x / log 2), |r| <= log(2) / 2 (Cody-Waite
# reduction with log 2 split in two so that k * LN2_HI is exact), exp(r) by its
# Taylor series (to r**13 in float64, r**7 in float32: truncation below half
# an ulp), 2**k built from the exponent bits. Within 1 ulp of the correctly
# rounded exp on (-745, 0] (float64) and (-87, 0] (float32); numpy's
# float32 exp is within 2.
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93145751953125e-1
_LN2_LO = 1.42860682030941723212e-6
_SHIFTER = 6755399441055744.0  # 1.5 * 2**52: kf + _SHIFTER holds the integer kf in its low mantissa bits
_SHIFTER_BITS = int(np.float64(_SHIFTER).view(np.int64))
_LOG2E_32 = np.float32(_LOG2E)
_LN2_HI_32 = np.float32(0.693359375)  # 9 significant bits
_LN2_LO_32 = np.float32(-2.12194440054690583e-4)
_SHIFTER_32 = np.float32(12582912.0)  # 1.5 * 2**23
_SHIFTER_BITS_32 = int(_SHIFTER_32.view(np.int32))
_EXP_CHUNK = 512


@njit(inline="always")
def _times_pow2(v, scale, bits, shifter_bits, bias, mantissa_bits):
    """``v *= 2**kf`` where ``scale`` (``bits``: its integer view) holds ``kf + shifter``,
    the integer kf in the low mantissa bits: turned into the float 2**kf in place."""
    for i in range(len(v)):
        bits[i] = (bits[i] - shifter_bits + bias) << mantissa_bits
    for i in range(len(v)):
        v[i] = v[i] * scale[i]


@njit(cache=True, nogil=True, fastmath={"nsz", "contract"})
def _exp_flush64(values, cutoff):
    flat = values.reshape(-1)
    scale = np.empty(_EXP_CHUNK)
    bits = scale.view(np.int64)
    for start in range(0, flat.size, _EXP_CHUNK):
        v = flat[start:start + _EXP_CHUNK]  # a view: plain indices let LLVM vectorise
        m = len(v)
        for i in range(m):
            x = v[i]
            low = x <= cutoff
            x = 0.0 if low else x
            kf = np.floor(x * _LOG2E + 0.5)
            r = (x - kf * _LN2_HI) - kf * _LN2_LO
            p = 1.0 / 6227020800.0
            p = p * r + 1.0 / 479001600.0
            p = p * r + 1.0 / 39916800.0
            p = p * r + 1.0 / 3628800.0
            p = p * r + 1.0 / 362880.0
            p = p * r + 1.0 / 40320.0
            p = p * r + 1.0 / 5040.0
            p = p * r + 1.0 / 720.0
            p = p * r + 1.0 / 120.0
            p = p * r + 1.0 / 24.0
            p = p * r + 1.0 / 6.0
            p = p * r + 0.5
            p = p * r + 1.0
            p = p * r + 1.0
            v[i] = 0.0 if low else p
            scale[i] = kf + _SHIFTER
        _times_pow2(v, scale, bits, _SHIFTER_BITS, 1023, 52)
    return values


@njit(cache=True, nogil=True, fastmath={"nsz", "contract"})
def _exp_flush32(values, cutoff):
    flat = values.reshape(-1)
    scale = np.empty(_EXP_CHUNK, dtype=np.float32)
    bits = scale.view(np.int32)
    low_at = np.float32(cutoff)
    zero = np.float32(0.0)
    for start in range(0, flat.size, _EXP_CHUNK):
        v = flat[start:start + _EXP_CHUNK]
        m = len(v)
        for i in range(m):
            x = v[i]
            low = x <= low_at
            x = zero if low else x
            kf = np.floor(x * _LOG2E_32 + np.float32(0.5))
            r = (x - kf * _LN2_HI_32) - kf * _LN2_LO_32
            p = np.float32(1.0 / 5040.0)
            p = p * r + np.float32(1.0 / 720.0)
            p = p * r + np.float32(1.0 / 120.0)
            p = p * r + np.float32(1.0 / 24.0)
            p = p * r + np.float32(1.0 / 6.0)
            p = p * r + np.float32(0.5)
            p = p * r + np.float32(1.0)
            p = p * r + np.float32(1.0)
            v[i] = zero if low else p
            scale[i] = kf + _SHIFTER_32
        _times_pow2(v, scale, bits, _SHIFTER_BITS_32, 127, 23)
    return values


def _exp_flush(values: np.ndarray, cutoff: float) -> np.ndarray:
    """``values`` (C-contiguous float64 or float32, any shape, x <= 0 or NaN) := exp(values),
    0 at or below ``cutoff``, NaN kept; computed in the array's precision.

    numpy's float64 exp runs one element at a time on CPUs without AVX-512
    (about 5-8 ns each) and its float32 exp, though SIMD, about half as fast
    as this loop; the loops here vectorise (about 1.5 ns per float64, 0.6 ns
    per float32 element).
    """
    return (_exp_flush32 if values.dtype == np.float32 else _exp_flush64)(values, cutoff)


def normalize_log_resp(log_prob, weights, log_norm, cutoff):
    """Turn weighted log-probabilities into responsibilities in place.

    ``log_prob`` (N, K) becomes ``weights[t] * exp(log_prob - logsumexp)``
    row by row; ``log_norm[t]`` receives the row's logsumexp. Subtracting the
    row maximum first keeps exp() in range for any frame. Posteriors below
    ~1e-290 (float64) / ~1e-25 (float32) are flushed to 0: subnormal numbers
    make the following GEMM over ten times slower and weigh nothing
    (``cutoff`` is the log-ratio below which a posterior is dropped, see
    :func:`flush_cutoff`).

    Three passes over the (cache-resident) block, all compiled and in the
    block's precision: row maxima and shift, a vectorised exp
    (:func:`_exp_flush`), row sums and scaling.
    This normalisation is the largest non-GEMM cost of the E-step.

    Returns ``sum_t weights[t] * log_norm[t]`` (float64): the block's
    weighted log-likelihood.
    """
    row_max = np.empty(log_prob.shape[0], dtype=log_prob.dtype)
    _shift_rows(log_prob, log_prob.dtype.type(cutoff), row_max)
    _exp_flush(log_prob, cutoff)
    return _scale_rows(log_prob, weights, row_max, log_norm)


def flush_cutoff(dtype) -> float:
    """Log-posterior ratio under which :func:`normalize_log_resp` writes 0."""
    # log(smallest normal) plus a margin for the later scaling by frame weights
    return float(np.log(np.finfo(dtype).tiny)) + 30.0
