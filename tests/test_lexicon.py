"""Lexicon and transcript parsing."""

from __future__ import annotations

import pytest

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
    path.write_text("# comment\n\n" + lex.to_text() + "one W AH N N\n")  # second pronunciation ignored
    assert Lexicon.read(path) == lex


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
    with pytest.raises(TranscriptError, match="u3"):
        parse_transcripts("u3\n")
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
