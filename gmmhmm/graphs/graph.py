"""State graphs built from phone models: utterance HMMs for training and alignment.

Every graph is a network of *units* (a word's or a phone's chain of
left-to-right phone models) joined by *links*. Expanding it gives emitting
states and arcs, the form the compiled kernels in :mod:`.kernels` walk.

Arcs inside a phone model refer to the model's transition parameters by
id (``tid``: the state's pdf, ``kind`` 0 = self-loop, 1 = leave),
so the same graph serves every training iteration; ``extra`` holds the
fixed log weights a graph adds (optional-silence probabilities). Decoding
graphs with null nodes and language models are :mod:`gmmhmm.search`.

End semantics are those of every HMM in the package (see
:mod:`gmmhmm.hmm.base`): a unit is left only through its last state, whose
leave probability ``1 - self_loop`` is also its exit probability out of the
graph (``final``), exactly like a dense model's ``endprob_``; the exits are
counted (``final_counts``) and re-estimated with the other leave
transitions. :meth:`Graph.dense` writes a graph as the equivalent dense
``(startprob, transmat, endprob)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..errors import InvalidParameterError
from .context import ContextDependency, MonophoneContext
from .lexicon import Lexicon


@dataclass
class Graph:
    """Emitting states and arcs of a search or training graph.

    Attributes
    ----------
    labels : list of str
        Names of the unit labels (words, or phones in a phone loop).
    state_pdf, state_phone : (S,) int
        Emission pdf (monophones: phone * n_states + state) and phone of each state.
    arc_src, arc_dst, arc_tid, arc_kind : (A,) int
    arc_extra : (A,) float
        Grammar log weight added to the transition probability.
    arc_label : (A,) int
        Label of the unit an arc enters, -1 for arcs inside a unit.
    arc_phone_start : (A,) bool
        Arc enters the first state of a phone model.
    init_extra, init_label : (S,)
        Log weight of starting in a state, and the label started.
    final_tid, final_extra : (S,)
        Exit transition id and grammar log weight of ending in a state
        (``-inf``: not a final state).
    """

    labels: list[str]
    state_pdf: np.ndarray
    state_phone: np.ndarray
    arc_src: np.ndarray
    arc_dst: np.ndarray
    arc_tid: np.ndarray
    arc_kind: np.ndarray
    arc_extra: np.ndarray
    arc_label: np.ndarray
    arc_phone_start: np.ndarray
    init_extra: np.ndarray
    init_label: np.ndarray
    final_tid: np.ndarray
    final_extra: np.ndarray

    @property
    def n_states(self) -> int:
        return len(self.state_pdf)

    @cached_property  # graphs are not modified once built; training checks it per utterance
    def min_frames(self) -> int:
        """Fewest frames of any complete path (breadth-first from the start states)."""
        dist = np.where(np.isfinite(self.init_extra), 1, np.iinfo(np.int64).max // 2)
        for _ in range(self.n_states):
            cand = dist[self.arc_src] + 1
            new = dist.copy()
            np.minimum.at(new, self.arc_dst, cand)
            if np.array_equal(new, dist):
                break
            dist = new
        ends = dist[np.isfinite(self.final_extra)]
        return int(ends.min()) if ends.size else np.iinfo(np.int64).max

    @cached_property
    def visited_pdfs(self) -> tuple[np.ndarray, np.ndarray]:
        """``(pdfs, local)``: the pdfs the states emit with (sorted, distinct) and each state's index among
        them, so that an utterance is scored on those pdfs alone (``emission.subset(pdfs)``) and walked
        with ``local`` in place of :attr:`state_pdf`."""
        pdfs, local = np.unique(self.state_pdf, return_inverse=True)
        return pdfs, local.astype(self.state_pdf.dtype, copy=False)

    def log_probs(self, log_self: np.ndarray, log_leave: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Arc, initial and final log weights under the given transition parameters."""
        trans = np.where(self.arc_kind == 0, log_self[self.arc_tid], log_leave[self.arc_tid])
        final = np.where(np.isfinite(self.final_extra),
                         log_leave[np.maximum(self.final_tid, 0)] + self.final_extra, -np.inf)
        return trans + self.arc_extra, self.init_extra, final

    def dense(self, log_self: np.ndarray, log_leave: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The graph as a dense HMM over its states: ``(startprob (S,), transmat (S, S), endprob (S,))``.

        With the emissions ``ll[:, state_pdf]`` the dense kernels
        (:mod:`gmmhmm.hmm.kernels`) give the same likelihood and posteriors
        as :func:`.kernels.forward_backward` (parallel arcs between two
        states add up; Viterbi then sees their sum, the graph search their
        maximum). For small graphs: tests, debugging, word models.
        """
        logp, init, final = self.log_probs(log_self, log_leave)
        transmat = np.zeros((self.n_states, self.n_states))
        np.add.at(transmat, (self.arc_src, self.arc_dst), np.exp(logp))
        return np.exp(init), transmat, np.exp(final)


def build_graph(
    labels: list[str],
    units: list[tuple[int, list[int]]],
    links: list[tuple[int, int, float]],
    starts: dict[int, float],
    ends: dict[int, float],
    n_states: int = 3,
    pdfs: Sequence[Sequence[Sequence[int]]] | None = None,
) -> Graph:
    """Expand a unit network into a :class:`Graph`.

    Parameters
    ----------
    labels : list of str
    units : list of (label index, phone indices)
        Label -1: a continuation of the unit before it in a word (entering
        it starts no word).
    links : list of (from unit, to unit, log weight)
    starts, ends : dict unit -> log weight of starting / ending in that unit
    n_states : int
        Emitting states per phone model.
    pdfs : per unit, per phone, the ``n_states`` pdf ids, optional
        From a :class:`~gmmhmm.graphs.context.ContextDependency`; default the
        monophone layout ``phone * n_states + state``. A state's transition
        id is its pdf.
    """
    first, last = [], []
    pdf, phone = [], []
    arcs: list[tuple[int, int, int, int, float, int, bool]] = []  # src dst tid kind extra label phone_start
    for u, (_label, phones) in enumerate(units):
        if not phones:
            raise InvalidParameterError("a graph unit has no phones")
        first.append(len(pdf))
        for k, p in enumerate(phones):
            base = len(pdf)
            ids = range(p * n_states, (p + 1) * n_states) if pdfs is None else pdfs[u][k]
            for j, q in enumerate(ids):
                pdf.append(q)
                phone.append(p)
                s = base + j
                arcs.append((s, s, q, 0, 0.0, -1, False))
                if j + 1 < n_states:
                    arcs.append((s, s + 1, q, 1, 0.0, -1, False))
            if k + 1 < len(phones):  # into the next phone of the unit
                arcs.append((base + n_states - 1, base + n_states, pdf[-1], 1, 0.0, -1, True))
        last.append(len(pdf) - 1)
    for u, v, w in links:
        s = last[u]
        arcs.append((s, first[v], pdf[s], 1, float(w), units[v][0], True))
    S = len(pdf)
    init_extra = np.full(S, -np.inf)
    init_label = np.full(S, -1, dtype=np.int64)
    for u, w in starts.items():
        init_extra[first[u]] = w
        init_label[first[u]] = units[u][0]
    final_tid = np.full(S, -1, dtype=np.int64)
    final_extra = np.full(S, -np.inf)
    for u, w in ends.items():
        final_tid[last[u]] = pdf[last[u]]
        final_extra[last[u]] = w
    a = list(zip(*arcs))
    return Graph(
        labels=list(labels),
        state_pdf=np.array(pdf, dtype=np.int64),
        state_phone=np.array(phone, dtype=np.int64),
        arc_src=np.array(a[0], dtype=np.int64),
        arc_dst=np.array(a[1], dtype=np.int64),
        arc_tid=np.array(a[2], dtype=np.int64),
        arc_kind=np.array(a[3], dtype=np.int64),
        arc_extra=np.array(a[4], dtype=np.float64),
        arc_label=np.array(a[5], dtype=np.int64),
        arc_phone_start=np.array(a[6], dtype=bool),
        init_extra=init_extra,
        init_label=init_label,
        final_tid=final_tid,
        final_extra=final_extra,
    )


def utterance_graph(lexicon: Lexicon, words: list[str], sil_prob: float = 0.5, n_states: int = 3,
                    context: ContextDependency | None = None) -> Graph:
    """Composite HMM of a transcript: optional silence at the ends and between words.

    Every pronunciation of a word is a parallel path entered with its log
    weight (:meth:`Lexicon.prons`). Labels are the transcript's words in order
    followed by ``sil``, so a path's word labels spell the transcript.

    With a ``context`` (default: monophones) a word's first and last phones
    take their pdfs in cross-word context: the neighbouring word's phone, or
    silence when the optional silence between them is taken (or at the
    utterance ends). A pronunciation gets one unit per distinct pdf sequence
    over its (left, right) contexts, so monophone graphs are unchanged; when
    a pronunciation of two or more phones has several, its first phone gets a
    unit per distinct left-context pdfs, its last phone one per distinct
    right-context pdfs and its middle one unit (these carry no word label),
    rather than a whole copy per combination.
    """
    if not 0.0 < sil_prob < 1.0:
        raise InvalidParameterError(f"sil_prob must be in (0, 1), got {sil_prob}")
    lexicon.check_words(words)
    if not words:
        raise InvalidParameterError("transcript has no words")
    sil = lexicon.silence
    if context is None:
        context = MonophoneContext(lexicon.phones, n_states, sil)
    elif context.n_states != n_states or context.silence != sil:
        raise InvalidParameterError(f"context of {context.n_states} states with silence {context.silence!r} "
                                    f"for graphs of {n_states} states with silence {sil!r}")
    labels = list(words) + [sil]
    sil_label, sil_phone = len(words), lexicon.phone_index(sil)
    sil_pdfs = [context.pdfs(sil, sil, sil)]  # context independent
    units: list[tuple[int, list[int]]] = [(sil_label, [sil_phone])]  # unit 0: leading silence
    unit_pdfs: list[list[tuple[int, ...]]] = [sil_pdfs]
    links: list[tuple[int, int, float]] = []
    ls, ln = float(np.log(sil_prob)), float(np.log1p(-sil_prob))
    prons = [lexicon.prons(w) for w in words]
    # per word position and pronunciation: its entry units with their left contexts, its exit
    # units with their right contexts, its first and last phone and its log weight
    alts: list[list[tuple[list[tuple[int, dict]], list[tuple[int, dict]], str, str, float]]] = []
    sils: list[int] = [0]  # silence unit before word i (i = 0: leading), then after the last word

    def add_unit(label: int, phones: Sequence[str], pdfs: list[tuple[int, ...]]) -> int:
        units.append((label, [lexicon.phone_index(p) for p in phones]))
        unit_pdfs.append(pdfs)
        return len(units) - 1

    for i in range(len(words)):
        lefts = dict.fromkeys([sil] + ([p[-1] for p, _ in prons[i - 1]] if i > 0 else []))
        rights = dict.fromkeys([sil] + ([p[0] for p, _ in prons[i + 1]] if i + 1 < len(words) else []))
        alts.append([])
        for phones, weight in prons[i]:
            whole = _context_variants(context, phones, lefts, rights)
            if len(whole) == 1 or len(phones) == 1:  # one unit per variant
                entries = [(add_unit(i, phones, seq), ls_) for seq, ls_, _ in whole]
                exits = [(u, rs_) for (u, _), (_, _, rs_) in zip(entries, whole)]
            else:  # first phone per left context, last phone per right context, the middle once
                heads = _group(lefts, lambda c: context.pdfs(c, phones[0], phones[1]))
                tails = _group(rights, lambda c: context.pdfs(phones[-2], phones[-1], c))
                entries = [(add_unit(i, phones[:1], [seq]), ls_) for seq, ls_ in heads.items()]
                middle = context.sequence_pdfs(phones[1:-1], phones[0], phones[-1]) if len(phones) > 2 else []
                body = [add_unit(-1, phones[1:-1], middle)] if middle else []
                exits = [(add_unit(-1, phones[-1:], [seq]), rs_) for seq, rs_ in tails.items()]
                inner = body or [u for u, _ in exits]
                links += [(u, v, 0.0) for u, _ in entries for v in inner]
                links += [(u, v, 0.0) for u in body for v, _ in exits]
            alts[i].append((entries, exits, phones[0], phones[-1], weight))
        sils.append(len(units))
        units.append((sil_label, [sil_phone]))  # silence after word i
        unit_pdfs.append(sil_pdfs)
    for i, variants in enumerate(alts):
        for _, exits, _, last, _ in variants:
            for u, rights_of in exits:
                if sil in rights_of:
                    links.append((u, sils[i + 1], ls))
                if i + 1 < len(alts):
                    links += [(u, v, ln + w) for entries, _, first, _, w in alts[i + 1] if first in rights_of
                              for v, lefts_v in entries if last in lefts_v]
        if i > 0:
            links += [(sils[i], v, w) for entries, _, _, _, w in variants for v, lefts_v in entries if sil in lefts_v]
    links += [(0, v, w) for entries, *_, w in alts[0] for v, _ in entries]
    starts = {0: ls, **{v: ln + w for entries, *_, w in alts[0] for v, _ in entries}}
    ends = {**{u: ln for _, exits, *_ in alts[-1] for u, rights_of in exits if sil in rights_of}, sils[-1]: 0.0}
    return build_graph(labels, units, links, starts, ends, n_states, unit_pdfs)


def _group(contexts: Sequence[str], pdfs_of) -> dict[tuple[int, ...], dict]:
    """Contexts grouped by the pdfs they give: ``{pdfs: ordered set of contexts}``."""
    out: dict[tuple[int, ...], dict] = {}
    for c in contexts:
        out.setdefault(pdfs_of(c), {})[c] = None
    return out


def _context_variants(context: ContextDependency, phones: Sequence[str], lefts: Sequence[str],
                      rights: Sequence[str]) -> list[tuple[list[tuple[int, ...]], dict, dict]]:
    """Units of one pronunciation between the given left and right contexts:
    ``(pdfs per phone, left contexts, right contexts)``.

    Contexts giving the same pdfs share a unit when they form a product
    (every left with every right), else each (left, right) gets its own, so
    no path joins a left context to a right one it does not have pdfs for.
    """
    groups: dict[tuple, list[tuple[str, str]]] = {}
    for left in lefts:
        for right in rights:
            groups.setdefault(tuple(context.sequence_pdfs(phones, left, right)), []).append((left, right))
    out = []
    for seq, pairs in groups.items():
        ls, rs = dict.fromkeys(a for a, _ in pairs), dict.fromkeys(b for _, b in pairs)  # ordered sets
        parts = [(ls, rs)] if len(pairs) == len(ls) * len(rs) else [({a: None}, {b: None}) for a, b in pairs]
        out += [(list(seq), a, b) for a, b in parts]
    return out
