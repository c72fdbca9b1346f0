"""N-gram estimation: hand-computed Witten-Bell / Kneser-Ney values, normalisation, round trip."""

from __future__ import annotations

import itertools
import math
import random
from pathlib import Path

import pytest

from gmmhmm.errors import GmmhmmError
from gmmhmm.lm import estimate, read_arpa, write_arpa
from gmmhmm.lm.estimate import _kn_discounts, _kneser_ney_counts, count_ngrams

AN4_ETC = Path(__file__).resolve().parents[2] / "shared" / "data" / "an4" / "etc"
TOY = [["a", "b"], ["a"]]  # <s> a b </s> / <s> a </s>


def an4_sentences(part: str) -> list[list[str]]:
    """Words of etc/an4_{part}.transcription ('<s> W W </s> (utt-id)'); fails loudly if missing."""
    lines = (AN4_ETC / f"an4_{part}.transcription").read_text().splitlines()
    return [line.split()[1:-2] for line in lines if line.strip()]


def p(model, word, *history) -> float:
    return math.exp(model.log_prob(word, history))


def test_witten_bell_by_hand():
    # Unigrams: c(a)=2 c(b)=1 c(</s>)=2, N=5, 3 types; uniform 1/3: p(w) = (c + 3/3) / (5 + 3).
    # Context <s>: c=2, 1 type.  Context a: c=2, 2 types.  Context b: c=1, 1 type.
    # Trigram contexts (<s> a): c=2, 2 types; (a b): c=1, 1 type.
    m = estimate(TOY, order=3, method="witten-bell")
    expected = {
        ("a",): 3 / 8, ("b",): 2 / 8, ("</s>",): 3 / 8,
        ("a", "<s>"): (2 + 1 * 3 / 8) / 3, ("b", "<s>"): 1 / 3 * 2 / 8, ("</s>", "<s>"): 1 / 3 * 3 / 8,
        ("b", "a"): (1 + 2 * 2 / 8) / 4, ("</s>", "a"): (1 + 2 * 3 / 8) / 4, ("a", "a"): 2 / 4 * 3 / 8,
        ("</s>", "b"): (1 + 3 / 8) / 2, ("a", "b"): 1 / 2 * 3 / 8,
        ("b", "<s>", "a"): (1 + 2 * 3 / 8) / 4,            # 7/16
        ("</s>", "<s>", "a"): (1 + 2 * 7 / 16) / 4,        # 15/32
        ("a", "<s>", "a"): 2 / 4 * (2 / 4 * 3 / 8),        # back-off twice: 3/32
        ("</s>", "a", "b"): (1 + 11 / 16) / 2,             # 27/32
        ("b", "a", "b"): 1 / 2 * (1 / 2 * 2 / 8),
    }
    for (word, *history), value in expected.items():
        assert p(m, word, *history) == pytest.approx(value, rel=1e-12), (word, history)
    assert m.ngrams[0][("<s>",)][0] == -99.0
    assert m.ngrams[1][("a", "b")][1] == pytest.approx(math.log10(1 / 2))  # bo(a b) = gamma = 1/2
    assert m.counts() == [4, 4, 3] and m.vocab == ["</s>", "<s>", "a", "b"]


def test_kneser_ney_by_hand():
    # Continuation counts: a <- {<s>}, b <- {a}, </s> <- {a, b}: 1, 1, 2.
    # Unigram counts of counts n1=2 n2=1 n3=0 -> one discount D = 2/(2+2) = 0.5:
    #   alpha = (0.5, 0.5, 1.5)/4, gamma = 3*0.5/4 = 3/8, p = alpha + gamma/3 -> 1/4, 1/4, 1/2.
    # Bigrams (raw) n1=3 n2=1 -> D = 3/5: context <s> (a:2): alpha 1.4/2, gamma .3;
    #   context a (b:1, </s>:1): alpha .4/2 each, gamma 1.2/2.
    m = estimate(TOY, order=2, method="kneser-ney")
    expected = {
        ("a",): 1 / 4, ("b",): 1 / 4, ("</s>",): 1 / 2,
        ("a", "<s>"): 0.7 + 0.3 / 4, ("b", "<s>"): 0.3 / 4, ("</s>", "<s>"): 0.3 / 2,
        ("b", "a"): 0.2 + 0.6 / 4, ("</s>", "a"): 0.2 + 0.6 / 2, ("a", "a"): 0.6 / 4,
    }
    for (word, *history), value in expected.items():
        assert p(m, word, *history) == pytest.approx(value, rel=1e-12), (word, history)


