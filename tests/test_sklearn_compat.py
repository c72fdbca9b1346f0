"""gmmhmm's estimators inside scikit-learn: tags, meta-estimators, exception classes.

scikit-learn is a test dependency only; these tests check that code written
for scikit-learn runs after changing the import.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sklearn.exceptions
from sklearn.base import clone, is_classifier
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import check_estimator

from gmmhmm import GaussianHMM, GaussianMixture, GMMHMM
from gmmhmm.classifier import HMMClassifier
from gmmhmm.errors import ConvergenceWarning, NotFittedError

ESTIMATORS = [
    GaussianMixture(n_components=2, random_state=0),
    GaussianHMM(n_components=2, n_iter=5, random_state=0),
    GMMHMM(n_components=2, n_mix=2, n_iter=5, random_state=0),
]
IDS = [type(e).__name__ for e in ESTIMATORS]


@pytest.fixture(scope="module")
def X():
    rng = np.random.default_rng(0)
    return np.vstack([rng.normal(-3, 1, size=(90, 2)), rng.normal(3, 1, size=(90, 2))])


@pytest.mark.parametrize("est", ESTIMATORS, ids=IDS)
def test_tags_say_density_estimator(est):
    assert get_tags(est).estimator_type == "density_estimator"
    assert get_tags(est).target_tags.required is False


@pytest.mark.parametrize("est", ESTIMATORS, ids=IDS)
def test_clone_gives_unfitted_equal_params(est, X):
    fitted = clone(est).fit(X)
    copy = clone(fitted)
    assert copy.get_params() == est.get_params()
    assert not hasattr(copy, "means_")


@pytest.mark.parametrize("est", ESTIMATORS, ids=IDS)
def test_pipeline_scores_like_the_bare_model_on_scaled_data(est, X):
    pipe = Pipeline([("scale", StandardScaler()), ("model", clone(est))]).fit(X)
    bare = clone(est).fit(StandardScaler().fit_transform(X))
    assert pipe.score(X) == pytest.approx(bare.score(StandardScaler().fit_transform(X)), rel=1e-10)


@pytest.mark.parametrize("est", ESTIMATORS, ids=IDS)
def test_grid_search_prefers_two_components_on_two_clusters(est, X):
    search = GridSearchCV(clone(est), {"n_components": [1, 2]}, cv=3).fit(X)
    assert search.best_params_ == {"n_components": 2}
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


@pytest.mark.parametrize("est", ESTIMATORS, ids=IDS)
def test_cross_val_score_equals_manual_folds(est, X):
    from sklearn.model_selection import KFold

    cv = KFold(3)
    scores = cross_val_score(clone(est), X, cv=cv)
    manual = [clone(est).fit(X[tr]).score(X[te]) for tr, te in cv.split(X)]
    np.testing.assert_allclose(scores, manual, rtol=1e-10)


def test_classifier_tags():
    clf = HMMClassifier()
    assert is_classifier(clf)
    assert get_tags(clf).target_tags.required is True


def test_sklearn_not_fitted_error_catches_gmmhmm():
    assert issubclass(NotFittedError, sklearn.exceptions.NotFittedError)
    with pytest.raises(sklearn.exceptions.NotFittedError):
        GaussianMixture().predict(np.zeros((3, 2)))
    with pytest.raises(AttributeError):  # hmmlearn / older code catches this
        GaussianHMM().score(np.zeros((3, 2)))


def test_sklearn_convergence_warning_filter_silences_gmmhmm(X):
    assert issubclass(ConvergenceWarning, sklearn.exceptions.ConvergenceWarning)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=sklearn.exceptions.ConvergenceWarning)
        GaussianMixture(n_components=3, max_iter=1, tol=0, random_state=0).fit(X)
    assert not [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    with pytest.warns(sklearn.exceptions.ConvergenceWarning):
        GaussianMixture(n_components=3, max_iter=1, tol=0, random_state=0).fit(X)


# scikit-learn's own estimator checks on GaussianMixture. Every check passes
# except these, each a deliberate difference:
EXPECTED_CHECK_FAILURES = {
    # gmmhmm's estimators do not inherit sklearn.base.BaseEstimator (scikit-learn is
    # not a run-time dependency); no check fails for it, scikit-learn only warns.
}


def test_check_estimator_gaussian_mixture():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(GaussianMixture(), on_fail=None)
    failed = {r["check_name"]: r["exception"] for r in results if r["status"] == "failed"}
    unexpected = {k: repr(v)[:300] for k, v in failed.items() if k not in EXPECTED_CHECK_FAILURES}
    assert not unexpected
    assert len(results) >= 40


@pytest.mark.parametrize("dtype, X_dtype, expected", [
    (None, np.float32, np.float32), (None, np.float64, np.float64), (None, np.int64, np.float64),
    ("float64", np.float32, np.float64), ("float32", np.float64, np.float32)])
def test_parameter_dtype_follows_X_unless_given(dtype, X_dtype, expected):
    """scikit-learn keeps float32 data in float32; ``dtype`` overrides it."""
    from gmmhmm import GaussianMixture

    rng = np.random.RandomState(0)
    X = (rng.normal(size=(60, 2)) * 10).astype(X_dtype)
    gm = GaussianMixture(2, dtype=dtype, random_state=0).fit(X)
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert getattr(gm, name).dtype == expected, name
    assert gm.score_samples(X).dtype == expected


@pytest.mark.parametrize("first, then", [(np.float32, np.float64), (np.float64, np.float32)])
def test_a_warm_fit_follows_the_new_X_dtype_too(first, then):
    """The parameters follow X on every fit: a float32 model warm-fitted to float64 rows becomes
    float64, as scikit-learn's (whose float64 model on float32 rows ends half float32, half float64)."""
    from gmmhmm import GaussianMixture

    X = np.random.RandomState(0).normal(size=(60, 2))
    gm = GaussianMixture(2, warm_start=True, random_state=0).fit(X.astype(first))
    gm.fit(X.astype(then))
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert getattr(gm, name).dtype == then, name
    assert gm.score_samples(X.astype(then)).dtype == then


