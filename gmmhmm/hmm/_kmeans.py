"""Small k-means (k-means++ seeding, Lloyd iterations) for initial means."""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInputError


def _sq_dist(X: np.ndarray, centers: np.ndarray, x2: np.ndarray) -> np.ndarray:
    d = x2[:, None] - 2.0 * X @ centers.T + (centers ** 2).sum(axis=1)
    return np.maximum(d, 0.0)


def _plusplus(X: np.ndarray, k: int, rng: np.random.RandomState, x2: np.ndarray) -> np.ndarray:
    centers = np.empty((k, X.shape[1]))
    centers[0] = X[rng.randint(len(X))]
    closest = _sq_dist(X, centers[:1], x2)[:, 0]
    for i in range(1, k):
        total = closest.sum()
        idx = rng.randint(len(X)) if total <= 0 else int(
            np.searchsorted(np.cumsum(closest), rng.rand() * total))
        centers[i] = X[min(idx, len(X) - 1)]
        closest = np.minimum(closest, _sq_dist(X, centers[i:i + 1], x2)[:, 0])
    return centers


def kmeans(X: np.ndarray, n_clusters: int, rng: np.random.RandomState, n_init: int = 3,
           max_iter: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Cluster ``X``; returns (centers (k, D), labels (N,)) of the best of ``n_init`` runs."""
    if len(X) < n_clusters:
        raise InvalidInputError(
            f"need at least {n_clusters} samples to initialise {n_clusters} clusters, got {len(X)}")
    x2 = (X ** 2).sum(axis=1)
    best = (np.inf, None, None)
    for _ in range(n_init):
        centers = _plusplus(X, n_clusters, rng, x2)
        labels = None
        for _ in range(max_iter):
            d = _sq_dist(X, centers, x2)
            new = d.argmin(axis=1)
            if labels is not None and np.array_equal(new, labels):
                break
            labels = new
            counts = np.bincount(labels, minlength=n_clusters)
            sums = np.zeros_like(centers)
            np.add.at(sums, labels, X)
            nonempty = counts > 0
            centers[nonempty] = sums[nonempty] / counts[nonempty, None]
        inertia = d[np.arange(len(X)), labels].sum()
        if inertia < best[0]:
            best = (inertia, centers.copy(), labels.copy())
    return best[1], best[2]


def nearest(X: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Index of the nearest centre of every row."""
    return _sq_dist(X, centers, (X ** 2).sum(axis=1)).argmin(axis=1)


def cluster_covariances(X: np.ndarray, labels: np.ndarray, n_clusters: int, fallback: np.ndarray,
                        min_covar: float) -> np.ndarray:
    """Within-cluster covariances (k, D, D) plus ``min_covar``; ``fallback`` for tiny clusters.

    Initialising from the clusters rather than from the whole data keeps the
    states apart from the first E-step (the global covariance makes every
    state explain every frame about equally well).
    """
    D = X.shape[1]
    out = np.empty((n_clusters, D, D))
    for k in range(n_clusters):
        members = X[labels == k]
        if len(members) < D + 1:
            out[k] = fallback
        else:
            out[k] = np.atleast_2d(np.cov(members.T, bias=True)) + min_covar * np.eye(D)
    return out
