"""Additive sufficient statistics of K Gaussians (Kaldi's accumulator).

Statistics from any split of the data add up to the statistics of the whole,
so the E-step can run over shards, processes or a cluster and the M-step
(:func:`gmmhmm.mixture.estimate.update_gaussians`) sees one sum.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .._validation import check_in
from ..errors import InvalidInputError
from . import _kernels

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")

# rows per block when building packed outer products (keeps temporaries small)
_BLOCK_ELEMENTS = 1 << 21


def unpack_upper(packed: np.ndarray, n_features: int) -> np.ndarray:
    """(..., D(D+1)/2) row-major upper triangles -> symmetric (..., D, D)."""
    iu, ju = np.triu_indices(n_features)
    out = np.empty(packed.shape[:-1] + (n_features, n_features), dtype=packed.dtype)
    out[..., iu, ju] = packed
    out[..., ju, iu] = packed
    return out


def packed_second_moments(X: np.ndarray, resp: np.ndarray) -> np.ndarray:
    """``resp.T @ triu(x x^T)`` over rows, in blocks: (K, D(D+1)/2) in float64."""
    n, d = X.shape
    p = d * (d + 1) // 2
    step = max(64, _BLOCK_ELEMENTS // p)
    acc = np.zeros((resp.shape[1], p))
    buf = np.empty((min(step, n), p), dtype=X.dtype)
    for start in range(0, n, step):
        xb = X[start:start + step]
        q = _kernels.packed_outer(xb, buf[: len(xb)])
        acc += (q.T @ resp[start:start + step]).T  # this orientation is far faster in OpenBLAS
    return acc


@dataclass
class GaussianStats:
    """Zeroth, first and second order statistics of K weighted Gaussians.

    Attributes
    ----------
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    n : ndarray of shape (K,)
        ``sum_t w_tk``.
    s1 : ndarray of shape (K, D)
        ``sum_t w_tk x_t``.
    s2 : ndarray
        ``sum_t w_tk x_t**2`` (K, D) for diag and spherical;
        ``sum_t w_tk x_t x_t^T`` (K, D, D) for full;
        ``sum_t (sum_k w_tk) x_t x_t^T`` (D, D) for tied.
    center : ndarray of shape (D,) or None
        The point the moments are taken about: ``x_t`` above stands for
        ``x_t - center`` (None: the origin). Moments of data far from the
        origin keep their precision about a point near them (see
        :meth:`recentered`); :func:`gmmhmm.mixture.estimate.update_gaussians`
        takes either.
    """

    covariance_type: str
    n: np.ndarray
    s1: np.ndarray
    s2: np.ndarray
    center: np.ndarray | None = None

    @property
    def n_components(self) -> int:
        return self.s1.shape[0]

    @property
    def n_features(self) -> int:
        return self.s1.shape[1]

    @classmethod
    def zeros(cls, n_components: int, n_features: int, covariance_type: str, dtype=np.float64) -> "GaussianStats":
        """Empty statistics, the identity of ``+``."""
        check_in(covariance_type, COVARIANCE_TYPES, "covariance_type")
        k, d = n_components, n_features
        shape2 = {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k, d)}[covariance_type]
        return cls(covariance_type, np.zeros(k, dtype), np.zeros((k, d), dtype), np.zeros(shape2, dtype))

    @classmethod
    def from_posteriors(cls, X: np.ndarray, resp: np.ndarray, covariance_type: str,
                        center: np.ndarray | None = None) -> "GaussianStats":
        """Statistics of rows ``X`` (N, D) with non-negative frame weights ``resp`` (N, K),
        taken about ``center`` (None: the origin).

        Accumulated in float64 whatever the input dtype, since raw second
        moments lose precision quickly in float32.
        """
        check_in(covariance_type, COVARIANCE_TYPES, "covariance_type")
        X = np.asarray(X)
        resp = np.asarray(resp)
        if X.ndim != 2 or resp.ndim != 2 or X.shape[0] != resp.shape[0]:
            raise InvalidInputError(
                f"X (N, D) and resp (N, K) must have the same number of rows, got {X.shape} and {resp.shape}"
            )
        X = np.ascontiguousarray(X, dtype=np.float64)
        if center is not None:
            center = np.asarray(center, dtype=np.float64)
            X = X - center
        resp = np.ascontiguousarray(resp, dtype=np.float64)
        X, resp = weighted_rows(X, resp)
        n = resp.sum(axis=0)
        s1 = (X.T @ resp).T
        if covariance_type == "full":
            s2 = unpack_upper(packed_second_moments(X, resp), X.shape[1])
        elif covariance_type == "tied":
            s2 = (X * resp.sum(axis=1)[:, None]).T @ X
        else:
            s2 = ((X * X).T @ resp).T
        return cls(covariance_type, n, s1, s2, center)

    @classmethod
    def from_design(cls, design: np.ndarray, resp: np.ndarray, center: np.ndarray,
                    covariance_type: str) -> "GaussianStats":
        """Statistics from design rows ``[quadratic terms of x - c, x - c, 1]`` (N, F).

        The rows the densities were computed from (see
        :class:`gmmhmm.mixture.gaussian.DensityPlan`) give all three moments
        in one GEMM against ``resp`` (N, K), with no second pass over ``X``.
        Not for ``'tied'``, whose design rows are whitened. The moments are
        raw (about the origin), as the HMMs' statistics consumers read them.
        """
        if covariance_type == "tied":
            raise InvalidInputError("tied design rows are whitened; use from_posteriors")
        design, resp = weighted_rows(design, resp)
        # (F, N) @ (N, K): the orientation OpenBLAS handles fastest
        acc = (design.T @ resp).T
        return cls.from_centered(covariance_type, acc, np.asarray(center, dtype=np.float64)).recentered(None)

    @classmethod
    def from_centered(cls, covariance_type: str, acc: np.ndarray, center: np.ndarray,
                      tied_s2: np.ndarray | None = None) -> "GaussianStats":
        """Moments about ``c`` from sums ``acc`` (K, F) of centred rows ``x - c``.

        ``acc`` columns are ``[quadratic terms, x - c, 1]`` (for tied only
        ``[x - c, 1]``, with the pooled centred second moment in ``tied_s2``).
        Centring on ``c`` keeps the sums free of cancellation when the data
        sit far from the origin.
        """
        d = center.shape[0]
        n = np.ascontiguousarray(acc[:, -1], dtype=np.float64)
        s1 = np.ascontiguousarray(acc[:, -d - 1:-1])
        if covariance_type == "tied":
            s2 = tied_s2
        elif covariance_type == "full":
            s2 = unpack_upper(acc[:, :-d - 1], d)
        else:
            s2 = acc[:, :d]
        return cls(covariance_type, n, s1, s2, center)

    def recentered(self, center: np.ndarray | None) -> "GaussianStats":
        """The same statistics taken about ``center`` (None: the origin): with
        ``delta = old centre - center``, ``x - center = (x - old centre) + delta``."""
        d = self.n_features
        old = np.zeros(d) if self.center is None else self.center
        delta = old - (np.zeros(d) if center is None else center)
        if not delta.any():
            return replace(self, center=center)
        n, s1 = self.n, self.s1
        if self.covariance_type == "tied":
            t = s1.sum(axis=0)
            s2 = self.s2 + np.outer(t, delta) + np.outer(delta, t) + n.sum() * np.outer(delta, delta)
        elif self.covariance_type == "full":
            cross = s1[:, :, None] * delta[None, None, :]
            s2 = self.s2 + cross + np.swapaxes(cross, 1, 2) + n[:, None, None] * np.outer(delta, delta)
        else:
            s2 = self.s2 + 2.0 * delta * s1 + n[:, None] * delta**2
        return GaussianStats(self.covariance_type, n, s1 + n[:, None] * delta, s2, center)

    def _check_compatible(self, other: "GaussianStats") -> None:
        if not isinstance(other, GaussianStats):
            raise TypeError(f"cannot add GaussianStats and {type(other).__name__}")
        if other.covariance_type != self.covariance_type or other.s1.shape != self.s1.shape:
            raise InvalidInputError(
                f"cannot add {self.covariance_type} stats of shape {self.s1.shape} to "
                f"{other.covariance_type} stats of shape {other.s1.shape}"
            )

    def __add__(self, other: "GaussianStats") -> "GaussianStats":
        self._check_compatible(other)
        other = other.recentered(self.center)
        return GaussianStats(self.covariance_type, self.n + other.n, self.s1 + other.s1, self.s2 + other.s2,
                             self.center)

    def __iadd__(self, other: "GaussianStats") -> "GaussianStats":
        self._check_compatible(other)
        other = other.recentered(self.center)
        self.n += other.n
        self.s1 += other.s1
        self.s2 += other.s2
        return self

    def add_at(self, components: np.ndarray, other: "GaussianStats") -> "GaussianStats":
        """Add ``other``, the statistics of Gaussians ``components`` (distinct indices into these), in place:
        statistics gathered for a subset of the Gaussians (an utterance's) into those of all."""
        components = np.asarray(components, dtype=np.intp)
        if (other.covariance_type != self.covariance_type or other.s1.shape != (len(components), self.n_features)
                or len(np.unique(components)) != len(components)):
            raise InvalidInputError(f"cannot add {other.covariance_type} stats of shape {other.s1.shape} at "
                                    f"{len(components)} distinct component(s) of {self.covariance_type} stats "
                                    f"of shape {self.s1.shape}")
        other = other.recentered(self.center)
        self.n[components] += other.n
        self.s1[components] += other.s1
        if self.covariance_type == "tied":
            self.s2 += other.s2
        else:
            self.s2[components] += other.s2
        return self

    def __radd__(self, other):
        # lets sum(list_of_stats) work (sum starts from 0)
        if isinstance(other, int) and other == 0:
            return self
        return NotImplemented


def weighted_rows(rows: np.ndarray, resp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows (and their weights) with some weight: a frame of zero posterior adds nothing, even
    one whose terms overflowed (``inf * 0`` would make every Gaussian's sums NaN), e.g. the frames
    of an utterance a batch skipped for having no path."""
    live = resp.any(axis=1)
    return (rows, resp) if live.all() else (rows[live], resp[live])


def positive_definite(G: np.ndarray, rcond: float = 1e-12) -> bool:
    """Is every matrix of ``G`` (..., n, n) numerically positive definite? Rounding leaves a
    rank-deficient statistics matrix (fMLLR's or MLLT's ``G_i`` from too few distinct frames, or a
    constant dimension) with tiny eigenvalues of either sign, so ``inv`` succeeds on it and a
    row-by-row update takes square roots of negative numbers or runs away."""
    if not np.all(np.isfinite(G)):
        return False
    lam = np.linalg.eigvalsh(G)
    return bool(np.all(lam[..., 0] > rcond * lam[..., -1]))
