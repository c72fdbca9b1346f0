"""Kaldi archives of float matrices (``ark``/``scp``) and CMVN statistics.

Formats as Kaldi's ``util/kaldi-io`` and ``matrix/kaldi-matrix.cc`` write them:

* An archive is a run of ``key`` + space + object. A binary object starts with
  ``"\\0B"``, then a token (``FM `` float32, ``DM `` double), then the row and
  column counts, each as a one-byte size (4) and a little-endian int32, then the
  rows. Compressed matrices (``CM ``, ``CM2 ``, ``CM3 ``; ``copy-feats --compress``)
  are read too, as float32. A text object is ``[`` then rows of numbers, the last
  ending with ``]``.
* An ``scp`` line is ``key rxfilename``; ``file.ark:1234`` points at the byte
  where the object starts, and ``file.ark:1234[0:9,0:12]`` keeps rows 0..9 and
  columns 0..12 of it (Kaldi's inclusive ranges; ``[0:9]`` rows only, ``:`` all).
* ``compute-cmvn-stats`` stores a 2 x (D + 1) double matrix per speaker: row 0
  holds the feature sums and the frame count, row 1 the sums of squares and 0.
"""

from __future__ import annotations

import io
import os
import re
import stat
import struct
from collections.abc import Iterator, Mapping

import numpy as np

from .._textio import read_text_input
from ..errors import InvalidParameterError, ModelFileError
from ..modelfile import atomic_write_files

_TOKENS = {b"FM ": "<f4", b"DM ": "<f8"}


def _fail(source: str, what: str) -> ModelFileError:
    return ModelFileError(f"{source}: {what}")


def _read_key(f: io.BufferedReader, source: str) -> str | None:
    key = bytearray()
    while True:
        c = f.read(1)
        if not c:
            if key.strip():
                raise _fail(source, f"archive ends inside the key {key.decode(errors='replace')!r}")
            return None
        if c == b" ":
            if key:
                try:
                    return key.decode("utf-8")
                except UnicodeDecodeError:
                    raise _fail(source, f"key {bytes(key[:40])!r} is not UTF-8 text; not a Kaldi archive "
                                        "(a compressed one?)") from None
            continue
        if c in b"\n\r\t" and not key:
            continue
        key += c


def _read_int32(f, source: str) -> int:
    size = f.read(1)
    if size != b"\x04":
        raise _fail(source, f"expected a 4-byte integer size marker, got {size!r}")
    raw = f.read(4)
    if len(raw) != 4:
        raise _fail(source, "truncated integer")
    return struct.unpack("<i", raw)[0]


def _read_token(f, source: str) -> bytes:
    """A binary object's type token (``FM``, ``DM``, ``CM``, ``CM2``, ``CM3``), read through its space."""
    token = f.read(2)
    while len(token) < 4 and (c := f.read(1)) and c != b" ":
        token += c
    if len(token) > 3 or not token:
        raise _fail(source, f"unsupported binary object {token[:8]!r}")
    return token


def _read_exactly(f, size: int, source: str, what: str) -> bytes:
    # read(size) allocates size bytes up front: a corrupt header must not ask for terabytes
    if size > _bytes_left(f):
        raise _fail(source, f"truncated {what}")
    raw = f.read(size)
    if len(raw) != size:
        raise _fail(source, f"truncated {what}")
    return raw


def _read_binary_matrix(f, source: str) -> np.ndarray:
    token = _read_token(f, source)
    if token in _COMPRESSED:
        return _read_compressed_matrix(f, token, source)
    if token + b" " not in _TOKENS:
        raise _fail(source, f"unsupported binary object {token!r}; FM and DM (float and double) and "
                            "CM, CM2, CM3 (compressed) matrices are read")
    rows, cols = _read_int32(f, source), _read_int32(f, source)
    if rows < 0 or cols < 0:
        raise _fail(source, f"negative matrix size {rows} x {cols}")
    dtype = np.dtype(_TOKENS[token + b" "])
    raw = _read_exactly(f, rows * cols * dtype.itemsize, source, f"{rows} x {cols} matrix")
    return np.frombuffer(raw, dtype).reshape(rows, cols).astype(dtype.newbyteorder("="))


#: CompressedMatrix formats (Kaldi matrix/compressed-matrix.cc): bytes per element, column headers
_COMPRESSED = {b"CM": (1, True), b"CM2": (2, False), b"CM3": (1, False)}


