"""Speaker adaptation of phone models: per-speaker fMLLR, speaker-adaptive training, MAP means.

Everything here takes per-utterance ``(T, D)`` feature arrays (whatever front
end made them) and a :class:`~gmmhmm.graphs.PhoneModelSet` through its
generic interface (``n_pdfs``, ``emission()``, ``means_`` / ``covars_`` of
the stacked diagonal Gaussians), so it serves monophones, tied triphones and
transformed (LDA+MLLT) features alike.

* :func:`adaptation_stats`: forward-backward of one utterance through a
  graph (its transcript, or a first-pass hypothesis), Gaussian posteriors on
  the currently transformed features, fMLLR statistics of the original ones
  (Kaldi ``gmm-est-fmllr`` with ``--spk2utt``) and the Gaussian statistics
  MAP needs.
* :func:`speaker_fmllr_stats` / :func:`estimate_speaker_transforms`: summed
  per speaker (``utt2spk``) and one transform each.
* :func:`train_sat`: speaker-adaptive training (Kaldi ``train_sat.sh``):
  transforms re-estimated on some iterations, models re-estimated on the
  transformed features on every one.
* :func:`map_adapt`: MAP means (HERest MAP, ``MAPTAU``) through the one estimator.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .. import _threads
from .._validation import check_array
from ..errors import InvalidInputError, SequenceTooShortError
from ..graphs import kernels
from ..graphs.graph import Graph, utterance_graph
from ..graphs.models import PhoneModelSet
from ..graphs.training import EmbeddedTrainer
from ..hmm.emissions import GMMEmission
from ..data.lexicon import Lexicon
from ..mixture.estimate import GaussianUpdateOptions, update_gaussians
from ..mixture.stats import GaussianStats
from .fmllr import FmllrStats, accumulate_fmllr_stats, apply_fmllr, estimate_fmllr

logger = logging.getLogger(__name__)

__all__ = ["AdaptationStats", "SatResult", "adaptation_stats", "apply_speaker_transforms",
           "estimate_speaker_transforms", "log_det", "map_adapt", "speaker_fmllr_stats", "train_sat",
           "transcript_graph"]


@dataclass
class AdaptationStats:
    """Additive statistics of the frames of one speaker.

    Attributes
    ----------
    fmllr : FmllrStats of the original (untransformed) features
    gaussian : GaussianStats over the stacked Gaussians, of the transformed features (for MAP),
        or None when not asked for
    log_likelihood : float
        Total log-likelihood of the transformed features through their graphs, Jacobian
        ``log|det A|`` per frame included, so values under different transforms compare.
    n_frames, n_utterances : int
    """

    fmllr: FmllrStats
    gaussian: GaussianStats | None
    log_likelihood: float = 0.0
    n_frames: int = 0
    n_utterances: int = 0

    def __add__(self, other: "AdaptationStats") -> "AdaptationStats":
        if not isinstance(other, AdaptationStats):
            return NotImplemented
        gaussian = None if self.gaussian is None or other.gaussian is None else self.gaussian + other.gaussian
        return AdaptationStats(self.fmllr + other.fmllr, gaussian,
                               self.log_likelihood + other.log_likelihood, self.n_frames + other.n_frames,
                               self.n_utterances + other.n_utterances)

    def __radd__(self, other):
        if isinstance(other, int) and other == 0:
            return self
        return NotImplemented


def _check_per_utterance(**lists: Sequence) -> None:
    """One entry per utterance in every list (zip would silently drop the extra ones)."""
    if len({len(v) for v in lists.values()}) > 1:
        counts = ", ".join(f"{len(v)} {'feature arrays' if k == 'features' else k}" for k, v in lists.items())
        raise InvalidInputError(f"one entry per utterance needed: {counts}")


def log_det(W: np.ndarray | None) -> float:
    """``log|det A|`` of a transform ``[A b]`` (0 for None: no transform)."""
    return 0.0 if W is None else float(np.linalg.slogdet(np.asarray(W)[:, :-1])[1])


def transcript_graph(model: PhoneModelSet, words: Sequence[str], lexicon: Lexicon | None = None,
                     sil_prob: float = 0.5) -> Graph:
    """Composite HMM of ``words`` (silences dropped) for ``model``; ``lexicon`` defaults to the model's.

    A decoding lexicon whose phone list differs from the model's (a subset)
    is completed with the model's phones, so phone indices are the model's.
    """
    lexicon = model.lexicon if lexicon is None else lexicon
    words = [w for w in words if w != lexicon.silence]
    if lexicon.phones != model.phones:
        prons = {w: lexicon.prons(w) for w in dict.fromkeys(words)}
        prons.update({f"\0phone:{p}": [((p,), 0.0)] for p in model.phones[:-1]})
        lexicon = Lexicon.from_prons(prons, silence=model.phones[-1])
        if lexicon.phones != model.phones:
            raise InvalidInputError(f"the lexicon's phones {sorted(set(lexicon.phones) - set(model.phones))} "
                                    "are not in the model")
    context = getattr(model, "context", None)  # tied triphones (ContextDependency contract); None: monophones
    extra = {"context": context} if context is not None else {}
    return utterance_graph(lexicon, words, sil_prob, model.n_states, **extra)


def adaptation_stats(model: PhoneModelSet, X: np.ndarray, graph: Graph, transform: np.ndarray | None = None,
                     silence_weight: float = 1.0, silence_phone: int | None = None,
                     emission: GMMEmission | None = None, gaussian: bool = False) -> AdaptationStats:
    """Statistics of one utterance from forward-backward through ``graph``.

    Parameters
    ----------
    model : PhoneModelSet
    X : (T, D) original features
    graph : Graph
        The transcript's composite HMM (:func:`transcript_graph`, or a
        trainer's ``graph(words)``), or that of a first-pass hypothesis.
    transform : (D, D+1), optional
        The speaker's current transform: posteriors are computed on
        ``A x + b``; the fMLLR statistics are of ``x`` (so the next estimate
        is a whole transform, not an increment).
    silence_weight : float
        Posteriors of states of the silence phone are scaled by this (Kaldi's
        ``--silence-weight``, 0.01 in ``decode_fmllr.sh``): the transform is fitted to speech.
    silence_phone : int, optional
        Index of the silence phone in the model's phones (default: the last).
    emission : ``model.emission()``, to build once for many utterances
    gaussian : also gather the Gaussian statistics (for :func:`map_adapt`)

    Raises
    ------
    SequenceTooShortError
        No path through ``graph`` fits the frames.
    NonFiniteInputError, DimensionMismatchError
        ``X`` holds NaN or infinity, or not the model's number of features.
    """
    # NaN features have no path through any graph: name them, not the graph
    X = check_array(X, name="features", n_features=model.n_features)
    emission = model.emission() if emission is None else emission
    Xt = X if transform is None else apply_fmllr(transform, X)
    # an utterance visits few pdfs: only theirs are scored, and the statistics need only their Gaussians
    pdfs, local = graph.visited_pdfs
    sub = emission.subset(pdfs)
    ll, cache = sub.log_likelihood(np.ascontiguousarray(Xt))
    log_z, gamma, _, _ = kernels.forward_backward(ll, local, graph.arc_src, graph.arc_dst,
                                                  *graph.log_probs(*model.transition_log_probs()), len(pdfs))
    if not np.isfinite(log_z):
        raise SequenceTooShortError(f"no path through the graph in {len(X)} frames")
    if silence_weight != 1.0:
        sil = len(model.phones) - 1 if silence_phone is None else silence_phone
        gamma[:, np.isin(pdfs, graph.state_pdf[graph.state_phone == sil])] *= silence_weight
    post = sub.component_posteriors(gamma, cache)
    gs = None
    if gaussian:
        gs = GaussianStats.zeros(model.n_pdfs * model.n_mix, X.shape[1], "diag")
        gs.add_at(sub.components, GaussianStats.from_posteriors(Xt, post, "diag"))
    seen = np.repeat(gamma.any(axis=0), model.n_mix)
    comps = sub.components[seen]
    fm = accumulate_fmllr_stats(X, post[:, seen], model.means_[comps], model.covars_[comps])
    return AdaptationStats(fm, gs, float(log_z) + len(X) * log_det(transform), len(X), 1)


def speaker_fmllr_stats(model: PhoneModelSet, features: Sequence[np.ndarray], graphs: Sequence[Graph],
                        speakers: Sequence[str], transforms: Mapping[str, np.ndarray] | None = None,
                        silence_weight: float = 1.0, gaussian: bool = False) -> dict[str, AdaptationStats]:
    """:func:`adaptation_stats` summed per speaker (``speakers[i]`` says whose utterance ``i`` is).

    An utterance with no path through its graph is left out with a warning.
    """
    _check_per_utterance(features=features, graphs=graphs, speakers=speakers)
    transforms = transforms or {}
    out: dict[str, AdaptationStats] = {}
    emission = model.emission()
    usable = []
    for i, (X, g, spk) in enumerate(zip(features, graphs, speakers)):
        if g is None or len(X) < g.min_frames:
            logger.warning("utterance %d: no graph, or %d frames too short for it; left out of speaker %s's "
                           "adaptation statistics", i, len(X), spk)
        else:
            usable.append(i)

    def one(i: int) -> AdaptationStats | SequenceTooShortError:
        try:
            return adaptation_stats(model, features[i], graphs[i], transforms.get(speakers[i]), silence_weight,
                                    emission=emission, gaussian=gaussian)
        except SequenceTooShortError as exc:
            return exc

    # utterances on gmmhmm's threads, summed here in utterance order (the same totals for any thread count)
    with _threads.compute() as n_threads:
        for i, st in zip(usable, _threads.map_ahead(one, usable, n_threads)):
            spk = speakers[i]
            if isinstance(st, SequenceTooShortError):
                logger.warning("utterance %d (speaker %s): %s; left out of the adaptation statistics", i, spk, st)
                continue
            out[spk] = out[spk] + st if spk in out else st
    return out


def estimate_speaker_transforms(stats: Mapping[str, AdaptationStats | FmllrStats],
                                init: Mapping[str, np.ndarray] | None = None, n_iters: int = 40,
                                min_count: float = 20.0, update_type: str = "full") -> dict[str, np.ndarray]:
    """One :func:`~gmmhmm.adapt.fmllr.estimate_fmllr` transform per speaker (warm-started from ``init``)."""
    init = init or {}
    out = {}
    for spk, st in stats.items():
        fm = st.fmllr if isinstance(st, AdaptationStats) else st
        out[spk] = estimate_fmllr(fm, n_iters=n_iters, init=init.get(spk), min_count=min_count,
                                  update_type=update_type)
    return out


def apply_speaker_transforms(features: Sequence[np.ndarray], speakers: Sequence[str],
                             transforms: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Each utterance through its speaker's transform (unchanged when the speaker has none)."""
    _check_per_utterance(features=features, speakers=speakers)
    return [apply_fmllr(transforms[s], X) if s in transforms else X for X, s in zip(features, speakers)]


