"""State graphs built from phone models: utterance HMMs for training and alignment.

Every graph is a network of *units* (a word's or a phone's chain of
left-to-right phone models) joined by *links*. Expanding it gives emitting
states and arcs, the form the compiled kernels in :mod:`.kernels` walk.

Arcs inside a phone model refer to the model's transition parameters by
id (``tid``: phone * n_states + state, ``kind`` 0 = self-loop, 1 = leave),
so the same graph serves every training iteration; ``extra`` holds the
fixed log weights a graph adds (optional-silence probabilities). Decoding
graphs with null nodes and language models are :mod:`gmmhmm.search`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..errors import InvalidParameterError
from .lexicon import Lexicon


@dataclass
class Graph:
    """Emitting states and arcs of a search or training graph.

    Attributes
    ----------
    labels : list of str
        Names of the unit labels (words, or phones in a phone loop).
    state_pdf, state_phone : (S,) int
        Emission pdf (phone * n_states + state) and phone of each state.
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

    def log_probs(self, log_self: np.ndarray, log_leave: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Arc, initial and final log weights under the given transition parameters."""
        trans = np.where(self.arc_kind == 0, log_self[self.arc_tid], log_leave[self.arc_tid])
        final = np.where(np.isfinite(self.final_extra),
                         log_leave[np.maximum(self.final_tid, 0)] + self.final_extra, -np.inf)
        return trans + self.arc_extra, self.init_extra, final


def build_graph(
    labels: list[str],
    units: list[tuple[int, list[int]]],
    links: list[tuple[int, int, float]],
    starts: dict[int, float],
    ends: dict[int, float],
    n_states: int = 3,
) -> Graph:
    """Expand a unit network into a :class:`Graph`.

    Parameters
    ----------
    labels : list of str
    units : list of (label index, phone indices)
    links : list of (from unit, to unit, log weight)
    starts, ends : dict unit -> log weight of starting / ending in that unit
    n_states : int
        Emitting states per phone model.
    """
    first, last = [], []
    pdf, phone = [], []
    arcs: list[tuple[int, int, int, int, float, int, bool]] = []  # src dst tid kind extra label phone_start
    for _label, phones in units:
        if not phones:
            raise InvalidParameterError("a graph unit has no phones")
        first.append(len(pdf))
        for k, p in enumerate(phones):
            base = len(pdf)
            for j in range(n_states):
                pdf.append(p * n_states + j)
                phone.append(p)
                s = base + j
                arcs.append((s, s, p * n_states + j, 0, 0.0, -1, False))
                if j + 1 < n_states:
                    arcs.append((s, s + 1, p * n_states + j, 1, 0.0, -1, False))
            if k + 1 < len(phones):  # into the next phone of the unit
                arcs.append((base + n_states - 1, base + n_states, p * n_states + n_states - 1, 1, 0.0, -1, True))
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


def utterance_graph(lexicon: Lexicon, words: list[str], sil_prob: float = 0.5, n_states: int = 3) -> Graph:
    """Composite HMM of a transcript: optional silence at the ends and between words.

    Every pronunciation of a word is a parallel path entered with its log
    weight (:meth:`Lexicon.prons`). Labels are the transcript's words in order
    followed by ``sil``, so a path's word labels spell the transcript.
    """
    if not 0.0 < sil_prob < 1.0:
        raise InvalidParameterError(f"sil_prob must be in (0, 1), got {sil_prob}")
    lexicon.check_words(words)
    if not words:
        raise InvalidParameterError("transcript has no words")
    labels = list(words) + [lexicon.silence]
    sil_label, sil_phone = len(words), lexicon.phone_index(lexicon.silence)
    units: list[tuple[int, list[int]]] = [(sil_label, [sil_phone])]  # unit 0: leading silence
    links: list[tuple[int, int, float]] = []
    ls, ln = float(np.log(sil_prob)), float(np.log1p(-sil_prob))
    alts: list[list[tuple[int, float]]] = []  # per word position: (unit, pron log weight)
    sils: list[int] = [0]  # silence unit before word i (i = 0: leading), then after the last word
    for i, word in enumerate(words):
        alts.append([])
        for phones, weight in lexicon.prons(word):
            alts[i].append((len(units), weight))
            units.append((i, [lexicon.phone_index(p) for p in phones]))
        sils.append(len(units))
        units.append((sil_label, [sil_phone]))  # silence after word i
    for i, prons in enumerate(alts):
        for u, _ in prons:
            links.append((u, sils[i + 1], ls))
            if i + 1 < len(alts):
                links += [(u, v, ln + w) for v, w in alts[i + 1]]
        if i > 0:
            links += [(sils[i], v, w) for v, w in prons]
    links += [(0, v, w) for v, w in alts[0]]
    starts = {0: ls, **{v: ln + w for v, w in alts[0]}}
    ends = {**{u: ln for u, _ in alts[-1]}, sils[-1]: 0.0}
    return build_graph(labels, units, links, starts, ends, n_states)
