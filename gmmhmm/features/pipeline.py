"""The whole front end: audio file (or signal) to normalised MFCC + deltas."""

from __future__ import annotations

import logging
import os
from collections.abc import Hashable, Mapping, Sequence

import numpy as np

from .. import _threads
from .._pool import WorkerDied, map_processes
from .._validation import resolve_n_jobs
from ..errors import AudioError, GmmhmmError, InvalidInputError, InvalidParameterError
from ..data.datadir import AudioSpan, PerturbedAudio, PipedAudio, audio_source_name
from .audio import load_source, resample
from .cmvn import CmvnStats, Utt2Spk, _cmvn, _compute, _speaker_lookup
from .config import FeatureConfig, _check_rate
from .deltas import _add_deltas
from .mfcc import _as_signal, _mfcc

logger = logging.getLogger(__name__)


def extract_features(
    path_or_signal: str | os.PathLike | AudioSpan | PerturbedAudio | PipedAudio | np.ndarray,
    config: FeatureConfig | None = None,
    sample_rate_hz: int | None = None,
    cmvn_stats: CmvnStats | None = None,
) -> np.ndarray:
    """MFCCs, deltas and CMVN for one file or signal.

    Parameters
    ----------
    path_or_signal : path, PipedAudio, AudioSpan, PerturbedAudio or ndarray of shape (n_samples,)
        An audio file or command, a stretch of one, either speed perturbed, or a mono signal in
        full-scale units.
    config : FeatureConfig, optional
        Defaults to ``FeatureConfig()``.
    sample_rate_hz : int, optional
        Rate of a signal (required for arrays, ignored for files). Audio at
        another rate than ``config.sample_rate_hz`` is resampled.
    cmvn_stats : CmvnStats, optional
        With ``config.cmvn == 'speaker'``: the speaker's statistics (see
        :func:`~gmmhmm.features.compute_cmvn_stats`). Without them the
        utterance is its own speaker (its own statistics, as ``'utterance'``).

    Returns
    -------
    ndarray of shape (n_frames, config.n_features)

    Raises
    ------
    AudioError
        The file is unreadable (see :func:`load_audio`) or the audio is
        shorter than one frame.
    InvalidInputError
        The signal is not a 1-D floating-point array (integer samples are refused), or holds NaN or infinity, or
        its dimension differs from ``cmvn_stats``'.
    InvalidParameterError
        Bad ``config``, ``sample_rate_hz`` or ``cmvn_stats``.
    """
    config = FeatureConfig() if config is None else config
    if not isinstance(config, FeatureConfig):
        raise InvalidParameterError(f"config must be a FeatureConfig, got {type(config).__name__}")
    if cmvn_stats is not None and (config.cmvn != "speaker" or not isinstance(cmvn_stats, CmvnStats)):
        raise InvalidParameterError("cmvn_stats must be a CmvnStats, applied with config.cmvn='speaker'; "
                                    f"got {type(cmvn_stats).__name__} with cmvn={config.cmvn!r}")
    # Inputs are checked here, once; the steps below run unchecked on arrays known good.
    if not isinstance(path_or_signal, (str, bytes, os.PathLike, AudioSpan, PerturbedAudio, PipedAudio)):  # a signal: ndarray or list
        if sample_rate_hz is None:
            raise InvalidParameterError("sample_rate_hz is required when passing a signal array")
        rate = _check_rate(sample_rate_hz)
        signal = _as_signal(path_or_signal)
        _warn_if_silent(signal, "signal")
        feats = _mfcc(resample(signal, rate, config.sample_rate_hz), config)
    else:
        name = audio_source_name(path_or_signal)
        signal, _ = load_source(path_or_signal, config.sample_rate_hz)  # finite float64, or AudioError
        _warn_if_silent(signal, name)
        try:
            feats = _mfcc(signal, config)
        except AudioError as exc:  # name the file, not just "signal"
            raise AudioError(f"{name}: {exc}") from exc
    if config.delta_order:
        feats = _add_deltas(feats, config.delta_order, config.delta_window)
    if config.cmvn == "speaker" and cmvn_stats is not None:
        return cmvn_stats._apply(feats, config.cmvn_variance)
    if config.cmvn != "none":
        feats = _cmvn(feats, variance=config.cmvn_variance)
    return feats


def _normalise_by_speaker(features: dict[str, np.ndarray], failures: list[tuple[str, str]], order: list[str],
                          config: FeatureConfig, speaker, cmvn_stats) -> tuple[dict, list]:
    """Speaker CMVN of a batch; a file without a speaker or statistics becomes a failure."""
    spk_of, bad = {}, []
    for path in features:
        try:
            spk_of[path] = speaker(path)
        except GmmhmmError as exc:
            bad.append((path, str(exc)))
    stats = cmvn_stats if cmvn_stats is not None else _compute(
        {p: features[p] for p in spk_of}, spk_of.__getitem__)
    out = {}
    for path, spk in spk_of.items():
        try:
            if spk not in stats:
                raise InvalidInputError(f"no CMVN statistics for speaker {spk!r}")
            out[path] = stats[spk]._apply(features[path], config.cmvn_variance)
        except GmmhmmError as exc:
            bad.append((path, str(exc)))
    for path, error in bad:
        logger.warning("skipping %s: %s", path, error)
    rank = {p: i for i, p in enumerate(order)}
    return out, sorted(failures + bad, key=lambda f: rank.get(f[0], -1))


