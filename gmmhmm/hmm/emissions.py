"""Emission objects: per-state frame log-likelihoods and their statistics.

An emission is built from a model's current parameters and is read-only.
The HMM base class only calls

* ``log_likelihood(X, need_cache=True) -> (framelogprob (N, S), cache)``
* ``accumulate(X, state_posteriors (N, S), cache) -> GaussianStats``
* ``sample(state, rng) -> (n_features,)``
* ``n_columns``: Gaussians evaluated per frame (sizes the work arrays)

Both emissions reuse :mod:`gmmhmm.mixture.gaussian` for the densities and
:class:`gmmhmm.mixture.stats.GaussianStats` for the statistics.
:class:`GMMEmission` is the one mixture layout of the package: ``GMMHMM``
and the phone models (:meth:`gmmhmm.graphs.PhoneModelSet.emission`, whose
``(n_pdfs * n_mix, D)`` arrays are the same stacked components) both score
and accumulate through it.
"""

from __future__ import annotations

import copy

import numpy as np

from ..mixture.gaussian import (DensityPlan, accumulate_gaussians, log_densities, mixture_log_likelihood,
                                precisions_cholesky_from_covariances)
from ..mixture.stats import GaussianStats


def full_covariances(covars: np.ndarray, covariance_type: str, n_components: int,
                     n_features: int) -> np.ndarray:
    """Expand sklearn-shaped covariances to (n_components, D, D) matrices."""
    covars = np.asarray(covars, dtype=np.float64)
    if covariance_type == "full":
        return covars
    if covariance_type == "diag":
        return covars[:, :, None] * np.eye(n_features)
    if covariance_type == "tied":
        return np.broadcast_to(covars, (n_components, n_features, n_features)).copy()
    return covars.reshape(-1)[:, None, None] * np.eye(n_features)  # spherical


class GaussianEmission:
    """One Gaussian per state (sklearn covariance shapes)."""

    def __init__(self, means: np.ndarray, covars: np.ndarray, covariance_type: str):
        self.means = np.asarray(means, dtype=np.float64)
        self.covars = np.asarray(covars, dtype=np.float64)
        self.covariance_type = covariance_type
        self.plan = DensityPlan(self.means, precisions_cholesky_from_covariances(self.covars, covariance_type),
                                covariance_type, dtype=np.float64)  # once per E-step, not per batch
        self.n_columns = self.means.shape[0]

    def log_likelihood(self, X: np.ndarray, need_cache: bool = True):
        """State log-likelihoods (N, S); the cache holds the design rows, if kept."""
        return log_densities(X, self.plan, need_cache)

    def accumulate(self, X: np.ndarray, posteriors: np.ndarray, cache) -> GaussianStats:
        return accumulate_gaussians(X, posteriors, cache, self.covariance_type)

    def sample(self, state: int, rng: np.random.RandomState) -> np.ndarray:
        S, D = self.means.shape
        cov = full_covariances(self.covars, self.covariance_type, S, D)[state]
        return rng.multivariate_normal(self.means[state], cov)


class GMMEmission:
    """A Gaussian mixture per state, evaluated as one stacked set of S*M Gaussians.

    Component ``s * n_mix + m`` is mixture ``m`` of state ``s``. hmmlearn's
    per-state ``'tied'`` covariance (one matrix per state, shared by its
    mixtures) is evaluated and accumulated as ``'full'`` with repeated matrices.

    Parameters
    ----------
    weights : (S, M)
    means : (S, M, D)
    covars : (S, M) spherical, (S, M, D) diag, (S, M, D, D) full, (S, D, D) tied
    """

    def __init__(self, weights: np.ndarray, means: np.ndarray, covars: np.ndarray,
                 covariance_type: str):
        self.weights = np.asarray(weights, dtype=np.float64)
        S, M, D = np.shape(means)
        self.n_states, self.n_mix = S, M
        self.n_columns = S * M
        self.states, self.components = np.arange(S), np.arange(S * M)  # of the emission it was built as (subset)
        self.means = np.asarray(means, dtype=np.float64).reshape(S * M, D)
        covars = np.asarray(covars, dtype=np.float64)
        if covariance_type == "tied":
            covars = np.repeat(covars, M, axis=0)
            self.stats_type = "full"
        else:
            covars = covars.reshape((S * M,) + covars.shape[2:])
            self.stats_type = covariance_type
        self.covariance_type = covariance_type
        self.covars = covars  # stacked, in stats_type shape
        with np.errstate(divide="ignore"):
            log_weights = np.log(self.weights).reshape(S * M)
        # log weights ride in the density GEMM (the design's last column is exactly 1, so -inf stays -inf)
        self.plan = DensityPlan(self.means, precisions_cholesky_from_covariances(covars, self.stats_type),
                                self.stats_type, dtype=np.float64, log_weights=log_weights)

    def subset(self, states: np.ndarray) -> "GMMEmission":
        """The emission of ``states`` alone (sorted unique indices), in that order: column ``j`` of
        its log-likelihoods is state ``states[j]``'s. An utterance's graph visits a few of a model's
        states; scoring only those is what HTK and Kaldi do too. Its Gaussians are
        ``self`` 's :attr:`components` (for :meth:`GaussianStats.add_at`), its states :attr:`states`."""
        states = np.asarray(states, dtype=np.intp)
        cols = (states[:, None] * self.n_mix + np.arange(self.n_mix)).ravel()
        out = copy.copy(self)
        out.n_states, out.n_columns = len(states), len(cols)
        out.states, out.components = self.states[states], self.components[cols]  # of the full emission
        out.weights, out.means, out.covars = self.weights[states], self.means[cols], self.covars[cols]
        out.plan = self.plan.subset(cols)
        return out

    def log_likelihood(self, X: np.ndarray, need_cache: bool = True):
        """State log-likelihoods (N, S); the cache holds the within-state
        responsibilities and the design rows, if kept."""
        comp, design = log_densities(X, self.plan, need_cache)
        state = mixture_log_likelihood(comp, self.n_mix)  # comp := within-state responsibilities
        return state, ((comp, design) if need_cache else None)

    def component_posteriors(self, posteriors: np.ndarray, cache) -> np.ndarray:
        """Per-Gaussian posteriors (N, S*M): state posteriors (N, S) times the within-state
        responsibilities of ``cache``, which this consumes (weighted in place, no copy)."""
        within = cache[0]
        resp = within.reshape(within.shape[0], self.n_states, self.n_mix)  # a view
        resp *= posteriors[:, :, None]
        return within

    def accumulate(self, X: np.ndarray, posteriors: np.ndarray, cache) -> GaussianStats:
        return accumulate_gaussians(X, self.component_posteriors(posteriors, cache), cache[1], self.stats_type)

    def sample(self, state: int, rng: np.random.RandomState) -> np.ndarray:
        m = rng.choice(self.n_mix, p=self.weights[state])
        k = state * self.n_mix + m
        D = self.means.shape[1]
        cov = full_covariances(self.covars[k:k + 1], self.stats_type, 1, D)[0]
        return rng.multivariate_normal(self.means[k], cov)
