"""Token-passing search against brute-force enumeration, exact Viterbi and hand-computed LM scores."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gmmhmm.errors import InvalidInputError, InvalidParameterError, SequenceTooShortError, TranscriptError
from gmmhmm.graphs import Lexicon, kernels
from gmmhmm.lm import NGramModel
from gmmhmm.search import (Grammar, SearchOptions, TokenPassing, compile_graph, decode, ngram_grammar, to_ctm,
                           word_list, word_loop)
from gmmhmm.search import token_passing

EXACT = SearchOptions(beam=math.inf, max_active=0)


def transitions(lexicon: Lexicon, n_states: int, rng=None):
    """Log self-loop / leave per pdf (random if ``rng``)."""
    P = len(lexicon.phones) * n_states
    p = np.full(P, 0.5) if rng is None else rng.uniform(0.2, 0.8, P)
    return np.log(p), np.log1p(-p)


# ---------------------------------------------------------------------------
# Oracles
# ---------------------------------------------------------------------------
def all_paths(graph, opts, ll):
    """Every complete path: ((label, start, end), ...) and its score, by depth-first enumeration."""
    T = len(ll)
    weights, final = graph.arc_weights(opts), graph.final_weights(opts)
    pdf, start, dst, lab = graph.node_pdf, graph.arc_start, graph.arc_dst, graph.arc_label
    out = []

    def from_null(n, t, score, segs, last):
        if t == T and np.isfinite(final[n]):
            out.append((tuple(segs), score + final[n]))
        for a in range(start[n], start[n + 1]):
            d = dst[a]
            if pdf[d] < 0:
                from_null(d, t, score + weights[a], segs, last)
            elif t < T:
                at_emitting(d, t, score + weights[a] + ll[t, pdf[d]], segs, last)

    def at_emitting(e, t, score, segs, last):
        for a in range(start[e], start[e + 1]):
            d = dst[a]
            if pdf[d] >= 0:
                if t + 1 < T:
                    at_emitting(d, t + 1, score + weights[a] + ll[t + 1, pdf[d]], segs, last)
            else:
                from_null(d, t + 1, score + weights[a], segs + [(graph.labels[lab[a]], last, t + 1)], t + 1)

    from_null(graph.start, 0, 0.0, [], 0)
    return out


def words_of(segs, silence="sil"):
    return tuple(s[0] for s in segs if s[0] != silence)


def expand(graph, opts):
    """Emitting-only graph (null nodes removed by best null-path closure) for kernels.viterbi."""
    weights, final_w = graph.arc_weights(opts), graph.final_weights(opts)
    pdf, start, dst = graph.node_pdf, graph.arc_start, graph.arc_dst
    emitting = np.flatnonzero(pdf >= 0)
    index = {int(e): i for i, e in enumerate(emitting)}

    def closure(n):
        """Best weight from null node n to each emitting entry and to the end."""
        best, end = {}, final_w[n]
        for a in range(start[n], start[n + 1]):
            d = dst[a]
            if pdf[d] >= 0:
                best[d] = max(best.get(d, -np.inf), weights[a])
            else:
                sub, sub_end = closure(d)
                end = max(end, weights[a] + sub_end)
                for k, v in sub.items():
                    best[k] = max(best.get(k, -np.inf), weights[a] + v)
        return best, end

    S = len(emitting)
    src_l, dst_l, w_l = [], [], []
    init, final = np.full(S, -np.inf), np.full(S, -np.inf)
    first, _ = closure(graph.start)
    for k, v in first.items():
        init[index[k]] = v
    for e in emitting:
        for a in range(start[e], start[e + 1]):
            d = dst[a]
            if pdf[d] >= 0:
                src_l.append(index[e]), dst_l.append(index[d]), w_l.append(weights[a])
            else:
                sub, end = closure(d)
                final[index[e]] = max(final[index[e]], weights[a] + end)
                for k, v in sub.items():
                    src_l.append(index[e]), dst_l.append(index[k]), w_l.append(weights[a] + v)
    return (pdf[emitting], np.array(src_l, dtype=np.int64), np.array(dst_l, dtype=np.int64), np.array(w_l),
            init, final)


def exact_viterbi(graph, opts, ll):
    pdf, src, dst, w, init, final = expand(graph, opts)
    return kernels.viterbi(ll, pdf, src, dst, w, init, final, 0.0)[0]


LEX = Lexicon.from_text("a A\nab A B\nabc A B C\nc C\nba B A\n")


def tiny_graphs(rng):
    ts = transitions(LEX, 1, rng)
    yield compile_graph(word_loop(["a", "ab", "c"]), LEX, ts, 1)
    yield compile_graph(word_loop(["a", "ba"], silence=False), LEX, ts, 1)
    yield compile_graph(word_list(["ab", "c", "ba"]), LEX, transitions(LEX, 2, rng), 2)


# ---------------------------------------------------------------------------
# Exactness
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
def test_infinite_beam_equals_enumeration_and_exact_viterbi(seed):
    rng = np.random.default_rng(seed)
    for g in tiny_graphs(rng):
        T = 5
        ll = rng.normal(scale=2.0, size=(T, g.n_pdf))
        opts = SearchOptions(beam=math.inf, max_active=0, word_insertion_penalty=float(rng.normal()),
                             lm_scale=float(rng.uniform(0.5, 2)))
        paths = all_paths(g, opts, ll)
        segs, best = max(paths, key=lambda p: p[1])
        res = decode(g, ll, opts)
        assert res.score == pytest.approx(best, abs=1e-9)
        assert res.score == pytest.approx(exact_viterbi(g, opts, ll), abs=1e-9)
        assert res.words == list(words_of(segs))
        assert [(s.word, s.start_frame, s.end_frame) for s in res.best.segments] == list(segs)


@pytest.mark.parametrize("seed", range(4))
def test_n_best_distinct_sorted_and_real_paths(seed):
    """N-best comes from a word lattice under the word-pair approximation: real paths, in order, distinct.

    With one word between the same two grammar nodes (isolated words) no
    history is merged inside a word, so the list is exactly the best path of
    each of the best word sequences.
    """
    rng = np.random.default_rng(10 + seed)
    for k, g in enumerate(tiny_graphs(rng)):
        ll = rng.normal(scale=2.0, size=(6, g.n_pdf))
        opts = SearchOptions(beam=math.inf, max_active=0, n_best=5, lattice_beam=math.inf)
        paths = all_paths(g, opts, ll)
        res = decode(g, ll, opts)
        scores = [h.score for h in res.n_best]
        keys = [tuple(h.words) for h in res.n_best]
        assert scores == sorted(scores, reverse=True)
        assert len(set(keys)) == len(keys)
        assert res.n_best[0].words == res.words and res.n_best[0].score == pytest.approx(res.score)
        best_of, by_segs = {}, {}
        for segs, v in paths:
            best_of[words_of(segs)] = max(best_of.get(words_of(segs), -np.inf), v)
            by_segs[segs] = max(by_segs.get(segs, -np.inf), v)
        assert len(res.n_best) >= min(2, len(best_of))
        for h in res.n_best:  # each hypothesis is a real path: its segmentation scores exactly as reported
            key = tuple((s.word, s.start_frame, s.end_frame) for s in h.segments)
            assert by_segs[key] == pytest.approx(h.score, abs=1e-9)
            assert h.score <= best_of[tuple(h.words)] + 1e-9
        if k == 2:  # the isolated-word graph
            want = sorted(best_of.items(), key=lambda kv: -kv[1])[:5]
            assert [(tuple(h.words), pytest.approx(h.score)) for h in res.n_best] == want


def test_words_sharing_prefixes():
    """a / ab / abc share A and A B; the insertion penalty decides between the fewest and the most words."""
    g = compile_graph(word_loop(["a", "ab", "abc", "c"]), LEX, transitions(LEX, 1), 1)
    ll = np.full((6, g.n_pdf), -20.0)
    for t, p in enumerate("AABBCC"):
        ll[t, LEX.phones.index(p)] = 0.0
    assert decode(g, ll, SearchOptions(word_insertion_penalty=-5.0)).words == ["abc"]
    assert decode(g, ll, SearchOptions(word_insertion_penalty=+5.0)).words == ["a", "ab", "c", "c"]


def test_alternate_pronunciations_are_parallel_paths():
    lex = Lexicon.from_prons({"ab": [(["A", "B"], 0.0), (["C"], math.log(0.25))], "c": [(["C"], 0.0)]})
    g = compile_graph(word_list(["ab"], silence=False), lex, transitions(lex, 1), 1)
    assert g.n_nodes == 2 + 3  # two null nodes, A B and C in parallel
    ll = np.full((2, g.n_pdf), -20.0)
    ll[:, lex.phones.index("C")] = 0.0
    res = decode(g, ll, SearchOptions(beam=math.inf, lm_scale=2.0))
    assert res.words == ["ab"]  # through its second pronunciation, whose weight the LM scale scales
    assert res.score == pytest.approx(2 * math.log(0.5) + 2.0 * math.log(0.25))


# ---------------------------------------------------------------------------
# N-gram LM: backoff arcs give exactly log p(w | h)
# ---------------------------------------------------------------------------
BIGRAM = NGramModel([
    {("<s>",): (-99.0, -0.30), ("x",): (-0.60, -0.20), ("y",): (-0.70, -0.25), ("z",): (-0.50, 0.0),
     ("</s>",): (-0.40, 0.0)},
    {("<s>", "x"): (-0.15, 0.0), ("x", "y"): (-0.10, 0.0), ("y", "</s>"): (-0.05, 0.0)},
])
LN10 = math.log(10.0)


def manual_bigram(words):
    """Hand-computed log p(<s> words </s>) from the numbers above (backoff by hand)."""
    listed = {("<s>", "x"): -0.15, ("x", "y"): -0.10, ("y", "</s>"): -0.05}
    uni = {"x": -0.60, "y": -0.70, "z": -0.50, "</s>": -0.40}
    bo = {"<s>": -0.30, "x": -0.20, "y": -0.25, "z": 0.0}
    total, h = 0.0, "<s>"
    for w in list(words) + ["</s>"]:
        total += listed[(h, w)] if (h, w) in listed else bo[h] + uni[w]
        h = w
    return LN10 * total


@pytest.mark.parametrize("words", [["x", "y"], ["x", "z"], ["z", "x"], ["y"], ["z", "y", "z"]])
@pytest.mark.parametrize("silence", [False, True])
def test_bigram_scores_are_exact_log_probs(words, silence):
    lex = Lexicon.from_text("x X\ny Y\nz Z\n")
    g = compile_graph(ngram_grammar(BIGRAM, silence=silence), lex, transitions(lex, 1), 1)
    ll = np.full((2 * len(words), g.n_pdf), -50.0)
    for i, w in enumerate(words):
        ll[2 * i: 2 * i + 2, lex.phones.index(w.upper())] = 0.0
    opts = SearchOptions(lm_scale=1.7, word_insertion_penalty=-0.3, beam=math.inf)
    res = decode(g, ll, opts)
    assert res.words == words
    # every frame pays one transition of probability 1/2; each grammar node skips its silence with 1/2
    n_nodes_passed = len(words) + 1 if silence else 0
    want = (len(ll) * math.log(0.5) + 1.7 * manual_bigram(words) - 0.3 * len(words)
            + n_nodes_passed * math.log(0.5))
    assert res.score == pytest.approx(want, abs=1e-9)
    assert manual_bigram(words) == pytest.approx(BIGRAM.sentence_log_prob(words))


def test_ngram_graph_is_linear_in_ngrams_not_quadratic_in_words():
    words = [f"w{i}" for i in range(300)]
    lm = NGramModel([{**{(w,): (-2.5, -0.1) for w in words}, ("<s>",): (-99.0, 0.0), ("</s>",): (-2.0, 0.0)},
                     {("<s>", "w1"): (-0.5, 0.0), ("w1", "w2"): (-0.3, 0.0)}])
    grammar = ngram_grammar(lm)
    assert len(grammar.arcs) <= len(words) + 2 + grammar.n_nodes  # unigrams + bigrams + backoffs
    lex = Lexicon.from_text("".join(f"{w} P{i % 7}\n" for i, w in enumerate(words)))
    g = compile_graph(grammar, lex, transitions(lex, 3), 3)
    assert g.n_arcs < 10 * 3 * (len(words) + 2) + 10 * grammar.n_nodes


# ---------------------------------------------------------------------------
# Pruning and memory
# ---------------------------------------------------------------------------
def test_long_input_collects_word_links_and_stays_exact(monkeypatch):
    rng = np.random.default_rng(3)
    g = compile_graph(word_loop(["a", "ab", "c", "ba"]), LEX, transitions(LEX, 1, rng), 1)
    ll = rng.normal(scale=3.0, size=(3000, g.n_pdf))
    res = decode(g, ll, EXACT)
    assert res.stats["garbage_collections"] > 0
    assert res.stats["records"] < 3000  # live traceback only, not one record per frame and node
    assert res.score == pytest.approx(exact_viterbi(g, EXACT, ll), abs=1e-6)
    ends = [s.end_frame for s in res.best.segments]
    assert [s.start_frame for s in res.best.segments] == [0] + ends[:-1] and ends[-1] == 3000
    # n-best with collection equals n-best without (a buffer too big to fill)
    opts = SearchOptions(beam=30.0, n_best=4)
    small = decode(g, ll[:800], opts)
    monkeypatch.setattr(token_passing, "_MIN_BUFFER", 10**6)
    big = decode(g, ll[:800], opts)
    assert small.stats["garbage_collections"] > 0 and big.stats["garbage_collections"] == 0
    assert [(h.words, h.score) for h in small.n_best] == [(h.words, h.score) for h in big.n_best]


def test_blocks_of_frames_give_the_same_result():
    rng = np.random.default_rng(4)
    g = compile_graph(word_loop(["a", "ab", "c", "ba"]), LEX, transitions(LEX, 1, rng), 1)
    ll = rng.normal(scale=3.0, size=(500, g.n_pdf))
    opts = SearchOptions(beam=40.0, n_best=3)
    whole = decode(g, ll, opts)
    search = TokenPassing(g, opts)
    for block in np.array_split(ll, [1, 70, 71, 300]):
        search.advance(block)
    parts = search.result()
    assert parts.n_frames == 500
    assert [(h.words, h.segments, h.score) for h in parts.n_best] == [
        (h.words, h.segments, h.score) for h in whole.n_best]


def test_pruning_keeps_the_clear_best_path():
    g = compile_graph(word_loop(["a", "ab", "abc", "c"]), LEX, transitions(LEX, 1), 1)
    ll = np.full((9, g.n_pdf), -20.0)
    for t, p in enumerate("AABBCCAAA"):
        ll[t, LEX.phones.index(p)] = 0.0
    exact = decode(g, ll, SearchOptions(beam=math.inf, max_active=0, word_insertion_penalty=-5.0))
    for opts in (SearchOptions(beam=10.0, word_insertion_penalty=-5.0),
                 SearchOptions(max_active=3, word_insertion_penalty=-5.0)):
        res = decode(g, ll, opts)
        assert res.words == exact.words == ["abc", "a"]
        assert res.score == pytest.approx(exact.score)
        assert res.stats["peak_active"] <= g.n_nodes


def test_ctm_lists_words_without_silence():
    g = compile_graph(word_loop(["a", "c"]), LEX, transitions(LEX, 1), 1)
    ll = np.full((5, g.n_pdf), -20.0)
    for t, p in enumerate(["A", "A", "sil", "C", "sil"]):
        ll[t, LEX.phones.index(p)] = 0.0
    res = decode(g, ll, EXACT)
    assert [s.word for s in res.best.segments] == ["a", "sil", "c", "sil"]
    assert to_ctm("utt1", res, 0.01) == "utt1 1 0.000 0.020 a\nutt1 1 0.030 0.010 c\n"
    # silence as a word of the grammar (a phone loop): a segment, never a word
    lex = Lexicon.from_text("a A\nc C\nsil sil\n")
    g = compile_graph(word_loop(["a", "c", "sil"], silence=False), lex, transitions(lex, 1), 1)
    ll = np.full((5, g.n_pdf), -20.0)
    for t, p in enumerate(["A", "A", "sil", "C", "sil"]):
        ll[t, lex.phones.index(p)] = 0.0
    res = decode(g, ll, EXACT)
    assert res.words == ["a", "c"] and [s.word for s in res.best.segments] == ["a", "sil", "c", "sil"]


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------
def test_bad_input():
    g = compile_graph(word_list(["abc"]), LEX, transitions(LEX, 1), 1)
    with pytest.raises(SequenceTooShortError, match="needs at least 3"):
        decode(g, np.zeros((2, g.n_pdf)))
    with pytest.raises(InvalidInputError, match="log_likelihood must be"):
        decode(g, np.zeros((5, 2)))
    with pytest.raises(InvalidInputError, match="NaN"):
        decode(g, np.full((5, g.n_pdf), np.nan))
    # +inf made inf - inf = NaN inside the search: "no complete path in 5 frames (needs at least 3)"
    plus_inf = np.zeros((5, g.n_pdf))
    plus_inf[2, 0] = np.inf
    with pytest.raises(InvalidInputError, match=r"\+inf"):
        decode(g, plus_inf)
    with pytest.raises(TranscriptError, match="2 grammar word\\(s\\) not in the lexicon: yy, zz"):
        compile_graph(word_loop(["a", "zz", "yy"]), LEX, transitions(LEX, 1), 1)
    with pytest.raises(InvalidParameterError, match="transitions"):
        compile_graph(word_loop(["a"]), LEX, transitions(LEX, 1), 3)
    # a NaN transition silently cut its arc (a word loop decoded as silence only), +inf said "no path"
    for bad in (math.nan, math.inf):
        log_self, log_leave = transitions(LEX, 1)
        log_self[0] = bad
        with pytest.raises(InvalidParameterError, match="transitions must be log probabilities"):
            compile_graph(word_loop(["a", "ab"]), LEX, (log_self, log_leave), 1)
    with pytest.raises(InvalidParameterError, match="cycle"):
        compile_graph(Grammar(2, [(0, 1, None, 0.0), (1, 0, None, 0.0), (0, 1, "a", 0.0)], 0, {1: 0.0}),
                      LEX, transitions(LEX, 1), 1)
    with pytest.raises(InvalidParameterError, match="at least one word"):
        word_loop([])
    # a final node the start cannot reach compiled, and every decode then said the graph
    # "needs at least 9223372036854775807" frames
    with pytest.raises(InvalidParameterError, match="no final node"):
        compile_graph(Grammar(3, [(0, 1, "a", 0.0)], 0, {2: 0.0}), LEX, transitions(LEX, 1), 1)
    # a node outside the grammar crashed with an IndexError, and node -1 was silently the last node
    # (an arc from "-1" decoded as one from node 1); a NaN or +inf weight silently dropped its arc
    for bad, what in ((Grammar(2, [(-1, 1, "a", 0.0), (0, 1, "a", 0.0)], 0, {1: 0.0}), "arc 0: node -1"),
                      (Grammar(2, [(0, 5, "a", 0.0)], 0, {1: 0.0}), "arc 0: node 5"),
                      (Grammar(2, [(0, 1, "a", 0.0)], 2, {1: 0.0}), "start: node 2"),
                      (Grammar(2, [(0, 1, "a", 0.0)], 0, {1: 0.0, 7: 0.0}), "final weight: node 7"),
                      (Grammar(2, [(0, 1, "a", 0.0)], 0, {1: 0.0}, {0, 9}), "silence node: node 9"),
                      (Grammar(2, [(0, 1, "a", 0.0), (0, 1, "ab", math.nan)], 0, {1: 0.0}), "arc 1: log weight nan"),
                      (Grammar(2, [(0, 1, "a", math.inf)], 0, {1: 0.0}), "arc 0: log weight inf")):
        with pytest.raises(InvalidParameterError, match=what):
            compile_graph(bad, LEX, transitions(LEX, 1), 1)
    for bad in ({"beam": 0}, {"beam": float("nan")}, {"max_active": -1}, {"n_best": 0}, {"lm_scale": -1.0},
                {"word_insertion_penalty": math.inf}, {"max_active": 2.5}):
        with pytest.raises(InvalidParameterError):
            SearchOptions(**bad)


@pytest.mark.parametrize("order", [3, 4])
@pytest.mark.parametrize("words", [["x", "y", "z"], ["z", "y", "x", "z"], ["y", "x"], ["z"], ["x", "z", "y", "z"]])
def test_estimated_ngram_scores_are_sentence_log_probs(words, order):
    """Backoff chains across orders (4-gram -> trigram -> bigram -> unigram) give exactly the model's
    probability. A 4-gram grammar cut every n-gram shorter than 3 words to its last word
    (``gram[len(gram) - 3:]`` of a bigram is its last word), so ``<s> x`` went to history ``x`` and
    the trigrams and 4-grams after it were never reached.

    (No word repeats itself: one long word would beat two short copies.)
    """
    from gmmhmm.lm import estimate

    lm = estimate([["x", "y", "z"], ["x", "y", "y"], ["z", "y", "x"], ["y", "z"], ["x"]], order=order)
    lex = Lexicon.from_text("x X\ny Y\nz Z\n")
    g = compile_graph(ngram_grammar(lm, silence=False), lex, transitions(lex, 1), 1)
    ll = np.full((2 * len(words), g.n_pdf), -80.0)
    for i, w in enumerate(words):
        ll[2 * i: 2 * i + 2, lex.phones.index(w.upper())] = 0.0
    res = decode(g, ll, SearchOptions(beam=math.inf, lm_scale=1.3, word_insertion_penalty=-0.2))
    assert res.words == words
    want = len(ll) * math.log(0.5) + 1.3 * lm.sentence_log_prob(words) - 0.2 * len(words)
    assert res.score == pytest.approx(want, abs=1e-9)


def test_allow_partial_returns_the_best_path_when_the_beam_prunes_every_ending():
    """Word list {ba, c}: B B A is the only way to finish "ba"; A scores poorly until the last
    frame, so a narrow beam keeps only tokens inside B. Without allow_partial that is an error;
    with it the best token's path is returned, the word it is in included (Kaldi --allow-partial)."""
    g = compile_graph(word_list(["ba", "c"], silence=False), LEX, transitions(LEX, 1), 1)
    ll = np.full((4, g.n_pdf), -400.0)
    ll[:, LEX.phones.index("B")] = 0.0  # B all the way: "ba" cannot end in time inside the beam
    narrow = SearchOptions(beam=50.0)
    with pytest.raises(SequenceTooShortError):
        decode(g, ll, narrow)
    result = decode(g, ll, SearchOptions(beam=50.0, allow_partial=True))
    assert result.stats["partial"] and result.words == ["ba"]
    assert [(s.start_frame, s.end_frame) for s in result.best.segments] == [(0, 4)]
    # the exact search still finds the complete path, not a partial one
    full = decode(g, ll, SearchOptions(beam=math.inf, allow_partial=True))
    assert "partial" not in full.stats and full.words == ["ba"]
    # input shorter than any complete path (2 frames for "ba") is still refused
    only_ba = compile_graph(word_list(["ba"], silence=False), LEX, transitions(LEX, 1), 1)
    with pytest.raises(SequenceTooShortError):
        decode(only_ba, ll[:1], SearchOptions(allow_partial=True))


