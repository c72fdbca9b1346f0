"""Property tests: Baum-Welch never decreases the log-likelihood; posteriors are distributions."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gmmhmm.hmm import GMMHMM, GaussianHMM


def _data(seed: int, n_seq: int, length: int, n_features: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(3, n_features))
    lengths = [length] * n_seq
    states = rng.integers(3, size=n_seq * length)
    return centers[states] + rng.normal(size=(n_seq * length, n_features)), lengths


def _non_decreasing(history: list[float]) -> None:
    for before, after in zip(history, history[1:]):
        assert after >= before - 1e-9 * abs(before), history


@settings(max_examples=12, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000), n_components=st.integers(1, 3),
       covariance_type=st.sampled_from(["diag", "full", "tied", "spherical"]),
       implementation=st.sampled_from(["log", "scaling"]),
       n_seq=st.integers(2, 4), length=st.integers(20, 50))
def test_gaussian_hmm_em_never_decreases_likelihood(seed, n_components, covariance_type,
                                                    implementation, n_seq, length):
    X, lengths = _data(seed, n_seq, length, 2)
    # covars_prior=0: maximum likelihood, so EM is monotone in the likelihood itself
    model = GaussianHMM(n_components, covariance_type=covariance_type, covars_prior=0.0,
                        min_covar=1e-2, implementation=implementation, random_state=seed,
                        n_iter=1, init_params="stmc")
    model.fit(X, lengths)
    model.init_params = ""
    history = []
    for _ in range(6):
        stats = model.accumulate(X, lengths)
        history.append(stats.log_prob)
        lp, post = model.score_samples(X, lengths)
        assert lp == np.float64(stats.log_prob) or abs(lp - stats.log_prob) < 1e-8 * abs(lp)
        np.testing.assert_allclose(post.sum(axis=1), 1.0, atol=1e-10)
        model.update(stats)
    _non_decreasing(history)


@settings(max_examples=10, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000), n_components=st.integers(1, 3), n_mix=st.integers(1, 2),
       covariance_type=st.sampled_from(["diag", "full", "spherical"]),
       n_seq=st.integers(2, 4), length=st.integers(25, 50))
def test_gmmhmm_exact_em_never_decreases_likelihood(seed, n_components, n_mix, covariance_type,
                                                    n_seq, length):
    X, lengths = _data(seed, n_seq, length, 2)
    # hmmlearn's default spherical prior is not flat unless n_mix == n_features;
    # this one is, so the M-step is maximum likelihood and EM is monotone.
    flat = dict(covars_prior=-2.0, covars_weight=0.0) if covariance_type == "spherical" else {}
    model = GMMHMM(n_components, n_mix=n_mix, covariance_type=covariance_type,
                   implementation="scaling", random_state=seed, n_iter=6, tol=-np.inf,
                   min_covar=1e-2, **flat)
    model.fit(X, lengths)
    assert model.monitor_.iter == 6
    _non_decreasing(list(model.monitor_.history))
