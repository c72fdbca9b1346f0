"""Gaussian densities and parameter estimates, one small function per covariance type.

Shapes follow scikit-learn: ``means`` (K, D); covariances, precisions and
precision Cholesky factors are (K, D, D) for ``'full'``, (D, D) for
``'tied'``, (K, D) for ``'diag'`` and (K,) for ``'spherical'``. A precision
Cholesky factor ``U`` is upper triangular with ``precision = U @ U.T``.

Log-densities are computed as one matrix product per block of rows: the
quadratic form ``(x - mu)^T P (x - mu)`` expands into a linear function of the
features ``[x**2, x]`` (diag) or ``[upper-triangle of x x^T, x]`` (full), so
all K components cost one GEMM instead of K triangular solves.
"""

from __future__ import annotations

import copy
import threading

import numpy as np
from scipy import linalg

from .. import _threads
from .._validation import check_in
from ..errors import DimensionMismatchError, InvalidInputError, InvalidParameterError
from . import _kernels
from .stats import COVARIANCE_TYPES, GaussianStats

__all__ = [
    "COVARIANCE_TYPES",
    "covariance_shape",
    "log_gaussian_density",
    "log_densities",
    "accumulate_gaussians",
    "mixture_log_likelihood",
    "precisions_cholesky_from_covariances",
    "precisions_cholesky_from_precisions",
    "precisions_from_precisions_cholesky",
    "covariances_from_precisions_cholesky",
    "log_det_precisions_cholesky",
]

_LOG_2PI = np.log(2.0 * np.pi)
# Rows per block: the (rows x features) design matrix stays around 16 MB.
_BLOCK_ELEMENTS = 1 << 21


def check_covariance_type(covariance_type: str) -> str:
    return check_in(covariance_type, COVARIANCE_TYPES, "covariance_type")


def covariance_shape(covariance_type: str, n_components: int, n_features: int) -> tuple[int, ...]:
    """Shape of covariances, precisions and their Cholesky factors (scikit-learn's layout)."""
    k, d = n_components, n_features
    return {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}[check_covariance_type(covariance_type)]


# --------------------------------------------------------------------------
# precision Cholesky factors
# --------------------------------------------------------------------------

def _not_pd(what: str, k: int | None) -> InvalidParameterError:
    where = "" if k is None else f" of component {k}"
    return InvalidParameterError(
        f"the {what}{where} is not symmetric positive definite; increase reg_covar "
        "or check the data for duplicated / constant points"
    )


def _chol_full_stack(matrices: np.ndarray, what: str, lower_from_flip: bool) -> np.ndarray:
    out = np.empty_like(matrices)
    eye = np.eye(matrices.shape[-1], dtype=matrices.dtype)
    for k, m in enumerate(matrices):
        if not np.all(np.isfinite(m)):
            raise _not_pd(what, k if len(matrices) > 1 or what != "tied covariance" else None)
        try:
            if lower_from_flip:
                # precision = U U^T with U upper: Cholesky of the reversed matrix, reversed back
                out[k] = np.flipud(np.fliplr(linalg.cholesky(np.flipud(np.fliplr(m)), lower=True)))
            else:
                chol = linalg.cholesky(m, lower=True)
                out[k] = linalg.solve_triangular(chol, eye, lower=True).T
        except linalg.LinAlgError:
            raise _not_pd(what, k) from None
    return out


def precisions_cholesky_from_covariances(covariances: np.ndarray, covariance_type: str) -> np.ndarray:
    """Upper-triangular ``U`` with ``inv(covariance) = U @ U.T`` (sklearn's layout).

    Raises :class:`InvalidParameterError` naming the component whose
    covariance is not positive definite.
    """
    check_covariance_type(covariance_type)
    cov = np.asarray(covariances)
    if covariance_type == "full":
        return _chol_full_stack(cov, "covariance", lower_from_flip=False)
    if covariance_type == "tied":
        return _chol_full_stack(cov[None], "tied covariance", lower_from_flip=False)[0]
    if not np.all(np.isfinite(cov)) or np.any(cov <= 0):
        bad = np.flatnonzero(~(np.isfinite(cov) & (cov > 0)).reshape(len(cov), -1).all(axis=1))
        raise _not_pd("covariance", int(bad[0]))
    return 1.0 / np.sqrt(cov)


