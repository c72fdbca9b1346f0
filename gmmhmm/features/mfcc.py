"""MFCC analysis as Kaldi and HTK define it, vectorised over frames.

Per frame, in Kaldi's order: dither, DC removal, raw log energy,
pre-emphasis, window, zero-padded FFT power (Kaldi) or magnitude (HTK)
spectrum, triangular mel filterbank (triangles in the mel domain,
mel = 1127 ln(1 + f / 700)), floored log, DCT-II (orthonormal as in Kaldi,
or HTK's sqrt(2/N) scaling of every coefficient), lifter, optional
log-energy in place of c0. Which steps run is set by
:class:`~gmmhmm.features.FeatureConfig` (``FeatureConfig.htk()`` for HCopy's).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np

from .._validation import check_positive_int
from ..errors import AudioError, InvalidInputError, InvalidParameterError, NonFiniteInputError
from .config import FeatureConfig

# Floor of mel energies and frame energies before the log. Signals are in
# full-scale units, where int16 quantisation noise is ~1e-8 per FFT bin, so
# only digital silence reaches the floor.
LOG_FLOOR = 1e-10


def hz_to_mel(freq_hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: ``1127 ln(1 + f / 700)``."""
    return 1127.0 * np.log1p(np.asarray(freq_hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * np.expm1(np.asarray(mel, dtype=np.float64) / 1127.0)


def mel_band_edges_hz(n_mels: int, low_freq_hz: float, high_freq_hz: float) -> np.ndarray:
    """(n_mels + 2,) filter edges in Hz: band m spans edges m..m+2, peaks at m+1."""
    mels = np.linspace(hz_to_mel(low_freq_hz), hz_to_mel(high_freq_hz), n_mels + 2)
    return mel_to_hz(mels)


def vtln_warp_freq(freq_hz: np.ndarray | float, warp: float, vtln_low_hz: float, vtln_high_hz: float,
                   low_freq_hz: float, high_freq_hz: float) -> np.ndarray:
    """Kaldi's piecewise-linear VTLN frequency warp (``MelBanks::VtlnWarpFreq``).

    Frequencies inside ``[low_freq_hz, high_freq_hz]`` are scaled by
    ``1 / warp`` between two inflection points, ``l = vtln_low_hz max(1, warp)``
    and ``h = vtln_high_hz min(1, warp)``, and joined linearly to the fixed
    ends ``low_freq_hz`` and ``high_freq_hz``, so the warped axis still spans
    the whole band. Frequencies outside the band are returned unchanged.
    ``warp > 1`` moves the filters down in frequency.
    """
    f = np.asarray(freq_hz, dtype=np.float64)
    if not warp > 0:
        raise InvalidParameterError(f"VTLN warp must be > 0, got {warp!r}")
    if not low_freq_hz < vtln_low_hz < vtln_high_hz < high_freq_hz:
        raise InvalidParameterError(
            f"need low_freq_hz ({low_freq_hz}) < vtln_low_hz ({vtln_low_hz}) < vtln_high_hz "
            f"({vtln_high_hz}) < high_freq_hz ({high_freq_hz})")
    scale = 1.0 / warp
    low, high = vtln_low_hz * max(1.0, warp), vtln_high_hz * min(1.0, warp)
    below = low_freq_hz + (scale * low - low_freq_hz) / (low - low_freq_hz) * (f - low_freq_hz)
    above = high_freq_hz + (scale * high - high_freq_hz) / (high - high_freq_hz) * (f - high_freq_hz)
    warped = np.where(f < low, below, np.where(f < high, scale * f, above))
    return np.where((f < low_freq_hz) | (f > high_freq_hz), f, warped)


def mel_filterbank(
    sample_rate_hz: int, n_fft: int, n_mels: int, low_freq_hz: float, high_freq_hz: float,
    vtln_warp: float = 1.0, vtln_low_hz: float = 100.0, vtln_high_hz: float | None = None,
) -> np.ndarray:
    """Triangular mel filters, shape (n_mels, n_fft // 2 + 1).

    Triangles are linear in mel (as Kaldi builds them), peak 1, and zero
    outside ``[low_freq_hz, high_freq_hz]``. With ``vtln_warp != 1`` the
    filter edges are first moved by :func:`vtln_warp_freq` (inflection points
    ``vtln_low_hz`` and ``vtln_high_hz``, default 500 Hz below
    ``high_freq_hz``), as Kaldi's ``--vtln-warp`` does.

    Raises
    ------
    InvalidParameterError
        A filter covers no FFT bin (too many filters for the FFT's resolution), as in Kaldi.
    """
    edges, bin_mel = _filter_edges_and_bins(sample_rate_hz, n_fft, n_mels, low_freq_hz, high_freq_hz,
                                            vtln_warp, vtln_low_hz, vtln_high_hz)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bin_mel - left) / (centre - left)
    falling = (right - bin_mel) / (right - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


def _filter_edges_and_bins(
    sample_rate_hz: int, n_fft: int, n_mels: int, low_freq_hz: float, high_freq_hz: float,
    vtln_warp: float = 1.0, vtln_low_hz: float = 100.0, vtln_high_hz: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Filter edges (n_mels + 2,) and FFT bin centres (n_fft // 2 + 1,) in mel, checked as
    :func:`mel_filterbank` says; small, so :class:`FeatureConfig` checks its settings with it."""
    n_fft = check_positive_int(n_fft, "n_fft", minimum=2)
    n_mels = check_positive_int(n_mels, "n_mels")
    if not 0 <= low_freq_hz < high_freq_hz <= sample_rate_hz / 2:
        raise InvalidParameterError(
            f"need 0 <= low_freq_hz ({low_freq_hz}) < high_freq_hz ({high_freq_hz}) <= Nyquist"
        )
    edges_hz = mel_band_edges_hz(n_mels, low_freq_hz, high_freq_hz)
    if vtln_warp != 1.0:
        high = high_freq_hz - 500.0 if vtln_high_hz is None else vtln_high_hz
        edges_hz = vtln_warp_freq(edges_hz, vtln_warp, vtln_low_hz, high, low_freq_hz, high_freq_hz)
    edges = hz_to_mel(edges_hz)
    bin_mel = hz_to_mel(np.arange(n_fft // 2 + 1) * sample_rate_hz / n_fft)
    # A filter weighs the bins strictly inside its edges; one with none would output the log floor
    # on every frame. Kaldi's MelBanks refuses it ("--num-mel-bins too large"): so do we.
    inside = np.searchsorted(bin_mel, edges[2:], "left") - np.searchsorted(bin_mel, edges[:-2], "right")
    empty = np.flatnonzero(inside <= 0)
    if empty.size:
        warp = f" and VTLN warp {vtln_warp:g}" if vtln_warp != 1.0 else ""
        raise InvalidParameterError(
            f"n_mels={n_mels} is too many mel filters at {sample_rate_hz} Hz with a {n_fft}-point FFT "
            f"(bins {sample_rate_hz / n_fft:g} Hz apart){warp}: {empty.size} filter(s) (first: {empty[0]}) "
            "cover no FFT bin; use fewer filters, a longer window or a wider band")
    return edges, bin_mel


def window_function(name: str, length: int) -> np.ndarray:
    """Symmetric analysis window as HTK/Kaldi define it."""
    length = check_positive_int(length, "window length", minimum=2)  # 1 would divide 0 by 0
    phase = 2 * np.pi * np.arange(length) / (length - 1)
    if name == "hamming":
        return 0.54 - 0.46 * np.cos(phase)
    hann = 0.5 - 0.5 * np.cos(phase)
    if name == "hann":
        return hann
    if name == "povey":
        return hann**0.85
    raise InvalidParameterError(f"unknown window {name!r}")


def frame_signal(signal: np.ndarray, frame_length: int, frame_shift: int, snip_edges: bool = True) -> np.ndarray:
    """Cut a 1-D signal into overlapping frames, shape (n_frames, frame_length).

    ``snip_edges=True``: frame t covers samples ``[t S, t S + L)`` and only
    frames inside the signal are kept (HTK; Kaldi's default).
    ``snip_edges=False``: ``(n + S // 2) // S`` frames, frame t centred near
    ``t S + S / 2``, the signal mirrored past both ends (Kaldi's
    ``--snip-edges=false``).
    """
    signal = np.asarray(signal)
    if signal.ndim != 1:
        raise InvalidInputError(f"signal must be 1-D, got shape {signal.shape}")
    frame_length = check_positive_int(frame_length, "frame_length")
    frame_shift = check_positive_int(frame_shift, "frame_shift")
    n_frames = _n_frames(signal.shape[0], frame_length, frame_shift, snip_edges)
    return _frames(signal, frame_length, frame_shift, snip_edges, 0, n_frames)


def _n_frames(n: int, frame_length: int, frame_shift: int, snip_edges: bool) -> int:
    if snip_edges:
        return 1 + (n - frame_length) // frame_shift if n >= frame_length else 0
    return (n + frame_shift // 2) // frame_shift


def _frames(signal: np.ndarray, frame_length: int, frame_shift: int, snip_edges: bool,
            first: int, stop: int) -> np.ndarray:
    """Frames ``first:stop`` of :func:`frame_signal` (a copy)."""
    n = signal.shape[0]
    starts = np.arange(first, stop) * frame_shift
    if not snip_edges:
        starts += frame_shift // 2 - frame_length // 2
    idx = starts[:, None] + np.arange(frame_length)
    if not snip_edges and stop > first:
        idx = np.mod(idx, 2 * n)  # symmetric reflection with period 2n
        idx = np.where(idx >= n, 2 * n - 1 - idx, idx)
    return signal[idx]


@lru_cache(maxsize=32)
def _tables(config: FeatureConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Window, filterbank (transposed) and lifted DCT matrix for one config."""
    window = window_function(config.window, config.frame_length)
    fbank_t = np.ascontiguousarray(
        mel_filterbank(config.sample_rate_hz, config.n_fft, config.n_mels,
                       config.low_freq_hz, config.high_freq_effective_hz,
                       config.vtln_warp, config.vtln_low_hz, config.vtln_high_effective_hz).T
    )
    first = 1 if config.energy == "none" else 0
    k = np.arange(first, first + config.n_ceps)[:, None]
    m = config.n_mels
    dct = np.sqrt(2.0 / m) * np.cos(np.pi * k * (2 * np.arange(m) + 1) / (2 * m))  # orthonormal DCT-II rows
    if first == 0 and config.dct_norm == "orthonormal":
        dct[0] /= np.sqrt(2.0)  # HTK's FBank2C0 keeps sqrt(2/N) for c0 too
    if config.cep_lifter > 0:
        lift = config.cep_lifter
        dct *= (1.0 + 0.5 * lift * np.sin(np.pi * k / lift))
    for a in (window, fbank_t, dct):
        a.flags.writeable = False
    return window, fbank_t, np.ascontiguousarray(dct.T)


def _as_signal(signal: object) -> np.ndarray:
    """``signal`` as a finite 1-D float64 array: the checks of every public signal entry point."""
    try:
        x = np.asarray(signal)
    except (TypeError, ValueError) as exc:  # ragged lists and the like
        raise InvalidInputError(f"signal cannot be converted to an array: {exc}") from exc
    if x.ndim != 1 or x.dtype.kind not in "fiu":
        raise InvalidInputError(f"signal must be a 1-D real array, got shape {x.shape} dtype {x.dtype}")
    if x.dtype.kind in "iu":  # as librosa: raw integer samples would be taken as full-scale values
        raise InvalidInputError(f"signal must be floating-point samples in full-scale units, got {x.dtype}: "
                                "divide int16 samples by 32768 (soundfile.read gives such floats)")
    x = np.asarray(x, dtype=np.float64)
    if not np.isfinite(x).all():
        raise NonFiniteInputError("signal contains NaN or infinity")
    return x


def _check_signal(signal: np.ndarray, sample_rate_hz: int, config: FeatureConfig | None) -> tuple[np.ndarray, FeatureConfig]:
    if config is None:
        config = FeatureConfig(sample_rate_hz=int(sample_rate_hz))
    if not isinstance(config, FeatureConfig):
        raise InvalidParameterError(f"config must be a FeatureConfig, got {type(config).__name__}")
    if sample_rate_hz != config.sample_rate_hz:
        raise InvalidParameterError(
            f"signal is at {sample_rate_hz} Hz but config.sample_rate_hz is {config.sample_rate_hz}; "
            "resample it first (extract_features does)"
        )
    return _as_signal(signal), config


def _frame_count(x: np.ndarray, config: FeatureConfig) -> int:
    """Frames of ``x`` under ``config``; AudioError if not even one fits."""
    shortest = config.frame_length if config.snip_edges else (config.frame_shift + 1) // 2
    if x.shape[0] < shortest:
        raise AudioError(
            f"signal has {x.shape[0]} samples, too short for one {config.window_ms:g} ms frame "
            f"({shortest} samples at {config.sample_rate_hz} Hz)"
        )
    return _n_frames(x.shape[0], config.frame_length, config.frame_shift, config.snip_edges)


# Samples (frames times FFT size) analysed at once: bounds the working memory of long
# recordings and long windows (~8 MB a block: 2048 frames at 16 kHz) whatever their length.
_BLOCK_SAMPLES = 1 << 20


def _dither_rng(x: np.ndarray, seed: int) -> np.random.Generator:
    """The dither noise generator of signal ``x``: seeded by ``seed`` and a hash of the samples.

    Each file gets its own noise (one seed for all would add the same noise
    to every file), reproducibly, and independent of the other files of a batch.
    """
    # the array's own buffer: .tobytes() would copy the whole signal
    digest = hashlib.blake2b(memoryview(np.ascontiguousarray(x)).cast("B"), digest_size=8).digest()
    return np.random.default_rng([seed & 0xFFFFFFFFFFFFFFFF, int.from_bytes(digest, "little")])


def _power_and_energy(x: np.ndarray, config: FeatureConfig, n_frames: int, energy: bool):
    """Yield ``(first, spectra (m, n_fft/2+1), raw log frame energies (m,) or None)`` per block.

    The spectra are power or magnitude spectra (``config.spectrum``); the
    energies are computed only if ``energy`` is true.
    """
    window, _, _ = _tables(config)
    L, S, snip = config.frame_length, config.frame_shift, config.snip_edges
    # One generator drawn block after block gives the same numbers as one draw.
    rng = _dither_rng(x, config.dither_seed) if config.dither > 0 else None
    block = max(1, _BLOCK_SAMPLES // config.n_fft)
    for first in range(0, n_frames, block):
        frames = _frames(x, L, S, snip, first, min(first + block, n_frames))
        if rng is not None:
            frames += config.dither * rng.standard_normal(frames.shape)
        if config.remove_dc:
            frames -= frames.mean(axis=1, keepdims=True)
        log_energy = np.log(np.maximum(np.einsum("ij,ij->i", frames, frames), LOG_FLOOR)) if energy else None
        if config.preemphasis > 0:
            # Per frame, first sample against itself, as HTK and Kaldi do.
            frames[:, 1:] -= config.preemphasis * frames[:, :-1].copy()
            frames[:, 0] *= 1.0 - config.preemphasis
        frames *= window
        spec = np.fft.rfft(frames, n=config.n_fft, axis=1)
        power = spec.real**2 + spec.imag**2
        yield first, (power if config.spectrum == "power" else np.sqrt(power)), log_energy


def log_mel_spectrogram(
    signal: np.ndarray, sample_rate_hz: int, config: FeatureConfig | None = None
) -> np.ndarray:
    """Floored natural-log mel filterbank outputs, shape (n_frames, n_mels).

    Energies (power spectrum) or magnitudes, as ``config.spectrum`` says.

    ``config`` defaults to ``FeatureConfig(sample_rate_hz=sample_rate_hz)``;
    its rate must match ``sample_rate_hz``.
    """
    x, config = _check_signal(signal, sample_rate_hz, config)
    n_frames = _frame_count(x, config)  # before the tables: a huge window on a short signal fails cheaply
    _, fbank_t, _ = _tables(config)
    out = np.empty((n_frames, fbank_t.shape[1]))
    for first, power, _ in _power_and_energy(x, config, n_frames, energy=False):
        out[first:first + len(power)] = np.log(np.maximum(power @ fbank_t, LOG_FLOOR))
    return out


def mfcc(signal: np.ndarray, sample_rate_hz: int, config: FeatureConfig | None = None) -> np.ndarray:
    """Mel-frequency cepstral coefficients, shape (n_frames, config.n_ceps).

    Parameters
    ----------
    signal : ndarray of shape (n_samples,)
        Audio in full-scale units (as returned by :func:`load_audio`).
    sample_rate_hz : int
        Rate of ``signal``; must equal ``config.sample_rate_hz``.
    config : FeatureConfig, optional
        Analysis settings (deltas and CMVN fields are not used here).

    Raises
    ------
    AudioError
        The signal is too short for one frame.
    InvalidInputError
        The signal is not a 1-D floating-point array (integer samples are refused), or holds NaN or infinity.
    InvalidParameterError
        ``config`` is not a FeatureConfig or is at another rate.
    """
    return _mfcc(*_check_signal(signal, sample_rate_hz, config))


def _mfcc(x: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """:func:`mfcc` without the input checks: ``x`` is a finite float64 signal at ``config``'s rate."""
    n_frames = _frame_count(x, config)  # before the tables: a huge window on a short signal fails cheaply
    _, fbank_t, dct_t = _tables(config)
    log_energy = config.energy == "log_energy"
    ceps = np.empty((n_frames, dct_t.shape[1]))
    for first, power, energy in _power_and_energy(x, config, n_frames, log_energy):
        block = ceps[first:first + len(power)]
        block[:] = np.log(np.maximum(power @ fbank_t, LOG_FLOOR)) @ dct_t
        if log_energy:
            block[:, 0] = energy
    return ceps
