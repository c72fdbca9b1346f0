"""GaussianHMM: one Gaussian per state; drop-in for ``hmmlearn.hmm.GaussianHMM``."""

from __future__ import annotations

import logging

import numpy as np

from .. import _validation as V
from ..errors import InvalidParameterError
from ..mixture.gaussian import check_covariance_type, covariance_shape
from ..modelfile import ModelFileMixin, register_model_class
from ._kmeans import cluster_covariances, kmeans, nearest
from .base import BaseHMM
from .emissions import GaussianEmission, full_covariances

_log = logging.getLogger(__name__)


def data_covariance(X: np.ndarray, min_covar: float) -> np.ndarray:
    """Sample covariance of ``X`` plus ``min_covar`` on the diagonal, always (D, D)."""
    cv = np.atleast_2d(np.cov(X.T, bias=len(X) < 2))
    return cv + min_covar * np.eye(X.shape[1])


def global_variance(n: np.ndarray, s1: np.ndarray, s2: np.ndarray,
                    covariance_type: str) -> np.ndarray:
    """Per-dimension variance of all the data behind GaussianStats (posteriors sum to 1)."""
    total = n.sum()
    mean = s1.sum(axis=0) / total
    if covariance_type == "full":
        sq = np.einsum("kii->i", s2)
    elif covariance_type == "tied":
        sq = np.diag(s2)
    else:
        sq = s2.sum(axis=0)
    return np.maximum(sq / total - mean ** 2, 0.0)


def floor_covariances(covars: np.ndarray, floor: np.ndarray, covariance_type: str) -> np.ndarray:
    """Raise variances below ``floor`` (D,) to it (HTK vFloor).

    Full/tied matrices get the missing amount added to their diagonal, which
    keeps them positive definite.
    """
    if covariance_type == "diag":
        return np.maximum(covars, floor)
    if covariance_type == "spherical":
        return np.maximum(covars, floor.mean())
    diag = np.diagonal(covars, axis1=-2, axis2=-1)
    return covars + np.maximum(floor - diag, 0.0)[..., None] * np.eye(len(floor))


def repair_degenerate(covars: np.ndarray, covariance_type: str, min_covar: float) -> np.ndarray:
    """Lift non-positive variances (or eigenvalues) to ``min_covar``, with a warning.

    Happens when a state or mixture component collapses onto a few frames
    with a flat prior; without it the next E-step would see a singular
    Gaussian. Healthy covariances are returned unchanged.
    """
    if covariance_type in ("diag", "spherical"):
        bad = ~(covars > 0)
        if bad.any():
            _log.warning("%d variance(s) collapsed to <= 0; set to min_covar=%g (consider "
                         "covars_floor_fraction or a covars_prior)", int(bad.sum()), min_covar)
            covars = np.where(bad, min_covar, covars)
        return covars
    D = covars.shape[-1]
    mats = covars.reshape(-1, D, D)
    low = np.linalg.eigvalsh(mats)[:, 0]
    bad = ~(low > 1e-12 * np.abs(mats).max(axis=(1, 2)))
    if bad.any():
        _log.warning("%d covariance matrix/matrices became singular; regularised with "
                     "min_covar=%g", int(bad.sum()), min_covar)
        mats = mats.copy()
        mats[bad] += (np.maximum(min_covar - low[bad], 0.0) + min_covar)[:, None, None] * np.eye(D)
    return mats.reshape(covars.shape)


