"""Pronunciation lexicons: HTK, Kaldi (lexicon.txt / lexiconp.txt), Sphinx .dic and cmudict.

Every alternate pronunciation of a word is kept, in file order, with the
natural-log weight a graph adds when it enters that pronunciation (0.0 unless
the file gives a probability)::

    HTK        WORD [OUTSYM] [PROB] ph ph ...      (one line per pronunciation)
    kaldi      word ph ph ...                       (lexicon.txt)
    kaldip     word prob ph ph ...                  (lexiconp.txt)
    sphinx     WORD ph ph ... / WORD(2) ph ph ...   (CMU Sphinx .dic)
    cmudict    word ph0 ph1 ... # comment           (stress digits stripped unless keep_stress)

Blank lines and lines starting with ``#`` (``;;;`` in cmudict) are ignored.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources

from .._textio import read_text_input, split_fields, split_lines
from ..errors import TranscriptError

#: Name of the silence phone (and word) added to every lexicon.
SILENCE = "sil"

#: FSDD labels (``'0'`` .. ``'9'``) to the words of the digits lexicon.
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

#: Formats :meth:`Lexicon.read` understands.
FORMATS = ("auto", "htk", "kaldi", "kaldip", "sphinx", "cmudict")

Pron = tuple[tuple[str, ...], float]

_ALT = re.compile(r"^(?P<word>.+)\((?P<n>[0-9]+)\)$")  # Sphinx / cmudict alternate: WORD(2)
_STRESS = re.compile(r"^[A-Za-z]+[0-9]$")  # cmudict vowel with stress digit: AH0
_STRESS_DIGIT = re.compile(r"(?<=[A-Za-z])[0-9](?=\s|$)")


class Lexicon:
    """Words and all their pronunciations.

    Parameters
    ----------
    pronunciations : dict mapping word -> sequence of phones
        One pronunciation per word (see :meth:`from_prons` for alternates and weights).
    silence : str
        Name of the silence phone; it is always in :attr:`phones` (last).

    Attributes
    ----------
    words : list of str
        In file order.
    phones : list of str
        Sorted phones, then the silence phone.
    pronunciations : dict word -> list of phones
        The first pronunciation of each word.
    """

    def __init__(self, pronunciations: Mapping[str, Sequence[str]], silence: str = SILENCE) -> None:
        self._init({w: [(tuple(p), 0.0)] for w, p in pronunciations.items()}, silence)

    @classmethod
    def from_prons(cls, prons: Mapping[str, Sequence[tuple[Sequence[str], float]]],
                   silence: str = SILENCE) -> "Lexicon":
        """A lexicon from ``{word: [(phones, log_weight), ...]}`` (alternates in order)."""
        self = cls.__new__(cls)
        self._init({w: [(tuple(p), float(lw)) for p, lw in ps] for w, ps in prons.items()}, silence)
        return self

    def _init(self, prons: dict[str, list[Pron]], silence: str) -> None:
        if not prons:
            raise TranscriptError("lexicon is empty")
        bad = [w for w, alts in prons.items() if not alts or not all(p and lw <= 1e-9 for p, lw in alts)]
        if bad:  # (NaN fails the comparison too; 1e-9: rounding of log(1.0))
            raise TranscriptError(f"lexicon word {bad[0]!r} has no phones or a log weight that is not "
                                  f"a log probability: {prons[bad[0]]}")
        self._prons = prons
        self.silence = silence
        seen = dict.fromkeys(p for alts in prons.values() for ph, _ in alts for p in ph if p != silence)
        self.phones: list[str] = sorted(seen) + [silence]
        self.words: list[str] = list(prons)
        self.pronunciations = {w: list(alts[0][0]) for w, alts in prons.items()}

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self._prons

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Lexicon) and (self._prons, self.silence) == (other._prons, other.silence)

    def __repr__(self) -> str:
        n = sum(len(a) for a in self._prons.values())
        return f"Lexicon({len(self.words)} words, {n} pronunciations, {len(self.phones)} phones)"

    @property
    def n_prons(self) -> int:
        """Number of pronunciations, alternates included."""
        return sum(len(a) for a in self._prons.values())

    def prons(self, word: str) -> list[Pron]:
        """Every pronunciation of ``word`` as ``(phones, log_weight)``, in file order."""
        try:
            return list(self._prons[word])
        except KeyError:
            raise TranscriptError(f"word not in the lexicon: {word}") from None

    def phone_index(self, phone: str) -> int:
        try:
            return self.phones.index(phone)
        except ValueError:
            raise TranscriptError(f"unknown phone {phone!r}; the model has {self.phones}") from None

    def missing(self, words: Iterable[str]) -> list[str]:
        """The distinct words of ``words`` that are not in the lexicon, sorted."""
        return sorted({w for w in words if w not in self._prons})

    def check_words(self, words: Iterable[str], source: str = "") -> None:
        """Raise one :class:`TranscriptError` listing every word of ``words`` not in the lexicon."""
        unknown = self.missing(words)
        if unknown:
            where = f"{source}: " if source else ""
            raise TranscriptError(f"{where}word(s) not in the lexicon: {', '.join(unknown)}")

    def pronounce(self, words: Sequence[str]) -> list[list[str]]:
        """First phone sequence of each word; :class:`TranscriptError` names unknown words."""
        self.check_words(words)
        return [self.pronunciations[w] for w in words]

    def restrict(self, words: Iterable[str]) -> "Lexicon":
        """The lexicon of ``words`` only (every pronunciation kept); unknown words are an error."""
        words = list(dict.fromkeys(words))
        self.check_words(words)
        return Lexicon.from_prons({w: self._prons[w] for w in words}, self.silence)

    def to_text(self) -> str:
        """HTK / Kaldi lexicon text, one line per pronunciation.

        Unweighted lexicons give ``word ph ph`` lines; weighted ones Kaldi
        lexiconp lines ``word prob ph ph``. :meth:`from_text` reads either back.
        """
        weighted = any(lw != 0.0 for alts in self._prons.values() for _, lw in alts)
        lines = []
        for w, alts in self._prons.items():
            for phones, lw in alts:
                prob = f" {math.exp(lw)!r}" if weighted else ""
                lines.append(f"{w}{prob} {' '.join(phones)}\n")
        return "".join(lines)

    @classmethod
    def from_text(cls, text: str, source: str = "lexicon", silence: str = SILENCE,
                  format: str = "auto", keep_stress: bool = False) -> "Lexicon":
        """Parse lexicon text in one of :data:`FORMATS` (see the module docstring).

        ``auto`` picks ``sphinx`` when a word is written ``WORD(n)``
        (``cmudict`` if phones also carry stress digits), else ``htk``, which
        also reads Kaldi lexicon.txt and lexiconp.txt.
        Identical repeated pronunciations of a word are kept once.
        """
        if format not in FORMATS:
            raise TranscriptError(f"unknown lexicon format {format!r}; expected one of {', '.join(FORMATS)}")
        rows = _rows(text)
        if format == "auto":
            format = _guess_format(rows)
        prons: dict[str, list[Pron]] = {}
        for lineno, fields in rows:
            word, phones, lw = _parse_line(fields, format, source, lineno)
            if format == "cmudict" and not keep_stress:
                phones = tuple(_STRESS_DIGIT.sub("", " ".join(phones)).split())
            alts = prons.get(word)
            if alts is None:
                prons[word] = [(phones, lw)]
            elif all(phones != p for p, _ in alts):
                alts.append((phones, lw))
        if not prons:
            raise TranscriptError(f"{source}: no pronunciations")
        self = cls.__new__(cls)
        self._init(prons, silence)
        return self

    @classmethod
    def read(cls, path: str | os.PathLike, silence: str = SILENCE, format: str = "auto",
             keep_stress: bool = False) -> "Lexicon":
        """:meth:`from_text` of a UTF-8 file (anything else is refused with a hint to convert it)."""
        name = os.fspath(path)
        text = read_text_input(path, "lexicon", TranscriptError)
        return cls.from_text(text, name, silence, format, keep_stress)

    @classmethod
    def digits(cls) -> "Lexicon":
        """The ten English digits in ARPAbet, shipped with gmmhmm."""
        text = resources.files(__package__).joinpath("digits.lex").read_text(encoding="utf-8")
        return cls.from_text(text, "digits.lex", format="htk")


def _rows(text: str) -> list[tuple[int, list[str]]]:
    """(line number, fields) of the non-blank, non-comment lines; trailing ``# ...`` comments cut."""
    out = []
    for lineno, line in enumerate(split_lines(text), 1):
        fields = split_fields(line)
        if not fields or fields[0].startswith(("#", ";;;")):
            continue
        if "#" in fields[1:]:  # cmudict: "word ph ph # comment"
            fields = fields[:fields.index("#")]
        out.append((lineno, fields))
    return out


