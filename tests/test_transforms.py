"""Splicing, LDA and MLLT (gmmhmm.features.transforms) against closed forms and brute force."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from gmmhmm import load, save
from gmmhmm.errors import DimensionMismatchError, InvalidInputError, InvalidParameterError
from gmmhmm.features.transforms import (FeatureTransform, MlltAccumulator, MlltStats, accumulate_lda_stats,
                                        accumulate_mllt_stats, estimate_lda, estimate_mllt, mllt_auxiliary,
                                        splice_frames)
from gmmhmm.graphs import Lexicon, PhoneModelSet


# ---------------------------------------------------------------------------
# splicing and the transform object
# ---------------------------------------------------------------------------
def test_splice_hand_computed():
    X = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    out = splice_frames(X, left=1, right=2)
    assert out.shape == (3, 8)
    # rows: frames t-1, t, t+1, t+2 with the edge frames repeated
    np.testing.assert_array_equal(out[0], [1, 10, 1, 10, 2, 20, 3, 30])
    np.testing.assert_array_equal(out[1], [1, 10, 2, 20, 3, 30, 3, 30])
    np.testing.assert_array_equal(out[2], [2, 20, 3, 30, 3, 30, 3, 30])
    np.testing.assert_array_equal(splice_frames(X, 0, 0), X)
    one = splice_frames(X[:1], 4, 4)
    np.testing.assert_array_equal(one, np.tile(X[:1], (1, 9)))


def test_splice_rejects_bad_context():
    with pytest.raises(InvalidParameterError, match="left"):
        splice_frames(np.zeros((3, 2)), left=-1)
    with pytest.raises(InvalidInputError):
        splice_frames(np.zeros(3))


def test_transform_linear_and_affine():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(7, 3))
    M = rng.normal(size=(4, 9))
    t = FeatureTransform(M, 1, 1)
    assert (t.n_source_features, t.n_output_features, t.is_affine) == (3, 4, False)
    np.testing.assert_allclose(t.apply(X), splice_frames(X, 1, 1) @ M.T)
    b = rng.normal(size=4)
    ta = FeatureTransform(np.hstack([M, b[:, None]]), 1, 1)
    assert ta.is_affine and ta.n_source_features == 3
    np.testing.assert_allclose(ta.apply(X), splice_frames(X, 1, 1) @ M.T + b)
    A = rng.normal(size=(4, 4))
    np.testing.assert_allclose(ta.then(A).apply(X), ta.apply(X) @ A.T)
    with pytest.raises(DimensionMismatchError, match="takes 3"):
        t.apply(rng.normal(size=(7, 5)))
    with pytest.raises(InvalidParameterError, match="columns"):
        FeatureTransform(M, 1, 1, n_source_features=2)
    with pytest.raises(InvalidParameterError):
        t.then(np.eye(3))


def test_transform_stored_with_phone_models(tmp_path):
    rng = np.random.default_rng(1)
    lex = Lexicon({"ab": ["A", "B"]})
    m = PhoneModelSet(lex.phones, 3, 1, lex.to_text(), {"delta_order": 0})
    m.init_flat(np.zeros(2), np.ones(2), np.full(2, 0.01))
    m.feature_transform_ = FeatureTransform(rng.normal(size=(2, 15)), 2, 2)
    save(m, tmp_path / "m.npz")
    back = load(tmp_path / "m.npz")
    assert isinstance(back.feature_transform_, FeatureTransform)
    np.testing.assert_array_equal(back.feature_transform_.matrix, m.feature_transform_.matrix)
    X = rng.normal(size=(6, 3))
    np.testing.assert_array_equal(back.transform_features(X), m.transform_features(X))
    # a model without a transform stores None and passes features through
    m.feature_transform_ = None
    save(m, tmp_path / "plain.npz")
    plain = load(tmp_path / "plain.npz")
    assert plain.feature_transform_ is None and plain.transform_features(X) is X


def test_model_with_mismatched_transform_is_not_written(tmp_path):
    from gmmhmm.errors import ModelFileError

    lex = Lexicon({"ab": ["A", "B"]})
    m = PhoneModelSet(lex.phones, 3, 1, lex.to_text())
    m.init_flat(np.zeros(2), np.ones(2), np.full(2, 0.01))
    m.feature_transform_ = FeatureTransform(np.ones((3, 3)), 0, 0)  # 3 outputs for a 2-feature model
    with pytest.raises(ModelFileError, match="feature_transform_"):  # save loads the file back to check it
        save(m, tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


# ---------------------------------------------------------------------------
# LDA
# ---------------------------------------------------------------------------
def labelled_data(seed=0, n_classes=5, D=6, n=400):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(n_classes, D))
    mix = rng.normal(size=(D, D))
    labels = rng.integers(0, n_classes, size=n)
    X = centres[labels] + rng.normal(size=(n, D)) @ mix
    return X, labels, np.eye(n_classes)[labels]


def brute_force_scatter(X, labels):
    mean = X.mean(0)
    B = sum(np.sum(labels == c) * np.outer(X[labels == c].mean(0) - mean, X[labels == c].mean(0) - mean)
            for c in np.unique(labels)) / len(X)
    W = sum((X[labels == c] - X[labels == c].mean(0)).T @ (X[labels == c] - X[labels == c].mean(0))
            for c in np.unique(labels)) / len(X)
    return B, W


def test_lda_equals_scipy_generalised_eigenproblem():
    X, labels, onehot = labelled_data()
    M = estimate_lda(accumulate_lda_stats(X, onehot), dim=3)
    B, W = brute_force_scatter(X, labels)
    values, vectors = linalg.eigh(B, W)
    expected = vectors[:, ::-1][:, :3].T
    for row, ref in zip(M, expected):  # same directions, up to sign
        assert abs(row @ ref) == pytest.approx(np.linalg.norm(row) * np.linalg.norm(ref), rel=1e-8)
    np.testing.assert_allclose(M @ W @ M.T, np.eye(3), atol=1e-9)  # within-class scatter becomes identity
    np.testing.assert_allclose(M @ B @ M.T, np.diag(values[::-1][:3]), atol=1e-9)


def test_lda_stats_are_additive_and_soft_labels_weigh():
    X, _, onehot = labelled_data(seed=1)
    whole = accumulate_lda_stats(X, onehot)
    parts = accumulate_lda_stats(X[:150], onehot[:150]) + accumulate_lda_stats(X[150:], onehot[150:])
    for name in ("n", "s1", "s2"):
        np.testing.assert_allclose(getattr(parts, name), getattr(whole, name))
    np.testing.assert_allclose(estimate_lda(parts, 2), estimate_lda(whole, 2))
    # a frame with weight 0 (e.g. silence) contributes nothing
    weighted = accumulate_lda_stats(X, onehot * (np.arange(len(X)) % 2)[:, None])
    np.testing.assert_allclose(weighted.s2, accumulate_lda_stats(X[1::2], onehot[1::2]).s2)


def test_lda_offset_centres_the_projection():
    X, _, onehot = labelled_data(seed=2)
    M = estimate_lda(accumulate_lda_stats(X, onehot), 2, remove_offset=True)
    assert M.shape == (2, 7)
    np.testing.assert_allclose((X @ M[:, :-1].T + M[:, -1]).mean(0), 0.0, atol=1e-9)


def test_lda_bad_input():
    X, _, onehot = labelled_data()
    stats = accumulate_lda_stats(X, onehot)
    with pytest.raises(InvalidParameterError, match="exceeds"):
        estimate_lda(stats, 7)
    with pytest.raises(InvalidInputError, match="singular"):
        estimate_lda(accumulate_lda_stats(np.hstack([X, X[:, :1]]), onehot), 2)  # a duplicated column
    with pytest.raises(InvalidInputError, match="no frames"):
        estimate_lda(accumulate_lda_stats(X, 0 * onehot), 2)


# ---------------------------------------------------------------------------
# MLLT
# ---------------------------------------------------------------------------
def diag_model_data(rotation, seed=0, K=6, n=3000):
    """Frames of K Gaussians, diagonal in z-space, observed as x = rotation^-1 z (rotation=None: x = z)."""
    rng = np.random.default_rng(seed)
    D = 4
    means = rng.normal(scale=2.0, size=(K, D))
    stds = rng.uniform(0.3, 2.0, size=(K, D))  # each dimension's variance differs between Gaussians
    labels = rng.integers(0, K, size=n)
    Z = means[labels] + stds[labels] * rng.normal(size=(n, D))
    X = Z if rotation is None else Z @ np.linalg.inv(rotation).T
    return X, np.eye(K)[labels]


def diag_fit(X, resp):
    n = resp.sum(0)
    mu = resp.T @ X / n[:, None]
    var = resp.T @ X**2 / n[:, None] - mu**2
    return mu, var


def diag_log_likelihood(X, resp, mu, var):
    ll = -0.5 * (np.log(2 * np.pi * var)[None] + (X[:, None, :] - mu[None]) ** 2 / var[None]).sum(-1)
    return float((resp * ll).sum())


def test_mllt_stats_brute_force_and_additive():
    X, resp = diag_model_data(None, n=200)
    rng = np.random.default_rng(3)
    resp = resp * rng.uniform(0.2, 1.0, size=resp.shape)  # soft weights
    mu, var = rng.normal(size=(6, 4)), rng.uniform(0.5, 2.0, size=(6, 4))
    stats = accumulate_mllt_stats(X, resp, mu, var)
    G = np.zeros((4, 4, 4))
    for t in range(len(X)):
        for m in range(6):
            d = X[t] - mu[m]
            G += resp[t, m] * np.outer(d, d)[None] / var[m][:, None, None]
    np.testing.assert_allclose(stats.G, G, rtol=1e-10, atol=1e-10)
    assert stats.count == pytest.approx(resp.sum())
    parts = accumulate_mllt_stats(X[:80], resp[:80], mu, var) + accumulate_mllt_stats(X[80:], resp[80:], mu, var)
    np.testing.assert_allclose(parts.G, stats.G, rtol=1e-9, atol=1e-9)
    assert sum([accumulate_mllt_stats(X[:80], resp[:80], mu, var)]).count == pytest.approx(resp[:80].sum())
    acc = MlltAccumulator(mu, var)
    for start in range(0, len(X), 30):  # blocks: per-frame terms per block, mean terms once
        acc.add(X[start:start + 30], resp[start:start + 30])
    blocks = acc.stats()
    np.testing.assert_allclose(blocks.G, G, rtol=1e-10, atol=1e-10)
    assert blocks.count == pytest.approx(resp.sum(), rel=1e-12)
    with pytest.raises(InvalidInputError, match="posteriors"):
        acc.add(X[:5], resp[:4])
    # blocks that name their Gaussians (an utterance's) add as the same blocks with zeros elsewhere
    some, dense = MlltAccumulator(mu, var), MlltAccumulator(mu, var)
    for start, comps in ((0, [1, 4]), (70, [0, 2, 3, 5]), (140, [5])):
        part = np.zeros_like(resp[start:start + 70])
        part[:, comps] = resp[start:start + 70, comps]
        some.add(X[start:start + 70], part[:, comps], np.array(comps))
        dense.add(X[start:start + 70], part)
    np.testing.assert_allclose(some.stats().G, dense.stats().G, rtol=1e-10, atol=1e-10)
    assert some.stats().count == pytest.approx(dense.stats().count, rel=1e-12)
    with pytest.raises(InvalidInputError, match="posteriors"):
        acc.add(X[:5], resp[:5, :2], np.array([3, 3]))


def test_mllt_and_lda_stats_ignore_frames_of_zero_posterior():
    """LDA+MLLT feeds the trainer's batches, where an utterance with no path through its graph keeps
    its frames at zero posterior; a huge finite value there (its square overflows) made inf * 0 = NaN
    in every G_i. Frames of zero posterior add nothing, as in the Gaussian statistics."""
    X, resp = diag_model_data(None, n=60)
    rng = np.random.default_rng(4)
    mu, var = rng.normal(size=(6, 4)), rng.uniform(0.5, 2.0, size=(6, 4))
    bad_X = np.vstack([X, np.full((2, 4), 1e160)])
    bad_resp = np.vstack([resp, np.zeros((2, 6))])
    with np.errstate(invalid="raise", over="ignore"):
        bad = MlltAccumulator(mu, var).add(bad_X, bad_resp).stats()
        lda = accumulate_lda_stats(bad_X, bad_resp)
    np.testing.assert_allclose(bad.G, MlltAccumulator(mu, var).add(X, resp).stats().G, rtol=1e-12)
    np.testing.assert_allclose(lda.s2, accumulate_lda_stats(X, resp).s2, rtol=1e-12)


def test_mllt_auxiliary_never_decreases():
    R = np.random.default_rng(5).normal(size=(4, 4))
    X, resp = diag_model_data(R, seed=1)
    mu, var = diag_fit(X, resp)
    stats = accumulate_mllt_stats(X, resp, mu, var)
    A, aux = np.eye(4), [mllt_auxiliary(stats, np.eye(4))]
    for _ in range(8):
        A = estimate_mllt(stats, n_iters=1, initial=A)
        aux.append(mllt_auxiliary(stats, A))
    assert all(b >= a - 1e-8 * abs(a) for a, b in zip(aux, aux[1:]))
    assert aux[-1] > aux[0] + 1.0


def test_mllt_recovers_a_known_rotation_and_raises_the_likelihood():
    rng = np.random.default_rng(7)
    R = rng.normal(size=(4, 4))  # z = R x is the space where every Gaussian is diagonal
    X, resp = diag_model_data(R, seed=2, n=6000)
    mu, var = diag_fit(X, resp)
    before = diag_log_likelihood(X, resp, mu, var)
    A = np.eye(4)
    for _ in range(20):  # semi-tied EM with known assignments: transform, then diagonal Gaussians in its space
        Y = X @ A.T
        mu, var = diag_fit(Y, resp)
        A = estimate_mllt(accumulate_mllt_stats(Y, resp, mu, var), 5) @ A
    Y = X @ A.T
    mu, var = diag_fit(Y, resp)
    after = diag_log_likelihood(Y, resp, mu, var) + len(X) * np.linalg.slogdet(A)[1]
    assert after > before + 0.05 * len(X)
    # A R^-1 maps the diagonal space to A's: a scaled signed permutation
    P = A @ np.linalg.inv(R)
    P = P / np.abs(P).max(axis=1, keepdims=True)
    assert sorted(np.abs(P).argmax(axis=1)) == [0, 1, 2, 3]
    assert np.sort(np.abs(P), axis=1)[:, -2].max() < 0.05


def test_mllt_is_identity_for_axis_aligned_data():
    # exactly diagonal statistics whose variances are the model's: the identity is the optimum
    beta = 100.0
    G = np.stack([np.diag(np.where(np.arange(3) == i, beta, beta * (1.0 + i + np.arange(3)))) for i in range(3)])
    np.testing.assert_allclose(estimate_mllt(MlltStats(G, beta), 5), np.eye(3), atol=1e-12)
    # sampled axis-aligned data: close to the identity
    X, resp = diag_model_data(None, seed=3, n=20000)
    mu, var = diag_fit(X, resp)
    A = estimate_mllt(accumulate_mllt_stats(X, resp, mu, var), 10)
    np.testing.assert_allclose(A, np.eye(4), atol=0.03)


def test_mllt_bad_input():
    with pytest.raises(InvalidInputError, match="no frames"):
        estimate_mllt(MlltStats.zeros(3))
    X, resp = diag_model_data(None, n=50)
    with pytest.raises(InvalidInputError, match="positive variances"):
        accumulate_mllt_stats(X, resp, np.zeros((6, 4)), np.zeros((6, 4)))
    with pytest.raises(InvalidInputError):
        accumulate_mllt_stats(X, resp[:, :3], np.zeros((6, 4)), np.ones((6, 4)))
    with pytest.raises(InvalidInputError, match="cannot add"):
        MlltStats.zeros(3) + MlltStats.zeros(4)


@pytest.mark.parametrize("value", [0.1, 7.7, 1e-9])
def test_mllt_refuses_a_constant_dimension_rather_than_nan(value):
    """A dimension every frame shares sits at every mean: G_i is singular only up to rounding, the
    auxiliary function has no maximum (scaling that dimension up is free), so the estimate is refused
    as for an exactly singular G_i, not returned as NaN or a determinant of e^16."""
    rng = np.random.default_rng(0)
    X, post = rng.normal(size=(300, 5)), rng.dirichlet(np.ones(4), 300)
    X[:, 2] = value
    n = post.sum(0)
    mu = post.T @ X / n[:, None]
    var = np.maximum(post.T @ X**2 / n[:, None] - mu**2, 1e-3)
    with pytest.raises(InvalidInputError, match="singular"):
        estimate_mllt(accumulate_mllt_stats(X, post, mu, var), 3)


@pytest.mark.parametrize("initial", [np.zeros((3, 3)), np.full((3, 3), np.nan)])
def test_mllt_refuses_a_singular_or_nan_initial_transform(initial):
    """Not numpy's LinAlgError, nor a NaN transform returned as the estimate."""
    with pytest.raises(InvalidParameterError, match="initial MLLT"):
        estimate_mllt(MlltStats(np.stack([np.eye(3)] * 3), 10.0), 2, initial)
