"""GaussianMixture: parity with scikit-learn, EM invariants, API and errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from gmmhmm import GaussianMixture
from gmmhmm.errors import ConvergenceError, InvalidInputError, InvalidParameterError
from gmmhmm.mixture import ConvergenceWarning, MixtureStats

TYPES = ["full", "tied", "diag", "spherical"]


def blobs(n=600, d=3, k=3, seed=0, spread=6.0, offset=0.0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=spread, size=(k, d)) + offset
    scales = rng.uniform(0.5, 1.5, size=(k, d))
    labels = rng.integers(k, size=n)
    X = centers[labels] + rng.normal(size=(n, d)) * scales[labels]
    return X, labels, centers


def initial_parameters(X, k, covariance_type, seed=1):
    rng = np.random.default_rng(seed)
    d = X.shape[1]
    means = X[rng.choice(len(X), k, replace=False)] + rng.normal(scale=0.1, size=(k, d))
    weights = rng.dirichlet(np.full(k, 5.0))
    a = rng.normal(size=(k, d, d)) * 0.3
    prec_full = a @ a.transpose(0, 2, 1) + np.eye(d) * 0.5
    precisions = {
        "full": prec_full,
        "tied": prec_full[0],
        "diag": rng.uniform(0.3, 2.0, size=(k, d)),
        "spherical": rng.uniform(0.3, 2.0, size=k),
    }[covariance_type]
    return dict(weights_init=weights, means_init=means, precisions_init=precisions)


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("offset", [0.0, 30.0])
def test_each_em_iteration_matches_sklearn(covariance_type, offset):
    X, _, _ = blobs(offset=offset, seed=3)
    init = initial_parameters(X, 3, covariance_type)
    for n_iter in (1, 2, 5):
        kw = dict(covariance_type=covariance_type, max_iter=n_iter, tol=0.0, reg_covar=1e-6, **init)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SkConvergenceWarning)
            ref = SkGaussianMixture(3, **kw).fit(X)
        with pytest.warns(ConvergenceWarning):
            got = GaussianMixture(3, **kw).fit(X)
        for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
            np.testing.assert_allclose(getattr(got, name), getattr(ref, name), rtol=1e-8, atol=1e-12 * (1 + offset),
                                       err_msg=f"{name} after {n_iter} iterations")
        assert got.lower_bound_ == pytest.approx(ref.lower_bound_, rel=1e-8)
        np.testing.assert_allclose(got.lower_bounds_, ref.lower_bounds_, rtol=1e-8)
        assert got.n_iter_ == ref.n_iter_ == n_iter


# sklearn's tied estimate uses X.T @ X over all rows even when the initial
# responsibilities cover only K of them (random_from_data); ours weights rows
# by their responsibility, so that one combination is left out.
@pytest.mark.parametrize(
    "covariance_type, init_params",
    [(ct, ip) for ip in ("random", "random_from_data") for ct in TYPES if (ct, ip) != ("tied", "random_from_data")],
)
def test_full_fit_matches_sklearn_same_seeded_init(covariance_type, init_params):
    # 'random' and 'random_from_data' draw from the RandomState exactly as sklearn does
    X, _, _ = blobs(n=400, seed=4)
    kw = dict(covariance_type=covariance_type, init_params=init_params, random_state=7, max_iter=200)
    ref = SkGaussianMixture(3, **kw).fit(X)
    got = GaussianMixture(3, **kw).fit(X)
    assert got.converged_ == ref.converged_ and got.n_iter_ == ref.n_iter_
    assert got.lower_bound_ == pytest.approx(ref.lower_bound_, rel=1e-7)
    np.testing.assert_allclose(got.means_, ref.means_, rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(got.predict(X), ref.predict(X))
    np.testing.assert_allclose(got.score_samples(X), ref.score_samples(X), rtol=1e-7)
    np.testing.assert_allclose(got.predict_proba(X), ref.predict_proba(X), atol=1e-7)
    assert got.bic(X) == pytest.approx(ref.bic(X), rel=1e-8)
    assert got.aic(X) == pytest.approx(ref.aic(X), rel=1e-8)
    Xs, ys = got.sample(50)
    Xr, yr = ref.sample(50)
    np.testing.assert_allclose(Xs, Xr, rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(ys, yr)


def test_n_init_keeps_best_run():
    X, _, _ = blobs(n=300, k=4, seed=17)
    kw = dict(covariance_type="diag", init_params="random_from_data", max_iter=100)
    best = GaussianMixture(4, n_init=4, random_state=np.random.RandomState(2), **kw).fit(X)
    stream = np.random.RandomState(2)  # single runs drawing from the same stream, in turn
    singles = [GaussianMixture(4, random_state=stream, **kw).fit(X) for _ in range(4)]
    winner = max(singles, key=lambda g: g.lower_bound_)
    assert best.lower_bound_ == max(g.lower_bound_ for g in singles)
    np.testing.assert_array_equal(best.means_, winner.means_)
    assert best.n_iter_ == winner.n_iter_ and best.lower_bounds_ == winner.lower_bounds_


@pytest.mark.parametrize("covariance_type", TYPES)
def test_split_accumulation_equals_one_array(covariance_type):
    X, _, _ = blobs(n=500, seed=5)
    init = initial_parameters(X, 3, covariance_type)
    whole = GaussianMixture(3, covariance_type=covariance_type, max_iter=0, **init).fit(X)
    parts = GaussianMixture(3, covariance_type=covariance_type, max_iter=0, **init).fit(X)
    for _ in range(3):
        s_whole = whole.accumulate(X)
        s_parts = parts.accumulate(X[:123]) + parts.accumulate(X[123:400])
        s_parts += parts.accumulate(X[400:])
        assert isinstance(s_parts, MixtureStats)
        assert s_parts.log_likelihood == pytest.approx(s_whole.log_likelihood, rel=1e-12)
        whole.update(s_whole)
        parts.update(s_parts)
        for name in ("weights_", "means_", "covariances_"):
            np.testing.assert_allclose(getattr(parts, name), getattr(whole, name), rtol=1e-10, atol=1e-13)
    # fit is exactly the accumulate -> update loop
    fitted = GaussianMixture(3, covariance_type=covariance_type, max_iter=3, tol=0.0, **init)
    with pytest.warns(ConvergenceWarning):
        fitted.fit(X)
    np.testing.assert_allclose(fitted.means_, whole.means_, rtol=1e-12)


def test_sample_weight_equals_repeated_rows():
    X, _, _ = blobs(n=200, seed=6)
    counts = np.random.default_rng(0).integers(0, 4, size=len(X))
    init = initial_parameters(X, 3, "full")
    a = GaussianMixture(3, max_iter=4, tol=0, **init)
    b = GaussianMixture(3, max_iter=4, tol=0, **init)
    with pytest.warns(ConvergenceWarning):
        a.fit(X, sample_weight=counts)
    with pytest.warns(ConvergenceWarning):
        b.fit(np.repeat(X, counts, axis=0))
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-10)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=1e-9)
    assert a.lower_bound_ == pytest.approx(b.lower_bound_, rel=1e-10)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(30, 120),
    d=st.integers(1, 3),
    k=st.integers(1, 4),
    covariance_type=st.sampled_from(TYPES),
    scale=st.floats(0.01, 100.0),
)
def test_lower_bound_never_decreases(seed, n, d, k, covariance_type, scale):
    rng = np.random.default_rng(seed)
    X = rng.standard_t(df=3, size=(n, d)) * scale + rng.normal(size=d) * scale
    gmm = GaussianMixture(k, covariance_type=covariance_type, reg_covar=0.0, max_iter=30, tol=0.0,
                          init_params="random", random_state=seed % 1000)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gmm.fit(X)
    except (InvalidParameterError, ConvergenceError):
        assume(False)  # a component collapsed onto a point: singular without reg_covar
    # a component collapsing onto one point drives the likelihood to +inf;
    # floating point cannot follow that, so such runs say nothing about EM
    cov = gmm.covariances_.reshape(-1, d, d) if covariance_type in ("full", "tied") else gmm.covariances_
    smallest = np.linalg.eigvalsh(cov).min() if covariance_type in ("full", "tied") else cov.min()
    assume(smallest > 1e-8 * X.var(axis=0).max())
    lb = np.asarray(gmm.lower_bounds_)
    assert np.all(np.isfinite(lb))
    assert np.all(np.diff(lb) >= -1e-9 * (1 + np.abs(lb[1:])))


@pytest.mark.parametrize("covariance_type", TYPES)
def test_recovers_well_separated_mixture(covariance_type):
    rng = np.random.default_rng(8)
    true_means = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    true_weights = np.array([0.5, 0.3, 0.2])
    labels = rng.choice(3, size=3000, p=true_weights)
    X = true_means[labels] + rng.normal(size=(3000, 2))
    gmm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    order = np.argsort(gmm.means_[:, 0] + 2 * gmm.means_[:, 1])
    np.testing.assert_allclose(gmm.means_[order], true_means, atol=0.1)
    np.testing.assert_allclose(gmm.weights_[order], true_weights, atol=0.03)
    var = {"full": lambda c: np.diagonal(c, axis1=1, axis2=2), "tied": lambda c: np.diag(c),
           "diag": lambda c: c, "spherical": lambda c: c}[covariance_type](gmm.covariances_)
    np.testing.assert_allclose(var, 1.0, atol=0.1)
    assert gmm.converged_
    # true component i is fitted component order[i]
    assert np.mean(order[labels] == gmm.predict(X)) > 0.99


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++"])
def test_kmeans_initialisations_find_blobs(init_params):
    X, labels, centers = blobs(n=900, d=2, k=4, seed=9, spread=10.0)
    gmm = GaussianMixture(4, covariance_type="diag", init_params=init_params, max_iter=0, random_state=0).fit(X)
    # even without EM the initial means sit near the true centres
    dist = np.linalg.norm(gmm.means_[:, None] - centers[None], axis=2)
    assert sorted(dist.argmin(axis=0)) == [0, 1, 2, 3]  # one initial mean per blob
    assert np.all(dist.min(axis=0) < (0.5 if init_params == "kmeans" else 4.0))


def test_seed_examples_run_unchanged():
    rng = np.random.default_rng(0)
    heights = np.concatenate([rng.normal(165, 7, 500), rng.normal(178, 7, 500)])
    gmm = GaussianMixture(n_components=2, random_state=0).fit(heights.reshape(-1, 1))
    assert sorted(gmm.means_.ravel()) == pytest.approx([165, 178], abs=3)

    X, _, _ = blobs(n=600, d=2, k=3, seed=10, spread=8.0)
    bics = [GaussianMixture(k, random_state=0).fit(X).bic(X) for k in range(1, 10)]
    aics = [GaussianMixture(k, random_state=0).fit(X).aic(X) for k in range(1, 10)]
    assert int(np.argmin(bics)) + 1 == 3 and int(np.argmin(aics)) + 1 >= 3

    gmm = GaussianMixture(3, random_state=0).fit(X)
    densities = gmm.score_samples(X)
    threshold = np.percentile(densities, 4)
    outliers = np.array([[100.0, 100.0], [-80.0, 50.0]])
    assert np.all(gmm.score_samples(outliers) < threshold)
    # the densities themselves: log sum_k w_k N(x; mu_k, Sigma_k) from the fitted parameters
    points = np.concatenate([X, outliers])
    joint = np.column_stack([np.log(w) + multivariate_normal(m, c).logpdf(points)
                             for w, m, c in zip(gmm.weights_, gmm.means_, gmm.covariances_)])
    np.testing.assert_allclose(gmm.score_samples(points), logsumexp(joint, axis=1), rtol=1e-10)
    np.testing.assert_allclose(gmm.predict_proba(points), np.exp(joint - logsumexp(joint, axis=1, keepdims=True)),
                               atol=1e-10)
    assert gmm.score(X) == pytest.approx(densities.mean(), rel=1e-12)

    X_new, y_new = gmm.sample(200)
    assert X_new.shape == (200, 2) and y_new.shape == (200,)
    assert np.all(np.bincount(y_new, minlength=3) > 0)


def test_float32_end_to_end():
    X, _, _ = blobs(n=500, seed=11)
    g32 = GaussianMixture(3, covariance_type="full", dtype="float32", random_state=0).fit(X)
    g64 = GaussianMixture(3, covariance_type="full", random_state=0).fit(X)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"):
        assert getattr(g32, name).dtype == np.float32, name
    assert g32.score_samples(X).dtype == np.float32
    assert g32.predict_proba(X).dtype == np.float32
    assert g32.sample(5)[0].dtype == np.float32
    np.testing.assert_allclose(g32.means_, g64.means_, atol=1e-3)



def test_float32_diag_em_follows_float64():
    """float32 data, the same start: every fitted attribute and the responsibilities stay
    float32, and EM lands where float64 EM does (the same labels on well-separated data,
    parameters and lower bound to float32 precision) over many E-step blocks."""
    X, _, _ = blobs(n=20_000, d=12, k=8, seed=5, spread=4.0)
    init = initial_parameters(X, 8, "diag", seed=2)
    init32 = {name: np.asarray(v, dtype=np.float32) for name, v in init.items()}
    X32 = X.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        g64 = GaussianMixture(8, covariance_type="diag", max_iter=30, tol=0.0, **init).fit(X)
        g32 = GaussianMixture(8, covariance_type="diag", max_iter=30, tol=0.0, **init32).fit(X32)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"):
        assert getattr(g32, name).dtype == np.float32, name
    assert g32.predict_proba(X32).dtype == np.float32
    stats = g32.accumulate(X32)
    assert np.isfinite(stats.log_likelihood)
    np.testing.assert_array_equal(g32.predict(X32), g64.predict(X))
    np.testing.assert_allclose(g32.means_, g64.means_, atol=1e-5 * np.abs(g64.means_).max())
    np.testing.assert_allclose(g32.covariances_, g64.covariances_, rtol=1e-4)
    np.testing.assert_allclose(g32.weights_, g64.weights_, rtol=1e-4)
    assert g32.lower_bound_ == pytest.approx(g64.lower_bound_, rel=1e-6)

@pytest.mark.parametrize("covariance_type", TYPES)
def test_split_grows_model_htk_style(covariance_type):
    X, _, _ = blobs(n=600, d=2, k=4, seed=12, spread=10.0)
    gmm = GaussianMixture(1, covariance_type=covariance_type, random_state=0).fit(X)
    w0, m0 = gmm.weights_.copy(), gmm.means_.copy()
    var = {"full": lambda c: np.diag(c[0]), "tied": np.diag, "diag": lambda c: c[0],
           "spherical": lambda c: np.full(2, c[0])}[covariance_type](gmm.covariances_)
    gmm.split(2)
    assert gmm.n_components == 2 and gmm.means_.shape == (2, 2)
    np.testing.assert_allclose(gmm.weights_, [w0[0] / 2] * 2)
    step = 0.2 * np.sqrt(var)  # HHEd MU: every dimension, +-0.2 standard deviations
    np.testing.assert_allclose(gmm.means_, np.stack([m0[0] + step, m0[0] - step]))
    lb_before = gmm.score(X)
    gmm.split(4)
    assert gmm.warm_start is False  # split changes no hyperparameter but n_components
    gmm.set_params(warm_start=True).fit(X)  # continues EM from the split model
    assert gmm.means_.shape == (4, 2) and gmm.lower_bound_ > lb_before
    with pytest.raises(InvalidParameterError):
        gmm.split(2)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_warm_start_after_split_runs_em_to_convergence(covariance_type):
    """A split moves means by 0.2 standard deviations, which hardly changes the likelihood: a warm
    fit must not measure its first change against the bound of the model before the split and stop
    after one iteration, but run EM until it converges (as fitting the same split model afresh)."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(100, 2)), rng.normal(size=(100, 2)) + 4])
    gmm = GaussianMixture(1, covariance_type=covariance_type, random_state=0).fit(X).split(2)
    start = dict(weights_init=gmm.weights_, means_init=gmm.means_, precisions_init=gmm.precisions_)
    fresh = GaussianMixture(2, covariance_type=covariance_type, **start).fit(X)
    gmm.set_params(warm_start=True).fit(X)
    assert gmm.converged_ and gmm.n_iter_ == fresh.n_iter_ > 1
    assert gmm.lower_bound_ == pytest.approx(fresh.lower_bound_, rel=1e-9)


