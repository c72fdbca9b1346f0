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

With a context dependency (:mod:`gmmhmm.graphs.context`, e.g. a tied-state
triphone tree) phones take their pdfs in word-internal and cross-word
context: grammar nodes split by the phones before and after them, first and
last phones are copied per context (see :func:`_context_arcs`); a monophone
context gives exactly the graph above.

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
from ..graphs.context import ContextDependency, MonophoneContext
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
        """Fewest frames (at least one) of any complete path.

        0-1 breadth-first search over (node, a frame seen yet): entering an
        emitting node costs a frame. The empty path a word loop or an n-gram
        model also accepts does not count: the search never returns it, and
        with it every length from 1 would look long enough. Every emitting
        node has a self-loop, so each length from ``min_frames`` on has a path.
        """
        INF = np.iinfo(np.int64).max
        N = self.n_nodes
        dist = np.full(2 * N, INF, dtype=np.int64)  # state n + N * (a frame seen)
        dist[self.start] = 0
        queue = deque([self.start])
        while queue:
            k = queue.popleft()
            n, seen = k % N, k >= N
            for a in range(self.arc_start[n], self.arc_start[n + 1]):
                d = int(self.arc_dst[a])
                step = int(self.node_pdf[d] >= 0)
                nxt = d + N if (seen or step) else d
                if dist[k] + step < dist[nxt]:
                    dist[nxt] = dist[k] + step
                    queue.appendleft(nxt) if step == 0 else queue.append(nxt)
        ends = dist[N:][np.isfinite(self.final)]
        return int(ends.min()) if ends.size else int(INF)

    def completes(self) -> bool:
        """Whether some path of at least one frame ends in a final node (``min_frames`` is finite),
        by two vectorised reachability passes: the 0-1 search of ``min_frames`` is a Python loop
        over the arcs, kept lazy for the error messages that need the number."""
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import breadth_first_order

        N = self.n_nodes
        reached = breadth_first_order(csr_matrix((np.ones(self.n_arcs), (self.arc_src, self.arc_dst)), shape=(N, N)),
                                      self.start, return_predecessors=False)
        emitting = reached[self.node_pdf[reached] >= 0]  # a frame is spent entering one of these
        if not emitting.size:
            return False
        src = np.concatenate([self.arc_src, np.full(len(emitting), N)])  # node N: a source feeding them all
        dst = np.concatenate([self.arc_dst, emitting])
        after = breadth_first_order(csr_matrix((np.ones(len(src)), (src, dst)), shape=(N + 1, N + 1)), N,
                                    return_predecessors=False)
        return bool(np.isfinite(self.final[after[after < N]]).any())

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
    context: ContextDependency | None = None,
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
        Emitting states per phone; without a context, pdf of state ``j`` of phone ``p`` is ``p * n_states + j``.
    phones : list of str, optional
        Phone order of the acoustic model (default ``lexicon.phones``, or ``context.phones``).
    silence_prob : float
        Probability of the optional silence at the grammar's silence nodes.
    context : ContextDependency, optional
        Pdfs of a phone in context (:mod:`gmmhmm.graphs.context`). None or a
        context-independent one (``context_width == 1``) gives the monophone
        graph; a wider one expands the graph with word-internal and cross-word
        contexts (see :func:`_context_arcs`).

    Raises
    ------
    TranscriptError
        Grammar words missing from the lexicon (all listed) or unknown phones.
    InvalidParameterError
        A grammar node out of range, bad sizes or probabilities, a context that does not fit the
        phones, a cycle of epsilon arcs, or no final node reachable from the start through a word.
    """
    if context is not None:
        if phones is not None and list(phones) != list(context.phones):
            raise InvalidParameterError("phones differ from the context dependency's phones")
        if n_states != context.n_states:
            raise InvalidParameterError(f"n_states={n_states} but the context dependency has {context.n_states}")
        if lexicon.silence != context.silence:
            raise InvalidParameterError(f"the lexicon's silence {lexicon.silence!r} is not the context "
                                        f"dependency's silence {context.silence!r}")
        phones = context.phones
    grammar.check()
    phones = list(lexicon.phones if phones is None else phones)
    log_self, log_leave = (np.asarray(a, dtype=np.float64) for a in transitions)
    n_pdf = len(phones) * n_states if context is None else int(context.n_pdfs)
    if n_states < 1 or log_self.shape != (n_pdf,) or log_leave.shape != (n_pdf,):
        raise InvalidParameterError(f"transitions must be two ({n_pdf},) arrays for {len(phones)} phones x "
                                    f"{n_states} states, got {log_self.shape} and {log_leave.shape}")
    if not (np.all(log_self < np.inf) and np.all(log_leave < np.inf)):  # NaN fails the comparison too
        raise InvalidParameterError("transitions must be log probabilities, not NaN or +inf")
    use_silence = bool(grammar.silence_nodes)
    if use_silence and not 0.0 < silence_prob < 1.0:
        raise InvalidParameterError(f"silence_prob must be in (0, 1), got {silence_prob}")
    words = grammar.words
    missing = lexicon.missing(words)
    if missing:
        raise TranscriptError(f"{len(missing)} grammar word(s) not in the lexicon: {', '.join(missing[:50])}"
                              + (" ..." if len(missing) > 50 else ""))
    known = set(phones)
    prons: dict[str, list[tuple[tuple[str, ...], float]]] = {
        w: [(tuple(p), float(lw)) for p, lw in lexicon.prons(w)] for w in words}
    for p in [q for ps in prons.values() for pron, _ in ps for q in pron] + [lexicon.silence] * use_silence:
        if p not in known:
            raise TranscriptError(f"phone {p!r} is not one of the model's phones {phones}")
    if not any(math.isfinite(w) for w in grammar.final.values()):
        raise InvalidParameterError("the grammar has no final node")

    labels = list(words)
    label_of = {w: i for i, w in enumerate(labels)}
    silence_label = label_of.get(lexicon.silence, -1)  # silence as a grammar word (a phone loop's sil)
    if use_silence and silence_label < 0:
        silence_label = len(labels)
        labels.append(lexicon.silence)
    arcs = _Arcs(log_self, log_leave)
    if context is None or context.context_width == 1:
        if context is None:
            context = MonophoneContext(phones, n_states, lexicon.silence)
        start = _monophone_arcs(arcs, grammar, prons, label_of, silence_label, lexicon.silence, silence_prob, context)
    else:
        start = _context_arcs(arcs, grammar, prons, label_of, silence_label, silence_prob, context)
    graph = arcs.assemble(labels, silence_label, start, n_pdf)
    if not graph.completes():
        raise InvalidParameterError("no final node of the grammar can be reached from its start through a word")
    return graph


class _Arcs:
    """Nodes and arcs under construction; emitting node ``k`` is ``~k`` until :meth:`assemble`."""

    def __init__(self, log_self: np.ndarray, log_leave: np.ndarray) -> None:
        self.log_self, self.log_leave = log_self, log_leave
        self.n_null = 0
        self.final: dict[int, float] = {}
        self.pdf: list[int] = []
        self.src: list[int] = []
        self.dst: list[int] = []
        self.trans: list[float] = []
        self.lm: list[float] = []
        self.word: list[bool] = []
        self.label: list[int] = []

    def null(self) -> int:
        self.n_null += 1
        return self.n_null - 1

    def arc(self, s: int, d: int, t: float = 0.0, w: float = 0.0, is_word: bool = False, lab: int = -1) -> None:
        self.src.append(s)
        self.dst.append(d)
        self.trans.append(t)
        self.lm.append(w)
        self.word.append(is_word)
        self.label.append(lab)

    def chain(self, states: Sequence[int], after: Sequence[int] = ()) -> tuple[int, int]:
        """Left-to-right states (self-loops, forward arcs), entered from the last states ``after``;
        returns the first and last node."""
        first = ~len(self.pdf)
        self.pdf.extend(states)
        for p in after:
            self.arc(p, first, self.log_leave[self.pdf[~p]])
        for k, p in enumerate(states):
            s = first - k
            self.arc(s, s, self.log_self[p])
            if k + 1 < len(states):
                self.arc(s, s - 1, self.log_leave[p])
        return first, first - len(states) + 1

    def leave(self, s: int, d: int, lab: int) -> None:
        """Exit arc of the last state ``s`` into null node ``d`` with a label."""
        self.arc(s, d, self.log_leave[self.pdf[~s]], lab=lab)

    def assemble(self, labels: list[str], silence_label: int, start: int, n_pdf: int) -> DecodingGraph:
        """Null nodes renumbered in topological order of null-to-null arcs (Kahn), arcs sorted by source."""
        n_null = self.n_null
        src_a, dst_a = np.array(self.src, dtype=np.int64), np.array(self.dst, dtype=np.int64)
        src_a = np.where(src_a < 0, n_null + ~src_a, src_a)
        dst_a = np.where(dst_a < 0, n_null + ~dst_a, dst_a)
        nn = (src_a < n_null) & (dst_a < n_null)
        order = _topological_order(n_null, src_a[nn], dst_a[nn])
        N = n_null + len(self.pdf)
        new_id = np.arange(N, dtype=np.int64)
        new_id[order] = np.arange(n_null, dtype=np.int64)
        src_a, dst_a = new_id[src_a], new_id[dst_a]
        perm = np.argsort(src_a, kind="stable")
        final = np.full(N, -np.inf)
        for n, w in self.final.items():
            final[new_id[n]] = w
        node_pdf = np.concatenate([np.full(n_null, -1, dtype=np.int64), np.array(self.pdf, dtype=np.int64)])
        return DecodingGraph(
            labels=labels,
            silence_label=silence_label,
            node_pdf=node_pdf,
            n_null=n_null,
            arc_start=np.concatenate([[0], np.cumsum(np.bincount(src_a, minlength=N))]).astype(np.int64),
            arc_dst=dst_a[perm],
            arc_trans=np.array(self.trans, dtype=np.float64)[perm],
            arc_lm=np.array(self.lm, dtype=np.float64)[perm],
            arc_word=np.array(self.word, dtype=bool)[perm],
            arc_label=np.array(self.label, dtype=np.int64)[perm],
            start=int(new_id[start]),
            final=final,
            n_pdf=n_pdf,
        )


def _topological_order(n: int, src: Sequence[int], dst: Sequence[int]) -> np.ndarray:
    """Nodes ``0 .. n - 1`` in a topological order of the arcs ``src -> dst`` (Kahn)."""
    succ: list[list[int]] = [[] for _ in range(n)]
    indeg = np.zeros(n, dtype=np.int64)
    for s, d in zip(src, dst):
        succ[s].append(int(d))
        indeg[d] += 1
    queue = deque(int(k) for k in np.flatnonzero(indeg == 0))
    order = []
    while queue:
        k = queue.popleft()
        order.append(k)
        for d in succ[k]:
            indeg[d] -= 1
            if indeg[d] == 0:
                queue.append(d)
    if len(order) != n:
        raise InvalidParameterError("the grammar has a cycle of epsilon arcs")
    return np.array(order, dtype=np.int64)


def _monophone_arcs(arcs: _Arcs, grammar: Grammar, prons, label_of, silence_label: int, silence: str,
                    silence_prob: float, context: ContextDependency) -> int:
    """Context-independent phones: one chain per word arc and pronunciation; returns the start node."""
    def pdfs(pron: Sequence[str]) -> list[int]:
        return [p for q in pron for p in context.pdfs(silence, q, silence)]

    # null nodes: in/out per grammar node (the same node without optional silence)
    node_in = [arcs.null() for _ in range(grammar.n_nodes)]
    node_out = list(node_in)
    for g in sorted(grammar.silence_nodes):
        node_out[g] = arcs.null()

    def chain(entry_from, exit_to, states, t_in, w_in, is_word, lab):
        first, last = arcs.chain(states)
        arcs.arc(entry_from, first, t_in, w_in, is_word)
        arcs.leave(last, exit_to, lab)

    states_of = {w: [(pdfs(p), lw) for p, lw in ps] for w, ps in prons.items()}
    for g_src, g_dst, w, logp in grammar.arcs:
        if not math.isfinite(logp):
            continue
        if w is None:
            arcs.arc(node_out[g_src], node_out[g_dst], 0.0, logp)
            continue
        for states, pron_w in states_of[w]:
            chain(node_out[g_src], node_in[g_dst], states, 0.0, logp + pron_w, True, label_of[w])
    if grammar.silence_nodes:
        sil_states = pdfs([silence])
        ls, ln = math.log(silence_prob), math.log1p(-silence_prob)
        for g in sorted(grammar.silence_nodes):
            arcs.arc(node_in[g], node_out[g], ln)
            chain(node_in[g], node_out[g], sil_states, ls, 0.0, False, silence_label)
    for g, w in grammar.final.items():
        if math.isfinite(w):
            arcs.final[node_out[g]] = w
    return node_in[grammar.start]


def _context_arcs(arcs: _Arcs, grammar: Grammar, prons, label_of, silence_label: int, silence_prob: float,
                  context: ContextDependency) -> int:
    """Word-internal and cross-word contexts; returns the start node.

    The grammar is first rewritten with the optional silences as arcs: a
    silence node ``g`` gets an arrival side, joined to ``g`` by a skip arc
    (``log(1 - silence_prob)``) and by a one-phone "word" (the silence
    phone, ``log silence_prob``). Each node ``v`` of that grammar splits into
    null nodes ``(v, a, b)``: ``a`` the phone before (the last phone of the
    word arriving; silence at the start), ``b`` the phone after (the first
    phone of the word leaving, silence when ending). Left contexts ``L(v)``
    flow forward along arcs, right contexts ``F(v)`` backward along epsilon
    arcs. A word arc ``u -> v`` with phones ``p1 .. pn`` becomes

    * a copy of ``p1`` per distinct ``pdfs(a, p1, p2)``, entered from the
      ``(u, a, p1)`` with that pdf sequence,
    * one chain for ``p2 .. p(n-1)`` (their contexts are inside the word),
    * a copy of ``pn`` per distinct ``pdfs(p(n-1), pn, c)``, left into the
      ``(v, pn, c)`` with that pdf sequence, so only words starting with ``c``
      follow;

    a one-phone word (the optional silence too) has a copy per left context
    ``a`` (class, below) and distinct ``pdfs(a, p1, c)``, left into the right
    contexts ``c`` sharing it. Epsilon arcs join ``(u, a, b) -> (v, a, b)``.

    Whatever a tree ties is shared: copies with equal pdfs are one copy, and
    phones ``a`` (``b``) that no word leaving (arriving at) ``v`` tells apart
    are one left (right) class with one null node ``(v, class of a, class of
    b)``. With context-independent pdfs this is the monophone graph again;
    the search sees only null and emitting nodes, as before.

    The fan-out of last phones is the bulk of the graph, so it is made once
    per word, last two phones and destination node, and shared by every arc
    that brings the word there (in an n-gram graph: by all its predecessor
    histories). Paths that meet in a state have the same future, so the best
    path stays exact. The n-best lattice keeps alternatives only where words
    end in the same null node (:mod:`.token_passing`); here the words before
    a multi-phone word meet in its second phone, and those before it in an
    n-gram graph in its last, so an n-best list can miss sequences that
    differ only there. One-phone words and silences are copied per left
    class, so histories meet there only in null nodes.
    """
    sil = context.silence
    G = grammar.n_nodes
    out_of = list(range(G))  # v of grammar node g's departures and final weight
    in_of = list(range(G))  # v of its arrivals
    n_v = G
    for g in sorted(grammar.silence_nodes):
        in_of[g] = n_v
        n_v += 1
    # (u, v, phones or None (epsilon), transition weight, grammar weight, is a word, label)
    garcs: list[tuple[int, int, tuple[str, ...] | None, float, float, bool, int]] = []
    for g_src, g_dst, w, logp in grammar.arcs:
        if not math.isfinite(logp):
            continue
        if w is None:
            garcs.append((out_of[g_src], out_of[g_dst], None, 0.0, logp, False, -1))
        else:
            garcs += [(out_of[g_src], in_of[g_dst], pron, 0.0, logp + pron_w, True, label_of[w])
                      for pron, pron_w in prons[w]]
    if grammar.silence_nodes:
        ls, ln = math.log(silence_prob), math.log1p(-silence_prob)
        for g in sorted(grammar.silence_nodes):
            garcs.append((in_of[g], out_of[g], None, ln, 0.0, False, -1))
            garcs.append((in_of[g], out_of[g], (sil,), ls, 0.0, False, silence_label))
    start_v = in_of[grammar.start]
    final_v = {out_of[g]: w for g, w in grammar.final.items() if math.isfinite(w)}

    # reachable nodes, then contexts: L forward over every arc, F backward over epsilon arcs
    out_arcs: list[list[int]] = [[] for _ in range(n_v)]
    for k, a in enumerate(garcs):
        out_arcs[a[0]].append(k)
    reached = np.zeros(n_v, dtype=bool)
    reached[start_v] = True
    stack = [start_v]
    while stack:
        u = stack.pop()
        for k in out_arcs[u]:
            v = garcs[k][1]
            if not reached[v]:
                reached[v] = True
                stack.append(v)
    eps = [a for a in garcs if a[2] is None and reached[a[0]]]
    order = _topological_order(n_v, [a[0] for a in eps], [a[1] for a in eps])
    rank = {p: i for i, p in enumerate(context.phones)}
    left: list[set[str]] = [set() for _ in range(n_v)]
    left[start_v].add(sil)
    for a in garcs:
        if a[2] is not None and reached[a[0]]:
            left[a[1]].add(a[2][-1])
    for u in order:  # epsilon sources before their destinations
        for k in out_arcs[u]:
            if garcs[k][2] is None:
                left[garcs[k][1]] |= left[u]
    right: list[set[str]] = [set() for _ in range(n_v)]
    for v in final_v:
        right[v].add(sil)
    for a in garcs:
        if a[2] is not None:
            right[a[0]].add(a[2][0])
    for u in order[::-1]:
        for k in out_arcs[u]:
            if garcs[k][2] is None:
                right[u] |= right[garcs[k][1]]
    lefts = [sorted(s, key=rank.__getitem__) for s in left]
    rights = [sorted(s, key=rank.__getitem__) for s in right]

    cache: dict[tuple[str, str, str], tuple[int, ...]] = {}

    def pdfs(a: str, p: str, b: str) -> tuple[int, ...]:
        if (a, p, b) not in cache:
            cache[a, p, b] = tuple(int(x) for x in context.pdfs(a, p, b))
        return cache[a, p, b]

    def grouped(items, key) -> dict[tuple, list]:
        out: dict[tuple, list] = {}
        for x in items:
            out.setdefault(key(x), []).append(x)
        return out

    # left contexts that no phone leaving v tells apart share a null node; depart[v]: (first phone,
    # the phone after it) of the words leaving v (directly or over epsilon arcs)
    depart: list[set[tuple[str, str]]] = [set() for _ in range(n_v)]
    for u, v, pron, *_ in garcs:
        if pron is not None and reached[u]:
            depart[u].update([(pron[0], pron[1])] if len(pron) > 1 else [(pron[0], c) for c in rights[v]])
    for u in order[::-1]:
        for k in out_arcs[u]:
            if garcs[k][2] is None:
                depart[u] |= depart[garcs[k][1]]
    left_class: list[dict[str, int]] = []  # v -> a -> class
    members: dict[tuple[int, int], list[str]] = {}
    for v in range(n_v):
        after = sorted(depart[v])
        classes = grouped(lefts[v], lambda a: tuple(pdfs(a, p, x) for p, x in after))
        left_class.append({a: k for k, as_ in enumerate(classes.values()) for a in as_})
        members.update(((v, k), as_) for k, as_ in enumerate(classes.values()))
    # right contexts that no phone ending at v tells apart share one too; before[v][p]: the phones
    # before the last phone p of the words arriving at v (directly or over epsilon arcs)
    before: list[dict[str, set[str]]] = [{} for _ in range(n_v)]
    for u, v, pron, *_ in garcs:
        if pron is not None and reached[u]:
            before[v].setdefault(pron[-1], set()).update([pron[-2]] if len(pron) > 1 else left[u])
    for u in order:
        for k in out_arcs[u]:
            if garcs[k][2] is None:
                for p, qs in before[u].items():
                    before[garcs[k][1]].setdefault(p, set()).update(qs)
    right_class: dict[tuple[int, int], dict[str, int]] = {}  # (v, left class) -> b -> class
    for (v, k), as_ in members.items():
        ends = sorted((q, a) for a in as_ for q in before[v].get(a, ()))
        classes = grouped(rights[v], lambda b: tuple(pdfs(q, a, b) for q, a in ends))
        right_class[v, k] = {b: c for c, bs in enumerate(classes.values()) for b in bs}
    nodes: dict[tuple[int, int, int], int] = {}

    def null(v: int, a: str, b: str) -> int:
        """Null node of v between a and b (or any phones in their classes)."""
        k = left_class[v][a]
        key = (v, k, right_class[v, k][b])
        if key not in nodes:
            nodes[key] = arcs.null()
        return nodes[key]

    def nulls(v: int, as_, bs) -> list[int]:
        return list(dict.fromkeys(null(v, a, b) for a in as_ for b in bs))

    tails: dict[tuple[int, str, str, int], list[int]] = {}  # (label, last two phones, v) -> copies
    start = arcs.null()
    for n in nulls(start_v, [sil], rights[start_v]):
        arcs.arc(start, n)
    for u, v, pron, t, w, is_word, lab in garcs:
        if not reached[u]:
            continue
        if pron is None:
            for a in lefts[u]:
                for n_src, n_dst in dict.fromkeys((null(u, a, b), null(v, a, b)) for b in rights[v]):
                    arcs.arc(n_src, n_dst, t, w)
            continue
        first, last = pron[0], pron[-1]
        if len(pron) == 1:  # a copy per left class and pdf sequence, left into the right contexts it fits
            for a in dict((left_class[u][a], a) for a in lefts[u]).values():
                for states, cs in grouped(rights[v], lambda c: pdfs(a, first, c)).items():
                    s, e = arcs.chain(states)
                    arcs.arc(null(u, a, first), s, t, w, is_word)
                    for n in nulls(v, [first], cs):
                        arcs.leave(e, n, lab)
            continue
        ends = []
        for states, as_ in grouped(lefts[u], lambda a: pdfs(a, first, pron[1])).items():
            s, e = arcs.chain(states)
            ends.append(e)
            for n in nulls(u, as_, [first]):
                arcs.arc(n, s, t, w, is_word)
        if len(pron) > 2:
            inner = [p for k in range(1, len(pron) - 1) for p in pdfs(pron[k - 1], pron[k], pron[k + 1])]
            ends = [arcs.chain(inner, ends)[1]]
        key = (lab, pron[-2], last, v)
        if key in tails:  # the same word into the same node: join its copies of the last phone
            for s in tails[key]:
                for e in ends:
                    arcs.arc(e, s, arcs.log_leave[arcs.pdf[~e]])
            continue
        tails[key] = []
        for states, cs in grouped(rights[v], lambda c: pdfs(pron[-2], last, c)).items():
            s, e = arcs.chain(states, ends)
            tails[key].append(s)
            for n in nulls(v, [last], cs):
                arcs.leave(e, n, lab)
    for v, w in final_v.items():
        for n in nulls(v, lefts[v], [sil]):
            arcs.final[n] = w
    return start
