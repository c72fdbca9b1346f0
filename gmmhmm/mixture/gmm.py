"""GaussianMixture: a drop-in for ``sklearn.mixture.GaussianMixture``.

EM is split Kaldi-style into an accumulator and an estimator::

    stats = gmm.accumulate(X_part1) + gmm.accumulate(X_part2)   # E-step
    gmm.update(stats)                                           # M-step

and ``fit`` is a loop over exactly that cycle (``fit_blocks`` the same loop
with each E-step summed over blocks of rows read anew, for data too large to
hold; its initialisation sees a bounded sample). The E-step is fused: each
block of rows goes through one GEMM for the log-densities of all
components, a compiled log-sum-exp normalisation, and one GEMM for the
statistics, without materialising (N, K) arrays for the whole data.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from .._validation import (
    check_fitted_array,
    check_array,
    check_in,
    check_is_fitted,
    check_positive_int,
    check_random_state,
    check_sample_weight,
)
from ..errors import ConvergenceError, ConvergenceWarning, InvalidInputError, InvalidParameterError
from ..modelfile import ModelFileMixin, register_model_class
from . import _kernels
from ._kmeans import kmeans, kmeans_plusplus
from .. import _threads
from .._params import ParamsMixin
from .gaussian import (
    DensityPlan,
    check_covariance_type,
    covariance_shape,
    covariances_from_precisions_cholesky,
    mixture_log_likelihood,
    precisions_cholesky_from_covariances,
    precisions_cholesky_from_precisions,
    precisions_from_precisions_cholesky,
)
from .estimate import GaussianParams, GaussianUpdateOptions, update_gaussians
from .mixup import mix_up
from .stats import GaussianStats

logger = logging.getLogger(__name__)

INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")


@dataclass
class MixtureStats:
    """E-step output: Gaussian statistics plus the data log-likelihood.

    ``log_likelihood`` is ``sum_t w_t log p(x_t)`` under the parameters that
    produced the posteriors and ``total_weight`` is ``sum_t w_t``; their ratio
    is scikit-learn's ``lower_bound_``.
    """

    gaussian: GaussianStats
    log_likelihood: float
    total_weight: float

    def __add__(self, other: "MixtureStats") -> "MixtureStats":
        if not isinstance(other, MixtureStats):
            return NotImplemented
        return MixtureStats(
            self.gaussian + other.gaussian,
            self.log_likelihood + other.log_likelihood,
            self.total_weight + other.total_weight,
        )

    def __iadd__(self, other: "MixtureStats") -> "MixtureStats":
        self.gaussian += other.gaussian
        self.log_likelihood += other.log_likelihood
        self.total_weight += other.total_weight
        return self

    def __radd__(self, other):
        if isinstance(other, int) and other == 0:  # sum([...])
            return self
        return NotImplemented


# Relative error of a variance above which a float32 E-step sums its statistics in float64
_STATS_RTOL = 1e-5
_ILL_DEFINED = ("Fitting the mixture model failed because some components have ill-defined empirical "
                "covariance (for instance caused by singleton or collapsed samples). Try to decrease the "
                "number of components, increase reg_covar, or scale the input data.")


def _row_sample(blocks: Iterable[np.ndarray], n_rows: int, rng: np.random.RandomState) -> np.ndarray:
    """A uniform sample of ``n_rows`` of the rows of ``blocks`` (all of them, drawing nothing, when
    there are no more), in their order, holding at most about four times ``n_rows`` rows (the
    sample, the blocks read since the last merge and their merge) plus two blocks at once.

    Bottom-k sampling: every row gets a uniform key, the ``n_rows`` smallest keys win. Keys are
    drawn in row order once the rows outnumber the sample, so the sample depends only on the rows
    and ``rng``, not on how they are cut into blocks."""
    kept: np.ndarray | None = None  # the sample so far, in row order
    keys: np.ndarray | None = None  # its keys; None while every row is kept
    pending: list[np.ndarray] = []
    n_pending = 0

    def merge() -> None:
        nonlocal kept, keys, pending, n_pending
        rows = np.concatenate(([] if kept is None else [kept]) + pending)
        pending, n_pending = [], 0
        if keys is None and len(rows) <= n_rows:
            kept = rows
            return
        new_keys = rng.random_sample(len(rows) - (0 if keys is None else len(keys)))
        all_keys = new_keys if keys is None else np.concatenate([keys, new_keys])
        chosen = np.sort(np.argpartition(all_keys, n_rows - 1)[:n_rows]) if len(rows) > n_rows else slice(None)
        kept, keys = rows[chosen], all_keys[chosen]

    width = None
    for number, block in enumerate(blocks, start=1):
        block = np.asarray(block)
        if block.ndim != 2 or block.shape[1] != (width or block.shape[1]):
            raise InvalidInputError(f"fit_blocks: block {number} has shape {block.shape}; "
                                    + ("blocks are (n_rows, n_features) arrays" if width is None
                                       else f"the first had {width} columns"))
        width = width or block.shape[1]
        if len(block):
            pending.append(block)
            n_pending += len(block)
            if n_pending >= n_rows:
                merge()
    if pending:
        merge()
    if kept is None:
        raise InvalidInputError("fit_blocks: the blocks hold no rows")
    return kept


def _init_array(value, name: str) -> np.ndarray:
    """A ``*_init`` parameter in float64; complex numbers refused (numpy would drop their imaginary parts)."""
    if np.iscomplexobj(value):
        raise InvalidParameterError(f"{name} must be real, got complex numbers")
    return np.asarray(value, dtype=np.float64)


def _estimated_precisions_cholesky(covariances: np.ndarray, covariance_type: str) -> np.ndarray:
    """Precision Cholesky factors of covariances estimated from data; a singular one
    raises ConvergenceError in scikit-learn's words (its tests match on them)."""
    try:
        return precisions_cholesky_from_covariances(covariances, covariance_type)
    except InvalidParameterError as exc:
        raise ConvergenceError(f"{_ILL_DEFINED} ({exc})") from exc


