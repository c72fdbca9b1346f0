"""Compiled kernels over sparse state graphs (arc lists), all in log space.

A graph has ``S`` emitting states, state ``s`` emitting with pdf
``pdf[s]`` (a column of the frame log-likelihood matrix ``ll``), and ``A``
arcs ``src[a] -> dst[a]`` with log-probability ``logp[a]``; ``init`` and
``final`` are per-state log weights of starting and ending there. Every
loop is O(T * (S + A)), so composite utterance HMMs and decoding graphs never
need a dense S x S transition matrix.
"""

from __future__ import annotations

import numpy as np
from numba import njit

NEG_INF = -np.inf


@njit(cache=True, inline="always")
def _logaddexp(a: float, b: float) -> float:
    if a == -np.inf:
        return b
    if b == -np.inf:
        return a
    if a > b:
        return a + np.log1p(np.exp(b - a))
    return b + np.log1p(np.exp(a - b))


#: Below this many nats under a frame's best score a term is summed in log space (exp would underflow).
_LINEAR_RANGE = 700.0


@njit(cache=True, inline="always")
def _scaled_sum_step(values, m, p, frm, to, scaled, low, acc):
    """``log sum_a exp(values[frm[a]]) p[a]`` into each ``to[a]``, minus ``m`` (the best of ``values``).

    Terms within :data:`_LINEAR_RANGE` of ``m`` are summed in linear space
    (one exp per state, a multiply-add per arc); the rest, however far below,
    by log-add, so no finite term is ever lost: along a long utterance a
    state far below the best forward score may be the only one whose
    backward score is not far below too. Returns through ``acc`` (linear,
    scaled by ``m``) and ``low`` (log, unscaled).
    """
    S = values.shape[0]
    for s in range(S):
        d = values[s] - m
        scaled[s] = np.exp(d) if d > -_LINEAR_RANGE else 0.0
        acc[s] = 0.0
        low[s] = -np.inf
    for a in range(frm.shape[0]):
        s = frm[a]
        if scaled[s] > 0.0:
            acc[to[a]] += scaled[s] * p[a]
        elif values[s] > -np.inf:
            low[to[a]] = _logaddexp(low[to[a]], values[s] + np.log(p[a]))


@njit(cache=True, inline="always")
def _scaled_log(acc, low, m):
    """log of ``acc * exp(m) + exp(low)``."""
    if acc > 0.0:
        return _logaddexp(np.log(acc) + m, low)
    return low


@njit(cache=True)
def forward(ll, pdf, src, dst, logp, init):
    """Log forward variables alpha (T, S).

    Each frame's sums over arcs run in linear space, scaled by the previous
    frame's best alpha: one exp and one log per state instead of a log-add
    per arc (terms too far below the best are log-added, never dropped).
    """
    T = ll.shape[0]
    S = pdf.shape[0]
    alpha = np.full((T, S), -np.inf)
    p = np.exp(logp)
    scaled, low, acc = np.empty(S), np.empty(S), np.empty(S)
    for s in range(S):
        alpha[0, s] = init[s] + ll[0, pdf[s]]
    for t in range(1, T):
        m = -np.inf
        for s in range(S):
            if alpha[t - 1, s] > m:
                m = alpha[t - 1, s]
        if m == -np.inf:
            break  # no path reaches frame t - 1: alpha stays -inf
        _scaled_sum_step(alpha[t - 1], m, p, src, dst, scaled, low, acc)
        for s in range(S):
            alpha[t, s] = _scaled_log(acc[s], low[s], m) + ll[t, pdf[s]]
    return alpha


@njit(cache=True)
def backward(ll, pdf, src, dst, logp, final):
    """Log backward variables beta (T, S), summed as in :func:`forward`."""
    T = ll.shape[0]
    S = pdf.shape[0]
    beta = np.full((T, S), -np.inf)
    p = np.exp(logp)
    v = np.empty(S)
    scaled, low, acc = np.empty(S), np.empty(S), np.empty(S)
    for s in range(S):
        beta[T - 1, s] = final[s]
    for t in range(T - 2, -1, -1):
        m = -np.inf
        for s in range(S):
            v[s] = ll[t + 1, pdf[s]] + beta[t + 1, s]
            if v[s] > m:
                m = v[s]
        if m == -np.inf:
            break
        _scaled_sum_step(v, m, p, dst, src, scaled, low, acc)
        for s in range(S):
            beta[t, s] = _scaled_log(acc[s], low[s], m)
    return beta


