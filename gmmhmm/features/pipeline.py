"""The whole front end: audio file (or signal) to normalised MFCC + deltas."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Hashable, Sequence

import numpy as np

from .._pool import WorkerDied, map_processes
from .._validation import resolve_n_jobs
from ..errors import AudioError, GmmhmmError, InvalidParameterError
from .audio import load_audio, resample
from .cmvn import _cmvn, cmvn_per_speaker
from .config import FeatureConfig, _check_rate
from .deltas import _add_deltas
from .mfcc import _as_signal, _mfcc

logger = logging.getLogger(__name__)


def extract_features(
    path_or_signal: str | os.PathLike | np.ndarray,
    config: FeatureConfig | None = None,
    sample_rate_hz: int | None = None,
) -> np.ndarray:
    """MFCCs, deltas and per-utterance CMVN for one file or signal.

    Parameters
    ----------
    path_or_signal : path or ndarray of shape (n_samples,)
        An audio file, or a mono signal in full-scale units.
    config : FeatureConfig, optional
        Defaults to ``FeatureConfig()``.
    sample_rate_hz : int, optional
        Rate of a signal (required for arrays, ignored for files). Audio at
        another rate than ``config.sample_rate_hz`` is resampled.

    Returns
    -------
    ndarray of shape (n_frames, config.n_features)
        ``cmvn='speaker'`` is not applied here (it needs the other
        utterances of the speaker): see :func:`extract_many`.

    Raises
    ------
    AudioError
        The file is unreadable (see :func:`load_audio`) or the audio is
        shorter than one frame.
    InvalidInputError
        The signal is not a 1-D real array, or holds NaN or infinity.
    InvalidParameterError
        Bad ``config`` or ``sample_rate_hz``.
    """
    config = FeatureConfig() if config is None else config
    if not isinstance(config, FeatureConfig):
        raise InvalidParameterError(f"config must be a FeatureConfig, got {type(config).__name__}")
    # Inputs are checked here, once; the steps below run unchecked on arrays known good.
    if not isinstance(path_or_signal, (str, bytes, os.PathLike)):  # a signal: ndarray or list
        if sample_rate_hz is None:
            raise InvalidParameterError("sample_rate_hz is required when passing a signal array")
        rate = _check_rate(sample_rate_hz)
        signal = _as_signal(path_or_signal)
        _warn_if_silent(signal, "signal")
        feats = _mfcc(resample(signal, rate, config.sample_rate_hz), config)
    else:
        signal, _ = load_audio(path_or_signal, config.sample_rate_hz)  # finite float64, or AudioError
        _warn_if_silent(signal, os.fspath(path_or_signal))
        try:
            feats = _mfcc(signal, config)
        except AudioError as exc:  # name the file, not just "signal"
            raise AudioError(f"{os.fspath(path_or_signal)}: {exc}") from exc
    if config.delta_order:
        feats = _add_deltas(feats, config.delta_order, config.delta_window)
    if config.cmvn == "utterance":
        feats = _cmvn(feats, variance=config.cmvn_variance)
    return feats


def _warn_if_silent(signal: np.ndarray, name: str) -> None:
    # Digital silence is valid audio (its features are finite: log energies
    # are floored), but in a speech corpus it usually means a broken recording.
    if signal.size and not np.any(signal):
        logger.warning("%s: audio is digital silence (all samples zero)", name)


def _extract_one(args: tuple[str, FeatureConfig]) -> tuple[str, np.ndarray | None, str | None]:
    path, config = args
    try:
        return path, extract_features(path, config), None
    except GmmhmmError as exc:
        return path, None, str(exc)
    except MemoryError:  # one file's problem (say an absurd length), not the batch's
        return path, None, f"{path}: out of memory while processing this file"


def extract_many(
    paths: Sequence[str | os.PathLike],
    config: FeatureConfig | None = None,
    n_jobs: int = 1,
    progress: bool = False,
    speaker_of: Callable[[str], Hashable] | None = None,
) -> tuple[dict[str, np.ndarray], list[tuple[str, str]]]:
    """Featurise many files, skipping (and reporting) the bad ones.

    Parameters
    ----------
    paths : sequence of paths
    config : FeatureConfig, optional
    n_jobs : int
        Worker processes; -1 uses every CPU.
    progress : bool
        Show a tqdm progress bar (if tqdm is installed).
    speaker_of : callable path -> speaker id, optional
        Required when ``config.cmvn == 'speaker'``; statistics are then
        pooled over each speaker's files.

    Returns
    -------
    features : dict mapping ``str(path)`` to (n_frames, D) arrays, in input order
    failures : list of ``(path, error message)`` for files that raised a
        :class:`gmmhmm.errors.GmmhmmError` (each also logged as a warning)
    """
    config = FeatureConfig() if config is None else config
    if config.cmvn == "speaker" and speaker_of is None:
        raise InvalidParameterError("config.cmvn='speaker' needs speaker_of (a function path -> speaker)")
    names = [os.fspath(p) for p in paths]
    n_jobs = resolve_n_jobs(n_jobs, len(names))
    jobs = [(p, config) for p in names]

    if n_jobs == 1:
        results = map(_extract_one, jobs)
    else:  # a killed worker costs a retry of its files, not the batch
        results = ((names[i], None, str(r)) if isinstance(r, WorkerDied) else r
                   for i, r in map_processes(_extract_one, jobs, n_jobs))
    if progress:
        try:
            from tqdm.auto import tqdm

            results = tqdm(results, total=len(jobs), desc="features", unit="file")
        except ImportError:
            logger.info("tqdm is not installed; no progress bar")
    features: dict[str, np.ndarray] = {}
    failures: list[tuple[str, str]] = []
    for path, feats, error in results:
        if error is None:
            features[path] = feats
        else:
            logger.warning("skipping %s: %s", path, error)
            failures.append((path, error))
    order = {name: k for k, name in enumerate(names)}  # workers finish in any order
    features = dict(sorted(features.items(), key=lambda kv: order[kv[0]]))
    failures.sort(key=lambda f: order[f[0]])
    if config.cmvn == "speaker" and features:
        keys = list(features)
        normed = cmvn_per_speaker([features[k] for k in keys], [speaker_of(k) for k in keys],
                                  variance=config.cmvn_variance)
        features = dict(zip(keys, normed))
    logger.info("featurised %d file(s), %d failure(s)", len(features), len(failures))
    return features, failures
