"""Checkpointed EM training that survives being killed.

Every model follows one protocol (see the README's Design section)::

    stats = model.accumulate(X, ...)      # E-step
    model.update(stats)                   # M-step

:func:`fit` runs that loop and, after initialisation and after every
iteration, writes the model with :func:`gmmhmm.modelfile.save` (atomically:
the file is always either the previous checkpoint or the new one) together
with the iteration counter, the log-likelihood history and a fingerprint of
the training data. :func:`resume` (or ``fit(..., resume=True)``) reloads the
last checkpoint and carries on. EM iterations draw no random numbers (only
the initialisation does, and it is checkpointed as iteration 0), so a resumed
run ends bit for bit where an uninterrupted run with the same seed ends, and
where the model's own ``fit`` ends.

Example::

    from gmmhmm import GMMHMM, checkpoint
    model = GMMHMM(n_components=5, n_mix=4, random_state=0)
    checkpoint.fit(model, X, lengths, checkpoint_dir="exp/ckpt", resume=True)
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import modelfile
from ._validation import check_array, check_lengths, check_positive_int, check_sample_weight
from .errors import ConvergenceError, InvalidParameterError, ModelFileError

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.npz"
_KIND = "gmmhmm-checkpoint"


def checkpoint_path(checkpoint_dir: str | os.PathLike) -> Path:
    """The checkpoint file inside ``checkpoint_dir``."""
    return Path(checkpoint_dir) / CHECKPOINT_FILE


def save_checkpoint(path: str | os.PathLike, model: Any, state: dict[str, Any]) -> None:
    """Write ``model`` and the JSON-able training ``state`` to ``path`` atomically.

    The file also holds a digest of the model's parameters and settings
    (seed included) and of ``state`` (iteration, history, data fingerprint),
    so that a checkpoint edited after it was written is refused on load.
    """
    state = {k: v for k, v in state.items() if k != "digest"}
    modelfile.save(model, path, metadata={"kind": _KIND, **state, "digest": _digest(model, state)})


def _digest(model: Any, state: dict[str, Any]) -> str:
    """Hex digest binding a checkpoint's model (parameters, settings, seed) to its training state."""
    enc = modelfile._Encoder()
    root = enc.model(model, "")
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps([root, state], sort_keys=True, default=repr).encode())
    for key in sorted(enc.arrays):
        a = enc.arrays[key]
        h.update(f"{key}{a.dtype.str}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _check_state(path: str | os.PathLike, model: Any, meta: dict[str, Any]) -> None:
    name = os.fspath(path)
    it, history = meta.get("iteration"), meta.get("history", [])
    if (not isinstance(it, int) or isinstance(it, bool) or it < 0 or not isinstance(history, list)
            or len(history) > it or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in history)
            or not isinstance(meta.get("converged", False), bool)):
        raise ModelFileError(f"{name}: corrupt checkpoint (iteration {it!r}, {type(history).__name__} history)")
    state = {k: v for k, v in meta.items() if k not in ("kind", "digest")}
    if meta.get("digest") != _digest(model, state):
        raise ModelFileError(f"{name}: checkpoint was changed after it was written (its digest does not "
                             "match its parameters, settings and history); delete it to start afresh")


def load_checkpoint(path: str | os.PathLike) -> tuple[Any, dict[str, Any]] | None:
    """``(model, state)`` from a checkpoint file, or None if there is none.

    Raises
    ------
    ModelFileError
        The file exists but is not a readable checkpoint.
    """
    if not Path(path).is_file():
        return None
    model, meta = modelfile.load(path, with_metadata=True)
    if not isinstance(meta, dict) or meta.get("kind") != _KIND or not isinstance(meta.get("iteration"), int):
        raise ModelFileError(f"{os.fspath(path)}: a model file, but not a training checkpoint")
    _check_state(path, model, meta)
    return model, meta


def fingerprint_arrays(*arrays: np.ndarray | None) -> str:
    """Hex digest identifying ``arrays`` (dtype, shape and bytes; None counts as a value).

    Stored in a checkpoint so that resuming on other data is refused.
    """
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        if a is None:
            h.update(b"none")
        else:
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


_fingerprint = fingerprint_arrays  # the name gmmhmm.graphs.training uses


def accumulate_style(model: Any) -> str:
    """How ``model.accumulate`` takes its data: 'transcripts', 'lengths' or 'frames'.

    'transcripts': ``accumulate(features_list, transcripts)`` (embedded
    training); 'lengths': ``accumulate(X, lengths)`` (HMMs); 'frames':
    ``accumulate(X[, sample_weight])`` (mixtures), also when the signature
    cannot be read.
    """
    try:
        names = inspect.signature(model.accumulate).parameters
    except (TypeError, ValueError):
        return "frames"
    return "transcripts" if "transcripts" in names else "lengths" if "lengths" in names else "frames"


