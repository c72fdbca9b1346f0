"""Token passing with word-link records over a :class:`~.graph.DecodingGraph`.

Design (HTK's HVite token passing, Kaldi's ``LatticeFasterDecoder`` pruning):

* A *token* is (score, word link) held by a graph node for one frame; two
  token rows (previous / current frame) of size N are reused for the whole
  utterance, with a list of the active nodes, so a frame costs O(active
  tokens + their arcs), never O(graph).
* Frame ``t``: the emitting step expands tokens of frame ``t - 1`` whose
  score is within ``beam`` of that frame's best and among its ``max_active``
  best (histogram pruning) along arcs into emitting nodes, adding the
  frame's log-likelihood (a new token more than ``beam`` below the best new
  one is never made). Then tokens leave words: crossing a labelled exit
  arc into a null node makes a *word-link record* (previous record, label,
  frame, score, node) -- one per (null node, frame), the best arrival; with
  ``n_best > 1`` the other arrivals within ``lattice_beam`` are kept as its
  *alternatives* (a word lattice). Finally null-to-null arcs (backoffs,
  silence skips) are relaxed in the nodes' topological order.
* Tokens carry only the index of their last record, so no frames x states
  back-pointer table exists. Records nobody points to any more (with a
  lattice: and not of the frame just searched, where the n-best search
  would start) are garbage collected when the record buffer fills, and the
  buffer grows only if the live records need it: memory is proportional to
  the active search and the live traceback, not to T x S.
* The best path is the chain of records of the best token at a final node
  after the last frame. N-best distinct word sequences are found by an A*
  search backwards over the lattice of records, whose forward scores are the
  exact heuristic. The lattice makes the word-pair approximation (one token
  per state, as HVite with one token): alternatives are kept where words
  end, but inside a word only the best history survives, so the list holds
  real paths in score order and may miss sequences that differ only inside
  one word's span. With isolated words it is exact.
* Memory: the graph, 2 x N token scratch (O(graph), reused), the records and
  alternatives reachable from live tokens, and the current block of
  log-likelihoods; :class:`TokenPassing` takes the frames block by block, so
  nothing grows with T for 1-best (an n-best lattice grows with the word
  ends kept).

Everything runs in compiled numba functions over chunks of frames; Python
only allocates (so ``tracemalloc`` sees the search's memory), collects
garbage and grows buffers between chunks.
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass, field, replace

import numpy as np
from numba import njit

from .._validation import check_log_likelihood
from ..errors import SequenceTooShortError
from .graph import DecodingGraph
from .options import SearchOptions

logger = logging.getLogger(__name__)

NEG_INF = -np.inf
_CHUNK = 64  # frames per compiled call (Python overhead between chunks only)
_MIN_BUFFER = 1024  # initial word-link records / alternatives beyond one frame's worth


@dataclass(frozen=True)
class WordSegment:
    """A labelled stretch of frames ``[start_frame, end_frame)`` of a path; ``score`` is its share of
    the total (the last segment's includes the end-of-path weight), so a path's segments sum to its score."""

    word: str
    start_frame: int
    end_frame: int
    score: float


@dataclass
class Hypothesis:
    """A path's word sequence (silence left out), its segments (silence included) and total log score."""

    words: list[str]
    segments: list[WordSegment]
    score: float


@dataclass
class DecodeResult:
    """1-best path, n-best list (``n_best[0]`` is the 1-best) and search statistics."""

    best: Hypothesis
    n_best: list[Hypothesis]
    n_frames: int
    silence: str | None = None
    stats: dict = field(default_factory=dict)

    @property
    def words(self) -> list[str]:
        return self.best.words

    @property
    def score(self) -> float:
        return self.best.score

    def word_segments(self) -> list[WordSegment]:
        """Segments of the 1-best path without silence (what a CTM lists)."""
        return [s for s in self.best.segments if s.word != self.silence]


def to_ctm(utt_id: str, result: DecodeResult, frame_shift_s: float = 0.01, channel: int = 1) -> str:
    """NIST CTM lines ``utt channel start duration word`` of the 1-best words (seconds, 3 decimals)."""
    return "".join(f"{utt_id} {channel} {s.start_frame * frame_shift_s:.3f} "
                   f"{(s.end_frame - s.start_frame) * frame_shift_s:.3f} {s.word}\n"
                   for s in result.word_segments())


# ---------------------------------------------------------------------------
# Compiled search
# ---------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _put(row, d, v, back, score, wlr, act, n_act):
    """Offer node ``d`` a token (score ``v``, word link ``back``): 0 worse, 1 better, 2 first of the frame."""
    if v <= score[row, d]:
        return 0
    new = score[row, d] == NEG_INF
    if new:
        act[row, n_act[row]] = d
        n_act[row] += 1
    score[row, d] = v
    wlr[row, d] = back
    return 2 if new else 1


@njit(cache=True)
def _relax_null(t, cur, score, wlr, act, n_act, node_pdf, n_null, arc_start, arc_dst, arc_w, cutoff):
    """Null-to-null arcs of frame ``t`` in topological (= id) order, via a heap of active null nodes."""
    heap = [np.int64(0)]
    heap.pop()
    for i in range(n_act[cur]):
        n = act[cur, i]
        if n < n_null:
            heap.append(n)
    heapq.heapify(heap)
    while len(heap) > 0:
        n = heapq.heappop(heap)
        s = score[cur, n]
        if s < cutoff:
            continue
        for a in range(arc_start[n], arc_start[n + 1]):
            d = arc_dst[a]
            if node_pdf[d] >= 0:
                continue
            if _put(cur, d, s + arc_w[a], wlr[cur, n], score, wlr, act, n_act) == 2:
                heapq.heappush(heap, d)


@njit(cache=True)
def _start(start, score, wlr, act, n_act, node_pdf, n_null, arc_start, arc_dst, arc_w):
    score[0, start] = 0.0
    wlr[0, start] = -1
    act[0, 0] = start
    n_act[0] = 1
    _relax_null(-1, 0, score, wlr, act, n_act, node_pdf, n_null, arc_start, arc_dst, arc_w, NEG_INF)


@njit(cache=True)
def _advance(ll, t_begin, t_end, t_offset, node_pdf, n_null, arc_start, arc_dst, arc_w, arc_label,
             beam, max_active, lattice_beam, keep_alts,
             score, wlr, act, n_act, node_rec, node_rec_frame,
             rec_pred, rec_label, rec_frame, rec_node, rec_score,
             alt_rec, alt_pred, alt_label, alt_score, counts, rec_room, alt_room, peak):
    """Frames ``t_begin .. t_end - 1``; returns the first frame not done (early if a buffer is full).

    Frame ``t`` is row ``t - t_offset`` of ``ll``. Row ``t % 2`` of the token
    arrays holds the tokens after frame ``t - 1``. ``counts`` = [records, alternatives].
    """
    for t in range(t_begin, t_end):
        if counts[0] + rec_room > rec_pred.shape[0] or counts[1] + alt_room > alt_rec.shape[0]:
            return t
        prev = t % 2
        cur = 1 - prev
        n = n_act[prev]
        if n > peak[0]:
            peak[0] = n
        best = NEG_INF
        for i in range(n):
            s = score[prev, act[prev, i]]
            if s > best:
                best = s
        cutoff = best - beam
        if max_active > 0 and n > max_active:
            tmp = np.empty(n)
            for i in range(n):
                tmp[i] = score[prev, act[prev, i]]
            kth = np.partition(tmp, n - max_active)[n - max_active]
            if kth > cutoff:
                cutoff = kth
        # emitting step; like Kaldi, a new token more than the beam below the best new one so far is
        # never made (it could not survive this frame's cutoff), which saves most of a large word loop
        best_cur = NEG_INF
        next_cutoff = NEG_INF
        for i in range(n):
            src = act[prev, i]
            s = score[prev, src]
            if s < cutoff:
                continue
            for a in range(arc_start[src], arc_start[src + 1]):
                d = arc_dst[a]
                p = node_pdf[d]
                if p < 0:
                    continue
                v = s + arc_w[a] + ll[t - t_offset, p]
                if v < next_cutoff:
                    continue
                if _put(cur, d, v, wlr[prev, src], score, wlr, act, n_act) and v > best_cur:
                    best_cur = v
                    next_cutoff = v - beam
        # word ends: emitting -> null arcs (all labelled) make word-link records
        cutoff = best_cur - beam
        n_emit = n_act[cur]
        for i in range(n_emit):
            e = act[cur, i]
            s = score[cur, e]
            if s < cutoff:
                continue
            for a in range(arc_start[e], arc_start[e + 1]):
                d = arc_dst[a]
                if node_pdf[d] >= 0:
                    continue
                v = s + arc_w[a]
                pred = wlr[cur, e]
                lab = arc_label[a]
                if node_rec_frame[d] == t:
                    r = node_rec[d]
                    if v > rec_score[r]:
                        if keep_alts and rec_score[r] >= v - lattice_beam:
                            k = counts[1]
                            alt_rec[k], alt_pred[k], alt_label[k], alt_score[k] = r, rec_pred[r], rec_label[r], rec_score[r]
                            counts[1] = k + 1
                        rec_pred[r], rec_label[r], rec_score[r] = pred, lab, v
                    elif keep_alts and v >= rec_score[r] - lattice_beam:
                        k = counts[1]
                        alt_rec[k], alt_pred[k], alt_label[k], alt_score[k] = r, pred, lab, v
                        counts[1] = k + 1
                else:
                    r = counts[0]
                    counts[0] = r + 1
                    rec_pred[r], rec_label[r], rec_frame[r], rec_node[r], rec_score[r] = pred, lab, t, d, v
                    node_rec[d] = r
                    node_rec_frame[d] = t
                _put(cur, d, v, r, score, wlr, act, n_act)
        _relax_null(t, cur, score, wlr, act, n_act, node_pdf, n_null, arc_start, arc_dst, arc_w, cutoff)
        for i in range(n):
            score[prev, act[prev, i]] = NEG_INF
            wlr[prev, act[prev, i]] = -1
        n_act[prev] = 0
    return t_end


@njit(cache=True)
def _collect(row, wlr, act, n_act, rec_pred, rec_label, rec_frame, rec_node, rec_score,
             alt_rec, alt_pred, alt_label, alt_score, counts, keep_alts, last_frame):
    """Drop records (and alternatives) no active token can reach; renumber in place. Returns live records.

    With a lattice (``keep_alts``) the records of ``last_frame`` (the frame just searched) are kept
    too: if the utterance ends there, the n-best search starts from every one of them, including
    those whose null node a better null path reached (no token points to them).
    """
    n_rec, n_alt = counts[0], counts[1]
    live = np.zeros(n_rec, dtype=np.bool_)
    for i in range(n_act[row]):
        r = wlr[row, act[row, i]]
        if r >= 0:
            live[r] = True
    if keep_alts:
        for r in range(n_rec - 1, -1, -1):  # records are made in frame order: the last frame's are last
            if rec_frame[r] != last_frame:
                break
            live[r] = True
    order = np.argsort(alt_rec[:n_alt], kind="mergesort")
    j = n_alt - 1
    for r in range(n_rec - 1, -1, -1):  # a record's predecessors are older (smaller ids)
        while j >= 0 and alt_rec[order[j]] > r:
            j -= 1
        if not live[r]:
            while j >= 0 and alt_rec[order[j]] == r:
                j -= 1
            continue
        if rec_pred[r] >= 0:
            live[rec_pred[r]] = True
        while j >= 0 and alt_rec[order[j]] == r:
            if keep_alts and alt_pred[order[j]] >= 0:
                live[alt_pred[order[j]]] = True
            j -= 1
    new = np.full(n_rec, -1, dtype=np.int64)
    k = 0
    for r in range(n_rec):
        if live[r]:
            new[r] = k
            p = rec_pred[r]
            rec_pred[k] = new[p] if p >= 0 else -1
            rec_label[k], rec_frame[k], rec_node[k], rec_score[k] = rec_label[r], rec_frame[r], rec_node[r], rec_score[r]
            k += 1
    m = 0
    for i in range(n_alt):
        r = alt_rec[i]
        if live[r]:
            p = alt_pred[i]
            alt_rec[m], alt_pred[m] = new[r], new[p] if p >= 0 else -1
            alt_label[m], alt_score[m] = alt_label[i], alt_score[i]
            m += 1
    for i in range(n_act[row]):
        n = act[row, i]
        if wlr[row, n] >= 0:
            wlr[row, n] = new[wlr[row, n]]
    counts[0], counts[1] = k, m
    return k


@njit(cache=True)
def _final_closure(final, n_null, node_pdf, arc_start, arc_dst, arc_w):
    """Best log weight from each null node to the end through null arcs only (reverse topological order)."""
    fc = final[:n_null].copy()
    for n in range(n_null - 1, -1, -1):
        for a in range(arc_start[n], arc_start[n + 1]):
            d = arc_dst[a]
            if node_pdf[d] < 0 and arc_w[a] + fc[d] > fc[n]:
                fc[n] = arc_w[a] + fc[d]
    return fc


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------
class _Buffers:
    """Growable record / alternative arrays, allocated by numpy (visible to tracemalloc)."""

    def __init__(self, n_rec: int, n_alt: int) -> None:
        self.rec = [np.empty(n_rec, dtype=np.int64) for _ in range(4)] + [np.empty(n_rec)]
        self.alt = [np.empty(n_alt, dtype=np.int64) for _ in range(3)] + [np.empty(n_alt)]

    @staticmethod
    def _grow(arrays: list[np.ndarray], used: int, size: int) -> list[np.ndarray]:
        out = []
        for a in arrays:
            b = np.empty(size, dtype=a.dtype)
            b[:used] = a[:used]
            out.append(b)
        return out

    def ensure(self, counts: np.ndarray, rec_room: int, alt_room: int) -> None:
        need = counts[0] + rec_room
        if need > len(self.rec[0]):
            self.rec = self._grow(self.rec, counts[0], max(2 * len(self.rec[0]), need))
        need = counts[1] + alt_room
        if need > len(self.alt[0]):
            self.alt = self._grow(self.alt, counts[1], max(2 * len(self.alt[0]), need))


class TokenPassing:
    """Search state of one utterance, fed log-likelihoods frame block by frame block.

    Like Kaldi's ``AdvanceDecoding`` on a decodable: memory never depends on
    the number of frames seen (only on the active search and the live
    traceback), so an hour of audio can be decoded in blocks.

    Parameters
    ----------
    graph : DecodingGraph
    options : SearchOptions
    arc_weights : (A,) array, optional
        ``graph.arc_weights(options)``, to compute once for many utterances.
    """

    def __init__(self, graph: DecodingGraph, options: SearchOptions | None = None,
                 arc_weights: np.ndarray | None = None) -> None:
        self.graph = graph
        self.options = SearchOptions() if options is None else options
        self.weights = graph.arc_weights(self.options) if arc_weights is None else arc_weights
        N = graph.n_nodes
        self.keep_alts = self.options.n_best > 1
        self.score = np.full((2, N), NEG_INF)
        self.wlr = np.full((2, N), -1, dtype=np.int64)
        self.act = np.empty((2, N), dtype=np.int64)
        self.n_act = np.zeros(2, dtype=np.int64)
        self.node_rec = np.full(graph.n_null, -1, dtype=np.int64)  # record of a null node in the current frame
        self.node_rec_frame = np.full(graph.n_null, -2, dtype=np.int64)
        self.rec_room = graph.n_null  # most records one frame can make
        self.alt_room = int((graph.arc_label >= 0).sum()) if self.keep_alts else 0
        self.buf = _Buffers(4 * self.rec_room + _MIN_BUFFER, 4 * self.alt_room + _MIN_BUFFER if self.keep_alts else 0)
        self.counts = np.zeros(2, dtype=np.int64)
        self.peak = np.zeros(1, dtype=np.int64)
        self.n_frames = 0
        self.n_gc = self.peak_rec = 0
        self._g = (graph.node_pdf, graph.n_null, graph.arc_start, graph.arc_dst, self.weights)
        _start(graph.start, self.score, self.wlr, self.act, self.n_act, *self._g)

    def advance(self, log_likelihood: np.ndarray) -> None:
        """Search the next frames: a (n, >= graph.n_pdf) log-likelihood block."""
        ll = check_log_likelihood(log_likelihood, self.graph.n_pdf, exact=False)
        o, buf = self.options, self.buf
        t, T = self.n_frames, self.n_frames + len(ll)
        while t < T:
            t = _advance(ll, t, min(T, t + _CHUNK), self.n_frames, *self._g, self.graph.arc_label, float(o.beam),
                         o.max_active, float(o.lattice_beam), self.keep_alts, self.score, self.wlr, self.act,
                         self.n_act, self.node_rec, self.node_rec_frame, *buf.rec, *buf.alt, self.counts,
                         self.rec_room, self.alt_room, self.peak)
            self.peak_rec = max(self.peak_rec, int(self.counts[0]))
            if (self.counts[0] + self.rec_room > len(buf.rec[0])
                    or self.counts[1] + self.alt_room > len(buf.alt[0])):
                live = _collect(t % 2, self.wlr, self.act, self.n_act, *buf.rec, *buf.alt, self.counts,
                                self.keep_alts, t - 1)
                self.n_gc += 1
                # grow when the live records fill more than half: amortised O(1) per record
                n_alt = int(self.counts[1])
                if 2 * live + self.rec_room > len(buf.rec[0]) or 2 * n_alt + self.alt_room > len(buf.alt[0]):
                    buf.ensure(self.counts, live + self.rec_room, n_alt + self.alt_room)
        self.n_frames = T

    def result(self) -> DecodeResult:
        """Best path (and n-best list) ending after the frames seen so far.

        Raises
        ------
        SequenceTooShortError
            No token reached a final node (too few frames, or the beam pruned every path).
        """
        graph, options, T = self.graph, self.options, self.n_frames
        row = T % 2
        active = self.act[row, :self.n_act[row]]
        final = graph.final_weights(options)
        totals = self.score[row, active] + final[active]
        partial = (options.allow_partial and len(active) and T >= graph.min_frames
                   and not np.isfinite(totals.max()))
        if partial:  # Kaldi's --allow-partial: the best token anywhere
            totals = self.score[row, active].copy()
            logger.warning("no path reached a final node in %d frames (beam %g); returning the best partial path",
                           T, options.beam)
        if T == 0 or not len(active) or not np.isfinite(totals.max()):
            raise SequenceTooShortError(f"no complete path through the decoding graph in {T} frames (the graph "
                                        f"needs at least {graph.min_frames}; beam={options.beam}, "
                                        f"max_active={options.max_active})")
        k = int(np.argmax(totals))
        rec_pred, rec_label, rec_frame, rec_node, rec_score = self.buf.rec
        stats = {"peak_active": int(self.peak[0]), "records": int(self.counts[0]),
                 "alternatives": int(self.counts[1]), "peak_records": self.peak_rec,
                 "garbage_collections": self.n_gc}
        segments = _segments(graph, int(self.wlr[row, active[k]]), rec_pred, rec_label, rec_frame, rec_score)
        if partial:
            stats["partial"] = True
            label = _word_in_progress(graph, int(active[k]))
            start = segments[-1].end_frame if segments else 0
            if label >= 0 and start < T:
                segments.append(WordSegment(graph.labels[label], start, T, 0.0))  # scored in _make_hypothesis
        best = _make_hypothesis(graph, segments, float(totals[k]))
        n_best = [best]
        if not partial and self.keep_alts:
            fc = _final_closure(final, graph.n_null, graph.node_pdf, graph.arc_start, graph.arc_dst, self.weights)
            n_best = _n_best(graph, options.n_best, T, fc, self.counts, self.buf) or [best]
            best = n_best[0]  # among exactly tied paths (homophones in different word ends) the same one
        silence = graph.labels[graph.silence_label] if graph.silence_label >= 0 else None
        return DecodeResult(best, n_best, T, silence, stats)


def decode(graph: DecodingGraph, log_likelihood: np.ndarray, options: SearchOptions | None = None,
           arc_weights: np.ndarray | None = None) -> DecodeResult:
    """Token-passing search of a (T, n_pdf) log-likelihood matrix through ``graph``.

    Parameters
    ----------
    graph : DecodingGraph
    log_likelihood : (T, >= graph.n_pdf) float array
        Emission log-likelihood of every pdf in every frame.
    options : SearchOptions
    arc_weights : (A,) array, optional
        ``graph.arc_weights(options)``, to compute once for many utterances.

    Raises
    ------
    InvalidInputError
        Wrong shape, NaN or +inf values.
    SequenceTooShortError
        No token reached a final node (too few frames, or the beam pruned every path).
    """
    search = TokenPassing(graph, options, arc_weights)
    search.advance(log_likelihood)
    return search.result()


def _segments(graph: DecodingGraph, r: int, rec_pred, rec_label, rec_frame, rec_score) -> list[WordSegment]:
    """Traceback of the record chain ending at ``r``: segments scored from their predecessor's end to their own."""
    chain = []
    while r >= 0:
        chain.append(r)
        r = int(rec_pred[r])
    segments = []
    for r in reversed(chain):
        p = int(rec_pred[r])
        start = int(rec_frame[p]) + 1 if p >= 0 else 0
        segments.append(WordSegment(graph.labels[rec_label[r]], start, int(rec_frame[r]) + 1,
                                    float(rec_score[r] - (rec_score[p] if p >= 0 else 0.0))))
    return segments


def _word_in_progress(graph: DecodingGraph, node: int) -> int:
    """Label of the word an emitting node belongs to (-1: none, e.g. a null node): its chain is
    followed forward, past self-loops, to the exit arc that carries the label."""
    for _ in range(graph.n_nodes):
        if node < graph.n_null:
            return -1
        arcs = range(graph.arc_start[node], graph.arc_start[node + 1])
        onward = [a for a in arcs if graph.arc_dst[a] != node]
        if not onward:
            return -1
        labelled = [a for a in onward if graph.arc_label[a] >= 0]
        if labelled:
            return int(graph.arc_label[labelled[0]])
        node = int(graph.arc_dst[onward[0]])
    return -1


def _make_hypothesis(graph: DecodingGraph, segments: list[WordSegment], total: float) -> Hypothesis:
    sil = graph.labels[graph.silence_label] if graph.silence_label >= 0 else None
    if segments:  # the end-of-path weight (log p(</s> | h), a final silence skipped) is the last word's
        rest = total - sum(seg.score for seg in segments[:-1])
        segments = segments[:-1] + [replace(segments[-1], score=rest)]
    return Hypothesis([s.word for s in segments if s.word != sil], segments, total)


def _n_best(graph: DecodingGraph, n: int, T: int, fc: np.ndarray, counts: np.ndarray, buf: _Buffers,
            max_pops: int = 200000) -> list[Hypothesis]:
    """A* backwards over the lattice of records: the ``n`` best distinct word sequences.

    A partial path is a suffix from record ``r`` to the end with log weight
    ``tail``; its priority ``rec_score[r] + tail`` is the best complete path
    through it (``rec_score`` is the best forward score of ``r``), so complete
    paths pop in descending order of score. A step back over an arrival of
    score ``s`` lowers the priority by ``rec_score[r] - s``: exactly 0.0 for
    the record's own (best) arrival and for homophones tied with it, so tied
    paths stay exactly tied (no rounding of suffix sums reorders them) and the
    1-best traceback, pushed last, pops first among them; ``n_best[0]`` is the
    1-best path, not a homophone of it. Suffixes are linked lists (a push
    costs O(1), not a copy of the suffix), and of the partial paths that reach
    the same record with the same words after it only the first popped is
    expanded: every completion of a later one has the words and a lower score
    of the same completion of the first, so paths differing only in
    segmentation or silence are not explored again and again.
    """
    n_rec, n_alt = int(counts[0]), int(counts[1])
    rec_pred, rec_label, rec_frame, rec_node, rec_score = (a[:n_rec] for a in buf.rec)
    alt_rec, alt_pred, alt_label, alt_score = (a[:n_alt] for a in buf.alt)
    order = np.argsort(alt_rec, kind="stable")
    alt_lo = np.searchsorted(alt_rec[order], np.arange(n_rec), "left")
    alt_hi = np.searchsorted(alt_rec[order], np.arange(n_rec), "right")
    word_ids: dict[tuple[int, int], int] = {}  # (label, id of the words after it) -> id of the words from it on
    heap: list = []
    tie = 0  # decreasing: among equal priorities the newest (deepest) partial path pops first, so a
    # run of tied paths (two word sequences with the same phones) completes one by one, not breadth-first
    for r in np.flatnonzero(rec_frame == T - 1):
        tail = float(fc[rec_node[r]])
        if np.isfinite(tail):
            heap.append((-(float(rec_score[r]) + tail), tie, int(r), None, 0))
            tie -= 1
    heapq.heapify(heap)
    out: list[Hypothesis] = []
    expanded: set[tuple[int, int]] = set()  # (record, words after it) already expanded
    pops = 0
    while heap and len(out) < n and pops < max_pops:
        neg, _, r, suffix, words = heapq.heappop(heap)
        pops += 1
        if (r, words) in expanded:
            continue
        expanded.add((r, words))
        if r < 0:  # a complete path, with words no earlier one had
            segments = []
            while suffix is not None:
                seg, suffix = suffix
                segments.append(seg)
            out.append(_make_hypothesis(graph, segments, -neg))
            continue
        end = int(rec_frame[r]) + 1
        # the record's own arrival last: among equal priorities the newest pops first
        edges = [(int(alt_pred[order[i]]), int(alt_label[order[i]]), float(alt_score[order[i]]))
                 for i in range(alt_lo[r], alt_hi[r])]
        edges.append((int(rec_pred[r]), int(rec_label[r]), float(rec_score[r])))
        for p, lab, s in edges:
            ps = float(rec_score[p]) if p >= 0 else 0.0
            start = int(rec_frame[p]) + 1 if p >= 0 else 0
            seg = WordSegment(graph.labels[lab], start, end, s - ps)
            new_words = words if lab == graph.silence_label else word_ids.setdefault((lab, words), len(word_ids) + 1)
            heapq.heappush(heap, (neg + (float(rec_score[r]) - s), tie, p, (seg, suffix), new_words))
            tie -= 1
    if len(out) < n and heap and pops >= max_pops:
        logger.info("n-best search stopped after %d expansions with %d of %d hypotheses", pops, len(out), n)
    return out
