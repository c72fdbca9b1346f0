"""Reading audio files and piped wav.scp commands (whole, or a stretch of one) into float64 mono signals."""

from __future__ import annotations

import io
import logging
import math
import os
import subprocess
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf

from ..data.datadir import AudioSpan, PerturbedAudio, PipedAudio, Sph2pipe, audio_source_name, check_span, check_speed
from ..errors import AudioError
from .config import MAX_SAMPLE_RATE_HZ, _check_rate

logger = logging.getLogger(__name__)

# A header claiming fewer samples per second than this is corrupt (no speech
# recording is made below 1 kHz), and resampling it would multiply its length.
MIN_FILE_SAMPLE_RATE_HZ = 1000
# Longest signal resampling may produce: 2**28 samples (2 GiB as float64,
# 4.7 hours at 16 kHz); longer recordings must be split first.
MAX_RESAMPLED_SAMPLES = 2**28


#: A segment may end this much after the end of its recording and is then cut
#: at the end (Kaldi ``extract-segments --max-overshoot``); beyond it, an error.
MAX_SEGMENT_OVERSHOOT_S = 0.5


def load_audio(
    path: str | bytes | os.PathLike, sample_rate_hz: int | None = None,
    start_s: float = 0.0, end_s: float | None = None,
) -> tuple[np.ndarray, int]:
    """Read an audio file, or the stretch ``[start_s, end_s)`` of it, as a mono float64 signal.

    Parameters
    ----------
    path : str, bytes or path-like
        Any file libsndfile reads (WAV, FLAC, OGG, NIST SPHERE, ...), integer
        or float samples.
    sample_rate_hz : int, optional
        Resample to this rate (soxr, high quality); None keeps the file's rate.
    start_s, end_s : float
        The stretch to read, in seconds of the recording (``end_s=None``: to
        its end). An end up to :data:`MAX_SEGMENT_OVERSHOOT_S` after the end
        of the recording is cut there, as Kaldi's ``extract-segments`` does.

    Returns
    -------
    signal : ndarray of shape (n_samples,)
        Integer formats scaled to [-1, 1); channels averaged.
    sample_rate_hz : int

    Raises
    ------
    AudioError
        The file is missing, unreadable, empty, truncated or holds NaN/inf,
        or the stretch lies outside the recording.
    InvalidParameterError
        ``sample_rate_hz`` is not an integer in [1, MAX_SAMPLE_RATE_HZ].
    """
    name = os.fsdecode(path)  # bytes paths too, as str (non-UTF-8 bytes kept as surrogates)
    if sample_rate_hz is not None:
        sample_rate_hz = _check_rate(sample_rate_hz)
    data, native_rate = _read_channels(name, start_s, end_s)
    return _to_rate(name, _mono(data), native_rate, sample_rate_hz), sample_rate_hz or native_rate


def _mono(data: np.ndarray) -> np.ndarray:
    """The mean of the channels of ``data`` (samples, channels), contiguous."""
    return np.ascontiguousarray(data.mean(axis=1) if data.shape[1] > 1 else data[:, 0])


