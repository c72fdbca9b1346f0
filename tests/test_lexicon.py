"""Lexicon and transcript parsing."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gmmhmm.data import Lexicon as DataLexicon
from gmmhmm.errors import TranscriptError
from gmmhmm.graphs import DIGIT_WORDS, Lexicon, parse_transcripts, read_transcripts, utterance_graph


def test_digits_lexicon():
    lex = Lexicon.digits()
    assert lex.words == list(DIGIT_WORDS)
    assert lex.pronunciations["six"] == ["S", "IH", "K", "S"]
    assert lex.pronunciations["zero"] == ["Z", "IH", "R", "OW"]
    assert lex.phones[-1] == "sil" and len(set(lex.phones)) == len(lex.phones)
    assert set(lex.phones) == {p for ps in lex.pronunciations.values() for p in ps} | {"sil"}


def test_round_trip_and_comments(tmp_path):
    lex = Lexicon.digits()
    path = tmp_path / "x.lex"
    path.write_text("# comment\n\n" + lex.to_text())
    assert Lexicon.read(path) == lex
    path.write_text(lex.to_text() + "one W AH N N\none W AH N\n")  # an alternate is kept, a repeat is not
    alt = Lexicon.read(path)
    assert alt != lex and alt.pronunciations == lex.pronunciations
    assert alt.prons("one") == [(("W", "AH", "N"), 0.0), (("W", "AH", "N", "N"), 0.0)]


@pytest.mark.parametrize("text, match", [
    ("one W AH N\ntwo\n", "two"),
    ("# nothing\n", "no pronunciations"),
])
def test_bad_lexicon(text, match):
    with pytest.raises(TranscriptError, match=match):
        Lexicon.from_text(text)


def test_missing_files(tmp_path):
    with pytest.raises(TranscriptError, match="cannot read lexicon"):
        Lexicon.read(tmp_path / "none.lex")
    with pytest.raises(TranscriptError, match="cannot read transcripts file"):  # as `gmmhmm align` reports it
        read_transcripts(tmp_path / "none.txt")


def test_transcripts(tmp_path):
    path = tmp_path / "text"
    path.write_text("u1 one two\n\nu2 nine\n")
    assert read_transcripts(path) == {"u1": ["one", "two"], "u2": ["nine"]}
    assert parse_transcripts("u3\nu4 a\n") == {"u3": [], "u4": ["a"]}  # Kaldi's utterance without words
    with pytest.raises(TranscriptError, match="duplicate.*u1"):
        parse_transcripts("u1 one\nu1 two\n")


def test_unknown_words_and_phones_are_named():
    lex = Lexicon.digits()
    with pytest.raises(TranscriptError, match="eleven, twelve"):
        lex.pronounce(["one", "twelve", "eleven"])
    with pytest.raises(TranscriptError, match="eleven"):
        utterance_graph(lex, ["eleven"])
    with pytest.raises(TranscriptError, match="'QQ'"):
        lex.phone_index("QQ")


# --------------------------------------------------------------------- formats with alternates
CMUDICT = Path(__file__).resolve().parents[2] / "shared" / "data" / "cmudict" / "cmudict.dict"


def test_graphs_lexicon_is_the_data_lexicon():
    assert Lexicon is DataLexicon


def test_htk_outsym_and_probabilities():
    lex = Lexicon.from_text("A [a] 0.5 AH\nA [a] 0.25 EY\nB [] B IY\nC S IY\n", format="htk")
    assert lex.prons("A") == [(("AH",), math.log(0.5)), (("EY",), math.log(0.25))]
    assert lex.prons("B") == [(("B", "IY"), 0.0)]
    assert lex.pronunciations["A"] == ["AH"]
    assert lex.words == ["A", "B", "C"]
    # weighted lexicons round-trip through lexiconp text (how model files store them)
    again = Lexicon.from_text(lex.to_text())
    assert again.words == lex.words
    for w in lex.words:
        assert [p for p, _ in again.prons(w)] == [p for p, _ in lex.prons(w)]
        assert [lw for _, lw in again.prons(w)] == pytest.approx([lw for _, lw in lex.prons(w)], abs=1e-12)


def test_kaldi_lexicon_and_lexiconp():
    plain = Lexicon.from_text("a ah\na ey\nb b iy\n", format="kaldi")
    assert plain.prons("a") == [(("ah",), 0.0), (("ey",), 0.0)]
    weighted = Lexicon.from_text("a 1.0 ah\na 0.4 ey\n", format="kaldip")
    assert weighted.prons("a") == [(("ah",), 0.0), (("ey",), math.log(0.4))]
    assert Lexicon.from_text("a 1.0 ah\na 0.4 ey\n") == weighted  # auto reads lexiconp too
    # in plain Kaldi format a numeric field is a phone, not a probability
    assert Lexicon.from_text("a 1 2\n", format="kaldi").prons("a") == [(("1", "2"), 0.0)]


@pytest.mark.parametrize("text, fmt, match", [
    ("a ah\n", "kaldip", r"lexicon:1: lexiconp line needs"),
    ("a 0 ah\n", "kaldip", r"lexicon:1: pronunciation probability 0 is not in \(0, 1\]"),
    ("a 1.5 ah\n", "htk", r"lexicon:1: pronunciation probability 1.5"),
    ("a nan ah\n", "kaldip", r"lexicon:1: pronunciation probability nan"),
    ("a 1 ah\nb 0.5\n", "kaldip", r"lexicon:2: word 'b' has no phones"),
    ("a ah\nb [b]\n", "htk", r"lexicon:2: word 'b' has no phones"),
    ("A AH\nB(2)\n", "sphinx", r"lexicon:2: word 'B' has no phones"),
    ("a ah\n", "festival", r"unknown lexicon format 'festival'"),
])
def test_bad_lexicon_lines_name_the_line(text, fmt, match):
    with pytest.raises(TranscriptError, match=match):
        Lexicon.from_text(text, format=fmt)


def test_sphinx_alternates():
    text = "A AH\nA(2) EY\nAND AE N D\nAND(2) AH N D\nZERO Z IH R OW\n"
    lex = Lexicon.from_text(text)
    assert lex.words == ["A", "AND", "ZERO"]
    assert lex.prons("AND") == [(("AE", "N", "D"), 0.0), (("AH", "N", "D"), 0.0)]
    assert Lexicon.from_text(lex.to_text()) == lex  # HTK text with repeated words keeps the alternates


def test_cmudict_stress_and_comments():
    text = (";;; header\nab AE1 B\nab(2) EY1 B IY1\naalborg AO1 L B AO0 R G # place, danish\n"
            "abc EY1 B IY1 S IY1\nabc(2) EY2 B IY0 S IY1\n")
    lex = Lexicon.from_text(text)
    assert lex.prons("aalborg") == [(("AO", "L", "B", "AO", "R", "G"), 0.0)]
    assert lex.prons("ab") == [(("AE", "B"), 0.0), (("EY", "B", "IY"), 0.0)]
    assert lex.prons("abc") == [(("EY", "B", "IY", "S", "IY"), 0.0)]  # alternates equal once stress is gone
    kept = Lexicon.from_text(text, keep_stress=True)
    assert kept.prons("abc") == [(("EY1", "B", "IY1", "S", "IY1"), 0.0), (("EY2", "B", "IY0", "S", "IY1"), 0.0)]
    assert "AO0" in kept.phones and "AO0" not in lex.phones


def test_missing_words_are_listed_in_one_error():
    lex = Lexicon.digits()
    assert lex.missing(["one", "ten", "eleven", "ten"]) == ["eleven", "ten"]
    with pytest.raises(TranscriptError, match=r"data/text: word\(s\) not in the lexicon: eleven, ten"):
        lex.check_words(["one", "ten", "eleven"], source="data/text")
    sub = lex.restrict(["two", "one"])
    assert sub.words == ["two", "one"] and sub.prons("one") == lex.prons("one")
    with pytest.raises(TranscriptError, match="ten"):
        lex.restrict(["one", "ten"])
    with pytest.raises(TranscriptError, match="ten"):
        lex.prons("ten")


def test_an4_dictionary(an4_path):
    lex = Lexicon.read(an4_path / "etc" / "an4.dic")
    assert len(lex) == 101 and lex.n_prons == 130
    assert [p for p, _ in lex.prons("A")] == [("AH",), ("EY",)]
    assert len(lex.prons("FEBRUARY")) == 5
    assert lex.phones[-1] == "sil" and len(lex.phones) == 34


def test_cmudict_file():
    if not CMUDICT.is_file():
        pytest.fail(f"cmudict not found at {CMUDICT}; tests need ../shared/data/cmudict")
    lex = Lexicon.read(CMUDICT)
    assert len(lex) > 100_000
    assert all(not p[-1].isdigit() for p in lex.phones)
    assert [p for p, _ in lex.prons("ab")] == [("AE", "B"), ("EY", "B", "IY")]
    assert len(Lexicon.read(CMUDICT, keep_stress=True).phones) > 60


def test_words_with_unicode_spaces_are_one_word(tmp_path):
    """Kaldi's lexicon.txt and text split on spaces and tabs only (utils/ validates that no other
    white space appears): U+00A0 or U+3000 inside a word, or a word ending in one, is one word."""
    from gmmhmm.data.lexicon import parse_transcripts, word_list

    text = "new\u00a0york\tN UW\nnew\u00a0york N UW Y\r\n\u6771\u4eac\u3000 T OW\n"
    lex = Lexicon.from_text(text)
    assert lex.prons("new\u00a0york") == [(("N", "UW"), 0.0), (("N", "UW", "Y"), 0.0)]
    assert lex.prons("\u6771\u4eac\u3000") == [(("T", "OW"), 0.0)]
    assert word_list(text) == ["new\u00a0york", "\u6771\u4eac\u3000"]
    assert Lexicon.from_text(lex.to_text()).prons("new\u00a0york") == lex.prons("new\u00a0york")
    assert parse_transcripts("u\u00a01 new\u00a0york\u3000x  b\n") == {"u\u00a01": ["new\u00a0york\u3000x", "b"]}
