"""Forced alignment: Viterbi alignment of an utterance to its transcript (HVite -a).

Exact Viterbi (:func:`.kernels.viterbi`) through the utterance's composite
HMM, and its traceback into time-stamped word and phone segments. The
result is written as CTM lines (``utt channel start duration token``) or as
a Praat TextGrid with a word tier and a phone tier. (Decoding with grammars
and language models is :mod:`gmmhmm.search`.)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path as FsPath

import numpy as np

from .._validation import check_log_likelihood
from ..errors import InvalidInputError, SequenceTooShortError
from ..modelfile import atomic_write_text
from . import kernels
from .graph import Graph, utterance_graph
from .models import PhoneModelSet


@dataclass(frozen=True)
class Segment:
    """A labelled stretch of frames ``[start, end)``; times in seconds."""

    label: str
    start_frame: int
    end_frame: int
    start_s: float
    end_s: float


@dataclass
class Path:
    """Best path of an utterance through a graph."""

    score: float
    words: list[Segment]
    phones: list[Segment]

    def tokens(self, drop: Sequence[str] = ("sil",)) -> list[str]:
        return [s.label for s in self.words if s.label not in drop]


def _runs(starts: np.ndarray, labels: list[str], n_frames: int, shift_s: float, end_s: float | None) -> list[Segment]:
    idx = np.flatnonzero(starts)
    bounds = list(idx) + [n_frames]
    segs = []
    for k, t0 in enumerate(idx):
        t1 = bounds[k + 1]
        last = t1 == n_frames and end_s is not None
        # plain floats: the TextGrid and CTM writers print them (a numpy repr is not a number to Praat)
        segs.append(Segment(labels[k], int(t0), int(t1), float(t0 * shift_s), float(end_s if last else t1 * shift_s)))
    return segs


def traceback_segments(graph: Graph, phones: list[str], states: np.ndarray, arcs: np.ndarray,
                       frame_shift_s: float = 0.01, duration_s: float | None = None) -> tuple[list[Segment], list[Segment]]:
    """Word (unit) and phone segments of a state path and the arcs taken into each frame.

    Segment ``k`` covers frames ``[t_k, t_{k+1})``, i.e. seconds
    ``[t_k * shift, t_{k+1} * shift)``; the last one ends at ``duration_s`` when given.
    """
    T = len(states)
    word_start = np.zeros(T, dtype=bool)
    phone_start = np.zeros(T, dtype=bool)
    word_start[0] = phone_start[0] = True
    word_lab = [int(graph.init_label[states[0]])]
    inner = arcs[1:]
    word_start[1:] = graph.arc_label[inner] >= 0
    phone_start[1:] = graph.arc_phone_start[inner]
    word_lab += [int(x) for x in graph.arc_label[inner][word_start[1:]]]
    phone_lab = [phones[int(p)] for p in graph.state_phone[states[phone_start]]]
    words = _runs(word_start, [graph.labels[i] for i in word_lab], T, frame_shift_s, duration_s)
    return words, _runs(phone_start, phone_lab, T, frame_shift_s, duration_s)


def viterbi_path(model: PhoneModelSet, X: np.ndarray | None, graph: Graph, beam: float = 0.0,
                 frame_shift_s: float = 0.01, duration_s: float | None = None,
                 log_likelihood: np.ndarray | None = None) -> Path:
    """Best path of features ``X`` through ``graph`` (beam <= 0: exact Viterbi).

    ``log_likelihood`` (T, n_pdfs) from :meth:`PhoneModelSet.state_log_likelihood_many`
    may be given instead of ``X`` to reuse one scoring for several graphs.

    Raises
    ------
    InvalidInputError
        ``log_likelihood`` of the wrong shape, or holding NaN or +inf.
    SequenceTooShortError
        No path fits in the frames (or the beam pruned every one).
    """
    # state_log_likelihood validates X
    ll = model.state_log_likelihood(X) if log_likelihood is None else check_log_likelihood(log_likelihood,
                                                                                              model.n_pdfs)
    weights = graph.log_probs(*model.transition_log_probs())
    score, states, arcs = kernels.viterbi(ll, graph.state_pdf, graph.arc_src, graph.arc_dst, *weights, float(beam))
    if not np.isfinite(score):
        raise SequenceTooShortError(
            f"no complete path through the graph in {len(ll)} frames "
            f"(the graph needs at least {graph.min_frames}; beam={beam})")
    words, phones = traceback_segments(graph, model.phones, states, arcs, frame_shift_s, duration_s)
    return Path(float(score), words, phones)


def force_align(model: PhoneModelSet, X: np.ndarray | None, words: Sequence[str], frame_shift_s: float = 0.01,
                duration_s: float | None = None, sil_prob: float = 0.5,
                log_likelihood: np.ndarray | None = None) -> Path:
    """Best path of ``X`` through the composite HMM of ``words`` (optional silences).

    ``log_likelihood`` may replace ``X`` as in :func:`viterbi_path`.
    Returns a :class:`Path` whose ``words`` segments
    (silence included, labelled ``sil``) and ``phones`` segments are
    contiguous and cover every frame.

    Raises
    ------
    TranscriptError
        A word is not in the model's lexicon.
    SequenceTooShortError
        ``X`` has fewer frames than the transcript's phones need.
    """
    g = utterance_graph(model.lexicon, list(words), sil_prob, model.n_states, context=model.context)
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
    replaces the CTM files instead of adding to them, and removes the
    TextGrids of utterances it did not align.
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
    # rglob: an id holding '/' wrote into a subfolder
    for stale in set(out.rglob("*.TextGrid")) - {out / f"{u}.TextGrid" for u in alignments}:
        stale.unlink()  # from an earlier run: this run did not align that utterance
