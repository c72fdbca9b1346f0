"""Token-passing decoding with grammar graphs on synthetic data."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gmmhmm.errors import InvalidParameterError, SequenceTooShortError
from gmmhmm.graphs import EmbeddedTrainer, Graph, kernels, make_graph, viterbi_path, viterbi_paths, word_loop_graph
from test_embedded import LEXICON, synthetic_corpus


@pytest.fixture(scope="module")
def model():
    feats, texts, _, _ = synthetic_corpus(n_utts=40, seed=2)
    tr = EmbeddedTrainer(LEXICON)
    tr.fit(feats, texts, mixtures=(1,), n_iter=6)
    return tr.model


def test_word_loop_recovers_transcripts(model):
    feats, texts, _, _ = synthetic_corpus(n_utts=15, seed=3)
    g = make_graph(model, "word-loop", insertion_penalty=-5.0)
    for X, words in zip(feats, texts):
        path = viterbi_path(model, X, g, beam=200.0)
        assert path.tokens() == words


def test_phone_loop_and_isolated_words(model):
    feats, texts, _, _ = synthetic_corpus(n_utts=30, seed=4)
    g_phones = make_graph(model, "phone-loop", insertion_penalty=-5.0)
    g_words = make_graph(model, "words")
    n_single = 0
    for X, words in zip(feats, texts):
        ref = [p for w in words for p in LEXICON.pronunciations[w]]
        assert viterbi_path(model, X, g_phones).tokens() == ref
        if len(words) == 1:
            n_single += 1
            assert viterbi_path(model, X, g_words).tokens() == words
    assert n_single > 0


def test_word_loop_score_is_best_over_all_transcripts(model):
    """Viterbi over the loop = max over every word sequence of its own best path (up to 3 words)."""
    lex = LEXICON
    X = synthetic_corpus(n_utts=1, seed=5)[0][0][:30]
    lm = np.log(1.0 / (len(lex.words) + 1))
    g = word_loop_graph(lex, insertion_penalty=-1.0, lm_scale=1.0)
    best = viterbi_path(model, X, g).score
    ll = model.state_log_likelihood(X)
    ls, lleave = model.transition_log_probs()
    brute = -np.inf
    # enumerate unit sequences (words and single silences, no sil-sil) explicitly as linear graphs
    units = lex.words + ["sil"]
    for n in range(1, 5):
        for seq in itertools.product(units, repeat=n):
            if any(a == b == "sil" for a, b in zip(seq, seq[1:])):
                continue
            phones = [lex.phone_index(p) for u in seq for p in (["sil"] if u == "sil" else lex.pronunciations[u])]
            if 3 * len(phones) > len(X):
                continue
            pdf = np.array([3 * p + j for p in phones for j in range(3)])
            S = len(pdf)
            src = np.concatenate([np.arange(S), np.arange(S - 1)])
            dst = np.concatenate([np.arange(S), np.arange(1, S)])
            logp = np.concatenate([ls[pdf], lleave[pdf[:-1]]])
            init, final = np.full(S, -np.inf), np.full(S, -np.inf)
            init[0], final[-1] = 0.0, lleave[pdf[-1]]
            grammar = sum(lm + (-1.0 if u != "sil" else 0.0) for u in seq)
            score = kernels.viterbi(ll, pdf, src, dst, logp, init, final, 0.0)[0] + grammar
            brute = max(brute, score)
    assert best == pytest.approx(brute)


def test_decoder_errors(model):
    with pytest.raises(InvalidParameterError, match="graph must be one of"):
        make_graph(model, "bigram")
    with pytest.raises(SequenceTooShortError):
        viterbi_path(model, np.zeros((2, 3)), make_graph(model, "words"))


def test_precomputed_log_likelihood_gives_the_same_path(model):
    X = synthetic_corpus(n_utts=1, seed=6)[0][0]
    g = make_graph(model, "word-loop")
    a = viterbi_path(model, X, g)
    b = viterbi_path(model, None, g, log_likelihood=model.state_log_likelihood(X))
    assert a == b
    with pytest.raises(InvalidParameterError, match="log_likelihood"):
        viterbi_path(model, None, g, log_likelihood=np.zeros((10, 2)))


def test_viterbi_paths_compute_the_graph_weights_once(model, monkeypatch):
    feats = synthetic_corpus(n_utts=6, seed=7)[0]
    g = make_graph(model, "word-loop", insertion_penalty=-5.0)
    lls = model.state_log_likelihood_many(feats)
    one_by_one = [viterbi_path(model, None, g, 200.0, 0.01, 1.0, log_likelihood=ll) for ll in lls]
    calls = []
    log_probs = Graph.log_probs
    monkeypatch.setattr(Graph, "log_probs", lambda self, *a: calls.append(1) or log_probs(self, *a))
    assert viterbi_paths(model, g, lls, 200.0, 0.01, [1.0] * len(lls)) == one_by_one
    assert len(calls) == 1
    with pytest.raises(InvalidParameterError, match="2 durations for 6"):
        viterbi_paths(model, g, lls, durations_s=[1.0, 2.0])
    with pytest.raises(InvalidParameterError, match="log_likelihood"):
        viterbi_paths(model, g, [np.zeros((10, 2))])