def _warn_if_silent(signal: np.ndarray, name: str) -> None:
    # Digital silence is valid audio (its features are finite: log energies
    # are floored), but in a speech corpus it usually means a broken recording.
    if signal.size and not np.any(signal):
        logger.warning("%s: audio is digital silence (all samples zero)", name)


def _extract_one(args: tuple[str | AudioSpan | PerturbedAudio | PipedAudio, FeatureConfig]) -> tuple[str, np.ndarray | None, str | None]:
    source, config = args
    name = audio_source_name(source)
    try:
        # BLAS on one thread here and in workers alike, so serial and n_jobs give identical features
        with _threads.compute():
            return name, extract_features(source, config), None
    except GmmhmmError as exc:
        return name, None, str(exc)
    except MemoryError:  # one file's problem (say an absurd length), not the batch's
        return name, None, f"{name}: out of memory while processing this file"


def extract_many(
    paths: Sequence[str | os.PathLike | AudioSpan | PerturbedAudio | PipedAudio],
    config: FeatureConfig | None = None,
    n_jobs: int = 1,
    progress: bool = False,
    utt2spk: Utt2Spk | None = None,
    cmvn_stats: Mapping[Hashable, CmvnStats] | None = None,
    vtln_warps: Mapping[str, float] | None = None,
) -> tuple[dict[str, np.ndarray], list[tuple[str, str]]]:
    """Featurise many files, skipping (and reporting) the bad ones.

    Parameters
    ----------
    paths : sequence of paths, :class:`~gmmhmm.features.PipedAudio` (piped wav.scp commands),
        :class:`~gmmhmm.features.AudioSpan` (stretches of either, Kaldi ``segments``) or
        :class:`~gmmhmm.features.PerturbedAudio` (any of these, speed perturbed),
        keyed in the results by path or ``.name``
    config : FeatureConfig, optional
    n_jobs : int
        Worker processes; -1 uses every CPU.
    progress : bool
        Show a tqdm progress bar (if tqdm is installed).
    utt2spk : mapping or function ``os.fspath(path)`` (or ``span.name``) -> speaker, optional
        Speakers for ``config.cmvn == 'speaker'`` (Kaldi's utt2spk, keyed
        like the result). Without it every file is its own speaker, so a
        file's features do not depend on the other files of the call.
    cmvn_stats : mapping speaker -> CmvnStats, optional
        Stored statistics to apply with ``cmvn='speaker'`` (e.g. from
        :func:`~gmmhmm.features.load_cmvn_stats`); without them each
        speaker's statistics are computed from its files in this call.
        A file whose speaker has none is reported as a failure.
    vtln_warps : mapping ``os.fspath(path)`` (or ``span.name``) -> float, optional
        Each file's VTLN warp factor (Kaldi's ``--vtln-map``; e.g. its
        speaker's from :func:`gmmhmm.adapt.train_vtln`); files it misses keep
        ``config.vtln_warp``.

    Returns
    -------
    features : dict mapping ``str(path)`` to (n_frames, D) arrays, in input order
    failures : list of ``(path, error message)`` for files that raised a
        :class:`gmmhmm.errors.GmmhmmError` (each also logged as a warning)
    """
    config = FeatureConfig() if config is None else config
    if not isinstance(config, FeatureConfig):
        raise InvalidParameterError(f"config must be a FeatureConfig, got {type(config).__name__}")
    if cmvn_stats is not None and config.cmvn != "speaker":
        raise InvalidParameterError(f"cmvn_stats are applied with config.cmvn='speaker', not {config.cmvn!r}")
    speaker = _speaker_lookup(utt2spk)
    # Pooled statistics: extract without CMVN, then normalise per speaker.
    pooled = config.cmvn == "speaker" and (utt2spk is not None or cmvn_stats is not None)
    sources = [p if isinstance(p, (AudioSpan, PerturbedAudio, PipedAudio)) else os.fspath(p) for p in paths]
    names = [audio_source_name(p) for p in sources]
    n_jobs = resolve_n_jobs(n_jobs, len(names))
    job_config = config.replace(cmvn="none") if pooled else config
    warp_of = {} if vtln_warps is None else dict(vtln_warps)
    by_warp = {w: job_config.replace(vtln_warp=w) for w in set(warp_of.values()) - {job_config.vtln_warp}}
    jobs = [(p, by_warp.get(warp_of.get(n), job_config)) for p, n in zip(sources, names)]

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
    if pooled:
        features, failures = _normalise_by_speaker(features, failures, names, config, speaker, cmvn_stats)
    logger.info("featurised %d file(s), %d failure(s)", len(features), len(failures))
    return features, failures
