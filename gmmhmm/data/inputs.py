"""What a command line names as input -> utterances with ids, audio paths, speakers and transcripts.

An input is a Kaldi data directory (a folder with ``wav.scp``), a ``wav.scp``
file (any file named ``*.scp``), a folder of audio files (searched recursively) or an audio file:

* data directory: its utterance ids, ``utt2spk`` speakers and ``text``
  (with ``segments``, each utterance is a stretch of a recording);
* ``wav.scp`` alone (``train_wav.scp``, ``data/x.scp``...): its ids, no speakers or transcripts;
* folder: one utterance per audio file below it, id = the path relative to
  the folder without suffix (``spk1/utt3``), so same-named files in
  different subfolders stay distinct;
* file: id = the file name without suffix.

Two inputs giving the same utterance id are an error, never a silent overwrite.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InvalidInputError
from .datadir import (AudioSpan, DataDir, PerturbedAudio, PipedAudio, audio_file, audio_source_name,
                      read_wav_scp, speed_copies)

#: Suffixes of the audio files a folder scan picks up (case-insensitive).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".sph")


@dataclass
class Utterances:
    """Utterances named on a command line, in input order.

    Attributes
    ----------
    ids : list of str
    path : dict utt -> audio path, or :class:`PipedAudio` of a piped wav.scp command
    key : dict utt -> output key: the utterance id for data directories and
        ``wav.scp`` entries, the file path (as given) for files and folders
    speaker : dict utt -> speaker, for utterances from data directories
    text : dict utt -> words, for utterances from data directories with ``text``
    segment : dict utt -> ``(start_s, end_s)`` in its audio file, for utterances
        from data directories with ``segments``
    speed : dict utt -> speed factor of its audio (:meth:`perturb_speed`); absent: 1
    """

    ids: list[str] = field(default_factory=list)
    path: dict[str, str | PipedAudio] = field(default_factory=dict)
    key: dict[str, str] = field(default_factory=dict)
    speaker: dict[str, str] = field(default_factory=dict)
    text: dict[str, list[str]] = field(default_factory=dict)
    segment: dict[str, tuple[float, float]] = field(default_factory=dict)
    speed: dict[str, float] = field(default_factory=dict)
    _source: dict[str, str] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, utt: str, path: str | PipedAudio, key: str, source: str) -> None:
        if utt in self.path:
            raise InvalidInputError(f"utterance id {utt!r} of {source} is also that of {self._source[utt]}; "
                                    "name the files in a wav.scp or data directory to give them distinct ids")
        self.ids.append(utt)
        self.path[utt] = path
        self.key[utt] = key
        self._source[utt] = source

    def subset(self, ids) -> "Utterances":
        """The utterances ``ids`` (a subset of :attr:`ids`), in input order."""
        keep = set(ids)
        out = Utterances()
        for u in self.ids:
            if u in keep:
                out.add(u, self.path[u], self.key[u], self._source[u])
                if u in self.speaker:
                    out.speaker[u] = self.speaker[u]
                if u in self.text:
                    out.text[u] = self.text[u]
                if u in self.segment:
                    out.segment[u] = self.segment[u]
                if u in self.speed:
                    out.speed[u] = self.speed[u]
        return out

    def perturb_speed(self, factors: Iterable[float]) -> "Utterances":
        """Speed-perturbed copies, as :func:`gmmhmm.data.perturb_speed` makes of a data directory: at
        factor ``f`` the utterance ids, output keys and speakers are prefixed ``sp<f>-`` (a perturbed
        speaker is a new speaker); factor 1.0 is the utterances themselves."""
        out = Utterances()
        for f, p in speed_copies(factors):
            for u in self.ids:
                out.add(p + u, self.path[u], p + self.key[u], self._source[u])
                for table in ("speaker", "text", "segment"):
                    if u in getattr(self, table):
                        value = getattr(self, table)[u]
                        getattr(out, table)[p + u] = p + value if table == "speaker" else value
                if self.speed.get(u, 1.0) * f != 1.0:
                    out.speed[p + u] = self.speed.get(u, 1.0) * f
        return out

    def audio_files(self) -> set[str]:
        """The files the utterances read: their paths and the SPHERE files of ``sph2pipe`` commands."""
        return {f for f in map(audio_file, self.path.values()) if f is not None}

    def lookup_keys(self, utt: str) -> tuple[str, ...]:
        """What a table given beside the inputs (transcripts, utt2spk) may name ``utt`` by, first match
        wins: its id, then its audio file's path, name and stem (a command gmmhmm cannot read itself:
        the command)."""
        file = audio_file(self.path[utt])
        if file is None:
            return utt, self.path[utt].name
        return utt, file, Path(file).name, Path(file).stem

    def source(self, utt: str) -> str | PipedAudio | AudioSpan | PerturbedAudio:
        """What feature extraction reads for ``utt``: its audio path, or the span of its segment,
        speed perturbed if it is a perturbed copy."""
        source = AudioSpan(self.path[utt], *self.segment[utt]) if utt in self.segment else self.path[utt]
        return PerturbedAudio(source, self.speed[utt]) if utt in self.speed else source

    def audio_name(self, utt: str) -> str:
        """The key of ``utt``'s features in extraction: its path, ``path[start_s-end_s]`` of a segment,
        ``sp0.9-`` before either for a perturbed copy."""
        return audio_source_name(self.source(utt))

    def utterances_of(self) -> dict[str, list[str]]:
        """Audio name (:meth:`audio_name`) -> the utterances reading it (normally one)."""
        out: dict[str, list[str]] = {}
        for u in self.ids:
            out.setdefault(self.audio_name(u), []).append(u)
        return out


def is_data_dir(path: str | os.PathLike) -> bool:
    return Path(path).is_dir() and (Path(path) / "wav.scp").is_file()


def is_wav_scp(path: str | os.PathLike) -> bool:
    """A name a wav.scp goes by: any ``*.scp`` (``wav.scp``, ``train_wav.scp``, ``wav_sp.scp``), as
    Kaldi users name them; a feature scp given instead is refused by :func:`read_wav_scp`."""
    return Path(path).suffix.lower() == ".scp"


def audio_files_below(folder: Path) -> list[Path]:
    """Audio files anywhere below ``folder`` (:data:`AUDIO_SUFFIXES`), sorted by relative path."""
    found = sorted((f for f in folder.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES and f.is_file()),
                   key=lambda f: f.relative_to(folder).as_posix())
    if not found:
        raise InvalidInputError(f"folder {folder} holds no audio files ({', '.join(AUDIO_SUFFIXES)}) at any depth")
    return found


def list_utterances(inputs: Sequence[str | os.PathLike], require_text: bool = False) -> Utterances:
    """Utterances of data directories, ``wav.scp`` files, folders and audio files (see the module doc).

    Parameters
    ----------
    inputs : paths
    require_text : bool
        Data directories must have a transcript for every utterance.

    Raises
    ------
    DataDirError
        A data directory or wav.scp is malformed (file and line named).
    InvalidInputError
        No inputs, a folder without audio, or two utterances with the same id.
    """
    out = Utterances()
    for item in inputs:
        p = Path(item)
        if is_data_dir(p):
            data = DataDir.read(p, require_text=require_text, check_audio=False)
            for u in data.utterances:
                source = data.source(u)  # segment times in the file's seconds, speed apart
                if isinstance(source, PerturbedAudio):
                    source, out.speed[u] = source.source, source.speed
                if isinstance(source, AudioSpan):
                    out.add(u, source.path, u, f"{p / 'segments'}")
                    out.segment[u] = (source.start_s, source.end_s)
                else:
                    out.add(u, source, u, f"{p / 'wav.scp'}")
                out.speaker[u] = data.utt2spk[u]
                if u in data.text:
                    out.text[u] = data.text[u]
        elif p.is_file() and is_wav_scp(p):
            for u, (path, speed, lineno) in read_wav_scp(p).items():
                out.add(u, path, u, f"{p}:{lineno}")
                if speed != 1.0:
                    out.speed[u] = speed
        elif p.is_dir():
            for f in audio_files_below(p):
                out.add(f.relative_to(p).with_suffix("").as_posix(), str(f), str(f), str(f))
        else:
            out.add(p.stem, str(p), str(p), str(p))  # a missing file is reported by feature extraction
    if not out.ids:
        raise InvalidInputError("no input files")
    return out
