"""Compiled forward-backward and Viterbi kernels.

Single-sequence functions (``forward_log``, ``backward_log``,
``forward_scaling``, ``backward_scaling``, ``viterbi``) are public so that
composite-graph code can reuse them. The ``*_multi`` functions run many
sequences stored back to back in one array, addressed by ``offsets``
(``offsets[i]:offsets[i + 1]`` are the frames of sequence ``i``), in parallel
over sequences.

Two forward-backward implementations:

* **scaling** (fast path, used in training): works on
  ``B = exp(framelogprob - rowmax)`` and renormalises the forward vector at
  every frame, so the S^2 inner loop has no exp/log. Per-sequence
  log-likelihood is ``sum(log c_t) + sum(rowmax_t)``.
* **log**: everything in log space with log-sum-exp; slower, but immune to
  the rare case where every reachable state's scaled likelihood underflows.
  The scaling kernels fall back to it per sequence when that happens.

Every function takes an ``endprob`` (S,) vector weighting the state of the
last frame (``np.ones(S)``: any state may end, hmmlearn's semantics; a 0
forbids ending there, e.g. all but the final state of a left-to-right
model). Log-space functions take logs of all probabilities.

A sequence whose total likelihood is zero gets log-likelihood ``-inf``;
callers turn that into a clear error.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = [
    "forward_log",
    "backward_log",
    "forward_scaling",
    "backward_scaling",
    "viterbi",
    "forward_backward_log",
    "forward_backward_scaling",
    "forward_backward_multi",
    "forward_multi",
    "viterbi_multi",
]


@njit(cache=True)
def _logsumexp(a):
    m = -np.inf
    for v in a:
        if v > m:
            m = v
    if m == -np.inf:
        return -np.inf
    s = 0.0
    for v in a:
        s += np.exp(v - m)
    return m + np.log(s)


# ---------------------------------------------------------------- log space


# Shifted sums below this are recomputed term by term: terms dropped by
# exp underflow (< e^-745 of the shift) are then < e^-78 of the result.
_TINY = 1e-290


@njit(cache=True)
def forward_log(log_startprob, log_transmat, framelogprob, log_endprob):
    """Log forward lattice. Returns (log-likelihood, fwdlattice (N, S)).

    ``log_endprob`` (S,) weights the state occupied at the last frame
    (zeros everywhere for hmmlearn semantics; ``-inf`` forbids ending there).
    Each step is ``M + log(exp(fwd - M) @ A)`` (S exps and S logs per frame,
    not S^2); a column whose shifted sum underflows is redone with an exact
    log-sum-exp, so the result is exact in log space.
    """
    n, s = framelogprob.shape
    trans_t = np.exp(log_transmat).T.copy()
    fwd = np.empty((n, s))
    buf = np.empty(s)
    p = np.empty(s)
    for j in range(s):
        fwd[0, j] = log_startprob[j] + framelogprob[0, j]
    for t in range(1, n):
        m = -np.inf
        for i in range(s):
            if fwd[t - 1, i] > m:
                m = fwd[t - 1, i]
        if m == -np.inf:
            fwd[t:, :] = -np.inf
            break
        for i in range(s):
            p[i] = np.exp(fwd[t - 1, i] - m)
        for j in range(s):
            if framelogprob[t, j] == -np.inf:
                fwd[t, j] = -np.inf
                continue
            acc = 0.0
            for i in range(s):
                acc += trans_t[j, i] * p[i]
            if acc > _TINY:
                fwd[t, j] = m + np.log(acc) + framelogprob[t, j]
            else:
                for i in range(s):
                    buf[i] = fwd[t - 1, i] + log_transmat[i, j]
                fwd[t, j] = _logsumexp(buf) + framelogprob[t, j]
    for j in range(s):
        buf[j] = fwd[n - 1, j] + log_endprob[j]
    return _logsumexp(buf), fwd


@njit(cache=True)
def backward_log(log_startprob, log_transmat, framelogprob, log_endprob):
    """Log backward lattice (N, S); the last row is ``log_endprob``.

    Same shifted mat-vec with exact fallback as :func:`forward_log`.
    """
    n, s = framelogprob.shape
    transmat = np.exp(log_transmat)
    bwd = np.empty((n, s))
    buf = np.empty(s)
    v = np.empty(s)
    q = np.empty(s)
    bwd[n - 1, :] = log_endprob
    for t in range(n - 2, -1, -1):
        m = -np.inf
        for j in range(s):
            v[j] = framelogprob[t + 1, j] + bwd[t + 1, j]
            if v[j] > m:
                m = v[j]
        if m == -np.inf:
            bwd[:t + 1, :] = -np.inf
            break
        for j in range(s):
            q[j] = np.exp(v[j] - m)
        for i in range(s):
            acc = 0.0
            for j in range(s):
                acc += transmat[i, j] * q[j]
            if acc > _TINY:
                bwd[t, i] = m + np.log(acc)
            else:
                for j in range(s):
                    buf[j] = log_transmat[i, j] + v[j]
                bwd[t, i] = _logsumexp(buf)
    return bwd


@njit(cache=True)
def _posteriors_xi_log(log_transmat, framelogprob, fwd, bwd, log_prob, posteriors, xi_sum):
    """Write state posteriors into ``posteriors`` and add expected transitions to ``xi_sum``.

    Per frame, ``xi = exp(F + M - log_prob) * outer(exp(fwd - F), exp(v - M)) * A``
    with ``v = framelogprob[t + 1] + bwd[t + 1]``; frames where that shifted
    form could lose terms (its total is tiny) are summed term by term.
    """
    n, s = framelogprob.shape
    transmat = np.exp(log_transmat)
    row = np.empty(s)
    p = np.empty(s)
    q = np.empty(s)
    v = np.empty(s)
    aq = np.empty(s)
    for t in range(n):
        for j in range(s):
            row[j] = fwd[t, j] + bwd[t, j]
        norm = _logsumexp(row)  # == log_prob up to rounding; renormalise per frame
        for j in range(s):
            posteriors[t, j] = np.exp(row[j] - norm)
    for t in range(n - 1):
        f = -np.inf
        m = -np.inf
        for i in range(s):
            if fwd[t, i] > f:
                f = fwd[t, i]
            v[i] = framelogprob[t + 1, i] + bwd[t + 1, i]
            if v[i] > m:
                m = v[i]
        if f == -np.inf or m == -np.inf:
            continue
        for i in range(s):
            p[i] = np.exp(fwd[t, i] - f)
            q[i] = np.exp(v[i] - m)
        total = 0.0
        for i in range(s):
            acc = 0.0
            for j in range(s):
                acc += transmat[i, j] * q[j]
            aq[i] = acc
            total += p[i] * acc
        if total > _TINY:
            scale = np.exp(f + m - log_prob)
            for i in range(s):
                w = scale * p[i]
                if w == 0.0:
                    continue
                for j in range(s):
                    xi_sum[i, j] += w * transmat[i, j] * q[j]
        else:
            for i in range(s):
                if fwd[t, i] == -np.inf:
                    continue
                for j in range(s):
                    val = fwd[t, i] + log_transmat[i, j] + v[j] - log_prob
                    if val > -np.inf:
                        xi_sum[i, j] += np.exp(val)


@njit(cache=True)
def forward_backward_log(startprob, transmat, framelogprob, endprob):
    """Log-space forward-backward of one sequence.

    Returns (log-likelihood, posteriors (N, S), expected transition counts (S, S)).
    """
    n, s = framelogprob.shape
    log_start = np.log(startprob)
    log_trans = np.log(transmat)
    posteriors = np.zeros((n, s))
    xi_sum = np.zeros((s, s))
    log_end = np.log(endprob)
    log_prob, fwd = forward_log(log_start, log_trans, framelogprob, log_end)
    if log_prob == -np.inf:
        return log_prob, posteriors, xi_sum
    bwd = backward_log(log_start, log_trans, framelogprob, log_end)
    _posteriors_xi_log(log_trans, framelogprob, fwd, bwd, log_prob, posteriors, xi_sum)
    return log_prob, posteriors, xi_sum


# ------------------------------------------------------------------ scaling


@njit(cache=True)
def _scaled_likelihood(framelogprob, frameprob, rowmax):
    """frameprob = exp(framelogprob - rowmax); returns False if a row is all -inf."""
    n, s = framelogprob.shape
    for t in range(n):
        m = -np.inf
        for j in range(s):
            if framelogprob[t, j] > m:
                m = framelogprob[t, j]
        if m == -np.inf:
            return False
        rowmax[t] = m
        for j in range(s):
            frameprob[t, j] = np.exp(framelogprob[t, j] - m)
    return True


@njit(cache=True)
def forward_scaling(startprob, transmat, frameprob, endprob):
    """Scaled forward pass on (scaled) likelihoods ``frameprob`` (N, S).

    Returns (log-likelihood of ``frameprob``, normalised fwdlattice (N, S),
    scaling factors (N + 1,)); the last factor is the end weighting
    ``sum_j fwd[-1, j] * endprob[j]``. The log-likelihood is ``-inf`` if a
    factor is zero.
    """
    n, s = frameprob.shape
    fwd = np.zeros((n, s))
    scale = np.zeros(n + 1)
    log_prob = 0.0
    for t in range(n):
        if t == 0:
            for j in range(s):
                fwd[0, j] = startprob[j] * frameprob[0, j]
        else:
            for i in range(s):
                a = fwd[t - 1, i]
                if a == 0.0:
                    continue
                for j in range(s):
                    fwd[t, j] += a * transmat[i, j]
            for j in range(s):
                fwd[t, j] *= frameprob[t, j]
        c = 0.0
        for j in range(s):
            c += fwd[t, j]
        scale[t] = c
        if c == 0.0:
            return -np.inf, fwd, scale
        inv = 1.0 / c
        for j in range(s):
            fwd[t, j] *= inv
        log_prob += np.log(c)
    c = 0.0
    for j in range(s):
        c += fwd[n - 1, j] * endprob[j]
    scale[n] = c
    if c == 0.0:
        return -np.inf, fwd, scale
    return log_prob + np.log(c), fwd, scale


@njit(cache=True)
def backward_scaling(transmat, frameprob, scale, endprob):
    """Scaled backward lattice matching :func:`forward_scaling`'s factors.

    ``fwd * bwd`` is then the state posterior, with no further normalisation.
    """
    n, s = frameprob.shape
    bwd = np.empty((n, s))
    tmp = np.empty(s)
    for j in range(s):
        bwd[n - 1, j] = endprob[j] / scale[n]
    for t in range(n - 2, -1, -1):
        inv = 1.0 / scale[t + 1]
        for j in range(s):
            tmp[j] = frameprob[t + 1, j] * bwd[t + 1, j] * inv
        for i in range(s):
            acc = 0.0
            for j in range(s):
                acc += transmat[i, j] * tmp[j]
            bwd[t, i] = acc
    return bwd


def forward_backward_scaling(startprob, transmat, framelogprob, endprob):
    """Scaled forward-backward of one sequence (log-likelihoods in, as the log path).

    Returns (log-likelihood, posteriors (N, S), expected transition counts (S, S)).
    The same compiled pass as batch training (:func:`forward_backward_multi`),
    which falls back to log space if the scaled pass underflows.
    """
    framelogprob = np.ascontiguousarray(framelogprob, dtype=np.float64)
    offsets = np.array([0, len(framelogprob)], dtype=np.int64)
    log_probs, posteriors, xi_sum = forward_backward_multi(
        np.asarray(startprob, dtype=np.float64), np.asarray(transmat, dtype=np.float64),
        np.asarray(endprob, dtype=np.float64), framelogprob, offsets, use_log=False, parallel=False)
    return float(log_probs[0]), posteriors, xi_sum


# ------------------------------------------------------------------ Viterbi


@njit(cache=True)
def viterbi(log_startprob, log_transmat, framelogprob, log_endprob):
    """Most likely state path of one sequence. Returns (log-probability, states (N,)).

    The forward pass keeps only the max scores (a contiguous, branch-light
    loop over the transposed transition matrix); back-pointers are recovered
    during the backtrace, one argmax per frame.
    """
    n, s = framelogprob.shape
    log_trans_t = np.ascontiguousarray(log_transmat.T)
    delta = np.empty((n, s))
    for j in range(s):
        delta[0, j] = log_startprob[j] + framelogprob[0, j]
    for t in range(1, n):
        prev = delta[t - 1]
        for j in range(s):
            row = log_trans_t[j]
            best = -np.inf
            for i in range(s):
                v = prev[i] + row[i]
                best = v if v > best else best
            delta[t, j] = best + framelogprob[t, j]
    states = np.empty(n, dtype=np.int64)
    best = -np.inf
    arg = 0
    for j in range(s):
        v = delta[n - 1, j] + log_endprob[j]
        if v > best:
            best = v
            arg = j
    states[n - 1] = arg
    for t in range(n - 1, 0, -1):
        j = states[t]
        b = -np.inf
        a = 0
        for i in range(s):
            v = delta[t - 1, i] + log_transmat[i, j]
            if v > b:
                b = v
                a = i
        states[t - 1] = a
    return best, states


# ------------------------------------------------------- many sequences
#
# Each *_multi function has a parallel (prange over sequences) and a serial
# twin: thread start-up costs more than it saves on small batches, and a
# single long sequence cannot be split anyway. ``parallel=None`` picks one
# from the amount of work.

_PARALLEL_MIN_WORK = 1 << 18  # frames * states**2


@njit(cache=True)
def _fb_log_one(log_start, log_trans, log_end, flp, post, xi):
    """Log-space forward-backward of one sequence into preallocated outputs."""
    post[:, :] = 0.0
    lp, fwd = forward_log(log_start, log_trans, flp, log_end)
    if lp > -np.inf:
        bwd = backward_log(log_start, log_trans, flp, log_end)
        _posteriors_xi_log(log_trans, flp, fwd, bwd, lp, post, xi)
    return lp


@njit(cache=True, parallel=True)
def _fb_log_multi_parallel(startprob, transmat, endprob, framelogprob, offsets,
                           log_probs, posteriors, xi_parts):
    log_start, log_trans, log_end = np.log(startprob), np.log(transmat), np.log(endprob)
    for k in prange(offsets.shape[0] - 1):
        a, b = offsets[k], offsets[k + 1]
        log_probs[k] = _fb_log_one(log_start, log_trans, log_end, framelogprob[a:b],
                                   posteriors[a:b], xi_parts[k])


@njit(cache=True)
def _fb_log_multi_serial(startprob, transmat, endprob, framelogprob, offsets,
                         log_probs, posteriors, xi_sum):
    log_start, log_trans, log_end = np.log(startprob), np.log(transmat), np.log(endprob)
    for k in range(offsets.shape[0] - 1):
        a, b = offsets[k], offsets[k + 1]
        log_probs[k] = _fb_log_one(log_start, log_trans, log_end, framelogprob[a:b],
                                   posteriors[a:b], xi_sum)


def _use_parallel(parallel, offsets, n_states):
    if parallel is not None:
        return bool(parallel)
    return len(offsets) > 2 and (offsets[-1] * n_states * n_states) >= _PARALLEL_MIN_WORK


@njit(cache=True)
def _subtract_row_max(a, out):
    """``out = a - rowmax``; returns the row maxima, 0 for an all -inf row (whose
    scaled likelihoods then stay 0). One pass where numpy needs three."""
    row_max = np.empty(a.shape[0])
    for t in range(a.shape[0]):
        m = -np.inf
        for j in range(a.shape[1]):
            if a[t, j] > m:
                m = a[t, j]
        if m == -np.inf:
            m = 0.0
        row_max[t] = m
        for j in range(a.shape[1]):
            out[t, j] = a[t, j] - m
    return row_max


@njit(cache=True, fastmath=True)
def _dot_rows(M, v, out):
    """out = M @ v. Only for finite, non-negative probabilities: full fastmath
    lets LLVM vectorise the reduction."""
    for r in range(M.shape[0]):
        acc = 0.0
        for c in range(M.shape[1]):
            acc += M[r, c] * v[c]
        out[r] = acc


@njit(cache=True, fastmath=True)  # all values finite here: rowmax, B in [0, 1], c > 0
def _fb_scaled_seq(startprob, transmat, trans_t, endprob, rowmax, post, alpha, work):
    """Scaled forward-backward of one sequence for batch training (the fast path).

    ``work`` holds the scaled likelihoods ``exp(framelogprob - rowmax)`` on
    entry (computed vectorised by numpy for the whole batch). Writes
    normalised forward rows to ``alpha`` and posteriors to ``post``, and
    leaves in ``work[t]`` (t >= 1) the vector ``B[t] * beta[t] / c[t]``
    (``work[0]`` = 0), so that the expected transition counts of a whole
    batch are one GEMM: ``transmat * (alpha[:-1].T @ work[1:])``. The S^2
    work per frame is two vectorised mat-vecs (``trans_t`` = transmat.T).
    Returns the log-likelihood, or -inf if the scaled pass underflowed.
    """
    n, s = work.shape
    scale = np.empty(n)
    log_prob = 0.0
    for t in range(n):
        log_prob += rowmax[t]
    for j in range(s):
        alpha[0, j] = startprob[j] * work[0, j]
    for t in range(n):
        if t > 0:
            _dot_rows(trans_t, alpha[t - 1], alpha[t])
            for j in range(s):
                alpha[t, j] *= work[t, j]
        c = 0.0
        for j in range(s):
            c += alpha[t, j]
        if c == 0.0:
            return -np.inf
        scale[t] = c
        inv = 1.0 / c
        for j in range(s):
            alpha[t, j] *= inv
        log_prob += np.log(c)
    beta = np.empty(s)
    c_end = 0.0
    for j in range(s):
        c_end += alpha[n - 1, j] * endprob[j]
    if c_end == 0.0:
        return -np.inf
    log_prob += np.log(c_end)
    for j in range(s):
        beta[j] = endprob[j] / c_end
        post[n - 1, j] = alpha[n - 1, j] * beta[j]
    for t in range(n - 2, -1, -1):
        inv = 1.0 / scale[t + 1]
        for j in range(s):
            work[t + 1, j] *= beta[j] * inv
        _dot_rows(transmat, work[t + 1], beta)
        total = 0.0
        for i in range(s):
            post[t, i] = alpha[t, i] * beta[i]
            total += post[t, i]
        if total > 0.0:  # 1 up to rounding; renormalise for safety
            inv = 1.0 / total
            for i in range(s):
                post[t, i] *= inv
    for j in range(s):
        work[0, j] = 0.0
    return log_prob


@njit(cache=True, parallel=True)
def _fb_scaled_batch_parallel(startprob, transmat, endprob, rowmax, offsets, log_probs,
                              posteriors, alpha, work):
    trans_t = np.ascontiguousarray(transmat.T)
    for k in prange(offsets.shape[0] - 1):
        a, b = offsets[k], offsets[k + 1]
        log_probs[k] = _fb_scaled_seq(startprob, transmat, trans_t, endprob, rowmax[a:b],
                                      posteriors[a:b], alpha[a:b], work[a:b])


@njit(cache=True)
def _fb_scaled_batch_serial(startprob, transmat, endprob, rowmax, offsets, log_probs,
                            posteriors, alpha, work):
    trans_t = np.ascontiguousarray(transmat.T)
    for k in range(offsets.shape[0] - 1):
        a, b = offsets[k], offsets[k + 1]
        log_probs[k] = _fb_scaled_seq(startprob, transmat, trans_t, endprob, rowmax[a:b],
                                      posteriors[a:b], alpha[a:b], work[a:b])


def forward_backward_multi(startprob, transmat, endprob, framelogprob, offsets, use_log,
                           parallel=None):
    """Forward-backward over sequences ``offsets[i]:offsets[i+1]`` of ``framelogprob``.

    Returns (per-sequence log-likelihoods (n_seq,), posteriors (N, S),
    summed expected transition counts (S, S)). Sequences with zero likelihood
    get ``-inf`` and zero posteriors. With ``use_log=False`` a sequence whose
    scaled pass underflows is redone in log space.
    """
    n, s = framelogprob.shape
    n_seq = len(offsets) - 1
    log_probs = np.empty(n_seq)
    posteriors = np.empty((n, s))
    par = _use_parallel(parallel, offsets, s)
    with np.errstate(divide="ignore"):
        if use_log:
            if par:
                xi_parts = np.zeros((n_seq, s, s))
                _fb_log_multi_parallel(startprob, transmat, endprob, framelogprob, offsets,
                                       log_probs, posteriors, xi_parts)
                return log_probs, posteriors, xi_parts.sum(axis=0)
            xi_sum = np.zeros((s, s))
            _fb_log_multi_serial(startprob, transmat, endprob, framelogprob, offsets,
                                 log_probs, posteriors, xi_sum)
            return log_probs, posteriors, xi_sum
        work = np.empty((n, s))
        rowmax = _subtract_row_max(framelogprob, work)
        np.exp(work, out=work)  # numpy's SIMD exp: several times numba's scalar one
        alpha = np.empty((n, s))
        run = _fb_scaled_batch_parallel if par else _fb_scaled_batch_serial
        run(startprob, transmat, endprob, rowmax, offsets, log_probs, posteriors, alpha, work)
        failed = np.flatnonzero(log_probs == -np.inf)
        for k in failed:  # neutralise in the GEMM; redo below
            alpha[offsets[k]:offsets[k + 1]] = 0.0
        xi_sum = transmat * (alpha[:-1].T @ work[1:])
        for k in failed:
            a, b = offsets[k], offsets[k + 1]
            lp, post, xi = forward_backward_log(startprob, transmat, framelogprob[a:b], endprob)
            log_probs[k] = lp
            posteriors[a:b] = post
            xi_sum += xi
    return log_probs, posteriors, xi_sum


@njit(cache=True)
def _forward_one(startprob, transmat, endprob, log_start, log_trans, log_end, flp, use_log):
    lp = -np.inf
    if not use_log:
        n, s = flp.shape
        frameprob = np.empty((n, s))
        rowmax = np.empty(n)
        if _scaled_likelihood(flp, frameprob, rowmax):
            lp, _, _ = forward_scaling(startprob, transmat, frameprob, endprob)
            lp += rowmax.sum()
    if lp == -np.inf:
        lp, _ = forward_log(log_start, log_trans, flp, log_end)
    return lp


@njit(cache=True, parallel=True)
def _forward_multi_parallel(startprob, transmat, endprob, framelogprob, offsets, use_log, log_probs):
    log_start, log_trans, log_end = np.log(startprob), np.log(transmat), np.log(endprob)
    for k in prange(offsets.shape[0] - 1):
        log_probs[k] = _forward_one(startprob, transmat, endprob, log_start, log_trans, log_end,
                                    framelogprob[offsets[k]:offsets[k + 1]], use_log)


@njit(cache=True)
def _forward_multi_serial(startprob, transmat, endprob, framelogprob, offsets, use_log, log_probs):
    log_start, log_trans, log_end = np.log(startprob), np.log(transmat), np.log(endprob)
    for k in range(offsets.shape[0] - 1):
        log_probs[k] = _forward_one(startprob, transmat, endprob, log_start, log_trans, log_end,
                                    framelogprob[offsets[k]:offsets[k + 1]], use_log)


def forward_multi(startprob, transmat, endprob, framelogprob, offsets, use_log, parallel=None):
    """Per-sequence log-likelihoods only (forward pass), for ``score``."""
    log_probs = np.empty(len(offsets) - 1)
    run = (_forward_multi_parallel if _use_parallel(parallel, offsets, framelogprob.shape[1])
           else _forward_multi_serial)
    with np.errstate(divide="ignore"):
        run(startprob, transmat, endprob, framelogprob, offsets, use_log, log_probs)
    return log_probs


@njit(cache=True, parallel=True)
def _viterbi_multi_parallel(startprob, transmat, endprob, framelogprob, offsets, log_probs, states):
    log_start, log_trans, log_end = np.log(startprob), np.log(transmat), np.log(endprob)
    for k in prange(offsets.shape[0] - 1):
        a, b = offsets[k], offsets[k + 1]
        lp, path = viterbi(log_start, log_trans, framelogprob[a:b], log_end)
        log_probs[k] = lp
        states[a:b] = path


@njit(cache=True)
def _viterbi_multi_serial(startprob, transmat, endprob, framelogprob, offsets, log_probs, states):
    log_start, log_trans, log_end = np.log(startprob), np.log(transmat), np.log(endprob)
    for k in range(offsets.shape[0] - 1):
        a, b = offsets[k], offsets[k + 1]
        lp, path = viterbi(log_start, log_trans, framelogprob[a:b], log_end)
        log_probs[k] = lp
        states[a:b] = path


def viterbi_multi(startprob, transmat, endprob, framelogprob, offsets, parallel=None):
    """Viterbi over many sequences. Returns (per-sequence log-probabilities, states (N,))."""
    log_probs = np.empty(len(offsets) - 1)
    states = np.empty(framelogprob.shape[0], dtype=np.int64)
    run = (_viterbi_multi_parallel if _use_parallel(parallel, offsets, framelogprob.shape[1])
           else _viterbi_multi_serial)
    run(startprob, transmat, endprob, framelogprob, offsets, log_probs, states)
    return log_probs, states
