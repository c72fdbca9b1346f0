"""fMLLR / CMLLR statistics and estimation against closed forms and brute force."""

import numpy as np
import pytest
from scipy.stats import norm

from gmmhmm.adapt import (FmllrStats, accumulate_fmllr_stats, apply_fmllr, estimate_fmllr, fmllr_auxf,
                          identity_transform)
from gmmhmm.errors import InvalidInputError, InvalidParameterError


def exact_gmm_data(rng, n_components=4, n_features=5, n_per=150):
    """Frames whose per-component sample mean and (full) sample covariance are exactly the
    component's mean and diagonal variance: W = identity is then the exact fMLLR optimum."""
    means = 3.0 * rng.randn(n_components, n_features)
    variances = rng.uniform(0.5, 2.0, (n_components, n_features))
    blocks = []
    for k in range(n_components):
        z = rng.randn(n_per, n_features)
        z -= z.mean(0)
        z = z @ np.linalg.inv(np.linalg.cholesky(z.T @ z / n_per)).T  # sample covariance exactly I
        blocks.append(means[k] + z * np.sqrt(variances[k]))
    labels = np.repeat(np.arange(n_components), n_per)
    return np.vstack(blocks), np.eye(n_components)[labels], means, variances


def random_affine(rng, D, scale=0.5):
    return np.eye(D) + scale * rng.randn(D, D), rng.randn(D)


def test_recovers_inverse_of_known_affine_map():
    """Data from a known GMM (exact moments) seen through x = C y + d: fMLLR with the true
    posteriors is exactly the inverse map, A = C^-1, b = -C^-1 d (the problem is equivariant)."""
    rng = np.random.RandomState(0)
    Y, gamma, means, variances = exact_gmm_data(rng)
    C, d = random_affine(rng, Y.shape[1])
    X = Y @ C.T + d
    W = estimate_fmllr(accumulate_fmllr_stats(X, gamma, means, variances), n_iters=300, tol=None)
    C_inv = np.linalg.inv(C)
    np.testing.assert_allclose(W[:, :-1], C_inv, atol=1e-7)
    np.testing.assert_allclose(W[:, -1], -C_inv @ d, atol=1e-7)
    np.testing.assert_allclose(apply_fmllr(W, X), Y, atol=1e-6)


def test_identity_when_data_already_match():
    rng = np.random.RandomState(1)
    Y, gamma, means, variances = exact_gmm_data(rng)
    W = estimate_fmllr(accumulate_fmllr_stats(Y, gamma, means, variances))
    np.testing.assert_allclose(W, identity_transform(Y.shape[1]), atol=1e-10)


def test_single_gaussian_stationarity_closed_form():
    """One Gaussian N(mu, Sigma): the optimum satisfies A S A^T = Sigma and b = mu - A xbar
    (S, xbar the sample covariance and mean; A is unique only up to a rotation)."""
    rng = np.random.RandomState(2)
    D = 4
    X = rng.randn(500, D) @ rng.randn(D, D) + rng.randn(D)
    mu, var = rng.randn(1, D), rng.uniform(0.5, 3.0, (1, D))
    W = estimate_fmllr(accumulate_fmllr_stats(X, np.ones((len(X), 1)), mu, var), n_iters=400, tol=None)
    A, b = W[:, :-1], W[:, -1]
    S = np.cov(X.T, bias=True)
    np.testing.assert_allclose(A @ S @ A.T, np.diag(var[0]), atol=1e-7)
    np.testing.assert_allclose(b, mu[0] - A @ X.mean(0), atol=1e-7)


