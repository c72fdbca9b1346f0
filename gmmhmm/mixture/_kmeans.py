"""k-means++ seeding and Lloyd's k-means, used to initialise mixtures."""

from __future__ import annotations

import numpy as np
from numba import njit

from .. import _threads

_BLOCK_ROWS = 8192


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


@njit(cache=True, nogil=True)
def _cluster_sums(X, labels, w, k):
    """(weighted counts (k,), weighted sums (k, D)) of the rows of each cluster, one pass."""
    counts = np.zeros(k)
    sums = np.zeros((k, X.shape[1]))
    for t in range(X.shape[0]):
        c = labels[t]
        counts[c] += w[t]
        for j in range(X.shape[1]):
            sums[c, j] += w[t] * X[t, j]
    return counts, sums


@njit(cache=True, nogil=True)
def _candidate_distances(cx, x_sq, c_sq, closest, w, pot):
    """For candidate seeds: ``cx`` (T, rows) = candidates @ X.T becomes the distance to
    the nearest seed if candidate j joins (min of ``closest`` and the clipped squared
    distance, as :func:`_sq_dist_to`), and ``pot[j]`` its weighted sum, in one pass."""
    for j in range(cx.shape[0]):
        for t in range(cx.shape[1]):
            v = min(closest[t], max(x_sq[t] - 2.0 * cx[j, t] + c_sq[j], 0.0))
            cx[j, t] = v
            pot[j] += w[t] * v
    return cx


def _with_candidates(X, cand, x_sq, closest, w):
    """(distances to the nearest seed with each candidate added (T, N), their weighted sums (T,)),
    over row blocks on gmmhmm's threads, summed in block order. ``centers @ X.T`` is
    the GEMM orientation OpenBLAS runs fastest for few centres (about 1.4x ``X @ centers.T``)."""
    centers = X[cand]
    c_sq = (centers**2).sum(axis=1)
    starts = range(0, X.shape[0], _BLOCK_ROWS)

    def block(s: int):
        e = s + _BLOCK_ROWS
        pot = np.zeros(len(cand))
        return _candidate_distances(centers @ X[s:e].T, x_sq[s:e], c_sq, closest[s:e], w[s:e], pot), pot

    with _threads.compute() as n_threads:
        parts = list(_threads.map_ordered(block, starts, n_threads))
    return np.concatenate([d for d, _ in parts], axis=1), np.sum([p for _, p in parts], axis=0)


def kmeans_plusplus(X: np.ndarray, n_clusters: int, random_state: np.random.RandomState,
                    sample_weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-means++ seeds (Arthur & Vassilvitskii): returns (centers, row indices).

    Each new seed is the best of ``2 + log(k)`` candidates drawn with
    probability proportional to the (weighted) squared distance to the
    nearest seed so far.
    """
    n = X.shape[0]
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    x_sq = (X.astype(np.float64) ** 2).sum(axis=1)
    n_trials = 2 + int(np.log(n_clusters))
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
            d_cand, pot_cand = _with_candidates(X, cand, x_sq, closest, w)
            best = int(np.argmin(pot_cand))
            indices[c] = cand[best]
            closest = d_cand[best]
    return X[indices].copy(), indices


def assign(X: np.ndarray, centers: np.ndarray, x_sq: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centre of every row and its squared distance, in blocks of rows
    (the (N, C) distance matrix is never held whole)."""
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    x_sq = (X**2).sum(axis=1) if x_sq is None else x_sq
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
    with _threads.compute():  # small GEMMs: single-threaded BLAS, row blocks on gmmhmm's threads
        return _lloyd(np.asarray(X, dtype=np.float64), n_clusters, random_state, sample_weight, max_iter, tol)


def _lloyd(X64, n_clusters, random_state, sample_weight, max_iter, tol):
    n = X64.shape[0]
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    centers, _ = kmeans_plusplus(X64, n_clusters, random_state, w)
    x_sq = (X64**2).sum(axis=1)
    shift_tol = tol * np.mean(np.var(X64, axis=0))
    for _ in range(max_iter):
        labels, dist_min = assign(X64, centers, x_sq)
        counts, sums = _cluster_sums(X64, labels, w, n_clusters)
        new = centers.copy()
        full = counts > 0
        new[full] = sums[full] / counts[full, None]
        for c in np.flatnonzero(~full):
            far = int(np.argmax(dist_min * w))
            new[c] = X64[far]
            dist_min[far] = 0.0
            labels[far] = c
        shift = ((new - centers) ** 2).sum()
        centers = new
        if shift <= shift_tol and full.all():
            break
    return labels, centers
