"""Initial state means and covariances from k-means clusters (the mixture layer's k-means)."""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInputError
from ..mixture._kmeans import assign
from ..mixture._kmeans import kmeans as _mixture_kmeans


N_INIT = 3  # k-means restarts for HMM initialisation


def data_covariance(X: np.ndarray, min_covar: float) -> np.ndarray:
    """Sample covariance of ``X`` plus ``min_covar`` on the diagonal, always (D, D)."""
    cv = np.atleast_2d(np.cov(X.T, bias=len(X) < 2))
    return cv + min_covar * np.eye(X.shape[1])


def kmeans(X: np.ndarray, n_clusters: int, rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    """Cluster ``X`` with the mixture layer's k-means; returns (centers (k, D), labels (N,)).
    The same rows in any order give the same centres."""
    if len(X) < n_clusters:
        raise InvalidInputError(
            f"need at least {n_clusters} samples to initialise {n_clusters} clusters, got {len(X)}")
    # Cluster the rows in lexicographic order, so the result does not depend on the
    # order of the sequences in X (hmmlearn issue 410: the model must not either).
    order = np.lexsort(X.T[::-1])
    rows = np.ascontiguousarray(X[order])
    # best of a few k-means++ restarts: the initial model, and so the trained one,
    # depends less on the luck of one seeding
    runs = [_mixture_kmeans(rows, n_clusters, rng) for _ in range(N_INIT)]
    sorted_labels, centers = min(runs, key=lambda run: assign(rows, run[1])[1].sum())
    labels = np.empty_like(sorted_labels)
    labels[order] = sorted_labels
    return centers, labels


def nearest(X: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Index of the nearest centre of every row."""
    return assign(X, centers)[0]


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
