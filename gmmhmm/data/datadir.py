"""Kaldi-style data directories: ``wav.scp``, ``text``, ``utt2spk``, ``spk2utt``, ``segments``.

Each file is a table of ``key value...`` lines (Kaldi's conventions, as in
``utils/validate_data_dir.sh`` and lhotse's ``kaldi.py``)::

    wav.scp    recording_id  /path/to/audio.{wav,flac,sph,...}
    text       utterance_id  word word ...
    utt2spk    utterance_id  speaker_id
    spk2utt    speaker_id    utterance_id utterance_id ...
    segments   utterance_id  recording_id start_s end_s      (optional)

Without ``segments`` recording ids are utterance ids. Relative audio paths
are resolved against the current directory, as Kaldi does; piped commands
(``sph2pipe ... |``) are refused: gmmhmm reads SPHERE itself. Files are
written sorted by key (C locale order) and atomically.
"""

from __future__ import annotations

import math
import numbers
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .._textio import read_text_input, split_fields, split_lines
from ..errors import AudioError, DataDirError, InvalidParameterError
from ..modelfile import atomic_write_text

TABLES = ("wav.scp", "text", "utt2spk", "spk2utt", "segments")


@dataclass(frozen=True)
class Segment:
    """A stretch of a recording: ``segments`` line ``utt rec start_s end_s``."""

    recording: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class AudioSpan:
    """A stretch of an audio file: a Kaldi ``segments`` line ``utt recording start_s end_s``.

    Feature extraction (:func:`~gmmhmm.features.extract_many`) takes spans
    wherever it takes paths; results and failures are keyed by :attr:`name`.
    """

    path: str
    start_s: float
    end_s: float

    def __post_init__(self) -> None:
        check_span(self.path, self.start_s, self.end_s)
        if not math.isfinite(self.end_s):
            raise AudioError(f"{self.path}: a segment's end must be finite seconds, got {self.end_s!r}")

    @property
    def name(self) -> str:
        """``path[start_s-end_s]``: the key of this span's features and failures."""
        return f"{self.path}[{self.start_s:.3f}-{self.end_s:.3f}]"


#: Speed factors :class:`PerturbedAudio` and :func:`~gmmhmm.features.speed_perturb` accept (Kaldi's
#: recipes use 0.9 and 1.1; beyond half or double speed speech is no longer a plausible speaker).
MIN_SPEED, MAX_SPEED = 0.5, 2.0


def check_speed(factor: object) -> float:
    """``factor`` as a float if it is a real number in [:data:`MIN_SPEED`, :data:`MAX_SPEED`].

    Raises
    ------
    InvalidParameterError
        Not a real number (bools included), NaN, infinite or out of range.
    """
    ok = isinstance(factor, numbers.Real) and not isinstance(factor, bool)
    if not (ok and math.isfinite(factor) and MIN_SPEED <= factor <= MAX_SPEED):
        raise InvalidParameterError(f"speed factor must be a finite number from {MIN_SPEED} to {MAX_SPEED}, "
                                    f"got {factor!r}")
    return float(factor)


def check_speed_factors(factors: Iterable[float]) -> list[float]:
    """The factors of a speed perturbation as floats: some, distinct, each :func:`check_speed`'s."""
    factors = [check_speed(f) for f in factors]
    if not factors or len(set(factors)) < len(factors):
        raise InvalidParameterError(f"speed perturbation needs distinct factors, got {factors}")
    return factors


def speed_prefix(factor: float) -> str:
    """``sp0.9-``: what Kaldi's ``perturb_data_dir_speed.sh`` puts before the ids of a perturbed copy."""
    return f"sp{check_speed(factor):g}-"


