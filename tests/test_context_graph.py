"""Context-dependent decoding graphs against brute force over word sequences and exact Viterbi.

The oracle never looks at the graph: it enumerates the grammar's word
sequences (with every choice of optional silence), gives each utterance's
phone string its pdfs with ``context.sequence_pdfs`` (cross-word contexts,
silence at the ends and where a silence is taken) and scores the composite
left-to-right HMM by exact Viterbi.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from gmmhmm.decoding import decoding_graph
from gmmhmm.errors import InvalidParameterError
from gmmhmm.graphs import Lexicon
from gmmhmm.graphs.context import ContextDependency, MonophoneContext
from gmmhmm.lm import NGramModel
from gmmhmm.search import Grammar, SearchOptions, compile_graph, decode, ngram_grammar, word_list, word_loop


class FullTriphones(ContextDependency):
    """Untied triphones: a pdf per (left, phone, right, state); silence context independent."""

    context_width = 3

    def __init__(self, phones, n_states, silence):
        self.phones, self.n_states, self.silence = list(phones), n_states, silence
        self._i = {p: i for i, p in enumerate(self.phones)}

    @property
    def n_pdfs(self):
        P = len(self.phones)
        return (P * P * P + 1) * self.n_states

    def pdfs(self, left, phone, right):
        P, n = len(self.phones), self.n_states
        if phone == self.silence:
            return tuple(range(P ** 3 * n, (P ** 3 + 1) * n))
        k = (self._i[left] * P + self._i[phone]) * P + self._i[right]
        return tuple(range(k * n, (k + 1) * n))


class RandomTying(ContextDependency):
    """Triphones tied at random into 2 pdfs per phone state (sharing that is not a product of contexts)."""

    context_width = 3

    def __init__(self, phones, n_states, silence, seed):
        self.phones, self.n_states, self.silence = list(phones), n_states, silence
        P = len(self.phones)
        self._i = {p: i for i, p in enumerate(self.phones)}
        self._bucket = np.random.default_rng(seed).integers(0, 2, size=(P, P, P, n_states))

    @property
    def n_pdfs(self):
        return 2 * len(self.phones) * self.n_states

    def pdfs(self, left, phone, right):
        p = self._i[phone]
        if phone == self.silence:
            return tuple(2 * (p * self.n_states + j) for j in range(self.n_states))
        b = self._bucket[self._i[left], p, self._i[right]]
        return tuple(2 * (p * self.n_states + j) + int(b[j]) for j in range(self.n_states))


class WideMonophones(MonophoneContext):
    """Monophone pdfs behind a triphone interface: the context graph must collapse to the monophone states."""

    context_width = 3


LEX = Lexicon.from_text("a A\nab A B\nabc A B C\nc C\nba B A\nbb B B\n")
PHONES = LEX.phones  # A B C sil


def transitions(n_pdf, rng):
    p = rng.uniform(0.2, 0.8, n_pdf)
    return np.log(p), np.log1p(-p)


# ---------------------------------------------------------------------------
# Oracle
# ---------------------------------------------------------------------------
def grammar_paths(grammar, lexicon, silence_prob, max_phones):
    """Every way through ``grammar``: (words, phones, grammar log weight, silence log weight, n_words)."""
    ls, ln = math.log(silence_prob), math.log1p(-silence_prob)
    out = []

    def arrive(g, words, phones, lm, sw):
        if g in grammar.silence_nodes:
            depart(g, words, phones, lm, sw + ln)
            if len(phones) < max_phones:
                depart(g, words, phones + [lexicon.silence], lm, sw + ls)
        else:
            depart(g, words, phones, lm, sw)

    def depart(g, words, phones, lm, sw):
        if g in grammar.final and phones:
            out.append((words, phones, lm + grammar.final[g], sw))
        for src, dst, w, logp in grammar.arcs:
            if src != g:
                continue
            if w is None:
                depart(dst, words, phones, lm + logp, sw)
                continue
            for pron, pw in lexicon.prons(w):
                if len(phones) + len(pron) <= max_phones:
                    arrive(dst, words + [w], phones + list(pron), lm + logp + pw, sw)

    arrive(grammar.start, [], [], 0.0, 0.0)
    return out


def chain_viterbi(states, ll, log_self, log_leave):
    """Best path through a left-to-right chain of pdfs over all frames of ``ll``, leaving its last state."""
    T, S = len(ll), len(states)
    if S > T:
        return -np.inf
    delta = np.full(S, -np.inf)
    delta[0] = ll[0, states[0]]
    for t in range(1, T):
        stay = delta + log_self[states]
        move = np.concatenate([[-np.inf], delta[:-1] + log_leave[states[:-1]]])
        delta = np.maximum(stay, move) + ll[t, states]
    return delta[-1] + log_leave[states[-1]]


def sequence_scores(grammar, lexicon, context, trans, silence_prob, ll, opts):
    """Best score of every word sequence (silence left out) over its grammar paths and alignments."""
    best: dict[tuple[str, ...], float] = {}
    max_phones = len(ll) // context.n_states
    for words, phones, lm, sw in grammar_paths(grammar, lexicon, silence_prob, max_phones):
        states = np.array([p for pdfs in context.sequence_pdfs(phones) for p in pdfs])
        score = (chain_viterbi(states, ll, *trans) + opts.lm_scale * lm + sw
                 + opts.word_insertion_penalty * len(words))
        key = tuple(w for w in words if w != lexicon.silence)
        best[key] = max(best.get(key, -np.inf), score)
    return best


def brute_force(grammar, lexicon, context, trans, silence_prob, ll, opts):
    """(best score, its words) over every grammar path and alignment."""
    words, score = max(sequence_scores(grammar, lexicon, context, trans, silence_prob, ll, opts).items(),
                       key=lambda kv: kv[1])
    return score, list(words)


BIGRAM = NGramModel([
    {("<s>",): (-99.0, -0.30), ("a",): (-0.60, -0.20), ("ab",): (-0.70, -0.25), ("c",): (-0.50, -0.1),
     ("ba",): (-0.9, -0.3), ("</s>",): (-0.40, 0.0)},
    {("<s>", "a"): (-0.15, 0.0), ("a", "ab"): (-0.10, 0.0), ("ab", "</s>"): (-0.05, 0.0), ("c", "ba"): (-0.2, 0.0),
     ("ba", "c"): (-0.3, 0.0)},
])


def grammars():
    yield word_loop(["a", "ab", "abc", "c", "ba"])  # shared prefixes, one-phone words, optional silence
    yield word_loop(["a", "ba", "bb", "c"], silence=False)  # cross-word contexts with no silence between
    yield word_list(["ab", "c", "ba", "a"])
    yield ngram_grammar(BIGRAM)  # backoff (epsilon) arcs carry contexts
    yield ngram_grammar(BIGRAM, silence=False)
    # silence at some nodes only, two finals, an epsilon arc out of the start
    yield Grammar(n_nodes=4, arcs=[(0, 1, "ab", -0.5), (0, 2, None, -1.0), (1, 2, "c", -0.2), (2, 3, "ba", -0.1),
                                   (2, 1, "a", -0.7), (3, 3, "c", -1.2)],
                  start=0, final={1: -0.3, 3: 0.0}, silence_nodes={0, 3})


def phone_loop():
    lex = Lexicon.from_text("".join(f"{p} {p}\n" for p in PHONES), "phones", silence="sil")
    return word_loop(PHONES, silence=False), lex


def contexts(n_states, seed):
    yield FullTriphones(PHONES, n_states, "sil")
    yield RandomTying(PHONES, n_states, "sil", seed)


# ---------------------------------------------------------------------------
# Exactness
# ---------------------------------------------------------------------------
def assert_decode_is_brute_force(g, grammar, lex, ctx, trans, silence_prob, ll, opts) -> None:
    """Token passing over ``g`` finds the score and words of the best path by enumeration."""
    want, words = brute_force(grammar, lex, ctx, trans, silence_prob, ll, opts)
    res = decode(g, ll, opts)
    assert res.score == pytest.approx(want, abs=1e-9)
    assert res.words == words


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("n_states", [1, 2])
def test_best_path_equals_brute_force_over_word_sequences(seed, n_states):
    rng = np.random.default_rng(seed)
    for grammar in grammars():
        for ctx in contexts(n_states, seed):
            trans = transitions(ctx.n_pdfs, rng)
            g = compile_graph(grammar, LEX, trans, n_states, silence_prob=0.3, context=ctx)
            T = 5 if n_states == 1 else 8
            ll = rng.normal(scale=3.0, size=(T, ctx.n_pdfs))
            opts = SearchOptions(beam=math.inf, max_active=0, lm_scale=float(rng.uniform(0.5, 2)),
                                 word_insertion_penalty=float(rng.normal()))
            assert_decode_is_brute_force(g, grammar, LEX, ctx, trans, 0.3, ll, opts)


@pytest.mark.parametrize("seed", range(3))
def test_phone_loop_with_triphones_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    grammar, lex = phone_loop()
    for ctx in contexts(1, seed):
        trans = transitions(ctx.n_pdfs, rng)
        g = compile_graph(grammar, lex, trans, 1, context=ctx)
        ll = rng.normal(scale=3.0, size=(5, ctx.n_pdfs))
        opts = SearchOptions(beam=math.inf, max_active=0, word_insertion_penalty=float(rng.normal()))
        assert_decode_is_brute_force(g, grammar, lex, ctx, trans, 0.5, ll, opts)


@pytest.mark.parametrize("seed", range(2))
def test_n_best_of_isolated_words(seed):
    """Without silence a word list's n-best is every word with its best score, in order; with optional
    silences (where histories meet inside the silence, as in monophone graphs) every entry is a real
    path scored exactly, in order, distinct, the first the 1-best."""
    rng = np.random.default_rng(seed)
    vocabulary = ["a", "ab", "abc", "c", "ba", "bb"]
    opts = SearchOptions(beam=math.inf, max_active=0, n_best=10, lattice_beam=math.inf, word_insertion_penalty=-0.5)
    for ctx in contexts(1, seed):
        trans = transitions(ctx.n_pdfs, rng)
        ll = rng.normal(scale=3.0, size=(5, ctx.n_pdfs))
        grammar = word_list(vocabulary, silence=False)
        want = sequence_scores(grammar, LEX, ctx, trans, 0.4, ll, opts)
        got = decode(compile_graph(grammar, LEX, trans, 1, context=ctx), ll, opts).n_best
        assert [tuple(h.words) for h in got] == sorted(want, key=want.get, reverse=True)
        assert [h.score for h in got] == pytest.approx(sorted(want.values(), reverse=True), abs=1e-9)

        grammar = word_list(vocabulary)
        want = sequence_scores(grammar, LEX, ctx, trans, 0.4, ll, opts)
        res = decode(compile_graph(grammar, LEX, trans, 1, silence_prob=0.4, context=ctx), ll, opts)
        assert res.n_best[0].words == res.words and len(res.n_best) >= 2
        assert len({tuple(h.words) for h in res.n_best}) == len(res.n_best)
        assert [h.score for h in res.n_best] == sorted(h.score for h in res.n_best)[::-1]
        for h in res.n_best:
            assert h.score <= want[tuple(h.words)] + 1e-9
            # the segmentation's own score: each segment's phones (contexts from its neighbours) on its frames
            prons = [("sil",) if seg.word == "sil" else LEX.prons(seg.word)[0][0] for seg in h.segments]
            pdfs, k, score = ctx.sequence_pdfs([p for pron in prons for p in pron]), 0, 0.0
            for seg, pron in zip(h.segments, prons):
                n = len(pron)
                states = np.array([p for q in pdfs[k:k + n] for p in q])
                score += chain_viterbi(states, ll[seg.start_frame:seg.end_frame], *trans)
                k += n
            n_sil = sum(seg.word == "sil" for seg in h.segments)
            score += (n_sil * math.log(0.4) + (2 - n_sil) * math.log(0.6) - math.log(len(vocabulary))
                      + opts.word_insertion_penalty)
            assert h.score == pytest.approx(score, abs=1e-9)


def test_the_right_context_of_the_last_word_is_silence():
    """A triphone path whose frames suit only 'c' followed by silence, so the pdf (A, C, sil) must be used."""
    ctx = FullTriphones(PHONES, 1, "sil")
    trans = (np.full(ctx.n_pdfs, math.log(0.5)), np.full(ctx.n_pdfs, math.log(0.5)))
    g = compile_graph(word_loop(["a", "c"], silence=False), LEX, trans, 1, context=ctx)
    ll = np.full((2, ctx.n_pdfs), -30.0)
    ll[0, ctx.pdfs("sil", "A", "C")] = 0.0
    ll[1, ctx.pdfs("A", "C", "sil")] = 0.0
    res = decode(g, ll, SearchOptions(beam=math.inf, max_active=0))
    assert res.words == ["a", "c"]
    assert res.score == pytest.approx(2 * math.log(0.5) + 2 * math.log(0.5))  # two leaves, two 1/2 word choices


@pytest.mark.parametrize("seed", range(3))
def test_decoding_a_transcript_scores_as_its_forced_alignment(seed):
    """The training / alignment graph (graphs.utterance_graph) and the decoding graph agree on contexts:
    a grammar accepting only the transcript (optional silence at every node) gives the exact Viterbi
    score of the transcript's composite HMM."""
    from gmmhmm.graphs import kernels, utterance_graph

    rng = np.random.default_rng(seed)
    lex = Lexicon.from_prons({"a": [(("A",), 0.0)], "ab": [(("A", "B"), math.log(0.3)), (("B",), math.log(0.7))],
                              "abc": [(("A", "B", "C"), 0.0)], "c": [(("C",), 0.0)]})
    for words in (["ab", "a", "c"], ["abc", "ab", "ab"], ["c"]):
        for ctx in contexts(2, seed):
            trans = transitions(ctx.n_pdfs, rng)
            ll = rng.normal(scale=3.0, size=(14, ctx.n_pdfs))
            train = utterance_graph(lex, words, 0.3, 2, context=ctx)
            want = kernels.viterbi(ll, train.state_pdf, train.arc_src, train.arc_dst, *train.log_probs(*trans),
                                   0.0)[0]
            grammar = Grammar(n_nodes=len(words) + 1, arcs=[(i, i + 1, w, 0.0) for i, w in enumerate(words)],
                              final={len(words): 0.0}, silence_nodes=set(range(len(words) + 1)))
            res = decode(compile_graph(grammar, lex, trans, 2, silence_prob=0.3, context=ctx), ll,
                         SearchOptions(beam=math.inf, max_active=0))
            assert res.score == pytest.approx(want, abs=1e-9)
            assert res.words == words


