"""Exceptions raised by gmmhmm.

Every error a user can cause is a subclass of :class:`GmmhmmError`, which is
itself a :class:`ValueError`, so ``except ValueError`` keeps working for code
written against scikit-learn or hmmlearn.
"""

from __future__ import annotations


class GmmhmmError(ValueError):
    """Base class of every user-facing error in gmmhmm."""


class InvalidInputError(GmmhmmError):
    """Data has the wrong shape, dtype, or is empty."""


class NonFiniteInputError(InvalidInputError):
    """Data contains NaN or infinity."""


class DimensionMismatchError(InvalidInputError):
    """Feature dimension differs from the one the model was fitted on."""


class InvalidLengthsError(InvalidInputError):
    """A ``lengths`` array is not positive integers summing to ``len(X)``."""


class SequenceTooShortError(InvalidInputError):
    """A sequence has fewer frames than the model's topology requires."""


class InvalidParameterError(GmmhmmError):
    """A constructor or method parameter is out of its allowed range."""


class NotFittedError(GmmhmmError, AttributeError):
    """A method that needs a fitted model was called before ``fit``."""


class ConvergenceError(GmmhmmError):
    """Training cannot proceed (for example every frame has zero likelihood)."""


class AudioError(GmmhmmError):
    """An audio file is unreadable, empty, truncated or contains NaN."""


class ModelFileError(GmmhmmError):
    """A model or feature file is corrupt, truncated, foreign or unsafe."""


class TranscriptError(GmmhmmError):
    """A transcript or lexicon is malformed or names an unknown word/phone."""


class DataDirError(GmmhmmError):
    """A Kaldi-style data directory (wav.scp, text, utt2spk, ...) is malformed or inconsistent."""