@dataclass
class SatResult:
    """What :func:`train_sat` produced besides the model (``trainer.model``).

    Attributes
    ----------
    transforms : {speaker: (D, D+1)} the training speakers' final transforms
    history : per-iteration average log-likelihood per frame of the adapted
        features, Jacobian included (the SAT objective)
    """

    transforms: dict[str, np.ndarray]
    history: list[float] = field(default_factory=list)


def train_sat(trainer: EmbeddedTrainer, features: Sequence[np.ndarray], transcripts: Sequence[Sequence[str]],
              speakers: Sequence[str], n_iter: int = 6, fmllr_iters: Sequence[int] = (0, 2, 4),
              fmllr_n_iters: int = 10, min_count: float = 20.0, silence_weight: float = 1.0) -> SatResult:
    """Speaker-adaptive training of ``trainer.model`` (already trained, speaker independent).

    On the iterations in ``fmllr_iters`` every speaker's transform is
    re-estimated from forward-backward through its transcripts; on every
    iteration the models are re-estimated (``trainer.accumulate`` /
    ``update``) from the features transformed by their speaker's transform.
    The trainer's graphs and update rules are used unchanged.
    """
    _check_per_utterance(features=features, transcripts=transcripts, speakers=speakers)
    transforms: dict[str, np.ndarray] = {}
    history: list[float] = []
    speakers = list(speakers)
    for it in range(n_iter):
        if it in fmllr_iters:
            graphs = [trainer.graph(t) for t in transcripts]
            stats = speaker_fmllr_stats(trainer.model, features, graphs, speakers, transforms, silence_weight)
            transforms = estimate_speaker_transforms(stats, transforms, fmllr_n_iters, min_count)
        adapted = apply_speaker_transforms(features, speakers, transforms)
        st = trainer.accumulate(adapted, transcripts)
        dropped = set(st.skipped)
        jacobian = sum(len(X) * log_det(transforms.get(s))
                       for i, (X, s) in enumerate(zip(features, speakers)) if i not in dropped)
        trainer.update(st)
        history.append((st.log_likelihood + jacobian) / st.n_frames)
        logger.info("SAT iteration %d/%d%s: avg log-lik/frame %.4f (%d speakers)", it + 1, n_iter,
                    " (fMLLR re-estimated)" if it in fmllr_iters else "", history[-1], len(transforms))
    return SatResult(transforms, history)


def map_adapt(model: PhoneModelSet, stats: GaussianStats | AdaptationStats, tau: float = 10.0,
              min_occupancy: float = 0.0) -> PhoneModelSet:
    """A copy of ``model`` with MAP-adapted means (HERest MAP, ``MAPTAU`` = ``tau``).

    ``mu = (tau mu_prior + sum gamma x) / (tau + sum gamma)`` with the model's
    means as the prior, by :func:`gmmhmm.mixture.update_gaussians` with
    ``map_tau``; variances, weights and transitions are the model's.
    """
    gs = stats.gaussian if isinstance(stats, AdaptationStats) else stats
    if gs is None:
        raise InvalidInputError("these adaptation statistics hold no Gaussian statistics; gather them with "
                                "gaussian=True")
    # a Gaussian without data keeps its prior mean: that is MAP, not a starved estimate
    new, _ = update_gaussians(gs, "diag", GaussianUpdateOptions(map_tau=tau, min_occupancy=min_occupancy,
                                                                warn_starved=False),
                              model.gaussian_params(), params="m")
    out = copy.deepcopy(model)
    out.set_gaussian_params(new)
    return out
