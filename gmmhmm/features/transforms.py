"""Linear feature transforms: frame splicing, LDA and MLLT (semi-tied covariance).

Kaldi's tri2b front end (``splice-feats``, ``est-lda``, ``est-mllt``) as
plain functions over arrays, with accumulators separate from estimators:

* :func:`splice_frames` stacks each frame with its ``left`` and ``right``
  neighbours (edge frames repeated);
* LDA statistics are the package's pooled Gaussian statistics
  (:class:`~gmmhmm.mixture.stats.GaussianStats` of covariance type
  ``'tied'``: per-class count and sum, total second moment), so they add
  over shards like every other statistic; :func:`estimate_lda` solves the
  generalised eigenproblem of between- against within-class scatter;
* :class:`MlltStats` holds Gales' (1999) per-dimension matrices
  ``G_i = sum_m sum_t gamma_m(t) (x_t - mu_m)(x_t - mu_m)^T / sigma^2_{m,i}`` of a
  diagonal model; :func:`estimate_mllt` maximises
  ``beta log|det A| - 1/2 sum_i a_i G_i a_i^T`` row by row (Kaldi's
  ``MlltAccs::Update``); :class:`MlltAccumulator` gathers them over blocks of frames;
* :class:`FeatureTransform` (a matrix and its splicing context) maps the
  front end's features to a model's; it is stored in model files as arrays
  and JSON, never pickled.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import linalg

from .._validation import check_array, check_positive_int
from ..errors import DimensionMismatchError, InvalidInputError, InvalidParameterError
from ..mixture.stats import GaussianStats, packed_second_moments, positive_definite, unpack_upper, weighted_rows
from ..modelfile import register_model_class

logger = logging.getLogger(__name__)

__all__ = ["FeatureTransform", "MlltAccumulator", "MlltStats", "accumulate_lda_stats", "accumulate_mllt_stats", "estimate_lda",
           "estimate_mllt", "mllt_auxiliary", "splice_frames"]


def splice_frames(X: np.ndarray, left: int = 4, right: int = 4) -> np.ndarray:
    """Each frame stacked with its neighbours, as Kaldi's ``splice-feats``.

    Row ``t`` of the result is ``[x_{t-left}, ..., x_t, ..., x_{t+right}]``,
    the first and last frames repeated past the edges.

    Returns
    -------
    ndarray of shape (n_frames, n_features * (left + 1 + right))
    """
    X = check_array(X, name="features")
    left = check_positive_int(left, "left", minimum=0)
    right = check_positive_int(right, "right", minimum=0)
    return _splice(X, left, right)


def _splice(X: np.ndarray, left: int, right: int) -> np.ndarray:
    T = len(X)
    index = np.clip(np.arange(T)[:, None] + np.arange(-left, right + 1)[None, :], 0, T - 1)  # (T, context)
    return X[index].reshape(T, -1)


@register_model_class
class FeatureTransform:
    """``y_t = A [x_{t-left}; ...; x_{t+right}] (+ b)``: splicing followed by a linear or affine map.

    Parameters
    ----------
    matrix : ndarray of shape (n_output_features, n_spliced) or (n_output_features, n_spliced + 1)
        ``n_spliced = n_source_features * (left_context + 1 + right_context)``;
        one column more is an affine transform whose last column is the offset.
    left_context, right_context : int
        Frames spliced before and after each frame (0 and 0: no splicing).
    n_source_features : int
        Columns of the features the transform takes (a model's front-end features).
    """

    def __init__(self, matrix: np.ndarray, left_context: int = 0, right_context: int = 0,
                 n_source_features: int | None = None) -> None:
        self.left_context = check_positive_int(left_context, "left_context", minimum=0)
        self.right_context = check_positive_int(right_context, "right_context", minimum=0)
        self.matrix = check_array(matrix, name="transform matrix")
        width = self.left_context + 1 + self.right_context
        cols = self.matrix.shape[1]
        if n_source_features is None:  # the linear reading unless only the affine one divides
            n_source_features = cols // width if cols % width == 0 else (cols - 1) // width
        self.n_source_features = check_positive_int(n_source_features, "n_source_features")
        if cols not in (self.n_source_features * width, self.n_source_features * width + 1):
            raise InvalidParameterError(
                f"transform matrix has {cols} columns; {self.n_source_features} features spliced "
                f"{self.left_context}+1+{self.right_context} need {self.n_source_features * width} (linear) "
                f"or {self.n_source_features * width + 1} (affine)")

    def get_params(self, deep: bool = True) -> dict:
        return {"matrix": self.matrix, "left_context": self.left_context, "right_context": self.right_context,
                "n_source_features": self.n_source_features}

    @property
    def n_output_features(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_spliced(self) -> int:
        return self.n_source_features * (self.left_context + 1 + self.right_context)

    @property
    def is_affine(self) -> bool:
        return self.matrix.shape[1] == self.n_spliced + 1

    def apply(self, X: np.ndarray) -> np.ndarray:
        """Transformed features (n_frames, n_output_features) of front-end features (n_frames, n_source_features)."""
        X = check_array(X, name="features")
        if X.shape[1] != self.n_source_features:
            raise DimensionMismatchError(
                f"features have {X.shape[1]} columns, but the feature transform takes {self.n_source_features} "
                f"(spliced {self.left_context}+1+{self.right_context} to {self.n_spliced}, then "
                f"{self.n_output_features} outputs); extract them with the model's feature config")
        S = _splice(X, self.left_context, self.right_context)
        if self.is_affine:
            return S @ self.matrix[:, :-1].T + self.matrix[:, -1]
        return S @ self.matrix.T

    def then(self, square: np.ndarray) -> "FeatureTransform":
        """This transform followed by the square matrix ``square`` (e.g. an MLLT): ``square @ matrix``."""
        square = check_array(square, name="matrix")
        if square.shape != (self.n_output_features, self.n_output_features):
            raise InvalidParameterError(f"need a ({self.n_output_features}, {self.n_output_features}) matrix "
                                        f"to follow this transform, got {square.shape}")
        return FeatureTransform(square @ self.matrix, self.left_context, self.right_context, self.n_source_features)

    def __repr__(self) -> str:
        kind = "affine" if self.is_affine else "linear"
        return (f"FeatureTransform({self.n_source_features} features, splice -{self.left_context}/"
                f"+{self.right_context}, {kind} {self.n_spliced} -> {self.n_output_features})")


# ---------------------------------------------------------------------------
# LDA
# ---------------------------------------------------------------------------
def accumulate_lda_stats(X: np.ndarray, posteriors: np.ndarray) -> GaussianStats:
    """LDA statistics of frames ``X`` (N, D) with class posteriors (or one-hot labels) ``posteriors`` (N, C).

    Per class the count and sum, and the total second moment ``sum_t x_t x_t^T``
    (weighted by each frame's total posterior): pooled (``'tied'``)
    :class:`~gmmhmm.mixture.stats.GaussianStats`, additive over any split of the data.
    """
    return GaussianStats.from_posteriors(check_array(X, name="features"),
                                         check_array(posteriors, name="posteriors"), "tied")


def lda_scatter(stats: GaussianStats) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(between-class B, within-class W, global mean) covariances of pooled statistics, per frame."""
    if stats.covariance_type != "tied":
        raise InvalidInputError(f"LDA needs pooled ('tied') statistics, got {stats.covariance_type!r}")
    total = stats.n.sum()
    if not total > 0:
        raise InvalidInputError("LDA statistics hold no frames")
    mean = stats.s1.sum(axis=0) / total
    seen = stats.n > 0
    class_means = stats.s1[seen] / stats.n[seen, None]
    d = class_means - mean
    between = (stats.n[seen, None] * d).T @ d / total
    total_cov = stats.s2 / total - np.outer(mean, mean)
    within = total_cov - between
    return 0.5 * (between + between.T), 0.5 * (within + within.T), mean


def estimate_lda(stats: GaussianStats, dim: int, remove_offset: bool = False) -> np.ndarray:
    """LDA projection (Kaldi's ``est-lda``): the ``dim`` leading generalised eigenvectors of ``B v = l W v``.

    Rows are the eigenvectors of largest eigenvalue first, scaled so that the
    projected within-class covariance is the identity (``M W M^T = I``) and
    signed so that each row's largest-magnitude entry is positive.

    Parameters
    ----------
    stats : GaussianStats of type 'tied' (see :func:`accumulate_lda_stats`)
    dim : int
        Output dimension, at most the input's; more than ``n_classes - 1``
        keeps directions of zero between-class variance (logged).
    remove_offset : bool
        Append an offset column so the projected global mean is zero (affine result).

    Returns
    -------
    ndarray of shape (dim, D) or (dim, D + 1)

    Raises
    ------
    InvalidInputError
        No frames, or a singular within-class covariance (too few frames,
        constant or duplicated feature columns).
    """
    between, within, mean = lda_scatter(stats)
    D = within.shape[0]
    dim = check_positive_int(dim, "dim")
    if dim > D:
        raise InvalidParameterError(f"LDA dimension {dim} exceeds the {D} input features")
    n_classes = int(np.count_nonzero(stats.n > 0))
    if dim > n_classes - 1:
        logger.warning("LDA to %d dimensions from %d classes: %d direction(s) carry no between-class variance",
                       dim, n_classes, dim - max(n_classes - 1, 0))
    try:
        values, vectors = linalg.eigh(between, within)
    except linalg.LinAlgError as exc:
        raise InvalidInputError(f"LDA: the within-class covariance is singular ({exc}); too few frames, or "
                                "constant or duplicated feature columns") from None
    order = np.argsort(values)[::-1][:dim]
    M = vectors[:, order].T
    signs = np.sign(M[np.arange(dim), np.abs(M).argmax(axis=1)])
    M = M * signs[:, None]
    logger.info("LDA %d -> %d: leading eigenvalues %s; kept %.1f%% of the between-class variance",
                D, dim, np.array2string(values[order][:5], precision=3),
                100.0 * values[order].clip(0).sum() / max(values.clip(0).sum(), 1e-300))
    if remove_offset:
        M = np.hstack([M, -(M @ mean)[:, None]])
    return M


# ---------------------------------------------------------------------------
# MLLT / semi-tied covariance
# ---------------------------------------------------------------------------
class MlltStats:
    """Statistics of a maximum likelihood linear transform (Gales' semi-tied covariance).

    Attributes
    ----------
    G : ndarray of shape (D, D, D)
        ``G[i] = sum_m sum_t gamma_m(t) (x_t - mu_m)(x_t - mu_m)^T / sigma^2_{m,i}``.
    count : float
        ``beta = sum_t sum_m gamma_m(t)``, the frames behind ``G``.
    """

    def __init__(self, G: np.ndarray, count: float) -> None:
        self.G = np.asarray(G, dtype=np.float64)
        self.count = float(count)

    @classmethod
    def zeros(cls, n_features: int) -> "MlltStats":
        return cls(np.zeros((n_features, n_features, n_features)), 0.0)

    @property
    def n_features(self) -> int:
        return self.G.shape[0]

    def __add__(self, other: "MlltStats") -> "MlltStats":
        if not isinstance(other, MlltStats):
            return NotImplemented
        if other.G.shape != self.G.shape:
            raise InvalidInputError(f"cannot add MLLT statistics of {self.n_features} and {other.n_features} features")
        return MlltStats(self.G + other.G, self.count + other.count)

    def __radd__(self, other):
        if isinstance(other, int) and other == 0:  # sum(list_of_stats)
            return self
        return NotImplemented


class MlltAccumulator:
    """Gathers :class:`MlltStats` of many blocks of frames under one diagonal model.

    ``G_i = sum_t w_ti x_t x_t^T + sum_m (n_m mu_m mu_m^T - s_m mu_m^T - mu_m s_m^T) / sigma^2_{m,i}``
    with ``w_ti = sum_m gamma_m(t) / sigma^2_{m,i}``: each block adds its per-frame
    term (one packed GEMM) and its per-Gaussian counts ``n_m`` and sums ``s_m``;
    the mean terms, linear in those, are one GEMM over the Gaussians in
    :meth:`stats`, once for all blocks.

    Parameters
    ----------
    means, variances : (K, D) the Gaussians' parameters
    """

    def __init__(self, means: np.ndarray, variances: np.ndarray) -> None:
        self.means = check_array(means, name="means")
        variances = check_array(variances, name="variances", n_features=self.means.shape[1])
        if variances.shape != self.means.shape:
            raise InvalidInputError(f"means {self.means.shape} and variances {variances.shape} differ in shape")
        if np.any(variances <= 0):
            raise InvalidInputError("MLLT statistics need positive variances")
        K, D = self.means.shape
        self.inv_var = 1.0 / variances
        self.G = np.zeros((D, D, D))
        self.n = np.zeros(K)
        self.s1 = np.zeros((K, D))

    def add(self, X: np.ndarray, posteriors: np.ndarray, components: np.ndarray | None = None) -> "MlltAccumulator":
        """Frames ``X`` (N, D) in the model's space with per-Gaussian posteriors ``gamma_m(t)`` (N, K), or
        (N, len(components)) of only the Gaussians ``components`` (distinct indices; the rest have none)."""
        K, D = self.means.shape
        X = check_array(X, name="features", n_features=D)
        resp = check_array(posteriors, name="posteriors")
        comps = np.arange(K) if components is None else np.asarray(components, dtype=np.intp)
        if resp.shape != (len(X), len(comps)) or len(np.unique(comps)) != len(comps) or not np.all(comps < K):
            raise InvalidInputError(f"posteriors {resp.shape} do not fit {len(X)} frames of "
                                    f"{len(comps) if components is not None else K} of {K} Gaussians")
        X, resp = weighted_rows(X, resp)  # a frame of zero posterior adds nothing, even an overflowing one
        self.G += unpack_upper(packed_second_moments(X, resp @ self.inv_var[comps]), D)  # sum_t w_ti x x^T
        self.n[comps] += resp.sum(axis=0)
        self.s1[comps] += resp.T @ X
        return self

    def stats(self) -> "MlltStats":
        K, D = self.means.shape
        # Q[i] = sum_m (n_m mu_m / 2 - s_m) mu_m^T / sigma^2_{m,i}; Q[i] + Q[i]^T is the mean terms
        # (one GEMM: an unoptimised three-operand einsum per block took half of tri2 training)
        outer = ((0.5 * self.n[:, None] * self.means - self.s1)[:, :, None] * self.means[:, None, :]).reshape(K, D * D)
        Q = (self.inv_var.T @ outer).reshape(D, D, D)
        G = self.G + Q + np.swapaxes(Q, 1, 2)
        return MlltStats(0.5 * (G + np.swapaxes(G, 1, 2)), float(self.n.sum()))


def accumulate_mllt_stats(X: np.ndarray, posteriors: np.ndarray, means: np.ndarray,
                          variances: np.ndarray) -> MlltStats:
    """MLLT statistics of frames ``X`` (N, D) under K diagonal Gaussians (one :class:`MlltAccumulator` block).

    Parameters
    ----------
    X : (N, D) features in the model's space
    posteriors : (N, K) per-Gaussian posteriors ``gamma_m(t)``
    means, variances : (K, D) the Gaussians' parameters
    """
    return MlltAccumulator(means, variances).add(X, posteriors).stats()


def mllt_auxiliary(stats: MlltStats, A: np.ndarray) -> float:
    """Gales' auxiliary function ``beta log|det A| - 1/2 sum_i a_i G_i a_i^T`` (up to a constant)."""
    A = np.asarray(A, dtype=np.float64)
    return float(stats.count * np.linalg.slogdet(A)[1] - 0.5 * np.einsum("id,ide,ie->", A, stats.G, A))


def estimate_mllt(stats: MlltStats, n_iters: int = 10, initial: np.ndarray | None = None) -> np.ndarray:
    """The square MLLT ``A`` (new features ``A x``) maximising :func:`mllt_auxiliary`.

    Gales' row-by-row update (Kaldi ``MlltAccs::Update``): row ``i`` becomes
    ``c_i G_i^{-1} sqrt(beta / (c_i G_i^{-1} c_i^T))`` with ``c_i`` the ``i``-th
    cofactor row of ``A``; each row update maximises the auxiliary function
    over that row, so it never decreases.

    Parameters
    ----------
    stats : MlltStats
    n_iters : int
        Sweeps over the rows.
    initial : (D, D), optional
        Starting transform (default identity).
    """
    n_iters = check_positive_int(n_iters, "n_iters", minimum=0)
    D = stats.n_features
    if not stats.count > 0:
        raise InvalidInputError("MLLT statistics hold no frames")
    A = np.eye(D) if initial is None else np.array(initial, dtype=np.float64)
    if A.shape != (D, D):
        raise InvalidParameterError(f"initial MLLT must be ({D}, {D}), got {A.shape}")
    if not (np.all(np.isfinite(A)) and np.linalg.matrix_rank(A) == D):
        raise InvalidParameterError("the initial MLLT transform is singular or not finite")
    if not positive_definite(stats.G):
        raise InvalidInputError("MLLT: a statistics matrix G_i is singular (too few frames, or a constant "
                                "dimension?)")
    G_inv = np.linalg.inv(stats.G)
    before = mllt_auxiliary(stats, A)
    for _ in range(n_iters):
        for i in range(D):
            c = np.linalg.inv(A)[:, i]  # the cofactor row, up to the factor det(A) that the scaling cancels
            gc = G_inv[i] @ c
            A[i] = gc * np.sqrt(stats.count / (c @ gc))
    after = mllt_auxiliary(stats, A)
    logger.info("MLLT: auxiliary function per frame %.4f -> %.4f over %.0f frames",
                before / stats.count, after / stats.count, stats.count)
    return A