def test_statistics_match_brute_force_and_add():
    rng = np.random.RandomState(3)
    T, K, D = 60, 7, 3
    X = rng.randn(T, D)
    gamma = rng.dirichlet(np.ones(K), T) * rng.uniform(0.2, 1.0, (T, 1))
    means, variances = rng.randn(K, D), rng.uniform(0.3, 2.0, (K, D))
    st = accumulate_fmllr_stats(X, gamma, means, variances, block_frames=7)
    xi = np.hstack([X, np.ones((T, 1))])
    G = np.einsum("tm,mi,tj,tk->ijk", gamma, 1 / variances, xi, xi)
    Kmat = np.einsum("tm,mi,tj->ij", gamma, means / variances, xi)
    np.testing.assert_allclose(st.G, G, rtol=1e-12)
    np.testing.assert_allclose(st.K, Kmat, rtol=1e-12)
    assert st.beta == pytest.approx(gamma.sum())
    halves = (accumulate_fmllr_stats(X[:25], gamma[:25], means, variances)
              + accumulate_fmllr_stats(X[25:], gamma[25:], means, variances))
    np.testing.assert_allclose(halves.G, st.G, rtol=1e-12)
    np.testing.assert_allclose(halves.K, st.K, rtol=1e-12)
    assert halves.beta == pytest.approx(st.beta)
    assert sum([st, FmllrStats.zeros(D)]).beta == st.beta
    # and so the estimate from two halves is the estimate from the whole
    np.testing.assert_allclose(estimate_fmllr(halves, min_count=0), estimate_fmllr(st, min_count=0), atol=1e-10)
    # frames of zero posterior add nothing, even ones whose products overflow (inf * 0 was NaN)
    with np.errstate(invalid="raise", over="ignore"):
        padded = accumulate_fmllr_stats(np.vstack([X, np.full((2, D), 1e160)]), np.vstack([gamma, np.zeros((2, K))]),
                                        means, variances, block_frames=7)
    np.testing.assert_allclose(padded.G, st.G, rtol=1e-12)
    np.testing.assert_allclose(padded.K, st.K, rtol=1e-12)


def test_auxf_is_the_log_likelihood_with_jacobian():
    """Q(W1) - Q(W2) = sum_tm gamma_tm [log N(A x + b; mu_m, var_m) + log|det A|] difference."""
    rng = np.random.RandomState(4)
    T, K, D = 40, 3, 3
    X, gamma = rng.randn(T, D), rng.dirichlet(np.ones(K), T)
    means, variances = rng.randn(K, D), rng.uniform(0.3, 2.0, (K, D))
    st = accumulate_fmllr_stats(X, gamma, means, variances)

    def loglik(W):
        Z = apply_fmllr(W, X)
        lp = norm.logpdf(Z[:, None, :], means[None], np.sqrt(variances)[None]).sum(-1)
        return float((gamma * lp).sum() + gamma.sum() * np.log(abs(np.linalg.det(W[:, :-1]))))

    W1, W2 = identity_transform(D), np.hstack(random_affine(rng, D, 0.3)[0:1] + (rng.randn(D, 1),))
    assert fmllr_auxf(st, W1) - fmllr_auxf(st, W2) == pytest.approx(loglik(W1) - loglik(W2), rel=1e-10)


def test_auxf_never_decreases_and_estimate_beats_identity():
    rng = np.random.RandomState(5)
    T, K, D = 300, 6, 4
    X = rng.randn(T, D) @ rng.randn(D, D) + 2.0
    gamma = rng.dirichlet(0.3 * np.ones(K), T)
    means, variances = rng.randn(K, D), rng.uniform(0.3, 2.0, (K, D))
    st = accumulate_fmllr_stats(X, gamma, means, variances)
    W = identity_transform(D)
    values = [fmllr_auxf(st, W)]
    for _ in range(15):  # one pass at a time, continuing from the last
        W = estimate_fmllr(st, n_iters=1, init=W, tol=None)
        values.append(fmllr_auxf(st, W))
    assert np.all(np.diff(values) >= -1e-9 * abs(values[0]))
    assert values[-1] > values[0] + 1.0


def test_min_count_and_bad_input():
    rng = np.random.RandomState(6)
    X, gamma = rng.randn(10, 3), np.ones((10, 1))
    st = accumulate_fmllr_stats(X, gamma, np.zeros((1, 3)), np.ones((1, 3)))
    np.testing.assert_array_equal(estimate_fmllr(st), identity_transform(3))  # 10 frames < min_count 20
    assert not np.allclose(estimate_fmllr(st, min_count=5), identity_transform(3))
    with pytest.raises(InvalidInputError, match="posteriors"):
        accumulate_fmllr_stats(X, gamma[:5], np.zeros((1, 3)), np.ones((1, 3)))
    with pytest.raises(InvalidInputError, match="variances"):
        accumulate_fmllr_stats(X, gamma, np.zeros((1, 3)), np.zeros((1, 3)))
    with pytest.raises(InvalidInputError, match="non-finite"):
        accumulate_fmllr_stats(np.full((10, 3), np.nan), gamma, np.zeros((1, 3)), np.ones((1, 3)))
    with pytest.raises(InvalidInputError, match="means"):  # not NaN statistics, refused only as a NaN transform
        accumulate_fmllr_stats(X, gamma, np.full((1, 3), np.nan), np.ones((1, 3)))
    with pytest.raises(InvalidInputError, match="shape"):
        apply_fmllr(np.eye(3), X)
    with pytest.raises(InvalidParameterError, match="singular"):
        estimate_fmllr(st, init=np.zeros((3, 4)))
    with pytest.raises(InvalidParameterError, match="n_iters"):
        estimate_fmllr(st, n_iters=-1)
    with pytest.raises(InvalidInputError, match="dims"):
        st + FmllrStats.zeros(4)
    # rank-deficient statistics (every frame the same) are not estimated, never NaN
    flat = accumulate_fmllr_stats(np.ones((50, 3)), np.ones((50, 1)), np.zeros((1, 3)), np.ones((1, 3)))
    np.testing.assert_array_equal(estimate_fmllr(flat), identity_transform(3))


