"""HTK master macro files (MMF, text form): sets of diagonal-covariance GMM-HMMs.

An HTK HMM with ``N`` states has non-emitting entry and exit states (1 and
``N``) around ``S = N - 2`` emitting ones. Its ``<TRANSP>`` matrix maps onto
gmmhmm's parameters (HTK Book, chapter 7)::

    row 1, columns 2..N-1      -> startprob_
    rows 2..N-1, columns 2..N-1 -> transmat_
    rows 2..N-1, column N       -> endprob_ (exit probabilities)

so each emitting row of ``transmat_`` plus its ``endprob_`` sums to 1, the
rule :class:`gmmhmm.hmm.base.BaseHMM` uses. This module reads and writes
plain arrays (:class:`HTKHMM`); :func:`gmmhmm.modelfile.load_htk_mmf` and
:func:`gmmhmm.modelfile.save_htk_mmf` turn them into models and back. A state
with fewer mixtures than the largest is padded with zero-weight components.

Supported: ``~o`` (``<STREAMINFO>``, ``<VECSIZE>``, parameter kind,
``<DIAGC>``), ``~h`` definitions with inline states, ``~t`` transition
macros (defined or referenced), ``~v`` variance macros such as HTK's
``varFloor1`` (read and skipped). Binary MMFs, tied-state macros (``~s``,
``~m``, ``~u``) and full covariances raise :class:`ModelFileError`.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._textio import read_text_input
from ..errors import InvalidParameterError, ModelFileError
from ..modelfile import atomic_write_text
from .htk import format_parm_kind, parse_parm_kind

@dataclass
class HTKHMM:
    """One HTK HMM as arrays (``S`` emitting states, ``M`` mixtures, ``D`` features).

    startprob (S,), transmat (S, S), endprob (S,): the entry row, the emitting
    block and the exit column of ``<TRANSP>``; weights (S, M), means and
    variances (S, M, D) (diagonal covariances).
    """

    startprob: np.ndarray
    transmat: np.ndarray
    endprob: np.ndarray
    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray


_TOKEN = re.compile(r'<[^<>\s]+>|~[a-z]|"[^"]*"|[^\s<>"]+', re.IGNORECASE)


class _Tokens:
    def __init__(self, text: str, source: str):
        self.items = _TOKEN.findall(text)
        self.pos = 0
        self.source = source

    def peek(self) -> str | None:
        return self.items[self.pos] if self.pos < len(self.items) else None

    def next(self, what: str = "a token") -> str:
        token = self.peek()
        if token is None:
            raise ModelFileError(f"{self.source}: unexpected end of file, expected {what}")
        self.pos += 1
        return token

    def key(self) -> str:
        token = self.peek()
        return token.upper() if token else ""

    def expect(self, keyword: str) -> None:
        token = self.next(keyword)
        if token.upper() != keyword:
            raise ModelFileError(f"{self.source}: expected {keyword}, got {token!r}")

    def int(self, what: str) -> int:
        token = self.next(what)
        try:
            return int(token)
        except ValueError:
            raise ModelFileError(f"{self.source}: expected an integer {what}, got {token!r}") from None

    def floats(self, n: int, what: str) -> np.ndarray:
        out = np.empty(n)
        for i in range(n):
            token = self.next(what)
            try:
                out[i] = float(token)
            except ValueError:
                raise ModelFileError(f"{self.source}: expected a number in {what}, got {token!r}") from None
        return out

    def name(self) -> str:
        token = self.next("a macro name")
        return token.strip('"')


def _read_transp(tok: _Tokens) -> np.ndarray:
    tok.expect("<TRANSP>")
    n = tok.int("<TRANSP> size")
    return tok.floats(n * n, "<TRANSP>").reshape(n, n)


def _read_vector(tok: _Tokens, keyword: str, dim: int | None) -> np.ndarray:
    tok.expect(keyword)
    n = tok.int(f"{keyword} size")
    if dim is not None and n != dim:
        raise ModelFileError(f"{tok.source}: {keyword} has {n} values, the model set has {dim}")
    return tok.floats(n, keyword)


def _read_state(tok: _Tokens, dim: int | None) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """A state's mixtures as (weight, mean, variance)."""
    if tok.key() in ("~S", "<STREAM>"):
        raise ModelFileError(f"{tok.source}: shared states (~s) and multiple streams are not supported")
    if tok.key() == "<NUMMIXES>":
        tok.next()
        n_mix = tok.int("<NUMMIXES>")
    else:
        n_mix = 1
    mixtures = []
    for _ in range(n_mix):
        weight = 1.0
        if tok.key() == "<MIXTURE>":
            tok.next()
            tok.int("mixture index")
            weight = float(tok.floats(1, "<MIXTURE> weight")[0])
        if tok.key() in ("~M", "<INVCOVAR>", "<LLTCOVAR>", "~U", "~V"):
            raise ModelFileError(f"{tok.source}: {tok.peek()} (shared or full covariance mixtures) "
                                 "is not supported; only inline <MEAN>/<VARIANCE>")
        mean = _read_vector(tok, "<MEAN>", dim)
        var = _read_vector(tok, "<VARIANCE>", len(mean))
        if tok.key() == "<GCONST>":
            tok.next()
            tok.floats(1, "<GCONST>")  # recomputed from the variances
        mixtures.append((weight, mean, var))
        if n_mix > 1 and tok.key() not in ("<MIXTURE>",):
            break  # HTK omits mixtures of weight 0
    return mixtures