def iteration_param(model: Any) -> str | None:
    """Name of the model's maximum-iterations parameter: 'max_iter' (scikit-learn),
    'n_iter' (hmmlearn), or None if it has neither."""
    for name in ("max_iter", "n_iter"):
        if hasattr(model, name):
            return name
    return None


def _objective(stats: Any) -> float:
    """The quantity the model's own ``fit`` monitors for convergence."""
    if hasattr(stats, "total_weight"):  # GaussianMixture: per-sample lower bound
        return float(stats.log_likelihood / stats.total_weight)
    return float(stats.log_prob)  # HMMs: total log-likelihood


def _converged(model: Any, history: list[float], tol: float) -> bool:
    if len(history) < 2:
        return False
    gain = history[-1] - history[-2]
    # scikit-learn stops on |change| < tol, hmmlearn on change < tol
    return abs(gain) < tol if hasattr(model, "n_init") else gain < tol


def _comparable_params(model: Any) -> dict[str, Any]:
    params = dict(model.get_params())
    for name in ("verbose", "verbose_interval"):
        params.pop(name, None)  # do not change the fitted result
    if not isinstance(params.get("random_state"), (int, np.integer, type(None))):
        params.pop("random_state", None)  # a RandomState object is not stored: nothing to compare
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in params.items()}


# Raising the iteration limit or tolerance for a resumed run is allowed.
_IGNORED_ON_RESUME = frozenset({"max_iter", "n_iter", "tol", "warm_start"})


def restore_into(model: Any, saved: Any, state: dict[str, Any], fingerprint: str, path: Path) -> None:
    """Copy the fitted attributes of the checkpointed ``saved`` into ``model``.

    Parameters
    ----------
    model : the model being trained
    saved, state : what :func:`load_checkpoint` returned
    fingerprint : str
        Of the training data now (see :func:`fingerprint_arrays`).
    path : Path
        The checkpoint, for error messages.

    Raises
    ------
    InvalidParameterError
        The checkpoint holds another class, was written for other data
        (``state["data"] != fingerprint``) or by a model with other
        parameters (the iteration limit and tolerance may differ).
    """
    if type(saved) is not type(model):
        raise InvalidParameterError(f"{path} holds a {type(saved).__name__}, not a {type(model).__name__}")
    if state.get("data") != fingerprint:
        raise InvalidParameterError(f"{path} was written while training on different data; "
                                    "delete it or use another checkpoint directory")
    mine, theirs = _comparable_params(model), _comparable_params(saved)
    differ = sorted(k for k in mine if k not in _IGNORED_ON_RESUME and repr(mine[k]) != repr(theirs.get(k)))
    if differ:
        raise InvalidParameterError(f"{path} was written by a model with other parameters ({differ}); "
                                    "delete it or use another checkpoint directory")
    for name in type(model)._saved_attributes:
        if hasattr(saved, name):
            setattr(model, name, getattr(saved, name))


def _initialise(model: Any, knob: str, X: np.ndarray, lengths: np.ndarray | None, sample_weight: Any) -> None:
    """The model's own initialisation: its ``fit`` with zero EM iterations (``knob`` set to 0)."""
    old = model.get_params()[knob]
    model.set_params(**{knob: 0})
    try:
        if lengths is not None:
            model.fit(X, lengths)
        elif sample_weight is not None:
            model.fit(X, sample_weight=sample_weight)
        else:
            model.fit(X)
    finally:
        model.set_params(**{knob: old})


def _set_fit_attributes(model: Any, history: list[float], converged: bool, max_iter: int, tol: float) -> None:
    if hasattr(model, "n_init"):  # scikit-learn style
        model.n_iter_, model.converged_ = len(history), converged
        model.lower_bounds_ = list(history)
        if history:
            model.lower_bound_ = history[-1]
    monitor = getattr(model, "monitor_", None)
    if monitor is not None and hasattr(monitor, "history"):
        monitor.history.clear()
        monitor.history.extend(history)
        monitor.iter, monitor.n_iter, monitor.tol = len(history), max_iter, tol


