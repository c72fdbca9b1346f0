"""Mixture splitting: HTK's HHEd ``MU`` command, the one mix-up of every model.

``GaussianMixture.split``, the word models of ``HMMClassifier`` and the phone
models of ``EmbeddedTrainer`` all grow their mixtures with :func:`mix_up`.
"""

from __future__ import annotations

import numpy as np

from collections.abc import Sequence
from typing import Any

from .. import _validation as V
from ..errors import InvalidParameterError
from .estimate import GaussianParams

__all__ = ["mix_up", "mix_schedule", "component_variances"]

# HHEd's SplitMix perturbation depth, in standard deviations.
PERTURB = 0.2


def component_variances(params: GaussianParams, n_mix: int) -> np.ndarray:
    """Per-dimension variance of every component, (K, D), from any covariance layout."""
    K, D = params.means.shape
    c = np.asarray(params.covars, dtype=np.float64)
    if params.covariance_type == "diag":
        return c
    if params.covariance_type == "spherical":
        return np.repeat(c[:, None], D, axis=1)
    diag = np.diagonal(c, axis1=-2, axis2=-1)
    if params.covariance_type == "full":
        return diag
    return np.repeat(diag.reshape(-1, D), K // len(diag.reshape(-1, D)), axis=0)  # tied: one per group


def _log_dets(params: GaussianParams, n_mix: int) -> np.ndarray:
    """log |Sigma_k| per component (for HTK's gConst)."""
    K, D = params.means.shape
    c = np.asarray(params.covars, dtype=np.float64)
    if params.covariance_type in ("diag", "spherical"):
        return np.log(component_variances(params, n_mix)).sum(axis=1)
    logdet = np.linalg.slogdet(c.reshape(-1, D, D))[1]
    return logdet if params.covariance_type == "full" else np.repeat(logdet, K // len(logdet))


def mix_up(params: GaussianParams, n_mix: int, perturb: float = PERTURB) -> GaussianParams:
    """Grow every mixture of ``params`` to ``n_mix`` components by HHEd's MU rule.

    HTK 3.4 ``HHEd.c``: ``UpMix`` repeatedly calls ``HeaviestMix``, which
    scores each component as *weight - number of times it has been split*
    (the count is kept in the MixPDF ``hook``), and docks 5000 from any
    component whose gConst ``log((2 pi)^D |Sigma|)`` lies more than 4
    standard deviations below the mean gConst of all components (a
    collapsed, very narrow Gaussian); the best score wins, the first on a
    tie. ``SplitMix`` halves its weight, gives both halves the split count
    plus one, copies its covariance and moves the two means
    ``+-perturb`` standard deviations (0.2 in HTK) along every dimension.
    The ``+`` half stays in place, the ``-`` half is appended. So
    ``[0.8, 0.2] -> 4`` gives ``[0.4, 0.1, 0.4, 0.1]``, not the heaviest-
    weight rule's ``[0.2, 0.2, 0.4, 0.2]``.

    Parameters
    ----------
    params : GaussianParams
        With ``weights`` (n_groups, M); covariances in the layout of
        :class:`~gmmhmm.mixture.estimate.GaussianParams` (tied: one matrix
        per group, or (D, D) for one group, kept as is).
    n_mix : int
        Components per mixture afterwards (>= M).

    Returns
    -------
    GaussianParams
        Weights (n_groups, n_mix), means and covariances in the same layout.
    """
    if params.weights is None:
        raise InvalidParameterError("mixture splitting needs mixture weights")
    G, M = params.weights.shape
    if n_mix < M:
        raise InvalidParameterError(f"cannot split {M} mixture components down to {n_mix}")
    K, D = params.means.shape
    std = np.sqrt(component_variances(params, M)).reshape(G, M, D)
    gconst = D * np.log(2 * np.pi) + _log_dets(params, M)
    narrow = (gconst < gconst.mean() - 4.0 * gconst.std()).reshape(G, M)
    weights = np.empty((G, n_mix))
    means = np.empty((G, n_mix, D))
    source = np.empty((G, n_mix), dtype=np.int64)
    old_means = params.means.reshape(G, M, D)
    for g in range(G):
        w = list(params.weights[g].astype(np.float64))
        mu = list(old_means[g].astype(np.float64))
        src = list(range(M))
        splits = [5000 if narrow[g, k] else 0 for k in range(M)]
        while len(w) < n_mix:
            k = int(np.argmax(np.subtract(w, splits)))
            offset = perturb * std[g, src[k]]
            centre = mu[k]
            w[k] /= 2
            splits[k] += 1
            mu[k] = centre + offset
            w.append(w[k])
            splits.append(splits[k])
            mu.append(centre - offset)
            src.append(src[k])
        weights[g], means[g], source[g] = w, mu, src
    flat_source = (source + M * np.arange(G)[:, None]).ravel()
    covars = np.asarray(params.covars)
    if params.covariance_type != "tied":
        covars = covars[flat_source]
    return GaussianParams(params.covariance_type, means.reshape(G * n_mix, D), covars.copy(), weights)


def _int_or_list(value: Any, name: str) -> list:
    """An int, or a list / tuple / array of them, as a list (a string or float is refused)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return [value]
    if isinstance(value, (list, tuple, np.ndarray)):
        return list(value)
    raise InvalidParameterError(f"{name} must be an int or a list of ints, got {value!r}")


def mix_schedule(mixtures: int | Sequence[int], n_iter: int | Sequence[int],
                 name: str = "mix_schedule") -> tuple[list[int], list[int]]:
    """(components per stage, iterations per stage) of a mix-up schedule, checked before any work.

    ``mixtures`` must be non-decreasing (:func:`mix_up` only grows mixtures); an int ``n_iter``
    applies to every stage, a list must have one entry per stage (a shorter one would silently
    drop the last stages).
    """
    mixes = _int_or_list(mixtures, name)
    if not mixes:
        raise InvalidParameterError(f"{name} must name at least one stage")
    mixes = [V.check_positive_int(m, f"{name} entries") for m in mixes]
    if any(b < a for a, b in zip(mixes, mixes[1:])):
        raise InvalidParameterError(f"{name} must be non-decreasing, got {mixes}")
    iters = _int_or_list(n_iter, "n_iter")
    if len(iters) == 1 and not isinstance(n_iter, (list, tuple, np.ndarray)):
        iters = iters * len(mixes)  # one count for every stage
    if len(iters) != len(mixes):
        raise InvalidParameterError(f"n_iter has {len(iters)} entries but {name} has {len(mixes)} stages")
    return mixes, [V.check_positive_int(i, "n_iter entries", minimum=0) for i in iters]