def word_list(text: str) -> list[str]:
    """The distinct words (first column) of lexicon or word-list text, in order: comment lines
    (``#``, ``;;;``) skipped, Sphinx/cmudict alternates ``WORD(2)`` read as ``WORD``."""
    return list(dict.fromkeys(m["word"] if (m := _ALT.match(f[0])) else f[0] for _, f in _rows(text)))


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _guess_format(rows: list[tuple[int, list[str]]]) -> str:
    if any(_ALT.match(f[0]) for _, f in rows):
        stressed = any(_STRESS.match(p) for _, f in rows for p in f[1:])
        return "cmudict" if stressed else "sphinx"
    return "htk"


def _log_prob(text: str, source: str, lineno: int) -> float:
    p = float(text)
    if not (math.isfinite(p) and 0.0 < p <= 1.0):
        raise TranscriptError(f"{source}:{lineno}: pronunciation probability {text} is not in (0, 1]")
    return math.log(p)


def _parse_line(fields: list[str], fmt: str, source: str, lineno: int) -> tuple[str, tuple[str, ...], float]:
    word, rest, lw = fields[0], fields[1:], 0.0
    if fmt in ("sphinx", "cmudict"):
        m = _ALT.match(word)
        word = m["word"] if m else word
    elif fmt == "htk":
        if rest and rest[0].startswith("[") and rest[0].endswith("]"):
            rest = rest[1:]  # output symbol: the word itself is what we output
        if rest and _is_number(rest[0]):
            lw, rest = _log_prob(rest[0], source, lineno), rest[1:]
    elif fmt == "kaldip":
        if not rest or not _is_number(rest[0]):
            raise TranscriptError(f"{source}:{lineno}: lexiconp line needs 'word prob phone ...', "
                                  f"got {' '.join(fields)!r}")
        lw, rest = _log_prob(rest[0], source, lineno), rest[1:]
    if not rest:
        raise TranscriptError(f"{source}:{lineno}: word {word!r} has no phones")
    return word, tuple(rest), lw


def parse_transcripts(text: str, source: str = "transcripts") -> dict[str, list[str]]:
    """Parse ``utt_id word word ...`` lines into ``{utt_id: [word, ...]}``.

    A line of the id alone is an utterance without words (``[]``), as in a
    Kaldi ``text``; `gmmhmm align` skips and reports it."""
    out: dict[str, list[str]] = {}
    for lineno, line in enumerate(split_lines(text), 1):
        fields = split_fields(line)
        if not fields or fields[0].startswith("#"):
            continue
        if fields[0] in out:
            raise TranscriptError(f"{source}:{lineno}: duplicate utterance id {fields[0]!r}")
        out[fields[0]] = fields[1:]
    return out


def read_transcripts(path: str | os.PathLike) -> dict[str, list[str]]:
    """:func:`parse_transcripts` of a UTF-8 file; :class:`TranscriptError` if it cannot be read."""
    text = read_text_input(path, "transcripts file", TranscriptError)
    return parse_transcripts(text, os.fspath(path))