def _read_channels(name: str, start_s: float = 0.0, end_s: float | None = None,
                   stream: bytes | None = None) -> tuple[np.ndarray, int]:
    """``(samples of shape (n, channels), rate)`` of file ``name``, or of the audio bytes ``stream``
    (a command's output, ``name`` naming it), checked as :func:`load_audio` says."""
    whole = start_s == 0 and end_s is None
    if not whole:
        check_span(name, start_s, math.inf if end_s is None else end_s)
    if stream is None and not Path(name).is_file():
        raise AudioError(f"{name}: no such audio file")
    try:
        # bytes: libsndfile opens names that are not UTF-8 (argv holds them as surrogates)
        with sf.SoundFile(os.fsencode(name) if stream is None else io.BytesIO(stream)) as f:
            declared = f.frames
            native_rate = int(f.samplerate)
            first, count = 0, -1
            if not whole:
                first, count = _span_frames(name, declared, native_rate, start_s, end_s)
                f.seek(first)
            data = f.read(count, dtype="float64", always_2d=True)
    except AudioError:  # the stretch lies outside the recording: already says so
        raise
    except Exception as exc:  # libsndfile reports every format problem as one of several types
        if stream is not None:
            raise AudioError(f"{name} is not readable audio ({exc})") from exc
        compression = _sphere_compression(name)
        if compression:
            raise AudioError(f"{name}: {compression}-compressed NIST SPHERE audio is not supported; "
                             "decompress it first (e.g. sph2pipe -f wav in.sph out.wav)") from exc
        reason = str(exc).replace(f"Error opening {os.fsencode(name)!r}: ", "").replace(
            f"Error opening {name!r}: ", "")  # libsndfile repeats the path
        raise AudioError(f"{name}: unreadable audio file ({reason})") from exc
    if data.shape[0] == 0:
        raise AudioError(f"{name}: audio file holds no samples")
    if not MIN_FILE_SAMPLE_RATE_HZ <= native_rate <= MAX_SAMPLE_RATE_HZ:
        raise AudioError(f"{name}: implausible sample rate {native_rate} Hz in the file header "
                         f"(from {MIN_FILE_SAMPLE_RATE_HZ} to {MAX_SAMPLE_RATE_HZ} Hz is supported)")
    if data.shape[0] < (declared if whole else count) or (
            stream is None and (_chunk_data_missing(name) or _sphere_data_missing(name))):
        raise AudioError(f"{name}: truncated audio file (fewer samples than its header declares)")
    if not np.isfinite(data).all():
        raise AudioError(f"{name}: audio contains NaN or infinity")
    return data, native_rate


def _to_rate(name: str, signal: np.ndarray, rate_hz: float, sample_rate_hz: int | None) -> np.ndarray:
    """``signal`` (samples at ``rate_hz``) resampled to ``sample_rate_hz`` (None: as it is)."""
    try:
        return resample(signal, rate_hz, sample_rate_hz or rate_hz)
    except AudioError as exc:
        raise AudioError(f"{name}: {exc}") from exc


def load_source(source: "str | os.PathLike | PipedAudio | AudioSpan | PerturbedAudio",
                sample_rate_hz: int | None = None) -> tuple[np.ndarray, int]:
    """:func:`load_audio` of what feature extraction reads: a path, a :class:`PipedAudio` (its
    command's output, :func:`load_piped`), an :class:`AudioSpan` of either or a
    :class:`PerturbedAudio` of any (its source read, then played ``speed`` times faster, see
    :func:`speed_perturb`). ``sample_rate_hz=None`` keeps the file's rate."""
    if sample_rate_hz is not None:
        sample_rate_hz = _check_rate(sample_rate_hz)
    speed = 1.0
    if isinstance(source, PerturbedAudio):
        source, speed = source.source, source.speed
    span = (source.start_s, source.end_s) if isinstance(source, AudioSpan) else (0.0, None)
    origin = source.path if isinstance(source, AudioSpan) else source
    if isinstance(origin, PipedAudio):
        signal, rate = load_piped(origin)
        if span != (0.0, None):  # a segment of the command's output
            first, count = _span_frames(f"{origin.where}: {origin.name}" if origin.where else origin.name,
                                        len(signal), rate, *span)
            signal = signal[first:first + count]
    else:
        signal, rate = load_audio(origin, None, *span)
    # one resampling does both: sox's speed (samples read at speed x the rate) and the target rate
    target = sample_rate_hz or rate
    return _to_rate(audio_source_name(origin), signal, rate * speed if speed != 1.0 else rate, target), target


#: How much of a failed command's standard error its error message quotes (the end, where the reason is).
STDERR_TAIL_CHARS = 500