@register_model_class
class GaussianMixture(ModelFileMixin, ParamsMixin):
    """Gaussian mixture model fitted by EM.

    Same constructor, attributes and methods as
    ``sklearn.mixture.GaussianMixture``; in addition ``fit`` accepts
    ``sample_weight``, ``dtype='float32'`` keeps parameters and
    log-probabilities in single precision (by default they follow ``X``:
    float32 data gives float32 parameters, as in scikit-learn), ``accumulate`` / ``update`` expose
    the E- and M-steps for distributed training, ``fit_blocks`` runs EM over data too large to
    hold at once and ``split`` grows the model by HTK-style mixture splitting.

    Parameters
    ----------
    n_components : int, default=1
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
    tol : float, default=1e-3
        Convergence threshold on the change of the per-sample log-likelihood.
    reg_covar : float, default=1e-6
        Added to covariance diagonals; floors variances.
    max_iter : int, default=100
    n_init : int, default=1
        Number of initialisations; the best lower bound wins.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
    weights_init, means_init, precisions_init : array-like, optional
        User-supplied initial parameters (scikit-learn shapes).
    random_state : int, RandomState or None
    warm_start : bool, default=False
        Continue from the current parameters on the next ``fit``.
    verbose, verbose_interval : int
        Print progress as scikit-learn does (messages also go to logging).
    dtype : {None, 'float64', 'float32'}, default=None
        Precision of the parameters and computations; None follows ``X``
        (float32 stays float32, anything else becomes float64).

    Attributes
    ----------
    weights_, means_, covariances_, precisions_, precisions_cholesky_ : ndarray
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Per-sample log-likelihood of the best run before its last M-step.
    lower_bounds_ : list of float
        ``lower_bound`` after each iteration of the best run.
    n_features_in_ : int
    """

    _sklearn_estimator_type = "density_estimator"

    _saved_attributes = (
        "weights_",
        "means_",
        "covariances_",
        "precisions_cholesky_",
        "precisions_",
        "converged_",
        "n_iter_",
        "lower_bound_",
        "lower_bounds_",
        "n_features_in_",
    )

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "full",
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start: bool = False,
        verbose: int = 0,
        verbose_interval: int = 10,
        dtype: str | None = None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.dtype = dtype

    # ------------------------------------------------------------------
    # validation
    # ------------------------------------------------------------------

    @property
    def _dtype(self) -> np.dtype:
        """The ``dtype`` parameter, validated (None: float64, unless ``X`` says float32)."""
        if self.dtype is None:
            return np.dtype(np.float64)
        try:
            dt = np.dtype(self.dtype)
        except TypeError:
            dt = None
        if dt not in (np.dtype(np.float64), np.dtype(np.float32)):
            raise InvalidParameterError(f"dtype must be 'float64' or 'float32', got {self.dtype!r}")
        return dt

    def _check_parameters(self) -> None:
        check_positive_int(self.n_components, "n_components")
        check_covariance_type(self.covariance_type)
        check_in(self.init_params, INIT_PARAMS, "init_params")
        check_positive_int(self.max_iter, "max_iter", minimum=0)
        check_positive_int(self.n_init, "n_init")
        check_positive_int(self.verbose_interval, "verbose_interval")
        check_positive_int(self.verbose, "verbose", minimum=0)
        for name in ("tol", "reg_covar"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
                    or not np.isfinite(value) or value < 0:
                raise InvalidParameterError(f"{name} must be a finite number >= 0, got {value!r}")
        self._dtype  # noqa: B018 - validates

    def _check_initial_parameters(self, n_features: int) -> None:
        # Messages start with scikit-learn's wording (its own tests match on it).
        k, d = self.n_components, n_features
        if self.weights_init is not None:
            w = _init_array(self.weights_init, "weights_init")
            if w.shape != (k,):
                raise InvalidParameterError(f"The parameter 'weights' should have the shape of ({k},), "
                                            f"but got {w.shape} (weights_init)")
            if not np.all(np.isfinite(w)) or np.any(w < 0) or np.any(w > 1):
                # scikit-learn prints min as "max value" and max as "min value"; kept so its tests match
                raise InvalidParameterError(
                    "The parameter 'weights' should be in the range [0, 1], but got max value "
                    f"{np.min(w):.5f}, min value {np.max(w):.5f} (weights_init must be finite and within [0, 1])")
            if not np.isclose(w.sum(), 1.0, rtol=0, atol=1e-6):
                raise InvalidParameterError(f"The parameter 'weights' should be normalized, but got "
                                            f"sum(weights) = {w.sum():.5f} (weights_init must sum to 1)")
        if self.means_init is not None:
            m = _init_array(self.means_init, "means_init")
            if m.shape != (k, d):
                raise InvalidParameterError(f"The parameter 'means' should have the shape of ({k}, {d}), "
                                            f"but got {m.shape} (means_init)")
            if not np.all(np.isfinite(m)):
                raise InvalidParameterError("means_init contains NaN or infinity")
        if self.precisions_init is not None:
            ct = self.covariance_type
            p = _init_array(self.precisions_init, "precisions_init")
            want = covariance_shape(ct, k, d)
            if p.shape != want:
                raise InvalidParameterError(f"The parameter '{ct} precision' should have the shape of {want}, "
                                            f"but got {p.shape} (precisions_init)")
            if ct in ("full", "tied"):
                stack = p.reshape(-1, d, d)
                if (not np.allclose(stack, np.swapaxes(stack, 1, 2))
                        or not np.all(np.linalg.eigvalsh(stack) > 0)):
                    raise InvalidParameterError(
                        f"'{ct} precision' should be symmetric, positive-definite (precisions_init)")
            elif not np.all(p > 0):
                raise InvalidParameterError(f"'{ct} precision' should be positive (precisions_init)")

    def _check_X(self, X, *, fitting: bool = False, model_dtype: bool = False) -> np.ndarray:
        """Validated rows: for fitting in the ``dtype`` the parameters will have; for scoring
        in the model's precision if ``dtype`` was given (or ``model_dtype``), else in their
        own, as scikit-learn (float32 only when rows and model both are: float64 rows on a
        model fitted to float32 rows give float64 results)."""
        x_is_32 = getattr(X, "dtype", None) == np.float32
        if fitting:
            return check_array(X, dtype=np.float32 if self.dtype is None and x_is_32 else self._dtype,
                               min_samples=2)
        check_is_fitted(self, "means_")
        dtype = self.means_.dtype if model_dtype or x_is_32 or self.dtype is not None else np.float64
        return check_array(X, dtype=dtype, n_features=self.means_.shape[1], model=type(self).__name__)

    # ------------------------------------------------------------------
    # initialisation
    # ------------------------------------------------------------------

    def _initial_resp(self, X: np.ndarray, rng: np.random.RandomState, sample_weight: np.ndarray) -> np.ndarray:
        n, k = X.shape[0], self.n_components
        if self.init_params == "random":
            resp = rng.uniform(size=(n, k))
            return resp / resp.sum(axis=1)[:, None]
        resp = np.zeros((n, k))
        if self.init_params == "kmeans":
            resp[np.arange(n), kmeans(X, k, rng, sample_weight)[0]] = 1.0
        elif self.init_params == "random_from_data":
            resp[rng.choice(n, size=k, replace=False), np.arange(k)] = 1.0
        else:
            _, idx = kmeans_plusplus(X, k, rng, sample_weight)
            resp[idx, np.arange(k)] = 1.0
        return resp

    def _initialize_parameters(self, X: np.ndarray, rng: np.random.RandomState, sample_weight: np.ndarray) -> None:
        dt = X.dtype
        need_resp = self.weights_init is None or self.means_init is None or self.precisions_init is None
        if need_resp:
            resp = self._initial_resp(X, rng, sample_weight) * sample_weight[:, None]
            # about the data's mean: the raw moments of data far from the origin would cancel
            stats = GaussianStats.from_posteriors(X, resp, self.covariance_type, X.mean(axis=0, dtype=np.float64))
            first, _ = update_gaussians(stats, self.covariance_type, self._update_options())
            weights = (stats.n + 10 * np.finfo(np.float64).eps) / sample_weight.sum()
            means, covariances = first.means, first.covars
        if self.weights_init is not None:
            weights = np.asarray(self.weights_init, dtype=np.float64)
        if self.means_init is not None:
            means = np.asarray(self.means_init, dtype=np.float64)
        if self.precisions_init is None:
            pc = _estimated_precisions_cholesky(covariances, self.covariance_type)
        else:
            pc = precisions_cholesky_from_precisions(np.asarray(self.precisions_init, np.float64), self.covariance_type)
            covariances = covariances_from_precisions_cholesky(pc, self.covariance_type)
        self._set_parameters(weights, means, covariances, pc, dt)

    def _set_parameters(self, weights, means, covariances, precisions_cholesky, dtype=None) -> None:
        dtype = dtype or (self.means_.dtype if hasattr(self, "means_") else self._dtype)
        self.weights_ = np.asarray(weights, dtype=dtype)
        self.means_ = np.asarray(means, dtype=dtype)
        self.covariances_ = np.asarray(covariances, dtype=dtype)
        self.precisions_cholesky_ = np.asarray(precisions_cholesky, dtype=dtype)
        self.precisions_ = precisions_from_precisions_cholesky(self.precisions_cholesky_, self.covariance_type)

    def _check_loaded(self) -> None:
        """Called by :func:`gmmhmm.modelfile.load`: a tampered file fails at load, not at first use."""
        if not hasattr(self, "means_"):
            return
        k, d = self.n_components, np.shape(self.means_)[-1]
        cov = covariance_shape(self.covariance_type, k, d)
        check_fitted_array(self.weights_, "weights_", (k,), probabilities=True)
        check_fitted_array(self.means_, "means_", (k, d))
        n_in = getattr(self, "n_features_in_", d)
        if isinstance(n_in, bool) or not isinstance(n_in, (int, np.integer)) or n_in != d:
            raise InvalidParameterError(f"n_features_in_ must be the means' dimension {d}, got {n_in!r}")
        covariances = check_fitted_array(self.covariances_, "covariances_", cov,
                                         positive=self.covariance_type in ("diag", "spherical"))
        pc = check_fitted_array(self.precisions_cholesky_, "precisions_cholesky_", cov).astype(np.float64)
        if self.covariance_type in ("full", "tied"):
            mats = np.asarray(covariances, dtype=np.float64).reshape(-1, d, d)
            if not np.allclose(mats, np.swapaxes(mats, 1, 2)) or np.any(np.linalg.eigvalsh(mats) <= 0):
                raise InvalidParameterError("covariances_ must be symmetric, positive-definite")
        # Scoring uses precisions_cholesky_ alone (a factor <= 0 scores NaN). It and precisions_ are
        # derived from covariances_: a grossly corrupt one is refused; stored copies that disagree
        # with covariances_ beyond rounding are replaced by re-derived ones (a tolerance that refused
        # them would refuse float32 fits of ill-conditioned data); agreeing ones load bit for bit.
        factors = pc.reshape(-1, d, d) if self.covariance_type in ("full", "tied") else pc.reshape(len(pc), -1)
        diagonal = np.diagonal(factors, axis1=1, axis2=2) if factors.ndim == 3 else factors
        if np.any(diagonal <= 0):
            raise InvalidParameterError("precisions_cholesky_ must be the positive Cholesky factors of the "
                                        "inverse covariances_")
        stored = check_fitted_array(self.precisions_, "precisions_", cov) if hasattr(self, "precisions_") else None
        want = precisions_cholesky_from_covariances(np.asarray(covariances, dtype=np.float64), self.covariance_type)
        scale = np.abs(want).reshape(k if self.covariance_type != "tied" else 1, -1).max(axis=1)
        scale = scale.reshape((-1,) + (1,) * (np.ndim(want) - 1))
        agrees = np.all(np.abs(pc - want) <= 1e-3 * scale) and (
            stored is None or np.allclose(stored, precisions_from_precisions_cholesky(pc, self.covariance_type),
                                          rtol=1e-3, atol=0))
        if not agrees:
            dtype = np.asarray(self.covariances_).dtype
            self.precisions_cholesky_ = want.astype(dtype)
            self.precisions_ = precisions_from_precisions_cholesky(self.precisions_cholesky_, self.covariance_type)

    def _gaussian_params(self) -> GaussianParams:
        """The parameters as the estimator and mix-up take them (one mixture of K)."""
        return GaussianParams(self.covariance_type, self.means_.astype(np.float64),
                              self.covariances_.astype(np.float64), self.weights_[None].astype(np.float64))

    def _get_parameters(self) -> tuple:
        return (self.weights_, self.means_, self.covariances_, self.precisions_cholesky_)

    # ------------------------------------------------------------------
    # E-step / M-step
    # ------------------------------------------------------------------

    def accumulate(self, X, sample_weight=None) -> MixtureStats:
        """E-step over ``X``: posterior-weighted statistics and log-likelihood.

        Statistics of any split of the data add up (``+``) to those of the
        whole; pass the sum to :meth:`update`.
        """
        X = self._check_X(X, model_dtype=True)
        sw = check_sample_weight(sample_weight, X.shape[0], dtype=X.dtype)
        return self._accumulate(X, sw)

    def _accumulate(self, X: np.ndarray, sample_weight: np.ndarray) -> MixtureStats:
        ct = self.covariance_type
        k, d = self.means_.shape
        plan = DensityPlan(self.means_, self.precisions_cholesky_, ct, dtype=self.means_.dtype,
                           log_weights=np.log(self.weights_))
        dt = plan.dtype  # float64 for float32 means too far apart for float32 densities
        step = plan.block_rows()
        n = X.shape[0]
        cutoff = _kernels.flush_cutoff(dt)
        buffers = threading.local()  # one set of work arrays per thread
        # float32 design rows and sums of rows centred on the mean of the means lose about
        # eps32 * max_distance2 of a variance (means far apart compared with their spread): then
        # the statistics are summed from float64 rows (the densities stay float32 until they
        # too would lose more than DensityPlan allows, and the plan computes in float64)
        exact = dt == np.float32 and np.finfo(dt).eps * plan.max_distance2 > _STATS_RTOL
        stats_dt = np.dtype(np.float64) if exact else dt
        center = plan.center.astype(stats_dt)

        def block(start: int):
            """Centred sums of one block of rows weighted by its posteriors, its
            pooled second moment (tied only) and its log-likelihood."""
            xb = X[start:start + step]
            m = len(xb)
            wb = sample_weight[start:start + step]
            if not hasattr(buffers, "lp"):
                rows = min(step, n)
                buffers.design = None if ct == "tied" else np.empty((rows, plan.n_design), dtype=dt)
                buffers.exact = np.empty((rows, plan.n_design), dtype=stats_dt) if exact and ct != "tied" else None
                buffers.lp = np.empty((rows, k), dtype=dt)
                buffers.norm = np.empty(rows, dtype=dt)
            design = plan.design(xb, buffers.design)
            lp = plan.log_density(design, out=buffers.lp[:m])
            ll = _kernels.normalize_log_resp(lp, wb, buffers.norm[:m], cutoff)  # lp := w_t * posterior
            lp = np.asarray(lp, dtype=stats_dt)
            if ct == "tied":
                xc = np.empty((m, d + 1), dtype=stats_dt)
                np.subtract(xb, center, out=xc[:, :d])
                xc[:, d] = 1.0
                return (xc.T @ lp).T, (xc[:, :d] * wb[:, None]).T @ xc[:, :d], ll
            if exact:
                design = plan.design(xb, buffers.exact)
            return (design.T @ lp).T, None, ll

        # Statistics of the centred rows x - c in float64 accumulators. The
        # design rows [quadratic terms, x - c, 1] of the densities give all of
        # them in one GEMM against the posteriors: (F, m) @ (m, K), the
        # orientation OpenBLAS handles many times faster than (K, m) @ (m, F).
        # Blocks run on gmmhmm's threads (single-threaded BLAS each) and are
        # added in block order, so the sums do not depend on the thread count.
        acc = np.zeros((k, d + 1 if ct == "tied" else plan.n_design))
        tied_s2 = np.zeros((d, d)) if ct == "tied" else None
        total_ll = 0.0
        with _threads.compute() as n_threads:
            for part, s2, ll in _threads.map_ordered(block, range(0, n, step), n_threads):
                acc += part
                total_ll += ll
                if s2 is not None:
                    tied_s2 += s2
        if not np.isfinite(total_ll):
            raise ConvergenceError(
                "some samples have zero likelihood under every component "
                "(log-likelihood is -inf); check the data scale or increase reg_covar"
            )
        stats = GaussianStats.from_centered(ct, acc, plan.center.astype(np.float64), tied_s2)
        return MixtureStats(stats, total_ll, float(sample_weight.sum(dtype=np.float64)))

    def _update_options(self) -> GaussianUpdateOptions:
        """scikit-learn's M-step as estimator settings: ``reg_covar`` on the diagonal and
        ``10 * eps`` added to every count (a Dirichlet pseudo-count), nothing else."""
        return GaussianUpdateOptions(reg_covar=float(self.reg_covar), weights_prior=10 * np.finfo(np.float64).eps)

    def update(self, stats: MixtureStats | GaussianStats) -> "GaussianMixture":
        """M-step: set the parameters from (summed) statistics.

        Uses :func:`gmmhmm.mixture.estimate.update_gaussians` with
        :meth:`_update_options`: a component whose occupancy is below
        ``1e-10`` of the total keeps its previous mean and covariance (its
        weight becomes ~0), so no parameter turns NaN.
        """
        gs = stats.gaussian if isinstance(stats, MixtureStats) else stats
        if not isinstance(gs, GaussianStats) or gs.covariance_type != self.covariance_type:
            raise InvalidInputError(
                f"update needs {self.covariance_type!r} statistics from accumulate, got {type(stats).__name__}"
            )
        if gs.n.sum() <= 0:
            raise ConvergenceError("the statistics are empty (total weight is zero)")
        if hasattr(self, "means_") and gs.s1.shape != self.means_.shape:
            raise InvalidInputError(f"statistics of shape {gs.s1.shape} do not match means {self.means_.shape}")
        previous = self._gaussian_params() if hasattr(self, "means_") else None
        new, _ = update_gaussians(gs, self.covariance_type, self._update_options(), previous,
                                  n_mix=gs.n_components)
        means, covariances = new.means, new.covars
        weights = new.weights[0]
        pc = _estimated_precisions_cholesky(covariances, self.covariance_type)
        self._set_parameters(weights, means, covariances, pc)
        self.n_features_in_ = means.shape[1]
        return self

    # ------------------------------------------------------------------
    # fitting
    # ------------------------------------------------------------------

    def fit(self, X, y=None, sample_weight=None) -> "GaussianMixture":
        """Estimate the parameters with EM (``n_init`` restarts, best kept); a failure leaves
        the model as it was."""
        self._fit(X, sample_weight)
        return self

    def fit_predict(self, X, y=None, sample_weight=None) -> np.ndarray:
        """Fit, then return the most probable component of each row of ``X``."""
        return self.predict(self._fit(X, sample_weight))

    def fit_blocks(self, blocks: Callable[[], Iterable[np.ndarray]], init_frames: int = 500_000
                   ) -> "GaussianMixture":
        """EM over rows too many to hold at once: ``blocks()`` yields them in blocks, anew at each call.

        Each E-step is the sum of :meth:`accumulate` over the blocks, so memory holds one block
        and the statistics, never all the rows. The initialisation (``init_params``, ``n_init``)
        runs on a sample of at most ``init_frames`` rows (as Kaldi's ``gmm-global-init-from-feats
        --num-frames``), uniform without replacement, drawn from ``random_state``, kept in data
        order; when there are no more rows than that, it is every row, and the model is the one
        ``fit(np.concatenate(list(blocks())))`` gives, to rounding. ``warm_start`` and the
        ``*_init`` parameters work as in :meth:`fit`. A failure leaves the model as it was.

        Parameters
        ----------
        blocks : callable
            ``blocks()`` -> an iterable of (n_rows, n_features) arrays; called once for the
            sample and once per EM iteration, giving the same rows every time.
        init_frames : int, default=500000
            Most rows held for the initialisation (at least ``n_components``).
        """
        init_frames = check_positive_int(init_frames, "init_frames")
        if init_frames < self.n_components:
            raise InvalidParameterError(f"init_frames ({init_frames}) must be at least n_components "
                                        f"({self.n_components})")
        with self._unchanged_on_failure():
            sample = _row_sample(blocks(), init_frames, check_random_state(self.random_state))

            def e_step() -> MixtureStats:
                stats = None
                for block in blocks():
                    if len(block):
                        part = self.accumulate(block)
                        if stats is None:
                            stats = part
                        else:
                            stats += part
                if stats is None:
                    raise InvalidInputError("fit_blocks: blocks() gave no rows this time (it must give the "
                                            "same rows at every call)")
                return stats

            self._em(sample, None, e_step)
        return self

    def _fit(self, X, sample_weight) -> np.ndarray:
        """EM with restarts; returns the validated ``X`` (``fit`` needs no labels, so no final E-step).
        A failure leaves the model as it was."""
        with self._unchanged_on_failure():
            return self._em(X, sample_weight)

    def _em(self, X, sample_weight, e_step: Callable[[], MixtureStats] | None = None) -> np.ndarray:
        """EM initialised from ``X``; each E-step over ``X`` itself, or ``e_step()`` (rows held elsewhere)."""
        self._check_parameters()
        X = self._check_X(X, fitting=True)
        n_samples, n_features = X.shape
        if n_samples < self.n_components:
            raise InvalidInputError(
                f"Expected n_samples >= n_components but got n_components = {self.n_components}, "
                f"n_samples = {n_samples}: need at least as many samples as components"
            )
        sw = check_sample_weight(sample_weight, n_samples, dtype=X.dtype)
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        if do_init:
            self._check_initial_parameters(n_features)
        else:
            want = (self.n_components, n_features), covariance_shape(self.covariance_type, self.n_components,
                                                                     n_features)
            if (self.means_.shape, self.covariances_.shape) != want:
                raise InvalidInputError(
                    f"warm start: the model has means of shape {self.means_.shape} and covariances of shape "
                    f"{self.covariances_.shape}, but n_components={self.n_components}, covariance_type="
                    f"{self.covariance_type!r} and X's {n_features} features need {want[0]} and {want[1]}"
                )
            # the parameters follow X (or dtype) on every fit, as a fresh one's
            self._set_parameters(*self._get_parameters(), X.dtype)
        n_init = self.n_init if do_init else 1
        rng = check_random_state(self.random_state)

        best = None
        max_lower_bound = -np.inf
        self.converged_ = False
        for init in range(n_init):
            self._say(f"Initialization {init}")
            t_init = time.perf_counter()
            if do_init:
                self._initialize_parameters(X, rng, sw)
            lower_bound = -np.inf if do_init else self.lower_bound_
            lower_bounds: list[float] = []
            converged = False
            n_iter = 0
            t_iter = time.perf_counter()
            for n_iter in range(1, self.max_iter + 1):
                prev = lower_bound
                stats = self._accumulate(X, sw) if e_step is None else e_step()
                self.update(stats)
                lower_bound = stats.log_likelihood / stats.total_weight
                lower_bounds.append(lower_bound)
                change = lower_bound - prev
                logger.info("init %d iteration %d: lower bound %.6f (change %.3g)", init, n_iter, lower_bound, change)
                if n_iter % self.verbose_interval == 0:
                    now = time.perf_counter()
                    self._say(f"  Iteration {n_iter}", f"\t time lapse {now - t_iter:.5f}s\t ll change {change:.5f}")
                    t_iter = now
                if abs(change) < self.tol:
                    converged = True
                    break
            if self.max_iter > 0:
                self._say(f"Initialization {'converged' if converged else 'did not converge'}.",
                          f" time lapse {time.perf_counter() - t_init:.5f}s\t lower bound {lower_bound:.5f}.")
            # scikit-learn's rule: without a lower bound (max_iter=0) the last restart is kept
            if best is None or lower_bound > max_lower_bound or max_lower_bound == -np.inf:
                max_lower_bound = lower_bound
                best = (self._get_parameters(), n_iter, lower_bounds, converged)
        params, self.n_iter_, self.lower_bounds_, self.converged_ = best
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different init parameters, "
                "or increase max_iter, tol, or check for degenerate data.",
                ConvergenceWarning,
                stacklevel=2,
            )
        self._set_parameters(*params)
        self.lower_bound_ = float(max_lower_bound)
        self.n_features_in_ = n_features
        return X

    def _say(self, message: str, details: str = "") -> None:
        """Print as scikit-learn does: ``message`` at verbose=1, with ``details`` from verbose=2."""
        logger.debug(message + details)
        if self.verbose:
            print(message + details if self.verbose >= 2 else message)

    # ------------------------------------------------------------------
    # inference
    # ------------------------------------------------------------------

    def _estimate_weighted_log_prob(self, X: np.ndarray) -> np.ndarray:
        """``log w_k + log N(x_t | k)``: the log weights ride in the density GEMM."""
        dtype = np.result_type(X.dtype, self.means_.dtype, np.float32)
        with np.errstate(divide="ignore"):
            log_weights = np.log(self.weights_)
        return DensityPlan(self.means_, self.precisions_cholesky_, self.covariance_type, dtype=dtype,
                           log_weights=log_weights).evaluate(X)

    def _posteriors(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(responsibilities (N, K), log p(x) (N,)) of validated rows."""
        resp = self._estimate_weighted_log_prob(X)
        return resp, mixture_log_likelihood(resp, resp.shape[1])[:, 0]

    def score_samples(self, X) -> np.ndarray:
        """Log-likelihood ``log p(x)`` of each row."""
        return self._posteriors(self._check_X(X))[1]

    def score(self, X, y=None) -> float:
        """Mean per-sample log-likelihood."""
        return float(self.score_samples(X).mean())

    def predict_proba(self, X) -> np.ndarray:
        """Posterior probability of each component, (n_samples, n_components)."""
        return self._posteriors(self._check_X(X))[0]

    def predict(self, X) -> np.ndarray:
        """Most probable component of each row."""
        X = self._check_X(X)
        return self._estimate_weighted_log_prob(X).argmax(axis=1)

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n_samples`` points; returns ``(X, component_labels)`` like scikit-learn."""
        check_is_fitted(self, "means_")
        if isinstance(n_samples, (int, np.integer)) and not isinstance(n_samples, bool) and n_samples < 1:
            raise InvalidParameterError(
                f"Invalid value for 'n_samples': {n_samples} . The sampling requires at least one sample.")
        n_samples = check_positive_int(n_samples, "n_samples")
        rng = check_random_state(self.random_state)
        k, d = self.means_.shape
        w = self.weights_.astype(np.float64)
        counts = rng.multinomial(n_samples, w / w.sum())
        means = self.means_.astype(np.float64)
        cov = self.covariances_.astype(np.float64)
        if self.covariance_type == "full":
            parts = [rng.multivariate_normal(m, c, int(s)) for m, c, s in zip(means, cov, counts)]
        elif self.covariance_type == "tied":
            parts = [rng.multivariate_normal(m, cov, int(s)) for m, s in zip(means, counts)]
        else:
            parts = [m + rng.standard_normal(size=(s, d)) * np.sqrt(c) for m, c, s in zip(means, cov, counts)]
        X = np.vstack(parts)
        if self.dtype is not None:  # scikit-learn draws float64 whatever the model's precision
            X = X.astype(self.means_.dtype)
        y = np.concatenate([np.full(int(s), j, dtype=np.int64) for j, s in enumerate(counts)])
        return X, y

    def _n_parameters(self) -> int:
        k, d = self.means_.shape
        cov_params = {
            "full": k * d * (d + 1) / 2.0,
            "diag": k * d,
            "tied": d * (d + 1) / 2.0,
            "spherical": k,
        }[self.covariance_type]
        return int(cov_params + k * d + k - 1)

    def bic(self, X) -> float:
        """Bayesian information criterion on ``X`` (lower is better)."""
        X = self._check_X(X)
        return -2 * float(self._posteriors(X)[1].sum()) + self._n_parameters() * np.log(X.shape[0])

    def aic(self, X) -> float:
        """Akaike information criterion on ``X`` (lower is better)."""
        X = self._check_X(X)
        return -2 * float(self._posteriors(X)[1].sum()) + 2 * self._n_parameters()

    # ------------------------------------------------------------------
    # mixture splitting (HTK HHEd MU)
    # ------------------------------------------------------------------

    def split(self, n_components: int) -> "GaussianMixture":
        """Grow to ``n_components`` by HTK's mixture splitting (:func:`gmmhmm.mixture.mixup.mix_up`).

        The component with the best score *weight - times already split* is
        split in two, each half with half its weight, a copy of its
        covariance and the mean moved +/- 0.2 standard deviations along every
        dimension, until there are ``n_components``. Only ``n_components``
        and the fitted attributes change (``lower_bound_`` becomes -inf: the split model has had
        no E-step yet); ``warm_start`` and the ``*_init``
        hyperparameters stay as they are, so continue EM from the split model
        with ``update(accumulate(X))`` or ``set_params(warm_start=True).fit(X)``.
        """
        check_is_fitted(self, "means_")
        n_components = check_positive_int(n_components, "n_components")
        k = self.means_.shape[0]
        if n_components < k:
            raise InvalidParameterError(f"split can only grow the model: it has {k} components, asked for {n_components}")
        grown = mix_up(self._gaussian_params(), n_components)
        pc = precisions_cholesky_from_covariances(grown.covars, self.covariance_type)
        self._set_parameters(grown.weights[0], grown.means, grown.covars, pc)
        self.n_components = n_components
        self.converged_ = False
        # the bound was the unsplit model's: a warm fit measuring its first change against it
        # would stop after one iteration, the split having hardly changed the likelihood
        self.lower_bound_ = -np.inf
        return self
