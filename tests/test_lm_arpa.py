"""ARPA reading/writing and back-off scoring, against hand-computed probabilities."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from gmmhmm.errors import GmmhmmError, ModelFileError
from gmmhmm.lm import NGramModel, read_arpa, write_arpa

AN4_LM = Path(__file__).resolve().parents[2] / "shared" / "data" / "an4" / "etc" / "an4.ug.lm"
LN10 = math.log(10.0)

TRIGRAM = """Comment lines before \\data\\ are ignored.

\\data\\
ngram 1=4
ngram 2=3
ngram 3=1

\\1-grams:
-0.69897\t</s>
-99\t<s>\t-0.30103
-0.39794\ta\t-0.5
-0.39794\tb

\\2-grams:
-0.30103\t<s> a\t-0.2
-0.5\ta b
-0.1\ta </s>

\\3-grams:
-0.2\t<s> a b

\\end\\
"""


@pytest.fixture
def trigram(tmp_path) -> NGramModel:
    path = tmp_path / "tri.arpa"
    path.write_text(TRIGRAM)
    return read_arpa(path)


def ln(log10_value: float) -> float:
    return log10_value * LN10


@pytest.mark.parametrize("word, history, log10_expected", [
    ("b", ("<s>", "a"), -0.2),                            # trigram listed
    ("</s>", ("<s>", "a"), -0.2 - 0.1),                   # bo(<s> a) * p(</s>|a)
    ("a", ("<s>", "a"), -0.2 - 0.5 - 0.39794),            # bo(<s> a) * bo(a) * p(a)
    ("b", ("b", "a"), -0.5),                              # context "b a" absent: no weight
    ("a", ("<s>",), -0.30103),                            # bigram listed
    ("b", ("<s>",), -0.30103 - 0.39794),                  # bo(<s>) * p(b)
    ("</s>", (), -0.69897),
    ("b", ("x", "y", "<s>", "a"), -0.2),                  # history truncated to order - 1
    ("b", ("oov", "a"), -0.5),                            # OOV history word matches no context
])
def test_backoff_matches_hand_computation(trigram, word, history, log10_expected):
    assert trigram.log_prob(word, history) == pytest.approx(ln(log10_expected), abs=1e-12)


def test_reads_the_arpa_values_verbatim(trigram):
    assert trigram.order == 3 and trigram.counts() == [4, 3, 1]
    assert trigram.vocab == ["</s>", "<s>", "a", "b"]
    assert trigram.ngrams[0][("<s>",)] == (-99.0, -0.30103)
    assert trigram.ngrams[0][("b",)] == (-0.39794, 0.0)
    assert trigram.ngrams[2][("<s>", "a", "b")] == (-0.2, 0.0)


def test_backoff_weights_in_natural_log(trigram):
    assert trigram.log_backoff(("<s>", "a")) == pytest.approx(ln(-0.2))
    assert trigram.log_backoff(["a"]) == pytest.approx(ln(-0.5))
    assert trigram.log_backoff(("b",)) == 0.0 and trigram.log_backoff(("a", "b")) == 0.0


def test_minus_99_is_zero_probability_and_oov_without_unk_is_impossible(trigram):
    assert trigram.log_prob("<s>") == -math.inf
    assert trigram.log_prob("zebra", ("a",)) == -math.inf


def test_sentence_log_prob_and_perplexity_by_hand(trigram):
    # <s> a b </s>: p(a|<s>) p(b|<s> a) p(</s>|a b) = -0.30103 - 0.2 + (p(</s>|b) = -0.69897)
    log10_total = -0.30103 - 0.2 - 0.69897
    assert trigram.sentence_log_prob(["a", "b"]) == pytest.approx(ln(log10_total))
    ppl = trigram.perplexity([["a", "b"], ["a", "zebra"]])
    # second sentence: p(a|<s>) + (zebra: OOV, skipped) + p(</s>|a zebra) = p(</s>) backoff-free
    second = -0.30103 - 0.69897
    assert (ppl.sentences, ppl.words, ppl.oovs, ppl.zeroprobs) == (2, 4, 1, 0)
    assert ppl.log10_prob == pytest.approx(log10_total + second)
    assert ppl.ppl == pytest.approx(10 ** (-(log10_total + second) / (4 - 1 + 2)))
    assert ppl.ppl1 == pytest.approx(10 ** (-(log10_total + second) / (4 - 1)))


def test_state_keeps_exactly_the_history_that_matters(trigram):
    words = ["<s>", "</s>", "a", "b", "oov"]
    assert trigram.state(("<s>", "a")) == ("<s>", "a")
    assert trigram.state(("b", "a")) == ("a",)
    assert trigram.state(("a", "b")) == ()
    for h in itertools.product(words, repeat=2):
        s = trigram.state(h)
        assert h[len(h) - len(s):] == s
        for w in words[1:]:
            assert trigram.log_prob(w, s) == trigram.log_prob(w, h)
            assert trigram.score(s, w) == (trigram.log_prob(w, h), trigram.state(h + (w,)))


def test_an4_unigram_lm():
    lm = read_arpa(AN4_LM)  # fails loudly if the corpus is missing
    assert lm.order == 2 and lm.counts() == [107, 1]
    assert lm.unk == "<UNK>" and "<s>" in lm.vocab and "</s>" in lm.vocab
    assert lm.log_prob("YES", ("<s>",)) == pytest.approx(ln(-2.0253))
    assert lm.log_prob("NOT-A-WORD") == pytest.approx(ln(-2.0253))  # scored as <UNK>
    assert lm.log_prob("</s>", ("<s>",)) == 0.0                     # the one bigram
    total = sum(10 ** p for (w,), (p, _) in lm.ngrams[0].items())
    assert total == pytest.approx(1.0, abs=1e-3)


def test_positive_backoff_weights_are_read_and_applied(tmp_path):
    # A Katz back-off weight (1 - sum p(w|h)) / (1 - sum p(w|h')) can exceed 1: its log10 is then
    # positive, and SRILM's non-interpolated models hold such weights. Only probabilities are <= 0.
    path = tmp_path / "katz.arpa"
    path.write_text("\\data\\\nngram 1=3\nngram 2=1\n\n\\1-grams:\n-0.5\t</s>\n-99\t<s>\t0.3\n"
                    "-0.5\ta\t0.1\n\n\\2-grams:\n-0.2\t<s> a\n\n\\end\\\n")
    lm = read_arpa(path)
    assert lm.log_prob("</s>", ("<s>",)) == pytest.approx(ln(0.3 - 0.5))
    assert lm.log_prob("a", ("a",)) == pytest.approx(ln(0.1 - 0.5))
    write_arpa(lm, tmp_path / "again.arpa")
    assert read_arpa(tmp_path / "again.arpa").ngrams == lm.ngrams


def test_byte_order_mark_is_dropped(tmp_path, trigram):
    path = tmp_path / "bom.arpa"
    path.write_text("\ufeff" + TRIGRAM.split("\n", 2)[2], encoding="utf-8")  # \data\ on the first line
    assert read_arpa(path).ngrams == trigram.ngrams


@pytest.mark.parametrize("name", ["lm.arpa", "lm.arpa.gz"])
def test_round_trip(tmp_path, trigram, name):
    out = tmp_path / name
    write_arpa(trigram, out)
    again = read_arpa(out)
    assert again.ngrams == trigram.ngrams and again.vocab == trigram.vocab
    an4 = read_arpa(AN4_LM)
    write_arpa(an4, out)
    assert read_arpa(out).ngrams == an4.ngrams


def test_write_is_atomic(tmp_path, trigram, monkeypatch):
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "lm.arpa"
    out.write_text("precious")
    import gmmhmm.lm.arpa as arpa

    def boom(model):
        raise RuntimeError("disk full")
    monkeypatch.setattr(arpa, "arpa_text", boom)
    with pytest.raises(RuntimeError):
        write_arpa(trigram, out)
    assert out.read_text() == "precious" and list(out.parent.iterdir()) == [out]


def _broken(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize("text, line, message", [
    (_broken(TRIGRAM, "ngram 2=3", "ngram 2=4"), 19, "announces 4 2-grams"),
    (_broken(TRIGRAM, "-0.5\ta b", "-0.5x\ta b"), 16, "is not a number"),
    (_broken(TRIGRAM, "-0.5\ta b", "0.5\ta b"), 16, "<= 0"),
    (_broken(TRIGRAM, "-0.5\ta b", "-0.5\ta"), 16, "2-gram line needs"),
    (_broken(TRIGRAM, "-0.2\t<s> a b", "-0.2\t<s> a b\t-0.1"), 20, "3-gram line needs"),
    (_broken(TRIGRAM, "-0.1\ta </s>", "-0.1\ta b"), 17, "listed twice"),
    (_broken(TRIGRAM, "-0.1\ta </s>", "-0.1\ta c"), 17, "'c' is not among the 1-grams"),
    (_broken(TRIGRAM, "\\2-grams:", "\\3-grams:"), 14, "unexpected section"),
    (_broken(TRIGRAM, "ngram 2=3", "ngram 3=3"), 5, "expected 'ngram 2=...'"),
    (_broken(TRIGRAM, "\\end\\", ""), 22, "ends before \\end\\"),
    (TRIGRAM + "junk\n", 23, "after \\end\\"),
    (_broken(TRIGRAM, "\\3-grams:\n-0.2\t<s> a b\n", "\\end\\\n"), 19, "before the \\3-grams: section"),
])
def test_malformed_files_name_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "bad.arpa"
    path.write_text(text)
    with pytest.raises(ModelFileError, match=f"bad.arpa:{line}:") as info:
        read_arpa(path)
    assert message in str(info.value)


@pytest.mark.parametrize("content", [None, "just words\n", b"\xff\xfe\x00binary"])
def test_missing_foreign_or_binary_file(tmp_path, content):
    path = tmp_path / "lm.arpa"
    if isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(GmmhmmError, match="lm.arpa"):
        read_arpa(path)


def test_model_rejects_bad_tables():
    with pytest.raises(GmmhmmError, match="at least one unigram"):
        NGramModel([])
    with pytest.raises(GmmhmmError, match="2-gram table"):
        NGramModel([{("a",): (-0.1, 0.0)}, {("a",): (-0.1, 0.0)}])


BIGRAM = ("\\data\\\nngram 1=4\nngram 2=3\n\n\\1-grams:\n-0.5\t</s>\n-99\t<s>\t-0.25\n-0.4\ta\t-0.3\n-0.9\tb\n\n"
          "\\2-grams:\n-0.1\t<s> a\n-0.2\ta a\n-0.05\tb </s>\n\n\\end\\\n")


def test_bigram_sentence_with_backoff_by_hand(tmp_path):
    """<s> a a b b </s> under BIGRAM, by hand in log10 and converted once to natural log:
    p(a|<s>) listed -0.1; p(a|a) listed -0.2; p(b|a) = bo(a) + p(b) = -0.3 - 0.9;
    p(b|b): b has no backoff (weight 1), p(b) = -0.9; p(</s>|b) listed -0.05."""
    path = tmp_path / "bi.arpa"
    path.write_text(BIGRAM)
    lm = read_arpa(path)
    log10_total = -0.1 - 0.2 + (-0.3 - 0.9) - 0.9 - 0.05
    assert lm.sentence_log_prob(["a", "a", "b", "b"]) == pytest.approx(log10_total * math.log(10), abs=1e-12)
    assert lm.log_prob("</s>", ["<s>"]) == pytest.approx((-0.25 - 0.5) * math.log(10), abs=1e-12)
    ppl = lm.perplexity([["a", "a", "b", "b"]])  # SRILM: 10 ** (-logprob / (words + sentences))
    assert ppl.log10_prob == pytest.approx(log10_total) and ppl.ppl == pytest.approx(10 ** (-log10_total / 5))


@pytest.mark.parametrize("newline", ["\r\n", "\r"])
@pytest.mark.parametrize("name", ["lm.arpa", "lm.arpa.gz"])
def test_windows_and_old_mac_line_endings(tmp_path, newline, name):
    import gzip

    plain = tmp_path / "unix.arpa"
    plain.write_text(BIGRAM)
    data = BIGRAM.replace("\n", newline).encode()
    (tmp_path / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    assert read_arpa(tmp_path / name).ngrams == read_arpa(plain).ngrams


def test_count_of_the_last_section_is_checked_at_end(tmp_path):
    path = tmp_path / "bad.arpa"
    path.write_text(BIGRAM.replace("ngram 2=3", "ngram 2=2"))
    with pytest.raises(ModelFileError, match=r"bad\.arpa:16: .*announces 2 2-grams, the section holds 3"):
        read_arpa(path)


@pytest.mark.parametrize("text", [
    "\\data\\\nngram 1=0\n\n\\1-grams:\n\n\\end\\\n",
    "\\data\\\nngram 1=0\nngram 2=0\n\n\\1-grams:\n\n\\2-grams:\n\n\\end\\\n",
])
def test_file_without_unigrams_is_a_model_file_error_naming_the_file(tmp_path, text):
    """Bug: a file whose counts and sections agree on zero unigrams raised the NGramModel
    constructor's InvalidParameterError, which named neither the file nor the problem in its terms."""
    path = tmp_path / "empty.arpa"
    path.write_text(text)
    with pytest.raises(ModelFileError, match=r"empty\.arpa: .*no 1-grams"):
        read_arpa(path)