@pytest.mark.parametrize("change", [dict(covariance_type="diag"), dict(covariance_type="tied"),
                                    dict(n_components=3), "features"])
def test_warm_start_from_a_model_that_does_not_fit_the_parameters_is_refused(change):
    """A warm fit continues from the fitted parameters; after set_params changed their shapes (the
    covariance type, the number of components) or for rows of another width it raises naming the
    mismatch, before any numpy broadcasting error, and leaves the model as it was."""
    X, _, _ = blobs(n=200, d=2, k=2, seed=8)
    gmm = GaussianMixture(2, covariance_type="full", warm_start=True, random_state=0).fit(X)
    before = {name: getattr(gmm, name) for name in ("means_", "covariances_", "lower_bound_")}
    if change == "features":
        X = np.column_stack([X, X[:, 0]])
    else:
        gmm.set_params(**change)
    with pytest.raises(InvalidInputError, match="warm start"):
        gmm.fit(X)
    for name, value in before.items():
        np.testing.assert_array_equal(getattr(gmm, name), value)


def test_empty_component_keeps_previous_parameters():
    X = np.random.default_rng(13).normal(size=(100, 2))
    gmm = GaussianMixture(2, covariance_type="diag", means_init=[[0.0, 0.0], [1e3, 1e3]],
                          weights_init=[0.5, 0.5], precisions_init=np.ones((2, 2)), max_iter=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(X)
    assert np.all(np.isfinite(gmm.means_)) and np.all(np.isfinite(gmm.covariances_))
    np.testing.assert_allclose(gmm.means_[1], [1e3, 1e3])
    np.testing.assert_allclose(gmm.covariances_[1], [1.0, 1.0])
    assert gmm.weights_[1] < 1e-12


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_a_starved_component_keeps_its_variances_at_least_reg_covar(covariance_type):
    """reg_covar is a floor after every M-step, on every component: a component that gets no data
    keeps its previous parameters, but variances below reg_covar (from precisions_init) are raised
    to it, in every direction (scikit-learn re-estimates it: reg_covar exactly)."""
    X = np.random.default_rng(13).normal(size=(100, 2))
    sharp = {"full": np.array([np.eye(2), np.eye(2) * 1e9]), "diag": np.array([[1.0, 1.0], [1e9, 1e9]]),
             "spherical": np.array([1.0, 1e9])}[covariance_type]
    gmm = GaussianMixture(2, covariance_type=covariance_type, means_init=[[0.0, 0.0], [1e3, 1e3]],
                          weights_init=[0.5, 0.5], precisions_init=sharp, reg_covar=1e-6, max_iter=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(X)
    starved = gmm.covariances_[1]
    variances = np.linalg.eigvalsh(starved) if covariance_type == "full" else np.atleast_1d(starved)
    np.testing.assert_allclose(variances, 1e-6, rtol=1e-9)
    np.testing.assert_allclose(gmm.precisions_[1], np.linalg.inv(starved) if covariance_type == "full" else 1 / starved,
                               rtol=1e-9)


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("dtype, far", [(np.float64, 1e155), (np.float32, 1e20)])
def test_rows_whose_squares_overflow_score_minus_infinity(covariance_type, dtype, far):
    """Finite rows so far out that their squares overflow are impossible under every component:
    log p(x) = -inf and component -1e308-ish scores, as scikit-learn's, never NaN (the cross terms
    x_i x_j of a full design row meet as +inf and -inf)."""
    X, _, _ = blobs(n=200, d=2, k=2, seed=9)
    gmm = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X.astype(dtype))
    rows = np.array([[far, -far], [far, far], [0.0, far], [1.0, 2.0]], dtype=dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        scores = gmm.score_samples(rows)
        labels = gmm.predict(rows)
    assert not np.isnan(scores).any()
    np.testing.assert_array_equal(scores[:3], -np.inf)
    assert np.isfinite(scores[3]) and np.all((labels >= 0) & (labels < 2))


def test_zero_variance_feature_is_floored():
    rng = np.random.default_rng(14)
    X = np.column_stack([rng.normal(size=200), np.full(200, 7.0)])
    for ct in TYPES:
        gmm = GaussianMixture(2, covariance_type=ct, random_state=0).fit(X)
        assert np.all(np.isfinite(gmm.covariances_)) and np.all(np.isfinite(gmm.score_samples(X)))


def test_get_set_params_round_trip():
    gmm = GaussianMixture(4, covariance_type="diag", tol=1e-4, random_state=3)
    params = gmm.get_params()
    assert params["n_components"] == 4 and params["covariance_type"] == "diag" and params["dtype"] is None  # follows X
    clone = GaussianMixture(**params)
    assert clone.get_params() == params
    assert clone.set_params(n_components=2) is clone and clone.n_components == 2
    with pytest.raises(InvalidParameterError, match="banana"):
        clone.set_params(banana=1)
    sk_names = set(SkGaussianMixture().get_params())
    assert sk_names <= set(params)
    assert set(GaussianMixture._saved_attributes) >= {"weights_", "means_", "covariances_", "precisions_cholesky_"}


def test_rebuild_from_saved_attributes():
    X, _, _ = blobs(n=300, seed=15)
    gmm = GaussianMixture(3, random_state=0).fit(X)
    copy = GaussianMixture(**gmm.get_params())
    for name in GaussianMixture._saved_attributes:
        setattr(copy, name, getattr(gmm, name))
    np.testing.assert_allclose(copy.score_samples(X), gmm.score_samples(X))


def test_verbose_prints_progress_like_sklearn(capsys):
    X, _, _ = blobs(n=200, seed=19)
    with pytest.warns(ConvergenceWarning):
        GaussianMixture(2, verbose=2, verbose_interval=1, random_state=0, tol=0.0, max_iter=3).fit(X)
    out = capsys.readouterr().out
    assert "Initialization 0" in out and out.count("Iteration") == 3
    GaussianMixture(2, random_state=0).fit(X)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("verbose", [1, 2])
def test_verbose_output_is_sklearns_line_for_line(verbose, capsys):
    """verbose=1 prints every ``verbose_interval``-th iteration and a bare end line; verbose=2
    adds timings and the lower bound (ending in '.'), as scikit-learn does."""
    import re

    X, _, _ = blobs(n=200, seed=19)

    def lines(cls):
        cls(2, verbose=verbose, verbose_interval=2, random_state=0, max_iter=7, n_init=2).fit(X)
        return re.sub(r"\d+\.\d+s", "T", capsys.readouterr().out).splitlines()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert lines(GaussianMixture) == lines(SkGaussianMixture)


@pytest.mark.parametrize("init_params", ["random", "random_from_data"])
def test_max_iter_zero_with_restarts_keeps_the_last_initialisation_as_sklearn(init_params):
    """With max_iter=0 no restart has a lower bound; scikit-learn keeps the last one drawn."""
    X, _, _ = blobs(n=100, seed=3)
    kw = dict(init_params=init_params, max_iter=0, n_init=3, random_state=0)
    ref = SkGaussianMixture(3, **kw).fit(X)
    got = GaussianMixture(3, **kw).fit(X)
    np.testing.assert_allclose(got.means_, ref.means_, rtol=1e-10)
    np.testing.assert_allclose(got.covariances_, ref.covariances_, rtol=1e-8, atol=1e-15)
    assert got.n_iter_ == ref.n_iter_ == 0 and got.lower_bounds_ == ref.lower_bounds_ == []
    assert got.lower_bound_ == ref.lower_bound_ == -np.inf and not got.converged_


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
@pytest.mark.parametrize("noise", [0.0, 1e-5])
def test_float32_fit_with_a_feature_constant_within_each_cluster(covariance_type, noise):
    """A feature (nearly) constant within each cluster but not overall: the float32 moments,
    centred on the mean of all the means, have rounding errors above the true variance, and
    an estimate with a negative eigenvalue failed as 'ill-defined covariance' (scikit-learn's
    float32 fit succeeds). ML scatter is never negative: the estimator raises such eigenvalues
    to 0, as it clips diagonal variances at 0, and reg_covar keeps the matrices definite.
    The fit is compared with scikit-learn's float64 one (its float32 one is off by 0.3 here)."""
    rng = np.random.RandomState(0)
    labels = np.repeat([0, 1, 2], 100)
    X = np.c_[rng.normal(size=300) + 3 * labels, labels + rng.normal(scale=noise, size=300)]
    kw = dict(covariance_type=covariance_type, random_state=0)
    ref = SkGaussianMixture(3, **kw).fit(X)
    got = GaussianMixture(3, **kw).fit(X.astype(np.float32))
    cov = got.covariances_.astype(np.float64).reshape(-1, 2, 2)
    assert np.linalg.eigvalsh(cov).min() >= 0.5 * got.reg_covar
    np.testing.assert_array_equal(got.predict(X), ref.predict(X))
    assert got.score(X) == pytest.approx(ref.score(X), abs=0.1)


@pytest.mark.parametrize("separation", [0.0, 300.0, 3000.0])
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_float32_variances_of_data_far_from_the_origin_and_from_each_other(covariance_type, separation):
    """float32 rows near 1e4 with unit spread: sum(x^2)/n - mean^2 cancels catastrophically in
    float32. Centring on the mean of the means saves one cluster, not clusters hundreds of
    standard deviations from that centre (float32 sums lose about eps32 * (distance/std)^2 of a
    variance: 64% at 3000 std, variances below zero). The variances must match numpy's float64
    ones of the same float32 rows."""
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 4000)
    offsets = 1e4 + separation * np.array([[0.0, 0.0], [1.0, -0.5], [-1.0, 1 / 3]])
    X = (rng.normal(size=(len(labels), 2)) * [1.0, 0.5] + offsets[labels]).astype(np.float32)
    Xd = X.astype(np.float64)
    k = 3 if separation else 1
    cov = np.stack([np.cov(Xd[labels == j] if k > 1 else Xd, rowvar=False, bias=True) for j in range(k)])
    want = {"full": cov, "tied": cov.mean(axis=0), "diag": np.diagonal(cov, axis1=1, axis2=2),
            "spherical": np.diagonal(cov, axis1=1, axis2=2).mean(axis=1)}[covariance_type]
    gm = GaussianMixture(k, covariance_type=covariance_type, dtype="float32", reg_covar=0.0, tol=0.0, max_iter=2,
                         means_init=offsets[:k], random_state=0).fit(X)
    assert gm.covariances_.dtype == np.float32
    np.testing.assert_allclose(gm.covariances_, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("covariance_type", TYPES)
def test_data_far_from_the_origin_are_fitted_as_near_it(covariance_type):
    """EM, its k-means initialisation included, is translation-equivariant. 1e8 from the origin
    raw second moments are ~1e16, and variances of order one formed from them (s2/n - m^2) are
    rounding noise (scikit-learn's full covariances are centred and get it right)."""
    X, _, _ = blobs(n=300, seed=4)
    kw = dict(covariance_type=covariance_type, random_state=0, max_iter=20, tol=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        near = GaussianMixture(3, **kw).fit(X)
        far = GaussianMixture(3, **kw).fit(X + 1e8)
    np.testing.assert_allclose(far.means_ - 1e8, near.means_, atol=1e-6)
    for name in ("weights_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(far, name), getattr(near, name), rtol=1e-5, atol=1e-8, err_msg=name)
    assert far.lower_bound_ == pytest.approx(near.lower_bound_, abs=1e-6)
    np.testing.assert_allclose(far.score_samples(X + 1e8), near.score_samples(X), atol=1e-5)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_float32_densities_of_components_far_from_the_others(covariance_type):
    """float32 log-densities expanded about the mean of the means lose about eps32 * (distance /
    std)^2 nats: some 20 for components 1e4 standard deviations out. Two components overlapping
    there must share their rows as in float64, and scores must be those of the parameters."""
    rng = np.random.default_rng(0)
    off = 1e4
    X = np.vstack([rng.normal(size=(300, 2)) * [1.0, 3.0] + off, rng.normal(size=(300, 2)) * [3.0, 1.0] + off,
                   rng.normal(size=(300, 2)) - off])
    k, d = 3, 2
    precisions = {"full": np.tile(np.eye(d), (k, 1, 1)), "tied": np.eye(d), "diag": np.ones((k, d)),
                  "spherical": np.ones(k)}[covariance_type]
    kw = dict(covariance_type=covariance_type, means_init=[[off, off], [off + 0.1, off], [-off, -off]],
              weights_init=np.full(k, 1 / k), precisions_init=precisions, max_iter=10, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = GaussianMixture(k, **kw).fit(X)
        got = GaussianMixture(k, **kw).fit(X.astype(np.float32))
    assert got.means_.dtype == np.float32
    np.testing.assert_allclose(got.weights_, ref.weights_, atol=1e-3)
    X32 = X.astype(np.float32)
    scores = got.score_samples(X32)
    assert scores.dtype == np.float32
    cov = got.covariances_.astype(np.float64)
    full = {"full": lambda: cov, "tied": lambda: np.broadcast_to(cov, (k, d, d)),
            "diag": lambda: cov[:, :, None] * np.eye(d), "spherical": lambda: cov[:, None, None] * np.eye(d)}
    full = full[covariance_type]()
    want = logsumexp([np.log(got.weights_[j]) + multivariate_normal(got.means_[j].astype(np.float64), full[j])
                      .logpdf(X32.astype(np.float64)) for j in range(k)], axis=0)
    np.testing.assert_allclose(scores, want, atol=1e-2)


def test_failed_fit_leaves_the_model_as_it_was():
    """A fit that raises changes nothing: a fitted model keeps its parameters, and an unfitted
    warm-start model is not left half-initialised (the next fit crashed with AttributeError,
    as scikit-learn's does)."""
    X, _, _ = blobs(n=200, seed=5)
    collapsed = np.repeat(X[:1], 10, axis=0)
    model = GaussianMixture(2, random_state=0).fit(X)
    before = {name: np.copy(getattr(model, name)) for name in GaussianMixture._saved_attributes}
    with pytest.raises(ConvergenceError):
        model.set_params(reg_covar=0.0).fit(collapsed)
    for name, value in before.items():
        np.testing.assert_array_equal(getattr(model, name), value, err_msg=name)
    warm = GaussianMixture(2, reg_covar=0.0, warm_start=True, random_state=0)
    with pytest.raises(ConvergenceError):
        warm.fit(collapsed)
    assert not any(hasattr(warm, name) for name in GaussianMixture._saved_attributes)
    warm.set_params(reg_covar=1e-6).fit(X)
    fresh = GaussianMixture(2, random_state=0).fit(X)
    np.testing.assert_allclose(warm.means_, fresh.means_)


# --- EM over blocks of rows (data too large to hold at once) ---------------------------------------
def _in_blocks(X, sizes):
    """A re-iterable source of the rows of ``X`` in consecutive blocks of the given sizes."""
    cuts = np.cumsum(sizes)[:-1]
    return lambda: iter(np.split(X, cuts))


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fit_blocks_equals_fit_on_the_concatenation(covariance_type, dtype):
    """With no more rows than init_frames the initialisation sees every row in order, so fitting
    block by block gives the model fit() gives the concatenation (to rounding: the sums of the
    statistics are ordered differently), with the same iterations and lower bounds."""
    X = blobs(n=900, seed=7)[0].astype(dtype)
    whole = GaussianMixture(3, covariance_type=covariance_type, random_state=3).fit(X)
    blocks = GaussianMixture(3, covariance_type=covariance_type, random_state=3)
    blocks.fit_blocks(_in_blocks(X, [100, 1, 0, 450, 349]), init_frames=900)
    rtol = 1e-4 if dtype == np.float32 else 1e-9
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert getattr(blocks, name).dtype == dtype
        want = getattr(whole, name)
        np.testing.assert_allclose(getattr(blocks, name), want, rtol=rtol, atol=rtol * np.abs(want).max(),
                                   err_msg=name)
    assert blocks.n_iter_ == whole.n_iter_ and blocks.converged_ == whole.converged_
    np.testing.assert_allclose(blocks.lower_bounds_, whole.lower_bounds_, rtol=rtol)
    assert blocks.n_features_in_ == X.shape[1]


def test_fit_blocks_initialises_on_a_bounded_seeded_sample(monkeypatch):
    """More rows than init_frames: k-means sees a uniform sample of exactly init_frames rows, in
    their order in the data, drawn from random_state (the same sample every time, whatever the
    blocks); EM still runs over every row."""
    import gmmhmm.mixture.gmm as gmm_module

    X = blobs(n=3000, seed=8)[0]
    seen = []
    real = gmm_module.kmeans

    def spy(rows, *args, **kwargs):
        seen.append(np.array(rows))
        return real(rows, *args, **kwargs)

    monkeypatch.setattr(gmm_module, "kmeans", spy)
    fits = [GaussianMixture(3, covariance_type="diag", random_state=5).fit_blocks(_in_blocks(X, sizes),
                                                                                   init_frames=500)
            for sizes in ([700] * 4 + [200], [1] * 10 + [500, 499, 0, 1990])]
    assert len(seen) == 2 and seen[0].shape == (500, X.shape[1])
    np.testing.assert_array_equal(seen[0], seen[1])  # however the rows are cut into blocks
    # rows of X, each once, in the order of X, from every part of it
    where = [int(np.flatnonzero((X == row).all(axis=1))[0]) for row in seen[0]]
    assert where == sorted(set(where)) and where[0] < 700 and where[-1] >= 2800
    np.testing.assert_allclose(fits[0].means_, fits[1].means_, rtol=1e-12)  # sums in other blocks: rounding
    whole = GaussianMixture(3, covariance_type="diag", random_state=5).fit(X)
    order = np.argsort(fits[0].means_[:, 0])
    np.testing.assert_allclose(fits[0].means_[order], whole.means_[np.argsort(whole.means_[:, 0])], atol=0.05)
    assert fits[0].lower_bound_ == pytest.approx(whole.lower_bound_, rel=1e-3)


def test_fit_blocks_refuses_no_rows_and_a_sample_smaller_than_the_model():
    X = blobs(n=50, seed=9)[0]
    with pytest.raises(InvalidInputError, match="no rows"):
        GaussianMixture(2).fit_blocks(lambda: iter([X[:0]]))
    with pytest.raises(InvalidParameterError, match="init_frames"):
        GaussianMixture(4).fit_blocks(_in_blocks(X, [50]), init_frames=3)
    # blocks of other widths: named, not numpy's ValueError from joining them
    with pytest.raises(InvalidInputError, match=r"block 2 has shape \(10, 2\); the first had 3 columns"):
        GaussianMixture(2).fit_blocks(lambda: iter([X[:20], X[20:30, :2]]))
    with pytest.raises(InvalidInputError, match=r"block 1 has shape \(3,\)"):
        GaussianMixture(2).fit_blocks(lambda: iter([X[:3, 0]]))
