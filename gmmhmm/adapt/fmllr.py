"""fMLLR / CMLLR: one affine feature transform per speaker (Gales 1998).

The transform ``W = [A b]`` (D, D+1) maps a feature ``x`` to ``A x + b``; it
is chosen to maximise the likelihood of the mapped features under a set of
diagonal Gaussians, Jacobian ``log|det A|`` included, given per-frame
Gaussian posteriors ``gamma_tm``. With ``xi = [x; 1]`` the auxiliary function
(Kaldi's ``FmllrAuxFuncDiagGmm``) is::

    Q(W) = beta log|det A| + sum_i ( w_i . k_i - 1/2 w_i^T G_i w_i )

where ``w_i`` is row ``i`` of ``W`` and the statistics are additive over
frames, utterances and processes (Kaldi's ``FmllrDiagGmmAccs``)::

    beta = sum_tm gamma_tm
    k_i  = sum_tm gamma_tm mu_mi / var_mi xi_t          K (D, D+1)
    G_i  = sum_tm gamma_tm / var_mi xi_t xi_t^T         G (D, D+1, D+1)

:func:`estimate_fmllr` maximises ``Q`` row by row (Gales' cofactor update,
Kaldi's ``ComputeFmllrMatrixDiagGmmFull``): with the other rows fixed,
``det A = c_i . w_i`` for the cofactor row ``c_i``, and the best row is
``w_i = G_i^{-1} (alpha p_i + k_i)`` with ``p_i = [c_i, 0]`` and ``alpha``
the root of ``alpha^2 p G^-1 p + alpha p G^-1 k - beta = 0`` that gives the
larger ``Q``. Each row update is an exact maximisation, so ``Q`` never
decreases. This is HTK's CMLLR (``HERest -u a``) with one full transform.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .._validation import check_in
from ..mixture.stats import positive_definite, weighted_rows
from ..errors import InvalidInputError, InvalidParameterError

logger = logging.getLogger(__name__)

__all__ = ["FmllrStats", "accumulate_fmllr_stats", "apply_fmllr", "estimate_fmllr", "fmllr_auxf",
           "identity_transform"]


@dataclass
class FmllrStats:
    """Additive fMLLR statistics of one speaker (or any group of frames sharing a transform).

    Attributes
    ----------
    beta : float
        Total Gaussian occupancy (frames, if posteriors sum to 1 per frame).
    K : ndarray (D, D+1)
    G : ndarray (D, D+1, D+1)
    """

    beta: float
    K: np.ndarray
    G: np.ndarray

    @classmethod
    def zeros(cls, n_features: int) -> "FmllrStats":
        D = int(n_features)
        return cls(0.0, np.zeros((D, D + 1)), np.zeros((D, D + 1, D + 1)))

    @property
    def n_features(self) -> int:
        return self.K.shape[0]

    def __add__(self, other: "FmllrStats") -> "FmllrStats":
        if not isinstance(other, FmllrStats):
            return NotImplemented
        if other.K.shape != self.K.shape:
            raise InvalidInputError(f"cannot add fMLLR statistics of {other.n_features} and {self.n_features} dims")
        return FmllrStats(self.beta + other.beta, self.K + other.K, self.G + other.G)

    def __radd__(self, other):
        if isinstance(other, int) and other == 0:  # sum(list_of_stats)
            return self
        return NotImplemented


def identity_transform(n_features: int) -> np.ndarray:
    """``[I 0]`` (D, D+1): the transform that changes nothing."""
    return np.hstack([np.eye(n_features), np.zeros((n_features, 1))])


def _check_transform(W: np.ndarray, n_features: int | None = None) -> np.ndarray:
    W = np.asarray(W, dtype=np.float64)
    if W.ndim != 2 or W.shape[1] != W.shape[0] + 1 or (n_features is not None and W.shape[0] != n_features):
        want = f"({n_features}, {n_features + 1})" if n_features is not None else "(D, D+1)"
        raise InvalidInputError(f"an fMLLR transform must have shape {want}, got {W.shape}")
    if not np.all(np.isfinite(W)):
        raise InvalidInputError("fMLLR transform has non-finite entries")
    return W


def apply_fmllr(W: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``A x + b`` for every row ``x`` of ``X`` (T, D); ``W = [A b]`` (D, D+1)."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise InvalidInputError(f"features must be a (n_frames, n_features) array, got shape {X.shape}")
    W = _check_transform(W, X.shape[1])
    return X @ W[:, :-1].T + W[:, -1]


def accumulate_fmllr_stats(X: np.ndarray, posteriors: np.ndarray, means: np.ndarray, variances: np.ndarray,
                           block_frames: int = 1024) -> FmllrStats:
    """fMLLR statistics of features ``X`` (T, D) under diagonal Gaussians.

    Parameters
    ----------
    X : (T, D) features in the space the transform maps *from*
    posteriors : (T, K) posterior of each Gaussian at each frame (any weights >= 0)
    means, variances : (K, D) the diagonal Gaussians
    block_frames : frames per GEMM block (bounds memory at ``block_frames * (D+1)(D+2)/2`` floats)

    The Gaussians enter only through the two (T, D) products ``posteriors @ (1/var)``
    and ``posteriors @ (mu/var)``, so the cost is two GEMMs over K plus
    ``G = (posteriors @ (1/var))^T @ [xi xi^T]`` over frames.
    """
    X = np.asarray(X, dtype=np.float64)
    gamma = np.asarray(posteriors, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    variances = np.asarray(variances, dtype=np.float64)
    if X.ndim != 2 or gamma.ndim != 2 or len(X) != len(gamma):
        raise InvalidInputError(f"features {X.shape} and posteriors {gamma.shape} must be (T, D) and (T, K)")
    T, D = X.shape
    if means.shape != (gamma.shape[1], D) or variances.shape != means.shape:
        raise InvalidInputError(f"means {means.shape} and variances {variances.shape} must be "
                                f"({gamma.shape[1]}, {D}) for {gamma.shape[1]} posteriors of {D}-dim features")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(gamma)) and np.all(np.isfinite(means))):
        raise InvalidInputError("features, posteriors or means hold non-finite values")
    if np.any(gamma < 0) or not np.all(variances > 0):
        raise InvalidInputError("posteriors must be >= 0 and variances > 0")
    X, gamma = weighted_rows(X, gamma)  # a frame of zero posterior adds nothing, even an overflowing one
    T = len(X)
    inv_var = 1.0 / variances
    scale = gamma @ inv_var  # (T, D): sum_m gamma_tm / var_mi
    target = gamma @ (means * inv_var)  # (T, D): sum_m gamma_tm mu_mi / var_mi
    xi = np.hstack([X, np.ones((T, 1))])
    rows, cols = np.triu_indices(D + 1)  # G_i is symmetric: one GEMM over the upper triangles
    upper = np.zeros((D, len(rows)))
    for start in range(0, T, block_frames):
        x = xi[start:start + block_frames]
        upper += scale[start:start + block_frames].T @ (x[:, rows] * x[:, cols])
    G = np.empty((D, D + 1, D + 1))
    G[:, rows, cols] = upper
    G[:, cols, rows] = upper
    return FmllrStats(float(gamma.sum()), target.T @ xi, G)


def fmllr_auxf(stats: FmllrStats, W: np.ndarray) -> float:
    """``Q(W) = beta log|det A| + sum_i (w_i . k_i - 1/2 w_i G_i w_i)``: the log-likelihood of the
    transformed frames (Jacobian included) up to a constant that does not depend on ``W``."""
    W = _check_transform(W, stats.n_features)
    sign, logdet = np.linalg.slogdet(W[:, :-1])
    if sign == 0:
        return -np.inf
    return float(stats.beta * logdet + np.sum(W * stats.K) - 0.5 * np.einsum("ij,ijk,ik->", W, stats.G, W))


UPDATE_TYPES = ("full", "diag", "offset")


def _estimate_diag_or_offset(stats: FmllrStats, update_type: str) -> np.ndarray:
    """Closed-form optimum of a diagonal ``A`` (or ``A = I``) and offset ``b`` (Kaldi
    ``ComputeFmllrMatrixDiagGmmDiagonal`` / ``...Offset``): each row is a 2-parameter problem.

    Offset: ``dQ/db_i = k_iD - G_i[D, i] - b_i G_i[D, D] = 0``. Diagonal: eliminating
    ``b_i = (k_iD - a_i G_i[D, i]) / G_i[D, D]`` leaves ``beta + c1 a - c2 a^2 = 0`` with
    ``c1 = k_ii - k_iD G_i[D, i] / G_i[D, D]``, ``c2 = G_i[i, i] - G_i[D, i]^2 / G_i[D, D]``,
    whose positive root is the maximum with ``a_i > 0``.
    """
    D = stats.n_features
    W = identity_transform(D)
    idx = np.arange(D)
    K, G = stats.K, stats.G
    g_dd, g_di, g_ii = G[idx, D, D], G[idx, D, idx], G[idx, idx, idx]
    k_d, k_i = K[idx, D], K[idx, idx]
    if update_type == "offset":
        W[:, D] = (k_d - g_di) / g_dd
        return W
    c1 = k_i - k_d * g_di / g_dd
    c2 = g_ii - g_di**2 / g_dd
    a = (c1 + np.sqrt(c1 * c1 + 4.0 * c2 * stats.beta)) / (2.0 * c2)
    W[idx, idx] = a
    W[:, D] = (k_d - a * g_di) / g_dd
    return W


def _free_blocks(G: np.ndarray, update_type: str) -> np.ndarray:
    """The block of each ``G_i`` over row ``i``'s free parameters: all of ``w_i`` (full),
    ``(a_ii, b_i)`` (diag) or ``b_i`` (offset). Q has a finite maximum iff every block is
    positive definite."""
    D = G.shape[0]
    if update_type == "full":
        return G
    rows = np.arange(D)
    free = np.stack([rows, np.full(D, D)], axis=1) if update_type == "diag" else np.full((D, 1), D)
    return G[rows[:, None, None], free[:, :, None], free[:, None, :]]


def estimate_fmllr(stats: FmllrStats, n_iters: int = 40, init: np.ndarray | None = None, min_count: float = 20.0,
                   tol: float | None = 1e-8, update_type: str = "full") -> np.ndarray:
    """Maximum-likelihood fMLLR transform ``W = [A b]`` (D, D+1) from summed statistics.

    Parameters
    ----------
    stats : FmllrStats
    n_iters : int
        Passes of row-by-row updates over all D rows (Kaldi ``--fmllr-num-iters``, default 40).
    init : (D, D+1), optional
        Starting transform (default identity); ``A`` must be non-singular.
    min_count : float
        With less occupancy than this the transform is not estimated and ``init``
        (identity) is returned, as Kaldi's ``--fmllr-min-count``.
    tol : float or None
        Stop when a pass raises ``Q`` by less than ``tol`` per frame (None: run all ``n_iters``).
    update_type : {'full', 'diag', 'offset'}
        Full ``A``; diagonal ``A``; ``A = I`` (Kaldi ``--fmllr-update-type``): fewer
        parameters (2D, D instead of D(D+1)) for little data; both have closed forms.

    Raises
    ------
    InvalidParameterError
        ``n_iters`` < 0, or ``init`` singular.
    """
    if int(n_iters) != n_iters or n_iters < 0:
        raise InvalidParameterError(f"n_iters must be an integer >= 0, got {n_iters!r}")
    check_in(update_type, UPDATE_TYPES, "update_type")
    D = stats.n_features
    W = identity_transform(D) if init is None else _check_transform(init, D).copy()
    if abs(np.linalg.det(W[:, :-1])) == 0:
        raise InvalidParameterError("the initial fMLLR transform has a singular A")
    if not np.isfinite(stats.beta) or stats.beta < max(min_count, 0.0) or stats.beta <= 0:
        logger.info("fMLLR: occupancy %.1f below min_count %.1f; transform not estimated", stats.beta, min_count)
        return W
    if not positive_definite(_free_blocks(stats.G, update_type)):
        logger.warning("fMLLR: statistics are singular (too few distinct frames); transform not estimated")
        return W
    if update_type != "full":
        return _estimate_diag_or_offset(stats, update_type)
    G_inv = np.linalg.inv(stats.G)
    beta = stats.beta
    auxf = fmllr_auxf(stats, W)
    start = auxf
    for it in range(int(n_iters)):
        for i in range(D):
            p = np.append(np.linalg.inv(W[:, :-1])[:, i], 0.0)  # cofactor row i / det A
            Gp = G_inv[i] @ p
            a = float(p @ Gp)
            b = float(Gp @ stats.K[i])
            root = np.sqrt(b * b + 4.0 * a * beta)
            alphas = ((-b + root) / (2.0 * a), (-b - root) / (2.0 * a))
            # Q along the row, up to a constant: beta log|alpha a + b| - alpha^2 a / 2
            scores = [beta * np.log(abs(al * a + b)) - 0.5 * al * al * a if al * a + b != 0 else -np.inf
                      for al in alphas]
            alpha = alphas[int(np.argmax(scores))]
            W[i] = G_inv[i] @ (alpha * p + stats.K[i])
        new = fmllr_auxf(stats, W)
        logger.debug("fMLLR iteration %d: auxf/frame %.6f (+%.3g)", it + 1, new / beta, (new - auxf) / beta)
        done = tol is not None and new - auxf < tol * beta
        auxf = new
        if done:
            break
    logger.info("fMLLR: auxf improvement %.4f per frame over %.0f frames", (auxf - start) / beta, beta)
    return W
