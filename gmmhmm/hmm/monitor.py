"""EM convergence monitor, compatible with ``hmmlearn.base.ConvergenceMonitor``."""

from __future__ import annotations

import logging
import sys
from collections import deque

import numpy as np

_log = logging.getLogger(__name__)


class ConvergenceMonitor:
    """Track the log-likelihood of EM iterations and decide convergence.

    Parameters
    ----------
    tol : float
        EM stops when the gain in log-likelihood between two iterations is
        below ``tol``.
    n_iter : int
        Maximum number of iterations.
    verbose : bool
        Print one line per iteration to stderr (as hmmlearn does).

    Attributes
    ----------
    history : deque
        Log-likelihood of every iteration, as in hmmlearn.
    iter : int
        Number of iterations performed.
    """

    _template = "{iter:>10d} {log_prob:>16.8f} {delta:>+16.8f}"

    def __init__(self, tol: float, n_iter: int, verbose: bool):
        self.tol = tol
        self.n_iter = n_iter
        self.verbose = verbose
        self.history: deque = deque()
        self.iter = 0

    @classmethod
    def _owned_by_model(cls, tol: float, n_iter: int, verbose: bool) -> "ConvergenceMonitor":
        """A model's default monitor, rebuilt from the model's ``tol``/``n_iter`` at each
        ``fit``; one a user assigns to ``monitor_`` is used as it is."""
        monitor = cls(tol, n_iter, verbose)
        monitor._model_owned = True
        return monitor

    def __repr__(self) -> str:
        params = sorted((k, v) for k, v in dict(vars(self), history=list(self.history)).items()
                        if not k.startswith("_"))
        body = "".join(f"    {k}={v},\n" for k, v in params)
        return f"{type(self).__name__}(\n{body})"

    def _reset(self) -> None:
        self.iter = 0
        self.history.clear()

    def report(self, log_prob: float) -> None:
        """Record the log-likelihood of one iteration (and print it if verbose)."""
        delta = log_prob - self.history[-1] if self.history else np.nan
        if self.verbose:
            print(self._template.format(iter=self.iter + 1, log_prob=log_prob, delta=delta),
                  file=sys.stderr)
        _log.info("EM iteration %d: log-likelihood %.6f (delta %+.6g)",
                  self.iter + 1, log_prob, delta)
        # EM never decreases the likelihood; allow rounding-level wiggle room.
        if self.history and delta < -np.sqrt(np.finfo(float).eps) * max(1.0, abs(log_prob)):
            _log.warning("Model is not converging. Current: %s is not greater than %s. "
                         "Delta is %s", log_prob, self.history[-1], delta)
        self.history.append(log_prob)
        self.iter += 1

    @property
    def converged(self) -> bool:
        """Whether EM has converged (or reached ``n_iter``)."""
        return (self.iter == self.n_iter
                or (len(self.history) >= 2 and self.history[-1] - self.history[-2] < self.tol))