@dataclass(frozen=True)
class PerturbedAudio:
    """An audio file or :class:`AudioSpan` played ``speed`` times faster (sox ``speed``, Kaldi's speed
    perturbation): ``1 / speed`` times as long, every frequency times ``speed``.

    Feature extraction takes it wherever it takes paths and spans: the source is read, perturbed
    (:func:`~gmmhmm.features.speed_perturb`) and resampled to the configured rate; results and
    failures are keyed by :attr:`name`.
    """

    source: "str | AudioSpan"
    speed: float

    def __post_init__(self) -> None:
        if isinstance(self.source, os.PathLike):  # a Path: kept as the str it names, as extract_many does
            object.__setattr__(self, "source", os.fsdecode(self.source))
        if not isinstance(self.source, (str, AudioSpan)):
            raise InvalidParameterError("PerturbedAudio source must be a path (str) or an AudioSpan, "
                                        f"got {type(self.source).__name__}")
        object.__setattr__(self, "speed", check_speed(self.speed))

    @property
    def name(self) -> str:
        """``sp0.9-<source name>``: the key of this item's features and failures."""
        return speed_prefix(self.speed) + audio_source_name(self.source)


def check_span(name: str, start_s: float, end_s: float) -> None:
    ok = all(isinstance(t, numbers.Real) and not isinstance(t, bool) for t in (start_s, end_s))
    if not (ok and math.isfinite(start_s) and 0 <= start_s < end_s):
        raise AudioError(f"{name}: a segment needs seconds 0 <= start_s < end_s, got {start_s!r}, {end_s!r}")


def audio_source_name(source: "str | os.PathLike | AudioSpan | PerturbedAudio") -> str:
    """The key a file path, an :class:`AudioSpan` or a :class:`PerturbedAudio` is reported under."""
    return source.name if isinstance(source, (AudioSpan, PerturbedAudio)) else os.fsdecode(source)


def read_table(path: str | os.PathLike, min_fields: int = 2,
               max_fields: int | None = None, rest_of_line: bool = False) -> dict[str, tuple[list[str], int]]:
    """``{key: (fields after the key, line number)}`` of a Kaldi table file.

    Blank lines are skipped. A line with fewer than ``min_fields`` or more
    than ``max_fields`` fields, or a repeated key, raises
    :class:`DataDirError` naming the file and line. With ``rest_of_line``
    (``wav.scp``) the one field after the key is the rest of the line, its
    inner white space kept, as Kaldi reads a file name.
    """
    name = os.fspath(path)
    if not os.path.lexists(name):
        raise DataDirError(f"{name}: no such file")
    text = read_text_input(name, "table", DataDirError)
    out: dict[str, tuple[list[str], int]] = {}
    for lineno, line in enumerate(split_lines(text), 1):
        fields = split_fields(line, 1 if rest_of_line else 0)
        if not fields:
            continue
        if len(fields) < min_fields or (max_fields is not None and len(fields) > max_fields):
            want = f"{min_fields}" if max_fields == min_fields else f"at least {min_fields}"
            raise DataDirError(f"{name}:{lineno}: expected {want} fields, got {len(fields)}: {line!r}")
        if fields[0] in out:
            raise DataDirError(f"{name}:{lineno}: {fields[0]!r} appears twice (first on line {out[fields[0]][1]})")
        out[fields[0]] = (fields[1:], lineno)
    return out


# ``file.ark:123`` (or ``file.ark:123[0:9]``): an entry of a Kaldi feature scp, not an audio path
_ARCHIVE_OFFSET = re.compile(r":\d+(\[[^\]]*\])?$")