def precisions_cholesky_from_precisions(precisions: np.ndarray, covariance_type: str) -> np.ndarray:
    """Upper-triangular ``U`` with ``precision = U @ U.T`` straight from precisions."""
    check_covariance_type(covariance_type)
    prec = np.asarray(precisions)
    if covariance_type == "full":
        return _chol_full_stack(prec, "precision", lower_from_flip=True)
    if covariance_type == "tied":
        return _chol_full_stack(prec[None], "precision", lower_from_flip=True)[0]
    if not np.all(np.isfinite(prec)) or np.any(prec <= 0):
        bad = np.flatnonzero(~(np.isfinite(prec) & (prec > 0)).reshape(len(prec), -1).all(axis=1))
        raise _not_pd("precision", int(bad[0]))
    return np.sqrt(prec)


def precisions_from_precisions_cholesky(precisions_cholesky: np.ndarray, covariance_type: str) -> np.ndarray:
    """``U @ U.T`` per component (or ``U**2`` for diag / spherical)."""
    check_covariance_type(covariance_type)
    u = np.asarray(precisions_cholesky)
    if covariance_type in ("full", "tied"):
        return u @ np.swapaxes(u, -1, -2)
    return u**2


def covariances_from_precisions_cholesky(precisions_cholesky: np.ndarray, covariance_type: str) -> np.ndarray:
    """Invert precision Cholesky factors back into covariances."""
    check_covariance_type(covariance_type)
    u = np.asarray(precisions_cholesky)
    if covariance_type in ("full", "tied"):
        stack = u[None] if covariance_type == "tied" else u
        eye = np.eye(u.shape[-1], dtype=u.dtype)
        # covariance = inv(U U^T) = V^T V with V = inv(U)
        v = np.stack([linalg.solve_triangular(uk, eye, lower=False) for uk in stack])
        cov = np.swapaxes(v, -1, -2) @ v
        return cov[0] if covariance_type == "tied" else cov
    return 1.0 / u**2


def log_det_precisions_cholesky(precisions_cholesky: np.ndarray, covariance_type: str, n_features: int) -> np.ndarray:
    """``log det U`` = half the log-determinant of the precision, per component."""
    u = np.asarray(precisions_cholesky)
    if covariance_type == "full":
        return np.log(np.diagonal(u, axis1=1, axis2=2)).sum(axis=1)
    if covariance_type == "tied":
        return np.log(np.diag(u)).sum()
    if covariance_type == "diag":
        return np.log(u).sum(axis=1)
    return n_features * np.log(u)


# --------------------------------------------------------------------------
# log-densities
# --------------------------------------------------------------------------

