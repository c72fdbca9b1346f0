"""Decoding phone models with gmmhmm.search on synthetic data (word loop, phone loop, isolated words)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from gmmhmm.decoding import decode_many, decoding_graph
from gmmhmm.errors import InvalidParameterError, SequenceTooShortError
from gmmhmm.graphs import EmbeddedTrainer
from gmmhmm.search import DecodingGraph, Grammar, SearchOptions, compile_graph, decode
from test_embedded import LEXICON, synthetic_corpus


@pytest.fixture(scope="module")
def model():
    feats, texts, _, _ = synthetic_corpus(n_utts=40, seed=2)
    tr = EmbeddedTrainer(LEXICON)
    tr.fit(feats, texts, mixtures=(1,), n_iter=6)
    return tr.model


def test_word_loop_recovers_transcripts(model):
    feats, texts, _, _ = synthetic_corpus(n_utts=15, seed=3)
    g = decoding_graph(model, "word-loop")
    for X, words in zip(feats, texts):
        res = decode(g, model.state_log_likelihood(X), SearchOptions(beam=200.0, word_insertion_penalty=-5.0))
        assert res.words == words


def test_phone_loop_and_isolated_words(model):
    feats, texts, _, _ = synthetic_corpus(n_utts=30, seed=4)
    g_phones = decoding_graph(model, "phone-loop")
    g_words = decoding_graph(model, "words")
    n_single = 0
    for X, words in zip(feats, texts):
        ll = model.state_log_likelihood(X)
        ref = [p for w in words for p in LEXICON.pronunciations[w]]
        phones = decode(g_phones, ll, SearchOptions(beam=math.inf, word_insertion_penalty=-5.0)).words
        assert [p for p in phones if p != "sil"] == ref
        if len(words) == 1:
            n_single += 1
            assert decode(g_words, ll, SearchOptions(beam=math.inf)).words == words
    assert n_single > 0


def chain(words):
    """Grammar of exactly ``words`` with the word loop's weights and optional silences."""
    lp = -math.log(len(LEXICON.words))
    return Grammar(len(words) + 1, [(i, i + 1, w, lp) for i, w in enumerate(words)], 0, {len(words): 0.0},
                   set(range(len(words) + 1)))


def test_word_loop_score_is_best_over_all_transcripts(model):
    """Search over the loop = max over every word sequence of its own best path (up to 3 words)."""
    X = synthetic_corpus(n_utts=1, seed=5)[0][0][:30]
    ll = model.state_log_likelihood(X)
    opts = SearchOptions(beam=math.inf, max_active=0, word_insertion_penalty=-1.0)
    best = decode(decoding_graph(model, "word-loop"), ll, opts)
    brute, brute_words = -np.inf, None
    ts = model.transition_log_probs()
    for n in range(0, 4):
        for seq in itertools.product(LEXICON.words, repeat=n):
            try:
                r = decode(compile_graph(chain(list(seq)), LEXICON, ts, 3, model.phones), ll, opts)
            except SequenceTooShortError:
                continue
            if r.score > brute:
                brute, brute_words = r.score, list(seq)
    assert best.score == pytest.approx(brute)
    assert best.words == brute_words


def test_decoder_errors(model):
    with pytest.raises(InvalidParameterError, match="graph must be one of"):
        decoding_graph(model, "bigram")
    with pytest.raises(InvalidParameterError, match="needs a language model"):
        decoding_graph(model, "lm")
    with pytest.raises(SequenceTooShortError, match="needs at least 3"):
        decode(decoding_graph(model, "words"), np.zeros((2, model.n_pdfs)))


def test_decode_many_computes_the_arc_weights_once(model, monkeypatch):
    feats = synthetic_corpus(n_utts=6, seed=7)[0]
    g = decoding_graph(model, "word-loop")
    opts = SearchOptions(beam=200.0, word_insertion_penalty=-5.0)
    lls = model.state_log_likelihood_many(feats)
    one_by_one = [decode(g, ll, opts) for ll in lls]
    calls = []
    weights = DecodingGraph.arc_weights
    monkeypatch.setattr(DecodingGraph, "arc_weights", lambda self, o: calls.append(1) or weights(self, o))
    many = decode_many(g, lls, opts)
    assert [(r.words, r.score) for r in many] == [(r.words, r.score) for r in one_by_one]
    assert len(calls) == 1