def read_wav_scp(path: str | os.PathLike, check_audio: bool = False) -> dict[str, tuple[str, int]]:
    """``{recording: (audio path, line number)}`` of a ``wav.scp``, wherever one is read.

    Each path is the rest of its line (inner white space kept, as Kaldi reads a file name). A
    piped command, a feature scp's ``file.ark:offset`` entry (a ``feats.scp`` given for audio), an
    empty file and, with ``check_audio``, a missing audio file raise :class:`DataDirError` naming
    the file and line; so do :func:`read_table`'s malformed lines.
    """
    rows = read_table(path, 2, rest_of_line=True)
    if not rows:
        raise DataDirError(f"{os.fspath(path)}: no utterances")
    for rec, ((value,), lineno) in rows.items():
        where = f"{os.fspath(path)}:{lineno}"
        if value.endswith("|"):
            raise DataDirError(f"{where}: piped commands are not supported ({value!r}); give the audio "
                               "file path (gmmhmm reads .sph, .wav, .flac directly)")
        if _ARCHIVE_OFFSET.search(value):
            raise DataDirError(f"{where}: {value!r} is an archive offset: this looks like a feature scp "
                               "(feats.scp), not a wav.scp; give the audio (recording-id audio-path lines)")
    if check_audio:  # after every line's format: a feature scp is named as one, not as missing audio
        for rec, ((value,), lineno) in rows.items():
            if not Path(value).is_file():
                raise DataDirError(f"{os.fspath(path)}:{lineno}: audio file of {rec!r} does not exist: {value}")
    return {rec: (value, lineno) for rec, ((value,), lineno) in rows.items()}


def write_table(path: str | os.PathLike, table: Mapping[str, str | list[str]], empty_values: bool = False) -> None:
    """Write ``key value`` lines sorted by key, atomically; list values are joined by spaces.

    An empty value is an error unless ``empty_values`` (``text``: an utterance
    without words is written as its id alone, as Kaldi does).
    """
    lines = []
    for key in sorted(table):
        value = table[key]
        value = " ".join(value) if isinstance(value, (list, tuple)) else str(value)
        if not _is_token(key) or not (value.strip() or empty_values):
            raise DataDirError(f"{os.fspath(path)}: bad entry {key!r} -> {value!r} (keys need no spaces, values text)")
        lines.append(f"{key} {value}\n" if value.strip() else f"{key}\n")
    atomic_write_text(path, "".join(lines))


def _is_token(text: object) -> bool:
    """Non-empty text without white space: what a Kaldi table holds as an id or a word."""
    return isinstance(text, str) and bool(text) and not any(c.isspace() for c in text)


