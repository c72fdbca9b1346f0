"""Exceptions raised by gmmhmm.

Every error a user can cause is a subclass of :class:`GmmhmmError`, which is
itself a :class:`ValueError`, so ``except ValueError`` keeps working for code
written against scikit-learn or hmmlearn.
"""

from __future__ import annotations

import importlib.util


def _sklearn_exception(name: str, fallback: type) -> type:
    """scikit-learn's exception class ``name`` when scikit-learn is installed, else ``fallback``.

    gmmhmm never needs scikit-learn, but code written for it catches
    ``sklearn.exceptions.NotFittedError`` and filters
    ``sklearn.exceptions.ConvergenceWarning``; subclassing them makes gmmhmm's
    own classes match there too.
    """
    if importlib.util.find_spec("sklearn") is None:
        return fallback
    try:
        from sklearn import exceptions
    except Exception:  # a broken scikit-learn install must not break gmmhmm
        return fallback
    return getattr(exceptions, name, fallback)


_SklearnNotFittedError = _sklearn_exception("NotFittedError", AttributeError)
_SklearnConvergenceWarning = _sklearn_exception("ConvergenceWarning", UserWarning)


class GmmhmmError(ValueError):
    """Base class of every user-facing error in gmmhmm."""


class InvalidInputError(GmmhmmError):
    """Data has the wrong shape, dtype, or is empty."""


class NonFiniteInputError(InvalidInputError):
    """Data contains NaN or infinity."""


class NonNumericInputError(InvalidInputError, TypeError):
    """Data holds something other than numbers (strings, objects, ragged lists).

    Also a ``TypeError``, which is what numpy and scikit-learn raise for it.
    """


class DimensionMismatchError(InvalidInputError):
    """Feature dimension differs from the one the model was fitted on."""


class InvalidLengthsError(InvalidInputError):
    """A ``lengths`` array is not positive integers summing to ``len(X)``."""


class SequenceTooShortError(InvalidInputError):
    """A sequence has fewer frames than the model's topology requires."""


class InvalidParameterError(GmmhmmError):
    """A constructor or method parameter is out of its allowed range."""


class NotFittedError(GmmhmmError, _SklearnNotFittedError):
    """A method that needs a fitted model was called before ``fit``.

    Also an ``AttributeError`` and, when scikit-learn is installed, a
    ``sklearn.exceptions.NotFittedError``.
    """


class ConvergenceError(GmmhmmError):
    """Training cannot proceed (for example every frame has zero likelihood)."""


class WorkerFailedError(GmmhmmError):
    """Worker processes died or vanished and retries were exhausted."""


class AudioError(GmmhmmError):
    """An audio file is unreadable, empty, truncated or contains NaN."""


class ModelFileError(GmmhmmError):
    """A model or feature file is corrupt, truncated, foreign or unsafe."""


class TranscriptError(GmmhmmError):
    """A transcript or lexicon is malformed or names an unknown word/phone."""


class ConvergenceWarning(_SklearnConvergenceWarning, RuntimeWarning):
    """Training stopped at its iteration limit before converging.

    A ``sklearn.exceptions.ConvergenceWarning`` when scikit-learn is installed.
    """


class MissingDependencyError(GmmhmmError, ImportError):
    """An optional dependency (an extra such as ``plot`` or ``distributed``) is not installed."""


class DataDirError(GmmhmmError):
    """A Kaldi-style data directory (wav.scp, text, utt2spk, ...) is malformed or inconsistent."""