def test_n_best_of_a_long_utterance_is_linear_in_memory_and_complete():
    """The A* n-best search kept every partial path's whole segment suffix as a copied tuple and
    expanded every path that differed only in segmentation or silence: 3000 frames (30 s) took
    ~370 MB and 8000 frames returned only the 1-best after 200000 pops. A partial path is now a
    linked suffix, and partial paths reaching the same record with the same word suffix are
    expanded once (the first popped dominates every completion of the others)."""
    import tracemalloc

    rng = np.random.default_rng(0)
    g = compile_graph(word_loop(["a", "ab", "c", "ba"]), LEX, transitions(LEX, 1, rng), 1)
    ll = rng.normal(scale=3.0, size=(3000, g.n_pdf))
    opts = SearchOptions(beam=20.0, n_best=3)
    decode(g, ll[:50], opts)  # compile first: numba's own allocations are not the search's
    tracemalloc.start()
    try:
        res = decode(g, ll, opts)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(res.n_best) == 3 and len({tuple(h.words) for h in res.n_best}) == 3
    assert peak < 30e6, f"{peak / 1e6:.0f} MB for 3000 frames"


def test_min_frames_counts_only_paths_with_frames():
    """A word loop (a phone loop, an n-gram LM) also accepts the empty word sequence, so the fewest
    frames of "any complete path" was 0: a 2-frame input to 3-state phones was refused as needing
    "at least 0" frames, and allow_partial returned a partial word for input shorter than every
    complete path, which its contract says raises. The search never returns a path of no frames."""
    g = compile_graph(word_loop(["a", "ab"], silence=False), LEX, transitions(LEX, 3), 3)
    assert g.min_frames == 3
    ll = np.zeros((2, g.n_pdf))
    for opts in (SearchOptions(), SearchOptions(allow_partial=True)):
        with pytest.raises(SequenceTooShortError, match="needs at least 3"):
            decode(g, ll, opts)
    assert decode(g, np.zeros((3, g.n_pdf)), SearchOptions(allow_partial=True)).words == ["a"]
    rng = np.random.default_rng(5)
    for gr in (word_loop(["a", "ab", "c"]), word_list(["ab", "c", "ba"]), ngram_grammar(BIGRAM)):
        lex = Lexicon.from_text("x X\ny Y\nz Z\n") if gr.words[0] == "x" else LEX
        for n_states in (1, 2):
            g = compile_graph(gr, lex, transitions(lex, n_states, rng), n_states)
            lengths = [T for T in range(1, 7) if all_paths(g, EXACT, np.zeros((T, g.n_pdf)))]
            assert lengths == list(range(g.min_frames, 7))  # every length from min_frames on has a path
            assert g.completes()
    # the reachability check compile_graph uses agrees with min_frames: a final node reached only
    # by the empty path, or only before any frame, does not complete
    import dataclasses
    g = compile_graph(word_list(["a", "ab"]), LEX, transitions(LEX, 3), 3)
    start_only = dataclasses.replace(g, final=np.where(np.arange(g.n_nodes) == g.start, 0.0, -np.inf))
    assert g.completes() and not start_only.completes()
    assert start_only.min_frames == np.iinfo(np.int64).max


