"""Reading audio files into float64 mono signals."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import AudioError
from .config import MAX_SAMPLE_RATE_HZ, _check_rate

logger = logging.getLogger(__name__)


def load_audio(
    path: str | os.PathLike, sample_rate_hz: int | None = None
) -> tuple[np.ndarray, int]:
    """Read an audio file as a mono float64 signal.

    Parameters
    ----------
    path : str or path-like
        Any file libsndfile reads (WAV, FLAC, OGG, NIST SPHERE, ...), integer
        or float samples.
    sample_rate_hz : int, optional
        Resample to this rate (soxr, high quality); None keeps the file's rate.

    Returns
    -------
    signal : ndarray of shape (n_samples,)
        Integer formats scaled to [-1, 1); channels averaged.
    sample_rate_hz : int

    Raises
    ------
    AudioError
        The file is missing, unreadable, empty, truncated or holds NaN/inf.
    InvalidParameterError
        ``sample_rate_hz`` is not an integer in [1, MAX_SAMPLE_RATE_HZ].
    """
    name = os.fspath(path)
    if sample_rate_hz is not None:
        sample_rate_hz = _check_rate(sample_rate_hz)
    if not Path(name).is_file():
        raise AudioError(f"{name}: no such audio file")
    try:
        with sf.SoundFile(name) as f:
            declared = f.frames
            native_rate = int(f.samplerate)
            data = f.read(dtype="float64", always_2d=True)
    except Exception as exc:  # libsndfile reports every format problem as one of several types
        raise AudioError(f"{name}: unreadable audio file ({exc})") from exc
    if data.shape[0] == 0:
        raise AudioError(f"{name}: audio file holds no samples")
    if not 0 < native_rate <= MAX_SAMPLE_RATE_HZ:
        raise AudioError(f"{name}: implausible sample rate {native_rate} Hz in the file header "
                         f"(at most {MAX_SAMPLE_RATE_HZ} Hz is supported)")
    if data.shape[0] < declared or _wav_data_missing(name) or _sphere_data_missing(name):
        raise AudioError(f"{name}: truncated audio file (fewer samples than its header declares)")
    if not np.isfinite(data).all():
        raise AudioError(f"{name}: audio contains NaN or infinity")
    signal = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    signal = np.ascontiguousarray(signal)
    if sample_rate_hz is not None and sample_rate_hz != native_rate:
        signal = resample(signal, native_rate, sample_rate_hz)
    return signal, sample_rate_hz or native_rate


def resample(signal: np.ndarray, from_rate_hz: int, to_rate_hz: int) -> np.ndarray:
    """Band-limited resampling with soxr 'HQ' (what librosa's default ``soxr_hq`` calls)."""
    if from_rate_hz == to_rate_hz:
        return signal
    import soxr  # a librosa dependency; imported here so plain loading stays light

    logger.debug("resampling %d Hz -> %d Hz", from_rate_hz, to_rate_hz)
    out = soxr.resample(np.asarray(signal, dtype=np.float64), from_rate_hz, to_rate_hz, quality="HQ")
    return np.ascontiguousarray(out, dtype=np.float64)


def _wav_data_missing(name: str) -> bool:
    """True if a RIFF/WAVE file's data chunk is shorter than its header says.

    libsndfile silently shortens such files to what is there, so a
    half-copied recording would otherwise pass as a short one.
    """
    size = os.path.getsize(name)
    with open(name, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return False
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk = f.read(8)
            chunk_size = int.from_bytes(chunk[4:8], "little")
            if chunk[:4] == b"data":
                # 0 and 0xFFFFFFFF mark streamed / RF64 files of unknown length.
                return chunk_size not in (0, 0xFFFFFFFF) and pos + 8 + chunk_size > size
            pos += 8 + chunk_size + (chunk_size & 1)
    return False


def _sphere_data_missing(name: str) -> bool:
    """True if a NIST SPHERE file holds fewer samples than its header's ``sample_count``.

    libsndfile counts the samples present, so a cut-off .sph would pass as a short one.
    """
    with open(name, "rb") as f:
        head = f.read(1024)
    if not head.startswith(b"NIST_1A\n"):
        return False
    fields = {}
    lines = head.split(b"\n")
    for line in lines[2:]:  # NIST_1A, header size, then "name -type value" lines up to end_head
        parts = line.split()
        if not parts or parts[0] == b"end_head":
            break
        if len(parts) >= 3 and parts[1] == b"-i":
            fields[parts[0]] = parts[2]
    try:
        header_bytes = int(lines[1])
        n = int(fields[b"sample_count"]) * int(fields.get(b"channel_count", 1)) * int(fields.get(b"sample_n_bytes", 2))
    except (ValueError, KeyError, IndexError):
        return False  # no declared length to check against
    return header_bytes + n > os.path.getsize(name)