def test_modified_kneser_ney_discounts():
    # Chen & Goodman: Y = n1/(n1+2 n2); Dk = k - (k+1) Y n_{k+1}/n_k
    counts = [1] * 10 + [2] * 4 + [3] * 2 + [4] * 1 + [7] * 3
    y = 10 / 18
    assert _kn_discounts(counts, 2) == pytest.approx((1 - 2 * y * 4 / 10, 2 - 3 * y * 2 / 4, 3 - 4 * y * 1 / 2))


def test_kneser_ney_lower_orders_count_left_contexts_except_after_bos():
    raw, _ = count_ngrams([["a", "b"], ["c", "b"], ["a", "b"]], 3)
    kn = _kneser_ney_counts(raw)
    assert kn[2] == raw[2]
    assert kn[1][("a", "b")] == 1 and kn[1][("c", "b")] == 1   # only <s> precedes them
    assert kn[1][("<s>", "a")] == 2                            # raw count: nothing precedes <s>
    assert kn[0][("b",)] == 2 and kn[0][("</s>",)] == 1        # b <- {a, c}; </s> <- {b}


def random_corpus(seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(8)]
    return [[rng.choice(words[: rng.randint(2, 8)]) for _ in range(rng.randint(1, 7))] for _ in range(40)]


@pytest.mark.parametrize("method", ["witten-bell", "kneser-ney"])
@pytest.mark.parametrize("order, corpus", [(2, "random"), (3, "random"), (4, "random"), (2, "an4"), (3, "an4")])
def test_every_context_sums_to_one(method, order, corpus):
    sentences = an4_sentences("train") if corpus == "an4" else random_corpus(order)
    m = estimate(sentences, order=order, method=method, vocab=["never-seen"])
    events = [w for w in m.vocab if w != "<s>"]
    contexts = {k for table in m.ngrams[:-1] for k in table} | {(), ("oov",), ("oov", "oov")}
    for h in contexts:
        total = math.fsum(p(m, w, *h) for w in events)
        assert total == pytest.approx(1.0, abs=1e-9), h
    assert p(m, "never-seen") > 0


@pytest.mark.parametrize("method", ["witten-bell", "kneser-ney"])
def test_written_and_reread_scores_identically(tmp_path, method):
    m = estimate(random_corpus(5), order=3, method=method)
    write_arpa(m, tmp_path / "lm.arpa")
    again = read_arpa(tmp_path / "lm.arpa")
    assert again.ngrams == m.ngrams
    for sentence in random_corpus(6)[:10]:
        assert again.sentence_log_prob(sentence) == m.sentence_log_prob(sentence)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_decoder_steps_score_sentences_like_the_full_history(order):
    m = estimate(random_corpus(1), order=order, method="kneser-ney")
    first = random_corpus(1)[0][0]
    kept = ("<s>", first)[-(order - 1):] if order > 1 else ()
    assert m.state(["<s>", first]) == kept  # a short history is kept whole
    for sentence in random_corpus(2) + [["w1", "unseen", "w2"]]:
        state, total, history = m.state(("<s>",)), 0.0, ["<s>"]
        for w in sentence + ["</s>"]:
            ln_p, state = m.score(state, w)
            assert ln_p == m.log_prob(w, history)
            total += ln_p
            history.append(w)
            assert state == m.state(history) and len(state) < order or state == ()
        assert total == pytest.approx(m.sentence_log_prob(sentence))


def test_an4_perplexities_are_sane():
    train, test = an4_sentences("train"), an4_sentences("test")
    ppl = {}
    for method in ("witten-bell", "kneser-ney"):
        for order in (2, 3):
            m = estimate(train, order=order, method=method)
            ppl[method, order] = (m.perplexity(train).ppl, m.perplexity(test))
    for (method, order), (train_ppl, test_result) in ppl.items():
        assert test_result.sentences == len(test) and test_result.zeroprobs == 0
        assert 1 < train_ppl < test_result.ppl < 100  # ~100 words in the vocabulary
    for method in ("witten-bell", "kneser-ney"):
        assert ppl[method, 3][0] < ppl[method, 2][0]  # the trigram fits its training text better


