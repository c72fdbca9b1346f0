"""Kaldi-style data directories: ``wav.scp``, ``text``, ``utt2spk``, ``spk2utt``, ``segments``.

Each file is a table of ``key value...`` lines (Kaldi's conventions, as in
``utils/validate_data_dir.sh`` and lhotse's ``kaldi.py``)::

    wav.scp    recording_id  /path/to/audio.{wav,flac,sph,...}
    text       utterance_id  word word ...
    utt2spk    utterance_id  speaker_id
    spk2utt    speaker_id    utterance_id utterance_id ...
    segments   utterance_id  recording_id start_s end_s      (optional)

Without ``segments`` recording ids are utterance ids. Relative audio paths
are resolved against the current directory, as Kaldi does. A piped command
(``sph2pipe -f wav x.sph |``, ``flac -c -d -s x.flac |``) is a :class:`PipedAudio`: Kaldi's
``sph2pipe`` calls are read from the SPHERE file without running anything, other commands are
run through the shell as Kaldi runs them. The sox ``speed`` commands of Kaldi's
``utils/data/perturb_data_dir_speed.sh`` are read as speed-perturbed audio without running sox
(:func:`parse_wav_scp_value`). Everything is written back as read. Files are written sorted by
key (C locale order) and atomically.
"""

from __future__ import annotations

import getopt
import math
import numbers
import os
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from .._textio import read_text_input, split_fields, split_lines
from ..errors import AudioError, DataDirError, InvalidParameterError
from ..modelfile import atomic_write_text, atomic_write_texts

TABLES = ("wav.scp", "text", "utt2spk", "spk2utt", "segments")


@dataclass(frozen=True)
class Segment:
    """A stretch of a recording: ``segments`` line ``utt rec start_s end_s``."""

    recording: str
    start_s: float
    end_s: float


class Sph2pipe(NamedTuple):
    """What an ``sph2pipe`` call asks of its SPHERE file (sph2pipe v2.5's ``-c``, ``-t``, ``-s``)."""

    path: str
    channel: int | None = None  # 0 (-c 1) or 1 (-c 2); None: every channel
    begin: float = 0.0  # -t seconds or -s samples; 0: the start
    end: float = 0.0  # 0: the end
    in_samples: bool = False  # -s rather than -t


@dataclass(frozen=True)
class PipedAudio:
    """The audio a shell command writes to its standard output: a Kaldi wav.scp value ending in
    ``|`` (an rxfilename), e.g. ``sph2pipe -f wav -p -c 1 /data/x.sph |`` or ``flac -c -d -s x.flac |``.

    Feature extraction takes it wherever it takes paths; it composes with :class:`AudioSpan`
    (a segment of the command's output) and :class:`PerturbedAudio`. A ``sph2pipe`` call gmmhmm
    understands (:attr:`sph2pipe`) is read from the SPHERE file, nothing run; any other command
    is run through ``/bin/sh`` as Kaldi runs it and its output read as audio. Results and
    failures are keyed by :attr:`name`, the command as written.

    ``where`` (``wav.scp:3``), when known, prefixes the errors of the command; it takes no part in
    equality.
    """

    command: str
    where: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        ok = isinstance(self.command, str) and self.command.strip().endswith("|")
        if not (ok and self.command.strip()[:-1].strip() and "\n" not in self.command and "\r" not in self.command):
            raise InvalidParameterError("PipedAudio needs a shell command ending in '|' on one line "
                                        f"('sph2pipe -f wav x.sph |'), got {self.command!r}")
        object.__setattr__(self, "command", self.command.strip())

    @property
    def name(self) -> str:
        """The command as written: the key of this item's features and failures."""
        return self.command

    @property
    def sph2pipe(self) -> Sph2pipe | None:
        """The file, channel and range of a ``sph2pipe`` call (the program by any path, ``-f wav``,
        ``-f rif`` or ``-f sph``, ``-p``, ``-c 1|2``, ``-t b:e``, ``-s b:e``, one input file, no
        shell syntax); None for any other command, which is run."""
        return parse_sph2pipe(self.command)


