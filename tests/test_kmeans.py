"""k-means (the mixtures' and HMMs' initialisation): Lloyd's result, reproducible, as good as the optimum."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import gmmhmm
from gmmhmm.mixture._kmeans import assign, kmeans, kmeans_plusplus


def clustered(n, d, k, seed, spread=3.0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=spread, size=(k, d))
    return centers[rng.integers(k, size=n)] + rng.normal(size=(n, d))


def reference_lloyd(X, centers, w, max_iter=300, tol=1e-4):
    """Plain Lloyd with the whole distance matrix (no bounds, no blocks), same stopping rule."""
    shift_tol = tol * np.mean(np.var(X, axis=0))
    for _ in range(max_iter):
        labels = ((X[:, None, :] - centers[None]) ** 2).sum(axis=2).argmin(axis=1)
        counts = np.bincount(labels, weights=w, minlength=len(centers))
        assert np.all(counts > 0)  # the data here never empties a cluster
        new = np.stack([(w[labels == c, None] * X[labels == c]).sum(axis=0) / counts[c]
                        for c in range(len(centers))])
        shift = ((new - centers) ** 2).sum()
        centers = new
        if shift <= shift_tol:
            break
    return labels, centers


@pytest.mark.parametrize("weighted", [False, True])
def test_kmeans_is_lloyd_from_its_seeds(weighted):
    """Over several row blocks, with Hamerly's bounds skipping rows, the labels and centres
    are those of plain Lloyd from the same k-means++ seeds."""
    X = clustered(20_000, 5, 12, seed=3, spread=1.5)  # overlapping clusters: many rows move
    w = np.random.default_rng(4).uniform(0.2, 3.0, len(X)) if weighted else np.ones(len(X))
    seeds, _ = kmeans_plusplus(X, 12, np.random.RandomState(7), w)
    want_labels, want_centers = reference_lloyd(X, seeds, w)
    labels, centers = kmeans(X, 12, np.random.RandomState(7), w if weighted else None)
    np.testing.assert_array_equal(labels, want_labels)
    np.testing.assert_allclose(centers, want_centers, rtol=1e-10, atol=1e-12)


def test_kmeans_reproducible_and_thread_independent():
    X = clustered(30_000, 8, 16, seed=5)
    first = kmeans(X, 16, np.random.RandomState(0))
    previous = gmmhmm.set_num_threads(1)
    try:
        single = kmeans(X, 16, np.random.RandomState(0))
    finally:
        gmmhmm.set_num_threads(previous)
    again = kmeans(X, 16, np.random.RandomState(0))
    for other in (single, again):
        np.testing.assert_array_equal(other[0], first[0])
        np.testing.assert_array_equal(other[1], first[1])
    other_seed = kmeans(X, 16, np.random.RandomState(1))
    assert not np.array_equal(other_seed[1], first[1])


def test_kmeans_finds_the_brute_force_optimum_on_a_tiny_case():
    """12 points in 3 tight groups: the inertia equals the minimum over all 3**12 labelings."""
    rng = np.random.default_rng(2)
    X = np.repeat(np.array([[0.0, 0.0], [5.0, 1.0], [1.0, 6.0]]), 4, axis=0) + rng.normal(scale=0.6, size=(12, 2))
    labelings = np.array(list(itertools.product(range(3), repeat=12)))
    onehot = labelings[:, :, None] == np.arange(3)  # (L, 12, 3)
    counts = onehot.sum(axis=1)
    sums = np.einsum("lnc,nd->lcd", onehot, X)
    with np.errstate(invalid="ignore", divide="ignore"):
        between = np.nansum((sums**2).sum(axis=2) / counts, axis=1)
    best = (X**2).sum() - between.max()
    for seed in range(5):
        labels, centers = kmeans(X, 3, np.random.RandomState(seed))
        inertia = ((X - centers[labels]) ** 2).sum()
        assert inertia == pytest.approx(best, rel=1e-12)


def test_data_far_from_the_origin_are_clustered_as_near_it():
    """k-means is translation-invariant: 1e8 away from the origin the squared norms behind the
    distances are ~1e16, and distances expanded from them would be rounding noise."""
    X = clustered(3_000, 3, 5, seed=6)
    far = X + 1e8
    _, seeds = kmeans_plusplus(X, 5, np.random.RandomState(0))
    _, far_seeds = kmeans_plusplus(far, 5, np.random.RandomState(0))
    np.testing.assert_array_equal(far_seeds, seeds)
    labels, centers = kmeans(X, 5, np.random.RandomState(0))
    far_labels, far_centers = kmeans(far, 5, np.random.RandomState(0))
    np.testing.assert_array_equal(far_labels, labels)
    np.testing.assert_allclose(far_centers - 1e8, centers, atol=1e-6)
    _, dist = assign(X, centers)
    _, far_dist = assign(far, far_centers)
    np.testing.assert_allclose(far_dist, dist, rtol=1e-6, atol=1e-6)
