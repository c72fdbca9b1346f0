"""GaussianHMM: one Gaussian per state; drop-in for ``hmmlearn.hmm.GaussianHMM``."""

from __future__ import annotations

import numpy as np

from .. import _validation as V
from ..errors import InvalidParameterError
from ..mixture.estimate import GaussianParams, GaussianUpdateOptions, update_gaussians
from ..mixture.gaussian import check_covariance_type, covariance_shape
from ..modelfile import ModelFileMixin, register_model_class
from ._kmeans import cluster_covariances, data_covariance, kmeans, nearest
from .base import BaseHMM
from .emissions import GaussianEmission, full_covariances


def _compact_covariances(given: np.ndarray, ctype: str) -> np.ndarray:
    """``covars_`` in the shape of ``ctype``, from that shape, the getter's full matrices or
    (spherical) per-feature variances. Values the shape cannot hold (correlations in a diag
    model, a matrix per state in a tied one) are refused, not dropped, as hmmlearn does."""
    compact = given
    if given.ndim == 3 and ctype != "full":
        compact = given[0] if ctype == "tied" else np.diagonal(given, axis1=1, axis2=2).copy()
    if ctype == "spherical" and compact.ndim == 2:
        compact = compact.mean(axis=1)
    if compact.ndim < given.ndim and np.all(np.isfinite(given)):  # NaN: _check_emission says so
        back = (full_covariances(compact, ctype, given.shape[0], given.shape[-1]) if given.ndim == 3
                else compact[:, None])
        if not np.allclose(back, given, rtol=1e-9, atol=1e-12 * np.abs(given).max(initial=0.0)):
            raise InvalidParameterError(f"{ctype!r} covars_ cannot hold the given {given.shape} values")
    return compact


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
        ``covars_`` (as in hmmlearn) and the absolute variance floor of every
        M-step: no variance (full / tied: no variance along any direction)
        ends below it. hmmlearn applies no floor; the results are the same
        while the variances stay above ``min_covar``.
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
        same results to rounding: a sequence whose scaled pass loses mass to
        underflow is redone in log space.
    covars_floor_fraction : float or None
        If set, after every M-step variances are also floored at this
        fraction of the global per-dimension data variance (HTK's vFloor,
        e.g. 0.01).

    Attributes
    ----------
    n_features : int
    startprob_ : ndarray (n_components,)
    transmat_ : ndarray (n_components, n_components)
    means_ : ndarray (n_components, n_features)
    covars_ : ndarray (n_components, n_features, n_features)
        As in hmmlearn the getter always returns full matrices; the setter
        takes the compact shape of ``covariance_type``
        ((n_components,) spherical, (n_components, n_features) diag,
        (n_features, n_features) tied) or full matrices that shape can hold
        (others raise InvalidParameterError).
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
        # spherical covars_ (n_components,) do not hold the dimension; hmmlearn reads n_features
        D = (np.shape(self.means_)[1] if hasattr(self, "means_")
             else getattr(self, "n_features", self._covars_.shape[-1]))
        return full_covariances(self._covars_, self.covariance_type, self.n_components, D)

    @covars_.setter
    def covars_(self, covars) -> None:
        self._covars_ = _compact_covariances(np.array(covars, dtype=np.float64),
                                             check_covariance_type(self.covariance_type))

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

    def _update_options(self) -> GaussianUpdateOptions:
        """hmmlearn's MAP M-step (Huang et al. p. 443) as estimator settings, plus the floors.

        hmmlearn's ``covars_prior`` is the prior scatter and ``covars_weight``
        sets the degrees of freedom: ``max(w - 1, 0)`` per variance (diag,
        spherical), ``max(w - D, 0)`` per matrix (full, tied).
        """
        S, D, ctype = self.n_components, self.n_features, self.covariance_type
        cw = np.asarray(self.covars_weight, dtype=np.float64)
        if ctype in ("diag", "spherical"):
            psi, dof = self.covars_prior, np.maximum(cw - 1, 0)
            if ctype == "spherical":  # the mean of the per-dimension estimates: totals over dimensions
                psi = np.broadcast_to(np.asarray(psi, dtype=np.float64), (S, D)).sum(axis=1)
                dof = D * dof
        else:
            psi, dof = self.covars_prior, np.maximum(cw - D, 0)
        return GaussianUpdateOptions(
            variance_floor=self.min_covar, variance_floor_fraction=self.covars_floor_fraction or 0.0,
            means_prior=self.means_prior, means_weight=self.means_weight, covars_prior=psi, covars_dof=dof)

    def _update_emission(self, stats) -> None:
        """Means and covariances from GaussianStats by the one estimator (:mod:`gmmhmm.mixture.estimate`)."""
        previous = GaussianParams(self.covariance_type, self.means_, self._covars_)
        new, _ = update_gaussians(stats, self.covariance_type, self._update_options(), previous,
                                  params=self.params)
        self.means_ = new.means
        self._covars_ = new.covars
