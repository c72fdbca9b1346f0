"""One Baum-Welch iteration from identical parameters matches hmmlearn 0.3.3."""

from __future__ import annotations

import numpy as np
import pytest
from hmmlearn import hmm as hmm_ref  # reference implementation (test dependency)

from gmmhmm.hmm import GMMHMM, GaussianHMM

S, M, D = 3, 2, 3


def _data(seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(S, D))
    lengths = np.array([40, 25, 60, 35])
    states = rng.integers(S, size=lengths.sum())
    X = centers[states] + rng.normal(size=(lengths.sum(), D)) @ rng.normal(size=(D, D)) * 0.5
    return X, lengths


def _spd(rng, n):
    a = rng.normal(size=(n, D, D))
    return a @ np.swapaxes(a, 1, 2) + np.eye(D)


def _gaussian_params(ctype, rng):
    covars = {"spherical": rng.uniform(0.5, 2, S), "diag": rng.uniform(0.5, 2, (S, D)),
              "full": _spd(rng, S), "tied": _spd(rng, 1)[0]}[ctype]
    return dict(startprob_=rng.dirichlet(np.ones(S)), transmat_=rng.dirichlet(np.ones(S), size=S),
                means_=rng.normal(scale=3.0, size=(S, D)), covars_=covars)


def _gmm_params(ctype, rng):
    covars = {"spherical": rng.uniform(0.5, 2, (S, M)), "diag": rng.uniform(0.5, 2, (S, M, D)),
              "full": _spd(rng, S * M).reshape(S, M, D, D), "tied": _spd(rng, S)}[ctype]
    return dict(startprob_=rng.dirichlet(np.ones(S)), transmat_=rng.dirichlet(np.ones(S), size=S),
                weights_=rng.dirichlet(np.ones(M), size=S), means_=rng.normal(scale=3.0, size=(S, M, D)),
                covars_=covars)


def _set(model, params):
    for k, v in params.items():
        setattr(model, k, np.array(v, copy=True))
    return model


def _close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("implementation", ["log", "scaling"])
@pytest.mark.parametrize("ctype", ["diag", "full", "tied", "spherical"])
def test_gaussian_hmm_one_iteration_matches_hmmlearn(ctype, implementation):
    X, lengths = _data()
    params = _gaussian_params(ctype, np.random.default_rng(1))
    kw = dict(n_components=S, covariance_type=ctype, n_iter=1, init_params="",
              implementation=implementation, means_prior=0.3, means_weight=0.5)
    ours = _set(GaussianHMM(**kw), params)
    ref = _set(hmm_ref.GaussianHMM(**kw), params)
    _close(ours.score(X, lengths), ref.score(X, lengths))
    ours.fit(X, lengths)
    ref.fit(X, lengths)
    _close(ours.monitor_.history[-1], ref.monitor_.history[-1])
    for name in ("startprob_", "transmat_", "means_"):
        _close(getattr(ours, name), getattr(ref, name))
    if ctype == "spherical":  # hmmlearn stores spherical variances tiled over features
        _close(ours._covars_, ref._covars_.mean(axis=1))
    else:
        _close(ours.covars_, ref.covars_)
    _close(ours.score(X, lengths), ref.score(X, lengths))
    lp, post = ours.score_samples(X, lengths)
    lp_ref, post_ref = ref.score_samples(X, lengths)
    _close(lp, lp_ref)
    _close(post, post_ref)
    for algorithm in ("viterbi", "map"):
        lp, states = ours.decode(X, lengths, algorithm=algorithm)
        lp_ref, states_ref = ref.decode(X, lengths, algorithm=algorithm)
        _close(lp, lp_ref)
        np.testing.assert_array_equal(states, states_ref)


@pytest.mark.parametrize("implementation", ["log", "scaling"])
@pytest.mark.parametrize("ctype", ["diag", "full", "tied", "spherical"])
def test_gmmhmm_one_iteration_matches_hmmlearn(ctype, implementation):
    X, lengths = _data(2)
    params = _gmm_params(ctype, np.random.default_rng(3))
    kw = dict(n_components=S, n_mix=M, covariance_type=ctype, n_iter=1, init_params="",
              implementation=implementation)
    ours = _set(GMMHMM(covars_centering="previous", **kw), params)
    ref = _set(hmm_ref.GMMHMM(**kw), params)
    _close(ours.score(X, lengths), ref.score(X, lengths))
    ours.fit(X, lengths)
    ref.fit(X, lengths)
    _close(ours.monitor_.history[-1], ref.monitor_.history[-1])
    for name in ("startprob_", "transmat_", "weights_", "means_", "covars_"):
        _close(getattr(ours, name), getattr(ref, name))
    _close(ours.score(X, lengths), ref.score(X, lengths))
    lp, states = ours.decode(X, lengths)
    lp_ref, states_ref = ref.decode(X, lengths)
    _close(lp, lp_ref)
    np.testing.assert_array_equal(states, states_ref)


def test_gmmhmm_exact_em_differs_only_in_covariances():
    """'updated' centring (exact EM) gives hmmlearn's weights and means, tighter covariances."""
    X, lengths = _data(4)
    params = _gmm_params("diag", np.random.default_rng(5))
    kw = dict(n_components=S, n_mix=M, covariance_type="diag", n_iter=1, init_params="")
    ours = _set(GMMHMM(**kw), params).fit(X, lengths)
    ref = _set(hmm_ref.GMMHMM(**kw), params).fit(X, lengths)
    for name in ("startprob_", "transmat_", "weights_", "means_"):
        _close(getattr(ours, name), getattr(ref, name))
    # centring on the new means minimises the scatter: never larger
    assert np.all(ours.covars_ <= ref.covars_ * (1 + 1e-9))
    assert not np.allclose(ours.covars_, ref.covars_)


def test_sample_matches_hmmlearn_draw_for_draw():
    params = _gaussian_params("full", np.random.default_rng(6))
    ours = _set(GaussianHMM(S, covariance_type="full"), params)
    ref = _set(hmm_ref.GaussianHMM(S, covariance_type="full"), params)
    X, Z = ours.sample(50, random_state=11)
    X_ref, Z_ref = ref.sample(50, random_state=11)
    np.testing.assert_array_equal(Z, Z_ref)
    np.testing.assert_allclose(X, X_ref)


def test_information_criteria_match_hmmlearn():
    X, lengths = _data(8)
    params = _gaussian_params("diag", np.random.default_rng(9))
    ours = _set(GaussianHMM(S), params)
    ref = _set(hmm_ref.GaussianHMM(S), params)
    ref.n_features = D
    _close(ours.aic(X, lengths), ref.aic(X, lengths))
    _close(ours.bic(X, lengths), ref.bic(X, lengths))


def test_gmmhmm_information_criteria_count_every_states_weights():
    """hmmlearn counts M - 1 mixture weights for all S states; the free parameters are S (M - 1)."""
    X, lengths = _data(10)
    params = _gmm_params("diag", np.random.default_rng(11))
    ours = _set(GMMHMM(S, n_mix=M), params)
    ref = _set(hmm_ref.GMMHMM(S, n_mix=M), params)
    ref.n_features = D
    extra = (S - 1) * (M - 1)
    _close(ours.aic(X, lengths), ref.aic(X, lengths) + 2 * extra)
    _close(ours.bic(X, lengths), ref.bic(X, lengths) + extra * np.log(len(X)))
