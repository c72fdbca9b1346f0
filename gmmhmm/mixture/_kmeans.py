"""k-means++ seeding and Lloyd's k-means, used to initialise mixtures."""

from __future__ import annotations

import numpy as np
from numba import njit

from .. import _threads

_BLOCK_ROWS = 8192


def _centred(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows minus their mean in float64, the mean). Distances are expanded as
    ``|x|^2 - 2 x.c + |c|^2``: about the origin, data far from it (1e8 away: squared
    norms ~1e16) would leave only rounding noise of distances of order one."""
    mean = X.mean(axis=0, dtype=np.float64)
    return np.subtract(X, mean, dtype=np.float64), mean


def _row_sq_norms(X: np.ndarray) -> np.ndarray:
    """Squared norm of every row, in float64, without a temporary copy of ``X``."""
    return np.einsum("ij,ij->i", X, X, dtype=np.float64)


def _sq_dist_to(X: np.ndarray, centers: np.ndarray, x_sq: np.ndarray) -> np.ndarray:
    """Squared distances (N, C), clipped at 0 (the GEMM expansion can go slightly negative)."""
    d = x_sq[:, None] - 2.0 * (X @ centers.T) + (centers**2).sum(axis=1)[None, :]
    return np.maximum(d, 0.0, out=d)


@njit(cache=True, nogil=True)
def _nearest(cx, x_sq, c_sq, labels, dist_min):
    """Nearest centre of each row from ``cx = centers @ X.T`` (C, rows): the squared
    distance ``x_sq - 2 cx + c_sq`` clipped at 0 (as :func:`_sq_dist_to`), the first
    of equal minima, in one pass over the centres (vectorised along the rows)."""
    dist_min[:] = np.inf
    labels[:] = 0
    for j in range(cx.shape[0]):
        for t in range(cx.shape[1]):
            v = max(x_sq[t] - 2.0 * cx[j, t] + c_sq[j], 0.0)
            better = v < dist_min[t]  # selects, not branches: the loop vectorises
            dist_min[t] = v if better else dist_min[t]
            labels[t] = j if better else labels[t]


# reassociation lets LLVM vectorise the weighted sums (no NaN or infinity reaches them)
_SUM_MATH = {"reassoc", "nsz", "arcp", "contract"}


@njit(cache=True, nogil=True, fastmath=_SUM_MATH)
def _candidate_distances(cx, x_sq, c_sq, closest, w, out, pot):
    """For candidate seeds: from ``cx`` (T, rows) = candidates @ X.T, ``out`` (T, rows) :=
    the distance to the nearest seed if candidate j joins (min of ``closest`` and the
    clipped squared distance, as :func:`_sq_dist_to`) and ``pot[j]`` its weighted sum."""
    for j in range(cx.shape[0]):
        total = 0.0
        for t in range(cx.shape[1]):
            v = min(closest[t], max(x_sq[t] - 2.0 * cx[j, t] + c_sq[j], 0.0))
            out[j, t] = v
            total += w[t] * v
        pot[j] = total


def _with_candidates(X, cand, x_sq, closest, w, out):
    """Distances to the nearest seed with each candidate added, into ``out`` (T, N), and
    their weighted sums (T,), over row blocks on gmmhmm's threads, summed in block
    order. ``centers @ X.T`` is the GEMM orientation OpenBLAS runs fastest for few
    centres (about 1.4x ``X @ centers.T``)."""
    centers = X[cand]
    c_sq = (centers**2).sum(axis=1)
    starts = range(0, X.shape[0], _BLOCK_ROWS)

    def block(s: int):
        e = s + _BLOCK_ROWS
        pot = np.empty(len(cand))
        _candidate_distances(centers @ X[s:e].T, x_sq[s:e], c_sq, closest[s:e], w[s:e], out[:, s:e], pot)
        return pot

    with _threads.compute() as n_threads:
        return np.sum(list(_threads.map_ordered(block, starts, n_threads)), axis=0)


def kmeans_plusplus(X: np.ndarray, n_clusters: int, random_state: np.random.RandomState,
                    sample_weight: np.ndarray | None = None, x_sq: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-means++ seeds (Arthur & Vassilvitskii): returns (centers, row indices).

    Each new seed is the best of ``2 + log(k)`` candidates drawn with
    probability proportional to the (weighted) squared distance to the
    nearest seed so far. ``x_sq``: the rows' squared norms, when the caller
    has them (of rows it has centred); otherwise the distances are taken about
    the rows' mean (see :func:`_centred`).
    """
    n = X.shape[0]
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    rows = X
    if x_sq is None:
        X = _centred(X)[0]
        x_sq = _row_sq_norms(X)
    n_trials = 2 + int(np.log(n_clusters))
    d_cand = np.empty((n_trials, n))
    indices = np.empty(n_clusters, dtype=np.int64)
    indices[0] = random_state.choice(n, p=w / w.sum())
    closest = _sq_dist_to(X, X[indices[:1]], x_sq)[:, 0]
    for c in range(1, n_clusters):
        pot = closest * w
        total = pot.sum()
        if total <= 0:  # fewer distinct points than clusters: take any unused rows
            unused = np.setdiff1d(np.arange(n), indices[:c])
            indices[c] = random_state.choice(unused)
            closest = np.minimum(closest, _sq_dist_to(X, X[indices[c:c + 1]], x_sq)[:, 0])
        else:
            cand = np.searchsorted(np.cumsum(pot), random_state.uniform(size=n_trials) * total)
            cand = np.minimum(cand, n - 1)
            pot_cand = _with_candidates(X, cand, x_sq, closest, w, d_cand)
            best = int(np.argmin(pot_cand))
            indices[c] = cand[best]
            closest[:] = d_cand[best]
    return rows[indices].copy(), indices


