"""Gaussian densities, precision factors, additive statistics and the M-step."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from gmmhmm.errors import InvalidInputError, InvalidParameterError
from gmmhmm.mixture import (
    GaussianUpdateOptions,
    update_gaussians,
    GaussianStats,
    covariances_from_precisions_cholesky,
    log_gaussian_density,
    precisions_cholesky_from_covariances,
    precisions_cholesky_from_precisions,
    precisions_from_precisions_cholesky,
)

TYPES = ["full", "tied", "diag", "spherical"]


def random_covariances(rng, covariance_type, k, d):
    a = rng.normal(size=(k, d, d))
    full = a @ a.transpose(0, 2, 1) + 0.5 * np.eye(d)
    return {
        "full": full,
        "tied": full[0],
        "diag": rng.uniform(0.3, 3.0, size=(k, d)),
        "spherical": rng.uniform(0.3, 3.0, size=k),
    }[covariance_type]


def dense_covariance(cov, covariance_type, k, d):
    return {
        "full": lambda: cov[k],
        "tied": lambda: cov,
        "diag": lambda: np.diag(cov[k]),
        "spherical": lambda: cov[k] * np.eye(d),
    }[covariance_type]()


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("offset", [0.0, 50.0])
def test_log_density_matches_scipy(covariance_type, offset):
    rng = np.random.default_rng(1)
    k, d = 4, 5
    X = rng.normal(size=(300, d)) * 2 + offset
    means = rng.normal(size=(k, d)) + offset
    cov = random_covariances(rng, covariance_type, k, d)
    pc = precisions_cholesky_from_covariances(cov, covariance_type)
    got = log_gaussian_density(X, means, pc, covariance_type)
    want = np.stack(
        [multivariate_normal(means[j], dense_covariance(cov, covariance_type, j, d)).logpdf(X) for j in range(k)],
        axis=1,
    )
    assert got.shape == (300, k)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_log_density_float32_stays_float32(covariance_type):
    rng = np.random.default_rng(2)
    k, d = 3, 4
    X = rng.normal(size=(100, d))
    means = rng.normal(size=(k, d))
    pc = precisions_cholesky_from_covariances(random_covariances(rng, covariance_type, k, d), covariance_type)
    ref = log_gaussian_density(X, means, pc, covariance_type)
    got = log_gaussian_density(X.astype(np.float32), means.astype(np.float32), pc.astype(np.float32), covariance_type)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_precision_factor_round_trips(covariance_type):
    rng = np.random.default_rng(3)
    cov = random_covariances(rng, covariance_type, 3, 4)
    pc = precisions_cholesky_from_covariances(cov, covariance_type)
    np.testing.assert_allclose(covariances_from_precisions_cholesky(pc, covariance_type), cov, rtol=1e-10)
    prec = precisions_from_precisions_cholesky(pc, covariance_type)
    np.testing.assert_allclose(precisions_cholesky_from_precisions(prec, covariance_type), pc, rtol=1e-10, atol=1e-12)
    if covariance_type in ("full", "tied"):
        np.testing.assert_allclose(prec @ cov, np.broadcast_to(np.eye(4), prec.shape), atol=1e-9)
        assert np.allclose(np.tril(pc if pc.ndim == 2 else pc[1], -1), 0)  # upper triangular


def test_not_positive_definite_names_component():
    cov = np.stack([np.eye(3), np.eye(3)])
    cov[1, 0, 0] = -1.0
    with pytest.raises(InvalidParameterError, match="component 1"):
        precisions_cholesky_from_covariances(cov, "full")
    with pytest.raises(InvalidParameterError, match="component 2"):
        precisions_cholesky_from_covariances(np.array([1.0, 2.0, 0.0]), "spherical")
    with pytest.raises(InvalidParameterError, match="covariance_type"):
        precisions_cholesky_from_covariances(cov, "banana")


def test_density_shape_mismatch_is_clear():
    with pytest.raises(InvalidInputError, match="match means"):
        log_gaussian_density(np.zeros((3, 2)), np.zeros((2, 3)), np.ones((2, 3)), "diag")


def brute_force_stats(X, resp, covariance_type):
    n = resp.sum(0)
    s1 = resp.T @ X
    outer = X[:, :, None] * X[:, None, :]
    if covariance_type == "full":
        s2 = np.einsum("tk,tij->kij", resp, outer)
    elif covariance_type == "tied":
        s2 = np.einsum("t,tij->ij", resp.sum(1), outer)
    else:
        s2 = resp.T @ X**2
    return n, s1, s2


@pytest.mark.parametrize("covariance_type", TYPES)
def test_stats_from_posteriors_and_additivity(covariance_type):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(40, 3))
    resp = rng.uniform(size=(40, 2))
    whole = GaussianStats.from_posteriors(X, resp, covariance_type)
    for got, want in zip((whole.n, whole.s1, whole.s2), brute_force_stats(X, resp, covariance_type)):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    parts = GaussianStats.from_posteriors(X[:15], resp[:15], covariance_type) + GaussianStats.from_posteriors(
        X[15:], resp[15:], covariance_type
    )
    acc = GaussianStats.zeros(2, 3, covariance_type)
    acc += parts
    assert (acc.n_components, acc.n_features) == (2, 3)
    for a, b in ((acc.n, whole.n), (acc.s1, whole.s1), (acc.s2, whole.s2)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    with pytest.raises(InvalidInputError):
        whole + GaussianStats.zeros(3, 3, covariance_type)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_stats_about_different_centres_add_up_to_the_raw_ones(covariance_type):
    """Moments about a centre are those of x - centre; a sum takes the left operand's centre
    (``+``, ``+=``, ``add_at``) and ``recentered(None)`` gives back the raw moments."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(40, 3)) + 7.0
    resp = rng.uniform(size=(40, 2))
    whole = GaussianStats.from_posteriors(X, resp, covariance_type)
    a = GaussianStats.from_posteriors(X[:15], resp[:15], covariance_type, center=X[:15].mean(axis=0))
    b = GaussianStats.from_posteriors(X[15:], resp[15:], covariance_type, center=np.array([6.0, 8.0, 7.5]))
    np.testing.assert_allclose(a.s1, brute_force_stats(X[:15] - a.center, resp[:15], covariance_type)[1], atol=1e-12)
    inplace = GaussianStats.from_posteriors(X[:15], resp[:15], covariance_type, center=a.center)
    inplace += b
    at = GaussianStats.from_posteriors(X[:15], resp[:15], covariance_type, center=a.center).add_at([0, 1], b)
    for total in (a + b, inplace, at):
        np.testing.assert_array_equal(total.center, a.center)
        raw = total.recentered(None)
        for got, want in ((raw.n, whole.n), (raw.s1, whole.s1), (raw.s2, whole.s2)):
            np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_stats_from_density_design_rows(covariance_type):
    """The design rows kept from the densities give the same statistics as X,
    also far from the origin, where raw moments would cancel badly."""
    from gmmhmm.mixture.gaussian import DensityPlan

    rng = np.random.default_rng(5)
    X = 1e3 + rng.normal(size=(60, 3))
    resp = rng.uniform(size=(60, 2))
    means = X[:2] + 0.1
    plan = DensityPlan(means, precisions_cholesky_from_covariances(
        random_covariances(rng, covariance_type, 2, 3), covariance_type), covariance_type)
    got = GaussianStats.from_design(plan.design(X), resp, plan.center, covariance_type)
    for a, b in zip((got.n, got.s1, got.s2), brute_force_stats(X, resp, covariance_type)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    with pytest.raises(InvalidInputError, match="tied"):
        GaussianStats.from_design(plan.design(X), resp, plan.center, "tied")


@pytest.mark.parametrize("covariance_type", TYPES)
def test_m_step_matches_weighted_moments(covariance_type):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(200, 3)) + 10.0
    resp = rng.dirichlet(np.ones(2), size=200)
    new, _ = update_gaussians(GaussianStats.from_posteriors(X, resp, covariance_type), covariance_type,
                              GaussianUpdateOptions(reg_covar=1e-6))
    means, cov = new.means, new.covars
    nk = resp.sum(0)
    want_means = resp.T @ X / nk[:, None]
    np.testing.assert_allclose(means, want_means, rtol=1e-12)
    full = np.stack([(resp[:, j, None] * (X - want_means[j])).T @ (X - want_means[j]) / nk[j] for j in range(2)])
    want = {
        "full": full + 1e-6 * np.eye(3),
        "tied": (full * nk[:, None, None]).sum(0) / nk.sum() + 1e-6 * np.eye(3),
        "diag": np.diagonal(full, axis1=1, axis2=2) + 1e-6,
        "spherical": np.diagonal(full, axis1=1, axis2=2).mean(1) + 1e-6,
    }[covariance_type]
    np.testing.assert_allclose(cov, want, rtol=1e-9)


