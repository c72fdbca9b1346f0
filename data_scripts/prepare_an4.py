#!/usr/bin/env python
"""Prepare CMU AN4 as Kaldi data directories.

From a local AN4 folder (default ``../shared/data/an4`` or ``$GMMHMM_AN4_DIR``;
read its SOURCE.md) write::

    OUT/train/{wav.scp,text,utt2spk,spk2utt}   948 utterances, 74 speakers
    OUT/test/{wav.scp,text,utt2spk,spk2utt}    130 utterances, 10 speakers
    OUT/lexicon.txt                            etc/an4.dic, one line per pronunciation

Utterance ids are AN4's (``cen7-mjwl-b``) and the speaker is the middle field
(``mjwl``); ``wav.scp`` holds absolute paths of the ``.sph`` files (gmmhmm reads SPHERE
directly); transcripts drop ``<s>`` / ``</s>``. Every transcript word is
checked against the dictionary.

Usage::

    python data_scripts/prepare_an4.py OUT_DIR [--an4-dir ../shared/data/an4]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from gmmhmm.data import DataDir, Lexicon  # noqa: E402
from gmmhmm.errors import DataDirError, GmmhmmError  # noqa: E402
from gmmhmm.modelfile import atomic_write_text  # noqa: E402

#: Environment variable naming the AN4 folder.
AN4_ENV = "GMMHMM_AN4_DIR"
SETS = {"train": "an4_train", "test": "an4_test"}
_LINE = re.compile(r"^(?P<words>.*?)\s*\((?P<utt>[^()\s]+)\)\s*$")
_MARKERS = {"<s>", "</s>", "<sil>"}


def default_an4_dir() -> Path:
    """``$GMMHMM_AN4_DIR``, else ``../shared/data/an4`` beside the repository."""
    env = os.environ.get(AN4_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data" / "an4"


def speaker_of(utt_id: str) -> str:
    """AN4 speaker: the middle field of ``cen7-mjwl-b``."""
    parts = utt_id.split("-")
    if len(parts) != 3 or not all(parts):
        raise DataDirError(f"{utt_id!r} is not an AN4 utterance id (name-speaker-b)")
    return parts[1]


def read_transcription(path: Path) -> dict[str, list[str]]:
    """``<s> WORDS </s> (utt_id)`` lines -> ``{utt_id: words}``; errors name file and line."""
    out: dict[str, list[str]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataDirError(f"{path}: cannot read ({exc})") from exc
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        m = _LINE.match(line)
        if m is None:
            raise DataDirError(f"{path}:{lineno}: expected '<s> WORDS </s> (utt_id)', got {line!r}")
        words = [w for w in m["words"].split() if w not in _MARKERS]
        if not words:
            raise DataDirError(f"{path}:{lineno}: utterance {m['utt']!r} has no words")
        if m["utt"] in out:
            raise DataDirError(f"{path}:{lineno}: utterance {m['utt']!r} appears twice")
        out[m["utt"]] = words
    return out


def read_set(an4_dir: Path, name: str) -> DataDir:
    """The data directory of one AN4 list (``an4_train`` / ``an4_test``)."""
    etc = an4_dir / "etc"
    text = read_transcription(etc / f"{name}.transcription")
    try:
        fileids = [ln.strip() for ln in (etc / f"{name}.fileids").read_text().splitlines() if ln.strip()]
    except OSError as exc:
        raise DataDirError(f"{etc / f'{name}.fileids'}: cannot read ({exc})") from exc
    wav = {}
    for lineno, fid in enumerate(fileids, 1):
        utt = Path(fid).name
        audio = (an4_dir / "wav" / f"{fid}.sph").resolve()
        if not audio.is_file():
            raise DataDirError(f"{etc / f'{name}.fileids'}:{lineno}: audio file {audio} does not exist")
        wav[utt] = str(audio)
    missing = sorted(set(wav) - set(text)) + sorted(set(text) - set(wav))
    if missing:
        raise DataDirError(f"{etc / name}: .fileids and .transcription disagree on {missing[:5]}")
    return DataDir(wav, text, {u: speaker_of(u) for u in wav})


def prepare(an4_dir: Path, out: Path) -> dict[str, int]:
    """Write ``out/train``, ``out/test`` and ``out/lexicon.txt``; returns utterances per set."""
    if not (an4_dir / "etc").is_dir():
        raise DataDirError(f"AN4 not found at {an4_dir} (expected etc/ and wav/; see --an4-dir)")
    lexicon = Lexicon.read(an4_dir / "etc" / "an4.dic", format="sphinx")
    counts = {}
    for name, stem in SETS.items():
        data = read_set(an4_dir, stem)
        lexicon.check_words((w for words in data.text.values() for w in words), source=f"{stem}.transcription")
        data.write(out / name)
        counts[name] = len(data)
    atomic_write_text(out / "lexicon.txt", lexicon.to_text())
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="output folder (train/, test/, lexicon.txt)")
    p.add_argument("--an4-dir", type=Path, default=None, help="AN4 folder (default: $GMMHMM_AN4_DIR or "
                   "../shared/data/an4)")
    args = p.parse_args(argv)
    try:
        counts = prepare(args.an4_dir or default_an4_dir(), args.out)
    except GmmhmmError as exc:
        print(f"prepare_an4: error: {exc}", file=sys.stderr)
        return 1
    print(" ".join(f"{k}={v}" for k, v in counts.items()), f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
