"""Tree statistics: one diagonal Gaussian's statistics per phone state in context (Kaldi's ``acc-tree-stats``).

For every triphone state seen in the training alignments, ``(left, phone,
right, state)``, the count, sum and sum of squares of the frames aligned to
it. They are additive (``+``), so shards of the data accumulate apart and
add up; :func:`gmmhmm.graphs.tree_build.build_tree` grows the trees from
their sums, and :func:`gmmhmm.graphs.triphones.init_tied_model` turns them
into one Gaussian per tree leaf.

Contexts follow :mod:`gmmhmm.graphs.context`: the phone before and after in
the aligned phone sequence, so a word's first and last phones see the
neighbouring word's phone, or silence when the optional silence was taken,
and the utterance ends are silence.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse

from .._validation import check_array
from ..errors import InvalidInputError
from ..mixture.stats import GaussianStats
from . import kernels
from .graph import Graph, utterance_graph
from .models import PhoneModelSet

logger = logging.getLogger(__name__)

Context = tuple[str, str, str, int]  # (left, phone, right, state)


@dataclass
class TreeStats:
    """Single-Gaussian diagonal statistics per context key (left, phone, right, state).

    Attributes
    ----------
    keys : list of (str, str, str, int)
    gaussian : GaussianStats ('diag'), row ``k`` for ``keys[k]``
    log_likelihood : float
        Total alignment score of the accumulated utterances.
    n_utterances : int
    skipped : list of int
        Indices of utterances with no alignment.
    """

    keys: list[Context]
    gaussian: GaussianStats
    log_likelihood: float = 0.0
    n_utterances: int = 0
    skipped: list = field(default_factory=list)

    @classmethod
    def zeros(cls, n_features: int) -> "TreeStats":
        return cls([], GaussianStats.zeros(0, n_features, "diag"))

    @property
    def n_frames(self) -> float:
        return float(self.gaussian.n.sum())

    def key_indices(self, phones: Sequence[str], n_states: int) -> np.ndarray:
        """``(left, phone, right, state)`` of every key as indices into ``phones``, (n_keys, 4).

        Raises
        ------
        InvalidInputError
            A key names a phone not in ``phones`` or a state outside ``0 .. n_states - 1``
            (statistics of another model: a state past the last would be read as the next phone's).
        """
        index = {p: i for i, p in enumerate(phones)}
        try:
            keys = np.array([(index[l], index[p], index[r], j) for l, p, r, j in self.keys], dtype=np.int64)
        except KeyError as exc:
            raise InvalidInputError(f"tree statistics name phone {exc.args[0]!r}, not one of the phones") from None
        keys = keys.reshape(-1, 4)
        if np.any((keys[:, 3] < 0) | (keys[:, 3] >= n_states)):
            raise InvalidInputError(f"tree statistics name states outside 0 .. {n_states - 1}")
        return keys

    def __add__(self, other: "TreeStats") -> "TreeStats":
        if not isinstance(other, TreeStats):
            return NotImplemented
        if other.gaussian.n_features != self.gaussian.n_features:
            raise InvalidInputError(f"cannot add tree statistics of {self.gaussian.n_features} and "
                                    f"{other.gaussian.n_features} features")
        index = {k: i for i, k in enumerate(self.keys)}
        keys = list(self.keys) + [k for k in other.keys if k not in index]
        index = {k: i for i, k in enumerate(keys)}
        where = np.array([index[k] for k in other.keys], dtype=np.int64)
        a, b = self.gaussian, other.gaussian
        g = GaussianStats.zeros(len(keys), a.n_features, "diag")
        g.n[:len(a.n)], g.s1[:len(a.n)], g.s2[:len(a.n)] = a.n, a.s1, a.s2
        np.add.at(g.n, where, b.n)
        np.add.at(g.s1, where, b.s1)
        np.add.at(g.s2, where, b.s2)
        return TreeStats(keys, g, self.log_likelihood + other.log_likelihood,
                         self.n_utterances + other.n_utterances, self.skipped + other.skipped)

    def __radd__(self, other):
        if isinstance(other, int) and other == 0:  # sum(list_of_stats)
            return self
        return NotImplemented


def path_contexts(graph: Graph, phones: Sequence[str], states: np.ndarray, arcs: np.ndarray,
                  silence: str) -> list[Context]:
    """Context key of every frame of a Viterbi path through ``graph``.

    Phone boundaries are the arcs entering a phone's first state; within a
    phone the ``j``-th run of one state is state ``j`` (left-to-right phone
    models without skips).
    """
    T = len(states)
    phone_start = np.ones(T, dtype=bool)
    phone_start[1:] = graph.arc_phone_start[arcs[1:]]
    new_run = phone_start.copy()
    new_run[1:] |= states[1:] != states[:-1]
    seg = np.cumsum(phone_start) - 1
    run = np.cumsum(new_run) - 1
    state = run - run[np.flatnonzero(phone_start)][seg]
    seq = [phones[int(p)] for p in graph.state_phone[states[phone_start]]]
    ctx = [silence, *seq, silence]
    return [(ctx[s], ctx[s + 1], ctx[s + 2], int(j)) for s, j in zip(seg, state)]


def accumulate_tree_stats(model: PhoneModelSet, features: Sequence[np.ndarray],
                          transcripts: Sequence[Sequence[str]], sil_prob: float = 0.5) -> TreeStats:
    """Tree statistics from Viterbi alignments of ``features`` to ``transcripts`` under ``model``.

    Utterances with no path through their graph (too short) are skipped
    and listed in ``skipped``.
    """
    if len(features) != len(transcripts):
        raise InvalidInputError(f"{len(features)} feature arrays but {len(transcripts)} transcripts")
    D = model.n_features
    feats = [check_array(X, name=f"features[{i}]", n_features=D) for i, X in enumerate(features)]
    lexicon, log_trans = model.lexicon, model.transition_log_probs()
    graphs: dict[tuple[str, ...], Graph] = {}
    index: dict[Context, int] = {}
    ids, rows, skipped = [], [], []
    total, n_utts = 0.0, 0
    for i, (X, words) in enumerate(zip(feats, transcripts)):
        key = tuple(words)
        if key not in graphs:
            graphs[key] = utterance_graph(lexicon, list(words), sil_prob, model.n_states, context=model.context)
        g = graphs[key]
        score = -np.inf
        if len(X) >= g.min_frames:
            ll = model.state_log_likelihood(X)
            score, states, arcs = kernels.viterbi(ll, g.state_pdf, g.arc_src, g.arc_dst,
                                                  *g.log_probs(*log_trans), 0.0)
        if not np.isfinite(score):
            skipped.append(i)
            logger.warning("utterance %d: no alignment to %s; skipped", i, list(words))
            continue
        ctx = path_contexts(g, model.phones, states, arcs, model.context.silence)
        ids.append(np.array([index.setdefault(c, len(index)) for c in ctx], dtype=np.int64))
        rows.append(X)
        total += float(score)
        n_utts += 1
    keys = list(index)
    if not rows:
        return TreeStats(keys, GaussianStats.zeros(0, D, "diag"), 0.0, 0, skipped)
    idx = np.concatenate(ids)
    X = np.concatenate(rows).astype(np.float64)
    onehot = scipy.sparse.csr_matrix((np.ones(len(idx)), (idx, np.arange(len(idx)))), shape=(len(keys), len(idx)))
    g = GaussianStats("diag", np.asarray(onehot.sum(axis=1)).ravel(), onehot @ X, onehot @ (X * X))
    logger.info("tree statistics: %d contexts from %d frames of %d utterances (%d skipped)",
                len(keys), len(idx), n_utts, len(skipped))
    return TreeStats(keys, g, total, n_utts, skipped)
