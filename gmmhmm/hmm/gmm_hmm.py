"""GMMHMM: a Gaussian mixture per state; drop-in for ``hmmlearn.hmm.GMMHMM``."""

from __future__ import annotations

import numpy as np

from .. import _validation as V
from ..errors import InvalidParameterError
from ..mixture.estimate import GaussianParams, GaussianUpdateOptions, update_gaussians
from ..mixture.gaussian import check_covariance_type
from ..modelfile import ModelFileMixin, register_model_class
from ._kmeans import cluster_covariances, data_covariance, kmeans, nearest
from .base import BaseHMM
from .emissions import GMMEmission

COVARS_CENTERING = ("updated", "previous")


@register_model_class
class GMMHMM(ModelFileMixin, BaseHMM):
    """Hidden Markov model with Gaussian mixture emissions.

    Same constructor, attributes and methods as ``hmmlearn.hmm.GMMHMM``
    (0.3.3). All states' mixture components are evaluated as one stacked set
    of ``n_components * n_mix`` Gaussians (one GEMM per block of frames).

    Parameters
    ----------
    n_components : int
        Number of states.
    n_mix : int
        Gaussians per state.
    startprob_prior, transmat_prior, algorithm, random_state,
    n_iter, tol, verbose, implementation, covars_floor_fraction
        As in :class:`~gmmhmm.hmm.GaussianHMM`.
    weights_prior : float or array (n_components, n_mix)
        Dirichlet prior on ``weights_``.
    means_prior, means_weight, covars_prior, covars_weight : float or array
        Normal / inverse-gamma / inverse-Wishart priors, with hmmlearn's
        defaults (``None`` picks the per-covariance-type default, which makes
        the M-step maximum likelihood).
    covariance_type : {"spherical", "diag", "full", "tied"}
        ``"tied"``: one full matrix per state shared by its mixtures.
    params, init_params : str
        Any of 's', 't', 'm', 'c', 'w' (weights).
    min_covar : float
        Initial covariance regulariser (as hmmlearn) and the absolute
        variance floor of every M-step (see :class:`~gmmhmm.hmm.GaussianHMM`).
    covars_centering : {"updated", "previous"}
        ``"updated"`` (default) centres the covariance statistics on the
        newly estimated means: exact EM, the log-likelihood never decreases.
        ``"previous"`` centres them on the means of the E-step, as hmmlearn
        0.3.3 does; use it to reproduce hmmlearn's numbers exactly.

    Attributes
    ----------
    n_features : int
    startprob_ : ndarray (n_components,)
    transmat_ : ndarray (n_components, n_components)
    weights_ : ndarray (n_components, n_mix)
    means_ : ndarray (n_components, n_mix, n_features)
    covars_ : ndarray
        (n_components, n_mix) spherical, (n_components, n_mix, n_features)
        diag, (n_components, n_mix, n_features, n_features) full,
        (n_components, n_features, n_features) tied.
    monitor_ : ConvergenceMonitor

    Notes
    -----
    :meth:`aic` and :meth:`bic` count ``S * (M - 1)`` free mixture weights;
    hmmlearn counts ``M - 1``.
    """

    _saved_attributes = BaseHMM._saved_attributes + ("weights_", "means_", "covars_", "endprob_")

    def __init__(self, n_components=1, n_mix=1, min_covar=1e-3, startprob_prior=1.0,
                 transmat_prior=1.0, weights_prior=1.0, means_prior=0.0, means_weight=0.0,
                 covars_prior=None, covars_weight=None, algorithm="viterbi",
                 covariance_type="diag", random_state=None, n_iter=10, tol=1e-2,
                 verbose=False, params="stmcw", init_params="stmcw", implementation="log",
                 covars_floor_fraction=None, covars_centering="updated"):
        super().__init__(n_components=n_components, startprob_prior=startprob_prior,
                         transmat_prior=transmat_prior, algorithm=algorithm,
                         random_state=random_state, n_iter=n_iter, tol=tol, verbose=verbose,
                         params=params, init_params=init_params, implementation=implementation)
        self.n_mix = n_mix
        self.min_covar = min_covar
        self.weights_prior = weights_prior
        self.means_prior = means_prior
        self.means_weight = means_weight
        self.covars_prior = covars_prior
        self.covars_weight = covars_weight
        self.covariance_type = covariance_type
        self.covars_floor_fraction = covars_floor_fraction
        self.covars_centering = covars_centering

    # ------------------------------------------------------------ priors

    def _priors(self) -> dict[str, np.ndarray]:
        """Priors broadcast to parameter shapes, with hmmlearn's defaults (no mutation)."""
        S, M, D = self.n_components, self.n_mix, self.n_features
        ctype = self.covariance_type
        default_prior, default_weight = {
            "full": (0.0, -(1.0 + D + 1.0)),
            "tied": (0.0, -(M + D + 1.0)),
            "diag": (-1.5, 0.0),
            "spherical": (-(M + 2.0) / 2.0, 0.0),
        }[ctype]
        cp = default_prior if self.covars_prior is None else self.covars_prior
        cw = default_weight if self.covars_weight is None else self.covars_weight
        cp_shape, cw_shape = {
            "full": ((S, M, D, D), (S, M)),
            "tied": ((S, D, D), (S,)),
            "diag": ((S, M, D), (S, M, D)),
            "spherical": ((S, M), (S, M)),
        }[ctype]
        try:
            return {
                "weights_prior": np.broadcast_to(np.asarray(self.weights_prior, float), (S, M)),
                "means_prior": np.broadcast_to(np.asarray(self.means_prior, float), (S, M, D)),
                "means_weight": np.broadcast_to(np.asarray(self.means_weight, float), (S, M)),
                "covars_prior": np.broadcast_to(np.asarray(cp, float), cp_shape),
                "covars_weight": np.broadcast_to(np.asarray(cw, float), cw_shape),
            }
        except ValueError as exc:
            raise InvalidParameterError(f"a prior does not broadcast to its parameter's shape: {exc}")

    # ------------------------------------------------ emission interface

    def _emission(self) -> GMMEmission:
        return GMMEmission(self.weights_, self.means_, self.covars_, self.covariance_type)

    def _covars_shape(self) -> tuple[int, ...]:
        S, M, D = self.n_components, self.n_mix, self.n_features
        return {"spherical": (S, M), "diag": (S, M, D), "full": (S, M, D, D),
                "tied": (S, D, D)}[self.covariance_type]

    def _check_emission(self) -> None:
        ctype = check_covariance_type(self.covariance_type)
        V.check_positive_int(self.n_mix, "n_mix")
        V.check_in(self.covars_centering, COVARS_CENTERING, "covars_centering")
        for name in ("weights_", "means_", "covars_"):
            V.check_is_fitted(self, name)
        S, M = self.n_components, self.n_mix
        means = np.asarray(self.means_, dtype=np.float64)
        if means.ndim != 3 or means.shape[:2] != (S, M) or not np.all(np.isfinite(means)):
            raise InvalidParameterError(
                f"means_ must be finite with shape (n_components={S}, n_mix={M}, n_features), "
                f"got {means.shape}")
        self.means_ = means
        self.n_features = D = means.shape[2]
        self.weights_ = self._check_distribution("weights_", (S, M))
        cov = np.asarray(self.covars_, dtype=np.float64)
        if cov.shape != self._covars_shape():
            raise InvalidParameterError(
                f"{ctype!r} mixture covars_ must have shape {self._covars_shape()}, got {cov.shape}")
        if not np.all(np.isfinite(cov)):
            raise InvalidParameterError("covars_ contains NaN or infinity")
        if ctype in ("spherical", "diag") and np.any(cov <= 0):
            raise InvalidParameterError(f"{ctype!r} mixture covars_ must be positive")
        if ctype in ("full", "tied"):
            mats = cov.reshape(-1, D, D)
            if not np.allclose(mats, np.swapaxes(mats, 1, 2)) or np.any(np.linalg.eigvalsh(mats) <= 0):
                raise InvalidParameterError(f"{ctype!r} mixture covars_ must be symmetric, "
                                            "positive-definite")
        self.covars_ = cov

    def _init_emission(self, X: np.ndarray, lengths: np.ndarray, rng,
                       need_labels: bool) -> np.ndarray | None:
        check_covariance_type(self.covariance_type)
        S, M, D = self.n_components, V.check_positive_int(self.n_mix, "n_mix"), X.shape[1]
        if self._needs_init("w", "weights_"):
            self.weights_ = np.full((S, M), 1.0 / M)
        init_m = self._needs_init("m", "means_")
        init_c = self._needs_init("c", "covars_")
        cv = data_covariance(X, self.min_covar) if (init_m or init_c) else None
        if init_m:
            centers, labels = kmeans(X, S, rng)
            means = np.empty((S, M, D))
            for s in range(S):
                members = X[labels == s]
                if len(members) >= M:
                    means[s] = kmeans(members, M, rng)[0]
                else:  # too few frames: draw around the centre of all clusters
                    means[s] = rng.multivariate_normal(centers.mean(axis=0), cv, size=M)
            self.means_ = means
        if not (init_c or need_labels):
            return None
        flat = np.asarray(self.means_, dtype=np.float64).reshape(S * M, D)
        labels = nearest(X, flat)
        if init_c:
            # Within-cluster covariances around the initial means (hmmlearn
            # uses the global covariance, which often stalls EM).
            if self.covariance_type == "tied":  # one matrix per state
                covs = cluster_covariances(X, labels // M, S, cv, self.min_covar)
            else:
                covs = cluster_covariances(X, labels, S * M, cv, self.min_covar).reshape(S, M, D, D)
            self.covars_ = {
                "tied": lambda: covs,
                "full": lambda: covs,
                "diag": lambda: np.einsum("smii->smi", covs).copy(),
                "spherical": lambda: np.einsum("smii->sm", covs) / D,
            }[self.covariance_type]()
        return labels // M

    def _get_n_fit_scalars_per_param(self) -> dict[str, int]:
        """Free parameters for :meth:`aic` / :meth:`bic`: S * (M - 1) mixture weights.

        hmmlearn 0.3.3 counts only M - 1 weights (one state's worth), so its
        GMMHMM AIC/BIC are smaller than these by ``(S - 1) * (M - 1)`` times
        2 (AIC) or ``log(n_samples)`` (BIC).
        """
        S, D, M = self.n_components, self.n_features, self.n_mix
        return {
            "s": S - 1,
            "t": S * (S - 1),
            "m": S * M * D,
            "c": {"spherical": S * M, "diag": S * M * D, "full": S * M * D * (D + 1) // 2,
                  "tied": S * D * (D + 1) // 2}[self.covariance_type],
            "w": S * (M - 1),
        }

    # ---------------------------------------------------------- M-step

    def _gaussian_params(self) -> GaussianParams:
        """The emission parameters as the estimator and mix-up take them (component ``s * n_mix + m``)."""
        S, M = self.n_components, self.n_mix
        covars = np.asarray(self.covars_, dtype=np.float64)
        if self.covariance_type != "tied":
            covars = covars.reshape((S * M,) + covars.shape[2:])
        return GaussianParams(self.covariance_type, np.asarray(self.means_, dtype=np.float64).reshape(S * M, -1),
                              covars, np.asarray(self.weights_, dtype=np.float64))

    def _set_gaussian_params(self, params: GaussianParams) -> None:
        S, M = self.n_components, params.weights.shape[1]
        self.n_mix = M
        self.weights_ = params.weights
        self.means_ = params.means.reshape(S, M, -1)
        self.covars_ = params.covars if self.covariance_type == "tied" else params.covars.reshape(
            (S, M) + params.covars.shape[1:])

    def _update_options(self) -> GaussianUpdateOptions:
        """hmmlearn's MAP rules as estimator settings, plus the floors.

        hmmlearn writes the covariance denominators as ``(n + 1) + 2 (alpha + 1)``
        (diag), ``D (n + 1) + 2 (alpha + 1)`` (spherical), ``n + 1 + nu + D + 1``
        (full), ``n_state + M + nu + D + 1`` (tied); the degrees of freedom
        below are those sums without ``n``, formed without adding and
        subtracting ``n`` (which rounds a tiny ``n`` to 0).
        """
        S, M, D, ctype = self.n_components, self.n_mix, self.n_features, self.covariance_type
        pri = self._priors()
        cp, cw = pri["covars_prior"], pri["covars_weight"]
        psi, dof = {
            "diag": lambda: (2 * cw.reshape(S * M, D), (2 * cp + 3).reshape(S * M, D)),
            "spherical": lambda: (2 * cw.reshape(S * M), (D + 2 * (cp + 1)).reshape(S * M)),
            "full": lambda: (np.swapaxes(cp, -1, -2).reshape(S * M, D, D), (cw + D + 2).reshape(S * M)),
            "tied": lambda: (np.swapaxes(cp, -1, -2), cw + M + D + 1),
        }[ctype]()
        return GaussianUpdateOptions(
            variance_floor=self.min_covar, variance_floor_fraction=self.covars_floor_fraction or 0.0,
            weights_prior=pri["weights_prior"] - 1, means_prior=pri["means_prior"].reshape(S * M, D),
            means_weight=pri["means_weight"].reshape(S * M), covars_prior=psi, covars_dof=dof,
            center_on_previous_means=self.covars_centering == "previous")

    def _update_emission(self, stats) -> None:
        """Weights, means, covariances from the stacked GaussianStats by the one estimator."""
        new, _ = update_gaussians(stats, self.covariance_type, self._update_options(), self._gaussian_params(),
                                  n_mix=self.n_mix, params=self.params)
        self._set_gaussian_params(new)