def load_piped(piped: PipedAudio) -> tuple[np.ndarray, int]:
    """The mono signal and rate of what a piped wav.scp command writes, as Kaldi reads it.

    A ``sph2pipe`` call (:attr:`PipedAudio.sph2pipe`) on an uncompressed SPHERE file is read from
    the file, nothing run: its ``-c`` channel (ignored for a 1-channel file, as sph2pipe does; none:
    the channels' mean, as :func:`load_audio`) and its ``-t``/``-s`` range (sph2pipe's rounding).
    Any other command, and sph2pipe on a shorten-compressed file, is run through ``/bin/sh`` in the
    current directory (Kaldi's ``popen``); its standard output must be audio (WAV, FLAC, SPHERE...).

    Raises
    ------
    AudioError
        Prefixed the command's ``where`` (``wav.scp:3``): the file is missing or unreadable, the
        command fails (its exit status and the end of its standard error quoted) or writes no
        readable audio, or the range lies outside the recording.
    """
    where = f"{piped.where}: " if piped.where else ""
    call = piped.sph2pipe
    if call is not None and not _sphere_compression(call.path):
        try:
            data, rate = _read_channels(call.path)
        except AudioError as exc:
            raise AudioError(f"{where}{exc}") from exc
        if call.channel is not None and data.shape[1] > 1:
            if call.channel >= data.shape[1]:
                raise AudioError(f"{where}{call.path}: no channel {call.channel + 1} in a {data.shape[1]}-channel "
                                 f"file ({piped.command!r})")
            data = data[:, [call.channel]]
        first, last = _sph2pipe_range(f"{where}{call.path}", call, len(data), rate)
        data = data[first:last]
    else:
        try:
            run = subprocess.run(piped.command[:-1], shell=True, stdin=subprocess.DEVNULL, capture_output=True)
        except OSError as exc:
            raise AudioError(f"{where}cannot run command {piped.command!r}: {exc}") from exc
        tail = run.stderr.decode("utf-8", "replace").strip()[-STDERR_TAIL_CHARS:]
        if run.returncode != 0:
            status = f"killed by signal {-run.returncode}" if run.returncode < 0 else f"exit status {run.returncode}"
            raise AudioError(f"{where}command {piped.command!r} failed ({status})" + (f": {tail}" if tail else ""))
        try:
            data, rate = _read_channels(f"{where}output of {piped.command!r}", stream=run.stdout)
        except AudioError as exc:
            raise AudioError(f"{exc}" + (f"; its standard error: {tail}" if tail else "")) from exc
    return _mono(data), rate


def _sph2pipe_range(name: str, call: Sph2pipe, n_frames: int, rate: int) -> tuple[int, int]:
    """``(first, last)`` sample of what sph2pipe's ``-t``/``-s`` ranges write (its own arithmetic:
    seconds times the rate, truncated; an end of 0 or past the recording: its end)."""
    total_s = n_frames / rate
    if call.begin > (n_frames if call.in_samples else total_s):
        raise AudioError(f"{name}: sph2pipe start point {call.begin:g} is after the end of the recording "
                         f"({total_s:.3f} s long)")
    first = int(call.begin) if call.in_samples else int(call.begin * rate)
    past_end = call.end == 0 or call.end > n_frames if call.in_samples else call.end == 0 or call.end >= total_s
    last = n_frames if past_end else int(call.end) if call.in_samples else int(call.end * rate)
    if first >= last:
        raise AudioError(f"{name}: sph2pipe range {call.begin:g}:{call.end:g} holds no samples "
                         f"of the recording ({total_s:.3f} s long)")
    return first, last


