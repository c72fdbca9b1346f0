"""Emission-agnostic HMM: parameters, additive statistics, EM loop, decoding.

The base class never looks inside its emissions. A subclass supplies an
emission object (see :mod:`gmmhmm.hmm.emissions`) through ``_emission()``,
which turns frames into per-state log-likelihoods ``(n_frames, n_states)``
and accumulates statistics from per-state posteriors, and implements
``_update_emission(stats)``, ``_init_emission(X, lengths, rng)`` and
``_check_emission()``.

Training is the additive cycle (Kaldi-style accumulators and estimators)::

    stats = model.accumulate(X1, lengths1) + model.accumulate(X2, lengths2)
    model.update(stats)

and :meth:`BaseHMM.fit` is exactly a loop over it.

End of a sequence (one semantics for every HMM in the package)
--------------------------------------------------------------
Without ``endprob_`` (the default, hmmlearn's semantics) a sequence may end
in any state and ``transmat_`` rows sum to 1. With ``endprob_`` set, the
model is *left* from state ``i`` with probability ``endprob_[i]`` after the
last frame, as HTK's transition matrices (exit column) and Kaldi's final
transitions do: each row of ``transmat_`` plus its ``endprob_`` sums to 1,
the likelihood of a sequence includes the exit probability of its last
state, and Baum-Welch re-estimates both from expected transition and exit
counts (:attr:`HMMStats.end`). A word or phone model is left only through
its final state: ``topology.left_to_right(n, exit_prob=...)``. The graph
models (:mod:`gmmhmm.graphs`) use the same rule: a phone's last state leaves,
to the next phone or out of the graph, with its re-estimated leave
probability, so a dense left-to-right model and the equivalent graph give
the same likelihoods and Viterbi paths.

Layers: this module owns the sequence parameters (start, transitions, exits)
and the EM loop; :mod:`.emissions` turns frames into per-state
log-likelihoods and statistics; :mod:`.kernels` runs the compiled
forward-backward / Viterbi on dense matrices; the M-step of the emission
parameters belongs to the model subclasses and :mod:`gmmhmm.mixture`.
"""

from __future__ import annotations

import logging
import string
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _threads
from .. import _validation as V
from .._params import ParamsMixin
from ..errors import (ConvergenceError, DimensionMismatchError, InvalidInputError,
                      InvalidParameterError, SequenceTooShortError)
from ..mixture.estimate import _broadcast
from . import hooks, kernels
from .monitor import ConvergenceMonitor

_log = logging.getLogger(__name__)

DECODER_ALGORITHMS = ("viterbi", "map")
IMPLEMENTATIONS = ("log", "scaling")
# Elements per (frames x columns) work array of a batch (2 MB of float64): the
# E-step makes several passes over each batch, which run from the CPU's
# cache at this size (about 1.5x faster than whole-corpus batches), while
# batches still hold enough sequences to run in parallel. A longer single
# sequence gets its own batch. Models with many Gaussians still batch at least
# _MIN_BATCH_FRAMES frames, or per-batch overhead and lost parallelism dominate.
_BATCH_ELEMENTS = 1 << 18
_MIN_BATCH_FRAMES = 4096


@dataclass
class HMMStats:
    """Additive Baum-Welch statistics of an HMM over some sequences.

    Attributes
    ----------
    start : ndarray (n_states,)
        Expected counts of the first state of each sequence.
    trans : ndarray (n_states, n_states)
        Expected transition counts.
    end : ndarray (n_states,)
        Expected counts of the last state of each sequence (the exit counts
        that re-estimate ``endprob_``).
    emission : object
        The emission's statistics (supports ``+``), e.g. a ``GaussianStats``.
    log_prob : float
        Total log-likelihood of the accumulated sequences.
    n_sequences, n_frames : int
    """

    start: np.ndarray
    trans: np.ndarray
    end: np.ndarray
    emission: Any
    log_prob: float
    n_sequences: int
    n_frames: int

    def __add__(self, other: "HMMStats") -> "HMMStats":
        if not isinstance(other, HMMStats):
            return NotImplemented
        return HMMStats(self.start + other.start, self.trans + other.trans, self.end + other.end,
                        self.emission + other.emission, self.log_prob + other.log_prob,
                        self.n_sequences + other.n_sequences, self.n_frames + other.n_frames)

    def __radd__(self, other: Any) -> "HMMStats":
        if isinstance(other, (int, float)) and other == 0:  # lets sum() work
            return self
        return NotImplemented


