"""Reading text inputs (configs, labels, transcripts, hypotheses, references,
lexicons, corpus indexes) without trusting what the path names.

Only regular files and pipes are read: a device such as ``/dev/zero`` or
``/dev/urandom`` is refused before it is opened, a file or pipe longer than
:data:`MAX_TEXT_BYTES` is refused rather than read into memory, and a pipe
(``<(command)``, a FIFO) that delivers nothing for :data:`PIPE_TIMEOUT_S`
seconds fails instead of blocking forever. Text must be UTF-8 (a leading
byte-order mark is dropped); anything else is refused with a hint.

Lines and fields are split as Kaldi and SRILM split them (:func:`split_lines`,
:func:`split_fields`): lines end at ``\n``, ``\r\n`` or ``\r``, fields are separated by
spaces and tabs. ``str.splitlines`` and ``str.split()`` also break at Unicode white space
(U+00A0 NO-BREAK SPACE, U+3000 IDEOGRAPHIC SPACE, U+2028 ...), which those tools keep
inside a word.
"""

from __future__ import annotations

import os
import re
import select
import stat

from .errors import GmmhmmError, InvalidInputError

MAX_TEXT_BYTES = 256 * 2**20
PIPE_TIMEOUT_S = 60.0
_BOM = b"\xef\xbb\xbf"
_LINE_END = re.compile(r"\r\n|\r|\n")
_FIELD_SEP = re.compile(r"[ \t]+")
_NOT_IN_A_WORD = re.compile(r"[ \t\r\n]")


def split_lines(text: str) -> list[str]:
    """The lines of ``text``, ended by ``\n``, ``\r\n`` or ``\r`` (no other character ends one)."""
    lines = _LINE_END.split(text)
    if lines[-1] == "":
        lines.pop()  # the final line end ends a line, it does not start one
    return lines


def split_fields(line: str, maxsplit: int = 0) -> list[str]:
    """The fields of ``line``, separated by runs of spaces and tabs (Kaldi's
    ``SplitStringToVector(line, " \t")``, SRILM's word separators); ``[]`` for a blank line.

    With ``maxsplit``, at most that many splits: the last field is the rest of the line,
    its inner spaces kept.
    """
    line = line.strip(" \t\r\n")
    return _FIELD_SEP.split(line, maxsplit) if line else []


def is_word(text: str) -> bool:
    """Whether ``text`` is one non-empty field: no space, tab or line end in it."""
    return bool(text) and not _NOT_IN_A_WORD.search(text)


def read_text_input(path: str | os.PathLike, what: str, error: type[GmmhmmError] = InvalidInputError,
                    max_bytes: int | None = None, not_text_hint: str | None = None) -> str:
    """The UTF-8 text of ``path`` (a regular file or a pipe), without a leading BOM.

    Parameters
    ----------
    path : path
    what : str
        Names the input in messages, e.g. ``"labels file"``.
    error : GmmhmmError subclass
        Raised, with ``"cannot read <what> <path>: <reason>"``, for every problem.
    max_bytes : int, optional
        Size cap (default :data:`MAX_TEXT_BYTES`).
    not_text_hint : str, optional
        Advice for bytes that are not UTF-8, in place of converting with ``iconv`` (e.g. that a
        binary variant of the format is not read).
    """
    name = os.fspath(path)
    limit = MAX_TEXT_BYTES if max_bytes is None else max_bytes

    def fail(reason: str) -> GmmhmmError:
        return error(f"cannot read {what} {name}: {reason}")

    try:
        st = os.stat(name)
        if stat.S_ISDIR(st.st_mode):
            raise fail("it is a directory")
        if stat.S_ISREG(st.st_mode):
            if st.st_size > limit:
                raise fail(f"it holds {st.st_size} bytes; text inputs are limited to {limit}")
            with open(name, "rb") as f:
                # read(n) allocates n bytes up front: ask for the size stat saw (plus
                # one byte, to notice growth), not for the cap
                data = f.read(min(st.st_size, limit) + 1)
                if len(data) > st.st_size:  # the file grew since stat: read on, up to the cap
                    data += f.read(limit + 1 - len(data))
        elif stat.S_ISFIFO(st.st_mode):
            data = _read_pipe(name, limit, fail)
        else:
            raise fail("not a regular file or a pipe (a device?)")
    except FileNotFoundError:
        raise fail("it does not exist") from None
    except OSError as exc:
        raise fail(exc.strerror or str(exc)) from exc
    if len(data) > limit:
        raise fail(f"longer than {limit} bytes, the limit for text inputs")
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        hint = not_text_hint or "convert it, e.g. `iconv -f latin1 -t utf-8`"
        raise fail(f"not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); {hint}") from None


def _read_pipe(name: str, limit: int, fail) -> bytes:
    # Non-blocking: opening a FIFO without a writer would block in open() itself.
    fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP)
        chunks, total = [], 0
        while True:
            if not poller.poll(PIPE_TIMEOUT_S * 1000):
                raise fail(f"nothing arrived through the pipe for {PIPE_TIMEOUT_S:g} s (no writer?)")
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                return b"".join(chunks)
    finally:
        os.close(fd)
