"""One frozen object holding every front-end setting.

Units are part of the field names (``window_ms``, ``low_freq_hz``) so a TOML
or JSON config reads unambiguously. Defaults follow HTK/Kaldi for 16 kHz
speech; :meth:`FeatureConfig.fsdd` gives the 8 kHz setting used for the Free
Spoken Digit Dataset.
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
# Above any real recording format (DXD is 352.8 kHz); a larger rate is a
# corrupt header or a units mistake, and would make huge analysis frames.
MAX_SAMPLE_RATE_HZ = 1_000_000


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
        Frame length and frame shift.
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
        Seed of the dither noise, so dithered features are reproducible.
    remove_dc : bool
        Subtract each frame's mean.
    delta_order, delta_window : int
        Number of regression (delta) orders appended and their half-width.
    cmvn : {'utterance', 'speaker', 'none'}
        Cepstral mean (and variance) normalisation scope.
    cmvn_variance : bool
        Also scale to unit variance.
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
        need(is_num(self.window_ms) and self.window_ms > 0, f"window_ms must be > 0, got {self.window_ms!r}")
        need(is_num(self.shift_ms) and self.shift_ms > 0, f"shift_ms must be > 0, got {self.shift_ms!r}")
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
        need(self.frame_length >= 2, f"window_ms={self.window_ms} is under two samples")
        need(self.frame_shift >= 1, f"shift_ms={self.shift_ms} is under one sample")

    # Derived sizes -----------------------------------------------------
    @property
    def frame_length(self) -> int:
        """Samples per frame."""
        return int(round(self.window_ms * self.sample_rate_hz / 1000.0))

    @property
    def frame_shift(self) -> int:
        """Samples between frame starts."""
        return int(round(self.shift_ms * self.sample_rate_hz / 1000.0))

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
    def n_features(self) -> int:
        """Columns of :func:`extract_features` output: statics plus deltas."""
        return self.n_ceps * (self.delta_order + 1)

    # (De)serialisation ---------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every setting; ``None`` values are left out so that
        the dict can be written as TOML (``from_dict`` restores them)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

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
    def fsdd(cls) -> "FeatureConfig":
        """Setting for the Free Spoken Digit Dataset: 8 kHz audio, 23 mel filters."""
        return cls(sample_rate_hz=8000, n_mels=23)