def test_singular_fit_is_worded_as_scikit_learn():
    from gmmhmm import GaussianMixture
    from gmmhmm.errors import ConvergenceError

    X = np.random.RandomState(0).normal(size=(6, 2))
    with pytest.raises(ConvergenceError, match="ill-defined empirical covariance"):
        GaussianMixture(6, reg_covar=0.0, random_state=0).fit(X)


def test_float32_model_scores_float64_rows_in_float64_as_scikit_learn():
    """scikit-learn scores rows in their own precision: float64 rows on a float32 model give
    float64 log-likelihoods and posteriors (gmmhmm rounded the rows to float32 first)."""
    from scipy.special import logsumexp
    from scipy.stats import multivariate_normal
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    from gmmhmm import GaussianMixture

    rng = np.random.RandomState(0)
    X = rng.normal(size=(80, 2)) * [1.0, 1e3] + [0.0, 1e4]
    got = GaussianMixture(2, random_state=0).fit(X.astype(np.float32))
    ref = SkGaussianMixture(2)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"):
        setattr(ref, name, getattr(got, name))
    ref.n_features_in_, ref.converged_ = 2, True
    # the float32 parameters, exactly (scikit-learn itself rounds mu @ U to float32: 1e-7 off)
    joint = np.stack([np.log(w) + multivariate_normal(m, c).logpdf(X) for w, m, c in
                      zip(got.weights_.astype(float), got.means_.astype(float), got.covariances_.astype(float))], 1)
    exact = {"score_samples": logsumexp(joint, axis=1), "predict_proba": np.exp(joint - logsumexp(joint, 1)[:, None])}
    for method in ("score_samples", "predict_proba"):
        out = getattr(got, method)(X)
        assert out.dtype == getattr(ref, method)(X).dtype == np.float64, method
        np.testing.assert_allclose(out, exact[method], rtol=2e-8, atol=1e-7, err_msg=method)
        assert getattr(got, method)(X.astype(np.float32)).dtype == np.float32, method
    assert got.score(X) == pytest.approx(exact["score_samples"].mean(), rel=2e-8)
    np.testing.assert_array_equal(got.predict(X), ref.predict(X))


def test_sample_dtype_is_sklearns_unless_dtype_given():
    """scikit-learn's sample returns float64 draws even from a model fitted to float32 rows;
    an explicit dtype='float32' keeps gmmhmm's single precision."""
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    from gmmhmm import GaussianMixture

    X = np.random.RandomState(0).normal(size=(60, 2)).astype(np.float32)
    ref = SkGaussianMixture(2, random_state=0).fit(X)
    got = GaussianMixture(2, random_state=0).fit(X)
    assert got.means_.dtype == ref.means_.dtype == np.float32
    assert got.sample(4)[0].dtype == ref.sample(4)[0].dtype == np.float64
    np.testing.assert_allclose(got.sample(4)[0], ref.sample(4)[0], rtol=1e-5)
    assert GaussianMixture(2, random_state=0, dtype="float32").fit(X).sample(4)[0].dtype == np.float32