@register_model_class
class GaussianHMM(ModelFileMixin, BaseHMM):
    """Hidden Markov model with one Gaussian per state.

    Same constructor, attributes and methods as ``hmmlearn.hmm.GaussianHMM``
    (0.3.3); forward-backward and Viterbi run in compiled numba kernels.

    Parameters
    ----------
    n_components : int
        Number of states.
    covariance_type : {"spherical", "diag", "full", "tied"}
    min_covar : float
        Added to the diagonal of the data covariance used to initialise
        ``covars_``.
    startprob_prior, transmat_prior : float or array
        Dirichlet prior parameters for ``startprob_`` / rows of ``transmat_``.
    means_prior, means_weight : float or array
        Mean and precision of the Normal prior on ``means_``.
    covars_prior, covars_weight : float or array
        Inverse-gamma (diag/spherical) or inverse-Wishart (full/tied) prior
        on ``covars_``.
    algorithm : {"viterbi", "map"}
        Decoder used by ``decode`` / ``predict``.
    random_state : None, int or RandomState
    n_iter : int
        Maximum number of EM iterations.
    tol : float
        Stop when the log-likelihood gain is below ``tol``.
    verbose : bool
        Print per-iteration log-likelihoods to stderr.
    params, init_params : str
        Parameters updated during (``params``) / initialised before
        (``init_params``) training: 's' startprob, 't' transmat, 'm' means,
        'c' covars. Leave 's'/'t' out of ``init_params`` to keep a topology
        you set (see :mod:`gmmhmm.hmm.topology`).
    implementation : {"log", "scaling"}
        Forward-backward in log space or with scaling (faster). Both give the
        same results to rounding.
    covars_floor_fraction : float or None
        If set, after every M-step variances are floored at this fraction of
        the global per-dimension data variance (HTK's vFloor, e.g. 0.01).

    Attributes
    ----------
    n_features : int
    startprob_ : ndarray (n_components,)
    transmat_ : ndarray (n_components, n_components)
    means_ : ndarray (n_components, n_features)
    covars_ : ndarray (n_components, n_features, n_features)
        As in hmmlearn the getter always returns full matrices; the setter
        also accepts the compact shape of ``covariance_type``
        ((n_components,) spherical, (n_components, n_features) diag,
        (n_features, n_features) tied).
    monitor_ : ConvergenceMonitor
    """

    _saved_attributes = BaseHMM._saved_attributes + ("means_", "covars_", "endprob_")

    def __init__(self, n_components=1, covariance_type="diag", min_covar=1e-3,
                 startprob_prior=1.0, transmat_prior=1.0, means_prior=0, means_weight=0,
                 covars_prior=1e-2, covars_weight=1, algorithm="viterbi", random_state=None,
                 n_iter=10, tol=1e-2, verbose=False, params="stmc", init_params="stmc",
                 implementation="log", covars_floor_fraction=None):
        super().__init__(n_components=n_components, startprob_prior=startprob_prior,
                         transmat_prior=transmat_prior, algorithm=algorithm,
                         random_state=random_state, n_iter=n_iter, tol=tol, verbose=verbose,
                         params=params, init_params=init_params, implementation=implementation)
        self.covariance_type = covariance_type
        self.min_covar = min_covar
        self.means_prior = means_prior
        self.means_weight = means_weight
        self.covars_prior = covars_prior
        self.covars_weight = covars_weight
        self.covars_floor_fraction = covars_floor_fraction

    # ----------------------------------------------------------- covars_

    @property
    def covars_(self) -> np.ndarray:
        """Covariances as (n_components, n_features, n_features) matrices."""
        D = self.means_.shape[1] if hasattr(self, "means_") else self._covars_.shape[-1]
        return full_covariances(self._covars_, self.covariance_type, self.n_components, D)

    @covars_.setter
    def covars_(self, covars) -> None:
        covars = np.array(covars, dtype=np.float64)
        ctype = check_covariance_type(self.covariance_type)
        if covars.ndim == 3 and ctype != "full":  # full matrices from the getter
            if ctype == "tied":
                covars = covars[0]
            else:
                covars = np.diagonal(covars, axis1=1, axis2=2).copy()
        if ctype == "spherical" and covars.ndim == 2:
            covars = covars.mean(axis=1)
        self._covars_ = covars

    # ------------------------------------------------ emission interface

    def _emission(self) -> GaussianEmission:
        return GaussianEmission(self.means_, self._covars_, self.covariance_type)

    def _check_emission(self) -> None:
        ctype = check_covariance_type(self.covariance_type)
        V.check_is_fitted(self, "means_")
        S = self.n_components
        means = np.asarray(self.means_, dtype=np.float64)
        if means.ndim != 2 or means.shape[0] != S or not np.all(np.isfinite(means)):
            raise InvalidParameterError(
                f"means_ must be finite with shape (n_components={S}, n_features), got {means.shape}")
        self.means_ = means
        D = means.shape[1]
        self.n_features = D
        shape = covariance_shape(ctype, S, D)
        if not hasattr(self, "_covars_"):
            raise InvalidParameterError("covars_ is not set")
        cov = self._covars_
        if cov.shape != shape:
            raise InvalidParameterError(f"{ctype!r} covars_ must have shape {shape}, got {cov.shape}")
        if not np.all(np.isfinite(cov)):
            raise InvalidParameterError("covars_ contains NaN or infinity")
        if ctype in ("spherical", "diag") and np.any(cov <= 0):
            raise InvalidParameterError(f"{ctype!r} covars_ must be positive")
        if ctype in ("full", "tied"):
            mats = cov.reshape(-1, D, D)
            if not np.allclose(mats, np.swapaxes(mats, 1, 2)) or np.any(np.linalg.eigvalsh(mats) <= 0):
                raise InvalidParameterError(f"{ctype!r} covars_ must be symmetric, positive-definite")

    def _init_emission(self, X: np.ndarray, lengths: np.ndarray, rng,
                       need_labels: bool) -> np.ndarray | None:
        ctype = check_covariance_type(self.covariance_type)
        S = self.n_components
        if self._needs_init("m", "means_"):
            self.means_ = kmeans(X, S, rng)[0]
        init_c = self._needs_init("c", "_covars_")
        if not (init_c or need_labels):
            return None
        labels = nearest(X, np.asarray(self.means_, dtype=np.float64))
        if init_c:
            # Within-cluster covariances around the initial means (hmmlearn
            # uses the global covariance, which often stalls EM).
            cv = data_covariance(X, self.min_covar)
            covs = cluster_covariances(X, labels, S, cv, self.min_covar)
            counts = np.bincount(labels, minlength=S)
            self._covars_ = {
                "spherical": lambda: np.einsum("kii->k", covs) / X.shape[1],
                "diag": lambda: np.einsum("kii->ki", covs).copy(),
                "full": lambda: covs,
                "tied": lambda: np.einsum("k,kij->ij", counts, covs) / counts.sum(),
            }[ctype]()
        return labels

    def _get_n_fit_scalars_per_param(self) -> dict[str, int]:
        S, D = self.n_components, self.n_features
        return {
            "s": S - 1,
            "t": S * (S - 1),
            "m": S * D,
            "c": {"spherical": S, "diag": S * D, "full": S * D * (D + 1) // 2,
                  "tied": D * (D + 1) // 2}[self.covariance_type],
        }

    # ---------------------------------------------------------- M-step

    def _update_emission(self, stats) -> None:
        """Means and covariances from GaussianStats (MAP as hmmlearn, Huang et al. p. 443)."""
        ctype = self.covariance_type
        n, s1, s2 = stats.n, stats.s1, stats.s2
        denom = n[:, None]
        mp, mw = self.means_prior, self.means_weight
        # A state that received no data (and no prior weight) keeps its
        # previous mean and covariance instead of becoming 0/0 = NaN.
        empty = (n <= 0) & bool(np.all(np.asarray(mw) <= 0))
        if empty.any():
            _log.warning("state(s) %s received no data; keeping their previous parameters",
                         np.flatnonzero(empty).tolist())
        old_cov = self._covars_
        if "m" in self.params:
            with np.errstate(invalid="ignore", divide="ignore"):
                self.means_ = np.where(empty[:, None], self.means_, (mw * mp + s1) / (mw + denom))
        if "c" not in self.params:
            return
        means = self.means_
        cp, cw = self.covars_prior, self.covars_weight
        meandiff = means - mp
        if ctype in ("spherical", "diag"):
            c_n = mw * meandiff ** 2 + s2 - 2 * means * s1 + means ** 2 * denom
            c_d = max(cw - 1, 0) + denom
            cov = (cp + c_n) / np.maximum(c_d, 1e-5)
            if ctype == "spherical":
                cov = cov.mean(axis=1)
        else:
            D = means.shape[1]
            outer = np.einsum("ki,kj->kij", means, s1)
            mm = np.einsum("ki,kj->kij", means, means)
            md = np.einsum("ki,kj->kij", meandiff, meandiff)
            cvweight = max(cw - D, 0)
            if ctype == "full":
                c_n = np.asarray(mw)[..., None, None] * md + s2 - outer - np.swapaxes(outer, 1, 2) \
                    + mm * n[:, None, None]
                with np.errstate(invalid="ignore", divide="ignore"):  # empty states: replaced below
                    cov = (cp + c_n) / (cvweight + n[:, None, None])
            else:  # tied: s2 is the (D, D) total
                c_n = (np.asarray(mw)[..., None, None] * md).sum(axis=0) + s2 \
                    - (outer + np.swapaxes(outer, 1, 2) - mm * n[:, None, None]).sum(axis=0)
                cov = (cp + c_n) / (cvweight + n.sum())
        if self.covars_floor_fraction is not None:
            floor = self.covars_floor_fraction * global_variance(n, s1, s2, ctype)
            cov = floor_covariances(cov, floor, ctype)
        if ctype != "tied" and empty.any():
            cov = np.where(empty.reshape((-1,) + (1,) * (cov.ndim - 1)), old_cov, cov)
        self._covars_ = repair_degenerate(cov, ctype, self.min_covar)