@dataclass
class DataDir:
    """The tables of a Kaldi data directory.

    Attributes
    ----------
    wav : dict recording id -> audio path (recording = utterance without segments)
    text : dict utterance id -> list of words (empty when the directory has no ``text``)
    utt2spk : dict utterance id -> speaker id
    segments : dict utterance id -> :class:`Segment`, or None
    path : Path or None
        Where the directory was read from.
    speed : dict recording id -> speed factor
        Recordings played faster or slower than their audio file (:func:`perturb_speed`; Kaldi
        writes them as ``sox ... speed 0.9 |`` commands in wav.scp); absent recordings are at
        speed 1. Their ``segments`` times are in the perturbed recording's seconds, as Kaldi's.
    """

    wav: dict[str, str]
    text: dict[str, list[str]] = field(default_factory=dict)
    utt2spk: dict[str, str] = field(default_factory=dict)
    segments: dict[str, Segment] | None = None
    path: Path | None = None
    speed: dict[str, float] = field(default_factory=dict)

    @property
    def utterances(self) -> list[str]:
        """Utterance ids, sorted."""
        return sorted(self.segments if self.segments is not None else self.wav)

    @property
    def spk2utt(self) -> dict[str, list[str]]:
        """Speaker id -> its sorted utterance ids (derived from :attr:`utt2spk`)."""
        out: dict[str, list[str]] = {}
        for utt in sorted(self.utt2spk):
            out.setdefault(self.utt2spk[utt], []).append(utt)
        return dict(sorted(out.items()))

    @property
    def speakers(self) -> list[str]:
        return sorted(set(self.utt2spk.values()))

    def __len__(self) -> int:
        return len(self.segments if self.segments is not None else self.wav)

    def audio(self, utt: str) -> tuple[str, float, float | None]:
        """``(audio path, start_s, end_s or None)`` of an utterance."""
        if self.segments is not None:
            seg = self.segments[utt]
            return self.wav[seg.recording], seg.start_s, seg.end_s
        return self.wav[utt], 0.0, None

    def source(self, utt: str) -> "str | AudioSpan | PerturbedAudio":
        """What feature extraction reads for ``utt``: its audio path, or the :class:`AudioSpan` of its
        segment, as a :class:`PerturbedAudio` of it if its recording is speed perturbed."""
        path, start_s, end_s = self.audio(utt)
        speed = self.speed.get(self.segments[utt].recording if self.segments is not None else utt, 1.0)
        if end_s is None:
            source = path
        else:  # segment times are the perturbed recording's: the file's are speed times later
            source = AudioSpan(path, start_s * speed, end_s * speed)
        return source if speed == 1.0 else PerturbedAudio(source, speed)

    def subset(self, utterances) -> "DataDir":
        """The directory restricted to ``utterances`` (recordings they do not use dropped)."""
        keep = set(utterances)
        unknown = sorted(keep - set(self.utterances))
        if unknown:
            raise DataDirError(f"unknown utterance id(s): {', '.join(unknown[:10])}")
        segs = None if self.segments is None else {u: s for u, s in self.segments.items() if u in keep}
        recs = keep if segs is None else {s.recording for s in segs.values()}
        return DataDir({r: p for r, p in self.wav.items() if r in recs},
                       {u: w for u, w in self.text.items() if u in keep},
                       {u: s for u, s in self.utt2spk.items() if u in keep}, segs, None,
                       {r: f for r, f in self.speed.items() if r in recs})

    # ------------------------------------------------------------------ I/O

    @classmethod
    def read(cls, path: str | os.PathLike, require_text: bool = True, check_audio: bool = True) -> "DataDir":
        """Read and validate a data directory.

        Parameters
        ----------
        path : folder holding ``wav.scp`` and ``utt2spk`` (``text`` unless
            ``require_text=False``; ``spk2utt`` and ``segments`` optional)
        require_text : bool
            Every utterance must have a line in ``text`` (training, alignment,
            scoring). A line of the id alone is an utterance without words
            (``[]``, Kaldi's spelling): what to do with it is the caller's
            choice (the training and alignment commands skip it).
        check_audio : bool
            Every audio file must exist.

        Raises
        ------
        DataDirError
            Naming the file and line of a malformed line, a duplicate key, a
            missing audio file, an utterance without transcript or speaker,
            or tables that disagree.
        """
        d = Path(path)
        if not d.is_dir():
            raise DataDirError(f"{d}: not a data directory (no such folder)")
        if not (d / "wav.scp").is_file():
            raise DataDirError(f"{d}: not a data directory (no wav.scp)")
        wav_rows = read_wav_scp(d / "wav.scp", check_audio)
        wav = {rec: value for rec, (value, _) in wav_rows.items()}
        segments = None
        utt_file, utt_lines = "wav.scp", {u: ln for u, (_, ln) in wav_rows.items()}
        if (d / "segments").is_file():
            segments, utt_file, utt_lines = {}, "segments", {}
            for utt, ((rec, start, end), lineno) in read_table(d / "segments", 4, 4).items():
                utt_lines[utt] = lineno
                where = f"{d / 'segments'}:{lineno}"
                try:
                    start_s, end_s = float(start), float(end)
                except ValueError:
                    raise DataDirError(f"{where}: start and end must be seconds, got {start!r} {end!r}") from None
                if not (math.isfinite(start_s) and math.isfinite(end_s) and 0 <= start_s < end_s):
                    raise DataDirError(f"{where}: need 0 <= start < end, got {start!r} {end!r}")
                if rec not in wav:
                    raise DataDirError(f"{where}: recording {rec!r} of {utt!r} is not in wav.scp")
                segments[utt] = Segment(rec, start_s, end_s)
        if not utt_lines:
            raise DataDirError(f"{d / utt_file}: no utterances")
        utt2spk = {u: f[0] for u, (f, _) in read_table(d / "utt2spk", 2, 2).items()}
        text: dict[str, list[str]] = {}
        if (d / "text").is_file():
            text = {u: f for u, (f, _) in read_table(d / "text", 1).items()}
        elif require_text:
            raise DataDirError(f"{d}: no text file (transcripts are required here)")
        _check_covers(d, utt_file, utt_lines, "utt2spk", utt2spk, "speaker")
        if require_text:
            _check_covers(d, utt_file, utt_lines, "text", text, "transcript")
        out = cls(wav, text, utt2spk, segments, d)
        if (d / "spk2utt").is_file():
            _check_spk2utt(d / "spk2utt", out)
        return out

    def write(self, path: str | os.PathLike) -> Path:
        """Write every table (``spk2utt`` derived, ``segments`` if any) into folder ``path``.

        A speed-perturbed directory (:attr:`speed`) is refused: its wav.scp would need sox commands,
        which gmmhmm does not run."""
        self.validate()
        if any(f != 1.0 for f in self.speed.values()):
            raise DataDirError(f"{os.fspath(path)}: a speed-perturbed data directory cannot be written (its "
                               "wav.scp would need sox commands); perturb it in memory with perturb_speed")
        d = Path(path)
        d.mkdir(parents=True, exist_ok=True)
        write_table(d / "wav.scp", self.wav)
        if self.text:
            write_table(d / "text", self.text, empty_values=True)
        write_table(d / "utt2spk", self.utt2spk)
        write_table(d / "spk2utt", self.spk2utt)
        if self.segments is not None:
            # repr: the shortest text that reads back to the same seconds (no rounding)
            write_table(d / "segments", {u: f"{s.recording} {float(s.start_s)!r} {float(s.end_s)!r}"
                                         for u, s in self.segments.items()})
        elif (d / "segments").exists():
            (d / "segments").unlink()  # a stale segments file would change what wav.scp means
        return d

    def validate(self) -> None:
        """Check that the tables agree (as :meth:`read` does for files) and that
        every id and word is one token, so that :meth:`write` fails before it
        replaces any file and writes what reads back."""
        utts = set(self.utterances)
        if not utts:
            raise DataDirError("data directory has no utterances")
        for name, table in (("wav.scp", self.wav), ("utt2spk", self.utt2spk), ("text", self.text),
                            ("segments", self.segments or {})):
            bad = next((k for k in table if not _is_token(k)), None)
            if bad is not None:
                raise DataDirError(f"{name}: id {bad!r} is empty or has white space")
        bad = next((u for u, spk in self.utt2spk.items() if not _is_token(spk)), None)
        if bad is not None:
            raise DataDirError(f"utt2spk: speaker {self.utt2spk[bad]!r} of {bad!r} is empty or has white space")
        bad = next((u for u, words in self.text.items()
                    if isinstance(words, str) or not all(_is_token(w) for w in words)), None)
        if bad is not None:
            raise DataDirError(f"text: the words of {bad!r} must be a list of tokens without white space, "
                               f"got {self.text[bad]!r}")
        bad = next((r for r, p in self.wav.items() if not isinstance(p, str) or not p.strip() or p != p.strip()
                    or "\n" in p or "\r" in p), None)
        if bad is not None:
            raise DataDirError(f"wav.scp: audio path {self.wav[bad]!r} of {bad!r} is empty, starts/ends "
                               "with white space or holds a line break")
        for name, table in (("utt2spk", self.utt2spk),) + ((("text", self.text),) if self.text else ()):
            missing, extra = sorted(utts - set(table)), sorted(set(table) - utts)
            if missing or extra:
                raise DataDirError(f"{name} disagrees with the utterance list: missing {missing[:5]}, "
                                   f"unknown {extra[:5]}")
        if self.segments is not None:
            bad = sorted(u for u, s in self.segments.items() if s.recording not in self.wav)
            if bad:
                raise DataDirError(f"segments name recordings not in wav.scp: {bad[:5]}")
        bad = sorted(set(self.speed) - set(self.wav))
        if bad:
            raise DataDirError(f"speed factors of recordings not in wav.scp: {bad[:5]}")
        for rec, factor in self.speed.items():
            try:
                check_speed(factor)
            except InvalidParameterError as exc:
                raise DataDirError(f"recording {rec!r}: {exc}") from None


