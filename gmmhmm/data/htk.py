"""HTK files: parameter (feature) files and master label files (MLF).

Formats as the HTK Book (3.4) defines them:

* A parameter file is a 12-byte big-endian header — ``nSamples`` (int32),
  ``sampPeriod`` (int32, in 100 ns units), ``sampSize`` (int16, bytes per
  frame), ``parmKind`` (int16: a base kind plus qualifier bits) — then the
  frames as big-endian float32 (little-endian files, from HTK's
  ``NATURALWRITEORDER`` and other tools, are told by their header). With ``_C`` the frames are int16 and two
  float32 vectors A and B come first (``x = (c + B) / A``; they count as 4
  frames in ``nSamples``); with ``_K`` a 2-byte CRC follows the data (it is
  skipped on reading, not verified, and never written).
* An MLF starts with ``#!MLF!#``; each entry is a quoted file pattern, then
  label lines ``[start [end]] name [score] {auxname [auxscore]}`` (times in
  100 ns units), ended by a line holding ``.``.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass

import numpy as np

from .._textio import read_text_input
from ..errors import InvalidParameterError, ModelFileError, TranscriptError
from ..modelfile import atomic_write, atomic_write_text

#: Base parameter kinds (HTK Book, section 5.10.1).
BASE_KINDS = ("WAVEFORM", "LPC", "LPREFC", "LPCEPSTRA", "LPDELCEP", "IREFC", "MFCC", "FBANK",
              "MELSPEC", "USER", "DISCRETE", "PLP")
#: Qualifier letters and their bits (octal in the HTK Book).
QUALIFIERS = {"E": 0o100, "N": 0o200, "D": 0o400, "A": 0o1000, "C": 0o2000, "Z": 0o4000,
              "K": 0o10000, "0": 0o20000, "V": 0o40000, "T": 0o100000}

#: 100 ns units per second: HTK's unit of time.
HTK_TIME_UNITS_PER_S = 10_000_000


def parse_parm_kind(name: str) -> int:
    """``'MFCC_E_D_A_Z'`` -> HTK's integer parameter kind."""
    base, *quals = name.upper().split("_")
    if base not in BASE_KINDS:
        raise InvalidParameterError(f"unknown HTK parameter kind {base!r} in {name!r}; "
                                    f"one of {list(BASE_KINDS)}")
    code = BASE_KINDS.index(base)
    for q in quals:
        if q not in QUALIFIERS:
            raise InvalidParameterError(f"unknown HTK qualifier _{q} in {name!r}")
        code |= QUALIFIERS[q]
    return code


def format_parm_kind(code: int) -> str:
    """HTK's integer parameter kind -> ``'MFCC_E_D_A_Z'``."""
    base = code & 0o77
    if base >= len(BASE_KINDS):
        raise ModelFileError(f"unknown HTK base parameter kind {base}")
    return "_".join([BASE_KINDS[base]] + [q for q, bit in QUALIFIERS.items() if code & bit])


@dataclass
class HTKParams:
    """Frames of an HTK parameter file with their header fields."""

    data: np.ndarray          # (n_frames, n_features) float32
    shift_s: float            # frame period in seconds
    parm_kind: str            # e.g. 'MFCC_E_D_A_Z'


def _header_fits(raw: bytes, order: str) -> bool:
    """Whether the 12-byte header read in byte ``order`` is plausible and sizes the file exactly."""
    n_samples, period, samp_size, kind = struct.unpack(order + "iihh", raw[:12])
    kind &= 0xFFFF
    unit = 2 if kind & QUALIFIERS["C"] else 4
    crc = 2 if kind & QUALIFIERS["K"] else 0
    return (n_samples >= 0 and period > 0 and samp_size > 0 and samp_size % unit == 0
            and len(raw) - 12 - crc == n_samples * samp_size)


