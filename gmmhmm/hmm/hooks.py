"""hmmlearn's subclass interface on :class:`gmmhmm.hmm.base.BaseHMM`.

A class written for ``hmmlearn.base.BaseHMM`` overrides some of

* ``_compute_log_likelihood(X) -> (n_samples, n_components)`` or ``_compute_likelihood(X)``
* ``_initialize_sufficient_statistics() -> dict``
* ``_accumulate_sufficient_statistics(stats, X, lattice, posteriors, fwdlattice, bwdlattice)``
* ``_do_mstep(stats)``
* ``_generate_sample_from_state(state, random_state)``

(hmmlearn 0.3.3's names and signatures). When a model overrides one of the
first four items (``ESTEP_HOOKS``), :meth:`BaseHMM.fit` runs hmmlearn's E-step here, one sequence at
a time, with hmmlearn's lattices: log-space for ``implementation='log'``, the
frame likelihoods (scaled per frame, see :func:`_scaled_lattices`) and
hmmlearn's scaled forward/backward lattices for ``'scaling'``. gmmhmm's own
classes override none of them and keep their batched compiled path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConvergenceError, InvalidParameterError
from . import kernels

#: Hooks whose override switches ``fit`` to the per-sequence hmmlearn E-step.
ESTEP_HOOKS = ("_compute_log_likelihood", "_compute_likelihood", "_initialize_sufficient_statistics",
               "_accumulate_sufficient_statistics", "_do_mstep")


def overrides(model: Any, name: str) -> bool:
    """Whether ``type(model)`` defines ``name`` below gmmhmm's BaseHMM."""
    from .base import BaseHMM

    return getattr(type(model), name, None) is not getattr(BaseHMM, name)


def uses_hooks(model: Any) -> bool:
    return any(overrides(model, name) for name in ESTEP_HOOKS)


def own_likelihood(model: Any) -> bool:
    """Whether the model scores frames itself (hmmlearn's ``_compute_log_likelihood`` or
    ``_compute_likelihood``) rather than through its gmmhmm emission."""
    return overrides(model, "_compute_log_likelihood") or overrides(model, "_compute_likelihood")


class HookEmission:
    """Emission adapter over a model's own ``_compute_log_likelihood``."""

    def __init__(self, model: Any):
        self.model = model
        self.n_columns = model.n_components

    def log_likelihood(self, X: np.ndarray, need_cache: bool = True):
        flp = np.asarray(self.model._compute_log_likelihood(X), dtype=np.float64)
        want = (X.shape[0], self.model.n_components)
        if flp.shape != want:
            raise InvalidParameterError(
                f"{type(self.model).__name__}._compute_log_likelihood returned shape {flp.shape}, "
                f"expected {want}")
        return np.ascontiguousarray(flp), None

    def sample(self, state: int, rng: np.random.RandomState) -> np.ndarray:
        return self.model._generate_sample_from_state(state, rng)