def test_counts_skip_empty_sentences():
    raw, n = count_ngrams([[], ["a"], ()], 2)
    assert n == 1 and raw[1] == {("<s>", "a"): 1, ("a", "</s>"): 1}


@pytest.mark.parametrize("sentences, kwargs, message", [
    (["a b"], {}, "is a string"),
    ([["a", "<s>"]], {}, "is not a word"),
    ([["a b"]], {}, "is not a word"),
    ([["a", ""]], {}, "is not a word"),
    ([["a", 3]], {}, "is not a word"),
    ([[], []], {}, "no training sentences"),
    ([["a"]], {"order": 0}, "order must be"),
    ([["a"]], {"order": 2.0}, "order must be"),
    ([["a"]], {"method": "good-turing"}, "method must be"),
    ([["a"]], {"vocab": ["x y"]}, "non-words"),
])
def test_bad_input(sentences, kwargs, message):
    with pytest.raises(GmmhmmError, match=message):
        estimate(sentences, **kwargs)


@pytest.mark.parametrize("method", ["witten-bell", "kneser-ney"])
@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("sentences", [
    [["a"]],                                   # one sentence of one word: no 4-grams at all
    [["a"], ["b"], ["a"]],                     # one-word sentences
    [["a", "a", "a", "a"], ["b"]],
    [["<unk>", "a"], ["b", "<unk>", "a"]],     # open vocabulary: <unk> is a word of the text
])
def test_every_history_sums_to_one_by_enumeration(method, order, sentences):
    """All histories of order - 1 words over the vocabulary and an unknown word (listed or not,
    starting with <s> or not): p(w | h) over every word and </s>, backoff paths included, sums to 1."""
    m = estimate(sentences, order=order, method=method, vocab=["never-seen"])
    events = [w for w in m.vocab if w != "<s>"]
    for k in range(order):
        for h in itertools.product(m.vocab + ["oov"], repeat=k):
            assert math.fsum(p(m, w, *h) for w in events) == pytest.approx(1.0, abs=1e-12), h


def test_unk_in_the_training_text_makes_an_open_vocabulary_model(tmp_path):
    m = estimate([["<unk>", "a"], ["b", "<unk>", "a"], ["a"]], order=2)
    assert m.unk == "<unk>"
    assert m.log_prob("zebra", ["<s>"]) == m.log_prob("<unk>", ["<s>"]) > -math.inf
    assert m.log_prob("a", ["zebra"]) == m.log_prob("a", ["<unk>"]) != m.log_prob("a", ["b"])
    ppl = m.perplexity([["zebra", "a"]])
    assert (ppl.oovs, ppl.zeroprobs) == (0, 0)
    assert ppl.log10_prob == pytest.approx(m.sentence_log_prob(["<unk>", "a"]) / math.log(10))
    write_arpa(m, tmp_path / "lm.arpa")
    assert read_arpa(tmp_path / "lm.arpa").unk == "<unk>"


def test_closed_vocabulary_model_counts_oovs_like_srilm():
    m = estimate([["a", "b"], ["a"]], order=2)
    assert m.unk is None and m.log_prob("zebra", ["a"]) == -math.inf
    ppl = m.perplexity([["a", "zebra", "b"]])
    assert (ppl.words, ppl.oovs, ppl.zeroprobs) == (3, 1, 0)
    # the OOV is skipped and b is scored after it as a unigram (no context, no backoff weight)
    expected = m.log_prob("a", ["<s>"]) + m.log_prob("b") + m.log_prob("</s>", ["b"])
    assert ppl.log10_prob == pytest.approx(expected / math.log(10))


@pytest.mark.parametrize("order", [1, 2, 3])
def test_one_word_sentences_write_and_read_back(tmp_path, order):
    m = estimate([["a"], ["b"], ["a"]], order=order, method="kneser-ney")
    write_arpa(m, tmp_path / "lm.arpa.gz")
    again = read_arpa(tmp_path / "lm.arpa.gz")
    assert again.ngrams == m.ngrams and again.counts() == m.counts()
    assert again.sentence_log_prob(["a"]) == m.sentence_log_prob(["a"]) > m.sentence_log_prob(["b"])