# ---------------------------------------------------------------------------
# Monophones: today's graph, exactly
# ---------------------------------------------------------------------------
def test_monophone_context_gives_the_monophone_graph_exactly():
    rng = np.random.default_rng(0)
    for n_states in (1, 3):
        ctx = MonophoneContext(PHONES, n_states, "sil")
        trans = transitions(ctx.n_pdfs, rng)
        for grammar in grammars():
            a = compile_graph(grammar, LEX, trans, n_states, silence_prob=0.3)
            b = compile_graph(grammar, LEX, trans, n_states, silence_prob=0.3, context=ctx)
            for k, v in vars(a).items():
                w = getattr(b, k)
                assert np.array_equal(v, w) if isinstance(v, np.ndarray) else v == w, k


def test_context_independent_pdfs_collapse_to_the_monophone_graph():
    """Contexts with equal pdfs share copies and null nodes: a triphone interface over monophone pdfs
    gives the monophone graph's states and null nodes (and a start node; the n-gram graph's unreachable
    silence at the empty history and the predecessors' copies of a word's last phone are left out),
    and decodes the same."""
    rng = np.random.default_rng(1)
    ctx = WideMonophones(PHONES, 2, "sil")
    trans = transitions(ctx.n_pdfs, rng)
    for grammar in grammars():
        mono = compile_graph(grammar, LEX, trans, 2, silence_prob=0.3)
        wide = compile_graph(grammar, LEX, trans, 2, silence_prob=0.3, context=ctx)
        n_wide, n_mono = (wide.node_pdf >= 0).sum(), (mono.node_pdf >= 0).sum()
        if grammar.n_nodes <= 2:
            assert n_wide == n_mono and wide.n_null == mono.n_null + 1
        assert n_wide <= n_mono and wide.n_null <= mono.n_null + 1
        ll = rng.normal(scale=3.0, size=(12, ctx.n_pdfs))
        opts = SearchOptions(beam=math.inf, max_active=0)
        assert decode(wide, ll, opts).score == pytest.approx(decode(mono, ll, opts).score, abs=1e-9)


