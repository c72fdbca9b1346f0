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


@njit(cache=True)
def forward(ll, pdf, src, dst, logp, init):
    """Log forward variables alpha (T, S)."""
    T = ll.shape[0]
    S = pdf.shape[0]
    alpha = np.full((T, S), -np.inf)
    for s in range(S):
        alpha[0, s] = init[s] + ll[0, pdf[s]]
    for t in range(1, T):
        for a in range(src.shape[0]):
            v = alpha[t - 1, src[a]] + logp[a]
            alpha[t, dst[a]] = _logaddexp(alpha[t, dst[a]], v)
        for s in range(S):
            alpha[t, s] += ll[t, pdf[s]]
    return alpha


@njit(cache=True)
def backward(ll, pdf, src, dst, logp, final):
    """Log backward variables beta (T, S)."""
    T = ll.shape[0]
    S = pdf.shape[0]
    beta = np.full((T, S), -np.inf)
    for s in range(S):
        beta[T - 1, s] = final[s]
    for t in range(T - 2, -1, -1):
        for a in range(src.shape[0]):
            v = logp[a] + ll[t + 1, pdf[dst[a]]] + beta[t + 1, dst[a]]
            beta[t, src[a]] = _logaddexp(beta[t, src[a]], v)
    return beta


@njit(cache=True, nogil=True)  # nogil: training runs utterance batches on threads
def forward_backward(ll, pdf, src, dst, logp, init, final, n_pdf):
    """Total log-likelihood, per-pdf occupancies (T, n_pdf), arc counts (A,), final counts (S,).

    Occupancies of graph states sharing a pdf are summed, which is what
    the Gaussian statistics need.
    """
    T = ll.shape[0]
    S = pdf.shape[0]
    alpha = forward(ll, pdf, src, dst, logp, init)
    beta = backward(ll, pdf, src, dst, logp, final)
    log_z = -np.inf
    for s in range(S):
        log_z = _logaddexp(log_z, alpha[T - 1, s] + final[s])
    gamma = np.zeros((T, n_pdf))
    arc_counts = np.zeros(src.shape[0])
    final_counts = np.zeros(S)
    if log_z == -np.inf:
        return log_z, gamma, arc_counts, final_counts
    # Each frame is normalised by its own total rather than by log_z: over
    # very long sequences alpha + beta drifts from log_z by rounding, and
    # per-frame normalisation keeps occupancies summing to one exactly.
    for t in range(T):
        z = -np.inf
        for s in range(S):
            z = _logaddexp(z, alpha[t, s] + beta[t, s])
        for s in range(S):
            v = alpha[t, s] + beta[t, s] - z
            if v > -700.0:
                gamma[t, pdf[s]] += np.exp(v)
    xi = np.empty(src.shape[0])
    for t in range(1, T):
        z = -np.inf
        for a in range(src.shape[0]):
            xi[a] = alpha[t - 1, src[a]] + logp[a] + ll[t, pdf[dst[a]]] + beta[t, dst[a]]
            z = _logaddexp(z, xi[a])
        for a in range(src.shape[0]):
            v = xi[a] - z
            if v > -700.0:
                arc_counts[a] += np.exp(v)
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
