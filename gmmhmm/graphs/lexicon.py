"""Pronunciation lexicon and word transcripts (HTK dictionary / Kaldi text).

A lexicon file has one ``word phone phone ...`` line per pronunciation;
a transcript file has one ``utt_id word word ...`` line per utterance.
Blank lines and lines starting with ``#`` are ignored.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from .._textio import read_text_input
from ..errors import TranscriptError

#: Name of the silence phone (and word) added to every lexicon.
SILENCE = "sil"

#: FSDD labels (``'0'`` .. ``'9'``) to the words of the digits lexicon.
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


class Lexicon:
    """Words and their phone sequences (first pronunciation of each word).

    Parameters
    ----------
    pronunciations : dict mapping word -> sequence of phones
    silence : str
        Name of the silence phone; it is always in :attr:`phones` (last).
    """

    def __init__(self, pronunciations: dict[str, list[str]], silence: str = SILENCE) -> None:
        if not pronunciations:
            raise TranscriptError("lexicon is empty")
        for word, phones in pronunciations.items():
            if not phones:
                raise TranscriptError(f"lexicon word {word!r} has no phones")
        self.pronunciations = {w: list(p) for w, p in pronunciations.items()}
        self.silence = silence
        seen = dict.fromkeys(p for ph in self.pronunciations.values() for p in ph if p != silence)
        self.phones: list[str] = sorted(seen) + [silence]
        self.words: list[str] = list(self.pronunciations)

    def __len__(self) -> int:
        return len(self.words)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Lexicon) and (self.pronunciations, self.silence) == (
            other.pronunciations, other.silence)

    def phone_index(self, phone: str) -> int:
        try:
            return self.phones.index(phone)
        except ValueError:
            raise TranscriptError(f"unknown phone {phone!r}; the model has {self.phones}") from None

    def pronounce(self, words: list[str]) -> list[list[str]]:
        """Phone sequence of each word; :class:`TranscriptError` names unknown words."""
        unknown = sorted({w for w in words if w not in self.pronunciations})
        if unknown:
            raise TranscriptError(f"word(s) not in the lexicon: {', '.join(unknown)}")
        return [self.pronunciations[w] for w in words]

    def to_text(self) -> str:
        return "".join(f"{w} {' '.join(p)}\n" for w, p in self.pronunciations.items())

    @classmethod
    def from_text(cls, text: str, source: str = "lexicon", silence: str = SILENCE) -> "Lexicon":
        """Parse ``word phone ...`` lines; later pronunciations of a word are ignored."""
        prons: dict[str, list[str]] = {}
        for lineno, line in enumerate(text.splitlines(), 1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if len(fields) < 2:
                raise TranscriptError(f"{source}:{lineno}: word {fields[0]!r} has no phones")
            prons.setdefault(fields[0], fields[1:])
        if not prons:
            raise TranscriptError(f"{source}: no pronunciations")
        return cls(prons, silence)

    @classmethod
    def read(cls, path: str | os.PathLike, silence: str = SILENCE) -> "Lexicon":
        text = read_text_input(path, "lexicon", TranscriptError)
        return cls.from_text(text, os.fspath(path), silence)

    @classmethod
    def digits(cls) -> "Lexicon":
        """The ten English digits in ARPAbet, shipped with gmmhmm."""
        text = resources.files(__package__).joinpath("digits.lex").read_text(encoding="utf-8")
        return cls.from_text(text, "digits.lex")


def parse_transcripts(text: str, source: str = "transcripts") -> dict[str, list[str]]:
    """Parse ``utt_id word word ...`` lines into ``{utt_id: [word, ...]}``."""
    out: dict[str, list[str]] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) < 2:
            raise TranscriptError(f"{source}:{lineno}: utterance {fields[0]!r} has no words")
        if fields[0] in out:
            raise TranscriptError(f"{source}:{lineno}: duplicate utterance id {fields[0]!r}")
        out[fields[0]] = fields[1:]
    return out


def read_transcripts(path: str | os.PathLike) -> dict[str, list[str]]:
    """:func:`parse_transcripts` of a UTF-8 file; :class:`TranscriptError` if it cannot be read."""
    text = read_text_input(path, "transcripts file", TranscriptError)
    return parse_transcripts(text, os.fspath(path))
