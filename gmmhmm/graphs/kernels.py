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

from ..hmm import kernels as dense_kernels

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


def forward_backward(ll, pdf, src, dst, logp, init, final, n_pdf):
    """Total log-likelihood, per-pdf occupancies (T, n_pdf), arc counts (A,), final counts (S,).

    Occupancies of graph states sharing a pdf are summed, which is what
    the Gaussian statistics need.

    Runs :func:`forward_backward_scaled` (linear space, no exp or log per
    state); where that pass loses anything to underflow, it is redone exactly
    in log space (:func:`forward_backward_log`).
    """
    ll = np.asarray(ll, dtype=np.float64)
    if len(ll) == 0:  # no frame: no path (the compiled passes index frame 0)
        return -np.inf, np.zeros((0, n_pdf)), np.zeros(len(src)), np.zeros(len(pdf))
    row_max = ll.max(axis=1) if ll.shape[1] else np.zeros(len(ll))
    row_max[~np.isfinite(row_max)] = 0.0  # a frame no pdf can emit: all zeros, the scaled pass fails
    frame_prob = np.exp(ll - row_max[:, None])  # numpy's vectorised exp, once per frame and pdf
    init_max, final_max = _finite_max(init), _finite_max(final)
    out = forward_backward_scaled(frame_prob, row_max, pdf, src, dst, np.exp(logp), np.exp(init - init_max),
                                  init_max, np.exp(final - final_max), final_max, n_pdf)
    if out[0]:
        return out[1:]
    return forward_backward_log(ll, pdf, src, dst, logp, init, final, n_pdf)


def _finite_max(v: np.ndarray) -> float:
    """The largest finite entry of ``v`` (0 if none): the shift of a linear-space copy."""
    finite = v[np.isfinite(v)]
    return float(finite.max()) if len(finite) else 0.0


# A frame's normaliser below the smallest normal double, or a frame whose forward and backward
# posteriors do not sum to one within the tolerance, means the scaled pass lost probability
# mass to underflow (or overflow): the utterance is redone in log space. The dense kernels'
# rule, so both scaled passes fall back alike.
_MIN_SCALE, _SUM_TOLERANCE = dense_kernels._MIN_SCALE, dense_kernels._SUM_TOLERANCE


@njit(cache=True, nogil=True)
def forward_backward_scaled(frame_prob, row_max, pdf, src, dst, p, p_init, init_max, p_final, final_max, n_pdf):
    """:func:`forward_backward` in linear space with per-frame scaling (Rabiner), or failure.

    ``frame_prob`` is ``exp(ll - row_max)`` (T, n_pdf); ``p``, ``p_init`` and
    ``p_final`` are the arc, start and end probabilities (the last two
    divided by ``exp(init_max)`` and ``exp(final_max)``). The forward rows
    are normalised to sum to one at every frame and the backward rows
    divided by the same normalisers, so ``sum_s alpha[t, s] beta[t, s]`` is
    one at every frame in exact arithmetic; that identity is checked, and
    any frame that breaks it (a state whose share underflowed although its
    paths carry the mass, or an overflow) fails the pass. Returns ``(ok,
    log_z, gamma, arc_counts, final_counts)``.
    """
    T = frame_prob.shape[0]
    S = pdf.shape[0]
    A = src.shape[0]
    gamma = np.zeros((T, n_pdf))
    arc_counts = np.zeros(A)
    final_counts = np.zeros(S)
    alpha = np.empty((T, S))
    scale = np.empty(T)
    log_z = init_max + final_max
    for s in range(S):
        alpha[0, s] = p_init[s] * frame_prob[0, pdf[s]]
    for t in range(T):
        if t > 0:
            for s in range(S):
                alpha[t, s] = 0.0
            for a in range(A):
                alpha[t, dst[a]] += alpha[t - 1, src[a]] * p[a]
            for s in range(S):
                alpha[t, s] *= frame_prob[t, pdf[s]]
        c = 0.0
        for s in range(S):
            c += alpha[t, s]
        if not c >= _MIN_SCALE:
            return False, -np.inf, gamma, arc_counts, final_counts
        scale[t] = c
        inv = 1.0 / c
        for s in range(S):
            alpha[t, s] *= inv
        log_z += np.log(c) + row_max[t]
    z_final = 0.0
    for s in range(S):
        z_final += alpha[T - 1, s] * p_final[s]
    if not z_final >= _MIN_SCALE:
        return False, -np.inf, gamma, arc_counts, final_counts
    log_z += np.log(z_final)
    beta = np.empty(S)
    weighted = np.empty(S)  # frame_prob[t, pdf] * beta[t] / scale[t] of the frame after
    for s in range(S):
        beta[s] = p_final[s] / z_final
        final_counts[s] = alpha[T - 1, s] * beta[s]
    for t in range(T - 1, -1, -1):
        total = 0.0
        for s in range(S):
            total += alpha[t, s] * beta[s]
        if not abs(total - 1.0) <= _SUM_TOLERANCE:
            return False, -np.inf, gamma, arc_counts, final_counts
        inv = 1.0 / total
        for s in range(S):
            gamma[t, pdf[s]] += alpha[t, s] * beta[s] * inv
        if t == 0:
            break
        inv = 1.0 / scale[t]
        for s in range(S):
            weighted[s] = frame_prob[t, pdf[s]] * beta[s] * inv
        xi_total = 0.0
        for a in range(A):
            xi_total += alpha[t - 1, src[a]] * p[a] * weighted[dst[a]]
        if not xi_total > 0.0:
            return False, -np.inf, gamma, arc_counts, final_counts
        inv_xi = 1.0 / xi_total
        for s in range(S):
            beta[s] = 0.0
        for a in range(A):
            arc_counts[a] += alpha[t - 1, src[a]] * p[a] * weighted[dst[a]] * inv_xi
            beta[src[a]] += p[a] * weighted[dst[a]]
    return True, log_z, gamma, arc_counts, final_counts


@njit(cache=True, nogil=True)  # nogil: training runs utterance batches on threads
def forward_backward_log(ll, pdf, src, dst, logp, init, final, n_pdf):
    """:func:`forward_backward` exactly in log space (per-frame linear sums, log-added below
    :data:`_LINEAR_RANGE`): never loses a finite term to underflow."""
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
    if T == 0:  # no frame, no path (frame 0 below would be read out of bounds)
        return -np.inf, np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
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