def speed_perturb(signal: np.ndarray, factor: float) -> np.ndarray:
    """Play ``signal`` ``factor`` times faster, as sox's ``speed`` effect (Kaldi's speed perturbation).

    The samples are taken as recorded at ``factor`` times their rate and resampled back (soxr,
    :func:`resample`): the signal becomes ``1 / factor`` times as long (``round(n / factor)``
    samples) and every frequency is multiplied by ``factor``, pitch and formants alike.

    Raises
    ------
    InvalidParameterError
        ``factor`` is not a finite number in [0.5, 2] (:data:`gmmhmm.data.datadir.MIN_SPEED`,
        ``MAX_SPEED``).
    InvalidInputError
        ``signal`` is not a finite 1-D floating-point array (integer samples are refused).
    """
    from .mfcc import _as_signal

    factor = check_speed(factor)
    signal = _as_signal(signal)
    return signal if factor == 1.0 else resample(signal, factor, 1.0)  # only the ratio of the rates matters


def _span_frames(name: str, n_frames: int, rate: int, start_s: float, end_s: float | None) -> tuple[int, int]:
    """``(first sample, number of samples)`` of ``[start_s, end_s)`` in a recording of ``n_frames`` samples."""
    length_s = n_frames / rate
    if end_s is not None and end_s > length_s + MAX_SEGMENT_OVERSHOOT_S:
        raise AudioError(f"{name}: segment {start_s:.3f}-{end_s:.3f} s ends after the recording "
                         f"({length_s:.3f} s long)")
    first = int(round(start_s * rate))
    last = n_frames if end_s is None else min(n_frames, int(round(end_s * rate)))
    if first >= last:
        raise AudioError(f"{name}: segment {start_s:.3f}-{end_s if end_s is not None else length_s:.3f} s "
                         f"holds no samples of the recording ({length_s:.3f} s long)")
    return first, last - first


def resample(signal: np.ndarray, from_rate_hz: float, to_rate_hz: float) -> np.ndarray:
    """Band-limited resampling with soxr 'HQ' (what librosa's default ``soxr_hq`` calls) to
    ``round(n * to_rate_hz / from_rate_hz)`` samples; rates need not be integers."""
    if from_rate_hz == to_rate_hz:
        return signal
    n_out = math.ceil(len(signal) * to_rate_hz / from_rate_hz)
    if n_out > MAX_RESAMPLED_SAMPLES:
        raise AudioError(f"resampling {len(signal)} samples from {from_rate_hz} Hz to {to_rate_hz} Hz would give "
                         f"{n_out} samples, more than the {MAX_RESAMPLED_SAMPLES} allowed; split the recording")
    import soxr  # a librosa dependency; imported here so plain loading stays light

    logger.debug("resampling %d Hz -> %d Hz", from_rate_hz, to_rate_hz)
    out = soxr.resample(np.asarray(signal, dtype=np.float64), from_rate_hz, to_rate_hz, quality="HQ")
    return np.ascontiguousarray(out, dtype=np.float64)


class _Container(NamedTuple):
    """How a chunked audio container lays out its header and chunks."""

    order: str  # byte order of the sizes
    forms: tuple[bytes, ...]  # form types after the file header's size
    data_id: bytes  # the chunk holding the samples
    id_bytes: int = 4  # width of the magic, form and chunk ids (W64: 16-byte GUIDs)
    size_bytes: int = 4
    size_counts_header: bool = False  # W64 chunk sizes include their own id and size
    align: int = 2


_W64_GUID = bytes.fromhex("f3acd3118cd100c04f8edb8a")  # the tail W64's own ids share
# magic -> layout
_CHUNKED_FORMATS = {
    b"RIFF": _Container("little", (b"WAVE",), b"data"),
    b"RF64": _Container("little", (b"WAVE",), b"data"),  # sizes past 4 GiB in its ds64 chunk
    b"FORM": _Container("big", (b"AIFF", b"AIFC"), b"SSND"),
    bytes.fromhex("726966662e91cf11a5d628db04c10000"):  # Sony Wave64
        _Container("little", (b"wave" + _W64_GUID,), b"data" + _W64_GUID, 16, 8, True, 8),
}


