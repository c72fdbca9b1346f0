"""Compiled forward-backward and Viterbi kernels.

The ``*_multi`` functions run many sequences stored back to back in one
array, addressed by ``offsets`` (``offsets[i]:offsets[i + 1]`` are the frames
of sequence ``i``), in parallel over sequences. ``forward_log``,
``backward_log``, ``forward_backward_log`` and ``viterbi`` handle one
sequence.

Two forward-backward implementations:

* **scaling** (fast path): works on ``B = exp(framelogprob - rowmax)``
  (computed for a whole batch by numpy) and renormalises the forward vector
  at every frame, so the S^2 inner loop has no exp/log. Per-sequence
  log-likelihood is ``sum(log c_t) + sum(rowmax_t)``.
* **log**: everything in log space with log-sum-exp; slower, but never loses
  a finite term to underflow.
  The scaling path falls back to it per sequence when it loses mass: when a
  normaliser underflows, and in forward-backward also when forward times
  backward does not sum to one at some frame (a path whose scaled share
  underflowed to 0 carries the mass later). The forward-only pass
  (:func:`forward_multi`, for ``score``) runs a backward pass to check the
  same identity.

Every function takes an ``endprob`` (S,) vector weighting the state of the
last frame (``np.ones(S)``: any state may end, hmmlearn's semantics; a
model's exit probabilities, with ``transmat`` rows summing to ``1 - endprob``,
for HTK-style models left only through their final state, see
:mod:`gmmhmm.hmm.base`). The kernels need no normalisation: any non-negative
weights work. Log-space functions take logs of all probabilities.

A sequence whose total likelihood is zero gets log-likelihood ``-inf``;
callers turn that into a clear error.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = [
    "forward_log",
    "backward_log",
    "viterbi",
    "forward_backward_log",
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
#
# The public single-sequence functions are thin wrappers; the batch kernels
# call the underscored versions with ``transmat`` / its transpose computed
# once per batch instead of once per sequence.


# Shifted sums below this are recomputed term by term: terms dropped by
# exp underflow (< e^-745 of the shift) are then < e^-78 of the result.
_TINY = 1e-290


@njit(cache=True)
def _forward_log(log_startprob, log_transmat, trans_t, framelogprob, log_endprob):
    """:func:`forward_log` with ``trans_t = exp(log_transmat).T`` (C-contiguous) given."""
    n, s = framelogprob.shape
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
def forward_log(log_startprob, log_transmat, framelogprob, log_endprob):
    """Log forward lattice of one sequence.

    Each step is ``M + log(exp(fwd - M) @ A)`` (S exps and S logs per frame,
    not S^2); a column whose shifted sum underflows is redone with an exact
    log-sum-exp, so the result is exact in log space.

    Parameters
    ----------
    log_startprob : ndarray of shape (S,)
    log_transmat : ndarray of shape (S, S)
    framelogprob : ndarray of shape (N, S)
    log_endprob : ndarray of shape (S,)
        Weights the state occupied at the last frame (zeros everywhere for
        hmmlearn semantics; ``-inf`` forbids ending there).

    Returns
    -------
    log_prob : float
    fwdlattice : ndarray of shape (N, S)
    """
    trans_t = np.exp(log_transmat).T.copy()
    return _forward_log(log_startprob, log_transmat, trans_t, framelogprob, log_endprob)


@njit(cache=True)
def _backward_log(log_transmat, transmat, framelogprob, log_endprob):
    """:func:`backward_log` with ``transmat = exp(log_transmat)`` given."""
    n, s = framelogprob.shape
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
def backward_log(log_startprob, log_transmat, framelogprob, log_endprob):
    """Log backward lattice of one sequence, the same way as :func:`forward_log`.

    Parameters are those of :func:`forward_log` (``log_startprob`` is unused).

    Returns
    -------
    bwdlattice : ndarray of shape (N, S)
        Its last row is ``log_endprob``.
    """
    return _backward_log(log_transmat, np.exp(log_transmat), framelogprob, log_endprob)


@njit(cache=True)
def _posteriors_xi_log(log_transmat, transmat, framelogprob, fwd, bwd, log_prob, posteriors,
                       xi_sum):
    """Write state posteriors into ``posteriors`` and add expected transitions to ``xi_sum``.

    Per frame, ``xi = exp(F + M - log_prob) * outer(exp(fwd - F), exp(v - M)) * A``
    with ``v = framelogprob[t + 1] + bwd[t + 1]``; frames where that shifted
    form could lose terms (its total is tiny) are summed term by term.
    """
    n, s = framelogprob.shape
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
def _fb_log_one(log_start, log_trans, transmat, trans_t, log_end, flp, post, xi):
    """Log-space forward-backward of one sequence into preallocated outputs.

    Overwrites ``post`` (zeros if the likelihood is zero), adds to ``xi`` and
    returns the log-likelihood. ``transmat`` / ``trans_t`` are
    ``exp(log_trans)`` and its C-contiguous transpose.
    """
    post[:, :] = 0.0
    lp, fwd = _forward_log(log_start, log_trans, trans_t, flp, log_end)
    if lp > -np.inf:
        bwd = _backward_log(log_trans, transmat, flp, log_end)
        _posteriors_xi_log(log_trans, transmat, flp, fwd, bwd, lp, post, xi)
    return lp


@njit(cache=True)
def forward_backward_log(startprob, transmat, framelogprob, endprob):
    """Log-space forward-backward of one sequence.

    Parameters
    ----------
    startprob : ndarray of shape (S,)
    transmat : ndarray of shape (S, S)
    framelogprob : ndarray of shape (N, S)
    endprob : ndarray of shape (S,)

    Returns
    -------
    log_prob : float
        ``-inf`` (with zero posteriors and counts) if the likelihood is zero.
    posteriors : ndarray of shape (N, S)
    xi_sum : ndarray of shape (S, S)
        Expected transition counts.
    """
    n, s = framelogprob.shape
    posteriors = np.empty((n, s))
    xi_sum = np.zeros((s, s))
    log_prob = _fb_log_one(np.log(startprob), np.log(transmat), transmat,
                           np.ascontiguousarray(transmat.T), np.log(endprob), framelogprob,
                           posteriors, xi_sum)
    return log_prob, posteriors, xi_sum


# ------------------------------------------------------------------ scaling


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


def _scaled_likelihoods(framelogprob):
    """``(rowmax, exp(framelogprob - rowmax))`` of a whole batch, the input of
    :func:`_forward_scaled`."""
    work = np.empty(framelogprob.shape)
    rowmax = _subtract_row_max(framelogprob, work)
    np.exp(work, out=work)  # numpy's SIMD exp: several times numba's scalar one
    return rowmax, work


@njit(cache=True, fastmath=True)
def _dot_rows(M, v, out):
    """out = M @ v. Only for finite, non-negative probabilities: full fastmath
    lets LLVM vectorise the reduction."""
    for r in range(M.shape[0]):
        acc = 0.0
        for c in range(M.shape[1]):
            acc += M[r, c] * v[c]
        out[r] = acc


# A normaliser below the smallest normal double has lost precision and its
# inverse overflows: the scaled pass counts it as underflow (log space redoes it).
_MIN_SCALE = np.finfo(np.float64).tiny


@njit(cache=True, fastmath=True)  # all values finite here: rowmax, B in [0, 1], c > 0
def _forward_scaled(startprob, trans_t, endprob, rowmax, frameprob, alpha, scale):
    """Scaled forward pass of one sequence.

    Parameters
    ----------
    startprob, endprob : ndarray of shape (S,)
    trans_t : ndarray of shape (S, S)
        ``transmat.T``, C-contiguous: each step is a vectorised mat-vec.
    rowmax : ndarray of shape (N,)
    frameprob : ndarray of shape (N, S)
        Scaled likelihoods ``exp(framelogprob - rowmax)``.
    alpha : ndarray of shape (N, S)
        Output: the normalised forward rows. May be ``frameprob`` itself when
        only the likelihood is wanted (each element is read before it is
        overwritten).
    scale : ndarray of shape (N + 1,), zeros
        Output: the normalisers ``c_t``, then ``sum(alpha[-1] * endprob)``.
        ``scale[N]`` stays 0 if the pass underflows (a normaliser below
        ``_MIN_SCALE``).

    Returns
    -------
    float
        Log-likelihood ``sum(rowmax) + sum(log scale)``, ``-inf`` if the
        scaled pass underflowed.
    """
    n, s = frameprob.shape
    pred = np.empty(s)
    log_prob = 0.0
    for t in range(n):
        log_prob += rowmax[t]
    for t in range(n):
        if t == 0:
            for j in range(s):
                alpha[0, j] = startprob[j] * frameprob[0, j]
        else:
            _dot_rows(trans_t, alpha[t - 1], pred)
            for j in range(s):
                alpha[t, j] = pred[j] * frameprob[t, j]
        c = 0.0
        for j in range(s):
            c += alpha[t, j]
        if c < _MIN_SCALE:
            return -np.inf
        scale[t] = c
        inv = 1.0 / c
        for j in range(s):
            alpha[t, j] *= inv
        log_prob += np.log(c)
    c = 0.0
    for j in range(s):
        c += alpha[n - 1, j] * endprob[j]
    if c < _MIN_SCALE:
        return -np.inf
    scale[n] = c
    return log_prob + np.log(c)


# The backward pass may meet inf and NaN (a lost state's beta overflows), which its checks must
# see: every fast-math flag but "no NaNs" and "no infs".
_FASTMATH_FINITE_UNKNOWN = {"contract", "reassoc", "arcp", "nsz", "afn"}

# Forward times backward must sum to one at every frame within this tolerance (here and in the
# graph kernel, gmmhmm.graphs.kernels): otherwise a state's share underflowed although its paths
# carry the mass, and the sequence is redone in log space.
_SUM_TOLERANCE = 1e-6


@njit(cache=True, fastmath=_FASTMATH_FINITE_UNKNOWN)
def _beta_step(transmat, frame_row, scale_next, beta, weighted):
    """One scaled backward step, from frame t + 1 to t: ``weighted = B[t+1] beta[t+1] / c[t+1]``
    (``weighted`` may be ``frame_row`` itself), then ``beta = transmat @ weighted``."""
    inv = 1.0 / scale_next
    for j in range(beta.shape[0]):
        weighted[j] = frame_row[j] * beta[j] * inv
    _dot_rows(transmat, weighted, beta)


@njit(cache=True, fastmath=_FASTMATH_FINITE_UNKNOWN)
def _fb_scaled_seq(startprob, transmat, trans_t, endprob, rowmax, post, alpha, work):
    """Scaled forward-backward of one sequence for batch training (the fast path).

    ``work`` holds the scaled likelihoods ``exp(framelogprob - rowmax)`` on
    entry. Writes normalised forward rows to ``alpha`` and posteriors to
    ``post``, and leaves in ``work[t]`` (t >= 1) the vector
    ``B[t] * beta[t] / c[t]`` (``work[0]`` = 0), so that the expected
    transition counts of a whole batch are one GEMM:
    ``transmat * (alpha[:-1].T @ work[1:])``. The S^2 work per frame is two
    vectorised mat-vecs. Returns the log-likelihood, or -inf if the scaled
    pass lost probability mass to underflow: a normaliser underflowed, or
    forward times backward does not sum to one at some frame (a state whose
    share underflowed to 0 although its paths carry the mass). ``alpha`` and
    ``work`` are then all zeros, so the sequence adds nothing to that GEMM
    (in particular no product of the previous sequence's last ``alpha`` row
    with this one's first frame) and the caller redoes it in log space.
    """
    n, s = work.shape
    scale = np.zeros(n + 1)
    log_prob = _forward_scaled(startprob, trans_t, endprob, rowmax, work, alpha, scale)
    if scale[n] == 0.0:  # underflow (a test of scale[n], as in the forward pass)
        return _fail_scaled(alpha, work)
    beta = endprob / scale[n]
    for t in range(n - 1, -1, -1):
        if t < n - 1:
            _beta_step(transmat, work[t + 1], scale[t + 1], beta, work[t + 1])
        total = 0.0
        for i in range(s):
            post[t, i] = alpha[t, i] * beta[i]
            total += post[t, i]
        if not abs(total - 1.0) <= _SUM_TOLERANCE:  # also NaN: 0 * an overflowed beta
            return _fail_scaled(alpha, work)
        inv = 1.0 / total  # 1 up to rounding
        for i in range(s):
            post[t, i] *= inv
    for j in range(s):
        work[0, j] = 0.0
    return log_prob


@njit(cache=True)
def _fail_scaled(alpha, work):
    """A failed scaled pass: zeros in the GEMM's operands, -inf for the caller to redo."""
    alpha[:, :] = 0.0
    work[:, :] = 0.0
    return -np.inf


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


def _use_parallel(parallel, offsets, n_states):
    if parallel is not None:
        return bool(parallel)
    return len(offsets) > 2 and (offsets[-1] * n_states * n_states) >= _PARALLEL_MIN_WORK


# The parallel log-space pass splits the sequences into at most this many contiguous groups,
# each summing its expected transitions into its own S x S matrix: memory that does not grow
# with the number of sequences, and sums that do not depend on the thread count.
_XI_GROUPS = 64


@njit(cache=True, parallel=True)
def _fb_log_multi_parallel(startprob, transmat, endprob, framelogprob, offsets,
                           log_probs, posteriors, xi_parts):
    log_start, log_trans, log_end = np.log(startprob), np.log(transmat), np.log(endprob)
    trans_t = np.ascontiguousarray(transmat.T)
    n_seq, n_groups = offsets.shape[0] - 1, xi_parts.shape[0]
    for g in prange(n_groups):
        for k in range(g * n_seq // n_groups, (g + 1) * n_seq // n_groups):
            a, b = offsets[k], offsets[k + 1]
            log_probs[k] = _fb_log_one(log_start, log_trans, transmat, trans_t, log_end,
                                       framelogprob[a:b], posteriors[a:b], xi_parts[g])


@njit(cache=True)
def _fb_log_multi_serial(startprob, transmat, endprob, framelogprob, offsets,
                         log_probs, posteriors, xi_sum):
    log_start, log_trans, log_end = np.log(startprob), np.log(transmat), np.log(endprob)
    trans_t = np.ascontiguousarray(transmat.T)
    for k in range(offsets.shape[0] - 1):
        a, b = offsets[k], offsets[k + 1]
        log_probs[k] = _fb_log_one(log_start, log_trans, transmat, trans_t, log_end,
                                   framelogprob[a:b], posteriors[a:b], xi_sum)


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
                xi_parts = np.zeros((min(n_seq, _XI_GROUPS), s, s))
                _fb_log_multi_parallel(startprob, transmat, endprob, framelogprob, offsets,
                                       log_probs, posteriors, xi_parts)
                return log_probs, posteriors, xi_parts.sum(axis=0)
            xi_sum = np.zeros((s, s))
            _fb_log_multi_serial(startprob, transmat, endprob, framelogprob, offsets,
                                 log_probs, posteriors, xi_sum)
            return log_probs, posteriors, xi_sum
        rowmax, work = _scaled_likelihoods(framelogprob)
        alpha = np.empty((n, s))
        run = _fb_scaled_batch_parallel if par else _fb_scaled_batch_serial
        run(startprob, transmat, endprob, rowmax, offsets, log_probs, posteriors, alpha, work)
        xi_sum = transmat * (alpha[:-1].T @ work[1:])  # failed sequences are zeros there
        for k in np.flatnonzero(log_probs == -np.inf):  # redone in log space
            a, b = offsets[k], offsets[k + 1]
            lp, post, xi = forward_backward_log(startprob, transmat, framelogprob[a:b], endprob)
            log_probs[k] = lp
            posteriors[a:b] = post
            xi_sum += xi
    return log_probs, posteriors, xi_sum


@njit(cache=True, fastmath=_FASTMATH_FINITE_UNKNOWN)
def _scaled_pass_kept_the_mass(transmat, endprob, frameprob, alpha, scale):
    """The scaled backward pass of one sequence, only to check the forward pass: with the
    forward normalisers ``scale``, forward times backward must sum to one at every frame
    (as in :func:`_fb_scaled_seq`); a path whose forward share underflowed but which carries
    the mass later breaks that (its backward value is large, or overflows to NaN there)."""
    n, s = frameprob.shape
    beta = endprob / scale[n]
    weighted = np.empty(s)
    for t in range(n - 1, -1, -1):
        if t < n - 1:
            _beta_step(transmat, frameprob[t + 1], scale[t + 1], beta, weighted)
        total = 0.0
        for j in range(s):
            total += alpha[t, j] * beta[j]
        if not abs(total - 1.0) <= _SUM_TOLERANCE:
            return False
    return True


@njit(cache=True)
def _forward_one(startprob, transmat, trans_t, endprob, log_start, log_trans, log_end, flp, rowmax,
                 frameprob, use_log):
    """Log-likelihood of one sequence: the scaled pass, checked by a backward pass, unless
    ``use_log``; log space if so or if the scaled pass lost mass to underflow."""
    if not use_log:
        scale = np.zeros(flp.shape[0] + 1)
        alpha = np.empty(frameprob.shape)
        lp = _forward_scaled(startprob, trans_t, endprob, rowmax, frameprob, alpha, scale)
        if lp != -np.inf and _scaled_pass_kept_the_mass(transmat, endprob, frameprob, alpha, scale):
            return lp
    return _forward_log(log_start, log_trans, trans_t, flp, log_end)[0]


@njit(cache=True, parallel=True)
def _forward_multi_parallel(startprob, transmat, endprob, framelogprob, rowmax, frameprob,
                            offsets, use_log, log_probs):
    log_start, log_trans, log_end = np.log(startprob), np.log(transmat), np.log(endprob)
    trans_t = np.ascontiguousarray(transmat.T)
    for k in prange(offsets.shape[0] - 1):
        a, b = offsets[k], offsets[k + 1]
        log_probs[k] = _forward_one(startprob, transmat, trans_t, endprob, log_start, log_trans, log_end,
                                    framelogprob[a:b], rowmax[a:b], frameprob[a:b], use_log)


@njit(cache=True)
def _forward_multi_serial(startprob, transmat, endprob, framelogprob, rowmax, frameprob,
                          offsets, use_log, log_probs):
    log_start, log_trans, log_end = np.log(startprob), np.log(transmat), np.log(endprob)
    trans_t = np.ascontiguousarray(transmat.T)
    for k in range(offsets.shape[0] - 1):
        a, b = offsets[k], offsets[k + 1]
        log_probs[k] = _forward_one(startprob, transmat, trans_t, endprob, log_start, log_trans, log_end,
                                    framelogprob[a:b], rowmax[a:b], frameprob[a:b], use_log)


def forward_multi(startprob, transmat, endprob, framelogprob, offsets, use_log, parallel=None):
    """Per-sequence log-likelihoods only (forward pass), for ``score``.

    Same arguments and fallback as :func:`forward_backward_multi`; returns
    the log-likelihoods (n_seq,).
    """
    log_probs = np.empty(len(offsets) - 1)
    run = (_forward_multi_parallel if _use_parallel(parallel, offsets, framelogprob.shape[1])
           else _forward_multi_serial)
    with np.errstate(divide="ignore"):
        if use_log:  # the log path reads neither
            rowmax, frameprob = np.empty(0), np.empty((0, framelogprob.shape[1]))
        else:
            rowmax, frameprob = _scaled_likelihoods(framelogprob)
        run(startprob, transmat, endprob, framelogprob, rowmax, frameprob, offsets, use_log,
            log_probs)
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