def perturb_speed(data: DataDir, factors: Iterable[float]) -> DataDir:
    """Speed-perturbed copies of a data directory, as Kaldi's ``utils/data/perturb_data_dir_speed.sh``
    (``perturb_data_dir_speed_3way.sh`` with ``[0.9, 1.0, 1.1]``).

    The copy at factor ``f`` (:func:`speed_prefix`, e.g. ``sp0.9-``) prefixes every utterance,
    recording and speaker id, so each perturbed speaker is a new speaker (own CMVN statistics,
    VTLN warp, adaptation); segment times are divided by ``f``; transcripts are kept. Factor 1.0
    is the directory itself, ids unchanged (as the 3-way script keeps the originals).

    Raises
    ------
    InvalidParameterError
        No factors, a factor repeated or outside [:data:`MIN_SPEED`, :data:`MAX_SPEED`].
    DataDirError
        A perturbed id clashes with another (the directory already holds ``sp0.9-`` ids).
    """
    factors = check_speed_factors(factors)
    out = DataDir({}, {}, {}, None if data.segments is None else {}, None, {})
    tables = ("wav", "text", "utt2spk", "segments", "speed")
    for f in factors:
        p = "" if f == 1.0 else speed_prefix(f)
        copy = {"wav": {p + r: a for r, a in data.wav.items()},
                "text": {p + u: list(w) for u, w in data.text.items()},
                "utt2spk": {p + u: p + s for u, s in data.utt2spk.items()},
                "segments": None if data.segments is None else {
                    p + u: Segment(p + s.recording, s.start_s / f, s.end_s / f) for u, s in data.segments.items()},
                "speed": {p + r: data.speed.get(r, 1.0) * f for r in data.wav}}
        for name in tables:
            table, new = getattr(out, name), copy[name]
            if new is None:
                continue
            clash = sorted(set(table) & set(new))
            if clash:
                raise DataDirError(f"speed perturbation by {f:g}: {name} id {clash[0]!r} is also that of "
                                   "another copy")
            table.update(new)
    out.speed = {r: f for r, f in out.speed.items() if f != 1.0}
    out.validate()
    return out