def _read_options(tok: _Tokens, options: dict[str, Any]) -> None:
    """Global options (``~o`` or the head of an HMM definition) into ``options``."""
    while tok.key().startswith("<") and tok.key() not in ("<BEGINHMM>", "<NUMSTATES>", "<USEMAC>"):
        key = tok.next().upper()
        if key == "<STREAMINFO>":
            if tok.int("<STREAMINFO> count") != 1:
                raise ModelFileError(f"{tok.source}: only single-stream models are supported")
            tok.int("stream width")
        elif key == "<VECSIZE>":
            options["vecsize"] = tok.int("<VECSIZE>")
        elif key in ("<DIAGC>", "<INVDIAGC>", "<FULLC>", "<LLTC>", "<XFORMC>"):
            if key != "<DIAGC>":
                raise ModelFileError(f"{tok.source}: {key} covariances are not supported")
            options["covariance"] = key[1:-1]
        elif key in ("<NULLD>", "<POISSOND>", "<GAMMAD>", "<GEND>"):
            if key != "<NULLD>":
                raise ModelFileError(f"{tok.source}: duration model {key} is not supported")
        else:
            options["parm_kind"] = key[1:-1]


def _read_hmm(tok: _Tokens, name: str, dim: int | None, trans_macros: dict[str, np.ndarray],
              options: dict[str, Any]):
    tok.expect("<BEGINHMM>")
    _read_options(tok, options)  # HTK allows global options here too (HInit-style prototypes)
    dim = options.get("vecsize", dim)
    if tok.key() == "<USEMAC>":
        raise ModelFileError(f"{tok.source}: <USEMAC> is not supported")
    tok.expect("<NUMSTATES>")
    n = tok.int("<NUMSTATES>")
    if n < 3:
        raise ModelFileError(f"{tok.source}: HMM {name!r} has {n} states; HTK needs at least 3")
    states: dict[int, list] = {}
    while tok.key() == "<STATE>":
        tok.next()
        index = tok.int("<STATE> index")
        if not 2 <= index <= n - 1:
            raise ModelFileError(f"{tok.source}: HMM {name!r}: state {index} outside 2..{n - 1}")
        if index in states:
            raise ModelFileError(f"{tok.source}: HMM {name!r}: state {index} is defined twice")
        states[index] = _read_state(tok, dim)
        dim = dim or len(states[index][0][1])
    missing = sorted(set(range(2, n)) - set(states))
    if missing:
        raise ModelFileError(f"{tok.source}: HMM {name!r} has no definition for state(s) {missing}")
    if tok.key() == "~T":
        tok.next()
        macro = tok.name()
        if macro not in trans_macros:
            raise ModelFileError(f"{tok.source}: HMM {name!r} uses undefined transition macro {macro!r}")
        transp = trans_macros[macro]
    else:
        transp = _read_transp(tok)
    if transp.shape != (n, n):
        raise ModelFileError(f"{tok.source}: HMM {name!r}: <TRANSP> is {transp.shape[0]}x{transp.shape[1]}, "
                             f"<NUMSTATES> is {n}")
    tok.expect("<ENDHMM>")
    if transp[0, n - 1] != 0:
        raise ModelFileError(f"{tok.source}: HMM {name!r} is a tee model (entry -> exit probability "
                             f"{transp[0, n - 1]:g}, like HTK's sp); gmmhmm HMMs start in an emitting state")
    S = n - 2
    M = max(len(states[i]) for i in states)
    weights = np.zeros((S, M))
    means = np.zeros((S, M, dim))
    covars = np.ones((S, M, dim))
    for s in range(S):
        for m, (w, mean, var) in enumerate(states[s + 2]):
            weights[s, m], means[s, m], covars[s, m] = w, mean, var
    hmm = HTKHMM(transp[0, 1:n - 1].copy(), transp[1:n - 1, 1:n - 1].copy(), transp[1:n - 1, n - 1].copy(),
                 weights, means, covars)
    return hmm, dim