@pytest.mark.parametrize("seed", [13, 18, 19])
def test_n_best_does_not_depend_on_when_word_links_are_collected(seed, monkeypatch):
    """The n-best search starts from every record of the last frame, but garbage collection kept
    only records some token points to: a collection right after the last frame (small buffers,
    frames fed block by block) dropped word ends whose null node a better null path had reached,
    and with them hypotheses (an isolated word's best path, scored 10.3, came back as 4.9)."""
    rng = np.random.default_rng(seed)
    lex = Lexicon.from_text("a A\nab A B\nc C\nba B A\nb B\n")
    lm = NGramModel([{("<s>",): (-99.0, -0.3), ("a",): (-0.6, -0.2), ("b",): (-0.7, -0.25), ("ab",): (-0.8, -0.1),
                      ("c",): (-0.5, -0.3), ("</s>",): (-0.4, 0.0)},
                     {("<s>", "a"): (-0.15, 0.0), ("a", "b"): (-0.1, 0.0), ("ab", "c"): (-0.2, 0.0)}])
    for gr in (word_loop(["a", "ab", "c", "ba"]), ngram_grammar(lm), word_list(["a", "ab", "c", "ba", "b"])):
        g = compile_graph(gr, lex, transitions(lex, 1, rng), 1)
        ll = rng.normal(scale=3.0, size=(int(rng.integers(5, 40)), g.n_pdf))
        opts = SearchOptions(beam=30.0, n_best=5, lattice_beam=30.0)
        monkeypatch.setattr(token_passing, "_MIN_BUFFER", 10**6)
        whole = decode(g, ll, opts)
        monkeypatch.setattr(token_passing, "_MIN_BUFFER", 0)
        search = TokenPassing(g, opts)
        for frame in ll:
            search.advance(frame[None])
        framewise = search.result()
        assert whole.stats["garbage_collections"] == 0 and framewise.stats["garbage_collections"] > 0
        assert [(h.words, pytest.approx(h.score)) for h in framewise.n_best] == [
            (h.words, h.score) for h in whole.n_best]