@pytest.mark.parametrize("update_type", ["diag", "offset"])
def test_diag_and_offset_updates_recover_their_kind_of_map(update_type):
    """Exact-moment data seen through a diagonal (or shift-only) map: the closed forms invert it."""
    rng = np.random.RandomState(7)
    Y, gamma, means, variances = exact_gmm_data(rng)
    D = Y.shape[1]
    scale = rng.uniform(0.5, 2.0, D) if update_type == "diag" else np.ones(D)
    shift = rng.randn(D)
    X = Y * scale + shift
    st = accumulate_fmllr_stats(X, gamma, means, variances)
    W = estimate_fmllr(st, update_type=update_type)
    np.testing.assert_allclose(W[:, :-1], np.diag(1 / scale), atol=1e-10)
    np.testing.assert_allclose(W[:, -1], -shift / scale, atol=1e-10)
    # the full update from the same statistics finds the same map (its optimum is this one)
    np.testing.assert_allclose(estimate_fmllr(st, n_iters=200, tol=None), W, atol=1e-7)


@pytest.mark.parametrize("seed", range(4))
def test_restricted_updates_are_optimal_within_their_family(seed):
    """On any statistics: no diagonal (offset-only) perturbation improves Q, and full >= diag >= offset."""
    rng = np.random.RandomState(seed)
    T, K, D = 200, 5, 3
    X = rng.randn(T, D) * rng.uniform(0.5, 2.0, D) + rng.randn(D)
    gamma = rng.dirichlet(np.ones(K), T)
    st = accumulate_fmllr_stats(X, gamma, rng.randn(K, D), rng.uniform(0.3, 2.0, (K, D)))
    W = {t: estimate_fmllr(st, update_type=t, min_count=0) for t in ("full", "diag", "offset")}
    q = {t: fmllr_auxf(st, w) for t, w in W.items()}
    assert q["full"] >= q["diag"] - 1e-8 >= q["offset"] - 2e-8
    for t, n_free in (("diag", D), ("offset", 0)):
        for _ in range(20):
            P = np.zeros((D, D + 1))
            P[:, D] = 1e-4 * rng.randn(D)
            P[np.arange(n_free), np.arange(n_free)] = 1e-4 * rng.randn(n_free)
            assert fmllr_auxf(st, W[t] + P) <= q[t] + 1e-9
    with pytest.raises(InvalidParameterError, match="update_type"):
        estimate_fmllr(st, update_type="block")


@pytest.mark.parametrize("update_type", ["full", "diag"])
@pytest.mark.parametrize("n_features, n_frames, repeat", [(13, 10, False), (39, 30, False), (3, 3, False),
                                                          (3, 50, True)])
def test_too_few_distinct_frames_give_identity_with_a_warning(update_type, n_features, n_frames, repeat, caplog):
    """Fewer distinct frames than the parameters of a row: Q has no maximum (rounding hides the
    singularity from the inverse), so the transform is not estimated; never NaN, never an exception."""
    rng = np.random.RandomState(11)
    X = rng.randn(n_frames, n_features)
    if repeat:
        X[:] = X[0]  # one frame, many times: rank one, but not exactly singular in floating point
    elif update_type == "diag":
        X[:, 0] = 0.3  # a constant dimension: its scale a_0 is unbounded
    gamma = rng.dirichlet(np.ones(4), n_frames)
    st = accumulate_fmllr_stats(X, gamma, rng.randn(4, n_features), rng.uniform(0.5, 2.0, (4, n_features)))
    with caplog.at_level("WARNING", logger="gmmhmm.adapt.fmllr"):
        W = estimate_fmllr(st, min_count=0, update_type=update_type)
    np.testing.assert_array_equal(W, identity_transform(n_features))
    assert "singular" in caplog.text