_BINARY = "binary MMFs are not supported (save with HHEd/HERest without -B)"


def parse_mmf(text: str, source: str = "MMF") -> tuple[dict[str, Any], dict[str, Any]]:
    """Parse a text MMF. Returns ``(models, options)``: ``{name: HTKHMM}`` in file
    order and the global options (``vecsize``, ``parm_kind``, ``covariance``).
    Probabilities are checked by the model built from them, not here."""
    if "\0" in text[:1000]:
        raise ModelFileError(f"{source}: {_BINARY}")
    tok = _Tokens(text, source)
    options: dict[str, Any] = {}
    models: dict[str, Any] = {}
    trans_macros: dict[str, np.ndarray] = {}
    dim = None
    while tok.peek() is not None:
        kind = tok.next().lower()
        if kind == "~o":
            _read_options(tok, options)
            dim = options.get("vecsize", dim)
        elif kind == "~t":
            macro = tok.name()
            if macro in trans_macros:
                raise ModelFileError(f"{source}: transition macro {macro!r} is defined twice")
            trans_macros[macro] = _read_transp(tok)
        elif kind == "~v":
            tok.name()
            _read_vector(tok, "<VARIANCE>", None)  # e.g. varFloor1: HERest's floor, not a model
        elif kind == "~h":
            name = tok.name()
            if name in models:
                raise ModelFileError(f"{source}: HMM {name!r} is defined twice")
            models[name], dim = _read_hmm(tok, name, dim, trans_macros, options)
        else:
            raise ModelFileError(f"{source}: macro type {kind!r} is not supported "
                                 "(supported: ~o, ~h, ~t, ~v)")
    if not models:
        raise ModelFileError(f"{source}: no HMM definitions (~h) found")
    return models, options


def read_mmf(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a text HTK MMF: ``({name: HTKHMM}, options)`` (see :func:`parse_mmf`)."""
    # HTK names are bytes: UTF-8 ones too
    return parse_mmf(read_text_input(path, "MMF", ModelFileError, not_text_hint=_BINARY), str(path))


def _fmt(values: np.ndarray) -> str:
    # shortest text that reads back to the same float: a read-write cycle is exact
    return " ".join(repr(float(v)) for v in np.asarray(values, dtype=np.float64).ravel())


def format_mmf(models: dict[str, HTKHMM], parm_kind: str = "USER") -> str:
    """Text MMF of ``{name: HTKHMM}``; zero-weight mixtures are left out, as HTK does."""
    if not models:
        raise InvalidParameterError("no models to write")
    parm_kind = format_parm_kind(parse_parm_kind(parm_kind))  # a kind HTK knows, spelt as HTK spells it
    dims = {m.means.shape[-1] for m in models.values()}
    if len(dims) != 1:
        raise InvalidParameterError(f"the models have different feature sizes {sorted(dims)}")
    D = dims.pop()
    lines = ["~o", f"<STREAMINFO> 1 {D}", f"<VECSIZE> {D}<NULLD><{parm_kind}><DIAGC>"]
    for name, model in models.items():
        if '"' in name or not name.strip():
            raise InvalidParameterError(f"model name {name!r} cannot be written to an MMF")
        weights, means, variances = model.weights, model.means, model.variances
        S, M = weights.shape
        n = S + 2
        lines += [f'~h "{name}"', "<BEGINHMM>", f"<NUMSTATES> {n}"]
        for s in range(S):
            kept = [m for m in range(M) if weights[s, m] > 0]
            lines += [f"<STATE> {s + 2}", f"<NUMMIXES> {len(kept)}"]
            for k, m in enumerate(kept, start=1):
                gconst = D * math.log(2 * math.pi) + float(np.log(variances[s, m]).sum())
                lines += [f"<MIXTURE> {k} {_fmt([weights[s, m]])}", f"<MEAN> {D}", _fmt(means[s, m]),
                          f"<VARIANCE> {D}", _fmt(variances[s, m]), f"<GCONST> {_fmt([gconst])}"]
        transp = np.zeros((n, n))
        transp[0, 1:n - 1] = model.startprob
        transp[1:n - 1, 1:n - 1] = model.transmat
        transp[1:n - 1, n - 1] = model.endprob
        lines += [f"<TRANSP> {n}"] + [_fmt(row) for row in transp] + ["<ENDHMM>"]
    return "\n".join(lines) + "\n"


def write_mmf(path: str | os.PathLike, models: dict[str, HTKHMM], parm_kind: str = "USER") -> None:
    """Write ``{name: HTKHMM}`` as a text HTK MMF, atomically (see :func:`format_mmf`)."""
    atomic_write_text(path, format_mmf(models, parm_kind))
