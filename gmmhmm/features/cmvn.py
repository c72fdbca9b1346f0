"""Cepstral mean and variance normalisation."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from .._validation import check_array
from ..errors import InvalidInputError

# Dimensions with a standard deviation below this are only mean-normalised;
# dividing would turn a constant column into NaN/inf.
STD_FLOOR = 1e-8


def _normalise(x: np.ndarray, mean: np.ndarray, std: np.ndarray | None) -> np.ndarray:
    out = x - mean
    if std is not None:
        out /= np.where(std > STD_FLOOR, std, 1.0)
    return out


def cmvn(features: np.ndarray, variance: bool = True) -> np.ndarray:
    """Zero mean (and unit variance) per column over one utterance.

    Constant columns become zero, never NaN.
    """
    return _cmvn(check_array(features, name="features"), variance)


def _cmvn(x: np.ndarray, variance: bool) -> np.ndarray:
    """:func:`cmvn` of a checked float array."""
    return _normalise(x, x.mean(axis=0), x.std(axis=0) if variance else None)


def cmvn_per_speaker(
    features: Sequence[np.ndarray], speaker_ids: Sequence[Hashable], variance: bool = True
) -> list[np.ndarray]:
    """CMVN with statistics pooled over all utterances of each speaker.

    Parameters
    ----------
    features : sequence of (n_frames_i, D) arrays
    speaker_ids : sequence of hashable, one per utterance
    variance : bool

    Returns
    -------
    list of arrays, in the input order.
    """
    arrays = [check_array(f, name=f"features[{i}]") for i, f in enumerate(features)]
    speaker_ids = list(speaker_ids)
    if len(speaker_ids) != len(arrays):
        raise InvalidInputError(
            f"got {len(arrays)} utterances but {len(speaker_ids)} speaker ids"
        )
    if len({a.shape[1] for a in arrays}) > 1:
        raise InvalidInputError("utterances have different feature dimensions")
    out: list[np.ndarray | None] = [None] * len(arrays)
    for spk in dict.fromkeys(speaker_ids):
        idx = [i for i, s in enumerate(speaker_ids) if s == spk]
        pooled = np.concatenate([arrays[i] for i in idx])
        mean = pooled.mean(axis=0)
        std = pooled.std(axis=0) if variance else None
        for i in idx:
            out[i] = _normalise(arrays[i], mean, std)
    return out  # type: ignore[return-value]