def sequence_offsets(lengths: np.ndarray) -> np.ndarray:
    """Offsets ``[0, l0, l0 + l1, ...]`` of sequences stored back to back."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def min_frames(startprob: np.ndarray, transmat: np.ndarray, endprob: np.ndarray) -> int:
    """Fewest frames of any path with non-zero probability (0 if none exists)."""
    reach = startprob > 0
    allowed = transmat > 0
    for n in range(1, len(startprob) + 1):
        if np.any(reach & (endprob > 0)):
            return n
        reach = (reach[:, None] & allowed).any(axis=0)
    return 0


def frame_batches(lengths, max_frames: int):
    """Yield ``(first, stop)`` ranges of consecutive sequences holding at most
    ``max_frames`` frames together (a longer sequence gets a range of its own)."""
    start, total = 0, 0
    for i, n in enumerate(lengths):
        if total and total + n > max_frames:
            yield start, i
            start, total = i, 0
        total += n
    if start < len(lengths):
        yield start, len(lengths)


def _batches(lengths: np.ndarray, n_columns: int):
    """:func:`frame_batches` of at most ``_BATCH_ELEMENTS`` frames x ``n_columns``,
    but at least ``_MIN_BATCH_FRAMES`` frames."""
    return frame_batches(lengths, max(_MIN_BATCH_FRAMES, _BATCH_ELEMENTS // max(1, n_columns)))


class BaseHMM(ParamsMixin):
    """HMM base class: start/transition parameters and all sequence algorithms.

    Subclasses add emission parameters. See :class:`gmmhmm.hmm.GaussianHMM`
    for the parameters.

    ``endprob_`` (optional, shape (n_components,)): probability of leaving
    the model from each state after the last frame (HTK's exit transitions;
    see the module docstring). It is absent by default (every state may end
    a sequence and ``transmat_`` rows sum to 1, as in hmmlearn). When set,
    each row of ``transmat_`` plus ``endprob_`` sums to 1, and ``'t'`` in
    ``params`` re-estimates both (structural zeros stay zero). Zeros there
    (e.g. a word model left only through its last state) make sequences
    shorter than the topology allows raise
    :class:`~gmmhmm.errors.SequenceTooShortError`.
    """

    _sklearn_estimator_type = "density_estimator"

    #: Fitted attributes a model file must store (subclasses extend it).
    _saved_attributes: tuple[str, ...] = ("startprob_", "transmat_", "n_features")

    def __init__(self, n_components=1, startprob_prior=1.0, transmat_prior=1.0,
                 algorithm="viterbi", random_state=None, n_iter=10, tol=1e-2,
                 verbose=False, params=string.ascii_letters, init_params=string.ascii_letters,
                 implementation="log"):
        # every letter by default, as hmmlearn: a subclass's own parameters train unnamed
        self.n_components = n_components
        self.startprob_prior = startprob_prior
        self.transmat_prior = transmat_prior
        self.algorithm = algorithm
        self.random_state = random_state
        self.n_iter = n_iter
        self.tol = tol
        self.verbose = verbose
        self.params = params
        self.init_params = init_params
        self.implementation = implementation
        self.monitor_ = ConvergenceMonitor._owned_by_model(tol, n_iter, verbose)

    # -------------------------------------------------------- validation

    def _check_hyperparameters(self) -> None:
        V.check_positive_int(self.n_components, "n_components")
        V.check_positive_int(self.n_iter, "n_iter", minimum=0)
        V.check_in(self.algorithm, DECODER_ALGORITHMS, "algorithm")
        V.check_in(self.implementation, IMPLEMENTATIONS, "implementation")
        # hmmlearn's numeric settings (each emission class has some of them); a negative
        # or -inf tol is hmmlearn's way to run every n_iter iteration
        V.check_numbers(self, scalars={"tol": "not_nan", "min_covar": "positive"},
                        arrays={"startprob_prior": "positive", "transmat_prior": "positive",
                                "weights_prior": "positive", "means_prior": "finite", "means_weight": "nonneg",
                                "covars_prior": "finite", "covars_weight": "finite"})
        S = self.n_components
        for name, shape in (("startprob_prior", (S,)), ("transmat_prior", (S, S))):
            # else the M-step makes a parameter of another shape (a 3 x 3 transmat_ for 1 state)
            _broadcast(getattr(self, name), shape, name)
        for name in ("params", "init_params"):
            if not isinstance(getattr(self, name), str):
                raise InvalidParameterError(f"{name} must be a string of letters, got "
                                            f"{getattr(self, name)!r}")

    def _check_distribution(self, name: str, shape: tuple[int, ...], exits: np.ndarray | None = None
                            ) -> np.ndarray:
        """``getattr(self, name)`` as a float array of ``shape`` whose last axis plus
        ``exits`` (if given) sums to 1."""
        value = np.asarray(getattr(self, name), dtype=np.float64)
        if value.shape != shape:
            raise InvalidParameterError(f"{name} must have shape {shape}, got {value.shape}")
        if not np.all(np.isfinite(value)) or np.any(value < 0):
            raise InvalidParameterError(f"{name} must be finite and non-negative")
        sums = value.sum(axis=-1)
        if exits is None and not np.allclose(sums, 1.0):
            raise InvalidParameterError(f"{name} must sum to 1 along its last axis, got sums {sums}")
        if exits is not None and not np.allclose(sums + exits, 1.0):
            raise InvalidParameterError(
                f"each row of {name} plus its endprob_ (exit probability) must sum to 1, got "
                f"row sums {sums} and endprob_ {exits}")
        return value

    def _check(self) -> None:
        """Validate the current parameters (raises InvalidParameterError)."""
        self._check_hyperparameters()
        S = self.n_components
        self.startprob_ = self._check_distribution("startprob_", (S,))
        end = getattr(self, "endprob_", None)
        if end is not None:
            end = np.asarray(end, dtype=np.float64)
            if (end.shape != (S,) or not np.all(np.isfinite(end)) or np.any(end < 0)
                    or np.any(end > 1) or not end.any()):
                raise InvalidParameterError(
                    f"endprob_ must be {S} exit probabilities in [0, 1], not all zero; got {end}")
            self.endprob_ = end
        self.transmat_ = self._check_distribution("transmat_", (S, S), end)
        self._check_emission()

    def _check_loaded(self) -> None:
        """Called by :func:`gmmhmm.modelfile.load`: a tampered file fails at load, not at first use."""
        if hasattr(self, "startprob_"):
            for name in self._saved_attributes:  # _check converts: "1", True or 1+0j would pass it
                value = getattr(self, name, None)
                if isinstance(value, np.ndarray) and value.dtype.kind not in "fiu":
                    raise InvalidParameterError(f"{name} must hold real numbers, got dtype {value.dtype}")
            self._check()

    def _endprob(self) -> np.ndarray:
        """Weight of ending in each state: ``endprob_``, or ones without an end constraint."""
        end = getattr(self, "endprob_", None)
        return np.ones(self.n_components) if end is None else end

    def _next_state_probs(self) -> np.ndarray:
        """``transmat_`` rows given that the model is not left (rows sum to 1)."""
        trans = np.asarray(self.transmat_, dtype=np.float64)
        total = trans.sum(axis=1, keepdims=True)
        return np.divide(trans, total, out=np.eye(len(trans)), where=total > 0)

    def _validate_X(self, X: Any, lengths: Any) -> tuple[np.ndarray, np.ndarray]:
        # gmmhmm's emissions compute in float64 on n_features columns. A subclass that brings
        # its own (hmmlearn's hooks, no _emission) owns the meaning of X: integers reach it as
        # integers, and of n_features if it checks X itself (hmmlearn's CategoricalHMM: the
        # number of symbols, in one column).
        own = not hooks.overrides(self, "_emission")
        keep = own and np.issubdtype(getattr(X, "dtype", float), np.integer)
        columns = None if own and hooks.overrides(self, "_check_and_set_n_features") else \
            getattr(self, "n_features", None)
        X = V.check_array(X, dtype=None if keep else np.float64, n_features=columns, model=type(self).__name__)
        return X, V.check_lengths(lengths, X.shape[0])

    def _fitted_check(self) -> None:
        V.check_is_fitted(self, "startprob_")
        self._check()

    # -------------------------------------------------- sequence algorithms

    def _raise_zero_likelihood(self, log_probs: np.ndarray, lengths: np.ndarray,
                               first: int = 0) -> None:
        bad = np.flatnonzero(~np.isfinite(log_probs))
        if not len(bad):
            return
        i = int(bad[0])
        seq = first + i
        n = int(lengths[seq])
        need = min_frames(self.startprob_, self.transmat_, self._endprob())
        if log_probs[i] == np.inf or np.isnan(log_probs[i]):
            raise ConvergenceError(f"sequence {seq} ({n} frames) has a non-finite log-likelihood; "
                                   "the model parameters are degenerate")
        if need == 0:
            raise InvalidParameterError(
                "no state path leads from a start state to an exit (startprob_, transmat_, endprob_): "
                "every sequence has zero probability under the model")
        if n < need:
            raise SequenceTooShortError(
                f"sequence {seq} has {n} frame(s) but the model's topology needs at least "
                f"{need} (it has zero probability under the model)")
        raise InvalidInputError(f"sequence {seq} ({n} frames) has zero likelihood under the model "
                                "(no state path with non-zero probability)")

    def _forward_backward(self, X: np.ndarray, lengths: np.ndarray):
        """Forward-backward over batches of whole sequences (bounded memory).

        Yields ``(first, stop, a, b, emission, cache, log_probs, posteriors,
        xi_sum)``: sequences ``first:stop`` covering frames ``a:b``.
        """
        emission = self._frame_emission()
        use_log = self.implementation == "log"
        end = self._endprob()
        offsets = sequence_offsets(lengths)
        for first, stop in _batches(lengths, emission.n_columns):
            a, b = offsets[first], offsets[stop]
            with _threads.compute():  # numba threads over sequences, BLAS single-threaded
                flp, cache = emission.log_likelihood(X[a:b])
                log_probs, post, xi = kernels.forward_backward_multi(
                    self.startprob_, self.transmat_, end, flp, offsets[first:stop + 1] - a, use_log)
            self._raise_zero_likelihood(log_probs, lengths, first)
            yield first, stop, a, b, emission, cache, log_probs, post, xi

    def accumulate(self, X: Any, lengths: Any = None) -> HMMStats:
        """E-step: Baum-Welch statistics of ``X`` under the current parameters.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        lengths : array-like of int, optional
            Lengths of the sequences stored back to back in ``X``.

        Returns
        -------
        HMMStats
            Additive statistics; sum the results of several calls (any split
            of the data into whole sequences) and pass them to :meth:`update`.
        """
        self._fitted_check()
        if hooks.own_likelihood(self):
            raise InvalidInputError(
                f"{type(self).__name__} scores frames with its own _compute_(log_)likelihood (hmmlearn's "
                "hooks), so accumulate / update cannot collect its emission statistics; train it with fit")
        X, lengths = self._validate_X(X, lengths)
        return self._accumulate(X, lengths)

    def _accumulate(self, X: np.ndarray, lengths: np.ndarray) -> HMMStats:
        """:meth:`accumulate` on validated input."""
        S = self.n_components
        start = np.zeros(S)
        trans = np.zeros((S, S))
        end = np.zeros(S)
        emission_stats = None
        log_prob = 0.0
        offsets = sequence_offsets(lengths)
        with _threads.compute():  # the statistics' GEMMs too: no BLAS threads between the kernels
            for first, stop, a, b, emission, cache, log_probs, post, xi in self._forward_backward(X, lengths):
                start += post[offsets[first:stop] - a].sum(axis=0)
                end += post[offsets[first + 1:stop + 1] - 1 - a].sum(axis=0)
                trans += xi
                part = emission.accumulate(X[a:b], post, cache)
                if emission_stats is None:
                    emission_stats = part
                else:
                    emission_stats += part
                log_prob += float(log_probs.sum())
        return HMMStats(start, trans, end, emission_stats, log_prob, len(lengths), X.shape[0])

    def update(self, stats: HMMStats) -> "BaseHMM":
        """M-step: re-estimate the parameters named in ``params`` from ``stats``.
        A failure (statistics of another model) leaves the model as it was."""
        self._fitted_check()
        S = self.n_components
        if np.shape(stats.start) != (S,) or np.shape(stats.trans) != (S, S) or np.shape(stats.end) != (S,):
            raise InvalidInputError(f"statistics of {np.size(stats.start)} states, but the model has {S}")
        with self._unchanged_on_failure():  # the emission may refuse them after start and transitions
            return self._update(stats)

    def _update(self, stats: HMMStats) -> "BaseHMM":
        """:meth:`update` on parameters known to be valid (inside :meth:`fit`)."""
        if "s" in self.params:
            self.startprob_ = self._reestimate(self.startprob_, stats.start, self.startprob_prior)
        if "t" in self.params:
            self._update_transitions(stats)
        if stats.emission is not None:  # None: an hmmlearn-style subclass updates its own in _do_mstep
            self._update_emission(stats.emission)
        return self

    def _update_transitions(self, stats: HMMStats) -> None:
        """Re-estimate ``transmat_`` (and ``endprob_``, if set, jointly with it, as
        HTK does: row ``i`` is ``[trans counts | exit count] / occupancy of i``)."""
        end = getattr(self, "endprob_", None)
        if end is None:
            self.transmat_ = self._reestimate(self.transmat_, stats.trans, self.transmat_prior)
            return
        S = self.n_components
        prior = np.asarray(self.transmat_prior, dtype=float)
        if prior.ndim:  # a per-transition prior: none on the exits
            prior = np.hstack([np.broadcast_to(prior, (S, S)), np.ones((S, 1))])
        rows = self._reestimate(np.hstack([self.transmat_, end[:, None]]),
                                np.hstack([stats.trans, stats.end[:, None]]), prior)
        self.transmat_, self.endprob_ = rows[:, :S], rows[:, S]

    @staticmethod
    def _reestimate(old: np.ndarray, counts: np.ndarray, prior: Any) -> np.ndarray:
        """Dirichlet-MAP update that keeps structural zeros exactly zero."""
        new = np.maximum(np.asarray(prior, dtype=float) - 1.0 + counts, 0.0)
        new = np.where(old == 0, 0.0, new)
        total = new.sum(axis=-1, keepdims=True)
        # A row with no evidence (an unvisited state) keeps its old values.
        return np.where(total > 0, new / np.where(total > 0, total, 1.0), old)

    def fit(self, X: Any, lengths: Any = None) -> "BaseHMM":
        """Estimate the parameters with Baum-Welch (EM).

        Parameters named in ``init_params`` are initialised from the data
        first; others must already be set. Only those in ``params`` are
        updated.

        A failure leaves the model as it was.

        Returns
        -------
        self
        """
        with self._unchanged_on_failure():
            return self._baum_welch(X, lengths)

    def _baum_welch(self, X: Any, lengths: Any) -> "BaseHMM":
        self._check_hyperparameters()
        X, lengths = self._validate_X(X, lengths)
        self._init(X, lengths)
        self._check()
        monitor = self._prepare_monitor()
        use_hooks = hooks.uses_hooks(self)
        for _ in range(self.n_iter):
            if use_hooks:  # a subclass written for hmmlearn: its hooks, in hmmlearn's order
                hook_stats, log_prob = hooks.estep(self, X, lengths)
                self._do_mstep(hook_stats)
            else:
                stats = self._accumulate(X, lengths)
                self._update(stats)  # parameters checked before the loop; the M-step keeps them valid
                log_prob = stats.log_prob
            monitor.report(log_prob)
            if monitor.converged:
                break
        return self

    def _prepare_monitor(self) -> ConvergenceMonitor:
        """The model's ``monitor_``, reset. One the user assigned (hmmlearn documents
        assigning a custom monitor before ``fit``) is used as it is; the model's own
        follows the current ``tol``, ``n_iter`` and ``verbose``."""
        monitor = getattr(self, "monitor_", None)
        if monitor is None or getattr(monitor, "_model_owned", False):
            monitor = ConvergenceMonitor._owned_by_model(self.tol, self.n_iter, self.verbose)
            self.monitor_ = monitor
        monitor._reset()
        return monitor

    def _needs_init(self, code: str, name: str) -> bool:
        if code in self.init_params:
            if hasattr(self, name):
                _log.warning("Even though the %r attribute is set, it will be overwritten "
                             "during initialization because 'init_params' contains %r", name, code)
            return True
        return not hasattr(self, name)

    def _init(self, X: np.ndarray, lengths: Any = None) -> None:
        X = np.asarray(X)
        if lengths is None or np.ndim(lengths) == 0:  # hmmlearn's tests pass _init(X, n_samples)
            lengths = np.array([X.shape[0]])
        lengths = np.asarray(lengths, dtype=np.int64)
        self._check_and_set_n_features(X)
        # Means set by hand and kept (hmmlearn's 'm' not in init_params) fix the dimension too;
        # the compiled kernels must never see X and parameters of different widths.
        means = getattr(self, "means_", None)
        if means is not None and "m" not in self.init_params and np.shape(means)[-1] != X.shape[1]:
            raise DimensionMismatchError(
                f"X has {X.shape[1]} features but means_ have {np.shape(means)[-1]}")
        rng = V.check_random_state(self.random_state)
        S = self.n_components
        init_s = self._needs_init("s", "startprob_")
        init_t = self._needs_init("t", "transmat_")
        labels = self._init_emission(X, lengths, rng, need_labels=init_s or init_t)
        if labels is None:  # an emission without a segmentation: hmmlearn's Dirichlet draws
            init = np.full(S, 1.0 / S)
            if init_s:
                self.startprob_ = rng.dirichlet(init)
            if init_t:
                self.transmat_ = rng.dirichlet(init, size=S)
            init_s = init_t = False
        # Start and transition counts of the emission's nearest-state
        # segmentation (plus one) beat hmmlearn's random Dirichlet draws,
        # which are often nearly deterministic and stall EM.
        starts = sequence_offsets(lengths)[:-1]
        if init_s:
            counts = np.bincount(labels[starts], minlength=S) + 1.0
            self.startprob_ = counts / counts.sum()
        if init_t:
            same_seq = np.ones(len(labels) - 1, dtype=bool)
            same_seq[starts[1:] - 1] = False
            counts = np.ones((S, S))
            np.add.at(counts, (labels[:-1][same_seq], labels[1:][same_seq]), 1.0)
            self.transmat_ = counts / counts.sum(axis=1, keepdims=True)
            if getattr(self, "endprob_", None) is not None:  # keep the exits; rows + exit sum to 1
                self.transmat_ *= 1.0 - np.asarray(self.endprob_, dtype=float)[:, None]
        per_param = self._get_n_fit_scalars_per_param() or {}
        n_scalars = sum(v for k, v in per_param.items() if k in self.params)
        if X.size < n_scalars:
            _log.warning("Fitting a model with %d free scalar parameters with only %d data "
                         "points will result in a degenerate solution.", n_scalars, X.size)

    # ------------------------------------------------------------ scoring

    def _sequence_log_probs(self, X: np.ndarray, lengths: np.ndarray, algorithm: str
                            ) -> tuple[np.ndarray, np.ndarray | None]:
        """Per-sequence log-probabilities of validated ``X`` (``'forward'``: likelihood,
        ``'viterbi'``: best path, whose states are returned too). Raises nothing:
        ``-inf`` marks a sequence the model cannot produce."""
        emission = self._frame_emission()
        end = self._endprob()
        offsets = sequence_offsets(lengths)
        log_probs = np.empty(len(lengths))
        states = np.empty(X.shape[0], dtype=np.int64) if algorithm == "viterbi" else None
        for first, stop in _batches(lengths, emission.n_columns):
            a, b = offsets[first], offsets[stop]
            rel = offsets[first:stop + 1] - a
            with _threads.compute():  # numba threads over sequences, BLAS single-threaded
                flp, _ = emission.log_likelihood(X[a:b], need_cache=False)
                with np.errstate(divide="ignore"):  # log of structural zeros is -inf on purpose
                    if algorithm == "viterbi":
                        log_probs[first:stop], states[a:b] = kernels.viterbi_multi(
                            self.startprob_, self.transmat_, end, flp, rel)
                    else:
                        log_probs[first:stop] = kernels.forward_multi(
                            self.startprob_, self.transmat_, end, flp, rel, self.implementation == "log")
        return log_probs, states

    def _score(self, X: Any, lengths: Any, posteriors: bool):
        self._fitted_check()
        X, lengths = self._validate_X(X, lengths)
        if not posteriors:
            log_probs, _ = self._sequence_log_probs(X, lengths, "forward")
            self._raise_zero_likelihood(log_probs, lengths)
            return float(log_probs.sum()), None
        out = np.empty((X.shape[0], self.n_components))
        total = 0.0
        for _, _, a, b, _, _, log_probs, post, _ in self._forward_backward(X, lengths):
            out[a:b] = post
            total += float(log_probs.sum())
        return total, out

    def score(self, X: Any, lengths: Any = None) -> float:
        """Log-likelihood of ``X`` under the model."""
        return self._score(X, lengths, posteriors=False)[0]

    def score_samples(self, X: Any, lengths: Any = None) -> tuple[float, np.ndarray]:
        """Log-likelihood of ``X`` and state posteriors (n_samples, n_components)."""
        return self._score(X, lengths, posteriors=True)

    def predict_proba(self, X: Any, lengths: Any = None) -> np.ndarray:
        """State posteriors (n_samples, n_components)."""
        return self.score_samples(X, lengths)[1]

    def decode(self, X: Any, lengths: Any = None, algorithm: str | None = None
               ) -> tuple[float, np.ndarray]:
        """Most likely state sequence.

        ``algorithm='viterbi'`` returns the joint log-probability of the best
        path; ``'map'`` picks each frame's most probable state and, as
        hmmlearn does, returns the sum of those maximum posteriors.
        """
        algorithm = V.check_in(algorithm or self.algorithm, DECODER_ALGORITHMS, "algorithm")
        if algorithm == "map":
            _, post = self.score_samples(X, lengths)
            return float(post.max(axis=1).sum()), post.argmax(axis=1)
        self._fitted_check()
        X, lengths = self._validate_X(X, lengths)
        log_probs, states = self._sequence_log_probs(X, lengths, "viterbi")
        self._raise_zero_likelihood(log_probs, lengths)
        return float(log_probs.sum()), states

    def predict(self, X: Any, lengths: Any = None) -> np.ndarray:
        """Most likely state of each frame (per ``algorithm``)."""
        return self.decode(X, lengths)[1]

    def sample(self, n_samples: int = 1, random_state: Any = None, currstate: int | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n_samples`` frames. Returns (X (n_samples, n_features), states (n_samples,))."""
        self._fitted_check()
        n_samples = V.check_positive_int(n_samples, "n_samples")
        rng = V.check_random_state(self.random_state if random_state is None else random_state)
        transmat_cdf = np.cumsum(self._next_state_probs(), axis=1)  # n_samples frames: never exit
        if currstate is None:
            currstate = int((np.cumsum(self.startprob_) > rng.rand()).argmax())
        elif (isinstance(currstate, bool) or not isinstance(currstate, (int, np.integer))
              or not 0 <= currstate < self.n_components):  # -1 would be drawn from and returned
            raise InvalidParameterError(f"currstate must be a state of the model (0 to "
                                        f"{self.n_components - 1}), got {currstate!r}")
        draw = (self._generate_sample_from_state if hooks.overrides(self, "_generate_sample_from_state")
                else self._emission().sample)
        states = [currstate]
        frames = [draw(currstate, rng)]
        for _ in range(n_samples - 1):
            currstate = int((transmat_cdf[currstate] > rng.rand()).argmax())
            states.append(currstate)
            frames.append(draw(currstate, rng))
        return np.atleast_2d(np.array(frames)), np.array(states, dtype=int)

    def get_stationary_distribution(self) -> np.ndarray:
        """Stationary distribution of the state chain."""
        V.check_is_fitted(self, "transmat_")
        eigvals, eigvecs = np.linalg.eig(self._next_state_probs().T)
        vec = np.real_if_close(eigvecs[:, np.argmax(eigvals.real)])
        return np.real(vec / vec.sum())

    def _n_parameters(self) -> int:
        """Free scalars (hmmlearn's count); with ``endprob_`` each row of transitions
        has one more (its exit), so S more."""
        exits = 0 if getattr(self, "endprob_", None) is None else self.n_components
        return int(sum(self._get_n_fit_scalars_per_param().values())) + exits

    def aic(self, X: Any, lengths: Any = None) -> float:
        """Akaike information criterion: ``-2 log L + 2 k``."""
        return -2 * self.score(X, lengths) + 2 * self._n_parameters()

    def bic(self, X: Any, lengths: Any = None) -> float:
        """Bayesian information criterion: ``-2 log L + k log(n_samples)``."""
        return -2 * self.score(X, lengths) + self._n_parameters() * np.log(len(X))

    # ------------------------------------------------- subclass interface

    def _emission(self):
        """The emission object of the current parameters (see :mod:`.emissions`)."""
        raise NotImplementedError(f"{type(self).__name__} must implement _emission() or "
                                  "hmmlearn's _compute_log_likelihood(X)")

    def _frame_emission(self):
        """What the sequence algorithms score frames with: the subclass's hmmlearn
        ``_compute_log_likelihood`` or ``_compute_likelihood`` if it has one, else its
        emission object."""
        if hooks.own_likelihood(self):
            return hooks.HookEmission(self)
        return self._emission()

    def _init_emission(self, X, lengths, rng, need_labels) -> np.ndarray | None:
        """Initialise emission parameters; return each frame's nearest state (N,) if asked.
        The default (an hmmlearn-style subclass initialises its emission in ``_init``)
        returns None: start and transitions get hmmlearn's random draws."""
        return None

    def _check_emission(self) -> None:
        """Validate the emission parameters (hmmlearn-style subclasses do it in ``_check``)."""

    def _check_sum_1(self, name: str) -> None:
        """hmmlearn's helper: ``getattr(self, name)`` sums to 1 along its last axis."""
        self._check_distribution(name, np.shape(getattr(self, name)))

    # ------------------------------ hmmlearn's hooks (see :mod:`gmmhmm.hmm.hooks`)

    def _check_and_set_n_features(self, X: np.ndarray) -> None:
        """Set ``n_features`` from ``X``, or check ``X`` against it (hmmlearn's hook, called
        by :meth:`_init`; a subclass may override it to check its data)."""
        n_features = np.shape(X)[1]
        if hasattr(self, "n_features") and self.n_features != n_features:
            raise DimensionMismatchError(
                f"X has {n_features} features but the model expects {self.n_features}")
        self.n_features = n_features

    def _compute_log_likelihood(self, X: np.ndarray) -> np.ndarray:
        """Per-state log-likelihoods of the frames ``X`` (n_samples, n_components): the log of
        the subclass's ``_compute_likelihood`` if it overrides that (as hmmlearn's
        CategoricalHMM does), else the emission's."""
        if hooks.overrides(self, "_compute_likelihood"):
            with np.errstate(divide="ignore"):  # impossible frames are -inf
                return np.log(self._compute_likelihood(X))
        X = np.ascontiguousarray(X, dtype=np.float64)
        return self._emission().log_likelihood(X, need_cache=False)[0]

    def _compute_likelihood(self, X: np.ndarray) -> np.ndarray:
        """Per-state likelihoods of the frames ``X`` (hmmlearn's hook): ``exp`` of
        :meth:`_compute_log_likelihood` (a subclass overrides one or the other)."""
        with np.errstate(under="ignore"):
            return np.exp(self._compute_log_likelihood(X))

    def _generate_sample_from_state(self, state: int, random_state: Any) -> np.ndarray:
        """One frame drawn from the emission of ``state``."""
        return self._emission().sample(state, V.check_random_state(random_state))

    def _initialize_sufficient_statistics(self) -> dict:
        """hmmlearn's statistics dict: ``nobs``, ``start``, ``trans``, plus ``end`` (exit
        counts) and ``emission`` (the emission's additive statistics, or None)."""
        S = self.n_components
        return {"nobs": 0, "start": np.zeros(S), "trans": np.zeros((S, S)), "end": np.zeros(S),
                "emission": None}

    def _accumulate_sufficient_statistics(self, stats: dict, X: np.ndarray, lattice: np.ndarray,
                                          posteriors: np.ndarray, fwdlattice: np.ndarray,
                                          bwdlattice: np.ndarray) -> None:
        """Add one sequence's statistics to ``stats`` (hmmlearn's signature)."""
        stats["nobs"] += 1
        stats["start"] += posteriors[0]
        stats["end"] = stats.get("end", 0.0) + posteriors[-1]  # not in a dict built as hmmlearn's
        if "t" in self.params:
            stats["trans"] += hooks.xi_sum(self, lattice, fwdlattice, bwdlattice)
        if hooks.overrides(self, "_emission"):  # gmmhmm's own emission: its statistics too
            emission = self._emission()
            X = np.ascontiguousarray(X, dtype=np.float64)
            part = emission.accumulate(X, np.ascontiguousarray(posteriors), emission.log_likelihood(X)[1])
            stats["emission"] = part if stats["emission"] is None else stats["emission"] + part

    def _do_mstep(self, stats: dict) -> None:
        """Re-estimate the parameters named in ``params`` from hmmlearn's ``stats``."""
        S = self.n_components
        self._update(HMMStats(stats["start"], stats["trans"], stats.get("end", np.zeros(S)),
                              stats.get("emission"), 0.0, stats["nobs"], 0))

    def _update_emission(self, stats):  # pragma: no cover - abstract
        raise NotImplementedError

    def _get_n_fit_scalars_per_param(self) -> dict[str, int]:  # pragma: no cover - abstract
        raise NotImplementedError