def test_model_refuses_ngrams_with_words_outside_its_unigrams(tmp_path):
    """Bug: a model built in code took a bigram whose word had no unigram: log_prob scored it while
    perplexity called it OOV, and write_arpa wrote a file read_arpa refuses."""
    with pytest.raises(GmmhmmError, match="'b'.*not among the 1-grams"):
        NGramModel([{("a",): (-0.1, 0.0), ("</s>",): (-0.2, 0.0)}, {("a", "b"): (-0.1, 0.0)}])


# U+00A0 NO-BREAK SPACE, U+3000 IDEOGRAPHIC SPACE, U+2028 LINE SEPARATOR: white space to str.split
# and str.strip, but Kaldi (SplitStringToVector(line, " \t")) and SRILM split fields on space and
# tab only, so to them each is part of a word; a word may also end in one.
ODD = ["new\u00a0york", "\u6771\u4eac\u3000\u99c5", "a\u2028b", "end\u00a0"]


def test_words_with_unicode_spaces_are_one_word(tmp_path):
    lines = ["\\data\\", "ngram 1=6", "ngram 2=2", "", "\\1-grams:", "-0.5\t</s>", "-99\t<s>\t-0.25"]
    lines += [f"-{0.6 + k / 10}\t{w}\t-0.1" for k, w in enumerate(ODD[:-1])] + [f"-0.9 {ODD[-1]}"]
    lines += ["", "\\2-grams:", f"-0.2 <s> {ODD[0]}", f"-0.3\t{ODD[0]} {ODD[1]}", "", "\\end\\", ""]
    path = tmp_path / "odd.arpa"
    path.write_text("\n".join(lines), encoding="utf-8")
    lm = read_arpa(path)
    assert sorted(lm.vocab) == sorted(["</s>", "<s>", *ODD])
    assert lm.ngrams[1][(ODD[0], ODD[1])] == (-0.3, 0.0)
    assert lm.log_prob(ODD[1], ["<s>", ODD[0]]) == pytest.approx(ln(-0.3), abs=1e-12)
    assert lm.log_prob(ODD[3], ["<s>", ODD[0]]) == pytest.approx(ln(-0.1 - 0.9), abs=1e-12)
    for name in ("back.arpa", "back.arpa.gz"):
        write_arpa(lm, tmp_path / name)
        back = read_arpa(tmp_path / name)
        assert back.ngrams == lm.ngrams
        assert back.log_prob(ODD[1], [ODD[0]]) == lm.log_prob(ODD[1], [ODD[0]])
