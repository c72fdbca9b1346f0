"""Isolated-word recognition: one left-to-right GMM-HMM per label.

:class:`HMMClassifier` trains each label's model HTK-style: a flat start
from a uniform segmentation of the training sequences into states
(HInit's first pass), Baum-Welch re-estimation, then mixture splitting
(HHEd ``MU``) up a schedule such as 1 -> 2 -> 4 components per state, with
re-estimation after each split. A sequence is classified by scoring it with
every model (Viterbi or forward log-likelihood) and picking the best.

Word models are left only through their final state, with an exit
probability that Baum-Welch re-estimates (``endprob_``, HTK's exit
transition; see :mod:`gmmhmm.hmm.base`): a model of "A B" cannot explain an
"A"-only take through its first states, and a sequence shorter than a
model's state chain scores ``-inf`` under it.

The classifier is a model-file model: ``clf.save(path, metadata=...)`` writes
every label's HMM into one file and ``HMMClassifier.load(path)`` reads it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _threads
from . import _validation as V
from ._params import ParamsMixin
from ._pool import WorkerDied, map_processes
from .errors import ConvergenceError, InvalidInputError, InvalidParameterError, SequenceTooShortError
from .mixture.gaussian import check_covariance_type
from .mixture.mixup import PERTURB, mix_schedule, mix_up
from .modelfile import ModelFileMixin, register_model_class

logger = logging.getLogger(__name__)

SCORINGS = ("viterbi", "forward")
# Initial exit probability of a word model's final state (stay or leave, uniformly).
EXIT_PROB = 0.5


# ---------------------------------------------------------------------------
# Training of one label's model
# ---------------------------------------------------------------------------
def _new_hmm(n_states: int, n_mix: int, covariance_type: str, min_covar: float, n_iter: int,
             tol: float, random_state: Any):
    """A GMMHMM that trains from parameters we set (no data-driven init)."""
    from .hmm import GMMHMM

    return GMMHMM(n_components=n_states, n_mix=n_mix, covariance_type=covariance_type,
                  min_covar=min_covar, n_iter=n_iter, tol=tol, params="stmcw",
                  init_params="", random_state=random_state)


def _covars_from_frames(frames: np.ndarray, covariance_type: str, min_covar: float) -> np.ndarray:
    """One state's single-component covariance in GMMHMM's per-state layout."""
    d = frames.shape[1]
    if covariance_type == "full" or covariance_type == "tied":
        cov = np.cov(frames, rowvar=False, bias=True).reshape(d, d) + min_covar * np.eye(d)
        return cov[None] if covariance_type == "full" else cov
    var = frames.var(axis=0) + min_covar
    return var[None] if covariance_type == "diag" else np.array([var.mean()])


def uniform_segmentation(lengths: np.ndarray, n_states: int) -> np.ndarray:
    """State of each frame when every sequence is cut into ``n_states`` equal parts."""
    return np.concatenate([(np.arange(n) * n_states) // n for n in lengths])


def flat_start(X: np.ndarray, lengths: np.ndarray, n_states: int, max_jump: int,
               covariance_type: str, min_covar: float, n_iter: int, tol: float,
               random_state: Any):
    """Single-Gaussian left-to-right model, left only through its final state,
    initialised by uniform segmentation."""
    from .hmm.topology import left_to_right

    states = uniform_segmentation(lengths, n_states)
    model = _new_hmm(n_states, 1, covariance_type, min_covar, n_iter, tol, random_state)
    model.startprob_, model.transmat_, model.endprob_ = left_to_right(n_states, max_jump, EXIT_PROB)
    means, covars = [], []
    for s in range(n_states):
        frames = X[states == s]
        if len(frames) < 2:  # every sequence shorter than the model: share the global stats
            frames = X
        means.append(frames.mean(axis=0)[None])
        covars.append(_covars_from_frames(frames, covariance_type, min_covar))
    model.n_features = X.shape[1]  # usable before (or without) any EM iteration
    model.weights_ = np.ones((n_states, 1))
    model.means_ = np.stack(means)
    model.covars_ = np.stack(covars)
    return model


def split_mixtures(model, n_mix: int, n_iter: int, tol: float, random_state: Any):
    """A copy of ``model`` with ``n_mix`` components per state (HTK's HHEd MU,
    :func:`gmmhmm.mixture.mixup.mix_up`)."""
    new = _new_hmm(model.n_components, model.n_mix, model.covariance_type, model.min_covar, n_iter, tol,
                   random_state)
    new.n_features = model.means_.shape[-1]
    new.startprob_ = model.startprob_.copy()
    new.transmat_ = model.transmat_.copy()
    if getattr(model, "endprob_", None) is not None:
        new.endprob_ = model.endprob_.copy()
    new._set_gaussian_params(mix_up(model._gaussian_params(), n_mix, PERTURB))
    return new


def train_word_model(X_list: Sequence[np.ndarray], n_states: int, mix_schedule: Sequence[int],
                     n_iter: Sequence[int], covariance_type: str = "diag", max_jump: int = 1,
                     min_covar: float = 1e-3, tol: float = 1e-3, random_state: Any = 0,
                     checkpoint_dir: str | os.PathLike | None = None, resume: bool = False):
    """Train one left-to-right GMM-HMM on the sequences of one label.

    Parameters
    ----------
    X_list : sequence of (n_frames_i, n_features) arrays
    n_states : int
    mix_schedule : sequence of int
        Components per state at each stage, increasing (e.g. ``(1, 2, 4)``).
    n_iter : sequence of int
        Baum-Welch iterations at each stage (same length as ``mix_schedule``).
    checkpoint_dir : path, optional
        Checkpoint every Baum-Welch iteration of every stage here (see
        :mod:`gmmhmm.checkpoint`); the trained model is the same.
    resume : bool
        Continue from the checkpoints in ``checkpoint_dir``.

    Returns
    -------
    GMMHMM
    """
    lengths = np.array([len(x) for x in X_list], dtype=np.int64)
    need = -(-(n_states - 1) // max_jump) + 1  # frames to reach the final state
    short = np.flatnonzero(lengths < need)
    if len(short) == len(lengths):
        raise SequenceTooShortError(f"every training sequence is shorter than the {need} frames "
                                    f"a {n_states}-state model (max_jump={max_jump}) needs")
    if len(short):  # HTK's HInit/HRest skip them too
        logger.warning("skipping %d training sequence(s) shorter than the %d frames a %d-state "
                       "model needs (indices %s)", len(short), need, n_states, short.tolist())
        X_list = [x for x, n in zip(X_list, lengths) if n >= need]
        lengths = lengths[lengths >= need]
    X = np.concatenate(X_list)
    model = None
    for stage, (n_mix, iters) in enumerate(zip(mix_schedule, n_iter)):
        if model is None:
            model = flat_start(X, lengths, n_states, max_jump, covariance_type, min_covar,
                               iters, tol, random_state)
            if n_mix > 1:
                model = split_mixtures(model, n_mix, iters, tol, random_state)
        else:
            model = split_mixtures(model, n_mix, iters, tol, random_state)
        if iters > 0 and checkpoint_dir is not None:
            from . import checkpoint

            checkpoint.fit(model, X, lengths, resume=resume,
                           checkpoint_dir=os.path.join(checkpoint_dir, f"stage{stage}_mix{n_mix}"))
        elif iters > 0:
            model.fit(X, lengths)
    return model


def _train_job(args: tuple) -> Any:
    label, X_list, kwargs = args
    with _threads.compute():  # BLAS on one thread: many small GEMMs
        model = train_word_model(X_list, **kwargs)
    logger.info("trained model for label %r on %d sequence(s)", label, len(X_list))
    return model


# ---------------------------------------------------------------------------
# The classifier
# ---------------------------------------------------------------------------
@register_model_class
class HMMClassifier(ParamsMixin, ModelFileMixin):
    """Isolated-sequence classifier with one left-to-right GMM-HMM per label.

    Parameters
    ----------
    n_states : int
        Emitting states per model.
    mix_schedule : sequence of int
        Gaussians per state after each training stage, non-decreasing,
        starting anywhere >= 1; e.g. ``(1, 2, 4)`` trains single Gaussians,
        then splits to 2 and to 4.
    n_iter : int or sequence of int
        Baum-Welch iterations per stage (one value for every stage, or one
        per stage).
    covariance_type : {'diag', 'full', 'spherical', 'tied'}
    max_jump : int
        Left-to-right topology: from state i to i .. i + max_jump.
    min_covar : float
        Variance floor: added to the flat-start variances and held after
        every Baum-Welch M-step (no variance of any model ends below it).
    tol : float
        EM convergence threshold on the log-likelihood gain per stage.
    scoring : {'viterbi', 'forward'}
        Score of a sequence under a model: best-path or total log-likelihood.
    n_jobs : int
        Processes training labels in parallel (-1: every CPU).
    random_state : int or None

    Attributes
    ----------
    classes_ : ndarray of shape (n_labels,)
        Sorted labels.
    models_ : list of GMMHMM
        One trained model per label, in ``classes_`` order.
    n_features_in_ : int
    """

    _sklearn_estimator_type = "classifier"

    _saved_attributes = ("classes_", "models_", "n_features_in_")

    def __init__(self, n_states: int = 6, mix_schedule: Sequence[int] = (1, 2, 4),
                 n_iter: int | Sequence[int] = 8, covariance_type: str = "diag",
                 max_jump: int = 1, min_covar: float = 1e-3, tol: float = 1e-3,
                 scoring: str = "viterbi", n_jobs: int = 1, random_state: Any = 0):
        self.n_states = n_states
        self.mix_schedule = mix_schedule
        self.n_iter = n_iter
        self.covariance_type = covariance_type
        self.max_jump = max_jump
        self.min_covar = min_covar
        self.tol = tol
        self.scoring = scoring
        self.n_jobs = n_jobs
        self.random_state = random_state

    # -- validation ----------------------------------------------------------
    def _check_loaded(self) -> None:
        """Called by :func:`gmmhmm.modelfile.load`: one model per label, all of one feature dimension."""
        if not hasattr(self, "models_"):
            return
        from .hmm.base import BaseHMM

        classes, models = np.asarray(self.classes_), self.models_
        if classes.ndim != 1 or len(np.unique(classes)) != len(classes):
            raise InvalidParameterError(f"classes_ must be distinct labels, got {classes!r:.80}")
        if not isinstance(models, list) or len(models) != len(classes):
            raise InvalidParameterError(f"{len(classes)} label(s) but "
                                        f"{len(models) if isinstance(models, list) else 'no list of'} model(s)")
        d = V.check_positive_int(self.n_features_in_, "n_features_in_")
        for label, model in zip(classes, models):
            if not isinstance(model, BaseHMM) or getattr(model, "n_features", None) != d:
                raise InvalidParameterError(f"the model of label {label!r} is not a fitted HMM of {d} features")

    def _schedule(self) -> tuple[list[int], list[int]]:
        V.check_positive_int(self.n_states, "n_states")
        V.check_positive_int(self.max_jump, "max_jump")
        check_covariance_type(self.covariance_type)
        V.check_in(self.scoring, SCORINGS, "scoring")
        mixes, iters = mix_schedule(self.mix_schedule, self.n_iter)
        V.check_number(self.min_covar, "min_covar", "positive")
        V.check_number(self.tol, "tol", "not_nan")
        V.resolve_n_jobs(self.n_jobs, 1)  # checked with the rest, not only once training starts
        if not isinstance(self.random_state, (np.random.RandomState, np.random.Generator)):
            V.check_random_state(self.random_state)  # None or an int (a Generator must not be drawn from here)
        return mixes, iters

    def _check_sequences(self, X_list: Any, n_features: int | None = None) -> list[np.ndarray]:
        if isinstance(X_list, np.ndarray) and X_list.ndim == 2:
            raise InvalidInputError("X_list must be a list of (n_frames, n_features) arrays, "
                                    "one per sequence, not a single 2-D array")
        try:
            seqs = list(X_list)
        except TypeError as exc:
            raise InvalidInputError(f"X_list must be a list of 2-D arrays: {exc}") from exc
        if not seqs:
            raise InvalidInputError("X_list is empty")
        out = [V.check_array(x, name=f"X_list[{i}]", n_features=n_features) for i, x in enumerate(seqs)]
        dims = {x.shape[1] for x in out}
        if len(dims) > 1:
            raise InvalidInputError(f"sequences have different feature dimensions {sorted(dims)}")
        return out

    # -- training ------------------------------------------------------------
    def fit(self, X_list: Sequence[np.ndarray], y: Sequence[Any],
            checkpoint_dir: str | os.PathLike | None = None, resume: bool = False) -> "HMMClassifier":
        """Train one model per distinct label of ``y``.

        Parameters
        ----------
        X_list : sequence of (n_frames_i, n_features) arrays
        y : sequence of labels (ints or strings), one per sequence
        checkpoint_dir : path, optional
            Checkpoint every Baum-Welch iteration here (one folder per label
            and stage), so that an interrupted fit can be resumed.
        resume : bool
            Continue from the checkpoints in ``checkpoint_dir``: the result
            equals an uninterrupted fit.
        """
        mixes, iters = self._schedule()
        seqs = self._check_sequences(X_list)
        y = np.asarray(list(y))
        if y.ndim != 1 or len(y) != len(seqs):
            raise InvalidInputError(f"y must have one label per sequence: got {y.shape} for {len(seqs)} sequences")
        if y.dtype.kind not in "iuUSb":
            raise InvalidInputError(f"labels must be integers or strings, got dtype {y.dtype}")
        classes = np.unique(y)
        kwargs = dict(n_states=self.n_states, mix_schedule=mixes, n_iter=iters,
                      covariance_type=self.covariance_type, max_jump=self.max_jump,
                      min_covar=float(self.min_covar), tol=float(self.tol),
                      random_state=self.random_state)
        if resume and checkpoint_dir is None:
            raise InvalidParameterError("resume=True needs a checkpoint_dir")
        jobs = [(lab.item(), [seqs[i] for i in np.flatnonzero(y == lab)],
                 kwargs if checkpoint_dir is None else dict(kwargs, resume=resume, checkpoint_dir=os.path.join(
                     checkpoint_dir, f"label{j}_" + "".join(c if c.isalnum() else "_" for c in str(lab)))))
                for j, lab in enumerate(classes)]
        n_jobs = V.resolve_n_jobs(self.n_jobs, len(jobs))
        logger.info("training %d model(s) (%d states, mixtures %s) on %d sequence(s) with %d process(es)",
                    len(jobs), self.n_states, mixes, len(seqs), n_jobs)
        if n_jobs > 1:  # a killed worker costs a retry of its labels, not the fit
            models = [None] * len(jobs)
            for i, model in map_processes(_train_job, jobs, n_jobs):
                if isinstance(model, WorkerDied):
                    raise ConvergenceError(f"training the model of label {jobs[i][0]!r} failed: {model}")
                models[i] = model
        else:
            models = [_train_job(job) for job in jobs]
        self.classes_ = classes
        self.models_ = models
        self.n_features_in_ = seqs[0].shape[1]
        return self

    # -- scoring -------------------------------------------------------------
    def predict_log_likelihoods(self, X_list: Sequence[np.ndarray]) -> np.ndarray:
        """Score of every sequence under every label's model.

        Returns
        -------
        ndarray of shape (n_sequences, n_labels)
            Viterbi (best path) or forward log-likelihoods per ``scoring``;
            ``-inf`` where a model cannot produce the sequence at all.
        """
        V.check_is_fitted(self, "models_")
        V.check_in(self.scoring, SCORINGS, "scoring")
        seqs = self._check_sequences(X_list, n_features=self.n_features_in_)
        X = np.concatenate(seqs)
        lengths = np.array([len(x) for x in seqs], dtype=np.int64)
        out = np.empty((len(seqs), len(self.models_)))
        with _threads.compute():  # BLAS on one thread: many small GEMMs
            for j, model in enumerate(self.models_):
                out[:, j] = sequence_scores(model, X, lengths, self.scoring)
        return out

    def _possible_scores(self, X_list: Sequence[np.ndarray]) -> np.ndarray:
        """:meth:`predict_log_likelihoods`, refusing a sequence no model can produce (see :meth:`predict`)."""
        from .hmm.base import min_frames

        seqs = list(X_list) if not isinstance(X_list, np.ndarray) else X_list  # a generator is read once
        scores = self.predict_log_likelihoods(seqs)
        impossible = np.flatnonzero(~np.isfinite(scores.max(axis=1)))
        if len(impossible):
            need = min(min_frames(m.startprob_, m.transmat_, m._endprob()) or np.inf for m in self.models_)
            short = [int(i) for i in impossible if len(seqs[i]) < need]
            if short:
                lengths = [len(seqs[i]) for i in short[:5]]
                raise SequenceTooShortError(
                    f"sequence(s) {short[:5]} ({lengths} frames) cannot be produced by any "
                    f"model: the shortest model needs at least {need} frames")
            raise InvalidInputError(
                f"sequence(s) {impossible[:5].tolist()} have probability zero under every model although "
                f"long enough (frames far outside the training data?)")
        return scores

    def predict(self, X_list: Sequence[np.ndarray]) -> np.ndarray:
        """Label of the best-scoring model for each sequence.

        Raises :class:`~gmmhmm.errors.SequenceTooShortError` if no model can
        produce a sequence because it is shorter than every model's state
        chain, :class:`~gmmhmm.errors.InvalidInputError` if every model gives
        a long enough one probability zero, rather than returning an arbitrary label.
        """
        scores = self._possible_scores(X_list)  # first: an unfitted model has no classes_ either
        return self.classes_[np.argmax(scores, axis=1)]

    def predict_proba(self, X_list: Sequence[np.ndarray]) -> np.ndarray:
        """Posterior of each label (columns in ``classes_`` order) under equal priors: the models'
        scores (:meth:`predict_log_likelihoods`) normalised per sequence. Refuses what :meth:`predict` refuses.
        """
        from scipy.special import softmax

        return softmax(self._possible_scores(X_list), axis=1)

    def score(self, X_list: Sequence[np.ndarray], y: Sequence[Any]) -> float:
        """Classification accuracy on ``X_list`` with true labels ``y``."""
        from .scoring import accuracy

        return accuracy(list(np.asarray(list(y))), list(self.predict(X_list)))


# Frames scored per batch: bounds the (frames x states) work arrays.
def sequence_scores(model, X: np.ndarray, lengths: np.ndarray, scoring: str = "viterbi") -> np.ndarray:
    """Log-likelihood of each sequence of ``X`` under one HMM, shape (n_sequences,).

    One emission evaluation and one compiled Viterbi / forward pass per batch
    of sequences, instead of a ``decode`` call per sequence (whose per-call
    overhead dominates on short words). ``-inf`` marks sequences the model
    cannot produce.
    """
    out, _ = model._sequence_log_probs(X, np.asarray(lengths), "viterbi" if scoring == "viterbi" else "forward")
    return np.where(np.isnan(out), -np.inf, out)