def test_null_nodes_are_topologically_ordered():
    ctx = FullTriphones(PHONES, 1, "sil")
    trans = transitions(ctx.n_pdfs, np.random.default_rng(2))
    for grammar in grammars():
        g = compile_graph(grammar, LEX, trans, 1, context=ctx)
        src = g.arc_src
        nn = (src < g.n_null) & (g.arc_dst < g.n_null)
        assert (src[nn] < g.arc_dst[nn]).all()
        assert g.node_pdf[g.n_null:].min() >= 0 and (g.node_pdf[:g.n_null] < 0).all()


# ---------------------------------------------------------------------------
# Front doors and bad input
# ---------------------------------------------------------------------------
def test_decoding_graph_uses_the_models_context():
    ctx = WideMonophones(PHONES, 1, "sil")
    trans = transitions(ctx.n_pdfs, np.random.default_rng(3))
    model = SimpleNamespace(lexicon=LEX, phones=PHONES, n_states=1, transition_log_probs=lambda: trans)
    plain = decoding_graph(model, "word-loop")
    model.context = ctx
    for name in ("word-loop", "words", "phone-loop"):
        g = decoding_graph(model, name)
        assert g.n_null > decoding_graph(SimpleNamespace(**{k: v for k, v in vars(model).items() if k != "context"}),
                                         name).n_null
    assert decoding_graph(model, "word-loop").n_arcs > plain.n_arcs


def test_context_that_does_not_fit_is_refused():
    ctx = FullTriphones(PHONES, 1, "sil")
    trans = transitions(ctx.n_pdfs, np.random.default_rng(4))
    grammar = word_loop(["a"])
    with pytest.raises(InvalidParameterError, match="transitions"):
        compile_graph(grammar, LEX, transitions(len(PHONES), np.random.default_rng(0)), 1, context=ctx)
    with pytest.raises(InvalidParameterError, match="n_states"):
        compile_graph(grammar, LEX, trans, 3, context=ctx)
    with pytest.raises(InvalidParameterError, match="phones"):
        compile_graph(grammar, LEX, trans, 1, ["A", "B", "sil", "C"], context=ctx)
    with pytest.raises(InvalidParameterError, match="silence"):
        compile_graph(grammar, LEX, trans, 1, context=FullTriphones(PHONES, 1, "C"))
