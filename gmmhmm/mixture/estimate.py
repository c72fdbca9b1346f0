"""The one Gaussian M-step: statistics and options in, parameters and a report out.

Modelled on Kaldi's ``MleDiagGmmUpdate(config, acc, flags, gmm, ...)`` with
``MleDiagGmmOptions`` (``src/gmm/mle-diag-gmm.{h,cc}``): every model that
re-estimates Gaussians (``GaussianMixture``, ``GaussianHMM``, ``GMMHMM``,
``HMMClassifier`` through ``GMMHMM``, the phone models of
``EmbeddedTrainer``) calls :func:`update_gaussians`, and differs from the
others only in the :class:`GaussianUpdateOptions` it passes. scikit-learn's
``reg_covar``, hmmlearn's MAP priors, HTK's ``vFloor`` and Kaldi's occupancy
and weight floors are all settings of this one rule:

* means: ``mu = (tau * mu0 + s1) / (tau + n)``
  (hmmlearn's ``means_prior`` ``mu0`` / ``means_weight`` ``tau``);
* covariances: ``(Psi + tau (mu - mu0)(mu - mu0)^T + scatter) / (n + nu)``
  where ``scatter`` is the posterior-weighted scatter about the new means
  (or the previous ones, hmmlearn GMMHMM's centring), ``Psi`` is the prior
  scatter (``covars_prior``) and ``nu`` the prior's extra degrees of freedom
  (``covars_dof``); then ``reg_covar`` is added to the diagonal and the
  variance floor applied;
* weights: ``max(n + a, 0)`` normalised within each mixture, ``a`` the
  Dirichlet pseudo-count (``weights_prior``); then floored at
  ``min_weight`` and renormalised (HTK's ``MINMIX``).

Occupancy rule (chosen, as in HTK's HERest and unlike Kaldi's removal): a
component whose occupancy ``n`` is not above ``max(min_occupancy,
min_relative_occupancy * total occupancy)`` keeps its previous mean and
covariance; its weight is still re-estimated from its count, so it fades
instead of being dropped and the number of components never changes. The
relative test (not ``n <= 0``) is what keeps a component with occupancy
``1e-200`` from producing an infinite or NaN variance: no denominator is ever
formed as ``(n + 1) - 1``, and tiny ones are never used.

The variance floor holds after every update, for every component, the kept
ones included: diagonal and spherical variances are raised to it, full and
tied matrices are floored in the Loewner order (Kaldi's
``SpMatrix::ApplyFloor``: eigenvalues of the matrix whitened by the floor
raised to 1), so every variance along every direction is at least the floor.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .._validation import check_in
from ..errors import InvalidInputError, InvalidParameterError
from .stats import COVARIANCE_TYPES, GaussianStats

logger = logging.getLogger(__name__)

__all__ = ["GaussianParams", "GaussianUpdateOptions", "UpdateReport", "global_variance", "update_gaussians"]

PARAMS = "wmc"


@dataclass(frozen=True)
class GaussianUpdateOptions:
    """Settings of :func:`update_gaussians`; every default turns its rule off.

    Parameters
    ----------
    reg_covar : float, default=0.0
        Added to every covariance diagonal (scikit-learn's ``reg_covar``).
    variance_floor : float or array (n_features,), default=0.0
        Absolute variance floor (Kaldi's ``min_variance`` / variance floor
        vector, hmmlearn's ``min_covar`` used as a floor).
    variance_floor_fraction : float, default=0.0
        Floor as a fraction of the per-dimension variance of all the data
        behind the statistics (HTK's ``vFloor``, HCompV ``-f``; e.g. 0.01).
        The floor used is the larger of this and ``variance_floor``.
    min_occupancy : float, default=0.0
        A component with occupancy not above this keeps its previous mean and
        covariance (HERest's ``minOccupancy``; Kaldi's
        ``min_gaussian_occupancy`` removes instead).
    min_relative_occupancy : float, default=1e-10
        The same, relative to the total occupancy of the statistics: what
        remains below it is rounding noise, not data.
    min_weight : float, default=0.0
        Mixture weights are floored here and renormalised (HTK ``MINMIX``
        1e-5; Kaldi ``min_gaussian_weight``).
    weights_prior : float or array (n_groups, n_mix), default=0.0
        Dirichlet pseudo-count added to each component's count (hmmlearn's
        ``weights_prior - 1``; scikit-learn's ``10 * eps``).
    means_prior, means_weight : float or array, default=0.0
        Normal prior on the means: mean ``mu0`` (n_components, n_features)
        and weight ``tau`` (n_components,) in frames.
    covars_prior : float or array, default=0.0
        Prior scatter ``Psi`` added to the covariance numerator, broadcast to
        the covariance layout ((K, D, D) full, (K, D) diag, (K,) spherical as
        a total over the dimensions, (D, D) or (n_groups, D, D) tied).
    covars_dof : float or array, default=0.0
        Prior degrees of freedom ``nu`` added to the occupancy in the
        covariance denominator ((K,) full, (K, D) diag, (K,) spherical as a
        total over dimensions, (n_groups,) tied).
    center_on_previous_means : bool, default=False
        Take the scatter about the previous means instead of the new ones
        (hmmlearn 0.3 GMMHMM; not exact EM).
    warn_starved : bool, default=True
        Log a warning when components are kept for lack of data. Trainers
        that expect starved components (phone models after mix-up, tied
        states) turn it off and report the count from the returned
        :class:`UpdateReport` at INFO level instead, as HERest does.
    map_tau : float, default=0.0
        MAP adaptation (HTK HERest's ``MAPTAU``, Gauvain & Lee): the prior
        means are the ``previous`` parameters' means with weight ``tau``, so
        ``mu = (tau * mu_prev + s1) / (tau + n)``; a shorthand for
        ``means_prior=previous.means, means_weight=map_tau`` (give one or the other).
    """

    reg_covar: float = 0.0
    variance_floor: Any = 0.0
    variance_floor_fraction: float = 0.0
    min_occupancy: float = 0.0
    min_relative_occupancy: float = 1e-10
    min_weight: float = 0.0
    weights_prior: Any = 0.0
    means_prior: Any = 0.0
    means_weight: Any = 0.0
    covars_prior: Any = 0.0
    covars_dof: Any = 0.0
    center_on_previous_means: bool = False
    warn_starved: bool = True
    map_tau: float = 0.0

    def validate(self) -> "GaussianUpdateOptions":
        for name in ("reg_covar", "variance_floor_fraction", "min_occupancy", "min_relative_occupancy",
                     "min_weight", "variance_floor", "map_tau"):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if not np.all(np.isfinite(value)) or np.any(value < 0):
                raise InvalidParameterError(f"{name} must be finite and >= 0, got {getattr(self, name)!r}")
        if self.min_weight >= 1:
            raise InvalidParameterError(f"min_weight must be below 1, got {self.min_weight!r}")
        for name in ("weights_prior", "means_prior", "means_weight", "covars_prior", "covars_dof"):
            if not np.all(np.isfinite(np.asarray(getattr(self, name), dtype=np.float64))):
                raise InvalidParameterError(f"{name} must be finite, got {getattr(self, name)!r}")
        if self.map_tau and np.any(np.asarray(self.means_weight) != 0):
            raise InvalidParameterError("give map_tau (prior: the previous means) or means_prior / means_weight, "
                                        "not both")
        return self


@dataclass
class GaussianParams:
    """Parameters of K Gaussians, optionally grouped into mixtures of ``n_mix``.

    Attributes
    ----------
    covariance_type : {'full', 'diag', 'spherical', 'tied'}
    means : (K, D)
    covars : (K, D, D) full, (K, D) diag, (K,) spherical; tied: (D, D) one
        matrix for all, or (n_groups, D, D) one per mixture
    weights : (n_groups, n_mix) or None
        Mixture weights; component ``g * n_mix + m`` is mixture ``m`` of group ``g``.
    """

    covariance_type: str
    means: np.ndarray
    covars: np.ndarray
    weights: np.ndarray | None = None


@dataclass
class UpdateReport:
    """What :func:`update_gaussians` did besides the plain update (Kaldi's output counts)."""

    kept: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    n_floored: int = 0
    n_weights_floored: int = 0

    @property
    def n_kept(self) -> int:
        """Components that kept their previous mean and covariance (low occupancy)."""
        return int(np.count_nonzero(self.kept))


def global_variance(stats: GaussianStats) -> np.ndarray:
    """Per-dimension variance of all the data behind ``stats`` (D,), from the summed moments."""
    total = stats.n.sum()
    if not total > 0:
        return np.zeros(stats.n_features)
    mean = stats.s1.sum(axis=0) / total
    if stats.covariance_type == "full":
        sq = np.einsum("kii->i", stats.s2)
    elif stats.covariance_type == "tied":
        sq = np.diag(stats.s2)
    else:
        sq = stats.s2.sum(axis=0)
    return np.maximum(sq / total - mean**2, 0.0)


def _global_params(stats: GaussianStats, covariance_type: str, n_groups: int, reg_covar: float) -> GaussianParams:
    """Every component at the global mean and variance (plus ``reg_covar``): the 'previous'
    parameters of a first update."""
    K, D = stats.s1.shape
    total = stats.n.sum()
    mean = stats.s1.sum(axis=0) / total if total > 0 else np.zeros(D)
    var = np.maximum(global_variance(stats) + reg_covar, np.finfo(float).tiny)
    covars = {"full": lambda: np.broadcast_to(np.diag(var), (K, D, D)),
              "diag": lambda: np.broadcast_to(var, (K, D)),
              "spherical": lambda: np.full(K, var.mean()),
              "tied": lambda: (np.diag(var) if stats.covariance_type == "tied"
                               else np.broadcast_to(np.diag(var), (n_groups, D, D)))}[covariance_type]()
    weights = np.full((n_groups, K // n_groups), n_groups / K)
    return GaussianParams(covariance_type, np.broadcast_to(mean, (K, D)), np.array(covars), weights)


def _broadcast(value: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    try:
        return np.broadcast_to(np.asarray(value, dtype=np.float64), shape)
    except ValueError:
        raise InvalidParameterError(f"{name} of shape {np.shape(value)} does not fit shape {shape}") from None


def _ml_moments(stats: GaussianStats, covariance_type: str) -> tuple[np.ndarray, np.ndarray]:
    """(ML means s1/n, per-component ML covariances or their diagonals); 0/0 is read as 0.

    The covariance is centred on the exact mean first, ``s2/n - m m^T``, so a
    component owning a single point gets exactly 0, as scikit-learn's centred
    computation does. Pooled tied statistics give the pooled scatter instead.
    Rounding can leave these moments slightly negative along a narrow
    direction (float32 E-steps above all): variances are clipped at 0 here,
    matrices by the floor step (:func:`_apply_floor`), which decomposes each
    of them once anyway.
    """
    n = stats.n
    n_safe = np.where(n > 0, n, 1.0)
    m = stats.s1 / n_safe[:, None]
    if stats.covariance_type == "tied":  # pooled: sum_k n_k C_k = s2 - sum_k s1_k s1_k^T / n_k
        scatter = stats.s2 - np.einsum("ki,kj->ij", m * n[:, None], m)
        return m, 0.5 * (scatter + scatter.T)
    if stats.covariance_type == "full":
        c = stats.s2 / n_safe[:, None, None] - m[:, :, None] * m[:, None, :]
        c = 0.5 * (c + np.swapaxes(c, 1, 2))
        if covariance_type in ("diag", "spherical"):
            return m, np.maximum(np.diagonal(c, axis1=1, axis2=2), 0.0)
        return m, c
    return m, np.maximum(stats.s2 / n_safe[:, None] - m**2, 0.0)


def _apply_floor(covars: np.ndarray, floor: np.ndarray, covariance_type: str,
                 reg_covar: float = 0.0) -> tuple[np.ndarray, int]:
    """Raise covariances to the floor (D,) and to ``reg_covar``; returns (floored, number of
    variances / directions raised to a floor, 0 when the floor is 0).

    ``reg_covar`` is added to a scatter, which is never negative, so it bounds every variance
    of an updated component from below; raising the others too (components that kept their
    previous parameters, say from ``precisions_init``) keeps that promise for all of them.
    Diag / spherical: variances raised to the larger of the two. Full / tied: the floor is in
    the Loewner order, C >= diag(floor) (Kaldi SpMatrix::ApplyFloor): whiten by the floor,
    raise eigenvalues below 1 to 1, unwhiten; the same decomposition gives C >= reg_covar I,
    so the eigenvalues rounding left negative (float32 E-steps above all) are raised too, to 0
    when there is neither. Matrices holding NaN or infinity are left as they are for the
    caller's check to report (LAPACK's answer for them is unspecified).
    """
    floored = bool(np.any(floor > 0))
    if covariance_type in ("diag", "spherical"):
        f = np.maximum(floor if covariance_type == "diag" else floor.mean(), reg_covar)
        low = covars < f
        return np.where(low, f, covars), int(low.sum()) if floored else 0
    D = floor.shape[0]
    f = np.maximum(floor, reg_covar)
    # a zero floor in some dimension: almost no floor there
    s = np.sqrt(np.maximum(f, f.max() * 1e-12)) if f.max() > 0 else np.ones(D)
    lowest = 1.0 if f.max() > 0 else 0.0
    mats = covars.reshape(-1, D, D)
    white = mats / s[:, None] / s[None, :]
    lam = np.full((len(mats), D), np.inf)
    finite = np.isfinite(white).all(axis=(1, 2))
    lam[finite] = np.linalg.eigvalsh(white[finite])  # one decomposition per matrix; vectors only where needed
    low = lam < lowest
    bad = low.any(axis=1)
    if not bad.any():
        return covars, 0
    out = mats.copy()
    lam, v = np.linalg.eigh(white[bad])
    fixed = (v * np.maximum(lam, lowest)[:, None, :]) @ np.swapaxes(v, 1, 2)
    fixed = 0.5 * (fixed + np.swapaxes(fixed, 1, 2))
    out[bad] = fixed * s[:, None] * s[None, :]
    return out.reshape(covars.shape), int(low.sum()) if floored else 0


def update_gaussians(stats: GaussianStats, covariance_type: str, options: GaussianUpdateOptions | None = None,
                     previous: GaussianParams | None = None, n_mix: int | None = None,
                     params: str = PARAMS) -> tuple[GaussianParams, UpdateReport]:
    """Re-estimate K Gaussians (and their mixture weights) from summed statistics.

    Parameters
    ----------
    stats : GaussianStats
        Summed statistics of the K components. For ``covariance_type='tied'``
        either pooled ``'tied'`` statistics (one matrix for all, layout
        (D, D)) or ``'full'`` statistics (one matrix per group of ``n_mix``).
    covariance_type : {'full', 'diag', 'spherical', 'tied'}
    options : GaussianUpdateOptions, optional
        Floors, occupancy rules and priors (defaults: plain maximum likelihood).
    previous : GaussianParams, optional
        Current parameters: kept by low-occupancy components and by those
        not named in ``params``. Without them (a first estimate) such
        components get the global mean and variance of the statistics, and
        weights are estimated (uniform where a mixture has no count).
    n_mix : int, optional
        Components per mixture (group); defaults to ``previous.weights``'s
        second dimension, else K (one group).
    params : str
        Which parameters to update: 'w' weights, 'm' means, 'c' covariances.

    Returns
    -------
    GaussianParams, UpdateReport
    """
    options = (options or GaussianUpdateOptions()).validate()
    check_in(covariance_type, COVARIANCE_TYPES, "covariance_type")
    K, D = stats.s1.shape
    if n_mix is None:
        n_mix = previous.weights.shape[1] if previous is not None and previous.weights is not None else K
    if K % n_mix:
        raise InvalidInputError(f"{K} components do not split into mixtures of {n_mix}")
    G = K // n_mix
    pooled = stats.covariance_type == "tied"
    if covariance_type == "tied" and pooled and G != 1:
        raise InvalidInputError("pooled tied statistics give one matrix; pass 'full' statistics for one per mixture")
    same_layout = {"diag": "spherical", "spherical": "diag"}.get(covariance_type)  # (K, D) second moments
    if covariance_type != "tied" and pooled or stats.covariance_type not in (covariance_type, "full", same_layout):
        raise InvalidInputError(f"{stats.covariance_type!r} statistics cannot give {covariance_type!r} covariances")
    if stats.center is not None:
        # estimate about the statistics' centre, then move the means back: raw moments of data
        # far from the origin cancel in s2/n - m^2 (every rule here is translation-equivariant)
        c = stats.center
        moved = None if previous is None else replace(previous, means=previous.means - c)
        options = replace(options, means_prior=np.asarray(options.means_prior, dtype=np.float64) - c)
        new, report = update_gaussians(replace(stats, center=None), covariance_type, options, moved, n_mix, params)
        return replace(new, means=new.means + c), report
    if previous is None:
        if options.map_tau:
            raise InvalidInputError("MAP adaptation (map_tau) needs the previous parameters as its prior")
        previous = _global_params(stats, covariance_type, G, options.reg_covar)
    if previous.means.shape != (K, D):
        raise InvalidInputError(f"statistics of shape {(K, D)} do not match means {previous.means.shape}")

    n = stats.n
    total = n.sum()
    threshold = max(options.min_occupancy, options.min_relative_occupancy * total)
    kept = ~(n > threshold)  # also catches NaN
    m_ml, c_ml = _ml_moments(stats, covariance_type)
    w_n = np.where(kept, 0.0, n)  # the counts of updated components only

    # means
    if options.map_tau:
        tau, mu0 = np.full(K, float(options.map_tau)), np.array(previous.means, dtype=np.float64)
    else:
        tau = _broadcast(options.means_weight, (K,), "means_weight")
        mu0 = _broadcast(options.means_prior, (K, D), "means_prior")
    means = previous.means
    if "m" in params:
        den = w_n + tau
        ok = ~kept & (den > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            new = (tau[:, None] * mu0 + stats.s1) / np.where(ok, den, 1.0)[:, None]
        means = np.where(ok[:, None], new, previous.means)

    # covariances
    covars = np.array(previous.covars, dtype=np.float64)
    n_floored = 0
    if "c" in params:
        centre = previous.means if options.center_on_previous_means else means
        dm = m_ml - centre  # scatter about the centre = n (C_ml + dm dm^T)
        dp = means - mu0
        if covariance_type in ("diag", "spherical"):
            num = w_n[:, None] * (c_ml + dm**2) + tau[:, None] * dp**2
            if covariance_type == "diag":
                psi = _broadcast(options.covars_prior, (K, D), "covars_prior")
                den = w_n[:, None] + _broadcast(options.covars_dof, (K, D), "covars_dof")
                ok = ~kept[:, None] & (den > 0)
                num = num + psi
            else:
                psi = _broadcast(options.covars_prior, (K,), "covars_prior")
                den = D * w_n + _broadcast(options.covars_dof, (K,), "covars_dof")
                ok = ~kept & (den > 0)
                num = num.sum(axis=1) + psi
            with np.errstate(invalid="ignore", divide="ignore"):
                new = num / np.where(ok, den, 1.0) + options.reg_covar
            covars = np.where(ok, new, covars)
        else:
            outer = (w_n[:, None, None] * (dm[:, :, None] * dm[:, None, :])
                     + tau[:, None, None] * (dp[:, :, None] * dp[:, None, :]))
            eye = np.eye(D)
            if covariance_type == "full":
                num = w_n[:, None, None] * c_ml + outer + _broadcast(options.covars_prior, (K, D, D), "covars_prior")
                den = w_n + _broadcast(options.covars_dof, (K,), "covars_dof")
                ok = ~kept & (den > 0)
            else:
                scatter = c_ml if pooled else np.einsum("k,kij->kij", w_n, c_ml)
                if pooled:
                    # the pooled scatter includes the kept components' frames (negligible by definition)
                    num = scatter[None] + outer.sum(axis=0)[None]
                    occ = np.array([n.sum()])
                else:
                    num = (scatter + outer).reshape(G, n_mix, D, D).sum(axis=1)
                    occ = w_n.reshape(G, n_mix).sum(axis=1)
                shape = (1, D, D) if pooled else (G, D, D)
                num = num + _broadcast(options.covars_prior, shape[1:] if pooled else shape, "covars_prior")
                den = occ + _broadcast(options.covars_dof, (shape[0],), "covars_dof")
                ok = (occ > threshold) & (den > 0)
                covars = covars.reshape(shape)
            with np.errstate(invalid="ignore", divide="ignore"):
                new = num / np.where(ok, den, 1.0)[:, None, None] + options.reg_covar * eye
            new = 0.5 * (new + np.swapaxes(new, 1, 2))
            covars = np.where(ok[:, None, None], new, covars)
            if pooled:
                covars = covars[0]
        floor = np.maximum(_broadcast(options.variance_floor, (D,), "variance_floor"),
                           options.variance_floor_fraction * global_variance(stats))
        covars, n_floored = _apply_floor(covars, floor, covariance_type, options.reg_covar)

    # weights
    weights = previous.weights
    n_wfloored = 0
    if "w" in params and weights is not None:
        counts = np.maximum(n.reshape(G, n_mix) + _broadcast(options.weights_prior, (G, n_mix), "weights_prior"), 0.0)
        tot = counts.sum(axis=1, keepdims=True)
        weights = np.where(tot > 0, counts / np.where(tot > 0, tot, 1.0), previous.weights)
        if options.min_weight > 0:
            low = weights < options.min_weight
            n_wfloored = int(low.sum())
            weights = np.maximum(weights, options.min_weight)
            weights = weights / weights.sum(axis=1, keepdims=True)
    report = UpdateReport(kept, n_floored, n_wfloored)
    if report.n_kept and options.warn_starved:  # Kaldi warns for every Gaussian it removes; one line per update here
        idx = np.flatnonzero(kept)
        logger.warning("%d of %d component(s) received no data (occupancy <= %.3g), e.g. %s; keeping their "
                       "previous parameters", len(idx), K, threshold, idx[:10].tolist())
    if n_floored or n_wfloored:
        logger.info("Gaussian update: %d variance(s) and %d weight(s) floored", n_floored, n_wfloored)
    return GaussianParams(covariance_type, means, covars, weights), report
