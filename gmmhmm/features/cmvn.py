"""Cepstral mean and variance normalisation (Kaldi ``compute-cmvn-stats`` / ``apply-cmvn``).

Statistics are computed once per speaker, stored, and applied, as in
Kaldi's ``cmvn.scp``: :class:`CmvnStats` holds one speaker's frame count,
mean and scatter and adds like an accumulator; :func:`compute_cmvn_stats`
gathers them from features and an utt2spk map, :func:`apply_cmvn` applies
them, :func:`save_cmvn_stats` / :func:`load_cmvn_stats` store them.

Speakers come only from an explicit map utterance -> speaker (Kaldi
``utt2spk``). Without one every utterance is its own speaker, so an
utterance's features never depend on which other utterances share a call.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .._validation import check_array
from ..errors import InvalidInputError, ModelFileError
from ..modelfile import read_packed, write_packed

# Dimensions with a standard deviation below this are only mean-normalised;
# dividing would turn a constant column into NaN/inf.
STD_FLOOR = 1e-8

FORMAT = "gmmhmm-cmvn"

#: An utt2spk map: utterance -> speaker, as a mapping or a function.
Utt2Spk = Mapping[str, Hashable] | Callable[[str], Hashable]


@dataclass(frozen=True, eq=False)
class CmvnStats:
    """One speaker's CMVN statistics: frame count, per-dimension mean and scatter.

    Equivalent to Kaldi's (count, sum, sum of squares) (see :attr:`sum` and
    :attr:`sum_squares`) but kept as mean and scatter (sum of squared
    deviations from the mean) so the variance of a column with a large
    offset does not drown in rounding. Statistics add (``a + b`` pools the
    frames of both; Chan et al.'s update), so they can be gathered in any
    order or in parallel.
    """

    count: int
    mean: np.ndarray  # (D,)
    scatter: np.ndarray  # (D,)

    @classmethod
    def from_features(cls, features: np.ndarray) -> "CmvnStats":
        """Statistics of one utterance's (n_frames, D) features."""
        x = check_array(features, name="features")
        return cls._of(x)

    @classmethod
    def _of(cls, x: np.ndarray) -> "CmvnStats":
        mean = x.mean(axis=0)
        return cls(x.shape[0], mean, ((x - mean) ** 2).sum(axis=0))

    def __add__(self, other: "CmvnStats") -> "CmvnStats":
        if not isinstance(other, CmvnStats):
            return NotImplemented
        if self.mean.shape != other.mean.shape:
            raise InvalidInputError(f"cannot add CMVN statistics of dimension {self.mean.shape[0]} "
                                    f"and {other.mean.shape[0]}")
        n = self.count + other.count
        delta = other.mean - self.mean
        return CmvnStats(n, self.mean + delta * (other.count / n),
                         self.scatter + other.scatter + delta**2 * (self.count * other.count / n))

    @property
    def sum(self) -> np.ndarray:
        """Per-dimension sum of the frames (Kaldi's first row)."""
        return self.mean * self.count

    @property
    def sum_squares(self) -> np.ndarray:
        """Per-dimension sum of squared frames (Kaldi's second row)."""
        return self.scatter + self.count * self.mean**2

    @property
    def std(self) -> np.ndarray:
        """Per-dimension (biased) standard deviation."""
        return np.sqrt(self.scatter / self.count)

    def apply(self, features: np.ndarray, variance: bool = True) -> np.ndarray:
        """``features`` minus the mean, divided by the standard deviation if ``variance``.

        Columns with a standard deviation below ``STD_FLOOR`` are only
        mean-normalised (a constant column becomes zero, never NaN).
        """
        return self._apply(check_array(features, name="features"), variance)

    def _apply(self, x: np.ndarray, variance: bool) -> np.ndarray:
        if x.shape[1] != self.mean.shape[0]:
            raise InvalidInputError(f"features have {x.shape[1]} dimensions but the CMVN statistics "
                                    f"{self.mean.shape[0]}")
        out = x - self.mean
        if variance:
            std = self.std
            out /= np.where(std > STD_FLOOR, std, 1.0)
        return out


def cmvn(features: np.ndarray, variance: bool = True) -> np.ndarray:
    """Zero mean (and unit variance) per column over one utterance.

    Constant columns become zero, never NaN.
    """
    return _cmvn(check_array(features, name="features"), variance)


def _cmvn(x: np.ndarray, variance: bool) -> np.ndarray:
    """:func:`cmvn` of a checked float array."""
    return CmvnStats._of(x)._apply(x, variance)


def _speaker_lookup(utt2spk: Utt2Spk | None) -> Callable[[str], Hashable]:
    """utt -> speaker; without a map each utterance is its own speaker."""
    if utt2spk is None:
        return lambda utt: utt
    if not (callable(utt2spk) or isinstance(utt2spk, Mapping)):
        raise InvalidInputError(f"utt2spk must be a mapping or a function, got {type(utt2spk).__name__}")
    # a function missing an utterance (say dict.__getitem__) raises KeyError, as a mapping does
    get = utt2spk if callable(utt2spk) else utt2spk.__getitem__

    def lookup(utt: str) -> Hashable:
        try:
            return get(utt)
        except KeyError:
            raise InvalidInputError(f"utterance {utt!r} is not in utt2spk") from None

    return lookup


def _checked(features: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    arrays = {k: check_array(f, name=f"features[{k!r}]") for k, f in features.items()}
    if len({a.shape[1] for a in arrays.values()}) > 1:
        raise InvalidInputError("utterances have different feature dimensions")
    return arrays


def compute_cmvn_stats(features: Mapping[str, np.ndarray], utt2spk: Utt2Spk | None = None,
                       frames: Mapping[str, np.ndarray] | None = None) -> dict[Hashable, CmvnStats]:
    """Per-speaker CMVN statistics (Kaldi ``compute-cmvn-stats --spk2utt``).

    Parameters
    ----------
    features : mapping utterance -> (n_frames, D) array
    utt2spk : mapping or function utterance -> speaker, optional
        Without it every utterance is its own speaker (keys = utterances).
    frames : mapping utterance -> (n_frames,) bool array, optional
        Only these frames count (Kaldi's ``--weights`` with 0/1 weights),
        e.g. the speech frames of :func:`~gmmhmm.features.energy_vad`, so
        silence of varying length does not bias the statistics.

    Returns
    -------
    dict speaker -> CmvnStats, speakers in order of first appearance.

    Raises
    ------
    InvalidInputError
        A mask is missing or has the wrong length, or a speaker has no selected frame.
    """
    arrays = _checked(features)
    if frames is not None:
        arrays = {u: x[_mask(frames, u, len(x))] for u, x in arrays.items()}
    return _compute(arrays, _speaker_lookup(utt2spk))


def _mask(frames: Mapping[str, np.ndarray], utt: str, n_frames: int) -> np.ndarray:
    if utt not in frames:
        raise InvalidInputError(f"no frames mask for utterance {utt!r}")
    m = np.asarray(frames[utt], dtype=bool)
    if m.shape != (n_frames,):
        raise InvalidInputError(f"frames[{utt!r}] has {m.size} entries but the utterance {n_frames} frames")
    return m


def _compute(arrays: Mapping[str, np.ndarray], speaker: Callable[[str], Hashable]) -> dict[Hashable, CmvnStats]:
    stats: dict[Hashable, CmvnStats] = {}
    for utt, x in arrays.items():
        spk = speaker(utt)
        if len(x) == 0:  # no selected frame: nothing to add
            stats.setdefault(spk, None)
            continue
        s = CmvnStats._of(x)
        stats[spk] = stats[spk] + s if stats.get(spk) is not None else s
    empty = [spk for spk, s in stats.items() if s is None]
    if empty:
        raise InvalidInputError(f"speaker {empty[0]!r} has no selected frame for CMVN statistics")
    return stats


def apply_cmvn(features: Mapping[str, np.ndarray], stats: Mapping[Hashable, CmvnStats],
               utt2spk: Utt2Spk | None = None, variance: bool = True) -> dict[str, np.ndarray]:
    """Normalise each utterance with its speaker's statistics (Kaldi ``apply-cmvn --utt2spk``).

    Parameters
    ----------
    features : mapping utterance -> (n_frames, D) array
    stats : mapping speaker -> CmvnStats, e.g. from :func:`compute_cmvn_stats`
        or :func:`load_cmvn_stats`
    utt2spk : mapping or function utterance -> speaker, optional
        Without it, an utterance's statistics are ``stats[utterance]``.
    variance : bool
        Also scale to unit variance.

    Raises
    ------
    InvalidInputError
        An utterance's speaker has no statistics, or dimensions disagree.
    """
    return _apply(_checked(features), stats, _speaker_lookup(utt2spk), variance)


def _apply(arrays: Mapping[str, np.ndarray], stats: Mapping[Hashable, CmvnStats],
           speaker: Callable[[str], Hashable], variance: bool) -> dict[str, np.ndarray]:
    out = {}
    for utt, x in arrays.items():
        spk = speaker(utt)
        if spk not in stats:
            raise InvalidInputError(f"no CMVN statistics for speaker {spk!r} (utterance {utt!r})")
        out[utt] = stats[spk]._apply(x, variance)
    return out


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
    speaker_ids = list(speaker_ids)
    if len(speaker_ids) != len(features):
        raise InvalidInputError(f"got {len(features)} utterances but {len(speaker_ids)} speaker ids")
    arrays = _checked({str(i): f for i, f in enumerate(features)})
    speaker = dict(zip(arrays, speaker_ids)).__getitem__
    return list(_apply(arrays, _compute(arrays, speaker), speaker, variance).values())


def save_cmvn_stats(path: str | os.PathLike, stats: Mapping[str, CmvnStats]) -> None:
    """Write per-speaker statistics to ``path`` (atomic; a packed npz, never pickle).

    Each speaker is two rows of the packed array: its mean and its scatter;
    the header lists the speakers and their frame counts.

    Raises
    ------
    InvalidInputError
        A speaker is not a string, a value is not a CmvnStats, or dimensions differ.
    """
    names, rows = [], []
    for spk, s in stats.items():
        if not isinstance(spk, str) or not isinstance(s, CmvnStats):
            raise InvalidInputError(f"CMVN statistics must map speaker names (str) to CmvnStats, "
                                    f"got {spk!r}: {type(s).__name__}")
        names.append(spk)
        rows.append(np.stack([s.mean, s.scatter]))
    if len({r.shape for r in rows}) > 1:
        raise InvalidInputError("CMVN statistics of different dimensions")
    data = np.concatenate(rows) if rows else np.zeros((0, 0))
    write_packed(path, FORMAT, data, [2] * len(rows),
                 {"speakers": names, "counts": [int(stats[n].count) for n in names]}, what="speakers")


def load_cmvn_stats(path: str | os.PathLike) -> dict[str, CmvnStats]:
    """Read a file written by :func:`save_cmvn_stats`: speaker -> CmvnStats.

    Raises
    ------
    ModelFileError
        Missing, corrupt or other-format file.
    """
    what = "CMVN statistics file (speakers, counts and statistics disagree)"
    header, data, lengths = read_packed(path, FORMAT, "speakers", what)
    counts = header.get("counts")
    if (not isinstance(counts, list) or len(counts) != len(lengths) or np.any(lengths != 2)
            or not all(isinstance(c, int) and c > 0 for c in counts)
            or not np.isfinite(data).all() or np.any(data[1::2] < 0)):
        raise ModelFileError(f"{os.fspath(path)}: corrupt {what}")
    return {spk: CmvnStats(c, data[2 * i].copy(), data[2 * i + 1].copy())
            for i, (spk, c) in enumerate(zip(header["speakers"], counts))}