def _triu_weights(d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    iu, ju = np.triu_indices(d)
    factor = np.where(iu == ju, 1.0, 2.0)  # off-diagonal terms appear twice in x^T P x
    return iu, ju, factor


# Log-density error (nats) float32 may lose to the expansion about the centre before float64 is used
_F32_LOG_DENSITY_ATOL = 1e-3


def _compute_dtype(dtype: np.dtype, max_distance2: float) -> np.dtype:
    """float64 for float32 models whose means lie so far apart (squared Mahalanobis distance
    ``max_distance2`` from their centre) that float32 log-densities, quadratic forms expanded
    about the centre, would lose over ``_F32_LOG_DENSITY_ATOL`` to cancellation (some 20 nats
    1e4 standard deviations out); ``dtype`` otherwise."""
    if dtype == np.float32 and np.finfo(np.float32).eps * max_distance2 > _F32_LOG_DENSITY_ATOL:
        return np.dtype(np.float64)
    return dtype


class DensityPlan:
    """Everything a block of rows needs to get log N(x | mu_k, Sigma_k) by one GEMM.

    For diag, spherical and full, ``log N + log w = design(x) @ W`` where the
    design row is ``[(x - c)**2 or triu((x - c)(x - c)^T), x - c, 1]`` and the
    last row of ``W`` holds the per-component constant (plus optional log
    weights). Tied uses ``y = (x - c) @ U`` and a squared distance. Shifting
    by ``c`` (the mean of the means) keeps the expanded quadratic form free of
    cancellation when the data sit far from the origin.
    """

    def __init__(self, means: np.ndarray, precisions_cholesky: np.ndarray, covariance_type: str,
                 dtype=None, log_weights: np.ndarray | None = None):
        check_covariance_type(covariance_type)
        means = np.asarray(means)
        dtype = np.dtype(dtype or means.dtype)
        k, d = means.shape
        self.covariance_type = covariance_type
        self.dtype = dtype
        self.n_components, self.n_features = k, d
        self.center = means.mean(axis=0)
        mu = means - self.center
        u = np.asarray(precisions_cholesky, dtype=np.float64)
        const = log_det_precisions_cholesky(u, covariance_type, d) - 0.5 * d * _LOG_2PI
        if log_weights is not None:
            const = const + np.asarray(log_weights, dtype=np.float64)
        if covariance_type == "tied":
            mu_u = mu @ u
            distance2 = (mu_u**2).sum(axis=1)
        else:
            if covariance_type in ("diag", "spherical"):
                prec = u**2 if covariance_type == "diag" else np.repeat((u**2)[:, None], d, axis=1)
                quad_w = -0.5 * prec
                p_mu = mu * prec
            else:
                prec = u @ np.swapaxes(u, 1, 2)
                iu, ju, factor = _triu_weights(d)
                quad_w = -0.5 * factor * prec[:, iu, ju]
                p_mu = np.einsum("kij,kj->ki", prec, mu)
            distance2 = (mu * p_mu).sum(axis=1)
        #: largest squared Mahalanobis distance of a mean from the centre: sums of design rows
        #: lose about eps * max_distance2 of a variance to cancellation, and log-densities that much
        self.max_distance2 = float(distance2.max(initial=0.0))
        #: results come in ``out_dtype`` (the one asked for); ``dtype`` is the one they are computed in
        self.out_dtype = dtype
        self.dtype = dtype = _compute_dtype(dtype, self.max_distance2)
        b = -0.5 * distance2 + const
        if covariance_type == "tied":
            self.U = u.astype(dtype)
            self.mu_u_t = np.ascontiguousarray(mu_u.T, dtype=dtype)  # (D, K)
            self.b = b.astype(dtype)
            return
        self.W = np.ascontiguousarray(np.concatenate([quad_w, p_mu, b[:, None]], axis=1).T, dtype=dtype)  # (F, K)

    def subset(self, components: np.ndarray) -> "DensityPlan":
        """The plan of ``components`` alone (indices into this plan's), same centre: their
        log-densities from the same design rows, without scoring the others."""
        out = copy.copy(self)
        out.n_components = len(components)
        # np.take, not W[:, components]: a column gather that is about 10x faster here
        if self.covariance_type == "tied":
            out.mu_u_t = np.take(self.mu_u_t, components, axis=1)
            out.b = self.b[components]
        else:
            out.W = np.take(self.W, components, axis=1)
        return out

    @property
    def n_design(self) -> int:
        d = self.n_features
        if self.covariance_type == "full":
            return d * (d + 1) // 2 + d + 1
        if self.covariance_type == "tied":
            return d
        return 2 * d + 1

    def block_rows(self) -> int:
        # 2048 rows keep a block's log-probabilities in the CPU's cache between
        # the GEMM and the normalisation (about 5% faster than 8192)
        return int(max(64, min(2048, _BLOCK_ELEMENTS // max(self.n_design, self.n_components))))

    def design(self, Xb: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Design rows of a block: ``(n, n_design)``, in ``out``'s dtype if given; for tied, ``(x - c) @ U``."""
        n = Xb.shape[0]
        if Xb.ndim != 2 or Xb.shape[1] != self.n_features:  # the compiled fill trusts the widths
            raise DimensionMismatchError(f"rows have shape {Xb.shape}; the Gaussians have {self.n_features} features")
        center = self.center.astype(self.dtype if out is None else out.dtype)
        if self.covariance_type == "tied":
            return (np.asarray(Xb, dtype=self.dtype) - center) @ self.U
        if out is None:
            out = np.empty((n, self.n_design), dtype=self.dtype)
        return _kernels.fill_design(Xb, center, out[:n], self.covariance_type == "full")

    def evaluate(self, X: np.ndarray) -> np.ndarray:
        """(n, K) log-densities (plus log weights if given) of rows ``X``, block by block, in ``out_dtype``."""
        n = X.shape[0]
        out = np.empty((n, self.n_components), dtype=self.dtype)
        step = self.block_rows()
        buffers = threading.local()  # one design buffer per thread

        def block(start: int) -> None:
            xb = np.asarray(X[start:start + step], dtype=self.dtype)
            if self.covariance_type != "tied" and not hasattr(buffers, "design"):
                buffers.design = np.empty((min(step, n), self.n_design), dtype=self.dtype)
            res = self.log_density(self.design(xb, getattr(buffers, "design", None)), out=out[start:start + step])
            # finite rows whose squares overflow meet +inf and -inf terms: NaN for a density of 0
            np.copyto(res, -np.inf, where=np.isnan(res))

        with _threads.compute() as n_threads:  # blocks on gmmhmm's threads, BLAS single-threaded
            for _ in _threads.map_ordered(block, range(0, n, step), n_threads):
                pass
        return out.astype(self.out_dtype, copy=False)

    def log_density(self, design: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(n, K) log-densities (plus log weights if given) of a block from its design rows."""
        if self.covariance_type == "tied":
            res = np.matmul(design, self.mu_u_t, out=out)
            res -= 0.5 * (design**2).sum(axis=1)[:, None]
            res += self.b
            return res
        return np.matmul(design, self.W, out=out)


def _check_model_arrays(X, means, precisions_cholesky, covariance_type):
    X = np.asarray(X)
    means = np.asarray(means)
    if X.ndim != 2 or means.ndim != 2 or X.shape[1] != means.shape[1]:
        raise InvalidInputError(
            f"X must be (n_samples, {means.shape[-1]}) to match means {means.shape}, got {X.shape}"
        )
    k, d = means.shape
    expected = covariance_shape(covariance_type, k, d)
    if np.shape(precisions_cholesky) != expected:
        raise InvalidInputError(
            f"precisions_cholesky for {covariance_type!r} must have shape {expected}, "
            f"got {np.shape(precisions_cholesky)}"
        )
    return X, means


def log_gaussian_density(X: np.ndarray, means: np.ndarray, precisions_cholesky: np.ndarray, covariance_type: str) -> np.ndarray:
    """Log-density ``log N(x_t | mu_k, Sigma_k)`` of every row under every component.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    means : ndarray of shape (n_components, n_features)
    precisions_cholesky : ndarray
        Upper-triangular precision factors in scikit-learn's layout.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    Returns
    -------
    log_prob : ndarray of shape (n_samples, n_components)
        In the result type of ``X`` and ``means`` (float32 stays float32).
    """
    check_covariance_type(covariance_type)
    X, means = _check_model_arrays(X, means, precisions_cholesky, covariance_type)
    dtype = np.result_type(X.dtype, means.dtype, np.float32)
    return DensityPlan(means, precisions_cholesky, covariance_type, dtype=dtype).evaluate(X)


# Design rows of at most this many elements (32 MB) are kept from the densities
# for the statistics; larger batches are evaluated in blocks and re-read.
_DESIGN_CACHE_ELEMENTS = 1 << 22


def log_densities(X: np.ndarray, plan: DensityPlan, keep_design: bool):
    """(N, K) log-densities (plus the plan's log weights) of rows ``X`` and,
    when worth keeping, ``(design, center)``.

    The design rows ``[quadratic terms of x - c, x - c, 1]`` that give the
    densities in one GEMM also give all the statistics in one GEMM
    (:meth:`GaussianStats.from_design`), so the E-step reads them twice from
    cache instead of making new passes over ``X``.
    """
    if keep_design and plan.covariance_type != "tied" and X.shape[0] * plan.n_design <= _DESIGN_CACHE_ELEMENTS:
        design = plan.design(X)
        return plan.log_density(design), (design, plan.center)
    return plan.evaluate(X), None


def accumulate_gaussians(X: np.ndarray, resp: np.ndarray, design, covariance_type: str
                         ) -> GaussianStats:
    """Statistics of ``X`` weighted by ``resp``, from the kept design rows if any."""
    if design is not None:
        return GaussianStats.from_design(design[0], resp, design[1], covariance_type)
    return GaussianStats.from_posteriors(X, resp, covariance_type)


def mixture_log_likelihood(component_log_prob: np.ndarray, n_mix: int) -> np.ndarray:
    """Per-state log-likelihoods of stacked Gaussian mixtures, in place.

    ``component_log_prob`` (N, S * n_mix) holds ``log w_sm + log N(x_t | s, m)``
    with the mixtures of state ``s`` in columns ``s * n_mix : (s + 1) * n_mix``.
    Returns ``log sum_m exp(...)`` per state, (N, S), ``-inf`` where every
    component of a state is impossible, and overwrites the input with the
    within-state responsibilities (each state's columns sum to 1, or are 0).
    """
    n, k = component_log_prob.shape
    if not component_log_prob.flags.c_contiguous or k % n_mix:
        raise InvalidInputError(f"component log-probabilities must be a C-contiguous (N, S * {n_mix}) "
                                f"array, got shape {component_log_prob.shape}")
    if n_mix == 1:
        state = component_log_prob.copy()
        component_log_prob.fill(1.0)
        component_log_prob[~np.isfinite(state)] = 0.0
        return state
    groups = component_log_prob.reshape(n * (k // n_mix), n_mix)  # a view: one row per (frame, state)
    log_norm = np.empty(groups.shape[0], dtype=groups.dtype)
    _kernels.normalize_log_resp(groups, np.ones(groups.shape[0], dtype=groups.dtype), log_norm,
                                _kernels.flush_cutoff(groups.dtype))
    return log_norm.reshape(n, k // n_mix)