def read_htk(path: str | os.PathLike) -> HTKParams:
    """Read an HTK parameter file (plain, compressed ``_C``, or with a ``_K`` checksum)."""
    try:
        raw = open(path, "rb").read()
    except OSError as exc:
        raise ModelFileError(f"cannot read HTK file {os.fspath(path)!r}: {exc.strerror}") from None
    if len(raw) < 12:
        raise ModelFileError(f"{os.fspath(path)!r} is not an HTK parameter file: {len(raw)} bytes, "
                             "shorter than the 12-byte header")
    # HTK writes big-endian; files from NATURALWRITEORDER HTK builds and other tools are
    # little-endian: take the byte order whose header fits the file (big-endian if both do)
    order = next((o for o in "><" if _header_fits(raw, o)), ">")
    n_samples, period, samp_size, kind = struct.unpack(order + "iihh", raw[:12])
    kind &= 0xFFFF
    compressed = bool(kind & QUALIFIERS["C"])
    has_crc = bool(kind & QUALIFIERS["K"])
    if n_samples < 0 or period <= 0 or samp_size <= 0 or (samp_size % (2 if compressed else 4)):
        raise ModelFileError(f"{os.fspath(path)!r}: implausible HTK header (nSamples={n_samples}, "
                             f"sampPeriod={period}, sampSize={samp_size})")
    body = raw[12:len(raw) - (2 if has_crc else 0)]
    if len(body) != n_samples * samp_size:
        raise ModelFileError(f"{os.fspath(path)!r}: header promises {n_samples} frames of "
                             f"{samp_size} bytes but the file holds {len(body)} bytes of data (truncated?)")
    f4, i2 = order + "f4", order + "i2"
    if compressed:
        dim = samp_size // 2
        if n_samples < 4:
            raise ModelFileError(f"{os.fspath(path)!r}: compressed HTK file without its A/B vectors")
        a = np.frombuffer(body, f4, dim)
        b = np.frombuffer(body, f4, dim, offset=4 * dim)
        c = np.frombuffer(body, i2, offset=8 * dim).reshape(n_samples - 4, dim)
        if np.any(a == 0):
            raise ModelFileError(f"{os.fspath(path)!r}: compressed HTK file with a zero scale")
        data = ((c + b) / a).astype(np.float32)
    else:
        data = np.frombuffer(body, f4).reshape(n_samples, samp_size // 4).astype(np.float32)
    return HTKParams(data, period / HTK_TIME_UNITS_PER_S, format_parm_kind(kind))


def write_htk(path: str | os.PathLike, data: np.ndarray, shift_s: float = 0.01,
              parm_kind: str = "USER") -> None:
    """Write frames (n_frames, n_features) as an uncompressed HTK parameter file.

    ``_C`` (compression) and ``_K`` (checksum) are refused.
    """
    X = np.asarray(data, dtype=np.float64)
    if X.ndim != 2:
        raise InvalidParameterError(f"HTK frames must be 2-D (n_frames, n_features), got shape {X.shape}")
    if not np.isfinite(X).all():
        raise InvalidParameterError("HTK frames contain NaN or infinity")
    kind = parse_parm_kind(parm_kind)
    if kind & (QUALIFIERS["C"] | QUALIFIERS["K"]):
        raise InvalidParameterError("writing compressed (_C) or checksummed (_K) HTK files is not supported")
    period = int(round(shift_s * HTK_TIME_UNITS_PER_S))
    if period <= 0 or not 0 < 4 * X.shape[1] <= 32767:  # sampSize is a positive int16
        raise InvalidParameterError(f"cannot store shift_s={shift_s} and {X.shape[1]} features in an HTK header")
    body = X.astype(">f4").tobytes()
    header = struct.pack(">iihh", X.shape[0], period, 4 * X.shape[1], kind - (1 << 16 if kind >= 1 << 15 else 0))

    def write(f):
        f.write(header)
        f.write(body)

    atomic_write(path, write)


# ----------------------------------------------------------------------------- MLF


@dataclass
class Label:
    """One label of a label file; times in seconds (``None`` when the file gives none)."""

    name: str
    start_s: float | None = None
    end_s: float | None = None
    score: float | None = None


def _parse_label(line: str) -> Label:
    """``[start [end]] name [score] {auxname [auxscore]}``: the first level; auxiliary
    (higher) levels, such as the model and word names of ``HVite -f``, are dropped."""
    parts = line.split()
    times = []
    while len(parts) > 1 and len(times) < 2 and _is_time(parts[0]):
        times.append(float(parts.pop(0)) / HTK_TIME_UNITS_PER_S)
    score = None
    if len(parts) > 1:
        try:
            score = float(parts[1])
        except ValueError:
            pass  # no score: parts[1] is an auxiliary label
    return Label(parts[0], *(times + [None, None])[:2], score=score)


def _is_time(token: str) -> bool:
    """A finite number: HTK's label reader takes a leading number for a time, real ones too."""
    try:
        return math.isfinite(float(token))
    except ValueError:
        return False


def parse_mlf(text: str, source: str = "MLF") -> dict[str, list[Label]]:
    """Master label file text -> {pattern: labels}. Patterns keep HTK's form
    (``*/name.lab``); :func:`mlf_key` reduces them to utterance ids.
    Only the first alternative (before ``///``) and the first level of each
    label line (its auxiliary labels dropped) are kept."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "#!MLF!#":
        raise TranscriptError(f"{source}: not an HTK master label file (first line must be #!MLF!#)")
    out: dict[str, list[Label]] = {}
    key = None
    in_level = True
    for no, raw in enumerate(lines[1:], start=2):
        line = raw.strip()
        if not line:
            continue
        where = f"{source}, line {no}"
        if key is None:
            if not (line.startswith('"') and line.endswith('"') and len(line) >= 2):
                raise TranscriptError(f"{where}: expected a quoted file name, got {line!r}")
            key = line[1:-1]
            if key in out:
                raise TranscriptError(f"{where}: duplicate entry {key!r}")
            out[key], in_level = [], True
        elif line == ".":
            key = None
        elif line == "///":
            in_level = False
        elif in_level:
            out[key].append(_parse_label(line))
    if key is not None:
        raise TranscriptError(f"{source}: entry {key!r} is not ended by a '.' line")
    return out


def mlf_key(pattern: str) -> str:
    """``'*/cen1-fash-b.lab'`` -> ``'cen1-fash-b'``: the utterance id an MLF pattern names."""
    return os.path.splitext(pattern.replace("\\", "/").rsplit("/", 1)[-1])[0]


def read_mlf(path: str | os.PathLike) -> dict[str, list[Label]]:
    """Read an MLF into {utterance id: labels}."""
    text = read_text_input(path, "MLF", TranscriptError)
    entries = parse_mlf(text, os.fspath(path))
    out: dict[str, list[Label]] = {}
    for pattern, labels in entries.items():
        key = mlf_key(pattern)
        if key in out:
            raise TranscriptError(f"{os.fspath(path)}: two entries name utterance {key!r}")
        out[key] = labels
    return out


def format_mlf(entries: dict[str, list[Label]], extension: str = "lab") -> str:
    """{utterance id: labels} -> MLF text (times rounded to 100 ns)."""
    lines = ["#!MLF!#"]
    for key, labels in entries.items():
        lines.append(f'"*/{key}.{extension}"')
        for lab in labels:
            if any(c.isspace() for c in lab.name) or not lab.name:
                raise InvalidParameterError(f"label {lab.name!r} of {key!r} is empty or has spaces")
            fields = [str(int(round(t * HTK_TIME_UNITS_PER_S))) for t in (lab.start_s, lab.end_s) if t is not None]
            if lab.start_s is None and lab.end_s is not None:
                raise InvalidParameterError(f"label {lab.name!r} of {key!r} has an end but no start")
            fields.append(lab.name)
            if lab.score is not None:
                fields.append(repr(float(lab.score)))
            line = " ".join(fields)
            back = _parse_label(line)
            if lab.name in (".", "///") or (back.name, back.score is None) != (lab.name, lab.score is None):
                # "." ends an entry, "///" starts an alternative, and a name that is an integer
                # before a score reads as a time: the file would not read back
                raise InvalidParameterError(f"label {lab.name!r} of {key!r} cannot be written to an MLF "
                                            "unambiguously")
            lines.append(line)
        lines.append(".")
    return "\n".join(lines) + "\n"


def write_mlf(path: str | os.PathLike, entries: dict[str, list[Label]], extension: str = "lab") -> None:
    """Write {utterance id: labels} as an MLF, atomically."""
    atomic_write_text(path, format_mlf(entries, extension))