def parse_sph2pipe(command: str) -> Sph2pipe | None:
    """:attr:`PipedAudio.sph2pipe` of ``command`` (``... |``): options as sph2pipe's getopt reads them."""
    body = command.strip()[:-1]
    if any(c in body for c in "|;&<>$`*?(){}"):  # the shell would do something with these: run it
        return None
    try:
        args = shlex.split(body)
        opts, files = getopt.getopt(args[1:], "daupf:c:t:s:h:")
    except (ValueError, getopt.GetoptError):
        return None
    if any(a.startswith("~") for a in args):  # the shell's home directory
        return None
    if not args or os.path.basename(args[0]) != "sph2pipe" or len(files) != 1:
        return None  # another program, or an output file instead of the pipe
    call = {"path": files[0]}
    for opt, value in opts:
        if opt in ("-u", "-a", "-h") or (opt == "-f" and value[:3].lower() not in ("wav", "rif", "sph")):
            return None  # mu-law/A-law conversion, a stand-off header, raw/au/aif output: sph2pipe's job
        if opt == "-c":
            if value[:1] not in ("1", "2"):
                return None
            call["channel"] = int(value[:1]) - 1
        elif opt in ("-t", "-s"):
            begin, colon, end = value.partition(":")
            try:
                bounds = [(int if opt == "-s" else float)(b) if b else 0 for b in (begin, end)]
            except ValueError:
                return None
            if not colon or "begin" in call or not all(math.isfinite(b) and b >= 0 for b in bounds):
                return None
            call.update(begin=bounds[0], end=bounds[1], in_samples=opt == "-s")
    return Sph2pipe(**call)


@dataclass(frozen=True)
class AudioSpan:
    """A stretch of an audio file: a Kaldi ``segments`` line ``utt recording start_s end_s``.

    Feature extraction (:func:`~gmmhmm.features.extract_many`) takes spans
    wherever it takes paths; results and failures are keyed by :attr:`name`.
    """

    path: "str | PipedAudio"
    start_s: float
    end_s: float

    def __post_init__(self) -> None:
        check_span(audio_source_name(self.path), self.start_s, self.end_s)
        if not math.isfinite(self.end_s):
            raise AudioError(f"{audio_source_name(self.path)}: a segment's end must be finite seconds, "
                             f"got {self.end_s!r}")

    @property
    def name(self) -> str:
        """``path[start_s-end_s]``: the key of this span's features and failures."""
        return f"{audio_source_name(self.path)}[{self.start_s:.3f}-{self.end_s:.3f}]"


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


def speed_copies(factors: Iterable[float]) -> list[tuple[float, str]]:
    """``(factor, id prefix)`` of each copy a speed perturbation makes (:func:`perturb_speed`,
    :meth:`~gmmhmm.data.Utterances.perturb_speed`): :func:`speed_prefix`, and no prefix at factor 1.0
    (the originals, as ``perturb_data_dir_speed_3way.sh`` keeps them). A copy of audio already at
    speed ``s`` plays at ``s * factor``.

    Raises
    ------
    InvalidParameterError
        As :func:`check_speed_factors`.
    """
    return [(f, "" if f == 1.0 else speed_prefix(f)) for f in check_speed_factors(factors)]


