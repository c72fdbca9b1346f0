"""Vocal tract length normalisation: one frequency-warp factor per speaker, by maximum likelihood.

The front end warps its mel filterbank (``FeatureConfig(vtln_warp=...)``,
Kaldi's ``--vtln-warp``); this module chooses each speaker's factor. As in
HTK's warp search and Kaldi's VTLN recipes, a speaker's features are computed
at every factor of a grid and the factor under which a model gives them the
highest likelihood wins. The model here is a text-independent diagonal GMM
(as in Lee & Rose's and Welling et al.'s GMM-based warp estimation), so the
same search, without labels, serves training speakers and a new test speaker
alike. :func:`train_vtln` alternates estimating the warps of the model's
speakers and refitting the GMM on their warped features (VTLN training).

Warped features must be normalised per speaker (CMVN with variance) inside
``features_at``: otherwise the likelihoods of different warps differ by the
unmodelled Jacobian of the warp, which biases the search.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError, InvalidParameterError

logger = logging.getLogger(__name__)

# Frames scored at once: bounds the (frames, components) log-likelihood matrix of the search
# (8 MB at 128 components) whatever the amount of audio; per-speaker sums are additive.
_SCORE_FRAMES = 8192
# Frames per block of the warp GMM's E-steps, and most frames its initialisation (k-means) holds
# (Kaldi's gmm-global-init-from-feats --num-frames): memory does not grow with the corpus.
_FIT_FRAMES = 16384
_INIT_FRAMES = 500_000
# Utterances whose features are asked of ``features_at`` at once (fitting and scoring)
_READ_UTTERANCES = 64

__all__ = ["VtlnResult", "check_vtln_grid", "estimate_vtln_warps", "features_on_disk", "memoised_features_at", "train_vtln", "vtln_warp_grid",
           "warped_features"]

#: ``features_at(warp, utterances)``: features of ``utterances`` computed with that warp
#: (normalised per speaker), by utterance id.
FeaturesAt = Callable[[float, Sequence[str]], Mapping[str, np.ndarray]]


def vtln_warp_grid(min_warp: float = 0.80, max_warp: float = 1.20, step: float = 0.02) -> np.ndarray:
    """Warp factors ``min_warp, min_warp + step, ..., max_warp`` (rounded to 1e-6; 1.0 must be one)."""
    if not 0.5 <= min_warp <= 1.0 <= max_warp <= 2.0 or not step > 0:
        raise InvalidParameterError(
            f"need 0.5 <= min_warp ({min_warp}) <= 1 <= max_warp ({max_warp}) <= 2 and step ({step}) > 0")
    # whole steps inside the range (1e-9: (1.2 - 0.8) / 0.02 is 19.999...); rounding up would pass max_warp
    grid = np.round(min_warp + step * np.arange(int(np.floor((max_warp - min_warp) / step + 1e-9)) + 1), 6)
    if not np.any(np.isclose(grid, 1.0)):
        raise InvalidParameterError(f"the grid {grid.tolist()} must contain 1.0 (no warp)")
    return grid


def _grid(grid: Sequence[float] | None) -> np.ndarray:
    """``grid`` as a 1-D array of warp factors (default :func:`vtln_warp_grid`)."""
    if grid is None:
        return vtln_warp_grid()
    try:
        out = np.asarray(grid, dtype=np.float64)
    except (TypeError, ValueError):
        out = np.array([np.nan])
    if out.ndim != 1 or not len(out) or not np.all(np.isfinite(out) & (out > 0)):
        raise InvalidParameterError(f"a VTLN warp grid must be a non-empty list of positive factors, got {grid!r:.80}")
    return out


def check_vtln_grid(config, grid: Sequence[float]) -> None:
    """Refuse, before any work, front-end settings (a :class:`~gmmhmm.features.FeatureConfig`)
    that some warp of ``grid`` cannot take: inflection points that fit no warp, or mel filters
    left without an FFT bin by it (:class:`InvalidParameterError`)."""
    for warp in grid:
        config.replace(vtln_warp=float(warp))


@dataclass
class VtlnResult:
    """Chosen warps and the likelihoods they were chosen by.

    Attributes
    ----------
    warps : dict
        Speaker -> chosen warp factor.
    grid : ndarray
        The warp factors tried.
    scores : dict
        Speaker -> average log-likelihood per frame at each factor of ``grid`` (-inf at a factor
        ruled out: fewer of the speaker's frames than at another factor).
    """

    warps: dict[str, float]
    grid: np.ndarray
    scores: dict[str, np.ndarray]


def _by_speaker(utterances: Iterable[str], utt2spk: Mapping[str, str]) -> dict[str, list[str]]:
    spk2utt: dict[str, list[str]] = {}
    for u in utterances:
        if u not in utt2spk:
            raise InvalidInputError(f"utterance {u!r} has no speaker in utt2spk")
        spk2utt.setdefault(utt2spk[u], []).append(u)
    return spk2utt


def estimate_vtln_warps(model, features_at: FeaturesAt, utt2spk: Mapping[str, str],
                        grid: Sequence[float] | None = None, utterances: Sequence[str] | None = None
                        ) -> VtlnResult:
    """Each speaker's warp: the factor of ``grid`` whose features ``model`` scores highest.

    Parameters
    ----------
    model
        Anything with ``score_samples(X) -> (n_frames,)`` log-likelihoods, e.g.
        a fitted :class:`gmmhmm.GaussianMixture`.
    features_at : callable
        ``features_at(warp, utterances)`` -> features by utterance id.
    utt2spk : mapping
        Utterance -> speaker; the warp is shared by a speaker's utterances.
    grid : sequence of float, optional
        Factors tried (default :func:`vtln_warp_grid`).
    utterances : sequence of str, optional
        Utterances to score (default: every key of ``utt2spk``).

    Returns
    -------
    VtlnResult
        Ties go to the factor nearest 1 (no warp).

    Raises
    ------
    InvalidInputError
        A speaker has no frames, or an utterance no speaker.
    """
    grid = _grid(grid)
    utts = list(utt2spk) if utterances is None else list(utterances)
    speakers = list(_by_speaker(utts, utt2spk))
    index = {s: k for k, s in enumerate(speakers)}
    total = np.zeros((len(speakers), len(grid)))
    frames = np.zeros((len(speakers), len(grid)))
    for i, warp in enumerate(grid):
        for chunk in _chunks(utts):  # a few utterances' features in memory, not a warp of the corpus
            feats = features_at(float(warp), chunk)
            scored = [u for u in chunk if u in feats and len(feats[u])]
            if not scored:
                continue
            # blocks of frames across utterances and speakers, summed per speaker
            owner = np.repeat([index[utt2spk[u]] for u in scored], [len(feats[u]) for u in scored])
            start = 0
            for block in _row_blocks([feats[u] for u in scored], _SCORE_FRAMES):
                stop = start + len(block)
                total[:, i] += np.bincount(owner[start:stop], weights=model.score_samples(block),
                                           minlength=len(speakers))
                start = stop
            frames[:, i] += np.bincount(owner, minlength=len(speakers))
        logger.debug("VTLN: scored warp %.3f", warp)
    most = frames.max(axis=1)
    empty = sorted(s for s, n in zip(speakers, most) if n == 0)
    if empty:
        raise InvalidInputError(f"VTLN: speakers {empty} have no frames to estimate a warp from")
    # factors compete on the same frames: one that lost some of a speaker's audio is out
    scores_kw = np.where(frames == most[:, None], total / np.maximum(frames, 1), -np.inf)
    # Among the best scores, the factor nearest 1: a flat likelihood means "no evidence to warp".
    order = np.argsort(np.abs(grid - 1.0), kind="stable")
    warps = {s: float(grid[order[np.argmax(scores_kw[k, order])]]) for k, s in enumerate(speakers)}
    scores = {s: scores_kw[k] for k, s in enumerate(speakers)}
    return VtlnResult(warps=warps, grid=grid, scores=scores)


def _chunks(utterances: Sequence[str]) -> Iterator[Sequence[str]]:
    """``utterances`` in consecutive runs of :data:`_READ_UTTERANCES`: what is asked of
    ``features_at`` at once."""
    for start in range(0, len(utterances), _READ_UTTERANCES):
        yield utterances[start:start + _READ_UTTERANCES]


def _row_blocks(arrays: Sequence[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """The rows of ``np.concatenate(arrays)`` in consecutive blocks of ``size`` rows (the last one
    shorter), without concatenating them all."""
    pending: list[np.ndarray] = []
    n = 0
    for x in arrays:
        start = 0
        while start < len(x):
            piece = x[start:start + size - n]
            pending.append(piece)
            n += len(piece)
            start += len(piece)
            if n == size:
                yield np.concatenate(pending)
                pending, n = [], 0
    if pending:
        yield np.concatenate(pending)


def memoised_features_at(features_of_all: Callable[[float], Mapping[str, np.ndarray]],
                         directory: str | os.PathLike | None = None) -> FeaturesAt:
    """A ``features_at`` from ``features_of_all(warp)`` (every utterance's features at one warp),
    calling it once per warp: the search and VTLN training visit each warp several times.

    With ``directory`` each warp's features are kept there (one ``.npy`` per warp, read back
    memory-mapped) instead of in memory, so memory holds about one warp's features rather than
    the whole grid's (21 copies of the corpus with the default grid). The caller owns the
    directory, e.g. a :class:`tempfile.TemporaryDirectory`.
    """
    cache: dict[float, Mapping[str, np.ndarray]] = {}
    on_disk: dict[float, tuple[Path, dict[str, tuple[int, int]]]] = {}

    def store(warp: float, feats: Mapping[str, np.ndarray]) -> None:
        path = Path(directory) / f"warp-{len(on_disk)}.npy"  # by arrival: two close warps never share a file
        if feats:
            np.save(path, np.concatenate(list(feats.values())))
        ends = np.cumsum([len(x) for x in feats.values()], dtype=int)
        on_disk[warp] = path, {u: (e - len(x), e) for (u, x), e in zip(feats.items(), ends)}

    def load(warp: float, utterances: Sequence[str]) -> dict[str, np.ndarray]:
        path, rows = on_disk[warp]
        wanted = [u for u in utterances if u in rows]
        if not wanted:
            return {}
        # copies of the rows asked for; the mapping closes when ``stacked`` goes, so no warp stays resident
        stacked = np.load(path, mmap_mode="r")
        return {u: np.array(stacked[slice(*rows[u])]) for u in wanted}

    def features_at(warp: float, utterances: Sequence[str]) -> dict[str, np.ndarray]:
        if directory is not None:
            if warp not in on_disk:
                store(warp, features_of_all(warp))
            return load(warp, utterances)
        if warp not in cache:
            cache[warp] = features_of_all(warp)
        feats = cache[warp]
        return {u: feats[u] for u in utterances if u in feats}

    return features_at


@contextmanager
def features_on_disk(features_of_all: Callable[[float], Mapping[str, np.ndarray]],
                     beside: str | os.PathLike) -> Iterator[FeaturesAt]:
    """:func:`memoised_features_at` keeping every warp's features in a temporary folder in ``beside``
    (an output's folder: space where the user writes; the system's temporary folder when that one
    cannot take it, e.g. ``/dev``), removed afterwards, even on failure."""
    where = beside if os.path.isdir(beside) and os.access(beside, os.W_OK) else None
    with tempfile.TemporaryDirectory(dir=where, prefix=".vtln-features-") as cache:
        yield memoised_features_at(features_of_all, cache)


def warped_features(features_at: FeaturesAt, warps: Mapping[str, float], utt2spk: Mapping[str, str],
                    utterances: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Features of ``utterances`` (default: all of ``utt2spk``), each at its speaker's warp
    (1.0 for a speaker without one)."""
    utts = list(utt2spk) if utterances is None else list(utterances)
    by_warp: dict[float, list[str]] = {}
    for spk, group in _by_speaker(utts, utt2spk).items():  # names an utterance without a speaker
        by_warp.setdefault(float(warps.get(spk, 1.0)), []).extend(group)
    out: dict[str, np.ndarray] = {}
    for warp, group in sorted(by_warp.items()):
        feats = features_at(warp, group)
        out.update({u: feats[u] for u in group if u in feats})
    return {u: out[u] for u in utts if u in out}


def _warped_frames(features_at: FeaturesAt, warps: Mapping[str, float], utt2spk: Mapping[str, str],
                   utterances: Sequence[str]) -> Iterator[np.ndarray]:
    """The features of ``utterances`` at their speakers' warps, in order, read a few utterances at
    a time (:func:`warped_features` of all of them would hold them all)."""
    for chunk in _chunks(utterances):
        yield from warped_features(features_at, warps, utt2spk, chunk).values()


def train_vtln(features_at: FeaturesAt, utt2spk: Mapping[str, str], model_utterances: Sequence[str],
               n_components: int = 128, n_iter: int = 2, grid: Sequence[float] | None = None,
               random_state: int | None = 0, max_iter: int = 100) -> tuple[object, VtlnResult]:
    """A warp-estimation GMM trained with VTLN, and the warps of every speaker of ``utt2spk``.

    The GMM is fitted on ``model_utterances`` unwarped; then ``n_iter`` times
    the warps of their speakers are estimated and the GMM refitted on their
    warped features. Finally every speaker of ``utt2spk`` (e.g. also test
    speakers, which need no labels) gets its warp from that GMM.

    Each fit (:meth:`GaussianMixture.fit_blocks`) reads the features a few utterances at a time
    at every EM iteration and initialises on a sample of at most 500000 frames drawn from
    ``random_state`` (every frame, in utterance order, when there are no more: then the GMM is
    the one fitted on the concatenation of the frames), so memory does not grow with the corpus.

    Returns
    -------
    (GaussianMixture, VtlnResult)
    """
    from ..mixture import GaussianMixture

    if n_iter < 0:
        raise InvalidParameterError(f"n_iter must be >= 0, got {n_iter}")
    grid = _grid(grid)
    model_utts = list(model_utterances)
    warps: dict[str, float] = {}
    gmm = None
    for it in range(n_iter + 1):
        gmm = GaussianMixture(n_components, covariance_type="diag", random_state=random_state,
                              max_iter=max_iter, reg_covar=1e-3)
        gmm.fit_blocks(lambda: _row_blocks(_warped_frames(features_at, warps, utt2spk, model_utts), _FIT_FRAMES),
                       init_frames=_INIT_FRAMES)
        if it < n_iter:
            warps = estimate_vtln_warps(gmm, features_at, utt2spk, grid, model_utts).warps
            logger.info("VTLN training pass %d: warps of %d speakers from %.2f to %.2f", it + 1, len(warps),
                        min(warps.values()), max(warps.values()))
    return gmm, estimate_vtln_warps(gmm, features_at, utt2spk, grid)