@njit(cache=True, nogil=True)
def _exp_from_max(v):
    """``v <- exp(v - max(v))`` in place; returns the sum (the normaliser of ``v``'s log-weights)."""
    m = -np.inf
    for i in range(v.shape[0]):
        if v[i] > m:
            m = v[i]
    z = 0.0
    for i in range(v.shape[0]):
        v[i] = np.exp(v[i] - m)
        z += v[i]
    return z


@njit(cache=True, nogil=True)  # nogil: training runs utterance batches on threads
def forward_backward(ll, pdf, src, dst, logp, init, final, n_pdf):
    """Total log-likelihood, per-pdf occupancies (T, n_pdf), arc counts (A,), final counts (S,).

    Occupancies of graph states sharing a pdf are summed, which is what
    the Gaussian statistics need.
    """
    T = ll.shape[0]
    S = pdf.shape[0]
    A = src.shape[0]
    alpha = forward(ll, pdf, src, dst, logp, init)
    beta = backward(ll, pdf, src, dst, logp, final)
    log_z = -np.inf
    for s in range(S):
        log_z = _logaddexp(log_z, alpha[T - 1, s] + final[s])
    gamma = np.zeros((T, n_pdf))
    arc_counts = np.zeros(A)
    final_counts = np.zeros(S)
    if log_z == -np.inf:
        return log_z, gamma, arc_counts, final_counts
    # Each frame is normalised by its own total rather than by log_z: over
    # very long sequences alpha + beta drifts from log_z by rounding, and
    # per-frame normalisation keeps occupancies summing to one exactly.
    post = np.empty(S)
    for t in range(T):
        for s in range(S):
            post[s] = alpha[t, s] + beta[t, s]
        z = _exp_from_max(post)
        for s in range(S):
            gamma[t, pdf[s]] += post[s] / z
    xi = np.empty(A)
    for t in range(1, T):
        for a in range(A):
            xi[a] = alpha[t - 1, src[a]] + logp[a] + ll[t, pdf[dst[a]]] + beta[t, dst[a]]
        z = _exp_from_max(xi)
        for a in range(A):
            arc_counts[a] += xi[a] / z
    for s in range(S):
        v = alpha[T - 1, s] + final[s] - log_z
        if v > -700.0:
            final_counts[s] = np.exp(v)
    return log_z, gamma, arc_counts, final_counts


@njit(cache=True)
def viterbi(ll, pdf, src, dst, logp, init, final, beam):
    """Token-passing Viterbi search with beam pruning.

    Returns the best score, the best state sequence (T,) and the arc taken
    into each frame (T,; -1 at frame 0), or score -inf and empty paths when
    no token survives to a final state. ``beam`` <= 0 disables pruning.
    """
    T = ll.shape[0]
    S = pdf.shape[0]
    score = np.empty(S)
    new = np.empty(S)
    back = np.full((T, S), -1, dtype=np.int32)  # arc index that brought the token
    for s in range(S):
        score[s] = init[s] + ll[0, pdf[s]]
    for t in range(1, T):
        if beam > 0.0:
            best = -np.inf
            for s in range(S):
                if score[s] > best:
                    best = score[s]
            for s in range(S):
                if score[s] < best - beam:
                    score[s] = -np.inf
        new[:] = -np.inf
        for a in range(src.shape[0]):
            v = score[src[a]] + logp[a]
            if v > new[dst[a]]:
                new[dst[a]] = v
                back[t, dst[a]] = a
        for s in range(S):
            score[s] = new[s] + ll[t, pdf[s]]
    best = -np.inf
    last = -1
    for s in range(S):
        v = score[s] + final[s]
        if v > best:
            best = v
            last = s
    states = np.full(T, -1, dtype=np.int64)
    arcs = np.full(T, -1, dtype=np.int64)
    if last < 0:
        return best, states[:0], arcs[:0]
    s = last
    for t in range(T - 1, 0, -1):
        states[t] = s
        a = back[t, s]
        arcs[t] = a
        s = src[a]
    states[0] = s
    return best, states, arcs
