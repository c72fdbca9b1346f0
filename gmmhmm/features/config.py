"""One frozen object holding every front-end setting.

Units are part of the field names (``window_ms``, ``low_freq_hz``) so a TOML
or JSON config reads unambiguously. The defaults are gmmhmm's own 16 kHz
analysis, close to Kaldi's ``compute-mfcc-feats`` (power spectrum, per-frame
DC removal, orthonormal DCT, lifter 22, frame sizes truncated to whole
samples) with a Hamming window, 26 filters and c0 instead of Kaldi's Povey
window, 23 filters and log energy. :meth:`FeatureConfig.htk` gives HTK
HCopy's analysis (magnitude spectrum, no DC removal, HTK's c0 scaling);
:meth:`FeatureConfig.fsdd` the 8 kHz setting used for the Free Spoken Digit
Dataset.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ..errors import InvalidParameterError

WINDOWS = ("hamming", "povey", "hann")
ENERGIES = ("c0", "log_energy", "none")
CMVN_MODES = ("utterance", "speaker", "none")
SPECTRA = ("power", "magnitude")
DCT_NORMS = ("orthonormal", "htk")
# Above any real recording format (DXD is 352.8 kHz); a larger rate is a
# corrupt header or a units mistake, and would make huge analysis frames.
MAX_SAMPLE_RATE_HZ = 1_000_000
# Longest frame window and shift: analysis frames are tens of ms.
MAX_FRAME_MS = 1000.0


def _check_rate(value: Any, name: str = "sample_rate_hz") -> int:
    """``value`` as an int if it is an integer sample rate in [1, MAX_SAMPLE_RATE_HZ].

    Raises
    ------
    InvalidParameterError
        Not an integer (bools and floats included), or out of range.
    """
    if (isinstance(value, bool) or not isinstance(value, (int, np.integer))
            or not 0 < value <= MAX_SAMPLE_RATE_HZ):
        raise InvalidParameterError(
            f"{name} must be an integer >= 1 and at most {MAX_SAMPLE_RATE_HZ}, got {value!r}")
    return int(value)


def _samples(rate_hz: int, ms: float) -> int:
    """``int(rate_hz * ms / 1000)``; the tiny tolerance keeps 0.3 ms at 10 kHz at 3, not 2.99999... -> 2."""
    return int(rate_hz * ms / 1000.0 + 1e-9)


@dataclass(frozen=True)
class FeatureConfig:
    """Settings of the MFCC front end (see :func:`gmmhmm.features.mfcc`).

    Parameters
    ----------
    sample_rate_hz : int
        Rate the audio is resampled to before analysis.
    preemphasis : float
        Coefficient ``a`` of ``y[t] = x[t] - a x[t-1]``, applied per frame; 0 disables.
    window_ms, shift_ms : float
        Frame length and frame shift, each at most 1000 ms. A shift longer than the
        window is allowed (the frames leave gaps), as in Kaldi.
    window : {'hamming', 'povey', 'hann'}
        Analysis window (``'povey'`` is Kaldi's default: Hann to the power 0.85).
    snip_edges : bool
        True (HTK, Kaldi default): only frames that fit entirely in the signal,
        ``1 + (n - L) // S`` of them. False: ``round(n / S)`` frames centred on
        multiples of the shift, with the signal reflected at the edges.
    n_mels : int
        Number of triangular mel filters.
    low_freq_hz : float
        Lower edge of the first filter.
    high_freq_hz : float or None
        Upper edge of the last filter; None or 0 is the Nyquist frequency and a
        negative value is an offset below Nyquist (as in Kaldi).
    n_ceps : int
        Cepstral coefficients per frame (see ``energy`` for which ones).
    energy : {'c0', 'log_energy', 'none'}
        First column: ``'c0'`` keeps c0..c(n-1); ``'log_energy'`` replaces c0
        by the log energy of the frame (after DC removal, before
        pre-emphasis and windowing, like Kaldi's raw energy); ``'none'`` gives
        c1..c(n), with no energy term.
    cep_lifter : float
        Sinusoidal lifter ``1 + L/2 sin(pi n / L)``; 0 disables.
    dither : float
        Standard deviation of Gaussian noise added to each frame, in units of
        full scale (int16 audio is scaled to [-1, 1)); 0 disables.
    dither_seed : int
        Seed of the dither noise. Each signal draws its own noise, seeded by
        ``dither_seed`` and a hash of the signal's samples: reproducible, and
        the same whichever other files share a batch.
    remove_dc : bool
        Subtract each frame's mean.
    delta_order, delta_window : int
        Number of regression (delta) orders appended and their half-width.
    cmvn : {'utterance', 'speaker', 'none'}
        Cepstral mean (and variance) normalisation scope.
    cmvn_variance : bool
        Also scale to unit variance.
    spectrum : {'power', 'magnitude'}
        What the mel filters weigh: ``|X|^2`` (Kaldi) or ``|X|`` (HTK's
        default, ``USEPOWER = F``).
    dct_norm : {'orthonormal', 'htk'}
        Scaling of the DCT: ``'orthonormal'`` (Kaldi) scales c0 by
        ``sqrt(1/n_mels)`` and the others by ``sqrt(2/n_mels)``; ``'htk'``
        scales every coefficient, c0 included, by ``sqrt(2/n_mels)`` (HTK's
        ``FBank2MFCC`` and ``FBank2C0``), so c0 is ``sqrt(2)`` times larger.

    vtln_warp : float
        Vocal tract length normalisation warp factor (Kaldi's ``--vtln-warp``):
        the mel filter edges are moved by the piecewise-linear warp of
        :func:`gmmhmm.features.vtln_warp_freq`; 1 (the default) is no warp.
        Per-speaker factors come from :func:`gmmhmm.adapt.estimate_vtln_warps`.
    vtln_low_hz, vtln_high_hz : float
        Inflection points of the warp (Kaldi's ``--vtln-low`` and
        ``--vtln-high``); a ``vtln_high_hz`` <= 0 is an offset below the upper
        filterbank edge.

    Frame length and shift in samples are truncated, as Kaldi and HTK do:
    ``int(sample_rate_hz * window_ms / 1000)``.
    """

    sample_rate_hz: int = 16000
    preemphasis: float = 0.97
    window_ms: float = 25.0
    shift_ms: float = 10.0
    window: str = "hamming"
    snip_edges: bool = True
    n_mels: int = 26
    low_freq_hz: float = 20.0
    high_freq_hz: float | None = None
    n_ceps: int = 13
    energy: str = "c0"
    cep_lifter: float = 22.0
    dither: float = 0.0
    dither_seed: int = 0
    remove_dc: bool = True
    delta_order: int = 2
    delta_window: int = 2
    cmvn: str = "utterance"
    cmvn_variance: bool = True
    spectrum: str = "power"
    dct_norm: str = "orthonormal"
    vtln_warp: float = 1.0
    vtln_low_hz: float = 100.0
    vtln_high_hz: float = -500.0

    def __post_init__(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise InvalidParameterError(f"FeatureConfig: {msg}")

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def is_num(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        _check_rate(self.sample_rate_hz, "FeatureConfig: sample_rate_hz")
        # Not a numpy integer either, like every integer setting, so that to_dict() stays JSON.
        need(is_int(self.sample_rate_hz),
             f"sample_rate_hz must be a plain int, got {type(self.sample_rate_hz).__name__}")
        need(is_num(self.preemphasis) and 0 <= self.preemphasis <= 1,
             f"preemphasis must be in [0, 1], got {self.preemphasis!r}")
        for name in ("window_ms", "shift_ms"):
            ms = getattr(self, name)
            need(is_num(ms) and ms > 0, f"{name} must be > 0, got {ms!r}")
            # Kaldi sets no bound; over 1 s is no short-time analysis but a units mistake (and frames of
            # millions of samples)
            need(ms <= MAX_FRAME_MS, f"{name}={ms:g} is over the limit: frames are at most {MAX_FRAME_MS:g} ms "
                 "(Kaldi and HTK use 25 ms windows and 10 ms shifts; HTK's WINDOWSIZE and TARGETRATE are "
                 "in 100 ns units)")
        need(self.window in WINDOWS, f"window must be one of {list(WINDOWS)}, got {self.window!r}")
        need(isinstance(self.snip_edges, bool), f"snip_edges must be a bool, got {self.snip_edges!r}")
        need(is_int(self.n_mels) and self.n_mels >= 1, f"n_mels must be an integer >= 1, got {self.n_mels!r}")
        need(is_num(self.low_freq_hz) and self.low_freq_hz >= 0,
             f"low_freq_hz must be >= 0, got {self.low_freq_hz!r}")
        need(self.high_freq_hz is None or is_num(self.high_freq_hz),
             f"high_freq_hz must be a number or None, got {self.high_freq_hz!r}")
        nyquist = self.sample_rate_hz / 2
        need(self.low_freq_hz < self.high_freq_effective_hz <= nyquist,
             f"need low_freq_hz ({self.low_freq_hz}) < high frequency "
             f"({self.high_freq_effective_hz}) <= Nyquist ({nyquist})")
        need(is_int(self.n_ceps) and 1 <= self.n_ceps,
             f"n_ceps must be an integer >= 1, got {self.n_ceps!r}")
        need(self.energy in ENERGIES, f"energy must be one of {list(ENERGIES)}, got {self.energy!r}")
        need(self.n_ceps + (self.energy == "none") <= self.n_mels,
             f"n_ceps ({self.n_ceps}) needs at least as many mel filters, got n_mels={self.n_mels}")
        need(is_num(self.cep_lifter) and self.cep_lifter >= 0, f"cep_lifter must be >= 0, got {self.cep_lifter!r}")
        need(is_num(self.dither) and self.dither >= 0, f"dither must be >= 0, got {self.dither!r}")
        need(is_int(self.dither_seed), f"dither_seed must be an integer, got {self.dither_seed!r}")
        need(isinstance(self.remove_dc, bool), f"remove_dc must be a bool, got {self.remove_dc!r}")
        need(is_int(self.delta_order) and self.delta_order >= 0,
             f"delta_order must be an integer >= 0, got {self.delta_order!r}")
        need(is_int(self.delta_window) and self.delta_window >= 1,
             f"delta_window must be an integer >= 1, got {self.delta_window!r}")
        need(self.cmvn in CMVN_MODES, f"cmvn must be one of {list(CMVN_MODES)}, got {self.cmvn!r}")
        need(isinstance(self.cmvn_variance, bool), f"cmvn_variance must be a bool, got {self.cmvn_variance!r}")
        need(self.spectrum in SPECTRA, f"spectrum must be one of {list(SPECTRA)}, got {self.spectrum!r}")
        need(self.dct_norm in DCT_NORMS, f"dct_norm must be one of {list(DCT_NORMS)}, got {self.dct_norm!r}")
        need(is_num(self.vtln_warp) and 0.5 <= self.vtln_warp <= 2.0,
             f"vtln_warp must be in [0.5, 2], got {self.vtln_warp!r}")
        need(is_num(self.vtln_low_hz) and is_num(self.vtln_high_hz),
             f"vtln_low_hz and vtln_high_hz must be numbers, got {self.vtln_low_hz!r}, {self.vtln_high_hz!r}")
        # as in Kaldi, the inflection points matter (and are checked) only when there is a warp
        need(self.vtln_warp == 1.0 or
             self.low_freq_hz < self.vtln_low_hz < self.vtln_high_effective_hz < self.high_freq_effective_hz,
             f"need low_freq_hz ({self.low_freq_hz}) < vtln_low_hz ({self.vtln_low_hz}) < VTLN high "
             f"inflection ({self.vtln_high_hz}: {self.vtln_high_effective_hz} Hz) < high frequency "
             f"({self.high_freq_effective_hz})")
        need(self.frame_length >= 2, f"window_ms={self.window_ms} is under two samples")
        need(self.frame_shift >= 1, f"shift_ms={self.shift_ms} is under one sample")
        from .mfcc import _filter_edges_and_bins  # noqa: PLC0415 - mfcc imports this module

        _filter_edges_and_bins(self.sample_rate_hz, self.n_fft, self.n_mels, self.low_freq_hz,
                               self.high_freq_effective_hz, self.vtln_warp, self.vtln_low_hz,
                               self.vtln_high_effective_hz)

    # Derived sizes -----------------------------------------------------
    @property
    def frame_length(self) -> int:
        """Samples per frame: ``int(sample_rate_hz * window_ms / 1000)``, truncated as in Kaldi."""
        return _samples(self.sample_rate_hz, self.window_ms)

    @property
    def frame_shift(self) -> int:
        """Samples between frame starts: ``int(sample_rate_hz * shift_ms / 1000)``, truncated as in Kaldi."""
        return _samples(self.sample_rate_hz, self.shift_ms)

    @property
    def frame_shift_s(self) -> float:
        """Seconds between frame starts (the truncated shift, not ``shift_ms``)."""
        return self.frame_shift / self.sample_rate_hz

    @property
    def n_fft(self) -> int:
        """FFT size: the next power of two >= the frame length."""
        return 1 << (self.frame_length - 1).bit_length()

    @property
    def high_freq_effective_hz(self) -> float:
        """Upper filterbank edge in Hz after resolving None / offsets."""
        nyquist = self.sample_rate_hz / 2
        if self.high_freq_hz is None or self.high_freq_hz <= 0:
            return nyquist + (self.high_freq_hz or 0.0)
        return float(self.high_freq_hz)

    @property
    def vtln_high_effective_hz(self) -> float:
        """Upper VTLN inflection point in Hz (a value <= 0 is an offset below the upper edge)."""
        if self.vtln_high_hz <= 0:
            return self.high_freq_effective_hz + self.vtln_high_hz
        return float(self.vtln_high_hz)

    @property
    def n_features(self) -> int:
        """Columns of :func:`extract_features` output: statics plus deltas."""
        return self.n_ceps * (self.delta_order + 1)

    # (De)serialisation ---------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every setting; ``None`` values are left out so that
        the dict can be written as TOML (``from_dict`` restores them), and so
        are VTLN settings at their defaults, so that the dicts stored with
        feature and model files written before VTLN existed still compare equal."""
        defaults = {f.name: f.default for f in dataclasses.fields(self) if f.name.startswith("vtln_")}
        return {k: v for k, v in dataclasses.asdict(self).items()
                if v is not None and not (k in defaults and v == defaults[k])}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FeatureConfig":
        """Build from a dict (e.g. a TOML ``[features]`` table); unknown keys are an error."""
        if not isinstance(d, Mapping):
            raise InvalidParameterError(f"FeatureConfig.from_dict needs a mapping, got {type(d).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise InvalidParameterError(
                f"unknown feature setting(s) {unknown}; valid settings are {names}"
            )
        kwargs = dict(d)
        # TOML/JSON have no int/float distinction worth failing on.
        for key in ("sample_rate_hz", "n_mels", "n_ceps", "delta_order", "delta_window", "dither_seed"):
            v = kwargs.get(key)
            if isinstance(v, float) and v.is_integer():
                kwargs[key] = int(v)
        return cls(**kwargs)

    def replace(self, **changes: Any) -> "FeatureConfig":
        """Copy with some settings changed (validated)."""
        return self.from_dict({**dataclasses.asdict(self), **changes})

    @classmethod
    def htk(cls, sample_rate_hz: int = 16000) -> "FeatureConfig":
        """HTK HCopy's MFCC analysis, as in the HTK book's tutorial config.

        ``TARGETKIND = MFCC_0_D_A``, ``WINDOWSIZE = 250000.0``,
        ``TARGETRATE = 100000.0``, ``NUMCHANS = 26``, ``NUMCEPS = 12``,
        ``CEPLIFTER = 22``, ``PREEMCOEF = 0.97``, ``USEHAMMING = T`` and
        HCopy's defaults for the rest: magnitude spectrum (``USEPOWER = F``),
        no DC removal (``ZMEANSOURCE = F``), filters from 0 Hz to Nyquist
        (``LOFREQ = HIFREQ = -1``), no dither, ``DELTAWINDOW = ACCWINDOW = 2``,
        no CMN. The coefficients are HCopy's, c0 first where HCopy writes it
        last; gmmhmm scales int16 samples to [-1, 1), so c0 is HCopy's minus
        ``sqrt(2 n_mels) ln 32768`` (a constant that mean normalisation removes),
        and the mel floor is gmmhmm's (HTK floors filter outputs at 1.0 in
        int16 units; the two differ only on digital silence).
        """
        return cls(sample_rate_hz=sample_rate_hz, preemphasis=0.97, window_ms=25.0, shift_ms=10.0,
                   window="hamming", snip_edges=True, n_mels=26, low_freq_hz=0.0, high_freq_hz=None,
                   n_ceps=13, energy="c0", cep_lifter=22.0, dither=0.0, remove_dc=False,
                   delta_order=2, delta_window=2, cmvn="none", spectrum="magnitude", dct_norm="htk")

    @classmethod
    def fsdd(cls) -> "FeatureConfig":
        """Setting for the Free Spoken Digit Dataset: 8 kHz audio, 23 mel filters."""
        return cls(sample_rate_hz=8000, n_mels=23)