def assign(X: np.ndarray, centers: np.ndarray, x_sq: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centre of every row and its squared distance, in blocks of rows
    (the (N, C) distance matrix is never held whole). ``x_sq``: the rows' squared
    norms, when the caller has them (rows and centres taken as they are); otherwise
    both are taken about the rows' mean (see :func:`_centred`)."""
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    if x_sq is None:
        X, mean = _centred(X)
        centers = centers - mean
        x_sq = _row_sq_norms(X)
    labels = np.empty(n, dtype=np.int64)
    dist_min = np.empty(n)

    c_sq = (centers**2).sum(axis=1)

    def block(s: int) -> None:
        e = s + _BLOCK_ROWS
        _nearest(centers @ X[s:e].T, x_sq[s:e], c_sq, labels[s:e], dist_min[s:e])  # fastest orientation

    with _threads.compute() as n_threads:  # blocks on gmmhmm's threads, BLAS single-threaded
        for _ in _threads.map_ordered(block, range(0, n, _BLOCK_ROWS), n_threads):
            pass
    return labels, dist_min


def kmeans(X: np.ndarray, n_clusters: int, random_state: np.random.RandomState,
           sample_weight: np.ndarray | None = None, max_iter: int = 300, tol: float = 1e-4
           ) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's algorithm from k-means++ seeds; returns (labels (N,), centers (k, D)).

    An emptied cluster is re-seeded at the point farthest from its centre so
    every cluster owns data; the labels returned are those of the last
    assignment step (so no cluster is empty) and the centres their means.
    ``tol`` is relative to the mean feature variance, as in scikit-learn.
    """
    X64, mean = _centred(X)
    with _threads.compute():  # small GEMMs: single-threaded BLAS, row blocks on gmmhmm's threads
        labels, centers = _lloyd(X64, n_clusters, random_state, sample_weight, max_iter, tol)
    return labels, centers + mean


@njit(cache=True, nogil=True, fastmath=_SUM_MATH)
def _rows_to_check(X, centers, half_gap, shift, labels, upper, lower, todo):
    """Hamerly's bounds for a block of rows: which rows may have changed centre.

    ``upper[t]`` bounds the distance from row t to its centre ``labels[t]``
    from above, ``lower[t]`` the distance to any other centre from below.
    After the centres move by ``shift`` both loosen by the moves (triangle
    inequality); a row whose upper bound stays below its lower bound, or
    below half the gap from its centre to the nearest other (``half_gap``),
    keeps its centre with no distance computed; for the others the upper
    bound is tightened to the exact distance and tested again. Writes the
    rows left into ``todo`` and returns their number.
    """
    n, d = X.shape
    k = centers.shape[0]
    top, second_top, top_at = 0.0, 0.0, -1  # the two largest moves: a row's lower bound
    for c in range(k):                      # loosens by the largest move of a centre not its own
        if shift[c] > top:
            second_top, top, top_at = top, shift[c], c
        elif shift[c] > second_top:
            second_top = shift[c]
    m = 0
    for t in range(n):
        a = labels[t]
        upper[t] += shift[a]
        lower[t] -= second_top if a == top_at else top
        bound = max(lower[t], half_gap[a])
        if upper[t] > bound:
            dist = 0.0
            for j in range(d):
                diff = X[t, j] - centers[a, j]
                dist += diff * diff
            upper[t] = np.sqrt(dist)
            if upper[t] > bound:
                todo[m] = t
                m += 1
    return m


@njit(cache=True, nogil=True, fastmath=_SUM_MATH)
def _reassign_and_sum(X, w, cx, x_sq, c_sq, todo, labels, upper, lower, k):
    """Rows ``todo`` (``cx`` (k, len(todo)) = centers @ X[todo].T) take their nearest centre
    (the first of equal minima; squared distances as :func:`_sq_dist_to`) with fresh bounds
    (distances to the nearest and the second nearest); then the block's weighted
    (counts (k,), sums (k, D)) under the labels."""
    m = len(todo)
    best = np.full(m, np.inf)
    runner_up = np.full(m, np.inf)
    best_at = np.zeros(m, dtype=np.int64)
    xs = np.empty(m)
    for i in range(m):
        xs[i] = x_sq[todo[i]]
    for c in range(k):  # along the rows, by selects: the loop vectorises
        for i in range(m):
            v = max(xs[i] - 2.0 * cx[c, i] + c_sq[c], 0.0)
            better = v < best[i]
            runner_up[i] = min(runner_up[i], max(best[i], v))
            best_at[i] = c if better else best_at[i]
            best[i] = v if better else best[i]
    for i in range(m):
        t = todo[i]
        labels[t] = best_at[i]
        upper[t] = np.sqrt(best[i])
        lower[t] = np.sqrt(runner_up[i])
    d = X.shape[1]
    counts = np.zeros(k)
    sums = np.zeros((k, d))
    for t in range(X.shape[0]):
        a = labels[t]
        counts[a] += w[t]
        for j in range(d):
            sums[a, j] += w[t] * X[t, j]
    return counts, sums


def _lloyd_step(X, w, x_sq, centers, shift, labels, upper, lower, exact):
    """One Lloyd assignment with Hamerly's bounds (``exact``: none yet, every row is
    computed) over row blocks on gmmhmm's threads; returns the (counts, sums) of the
    new clusters, added in block order. The rows whose bounds fail get their distances
    to all centres from one GEMM, as in :func:`assign`; in late iterations, when few
    rows lie near a boundary, a pass costs a fraction of a full one."""
    k = len(centers)
    c_sq = (centers**2).sum(axis=1)
    gaps = c_sq[:, None] - 2.0 * centers @ centers.T + c_sq[None, :]
    np.fill_diagonal(gaps, np.inf)
    half_gap = 0.5 * np.sqrt(np.maximum(gaps.min(axis=1), 0.0)) if k > 1 else np.full(1, np.inf)

    def block(s: int):
        e = min(s + _BLOCK_ROWS, X.shape[0])
        xb, lab, up, lo = X[s:e], labels[s:e], upper[s:e], lower[s:e]
        if exact:
            todo = np.arange(e - s)
            rows = xb
        else:
            todo = np.empty(e - s, dtype=np.int64)
            todo = todo[:_rows_to_check(xb, centers, half_gap, shift, lab, up, lo, todo)]
            rows = xb[todo]
        return _reassign_and_sum(xb, w[s:e], centers @ rows.T, x_sq[s:e], c_sq, todo, lab, up, lo, k)

    with _threads.compute() as n_threads:
        parts = list(_threads.map_ordered(block, range(0, X.shape[0], _BLOCK_ROWS), n_threads))
    return np.sum([c for c, _ in parts], axis=0), np.sum([s for _, s in parts], axis=0)


def _lloyd(X64, n_clusters, random_state, sample_weight, max_iter, tol):
    n = X64.shape[0]
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    x_sq = _row_sq_norms(X64)
    centers, _ = kmeans_plusplus(X64, n_clusters, random_state, w, x_sq)
    shift_tol = tol * np.mean(np.var(X64, axis=0))
    labels = np.zeros(n, dtype=np.int64)
    upper, lower = np.empty(n), np.empty(n)
    moves = np.zeros(n_clusters)
    exact = True
    for _ in range(max_iter):
        counts, sums = _lloyd_step(X64, w, x_sq, centers, moves, labels, upper, lower, exact)
        exact = False
        new = centers.copy()
        full = counts > 0
        new[full] = sums[full] / counts[full, None]
        if not full.all():
            dist_min = ((X64 - centers[labels]) ** 2).sum(axis=1)
            for c in np.flatnonzero(~full):
                far = int(np.argmax(dist_min * w))
                new[c] = X64[far]
                dist_min[far] = 0.0
                labels[far] = c
            exact = True  # the bounds no longer hold for the moved rows
        moves = np.sqrt(((new - centers) ** 2).sum(axis=1))
        shift = float((moves**2).sum())
        centers = new
        if shift <= shift_tol and full.all():
            break
    return labels, centers