@dataclass(frozen=True)
class PerturbedAudio:
    """An audio file or :class:`AudioSpan` played ``speed`` times faster (sox ``speed``, Kaldi's speed
    perturbation): ``1 / speed`` times as long, every frequency times ``speed``.

    Feature extraction takes it wherever it takes paths and spans: the source is read, perturbed
    (:func:`~gmmhmm.features.speed_perturb`) and resampled to the configured rate; results and
    failures are keyed by :attr:`name`.
    """

    source: "str | AudioSpan | PipedAudio"
    speed: float

    def __post_init__(self) -> None:
        if isinstance(self.source, os.PathLike):  # a Path: kept as the str it names, as extract_many does
            object.__setattr__(self, "source", os.fsdecode(self.source))
        if not isinstance(self.source, (str, AudioSpan, PipedAudio)):
            raise InvalidParameterError("PerturbedAudio source must be a path (str), a PipedAudio or an AudioSpan, "
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


def audio_source_name(source: "str | os.PathLike | AudioSpan | PerturbedAudio | PipedAudio") -> str:
    """The key a file path, a :class:`PipedAudio`, an :class:`AudioSpan` or a :class:`PerturbedAudio`
    is reported under."""
    return source.name if isinstance(source, (AudioSpan, PerturbedAudio, PipedAudio)) else os.fsdecode(source)


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


# one stage of Kaldi's perturb_data_dir_speed.sh pipes: ``sox -t wav FILE-or-- -t wav - EFFECTS``
_SOX_STAGE = re.compile(r"sox\s+-t\s+wav\s+(?P<input>\S.*?)\s+-t\s+wav\s+-(?:\s+(?P<effects>.*))?")


def _shell_pipeline(command: str) -> list[str]:
    """``command`` split at the ``|`` the shell would split it at: not one inside quotes or escaped."""
    stages, start, quote, escaped = [], 0, "", False
    for k, c in enumerate(command):
        if escaped:
            escaped = False
        elif c == "\\" and quote != "'":
            escaped = True
        elif quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "|":
            stages.append(command[start:k])
            start = k + 1
    return stages + [command[start:]]


def parse_wav_scp_value(value: str, where: str) -> "tuple[str | PipedAudio, float]":
    """``(audio, speed factor)`` of a wav.scp value: a path (speed 1), a piped command (a
    :class:`PipedAudio`, speed 1), or either played through the sox ``speed`` pipes Kaldi's
    ``utils/data/perturb_data_dir_speed.sh`` writes::

        sox -t wav /path/rec.wav -t wav - speed 0.9 |
        sox -t wav /path/rec.wav -t wav - speed 0.9 | sox -t wav - -t wav - speed 1.1 |
        sph2pipe -f wav /path/rec.sph | sox -t wav - -t wav - speed 0.9 |

    (the second: a perturbed copy of a perturbed copy; factors multiply). sox is never run: the
    speed steps are read, and so is everything from the first stage that starts with ``sox``.

    Raises
    ------
    DataDirError
        Prefixed ``where`` (file and line) and naming the value: a sox command of another shape or
        with another effect, a command after sox, a speed factor missing, not a number or out of
        range (:func:`check_speed`, of each factor and of their product), or a feature scp's
        ``file.ark:offset`` entry.
    """
    if not value.endswith("|"):
        if _ARCHIVE_OFFSET.search(value):
            raise DataDirError(f"{where}: {value!r} is an archive offset: this looks like a feature scp "
                               "(feats.scp), not a wav.scp; give the audio (recording-id audio-path lines)")
        return value, 1.0
    stages = _shell_pipeline(value[:-1])
    n_run = next((k for k, s in enumerate(stages) if s.split()[:1] == ["sox"]), len(stages))
    audio: "str | PipedAudio | None" = None
    if n_run:  # the command before the sox steps is the audio, run as Kaldi runs it
        try:
            audio = PipedAudio("|".join(stages[:n_run]) + "|", where)
        except InvalidParameterError:
            raise DataDirError(f"{where}: empty command in {value!r}") from None
    speed = 1.0
    for stage in (s.strip() for s in stages[n_run:]):
        if stage.split()[:1] != ["sox"]:
            raise DataDirError(f"{where}: only sox speed steps may follow sox in {value!r} ('sox -t wav - -t "
                               "wav - speed F |', Kaldi's perturb_data_dir_speed.sh; gmmhmm does not run sox)")
        match = _SOX_STAGE.fullmatch(stage)
        if match is None:
            raise DataDirError(f"{where}: cannot read sox command {stage!r} of {value!r}: gmmhmm reads "
                               "'sox -t wav FILE -t wav - speed F |' (Kaldi's perturb_data_dir_speed.sh)")
        source, effects = match["input"], (match["effects"] or "").split()
        if audio is None and source == "-":
            raise DataDirError(f"{where}: sox command {stage!r} of {value!r} reads a pipe that nothing writes")
        if audio is not None and source != "-":
            raise DataDirError(f"{where}: sox command {stage!r} of {value!r} reads a file inside a pipe")
        if not effects:
            raise DataDirError(f"{where}: sox command without a speed effect in {value!r}")
        if effects[0] != "speed":
            raise DataDirError(f"{where}: sox effect {effects[0]!r} is not understood (only speed) in {value!r}")
        if len(effects) == 1:
            raise DataDirError(f"{where}: sox speed needs a factor in {value!r}")
        if len(effects) > 2:
            raise DataDirError(f"{where}: sox effect {effects[2]!r} is not understood (only speed) in {value!r}")
        try:
            factor = float(effects[1])
        except ValueError:
            raise DataDirError(f"{where}: sox speed factor {effects[1]!r} is not a number in {value!r}") from None
        try:
            speed = check_speed(factor) * speed
            check_speed(speed)
        except InvalidParameterError as exc:
            raise DataDirError(f"{where}: {exc} in {value!r}") from None
        audio = source if audio is None else audio
    return audio, speed


def wav_scp_value(audio: "str | PipedAudio", speed: float) -> str:
    """The wav.scp value of ``audio`` played at ``speed``: the path or command, or
    perturb_data_dir_speed.sh's sox pipe (the factor's shortest exact text, so that
    :func:`parse_wav_scp_value` reads it back)."""
    if isinstance(audio, PipedAudio):
        return audio.command if speed == 1.0 else f"{audio.command} sox -t wav - -t wav - speed {float(speed)!r} |"
    return audio if speed == 1.0 else f"sox -t wav {audio} -t wav - speed {float(speed)!r} |"


def audio_file(audio: "str | PipedAudio") -> str | None:
    """The file ``audio`` reads, if known: a path, or the SPHERE file of a ``sph2pipe`` call."""
    if isinstance(audio, PipedAudio):
        call = audio.sph2pipe
        return None if call is None else call.path
    return audio


def read_wav_scp(path: str | os.PathLike,
                 check_audio: bool = False) -> "dict[str, tuple[str | PipedAudio, float, int]]":
    """``{recording: (audio, speed factor, line number)}`` of a ``wav.scp``, wherever one is read.

    Each audio is the rest of its line (inner white space kept, as Kaldi reads a file name), a
    :class:`PipedAudio` of a command ending in ``|``, or either under Kaldi sox ``speed`` steps
    (:func:`parse_wav_scp_value`; speed 1 otherwise). A bad sox step, a feature scp's
    ``file.ark:offset`` entry (a ``feats.scp`` given for audio), an empty file and, with
    ``check_audio``, a missing audio file (of a path or a ``sph2pipe`` call; other commands are
    checked when run) raise :class:`DataDirError` naming the file and line; so do
    :func:`read_table`'s malformed lines.
    """
    rows = read_table(path, 2, rest_of_line=True)
    if not rows:
        raise DataDirError(f"{os.fspath(path)}: no utterances")
    out = {rec: (*parse_wav_scp_value(value, f"{os.fspath(path)}:{lineno}"), lineno)
           for rec, ((value,), lineno) in rows.items()}
    if check_audio:  # after every line's format: a feature scp is named as one, not as missing audio
        for rec, (audio, _, lineno) in out.items():
            file = audio_file(audio)
            if file is not None and not Path(file).is_file():
                raise DataDirError(f"{os.fspath(path)}:{lineno}: audio file of {rec!r} does not exist: {file}")
    return out


def write_table(path: str | os.PathLike, table: Mapping[str, str | list[str]], empty_values: bool = False) -> None:
    """Write ``key value`` lines sorted by key, atomically; list values are joined by spaces.

    An empty value is an error unless ``empty_values`` (``text``: an utterance
    without words is written as its id alone, as Kaldi does).
    """
    atomic_write_text(path, _table_text(path, table, empty_values))


def _table_text(path: str | os.PathLike, table: Mapping[str, str | list[str]], empty_values: bool = False) -> str:
    """The text :func:`write_table` writes (``path`` names it in errors)."""
    lines = []
    for key in sorted(table):
        value = table[key]
        value = " ".join(value) if isinstance(value, (list, tuple)) else str(value)
        if not _is_token(key) or not (value.strip() or empty_values):
            raise DataDirError(f"{os.fspath(path)}: bad entry {key!r} -> {value!r} (keys need no spaces, values text)")
        lines.append(f"{key} {value}\n" if value.strip() else f"{key}\n")
    return "".join(lines)


def _is_token(text: object) -> bool:
    """Non-empty text without white space: what a Kaldi table holds as an id or a word."""
    return isinstance(text, str) and bool(text) and not any(c.isspace() for c in text)


@dataclass
class DataDir:
    """The tables of a Kaldi data directory.

    Attributes
    ----------
    wav : dict recording id -> audio path or :class:`PipedAudio` (recording = utterance without segments)
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

    wav: "dict[str, str | PipedAudio]"
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

    def audio(self, utt: str) -> "tuple[str | PipedAudio, float, float | None]":
        """``(audio path or command, start_s, end_s or None)`` of an utterance."""
        if self.segments is not None:
            seg = self.segments[utt]
            return self.wav[seg.recording], seg.start_s, seg.end_s
        return self.wav[utt], 0.0, None

    def source(self, utt: str) -> "str | PipedAudio | AudioSpan | PerturbedAudio":
        """What feature extraction reads for ``utt``: its audio path or command, or the :class:`AudioSpan` of its
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
        wav = {rec: audio for rec, (audio, _, _) in wav_rows.items()}
        speed = {rec: f for rec, (_, f, _) in wav_rows.items() if f != 1.0}
        segments = None
        utt_file, utt_lines = "wav.scp", {u: ln for u, (_, _, ln) in wav_rows.items()}
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
        out = cls(wav, text, utt2spk, segments, d, speed)
        if (d / "spk2utt").is_file():
            _check_spk2utt(d / "spk2utt", out)
        return out

    def write(self, path: str | os.PathLike) -> Path:
        """Write every table (``spk2utt`` derived, ``text`` and ``segments`` if any) into folder ``path``,
        as one set: if writing fails, every table already there is left as it was. A ``text`` or
        ``segments`` file there that this directory has none of is removed (it is another's).

        A piped command is written as it was read. A speed-perturbed recording (:attr:`speed`) is
        written as Kaldi's ``utils/data/perturb_data_dir_speed.sh`` writes it, ``rec sox -t wav PATH
        -t wav - speed F |`` or ``rec COMMAND | sox -t wav - -t wav - speed F |``
        (:func:`wav_scp_value`), which :meth:`read` reads back."""
        self.validate()
        d = Path(path)
        d.mkdir(parents=True, exist_ok=True)
        tables = {"wav.scp": _table_text(d / "wav.scp", {r: wav_scp_value(p, self.speed.get(r, 1.0))
                                                          for r, p in self.wav.items()})}
        if self.text:
            tables["text"] = _table_text(d / "text", self.text, empty_values=True)
        tables["utt2spk"] = _table_text(d / "utt2spk", self.utt2spk)
        tables["spk2utt"] = _table_text(d / "spk2utt", self.spk2utt)
        if self.segments is not None:
            # repr: the shortest text that reads back to the same seconds (no rounding)
            tables["segments"] = _table_text(d / "segments", {
                u: f"{s.recording} {float(s.start_s)!r} {float(s.end_s)!r}" for u, s in self.segments.items()})
        # one set: a failure (a full disk) leaves every table as it was, never new ones beside old ones
        atomic_write_texts({d / name: text for name, text in tables.items()})
        for name in ("text", "segments"):  # a stale one would give the new recordings its transcripts or times
            if name not in tables and (d / name).exists():
                (d / name).unlink()
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
        bad = next((r for r, p in self.wav.items() if not isinstance(p, PipedAudio) and (
                    not isinstance(p, str) or not p.strip() or p != p.strip() or "\n" in p or "\r" in p)), None)
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
        for rec, path in self.wav.items():  # what wav.scp would hold must read back as this audio and speed
            value = wav_scp_value(path, self.speed.get(rec, 1.0))
            try:
                same = parse_wav_scp_value(value, "wav.scp") == (path, self.speed.get(rec, 1.0))
            except DataDirError:
                same = False
            if not same:
                raise DataDirError(f"wav.scp: audio {audio_source_name(path)!r} of {rec!r} would be written as "
                                   f"{value!r}, which reads back as another thing (a piped command, sox speed "
                                   "steps or an archive offset)")


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
    out = DataDir({}, {}, {}, None if data.segments is None else {}, None, {})
    tables = ("wav", "text", "utt2spk", "segments", "speed")
    for f, p in speed_copies(factors):
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