def _read_compressed_matrix(f, token: bytes, source: str) -> np.ndarray:
    """Kaldi's CompressedMatrix (``copy-feats --compress``, the default of ``make_mfcc.sh``) as float32.

    The header is Kaldi's GlobalHeader without its format field (the token says it): float min,
    float range, int32 rows, int32 cols, no size markers. ``CM2``/``CM3`` store row-major uint16/uint8
    on ``[min, min + range]``; ``CM`` stores per column four uint16 percentiles on that scale, then the
    column's bytes, piecewise linear between them. Arithmetic follows Kaldi's float/double mix.
    """
    min_value, value_range, rows, cols = struct.unpack("<ffii", _read_exactly(f, 16, source, f"{token!r} header"))
    if rows < 0 or cols < 0:
        raise _fail(source, f"negative matrix size {rows} x {cols}")
    if rows == 0 or cols == 0:
        # Kaldi writes an empty one with the whole 20-byte header (format included): 4 more zero bytes
        extra = f.read(4)
        if extra != b"\0" * 4:
            f.seek(-len(extra), os.SEEK_CUR)
        return np.zeros((rows, cols), dtype=np.float32)
    width, col_headers = _COMPRESSED[token]
    what = f"{token.decode()} {rows} x {cols} matrix"
    lo, span = np.float32(min_value), np.float32(value_range)
    if not col_headers:
        dtype = "<u2" if width == 2 else np.uint8
        q = np.frombuffer(_read_exactly(f, rows * cols * width, source, what), dtype).reshape(rows, cols)
        step = np.float32(float(span) * (1.0 / (65535.0 if width == 2 else 255.0)))
        return lo + q.astype(np.float32) * step
    pct = np.frombuffer(_read_exactly(f, 8 * cols, source, what), "<u2").reshape(cols, 4)
    q = np.frombuffer(_read_exactly(f, rows * cols, source, what), np.uint8).reshape(cols, rows).T
    p0, p25, p75, p100 = (float(lo) + float(span) * 1.52590218966964e-05 * pct.T.astype(np.float64)
                          ).astype(np.float32)
    low, mid = q <= 64, (q > 64) & (q <= 192)
    base = np.where(low, p0, np.where(mid, p25, p75))
    width_f = np.where(low, p25 - p0, np.where(mid, p75 - p25, p100 - p75))
    steps = np.where(low, q, np.where(mid, q - 64, q - 192)).astype(np.float32)
    scale = np.where(low, 1 / 64.0, np.where(mid, 1 / 128.0, 1 / 63.0))
    return (base.astype(np.float64) + (width_f * steps).astype(np.float64) * scale).astype(np.float32)


def _bytes_left(f) -> float:
    """Bytes between the position of ``f`` and the end of its file (inf when unknown, e.g. a pipe)."""
    try:
        st = os.fstat(f.fileno())
        return st.st_size - f.tell() if stat.S_ISREG(st.st_mode) else float("inf")
    except (OSError, AttributeError, io.UnsupportedOperation):
        return float("inf")


def _read_text_matrix(f, source: str) -> np.ndarray:
    rows: list[list[float]] = []
    line = f.readline().decode("utf-8", "replace")
    if line.strip() not in ("[", "[ ]", "[]") and not line.lstrip().startswith("["):
        raise _fail(source, f"expected '[' to open a text matrix, got {line.strip()!r}")
    rest = line.lstrip()[1:].strip()
    done = False
    while not done:
        if rest.endswith("]"):
            rest, done = rest[:-1], True
        if rest.strip():
            try:
                rows.append([float(v) for v in rest.split()])
            except ValueError:
                raise _fail(source, f"non-numeric value in text matrix row {rest.strip()[:40]!r}") from None
        if done:
            break
        raw = f.readline()
        if not raw:
            raise _fail(source, "text matrix not closed by ']'")
        rest = raw.decode("utf-8", "replace").strip()
    if rows and len({len(r) for r in rows}) != 1:
        raise _fail(source, "text matrix rows have different lengths")
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(rows[0]) if rows else 0)


def _read_object(f, source: str) -> np.ndarray:
    head = f.read(2)
    if head == b"\0B":
        return _read_binary_matrix(f, source)
    f.seek(-len(head), os.SEEK_CUR)
    return _read_text_matrix(f, source)


