"""Embedded Baum-Welch training of phone models from word transcripts.

As HTK's HCompV + HERest + HHEd MU and Kaldi's monophone stage: each
utterance's transcript becomes a composite HMM (optional silence at the ends
and between words); the E-step accumulates additive statistics over all
utterances and the M-step re-estimates every phone at once::

    trainer = EmbeddedTrainer(Lexicon.digits())
    trainer.flat_start(features)
    for _ in range(n_iter):
        stats = trainer.accumulate(features, transcripts)   # any shard split, then +
        trainer.update(stats)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from .. import _threads
from .._validation import check_array
from ..errors import ConvergenceError, InvalidInputError, InvalidParameterError
from ..mixture.estimate import GaussianUpdateOptions, update_gaussians
from ..mixture.mixup import mix_schedule
from ..mixture.stats import GaussianStats
from ..hmm.base import frame_batches
from . import kernels
from .graph import Graph, utterance_graph
from .lexicon import Lexicon
from .context import ContextDependency
from .models import PhoneModelSet

logger = logging.getLogger(__name__)


@dataclass
class EmbeddedStats:
    """Additive statistics of one E-step pass (Kaldi's accumulators).

    Attributes
    ----------
    gaussian : GaussianStats over the stacked ``n_pdfs * n_mix`` components
    trans_self, trans_leave : (n_pdfs,) expected self-loop / leaving transition counts
    log_likelihood : float, total over the accumulated utterances
    n_frames, n_utterances : int
    skipped : list of int
        Indices of the utterances left out (too short, or no path through their graph).
    """

    gaussian: GaussianStats
    trans_self: np.ndarray
    trans_leave: np.ndarray
    log_likelihood: float = 0.0
    n_frames: int = 0
    n_utterances: int = 0
    skipped: list = field(default_factory=list)

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)

    def __add__(self, other: "EmbeddedStats") -> "EmbeddedStats":
        if not isinstance(other, EmbeddedStats):
            return NotImplemented
        return EmbeddedStats(self.gaussian + other.gaussian, self.trans_self + other.trans_self,
                             self.trans_leave + other.trans_leave,
                             self.log_likelihood + other.log_likelihood, self.n_frames + other.n_frames,
                             self.n_utterances + other.n_utterances, self.skipped + other.skipped)

    def __radd__(self, other):
        if isinstance(other, int) and other == 0:  # sum(list_of_stats)
            return self
        return NotImplemented


def _transition_counts(graphs: list[Graph], arc_counts: list[np.ndarray], final_counts: list[np.ndarray],
                       n_pdfs: int) -> tuple[np.ndarray, np.ndarray]:
    """Expected (self-loop, leaving) counts per pdf from each graph's arc and exit counts."""
    idx, w = [np.zeros(0, dtype=np.int64)], [np.zeros(0)]
    for g, arcs, finals in zip(graphs, arc_counts, final_counts):
        fin = g.final_tid >= 0
        idx += [g.arc_tid + n_pdfs * (g.arc_kind != 0), g.final_tid[fin] + n_pdfs]  # leaving: second half
        w += [arcs, finals[fin]]
    counts = np.bincount(np.concatenate(idx), np.concatenate(w), minlength=2 * n_pdfs)
    return counts[:n_pdfs], counts[n_pdfs:]


@dataclass
class PosteriorBatch:
    """Posteriors of a batch of utterances (:meth:`EmbeddedTrainer.posteriors`).

    Attributes
    ----------
    idx : list of int
        The utterances, in order; their frames are stacked in ``X``.
    X : (N, D) stacked features
    n_pdfs, n_mix : the model's pdfs and Gaussians per pdf
    pieces : list of ``(a, b, emission, cache, occupancy)``
        Per aligned utterance (a skipped one has none: zero occupancy): its rows ``a:b`` of ``X``,
        the emission of the pdfs its graph visits (``emission.subset``), that emission's cache
        and the (b - a, its pdfs) occupancies.
    """

    idx: list[int]
    X: np.ndarray
    n_pdfs: int
    n_mix: int
    pieces: list = field(default_factory=list)

    def occupancy(self) -> np.ndarray:
        """State (pdf) occupancies of every frame, (N, n_pdfs)."""
        occ = np.zeros((len(self.X), self.n_pdfs))
        for a, b, sub, _, gamma in self.pieces:
            occ[a:b, sub.states] = gamma
        return occ

    def component_posteriors(self, pdf_weights: np.ndarray | None = None) -> Iterator[tuple]:
        """Per aligned utterance ``(a, b, components, posteriors)``: its rows ``a:b`` of ``X``, the
        Gaussians of the pdfs its graph visits (indices among the model's ``n_pdfs * n_mix``) and their
        posteriors (b - a, len(components)), occupancies scaled by ``pdf_weights`` (n_pdfs,) if given.
        Consumes the caches: once per batch."""
        for a, b, sub, cache, gamma in self.pieces:
            yield a, b, sub.components, sub.component_posteriors(
                gamma if pdf_weights is None else gamma * pdf_weights[sub.states], cache)

    def add_gaussian_stats(self, stats: GaussianStats, rows: np.ndarray | None = None) -> None:
        """Add the Gaussians' statistics of ``X`` (or of ``rows``, other features of the same frames) to
        ``stats`` (all n_pdfs * n_mix Gaussians, diagonal). Consumes the caches: once per batch."""
        for a, b, sub, cache, gamma in self.pieces:
            if rows is None:
                stats.add_at(sub.components, sub.accumulate(self.X[a:b], gamma, cache))
            else:
                post = sub.component_posteriors(gamma, cache)
                stats.add_at(sub.components, GaussianStats.from_posteriors(rows[a:b], post, "diag"))


class EmbeddedTrainer:
    """Accumulate / update cycle of embedded re-estimation over a :class:`PhoneModelSet`.

    Parameters
    ----------
    lexicon : Lexicon
    n_states : int
        Emitting states per phone model.
    sil_prob : float
        Probability of the optional silence at each word boundary.
    var_floor_frac : float
        Variance floor as a fraction of the global variance (HCompV ``-f``).
    min_occupancy : float
        A Gaussian seen for fewer frames keeps its previous parameters.
    feature_config : dict, optional
        Stored in the model for decoders.
    context : ContextDependency, optional
        The model's pdfs of phones in context (default: monophones). Graphs
        follow ``self.model.context``, so a trainer may also be given a
        model to continue from by setting ``trainer.model``.
    """

    def __init__(self, lexicon: Lexicon, n_states: int = 3, sil_prob: float = 0.5,
                 var_floor_frac: float = 0.01, min_occupancy: float = 2.0,
                 feature_config: dict | None = None, context: ContextDependency | None = None) -> None:
        if not 0.0 < var_floor_frac <= 1.0:
            raise InvalidParameterError(f"var_floor_frac must be in (0, 1], got {var_floor_frac}")
        self.lexicon = lexicon
        self.sil_prob = sil_prob
        self.min_occupancy = min_occupancy
        self.var_floor_frac = var_floor_frac
        self.model = PhoneModelSet(lexicon.phones, n_states=n_states, lexicon_text=lexicon.to_text(),
                                   feature_config=feature_config, context=context)
        self._graphs: dict[tuple[str, ...], Graph] = {}
        self._graphs_context: ContextDependency | None = None  # the context the cached graphs were built for
        self._batch_elements = 1 << 22  # posterior entries held before a statistics matmul
        self._reported_short: set[tuple] = set()  # too-short utterances already warned about

    def graph(self, words: Sequence[str]) -> Graph:
        """The training graph of a transcript under the current model's context (cached)."""
        if self._graphs_context is not self.model.context:
            self._graphs, self._graphs_context = {}, self.model.context
        key = tuple(words)
        if key not in self._graphs:
            self._graphs[key] = utterance_graph(self.lexicon, list(words), self.sil_prob, self.model.n_states,
                                                context=self.model.context)
        return self._graphs[key]

    def flat_start(self, features: Sequence[np.ndarray]) -> PhoneModelSet:
        """Every state at the global mean and variance of ``features`` (HCompV)."""
        if len(features) == 0:
            raise InvalidInputError("no training utterances")
        n, s1, s2 = 0, 0.0, 0.0
        for i, X in enumerate(features):
            X = check_array(X, name=f"features[{i}]")
            n += len(X)
            s1 = s1 + X.sum(0)
            s2 = s2 + (X * X).sum(0)
        mean = s1 / n
        var = np.maximum(s2 / n - mean**2, 1e-10)
        self.model.init_flat(mean, var, self.var_floor_frac * var)
        return self.model

    def accumulate(self, features: Sequence[np.ndarray], transcripts: Sequence[Sequence[str]],
                   stats_features: Sequence[np.ndarray] | None = None) -> EmbeddedStats:
        """E-step over utterances: forward-backward on each composite HMM.

        Utterances shorter than their transcript's fewest frames are skipped
        (and counted in ``n_skipped``), as HERest does.

        With ``stats_features`` (one array per utterance, same frames, any
        dimension) the posteriors come from the model on ``features`` and the
        Gaussian statistics from ``stats_features``: single-pass retraining
        into a new feature space (HTK HERest ``-r``, the two-model pass).
        """
        m = self.model
        if stats_features is not None:
            if len(stats_features) != len(features):
                raise InvalidInputError(f"{len(stats_features)} stats feature arrays for {len(features)} utterances")
            stats_features = [check_array(Y, name=f"stats_features[{i}]") for i, Y in enumerate(stats_features)]
            if len({Y.shape[1] for Y in stats_features}) > 1:
                raise InvalidInputError("stats_features have different numbers of columns")
            for i, (X, Y) in enumerate(zip(features, stats_features)):  # per utterance: batch totals can agree
                if len(X) != len(Y):
                    raise InvalidInputError(f"utterance {i}: stats_features and features have other frame counts "
                                            f"({len(Y)} and {len(X)})")
        D = m.n_features if stats_features is None else stats_features[0].shape[1]
        record = EmbeddedStats(GaussianStats.zeros(m.n_pdfs * m.n_mix, D, "diag"), np.zeros(m.n_pdfs),
                               np.zeros(m.n_pdfs))
        for batch in self.posteriors(features, transcripts, record):
            if stats_features is None:
                batch.add_gaussian_stats(record.gaussian)
            else:
                batch.add_gaussian_stats(record.gaussian, np.concatenate([stats_features[i] for i in batch.idx]))
        return record

    def posteriors(self, features: Sequence[np.ndarray], transcripts: Sequence[Sequence[str]],
                   record: EmbeddedStats | None = None) -> Iterator["PosteriorBatch"]:
        """Forward-backward over batches of utterances, for any accumulator.

        Yields a :class:`PosteriorBatch` per batch of utterances: their
        stacked features and, per utterance, the posteriors of the states its
        graph visits (only those are scored). Skipped utterances are in its
        ``idx`` with zero occupancies. When the batches are exhausted,
        ``record`` (an :class:`EmbeddedStats`) holds the transition counts,
        log-likelihood, frame, utterance and skipped totals.

        The next batches are scored and run through forward-backward on
        gmmhmm's threads (:func:`gmmhmm.set_num_threads`) while the caller
        accumulates the current one, inside a section where BLAS runs
        single-threaded; results come in batch order, so statistics summed
        by the caller do not depend on the thread count.
        """
        m = self.model
        if len(features) != len(transcripts):
            raise InvalidInputError(f"{len(features)} feature arrays but {len(transcripts)} transcripts")
        D = m.n_features
        record = EmbeddedStats(GaussianStats.zeros(0, D, "diag"), np.zeros(m.n_pdfs),
                               np.zeros(m.n_pdfs)) if record is None else record
        emission = m.emission()
        log_self, log_leave = m.transition_log_probs()
        skipped = []
        feats = [check_array(X, name=f"features[{i}]", n_features=D) for i, X in enumerate(features)]
        keys = [tuple(words) for words in transcripts]
        graphs = {key: self.graph(key) for key in dict.fromkeys(keys)}
        for i, (X, key) in enumerate(zip(feats, keys)):
            if len(X) < graphs[key].min_frames:
                skipped.append(i)
                seen = (i, len(X), key)  # the same every EM iteration: warned about once
                logger.log(logging.DEBUG if seen in self._reported_short else logging.WARNING,
                           "utterance %d: %d frames < %d needed by %s; skipped",
                           i, len(X), graphs[key].min_frames, transcripts[i])
                self._reported_short.add(seen)
        dropped = set(skipped)
        keep = [i for i in range(len(feats)) if i not in dropped]
        # Per distinct transcript: arc weights computed once, and the arc / exit counts of its
        # utterances summed, to be scattered per pdf once at the end.
        weights = {key: graphs[key].log_probs(log_self, log_leave) for key in dict.fromkeys(keys[i] for i in keep)}
        arc_sum = {key: np.zeros(len(graphs[key].arc_src)) for key in weights}
        final_sum = {key: np.zeros(graphs[key].n_states) for key in weights}
        budget = max(256, self._batch_elements // (m.n_pdfs * m.n_mix))
        batches = [keep[first:stop] for first, stop in frame_batches([len(feats[i]) for i in keep], budget)]

        def score(idx: list[int]):
            """Emission scores and forward-backward of one batch (on a worker thread)."""
            Xb = np.concatenate([feats[i] for i in idx])
            offsets = np.cumsum([0] + [len(feats[i]) for i in idx])
            out = []
            for i, a, b in zip(idx, offsets[:-1], offsets[1:]):
                g = graphs[keys[i]]
                pdfs, local = g.visited_pdfs
                sub = emission.subset(pdfs)
                ll, cache = sub.log_likelihood(Xb[a:b])
                out.append((sub, cache, kernels.forward_backward(ll, local, g.arc_src, g.arc_dst, *weights[keys[i]],
                                                                 len(pdfs))))
            return Xb, offsets, out

        # the next batches are scored on gmmhmm's threads while the caller accumulates this one;
        # everything is summed here, in batch order, so the totals do not depend on the threads
        with _threads.compute() as n_threads:
            for idx, (Xb, offsets, scored) in zip(batches, _threads.map_ahead(score, batches, n_threads)):
                batch = PosteriorBatch(idx, Xb, m.n_pdfs, m.n_mix)
                for i, a, b, (sub, cache, (log_z, gamma, arc_counts, final_counts)) in zip(
                        idx, offsets[:-1], offsets[1:], scored):
                    if not np.isfinite(log_z):
                        skipped.append(i)
                        logger.warning("utterance %d: no path through %s; skipped", i, transcripts[i])
                        continue
                    batch.pieces.append((a, b, sub, cache, gamma))
                    arc_sum[keys[i]] += arc_counts
                    final_sum[keys[i]] += final_counts
                    record.log_likelihood += log_z
                    record.n_frames += b - a
                    record.n_utterances += 1
                yield batch
        ts, tl = _transition_counts([graphs[k] for k in arc_sum], list(arc_sum.values()),
                                    list(final_sum.values()), m.n_pdfs)
        record.trans_self += ts
        record.trans_leave += tl
        record.skipped = sorted(record.skipped + skipped)

    def update_options(self) -> GaussianUpdateOptions:
        """HERest's rules as estimator settings: the flat-start variance floor vector
        (``var_floor_frac`` of the global variance), ``min_occupancy`` and HTK's
        ``MINMIX`` weight floor 1e-5."""
        return GaussianUpdateOptions(variance_floor=self.model.var_floor_, min_occupancy=self.min_occupancy,
                                     min_weight=1e-5, warn_starved=False)

    def update(self, stats: EmbeddedStats) -> PhoneModelSet:
        """M-step: weights, means, floored variances and self-loops from ``stats``."""
        m = self.model
        if stats.n_frames == 0:
            raise ConvergenceError("no utterance could be aligned to its transcript; nothing to re-estimate")
        if stats.gaussian.n_components != m.n_pdfs * m.n_mix:
            raise InvalidInputError(
                f"stats hold {stats.gaussian.n_components} Gaussians but the model has {m.n_pdfs * m.n_mix}")
        new, report = update_gaussians(stats.gaussian, "diag", self.update_options(), m.gaussian_params())
        if report.n_kept:  # expected after mix-up: HERest keeps them silently too
            logger.info("%d of %d Gaussian(s) had occupancy <= %g and kept their parameters",
                        report.n_kept, stats.gaussian.n_components, self.min_occupancy)
        m.set_gaussian_params(new)
        out = stats.trans_self + stats.trans_leave
        m.self_loop_ = np.where(out > 0, stats.trans_self / np.maximum(out, 1e-300), m.self_loop_).clip(1e-3, 0.999)
        return m

    def fit(self, features: Sequence[np.ndarray], transcripts: Sequence[Sequence[str]],
            mixtures: Sequence[int] = (1, 2, 4, 8), n_iter: int | Sequence[int] = 4, *,
            checkpoint_dir: str | os.PathLike | None = None, resume: bool = False,
            flat_start: bool = True) -> list[float]:
        """Flat start, then re-estimation and mixture splitting on the ``mixtures`` schedule.

        ``flat_start=False`` starts from the current ``self.model`` instead
        (e.g. tied triphones initialised from monophones).

        With ``checkpoint_dir`` the models are checkpointed after every
        iteration; ``resume=True`` continues from the last checkpoint (same
        data and schedule) and ends with the model an uninterrupted run gives,
        since neither re-estimation nor splitting draws random numbers.

        Returns the average per-frame log-likelihood of every E-step.
        """
        from .. import checkpoint

        mixes, iters = mix_schedule(mixtures, n_iter, "mixtures")
        schedule = [n_mix for n_mix, k in zip(mixes, iters) for _ in range(k)]
        path = checkpoint.checkpoint_path(checkpoint_dir) if checkpoint_dir is not None else None
        fingerprint = ""
        if path is not None:
            # data and transcripts identify the run: resuming on other data is refused
            fingerprint = checkpoint._fingerprint(*[np.asarray(X) for X in features],
                                                  np.frombuffer(repr(list(map(list, transcripts))).encode(), np.uint8))
            path.parent.mkdir(parents=True, exist_ok=True)
        loaded = checkpoint.load_checkpoint(path) if (resume and path is not None) else None
        if loaded is not None:
            model, state = loaded
            if state.get("schedule") != schedule or state.get("fingerprint") != fingerprint:
                raise InvalidInputError(f"{path}: checkpoint of another schedule or other training data; "
                                        "resume with the same data and config, or start afresh")
            self.model, history, done = model, list(state["history"]), state["iteration"]
            logger.info("resuming embedded training after iteration %d of %d", done, len(schedule))
        else:
            if flat_start:
                self.flat_start(features)
            history, done = [], 0
        for step, n_mix in enumerate(schedule):
            if step < done:
                continue
            if n_mix != self.model.n_mix:
                self.model.split_mixtures(n_mix)
            stats = self.accumulate(features, transcripts)
            self.update(stats)
            history.append(stats.log_likelihood / stats.n_frames)
            logger.info("mix %d iteration %d/%d: avg log-lik/frame %.4f (%d utts, %d skipped)",
                        n_mix, step + 1, len(schedule), history[-1], stats.n_utterances, stats.n_skipped)
            if path is not None:
                checkpoint.save_checkpoint(path, self.model, {"iteration": step + 1, "history": history,
                                                              "schedule": schedule, "fingerprint": fingerprint})
        return history
