"""Forced alignment: Viterbi alignment of an utterance to its transcript (HVite -a).

The result is written as CTM lines (``utt channel start duration token``)
or as a Praat TextGrid with a word tier and a phone tier.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path as FsPath

import numpy as np

from ..errors import InvalidInputError
from ..modelfile import atomic_write_text
from .decoder import Path, Segment, viterbi_path
from .graph import utterance_graph
from .models import PhoneModelSet


def force_align(model: PhoneModelSet, X: np.ndarray | None, words: Sequence[str], frame_shift_s: float = 0.01,
                duration_s: float | None = None, sil_prob: float = 0.5,
                log_likelihood: np.ndarray | None = None) -> Path:
    """Best path of ``X`` through the composite HMM of ``words`` (optional silences).

    ``log_likelihood`` may replace ``X`` as in :func:`~gmmhmm.graphs.decoder.viterbi_path`.
    Returns a :class:`~gmmhmm.graphs.decoder.Path` whose ``words`` segments
    (silence included, labelled ``sil``) and ``phones`` segments are
    contiguous and cover every frame.

    Raises
    ------
    TranscriptError
        A word is not in the model's lexicon.
    SequenceTooShortError
        ``X`` has fewer frames than the transcript's phones need.
    """
    g = utterance_graph(model.lexicon, list(words), sil_prob, model.n_states)
    return viterbi_path(model, X, g, 0.0, frame_shift_s, duration_s, log_likelihood)


def to_ctm(utt_id: str, segments: Sequence[Segment], channel: int = 1) -> str:
    """NIST CTM lines: ``utt_id channel start duration token`` (seconds, 3 decimals)."""
    return "".join(f"{utt_id} {channel} {s.start_s:.3f} {s.end_s - s.start_s:.3f} {s.label}\n" for s in segments)


def _tier(name: str, segments: Sequence[Segment], xmax: float) -> list[str]:
    lines = ['        class = "IntervalTier"', f'        name = "{name}"', "        xmin = 0",
             f"        xmax = {xmax!r}", f"        intervals: size = {len(segments)}"]
    for k, s in enumerate(segments, 1):
        label = s.label.replace('"', '""')
        lines += [f"        intervals [{k}]:", f"            xmin = {s.start_s!r}",
                  f"            xmax = {s.end_s!r}", f'            text = "{label}"']
    return lines


def to_textgrid(path: Path) -> str:
    """Praat TextGrid (long text format) with tiers ``words`` and ``phones``."""
    xmax = max(path.words[-1].end_s, path.phones[-1].end_s)
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0", f"xmax = {xmax!r}",
             "tiers? <exists>", "size = 2", "item []:"]
    for k, (name, segs) in enumerate((("words", path.words), ("phones", path.phones)), 1):
        lines.append(f"    item [{k}]:")
        lines += _tier(name, segs, xmax)
    return "\n".join(lines) + "\n"


def write_alignment(out_dir: str | os.PathLike, alignments: Mapping[str, Path]) -> None:
    """Write ``<utt_id>.TextGrid`` per utterance and ``words.ctm`` / ``phones.ctm`` for all of them.

    An id holding ``/`` (a file found below a folder) writes into a subfolder.

    Every file is written whole and atomically: a re-run into the same folder
    replaces the CTM files instead of adding to them.
    """
    out = FsPath(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for utt_id in alignments:
        if FsPath(utt_id).is_absolute() or ".." in FsPath(utt_id).parts or not utt_id.strip():
            raise InvalidInputError(f"utterance id {utt_id!r} cannot name a file inside {out}")
    for utt_id, path in alignments.items():
        target = out / f"{utt_id}.TextGrid"  # ids from folder scans may hold '/': subfolders
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, to_textgrid(path))
    atomic_write_text(out / "words.ctm", "".join(to_ctm(u, p.words) for u, p in alignments.items()))
    atomic_write_text(out / "phones.ctm", "".join(to_ctm(u, p.phones) for u, p in alignments.items()))
