#!/usr/bin/env python
"""Prepare the "Cathy" CMU ARCTIC recordings as Kaldi data directories.

From a local copy (default ``../shared/data/cathy`` or ``$GMMHMM_CATHY_DIR``;
read its SOURCE.md) and the CMU Pronouncing Dictionary (default
``../shared/data/cmudict/cmudict.dict`` or ``$GMMHMM_CMUDICT``) write::

    OUT/train/{wav.scp,text,utt2spk,spk2utt}   recordings of the training prompts
    OUT/test/{wav.scp,text,utt2spk,spk2utt}    recordings of the held-out prompts
    OUT/lexicon.txt                            every pronunciation of the corpus words
    OUT/dropped.txt                            utterances left out, with their unknown words

One speaker (``cathy``) read the 1,132 ARCTIC prompts, many of them two or more
times; utterance ids are the file stems (``arctic_a0001_1592748574``) and the
prompt is the stem without its timestamp (``arctic_a0001``). Transcripts are
each recording's own ``.txt`` (a re-reading may differ from the prompt list):
lower-cased, punctuation dropped, hyphenated words split.

Test prompts: every ``test_every``-th distinct prompt in sorted order (from
``test_offset``), so no test sentence is in training, all recordings of a
prompt fall on one side, and the split does not depend on the dictionary.

Words missing from cmudict: a possessive ``X's`` of a dictionary word ``X`` is
pronounced ``X`` + ``IH Z`` after a sibilant, ``S`` after another voiceless
consonant, else ``Z`` (the regular English rule). An utterance with any other
unknown word is dropped and listed in ``dropped.txt`` (and in the returned
counts), never pronounced by guesswork.

Usage::

    python data_scripts/prepare_cathy.py OUT_DIR [--cathy-dir DIR] [--cmudict FILE] [--test-every 10]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from gmmhmm.data import DataDir, Lexicon  # noqa: E402
from gmmhmm.errors import DataDirError, GmmhmmError, InvalidParameterError  # noqa: E402
from gmmhmm.modelfile import atomic_write_text  # noqa: E402

#: Environment variables naming the corpus folder and the dictionary file.
CATHY_ENV, CMUDICT_ENV = "GMMHMM_CATHY_DIR", "GMMHMM_CMUDICT"
SPEAKER = "cathy"
_WORD = re.compile(r"[a-z0-9']+")
_SIBILANTS = {"S", "Z", "SH", "ZH", "CH", "JH"}
_VOICELESS = {"P", "T", "K", "F", "TH"}


def default_cathy_dir() -> Path:
    """``$GMMHMM_CATHY_DIR``, else ``../shared/data/cathy`` beside the repository."""
    env = os.environ.get(CATHY_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data" / "cathy"


def default_cmudict() -> Path:
    """``$GMMHMM_CMUDICT``, else ``../shared/data/cmudict/cmudict.dict`` beside the repository."""
    env = os.environ.get(CMUDICT_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data" / "cmudict" / "cmudict.dict"


def prompt_of(utt_id: str) -> str:
    """``arctic_a0001_1592748574`` -> ``arctic_a0001``."""
    prompt, sep, stamp = utt_id.rpartition("_")
    if not sep or not prompt.startswith("arctic_") or not stamp.isdigit():
        raise DataDirError(f"{utt_id!r} is not a Cathy recording name (arctic_<prompt>_<timestamp>)")
    return prompt


def normalize(text: str) -> list[str]:
    """Transcript words: lower case, hyphens split, punctuation and outer apostrophes dropped."""
    words = (w.strip("'") for w in _WORD.findall(text.lower().replace("-", " ")))
    return [w for w in words if w]


def possessive(word: str, cmudict: Lexicon) -> list[tuple[tuple[str, ...], float]] | None:
    """Pronunciations of ``X's`` from those of ``X`` (None unless ``X`` is a dictionary word)."""
    stem = word[:-2]
    if not word.endswith("'s") or stem not in cmudict:
        return None
    out = []
    for phones, lw in cmudict.prons(stem):
        last = phones[-1]
        suffix = ("IH", "Z") if last in _SIBILANTS else ("S",) if last in _VOICELESS else ("Z",)
        out.append((phones + suffix, lw))
    return out