def read_ark(path: str | os.PathLike) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(key, matrix)`` pairs of a Kaldi archive (binary or text)."""
    source = os.fspath(path)
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise ModelFileError(f"cannot read Kaldi archive {source!r}: {exc.strerror}") from None
    with f:
        while (key := _read_key(f, source)) is not None:
            yield key, _read_object(f, f"{source}, key {key!r}")


def read_mat(rxfilename: str) -> np.ndarray:
    """One matrix from ``file.ark:offset`` (as in an scp line) or a single-object file.

    A Kaldi range may follow: ``file.ark:123[0:9]`` keeps rows 0 to 9, ``[0:9,0:12]`` rows 0 to 9
    and columns 0 to 12 (inclusive, as in Kaldi); ``:`` for either part means all of it.
    """
    target, range_spec = rxfilename, None
    if rxfilename.endswith("]") and "[" in rxfilename:
        target, _, range_spec = rxfilename[:-1].rpartition("[")
    path, _, offset = target.rpartition(":")
    if not path or not offset.isdigit():
        path, offset = target, ""
    try:
        with open(path, "rb") as f:
            if offset:
                f.seek(int(offset))
            matrix = _read_object(f, rxfilename)
    except OSError as exc:
        raise ModelFileError(f"cannot read {rxfilename!r}: {exc.strerror}") from None
    except ValueError as exc:  # open() of a name holding a NUL byte (a corrupt scp line)
        raise ModelFileError(f"cannot read {rxfilename!r}: {exc}") from None
    return matrix if range_spec is None else _extract_range(matrix, range_spec, rxfilename)


_RANGE_PART = re.compile(r"(\d+):(\d+)|:")


def _extract_range(matrix: np.ndarray, range_spec: str, source: str) -> np.ndarray:
    """``matrix[rows, cols]`` for a Kaldi range ``rows`` or ``rows,cols`` (util/kaldi-holder.cc)."""
    parts = range_spec.split(",")
    if len(parts) > 2 or not all(_RANGE_PART.fullmatch(p) for p in parts):
        raise _fail(source, f"invalid range [{range_spec}]: expected [first:last] (rows) or "
                            "[first:last,first:last] (rows, columns), inclusive, ':' for all")
    index = []
    for part, size, axis in zip(parts, matrix.shape, ("rows", "columns")):
        if part == ":":
            index.append(slice(None))
            continue
        first, last = map(int, part.split(":"))
        if first > last:
            raise _fail(source, f"invalid range [{range_spec}]: {axis} {first} to {last} is empty")
        if last >= size:
            raise _fail(source, f"range [{range_spec}] reaches beyond the {matrix.shape[0]} x "
                                f"{matrix.shape[1]} matrix ({axis} are numbered from 0)")
        index.append(slice(first, last + 1))
    return matrix[tuple(index)].copy()  # not a view: many short ranges of one long matrix each keep only theirs


def read_scp(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """{key: matrix} for every line ``key file.ark:offset`` of an scp file."""
    out: dict[str, np.ndarray] = {}
    lines = read_text_input(path, "scp file", ModelFileError).splitlines()
    for no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2:
            raise ModelFileError(f"{os.fspath(path)}, line {no}: expected 'key rxfilename', got {line!r}")
        if parts[0] in out:
            raise ModelFileError(f"{os.fspath(path)}, line {no}: duplicate key {parts[0]!r}")
        try:
            out[parts[0]] = read_mat(parts[1].strip())
        except ModelFileError as exc:
            raise ModelFileError(f"{os.fspath(path)}, line {no} (key {parts[0]!r}): {exc}") from None
    return out


def _check_key(key: str) -> None:
    if not key or any(c.isspace() for c in key):
        raise InvalidParameterError(f"Kaldi keys must be non-empty and without white space, got {key!r}")


def write_ark(path: str | os.PathLike, matrices: Mapping[str, np.ndarray], *, binary: bool = True,
              double: bool = False, scp: str | os.PathLike | None = None) -> None:
    """Write {key: matrix} as a Kaldi archive, and optionally its scp index: both replaced, or neither."""
    offsets: dict[str, int] = {}
    buf = io.BytesIO()
    for key, mat in matrices.items():
        _check_key(key)
        m = np.asarray(mat, dtype=np.float64)
        if m.ndim != 2:
            raise InvalidParameterError(f"matrix {key!r} must be 2-D, got shape {m.shape}")
        buf.write(key.encode("utf-8") + b" ")
        offsets[key] = buf.tell()
        if binary:
            dtype, token = ("<f8", b"DM ") if double else ("<f4", b"FM ")
            buf.write(b"\0B" + token + b"\x04" + struct.pack("<i", m.shape[0])
                      + b"\x04" + struct.pack("<i", m.shape[1]) + m.astype(dtype).tobytes())
        else:
            # Kaldi's text layout: " [", each row on its own line, " ]" after the last.
            rows = "".join("\n  " + " ".join(repr(float(v)) for v in row) for row in m)
            buf.write((" [" + rows + " ]\n").encode())
    files = [(path, lambda f: f.write(buf.getvalue()))]
    if scp is not None:  # as a pair, the archive renamed into place first
        ark = os.path.abspath(os.fspath(path))
        index = "".join(f"{k} {ark}:{o}\n" for k, o in offsets.items()).encode("utf-8", "surrogateescape")
        files.append((scp, lambda f: f.write(index)))
    atomic_write_files(files)


# ----------------------------------------------------------------------------- CMVN


def cmvn_stats_matrix(features: np.ndarray) -> np.ndarray:
    """Kaldi's 2 x (D + 1) CMVN statistics of one speaker's frames (``compute-cmvn-stats``)."""
    X = np.asarray(features, dtype=np.float64)
    if X.ndim != 2:
        raise InvalidParameterError(f"features must be 2-D, got shape {X.shape}")
    stats = np.zeros((2, X.shape[1] + 1))
    stats[0, :-1], stats[1, :-1], stats[0, -1] = X.sum(0), (X * X).sum(0), X.shape[0]
    return stats


def cmvn_from_stats(stats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance per dimension from a Kaldi CMVN statistics matrix."""
    s = np.asarray(stats, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] != 2 or s.shape[1] < 2:
        raise ModelFileError(f"Kaldi CMVN statistics must be 2 x (D + 1), got shape {s.shape}")
    count = s[0, -1]
    if not count > 0:
        raise ModelFileError(f"Kaldi CMVN statistics with frame count {count}")
    mean = s[0, :-1] / count
    return mean, np.maximum(s[1, :-1] / count - mean * mean, 0.0)