def test_m_step_floors_constant_feature():
    X = np.column_stack([np.full(20, 3.0), np.arange(20.0)])
    stats = GaussianStats.from_posteriors(X, np.ones((20, 1)), "diag")
    cov = update_gaussians(stats, "diag", GaussianUpdateOptions(reg_covar=1e-3))[0].covars
    assert np.all(np.isfinite(cov)) and cov[0, 0] == pytest.approx(1e-3, rel=1e-6)


@pytest.mark.parametrize("n_mix", [1, 3])
def test_mixture_log_likelihood_matches_logsumexp(n_mix):
    from scipy.special import logsumexp, softmax

    from gmmhmm.mixture.gaussian import mixture_log_likelihood

    rng = np.random.default_rng(6)
    comp = rng.normal(scale=30.0, size=(50, 4 * n_mix)) - 1e4  # far below 0: needs the shift
    comp[:, 0] = -np.inf  # a zero-weight component
    comp[7, :n_mix] = -np.inf  # state 0 impossible at frame 7
    grouped = comp.reshape(50, 4, n_mix)
    want_ll = logsumexp(grouped, axis=2)
    with np.errstate(invalid="ignore"):
        want_resp = np.nan_to_num(softmax(grouped, axis=2), nan=0.0)
    got = comp.copy()
    ll = mixture_log_likelihood(got, n_mix)
    np.testing.assert_allclose(ll, want_ll, rtol=1e-13)
    assert ll[7, 0] == -np.inf
    np.testing.assert_allclose(got.reshape(50, 4, n_mix), want_resp, rtol=1e-12, atol=1e-300)
    with pytest.raises(InvalidInputError, match="C-contiguous"):
        mixture_log_likelihood(np.asfortranarray(comp[:, :4 * n_mix]) if n_mix > 1 else comp[:, ::2], n_mix)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_compiled_exp_matches_libm_and_flushes(dtype):
    """The E-step's vectorised exp: within 1 ulp of numpy's on the whole range it sees
    (the row maximum subtracted: x <= 0), 0 at or below the cutoff, NaN stays NaN."""
    from gmmhmm.mixture._kernels import _exp_flush, flush_cutoff

    rng = np.random.default_rng(7)
    cutoff = flush_cutoff(dtype)
    x = np.concatenate([-rng.random(20_000) * -cutoff, -rng.random(1000) * 1e-6, [0.0, -0.5, cutoff + 1e-9],
                        [cutoff, cutoff - 1.0, -np.inf, np.nan]]).astype(dtype)
    got = _exp_flush(x.reshape(-1, 7).copy(), cutoff).reshape(-1)  # 2-D, like a block of posteriors
    keep = x > cutoff
    want = np.exp(x[keep].astype(np.float64)).astype(dtype)
    assert np.max(np.abs(got[keep] - want) / np.spacing(want)) <= 1.0
    assert got[x == 0.0][0] == 1.0
    assert np.all(got[(x <= cutoff) | (x == -np.inf)] == 0.0)
    assert np.isnan(got[-1])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_normalize_log_resp_in_the_data_precision(dtype):
    """The E-step's posterior normalisation against scipy in float64: weighted posteriors,
    per-row logsumexp and the block's weighted log-likelihood; float32 blocks stay float32
    (no float64 temporaries) and agree to float32 precision; an impossible row gives zeros."""
    from scipy.special import logsumexp, softmax

    from gmmhmm.mixture._kernels import flush_cutoff, normalize_log_resp

    rng = np.random.default_rng(11)
    lp = rng.normal(scale=20.0, size=(300, 32)) - 500.0
    lp[:, 3] = -np.inf
    lp[5] = -np.inf
    w = rng.uniform(0.5, 2.0, size=300)
    got = lp.astype(dtype)
    log_norm = np.empty(300, dtype=dtype)
    ll = normalize_log_resp(got, w.astype(dtype), log_norm, flush_cutoff(dtype))
    assert got.dtype == dtype and log_norm.dtype == dtype and isinstance(ll, float)
    ok = np.arange(300) != 5
    want_norm = logsumexp(lp[ok].astype(dtype).astype(np.float64), axis=1)
    want = softmax(lp[ok].astype(dtype).astype(np.float64), axis=1) * w[ok, None]
    rtol = 1e-12 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(log_norm[ok], want_norm, rtol=rtol)
    np.testing.assert_allclose(got[ok], want, rtol=8 * rtol, atol=w.max() * np.exp(flush_cutoff(dtype)))
    np.testing.assert_allclose(got[ok].sum(axis=1), w[ok], rtol=8 * rtol)
    assert np.all(got[5] == 0.0) and log_norm[5] == -np.inf and ll == -np.inf
    w[5] = 0.0  # a zero-weight impossible frame: 0 * -inf, reported as NaN for the caller's check
    again = lp.astype(dtype)
    assert np.isnan(normalize_log_resp(again, w.astype(dtype), log_norm, flush_cutoff(dtype)))
    ll_ok = normalize_log_resp(lp[ok].astype(dtype), w[ok].astype(dtype), log_norm[:299], flush_cutoff(dtype))
    assert ll_ok == pytest.approx(float(w[ok].astype(dtype) @ want_norm), rel=rtol)
