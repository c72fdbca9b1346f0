"""ARPA back-off language model files (Doug Paul's format, as SRILM, KenLM, HTK and Sphinx use).

::

    \\data\\
    ngram 1=3
    ngram 2=2

    \\1-grams:
    -0.5   </s>
    -99    <s>    -0.3
    -0.5   a      -0.2

    \\2-grams:
    -0.1   <s> a
    -0.2   a </s>

    \\end\\

Every line of section ``\\n-grams:`` is ``log10 prob``, ``n`` words and, below
the highest order, an optional ``log10 backoff``; ``-99`` is log10(0).
Text before ``\\data\\`` is a comment. Files ending in ``.gz`` are gzip'ed. Fields are
separated by spaces and tabs only, as SRILM and Kaldi read them: a word may hold other
white space (U+00A0, U+3000).
"""

from __future__ import annotations

import gzip
import io
import math
import os
import re
from pathlib import Path

from .._textio import split_fields
from ..errors import ModelFileError
from ..modelfile import atomic_write
from .model import LOG10_ZERO, NGramModel

_COUNT_LINE = re.compile(r"^ngram\s+(\d+)\s*=\s*(\d+)$")
_SECTION = re.compile(r"^\\(\d+)-grams:$")


def _lines(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8-sig") as f:  # -sig: a leading BOM is dropped
            yield from enumerate(f, 1)
    except FileNotFoundError:
        raise ModelFileError(f"ARPA file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise ModelFileError(f"{path}: not a readable ARPA text file ({exc})") from exc


def _number(text: str, path: Path, n: int, what: str, probability: bool = True) -> float:
    """A log10 value of the file: <= 0 for a probability; a back-off weight may exceed 1
    (Katz weights do), so only NaN and +inf are refused there."""
    try:
        value = float(text)
    except ValueError:
        raise ModelFileError(f"{path}:{n}: {what} {text!r} is not a number") from None
    if math.isnan(value) or value == math.inf or (probability and value > 0.0):
        raise ModelFileError(f"{path}:{n}: {what} {text!r} is not a log10 value "
                             + ("<= 0" if probability else "below +inf"))
    return max(value, LOG10_ZERO)  # -inf or -1e10 mean log(0) too


def read_arpa(path: str | os.PathLike) -> NGramModel:
    """Read an ARPA language model; any order. Errors name the file and line."""
    path = Path(path)
    counts: dict[int, int] = {}
    tables: list[dict] = []
    where = "preamble"  # preamble -> data -> n-grams -> end
    order = current = 0
    last_line = 0
    for n, raw in _lines(path):
        last_line = n
        line = raw.strip(" \t\r\n")  # not str.strip(): a word may end in U+00A0 (see split_fields)
        if where == "preamble":
            if line == "\\data\\":
                where = "data"
            continue
        if not line:
            continue
        if where == "end":
            raise ModelFileError(f"{path}:{n}: text after \\end\\: {line!r}")
        if where == "data":
            m = _COUNT_LINE.match(line)
            if m:
                k, c = int(m.group(1)), int(m.group(2))
                if k != len(counts) + 1:
                    raise ModelFileError(f"{path}:{n}: expected 'ngram {len(counts) + 1}=...', got {line!r}")
                counts[k] = c
                continue
            if not counts:
                raise ModelFileError(f"{path}:{n}: \\data\\ lists no 'ngram N=count' lines")
            order = len(counts)
            where = "ngrams"
        section = _SECTION.match(line)
        if section or line == "\\end\\":
            if current and len(tables[-1]) != counts[current]:
                raise ModelFileError(f"{path}:{n}: \\data\\ announces {counts[current]} {current}-grams, "
                                     f"the section holds {len(tables[-1])}")
            if line == "\\end\\":
                if current != order:
                    raise ModelFileError(f"{path}:{n}: \\end\\ before the \\{current + 1}-grams: section")
                where = "end"
                continue
            k = int(section.group(1))
            if k != current + 1 or k > order:
                raise ModelFileError(f"{path}:{n}: unexpected section {line!r} "
                                     f"(expected \\{current + 1}-grams: of {order})")
            current = k
            tables.append({})
            continue
        if not current:
            raise ModelFileError(f"{path}:{n}: expected \\1-grams:, got {line!r}")
        fields = split_fields(line)
        if len(fields) not in (current + 1, current + 2) or (len(fields) == current + 2 and current == order):
            expect = "log10-prob and " + (f"{current} word(s)" if current == order
                                          else f"{current} word(s) and an optional backoff")
            raise ModelFileError(f"{path}:{n}: {current}-gram line needs {expect}, got {line!r}")
        prob = _number(fields[0], path, n, "log10 probability")
        backoff = (_number(fields[-1], path, n, "log10 backoff", False) if len(fields) == current + 2
                   else 0.0)
        words = tuple(fields[1:current + 1])
        table = tables[-1]
        if words in table:
            raise ModelFileError(f"{path}:{n}: {current}-gram {' '.join(words)!r} listed twice")
        if current > 1:
            missing = next((w for w in words if (w,) not in tables[0]), None)
            if missing is not None:
                raise ModelFileError(f"{path}:{n}: word {missing!r} is not among the 1-grams")
        table[words] = (prob, backoff)
    if where == "preamble":
        raise ModelFileError(f"{path}: no \\data\\ line; not an ARPA language model")
    if where != "end":
        raise ModelFileError(f"{path}:{last_line}: file ends before \\end\\ (truncated?)")
    if not tables[0]:
        raise ModelFileError(f"{path}: no 1-grams (ngram 1=0); a language model needs a vocabulary")
    return NGramModel(tables)


def _fmt(value: float) -> str:
    # repr: shortest text that reads back to the same float, so a round trip is exact
    return repr(LOG10_ZERO if value <= LOG10_ZERO else float(value))


def arpa_text(model: NGramModel) -> str:
    """The ARPA text of ``model``; backoffs are written for every context (and any non-zero one)."""
    out = io.StringIO()
    out.write("\\data\\\n")
    for k, c in enumerate(model.counts(), 1):
        out.write(f"ngram {k}={c}\n")
    for k, table in enumerate(model.ngrams, 1):
        out.write(f"\n\\{k}-grams:\n")
        for words, (prob, backoff) in table.items():
            line = f"{_fmt(prob)}\t{' '.join(words)}"
            if k < model.order and (backoff != 0.0 or model.is_context(words)):
                line += f"\t{_fmt(backoff)}"
            out.write(line + "\n")
    out.write("\n\\end\\\n")
    return out.getvalue()


def write_arpa(model: NGramModel, path: str | os.PathLike) -> None:
    """Write ``model`` as an ARPA file, atomically (``.gz``: gzip'ed)."""
    gz = Path(path).suffix == ".gz"

    def write(f) -> None:
        data = arpa_text(model).encode("utf-8")
        f.write(gzip.compress(data, mtime=0) if gz else data)
    atomic_write(path, write)
