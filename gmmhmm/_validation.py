"""Input checks shared by every public entry point.

They turn bad input into a specific :mod:`gmmhmm.errors` exception at the
boundary, so nothing downstream ever sees NaN, the wrong shape or a bad
``lengths`` array.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .errors import (
    DimensionMismatchError,
    InvalidInputError,
    InvalidLengthsError,
    InvalidParameterError,
    NonFiniteInputError,
    NonNumericInputError,
    NotFittedError,
)


def check_array(
    X: Any,
    *,
    name: str = "X",
    dtype: Any = np.float64,
    min_samples: int = 1,
    n_features: int | None = None,
    model: str = "the model",
) -> np.ndarray:
    """Return ``X`` as a C-contiguous float array of shape (n_samples, n_features).

    A 1-D array is refused, as scikit-learn does; ``model`` names the estimator
    in a feature-count mismatch, in scikit-learn's wording.
    """
    if _is_sparse(X):
        raise InvalidInputError(
            f"{name} is a sparse matrix; sparse input is not supported, pass X.toarray()")
    try:
        arr = np.asarray(X)
        if arr.dtype == object:  # numbers boxed as Python objects, as scikit-learn accepts
            arr = arr.astype(np.float64)
    except Exception as exc:  # ragged lists, strings and the like
        raise NonNumericInputError(f"{name} cannot be converted to an array of numbers: {exc}") from exc
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise NonNumericInputError(f"{name} must be numeric, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise InvalidInputError(
            f"Complex data not supported: {name} must be real, got complex dtype {arr.dtype}")
    if arr.ndim != 2:
        raise InvalidInputError(
            f"{name} must be 2-D (n_samples, n_features), got shape {arr.shape}"
            + ("; Reshape your data with X.reshape(-1, 1) if it has a single feature"
               if arr.ndim == 1 else "")
        )
    if arr.shape[1] == 0:
        raise InvalidInputError(
            f"{name} has no features: 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required.")
    if arr.shape[0] < min_samples:
        raise InvalidInputError(
            f"{name} has {arr.shape[0]} sample(s); at least {min_samples} required"
        )
    arr = np.ascontiguousarray(arr, dtype=dtype)
    # The sum is finite whenever every element is (barring overflow, which falls
    # through to the element check): one pass with no temporary array.
    with np.errstate(over="ignore", invalid="ignore"):
        total = arr.sum()
    if not np.isfinite(total) and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise NonFiniteInputError(
            f"{name} contains NaN or infinity (first at row {bad[0]}, column {bad[1]})"
        )
    if n_features is not None and arr.shape[1] != n_features:
        raise DimensionMismatchError(
            f"{name} has {arr.shape[1]} features, but {model} is expecting {n_features} features as input"
        )
    return arr


def check_log_likelihood(log_likelihood: Any, n_pdf: int, exact: bool = True) -> np.ndarray:
    """A (T, n_pdf) emission log-likelihood matrix (``exact=False``: at least ``n_pdf`` columns)
    as contiguous float64; NaN or +inf (which would make the searches' ``inf - inf``) refused."""
    ll = np.ascontiguousarray(log_likelihood, dtype=np.float64)
    if ll.ndim != 2 or (ll.shape[1] != n_pdf if exact else ll.shape[1] < n_pdf):
        raise InvalidInputError(f"log_likelihood must be (n_frames, {n_pdf}), got {ll.shape}")
    if ll.size and not ll.max() < np.inf:  # NaN propagates through max; one pass, no temporary
        raise NonFiniteInputError("log_likelihood contains NaN or +inf")
    return ll


def _is_sparse(X: Any) -> bool:
    """scipy.sparse matrices and arrays, recognised without importing scipy.sparse."""
    return hasattr(X, "tocsr") and hasattr(X, "nnz")


def check_lengths(lengths: Any, n_samples: int) -> np.ndarray:
    """Return ``lengths`` as int64 sequence lengths that sum to ``n_samples``.

    ``None`` means one sequence of all samples.
    """
    if lengths is None:
        return np.array([n_samples], dtype=np.int64)
    arr = np.asarray(lengths)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1 or arr.size == 0:
        raise InvalidLengthsError(f"lengths must be a non-empty 1-D array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.floating) or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise InvalidLengthsError(f"lengths must be integers, got {arr.dtype}")
    arr = arr.astype(np.int64)
    if np.any(arr <= 0):
        i = int(np.flatnonzero(arr <= 0)[0])
        raise InvalidLengthsError(f"lengths must be positive; sequence {i} has length {arr[i]}")
    if np.any(arr > n_samples):  # before summing: int64 sums of huge lengths wrap round
        i = int(np.flatnonzero(arr > n_samples)[0])
        raise InvalidLengthsError(f"sequence {i} has {arr[i]} frames but X has {n_samples} samples")
    if int(arr.sum()) != n_samples:
        raise InvalidLengthsError(
            f"lengths sum to {int(arr.sum())} but X has {n_samples} samples"
        )
    return arr


def check_sample_weight(sample_weight: Any, n_samples: int, dtype: Any = np.float64) -> np.ndarray:
    """Return non-negative finite per-sample weights (ones when ``None``)."""
    if sample_weight is None:
        return np.ones(n_samples, dtype=dtype)
    w = np.asarray(sample_weight, dtype=dtype)
    if w.ndim != 1 or w.shape[0] != n_samples:
        raise InvalidInputError(
            f"sample_weight must have shape ({n_samples},), got {w.shape}"
        )
    if not np.isfinite(w).all():
        raise NonFiniteInputError("sample_weight contains NaN or infinity")
    if np.any(w < 0):
        raise InvalidInputError("sample_weight must be non-negative")
    if w.sum() <= 0:
        raise InvalidInputError("sample_weight sums to zero")
    return w


def check_in(value: Any, allowed: tuple, name: str) -> Any:
    """Raise :class:`InvalidParameterError` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise InvalidParameterError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """Raise :class:`InvalidParameterError` unless ``value`` is an integer >= minimum."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InvalidParameterError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_is_fitted(model: Any, attribute: str) -> None:
    """Raise :class:`NotFittedError` if ``model`` lacks the fitted ``attribute``."""
    if not hasattr(model, attribute):
        raise NotFittedError(
            f"This {type(model).__name__} instance is not fitted yet. Call 'fit' with appropriate "
            "arguments before using this estimator."
        )


def check_random_state(seed: Any) -> np.random.RandomState:
    """``None`` / int / RandomState / Generator -> RandomState (scikit-learn's convention:
    ``None`` is numpy's global RandomState)."""
    if seed is None:
        return np.random.mtrand._rand
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return np.random.RandomState(seed)
    if isinstance(seed, np.random.RandomState):
        return seed
    if isinstance(seed, np.random.Generator):
        return np.random.RandomState(seed.integers(2**32 - 1))
    raise InvalidParameterError(
        f"random_state must be None, an int, a RandomState or a Generator, got {seed!r}")


def resolve_n_jobs(n_jobs: Any, n_tasks: int, name: str = "n_jobs") -> int:
    """Worker processes for ``n_tasks`` tasks: a positive int, or -1 for every CPU,
    capped at the number of tasks (at least 1)."""
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or not (n_jobs >= 1 or n_jobs == -1):
        raise InvalidParameterError(f"{name} must be a positive integer or -1, got {n_jobs!r}")
    n = (os.cpu_count() or 1) if n_jobs == -1 else int(n_jobs)
    return max(1, min(n, n_tasks))


def check_fitted_array(value: Any, name: str, shape: tuple[int, ...] | None = None, *,
                       positive: bool = False, non_negative: bool = False,
                       probabilities: bool = False) -> np.ndarray:
    """Check a fitted parameter (say one read from a model file) and return it unchanged.

    It must be a real (integer or float, not bool) array of ``shape``, finite;
    ``positive`` / ``non_negative`` bound its values; ``probabilities`` asks for
    values in [0, 1] summing to 1 along the last axis.
    """
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise InvalidParameterError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if shape is not None and arr.shape != tuple(shape):
        raise InvalidParameterError(f"{name} must have shape {tuple(shape)}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise InvalidParameterError(f"{name} contains NaN or infinity")
    if positive and np.any(arr <= 0):
        raise InvalidParameterError(f"{name} must be positive")
    if (non_negative or probabilities) and np.any(arr < 0):
        raise InvalidParameterError(f"{name} must be non-negative")
    if probabilities and (np.any(arr > 1) or not np.allclose(arr.sum(axis=-1), 1.0, rtol=0, atol=1e-6)):
        raise InvalidParameterError(f"{name} must be probabilities in [0, 1] summing to 1")
    return arr


_BOUNDS = {"finite": (None, False, "finite"), "nonneg": (0.0, False, "finite and >= 0"),
           "positive": (0.0, True, "finite and > 0"), "not_nan": (None, False, "not NaN")}


def check_number(value: Any, name: str, bound: str = "finite", scalar: bool = True) -> Any:
    """Raise :class:`InvalidParameterError` unless ``value`` is a real number (or, unless
    ``scalar``, an array of them) within ``bound``: ``"finite"``, ``"nonneg"``, ``"positive"``
    or ``"not_nan"`` (infinities allowed)."""
    low, strict, what = _BOUNDS[bound]
    try:
        arr = np.asarray(value)
    except Exception:  # ragged sequences and the like
        arr = np.asarray(None)
    ok = (not isinstance(value, bool) and arr.dtype.kind in "fiu" and (arr.ndim == 0 or not scalar)
          and arr.size > 0 and bool(np.all(~np.isnan(arr) if bound == "not_nan" else np.isfinite(arr))))
    if ok and low is not None:
        ok = bool(np.all(arr > low)) if strict else bool(np.all(arr >= low))
    if not ok:
        kind = "a number" if scalar else "a number or an array of numbers"
        raise InvalidParameterError(f"{name} must be {kind}, {what}; got {value!r:.60}")
    return value


def check_numbers(owner: Any, scalars: dict[str, str] = {}, arrays: dict[str, str] = {}) -> None:  # noqa: B006
    """:func:`check_number` of each named attribute ``owner`` has: ``scalars`` / ``arrays``
    map attribute names to their bound (array entries may be numbers or arrays, as priors,
    or None for the class's default)."""
    for names, scalar in ((scalars, True), (arrays, False)):
        for name, bound in names.items():
            if hasattr(owner, name) and (scalar or getattr(owner, name) is not None):
                check_number(getattr(owner, name), name, bound, scalar)