def _chunk_data_missing(name: str) -> bool:
    """True if a WAV, RF64, W64 or AIFF file's sample chunk is shorter than its header says.

    libsndfile silently shortens such files to what is there, so a
    half-copied recording would otherwise pass as a short one.
    """
    size = os.path.getsize(name)
    with open(name, "rb") as f:
        head = f.read(40)
        layout = next((c for magic, c in _CHUNKED_FORMATS.items() if head.startswith(magic)), None)
        if layout is None:
            return False
        pos = layout.id_bytes + layout.size_bytes  # after the magic and the file size: the form
        if head[pos:pos + layout.id_bytes] not in layout.forms:
            return False
        pos += layout.id_bytes
        chunk_head = layout.id_bytes + layout.size_bytes
        ds64_data_size = None
        while pos + chunk_head <= size:
            f.seek(pos)
            chunk = f.read(chunk_head)
            chunk_id, chunk_size = chunk[:layout.id_bytes], int.from_bytes(chunk[layout.id_bytes:], layout.order)
            body = chunk_size - chunk_head if layout.size_counts_header else chunk_size
            if chunk_id == b"ds64":  # RF64: the 64-bit sizes, the data chunk's second
                ds64_data_size = int.from_bytes(f.read(16)[8:16], "little")
            if chunk_id == layout.data_id:
                if chunk_size == 0xFFFFFFFF and ds64_data_size is not None:
                    chunk_size = body = ds64_data_size
                # 0 and 0xFFFFFFFF (without ds64) mark streamed files of unknown length.
                return chunk_size not in (0, 0xFFFFFFFF) and body >= 0 and pos + chunk_head + body > size
            if body < 0:  # a corrupt size: libsndfile judges the file
                return False
            pos += chunk_head + body + (-body) % layout.align
    return False


def _sphere_header(name: str) -> tuple[int, dict[bytes, bytes]] | None:
    """``(header bytes, {field: value})`` of a NIST SPHERE file, None for other files.

    Fields of every type are kept as their value token: writers differ
    (libsndfile writes ``sample_n_bytes -s1 1`` where others write ``-i 1``).
    """
    with open(name, "rb") as f:
        head = f.read(1024)
    if not head.startswith(b"NIST_1A\n"):
        return None
    fields = {}
    lines = head.split(b"\n")
    for line in lines[2:]:  # NIST_1A, header size, then "name -type value" lines up to end_head
        parts = line.split()
        if not parts or parts[0] == b"end_head":
            break
        if len(parts) >= 3 and parts[1][:2] in (b"-i", b"-r", b"-s"):
            fields[parts[0]] = parts[2]
    try:
        return int(lines[1]), fields
    except (ValueError, IndexError):
        return None


def _sphere_data_missing(name: str) -> bool:
    """True if a NIST SPHERE file holds fewer samples than its header's ``sample_count``.

    libsndfile counts the samples present, so a cut-off .sph would pass as a short one.
    """
    header = _sphere_header(name)
    if header is None:
        return False
    header_bytes, fields = header
    # without sample_n_bytes libsndfile reads 16-bit PCM, or 1-byte u-law / A-law
    one_byte = any(c in fields.get(b"sample_coding", b"").lower() for c in (b"ulaw", b"mu-law", b"alaw"))
    try:
        n = (int(fields[b"sample_count"]) * int(fields.get(b"channel_count", 1))
             * int(fields.get(b"sample_n_bytes", 1 if one_byte else 2)))
    except (ValueError, KeyError):
        return False  # no declared length to check against
    return header_bytes + n > os.path.getsize(name)


def _sphere_compression(name: str) -> str | None:
    """The compression of a NIST SPHERE file's samples (e.g. shorten), which libsndfile cannot read."""
    try:
        header = _sphere_header(name)
    except OSError:
        return None
    coding = header[1].get(b"sample_coding", b"") if header else b""
    for method in (b"shorten", b"wavpack", b"shortpack"):
        if method in coding.lower():
            return method.decode()
    return None
