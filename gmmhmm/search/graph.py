"""Decoding graphs: a grammar composed with the lexicon and the phone-model topology.

:func:`compile_graph` turns a :class:`~.grammar.Grammar` into a
:class:`DecodingGraph` of *null* nodes (the grammar's nodes: LM histories,
loop points) and *emitting* nodes (phone-model states, one pdf each):

* each word arc ``g -> g'`` becomes, for every pronunciation of the word
  (:meth:`Lexicon.prons`), a chain of its phones' states in parallel: an
  *entry* arc from ``g`` to the first state carrying the grammar log
  probability plus the pronunciation's log weight (both scaled by the LM
  scale) and the word insertion penalty, self-loops and forward arcs with the
  phone models' transition log probabilities, and an *exit* arc from the last
  state into ``g'`` that carries the word's label (a word-link record is made
  when a token crosses it);
* epsilon (backoff) arcs stay null-to-null;
* a grammar node with optional silence splits into ``in`` and ``out`` null
  nodes joined directly (``log(1 - silence_prob)``) and through one silence
  phone model (``log silence_prob``, labelled with the silence word), as in
  Kaldi's ``L.fst``. Arrivals go to ``in``, departures, backoffs and final
  weights leave from ``out``.

Null nodes come first, numbered in a topological order of the null-to-null
arcs (backoffs point from longer to shorter histories, so there is no cycle),
so the search settles each frame's null nodes in one pass in id order. Arcs
are sorted by source (CSR). Memory is O(states + arcs) of the graph: a word
loop over V words is O(V · pronunciation length), an n-gram model
O(n-grams · pronunciation length); no arc links two words directly.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..errors import InvalidParameterError, TranscriptError
from ..data.lexicon import Lexicon
from .grammar import Grammar
from .options import SearchOptions

@dataclass
class DecodingGraph:
    """Null and emitting nodes with arcs sorted by source.

    Attributes
    ----------
    labels : list of str
        Output labels (words, then the silence word if used).
    silence_label : int
        Index of the silence word in ``labels`` (-1: none); it is left out of
        hypotheses' words and CTM, kept in their segments.
    node_pdf : (N,) int
        Pdf (column of the log-likelihood matrix) of each emitting node, -1 for null nodes.
    n_null : int
        Null nodes are ``0 .. n_null - 1``, in topological order of the null-to-null arcs.
    arc_start : (N + 1,) int
        Arcs of node ``n`` are ``arc_start[n]:arc_start[n + 1]``.
    arc_dst : (A,) int
    arc_trans : (A,) float
        Fixed log weight: phone-model transition, silence probability.
    arc_lm : (A,) float
        Grammar log weight (LM probability, backoff, pronunciation weight), times the LM scale.
    arc_word : (A,) bool
        Arc enters a word: the word insertion penalty applies.
    arc_label : (A,) int
        Label of a word-exit arc, -1 elsewhere.
    start : int
        Null node where every path starts (before frame 0).
    final : (N,) float
        Grammar log weight of ending in a node (times the LM scale; ``-inf``: not final;
        only null nodes are final).
    n_pdf : int
        Columns the log-likelihood matrix must have (at least).
    """

    labels: list[str]
    silence_label: int
    node_pdf: np.ndarray
    n_null: int
    arc_start: np.ndarray
    arc_dst: np.ndarray
    arc_trans: np.ndarray
    arc_lm: np.ndarray
    arc_word: np.ndarray
    arc_label: np.ndarray
    start: int
    final: np.ndarray
    n_pdf: int

    @property
    def n_nodes(self) -> int:
        return len(self.node_pdf)

    @property
    def n_arcs(self) -> int:
        return len(self.arc_dst)

    @property
    def arc_src(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_nodes), np.diff(self.arc_start))

    def arc_weights(self, options: SearchOptions) -> np.ndarray:
        """Total log weight of every arc under the LM scale and word insertion penalty."""
        return self.arc_trans + options.lm_scale * self.arc_lm + options.word_insertion_penalty * self.arc_word

    @cached_property  # graphs are not modified once built
    def min_frames(self) -> int:
        """Fewest frames of any complete path (0-1 breadth-first search: emitting nodes cost a frame)."""
        INF = np.iinfo(np.int64).max
        dist = np.full(self.n_nodes, INF, dtype=np.int64)
        dist[self.start] = 0
        queue = deque([self.start])
        while queue:
            n = queue.popleft()
            for a in range(self.arc_start[n], self.arc_start[n + 1]):
                d = int(self.arc_dst[a])
                step = int(self.node_pdf[d] >= 0) if d != n else 1
                if dist[n] + step < dist[d]:
                    dist[d] = dist[n] + step
                    queue.appendleft(d) if step == 0 else queue.append(d)
        ends = dist[np.isfinite(self.final)]
        return int(ends.min()) if ends.size else int(INF)

    def final_weights(self, options: SearchOptions) -> np.ndarray:
        """Log weight of ending in each node under the LM scale."""
        return np.where(np.isfinite(self.final), options.lm_scale * self.final, -np.inf)

    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.node_pdf, self.arc_start, self.arc_dst, self.arc_trans, self.arc_lm,
                                      self.arc_word, self.arc_label, self.final))


def compile_graph(
    grammar: Grammar,
    lexicon: Lexicon,
    transitions: tuple[np.ndarray, np.ndarray],
    n_states: int = 3,
    phones: Sequence[str] | None = None,
    silence_prob: float = 0.5,
) -> DecodingGraph:
    """Compose ``grammar`` with the lexicon and left-to-right phone models.

    Parameters
    ----------
    grammar : Grammar
    lexicon : Lexicon
        Pronunciations (every alternate of :meth:`Lexicon.prons` becomes a
        parallel path) and the silence phone.
    transitions : (log self-loop, log leave), each (n_pdf,)
        Phone-model transition log probabilities per pdf, e.g.
        :meth:`gmmhmm.graphs.PhoneModelSet.transition_log_probs`.
    n_states : int
        Emitting states per phone; pdf of state ``j`` of phone ``p`` is ``p * n_states + j``.
    phones : list of str, optional
        Phone order of the acoustic model (default ``lexicon.phones``).
    silence_prob : float
        Probability of the optional silence at the grammar's silence nodes.

    Raises
    ------
    TranscriptError
        Grammar words missing from the lexicon (all listed) or unknown phones.
    InvalidParameterError
        Bad sizes or probabilities, or a cycle of epsilon arcs.
    """
    phones = list(lexicon.phones if phones is None else phones)
    log_self, log_leave = (np.asarray(a, dtype=np.float64) for a in transitions)
    n_pdf = len(phones) * n_states
    if n_states < 1 or log_self.shape != (n_pdf,) or log_leave.shape != (n_pdf,):
        raise InvalidParameterError(f"transitions must be two ({n_pdf},) arrays for {len(phones)} phones x "
                                    f"{n_states} states, got {log_self.shape} and {log_leave.shape}")
    use_silence = bool(grammar.silence_nodes)
    if use_silence and not 0.0 < silence_prob < 1.0:
        raise InvalidParameterError(f"silence_prob must be in (0, 1), got {silence_prob}")
    words = grammar.words
    missing = lexicon.missing(words)
    if missing:
        raise TranscriptError(f"{len(missing)} grammar word(s) not in the lexicon: {', '.join(missing[:50])}"
                              + (" ..." if len(missing) > 50 else ""))
    phone_id = {p: i for i, p in enumerate(phones)}

    def pdfs(pron: Sequence[str]) -> list[int]:
        try:
            return [phone_id[p] * n_states + j for p in pron for j in range(n_states)]
        except KeyError as exc:
            raise TranscriptError(f"phone {exc.args[0]!r} is not one of the model's phones {phones}") from None

    labels = list(words)
    label_of = {w: i for i, w in enumerate(labels)}
    silence_label = label_of.get(lexicon.silence, -1)  # silence as a grammar word (a phone loop's sil)
    if use_silence and silence_label < 0:
        silence_label = len(labels)
        labels.append(lexicon.silence)
    # null nodes: in/out per grammar node (the same node without optional silence)
    node_in, node_out = list(range(grammar.n_nodes)), list(range(grammar.n_nodes))
    n_null = grammar.n_nodes
    for g in sorted(grammar.silence_nodes):
        node_out[g] = n_null
        n_null += 1
    pdf: list[int] = []  # of emitting nodes, numbered n_null + index
    src: list[int] = []
    dst: list[int] = []
    trans: list[float] = []
    lm: list[float] = []
    word: list[bool] = []
    label: list[int] = []

    def arc(s, d, t=0.0, w=0.0, is_word=False, lab=-1):
        src.append(s)
        dst.append(d)
        trans.append(t)
        lm.append(w)
        word.append(is_word)
        label.append(lab)

    def chain(entry_from, exit_to, states, t_in, w_in, is_word, lab):
        first = n_null + len(pdf)
        pdf.extend(states)
        arc(entry_from, first, t_in, w_in, is_word)
        for k, p in enumerate(states):
            s = first + k
            arc(s, s, log_self[p])
            if k + 1 < len(states):
                arc(s, s + 1, log_leave[p])
        arc(first + len(states) - 1, exit_to, log_leave[states[-1]], lab=lab)

    prons: dict[str, list[tuple[list[int], float]]] = {
        w: [(pdfs(p), float(lw)) for p, lw in lexicon.prons(w)] for w in words}
    for g_src, g_dst, w, logp in grammar.arcs:
        if not math.isfinite(logp):
            continue
        if w is None:
            arc(node_out[g_src], node_out[g_dst], 0.0, logp)
            continue
        for states, pron_w in prons[w]:
            chain(node_out[g_src], node_in[g_dst], states, 0.0, logp + pron_w, True, label_of[w])
    if use_silence:
        sil_states = pdfs([lexicon.silence])
        ls, ln = math.log(silence_prob), math.log1p(-silence_prob)
        for g in sorted(grammar.silence_nodes):
            arc(node_in[g], node_out[g], ln)
            chain(node_in[g], node_out[g], sil_states, ls, 0.0, False, silence_label)
    final_null = np.full(n_null, -np.inf)
    for g, w in grammar.final.items():
        final_null[node_out[g]] = w
    if not np.isfinite(final_null).any():
        raise InvalidParameterError("the grammar has no final node")

    # renumber null nodes in topological order of null-to-null arcs (Kahn)
    src_a, dst_a = np.array(src, dtype=np.int64), np.array(dst, dtype=np.int64)
    nn = (src_a < n_null) & (dst_a < n_null)
    succ: list[list[int]] = [[] for _ in range(n_null)]
    indeg = np.zeros(n_null, dtype=np.int64)
    for s, d in zip(src_a[nn], dst_a[nn]):
        succ[s].append(int(d))
        indeg[d] += 1
    queue = deque(int(n) for n in np.flatnonzero(indeg == 0))
    order = []
    while queue:
        n = queue.popleft()
        order.append(n)
        for d in succ[n]:
            indeg[d] -= 1
            if indeg[d] == 0:
                queue.append(d)
    if len(order) != n_null:
        raise InvalidParameterError("the grammar has a cycle of epsilon arcs")
    N = n_null + len(pdf)
    new_id = np.arange(N, dtype=np.int64)
    new_id[np.array(order, dtype=np.int64)] = np.arange(n_null, dtype=np.int64)
    src_a, dst_a = new_id[src_a], new_id[dst_a]
    perm = np.argsort(src_a, kind="stable")
    final = np.full(N, -np.inf)
    final[new_id[:n_null]] = final_null
    node_pdf = np.concatenate([np.full(n_null, -1, dtype=np.int64), np.array(pdf, dtype=np.int64)])
    return DecodingGraph(
        labels=labels,
        silence_label=silence_label,
        node_pdf=node_pdf,
        n_null=n_null,
        arc_start=np.concatenate([[0], np.cumsum(np.bincount(src_a, minlength=N))]).astype(np.int64),
        arc_dst=dst_a[perm],
        arc_trans=np.array(trans, dtype=np.float64)[perm],
        arc_lm=np.array(lm, dtype=np.float64)[perm],
        arc_word=np.array(word, dtype=bool)[perm],
        arc_label=np.array(label, dtype=np.int64)[perm],
        start=int(new_id[node_in[grammar.start]]),
        final=final,
        n_pdf=n_pdf,
    )