def corpus_lexicon(texts: dict[str, list[str]], cmudict: Lexicon) -> tuple[Lexicon, dict[str, list[str]]]:
    """(lexicon of the pronounceable corpus words, ``{utt: unknown words}`` of the other utterances)."""
    prons: dict[str, list] = {}
    dropped: dict[str, list[str]] = {}
    for utt, words in texts.items():
        unknown = []
        for w in words:
            if w not in prons:
                alts = cmudict.prons(w) if w in cmudict else possessive(w, cmudict)
                if alts is None:
                    unknown.append(w)
                    continue
                prons[w] = alts
        if unknown:
            dropped[utt] = sorted(set(unknown))
    keep = {w for u, ws in texts.items() if u not in dropped for w in ws}
    return Lexicon.from_prons({w: p for w, p in sorted(prons.items()) if w in keep}, cmudict.silence), dropped


def read_corpus(cathy_dir: Path) -> DataDir:
    """Every recording and its normalised transcript (speaker ``cathy``)."""
    audio = sorted((cathy_dir / "data").glob("arctic_*.flac"))
    if not audio:
        raise DataDirError(f"Cathy not found at {cathy_dir} (expected data/arctic_*.flac; see --cathy-dir)")
    wav, text = {}, {}
    for path in audio:
        utt = path.stem
        prompt_of(utt)  # checks the name
        txt = path.with_suffix(".txt")
        try:
            words = normalize(txt.read_text(encoding="utf-8"))
        except OSError as exc:
            raise DataDirError(f"{txt}: cannot read the transcript ({exc})") from exc
        if not words:
            raise DataDirError(f"{txt}: the transcript has no words")
        wav[utt], text[utt] = str(path.resolve()), words
    return DataDir(wav, text, {u: SPEAKER for u in wav})


def every_nth(prompts, every: int, offset: int) -> set[str]:
    """The prompts at sorted positions ``offset``, ``offset + every``, ... (a deterministic split)."""
    if every < 2 or not 0 <= offset < every:
        raise InvalidParameterError(f"a split needs every >= 2 and 0 <= offset < every, got {every}, {offset}")
    return {p for k, p in enumerate(sorted(set(prompts))) if k % every == offset}


def prepare(cathy_dir: Path, cmudict_path: Path, out: Path, test_every: int = 10,
            test_offset: int = 0) -> dict[str, int]:
    """Write ``out/{train,test}``, ``out/lexicon.txt`` and ``out/dropped.txt``; returns counts."""
    corpus = read_corpus(cathy_dir)
    cmudict = Lexicon.read(cmudict_path, format="cmudict")
    prompt = {u: prompt_of(u) for u in corpus.utterances}
    test_prompts = every_nth(prompt.values(), test_every, test_offset)
    lexicon, dropped = corpus_lexicon(corpus.text, cmudict)
    kept = [u for u in corpus.utterances if u not in dropped]
    counts = {}
    for name, wanted in (("train", False), ("test", True)):
        data = corpus.subset(u for u in kept if (prompt[u] in test_prompts) == wanted)
        data.write(out / name)
        counts[f"{name}_utterances"] = len(data)
        counts[f"{name}_prompts"] = len({prompt[u] for u in data.utterances})
    atomic_write_text(out / "lexicon.txt", lexicon.to_text())
    atomic_write_text(out / "dropped.txt", "".join(f"{u} {' '.join(ws)}\n" for u, ws in sorted(dropped.items())))
    counts["dropped_utterances"] = len(dropped)
    counts["lexicon_words"] = len(lexicon)
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="output folder (train/, test/, lexicon.txt, dropped.txt)")
    p.add_argument("--cathy-dir", type=Path, default=None, help="corpus folder (default: $GMMHMM_CATHY_DIR or "
                   "../shared/data/cathy)")
    p.add_argument("--cmudict", type=Path, default=None, help="cmudict.dict (default: $GMMHMM_CMUDICT or "
                   "../shared/data/cmudict/cmudict.dict)")
    p.add_argument("--test-every", type=int, default=10, help="every N-th distinct prompt is a test prompt")
    p.add_argument("--test-offset", type=int, default=0, help="position of the first test prompt (0..N-1)")
    args = p.parse_args(argv)
    try:
        counts = prepare(args.cathy_dir or default_cathy_dir(), args.cmudict or default_cmudict(), args.out,
                         args.test_every, args.test_offset)
    except GmmhmmError as exc:
        print(f"prepare_cathy: error: {exc}", file=sys.stderr)
        return 1
    print(" ".join(f"{k}={v}" for k, v in counts.items()), f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
