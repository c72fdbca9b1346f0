"""The whole front end: audio file (or signal) to normalised MFCC + deltas."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from .._validation import check_positive_int, resolve_n_jobs
from ..errors import AudioError, GmmhmmError, InvalidInputError, InvalidParameterError, NonFiniteInputError
from .audio import load_audio, resample
from .cmvn import cmvn, cmvn_per_speaker
from .config import MAX_SAMPLE_RATE_HZ, FeatureConfig
from .deltas import add_deltas
from .mfcc import mfcc

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
    """
    config = FeatureConfig() if config is None else config
    if not isinstance(config, FeatureConfig):
        raise InvalidParameterError(f"config must be a FeatureConfig, got {type(config).__name__}")
    if not isinstance(path_or_signal, (str, bytes, os.PathLike)):  # a signal: ndarray or list
        if sample_rate_hz is None:
            raise InvalidParameterError("sample_rate_hz is required when passing a signal array")
        rate = check_positive_int(sample_rate_hz, "sample_rate_hz")
        if rate > MAX_SAMPLE_RATE_HZ:
            raise InvalidParameterError(f"sample_rate_hz must be at most {MAX_SAMPLE_RATE_HZ}, got {rate}")
        try:
            signal = np.asarray(path_or_signal)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"signal cannot be converted to an array: {exc}") from exc
        if signal.ndim != 1 or signal.dtype.kind not in "fiu":
            raise InvalidInputError(f"signal must be a 1-D real array, got shape {signal.shape} dtype {signal.dtype}")
        if not np.isfinite(signal).all():
            raise NonFiniteInputError("signal contains NaN or infinity")
        _warn_if_silent(signal, "signal")
        signal = resample(signal, rate, config.sample_rate_hz)
        feats = mfcc(signal, config.sample_rate_hz, config)
    else:
        signal, _ = load_audio(path_or_signal, config.sample_rate_hz)
        _warn_if_silent(signal, os.fspath(path_or_signal))
        try:
            feats = mfcc(signal, config.sample_rate_hz, config)
        except AudioError as exc:  # name the file, not just "signal"
            raise AudioError(f"{os.fspath(path_or_signal)}: {exc}") from exc
    if config.delta_order:
        feats = add_deltas(feats, config.delta_order, config.delta_window)
    if config.cmvn == "utterance":
        feats = cmvn(feats, variance=config.cmvn_variance)
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
        pool = None
    else:
        pool = ProcessPoolExecutor(max_workers=n_jobs)
        results = pool.map(_extract_one, jobs, chunksize=max(1, len(jobs) // (8 * n_jobs)))
    if progress:
        try:
            from tqdm.auto import tqdm

            results = tqdm(results, total=len(jobs), desc="features", unit="file")
        except ImportError:
            logger.info("tqdm is not installed; no progress bar")
    features: dict[str, np.ndarray] = {}
    failures: list[tuple[str, str]] = []
    try:
        for path, feats, error in results:
            if error is None:
                features[path] = feats
            else:
                logger.warning("skipping %s: %s", path, error)
                failures.append((path, error))
    finally:
        if pool is not None:
            pool.shutdown()
    if config.cmvn == "speaker" and features:
        keys = list(features)
        normed = cmvn_per_speaker([features[k] for k in keys], [speaker_of(k) for k in keys],
                                  variance=config.cmvn_variance)
        features = dict(zip(keys, normed))
    logger.info("featurised %d file(s), %d failure(s)", len(features), len(failures))
    return features, failures