def fit(
    model: Any,
    X: Any,
    lengths: Any = None,
    *,
    checkpoint_dir: str | os.PathLike,
    resume: bool = False,
    sample_weight: Any = None,
    n_iter: int | None = None,
    tol: float | None = None,
    callback: Callable[[int, float], None] | None = None,
) -> Any:
    """Train ``model`` by EM, checkpointing after every iteration.

    Parameters
    ----------
    model : GaussianMixture, GaussianHMM or GMMHMM (anything with
        ``accumulate``/``update``, ``fit``, ``get_params`` and model-file support)
    X : array-like of shape (n_samples, n_features)
    lengths : array-like of int, optional
        Sequence lengths, for HMMs.
    checkpoint_dir : path
        Where ``checkpoint.npz`` is written (created if needed).
    resume : bool
        Continue from the checkpoint in ``checkpoint_dir`` if there is one.
        It must have been written for the same data and model parameters
        (the iteration limit and ``tol`` may differ).
    sample_weight : array-like, optional
        Per-sample weights, for GaussianMixture.
    n_iter, tol : optional
        Maximum iterations (default: the model's ``max_iter`` / ``n_iter``)
        and convergence tolerance (default: the model's ``tol``), with the
        model's own rule: ``|change| < tol`` of the per-sample lower bound for
        GaussianMixture, ``change < tol`` of the log-likelihood for HMMs.
    callback : callable(iteration, objective), optional
        Called after each iteration's checkpoint is on disk.

    Returns
    -------
    model
        Fitted in place, with the same parameters and fit attributes
        (``n_iter_``, ``converged_``, ``lower_bound_`` or ``monitor_``) as
        the model's own ``fit`` (``n_init`` restarts are not supported: a
        single initialisation is used).
    """
    for needed in ("accumulate", "update", "fit", "get_params", "set_params"):
        if not callable(getattr(model, needed, None)):
            raise InvalidParameterError(f"{type(model).__name__} has no {needed}(); it cannot be trained here")
    takes_lengths = accumulate_style(model) == "lengths"
    if lengths is not None and not takes_lengths:
        raise InvalidParameterError(f"{type(model).__name__} takes no lengths")
    if sample_weight is not None and takes_lengths:
        raise InvalidParameterError(f"{type(model).__name__} takes no sample_weight")
    if getattr(model, "n_init", 1) != 1:
        raise InvalidParameterError("checkpointed training uses one initialisation; set n_init=1")
    X = check_array(X)
    lengths = check_lengths(lengths, X.shape[0]) if takes_lengths else None
    sw = None if sample_weight is None else check_sample_weight(sample_weight, X.shape[0])
    knob = iteration_param(model)
    if knob is None:
        raise InvalidParameterError(f"{type(model).__name__} has neither max_iter nor n_iter")
    max_iter = check_positive_int(model.get_params()[knob] if n_iter is None else n_iter, "n_iter", minimum=0)
    tol = float(model.get_params().get("tol", 0.0) if tol is None else tol)
    if not math.isfinite(tol) or tol < 0:
        raise InvalidParameterError(f"tol must be a finite number >= 0, got {tol!r}")

    path = checkpoint_path(checkpoint_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fingerprint = fingerprint_arrays(X, lengths, sw)
    found = load_checkpoint(path) if resume else None
    if found is not None:
        saved, state = found
        restore_into(model, saved, state, fingerprint, path)
        history = [float(v) for v in state.get("history", [])]
        done, converged = int(state["iteration"]), bool(state.get("converged", False))
        logger.info("resuming from %s at iteration %d", path, done)
    else:
        _initialise(model, knob, X, lengths, sw)
        history, done, converged = [], 0, False
        save_checkpoint(path, model, {"iteration": 0, "history": [], "converged": False, "data": fingerprint})

    args = (X, lengths) if takes_lengths else (X, sw)
    for it in range(done, max_iter):
        if converged:
            break
        stats = model.accumulate(*args)
        value = _objective(stats)
        if not math.isfinite(value):
            raise ConvergenceError(f"iteration {it + 1}: log-likelihood is {value}")
        model.update(stats)
        history.append(value)
        converged = _converged(model, history, tol)
        _set_fit_attributes(model, history, converged, max_iter, tol)  # so the checkpoint is a usable model
        save_checkpoint(path, model, {"iteration": it + 1, "history": history, "converged": converged,
                                      "data": fingerprint})
        logger.info("iteration %d: objective %.6f%s", it + 1, value, " (converged)" if converged else "")
        if callback is not None:
            callback(it + 1, value)
    _set_fit_attributes(model, history, converged, max_iter, tol)
    return model


def resume(model: Any, X: Any, lengths: Any = None, *, checkpoint_dir: str | os.PathLike, **kwargs: Any) -> Any:
    """Continue an interrupted :func:`fit` from its last checkpoint.

    Raises
    ------
    InvalidParameterError
        There is no checkpoint in ``checkpoint_dir``, or it was written for
        other data or another model configuration.
    """
    if not checkpoint_path(checkpoint_dir).is_file():
        raise InvalidParameterError(f"no checkpoint to resume from in {checkpoint_dir}")
    return fit(model, X, lengths, checkpoint_dir=checkpoint_dir, resume=True, **kwargs)