def _log_params(model: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.errstate(divide="ignore"):  # structural zeros are -inf on purpose
        return (np.log(model.startprob_), np.log(model.transmat_), np.log(model._endprob()))


def lattices(model: Any, X: np.ndarray):
    """hmmlearn's ``_fit_log`` / ``_fit_scaling`` of one sequence.

    Returns ``(lattice, log_prob, posteriors, fwdlattice, bwdlattice)``:
    log frame likelihoods and log lattices for ``implementation='log'``; for
    ``'scaling'`` hmmlearn's scaled lattices: the forward rows sum to 1 and
    ``fwd[t, i] * A[i, j] * lattice[t + 1, j] * bwd[t + 1, j]`` sums to the
    expected transition counts (see :func:`_scaled_lattices`). A sequence whose
    counts that form cannot hold raises :class:`~gmmhmm.errors.ConvergenceError`
    (hmmlearn fails there too: 'consider using implementation='log'').
    """
    flp = HookEmission(model).log_likelihood(X)[0]
    log_start, log_trans, log_end = _log_params(model)
    log_prob, fwd = kernels.forward_log(log_start, log_trans, flp, log_end)
    bwd = kernels.backward_log(log_start, log_trans, flp, log_end)
    with np.errstate(invalid="ignore", under="ignore"):
        gamma = fwd + bwd
        top = gamma.max(axis=1, keepdims=True)
        posteriors = np.exp(gamma - top)
        posteriors /= posteriors.sum(axis=1, keepdims=True)
    if model.implementation == "log" or not np.isfinite(log_prob):
        return flp, log_prob, posteriors, fwd, bwd
    lattice, scaled_fwd, scaled_bwd = _scaled_lattices(flp, fwd, bwd, log_prob)
    A = np.asarray(model.transmat_, dtype=np.float64)
    if len(X) > 1 and not np.allclose(_scaled_xi_sum(A, lattice, scaled_fwd, scaled_bwd),
                                      _log_xi_sum(model, flp, fwd, bwd), rtol=1e-6, atol=1e-9 * len(X)):
        raise ConvergenceError(
            "hmmlearn's scaled lattices cannot hold the expected transitions of a sequence (its "
            "forward or backward values leave the float range); use implementation='log'")
    return lattice, log_prob, posteriors, scaled_fwd, scaled_bwd


def _scaled_lattices(flp: np.ndarray, fwd: np.ndarray, bwd: np.ndarray, log_prob: float
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scaled (lattice, forward, backward) from log ones. The forward rows sum to 1. Unlike
    hmmlearn's, each frame's likelihoods are divided by the largest among the states the
    forward pass can be in (the backward row carries the factor), so a frame every state
    scores below e^-745 keeps them; a state the forward pass cannot be in gets likelihood
    and backward value 0, not ones that overflow (it adds nothing to any count)."""
    cum = _row_logsumexp(fwd)  # log of prod_{s<=t} c_s
    before = np.concatenate([[0.0], cum[:-1]])
    scaled_fwd = np.exp(fwd - cum[:, None])
    held = scaled_fwd > 0
    top = np.max(flp, axis=1, where=held, initial=-np.inf)  # each row holds a state
    with np.errstate(over="ignore"):  # only where not held
        lattice = np.where(held, np.exp(flp - top[:, None]), 0.0)
        scaled_bwd = np.where(held, np.exp(bwd - (log_prob - before - top)[:, None]), 0.0)
    return lattice, scaled_fwd, scaled_bwd


def _row_logsumexp(a: np.ndarray) -> np.ndarray:
    """``log(exp(a).sum(axis=1))`` without overflow (rows with a finite entry)."""
    top = a.max(axis=1, keepdims=True)
    return top[:, 0] + np.log(np.exp(a - top).sum(axis=1))


def xi_sum(model: Any, lattice: np.ndarray, fwdlattice: np.ndarray, bwdlattice: np.ndarray
           ) -> np.ndarray:
    """Expected transition counts of one sequence from its lattices (as
    hmmlearn's ``compute_log_xi_sum`` / ``compute_scaling_xi_sum``): one GEMM for
    scaled lattices, the compiled kernel's exact sum for log ones."""
    A = np.asarray(model.transmat_, dtype=np.float64)
    if len(lattice) < 2:
        return np.zeros_like(A)
    if model.implementation != "log":
        return _scaled_xi_sum(A, lattice, fwdlattice, bwdlattice)
    return _log_xi_sum(model, lattice, fwdlattice, bwdlattice)


def _scaled_xi_sum(A: np.ndarray, lattice: np.ndarray, fwd: np.ndarray, bwd: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):  # a lattice that cannot hold them: NaN
        return A * (fwd[:-1].T @ (lattice[1:] * bwd[1:]))


def _log_xi_sum(model: Any, lattice: np.ndarray, fwd: np.ndarray, bwd: np.ndarray) -> np.ndarray:
    _, log_trans, log_end = _log_params(model)
    A = np.asarray(model.transmat_, dtype=np.float64)
    flp, fwd, bwd = (np.ascontiguousarray(a, dtype=np.float64) for a in (lattice, fwd, bwd))
    log_prob = _row_logsumexp(fwd[-1:] + log_end)[0]
    xi = np.zeros_like(A)
    kernels._posteriors_xi_log(log_trans, A, flp, fwd, bwd, log_prob, np.empty_like(flp), xi)
    return xi


def estep(model: Any, X: np.ndarray, lengths: np.ndarray) -> tuple[dict, float]:
    """hmmlearn's ``_do_estep``: statistics from the model's hooks, and the log-likelihood."""
    from .base import sequence_offsets

    stats = model._initialize_sufficient_statistics()
    offsets = sequence_offsets(lengths)
    total = 0.0
    for i in range(len(lengths)):
        sub = X[offsets[i]:offsets[i + 1]]
        lattice, log_prob, posteriors, fwd, bwd = lattices(model, sub)
        model._raise_zero_likelihood(np.array([log_prob]), lengths, i)
        model._accumulate_sufficient_statistics(stats, sub, lattice, posteriors, fwd, bwd)
        total += log_prob
    return stats, total