def _check_covers(d: Path, utt_file: str, utt_lines: dict[str, int], name: str, table: Mapping,
                  what: str) -> None:
    """Every utterance has an entry in ``table`` and ``table`` names no other utterance."""
    for utt, lineno in utt_lines.items():
        if utt not in table:
            raise DataDirError(f"{d / utt_file}:{lineno}: utterance {utt!r} has no {what} in {d / name}")
    extra = sorted(set(table) - set(utt_lines))
    if extra:
        raise DataDirError(f"{d / name}: utterance {extra[0]!r} is not in {d / utt_file}"
                           + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""))


def _check_spk2utt(path: Path, data: DataDir) -> None:
    rows = read_table(path, 2)
    seen: set[str] = set()
    for spk, (utts, lineno) in rows.items():
        for u in utts:
            if data.utt2spk.get(u) != spk:
                raise DataDirError(f"{path}:{lineno}: utterance {u!r} of speaker {spk!r} disagrees with utt2spk "
                                   f"({data.utt2spk.get(u, 'absent')!r})")
            if u in seen:
                raise DataDirError(f"{path}:{lineno}: utterance {u!r} listed twice")
            seen.add(u)
    missing = sorted(set(data.utt2spk) - seen)
    if missing:
        raise DataDirError(f"{path}: utterance {missing[0]!r} of utt2spk is missing")
