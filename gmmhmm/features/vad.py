"""Energy voice activity detection for speech-only statistics (Kaldi ``compute-vad``).

A frame is speech when its energy is within ``margin_db`` of the loudest
frame of its utterance: relative to the utterance, so the recording level
does not matter. Used to keep leading and trailing silence, whose length
varies by corpus and speaker, out of CMVN statistics
(:func:`~gmmhmm.features.compute_cmvn_stats` ``frames=``).
"""

from __future__ import annotations

import numpy as np

from .._validation import check_array
from ..errors import InvalidInputError, InvalidParameterError, NonFiniteInputError
from .config import FeatureConfig

#: dB per natural-log unit of power.
DB_PER_NEPER_POWER = 10.0 / np.log(10.0)


def frame_log_energy_db(features: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Per-frame energy in dB (up to a constant) from column 0 of un-normalised ``features``.

    Column 0 is the raw log frame energy (``energy='log_energy'``) or c0, the
    scaled sum of the log mel energies (``energy='c0'``), read here as their
    mean: the level of the whole band.

    Raises
    ------
    InvalidParameterError
        ``config`` puts no energy in column 0.
    """
    x = check_array(features, name="features")
    if config.energy == "log_energy":
        return x[:, 0] * DB_PER_NEPER_POWER
    if config.energy != "c0":
        raise InvalidParameterError(f"energy={config.energy!r} puts no energy in column 0; "
                                    "use 'c0' or 'log_energy' for an energy VAD")
    # c0 = scale * sum_k ln(mel_k): orthonormal scale sqrt(1/n), HTK's sqrt(2/n)
    scale = np.sqrt((1.0 if config.dct_norm == "orthonormal" else 2.0) / config.n_mels)
    per_power = 1.0 if config.spectrum == "power" else 2.0  # ln|X| is half of ln|X|^2
    return x[:, 0] / (scale * config.n_mels) * per_power * DB_PER_NEPER_POWER


def energy_vad(energy_db: np.ndarray, margin_db: float = 30.0) -> np.ndarray:
    """Boolean speech mask: frames within ``margin_db`` dB of the loudest frame.

    Parameters
    ----------
    energy_db : (n_frames,) array
        Frame energies in dB, e.g. from :func:`frame_log_energy_db`.
    margin_db : float
        How far below the loudest frame speech may be (``inf``: every frame).
    """
    if not margin_db >= 0:
        raise InvalidParameterError(f"margin_db must be >= 0, got {margin_db!r}")
    e = np.asarray(energy_db, dtype=np.float64)
    if e.ndim != 1 or e.size == 0:
        raise InvalidInputError(f"energy_db must be a non-empty 1-d array, got shape {e.shape} (no frames)")
    if np.isnan(e).any() or np.isposinf(e).any():  # -inf (a log of zero power) is silence
        raise NonFiniteInputError("energy_db contains NaN or +infinity")
    return e >= e.max() - margin_db