def test_first_of_the_n_best_is_the_1_best_among_homophones():
    """Homophones (two, too, to) tie exactly, and the A* search popped the last-pushed alternative
    first: n_best[0] was "to" while the 1-best was "two" (for most utterances of a loop with
    homophones), and rounding of the suffix sums could reorder tied paths deeper in the lattice.
    In an n-gram graph tied homophones end in different history nodes (different word ends), and
    the 1-best took the first tied token, the n-best search the last word end."""
    from gmmhmm.lm import estimate

    lex = Lexicon.from_text("two T UW\ntoo T UW\nto T UW\nsix S IH K S\n")
    lm = estimate([["two", "six"], ["too", "six"], ["to"], ["six"]], order=3)
    rng = np.random.default_rng(0)
    for grammar in (word_loop(lex.words), word_list(lex.words), ngram_grammar(lm)):
        g = compile_graph(grammar, lex, transitions(lex, 1), 1)
        for T in (2, 3, 5, 8, 10, 10, 11):
            res = decode(g, rng.normal(scale=2.0, size=(T, g.n_pdf)), SearchOptions(n_best=3))
            assert (res.n_best[0].segments, res.n_best[0].score) == (res.best.segments, res.score)
            assert len(res.n_best) == 3


@pytest.mark.parametrize("n_best", [1, 3])
def test_segment_scores_sum_to_the_path_score(n_best):
    """Each segment's score is its share of the total: with an n-gram LM the end-of-path weight
    (log p(</s> | h), an optional final silence skipped) belongs to the last segment, for the
    1-best, the n-best and a partial path alike."""
    from gmmhmm.lm import estimate

    lex = Lexicon.from_text("two T UW\nsix S IH K S\nsil SIL\n")
    lm = estimate([["two", "six"], ["six", "two", "two"], ["six"]], order=2)
    rng = np.random.default_rng(3)
    g = compile_graph(ngram_grammar(lm), lex, transitions(lex, 1), 1)
    for T in (4, 7, 12):
        res = decode(g, rng.normal(scale=2.0, size=(T, g.n_pdf)), SearchOptions(n_best=n_best))
        for h in [res.best] + res.n_best:
            assert sum(s.score for s in h.segments) == pytest.approx(h.score, abs=1e-9)
    # a partial path (the beam prunes every ending): "c", then "ba" in progress
    g = compile_graph(word_loop(["c", "ba"], silence=False), LEX, transitions(LEX, 1), 1)
    ll = np.full((4, g.n_pdf), -400.0)
    ll[0, LEX.phones.index("C")] = -1.0
    ll[1:, LEX.phones.index("B")] = -2.0
    res = decode(g, ll, SearchOptions(beam=50.0, allow_partial=True, n_best=n_best))
    assert res.stats["partial"] and [s.word for s in res.best.segments] == ["c", "ba"]
    assert [s.score for s in res.best.segments] == pytest.approx([-1.0, -6.0], abs=2.5)  # + transitions
    assert sum(s.score for s in res.best.segments) == pytest.approx(res.score, abs=1e-9)
