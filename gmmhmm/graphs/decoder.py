"""Viterbi token-passing decoding over grammar graphs, and its traceback.

The per-frame search runs in :func:`.kernels.viterbi`; here the best path
becomes time-stamped phone and word segments.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._validation import check_array
from ..errors import GmmhmmError, InvalidParameterError, SequenceTooShortError
from . import kernels
from .graph import Graph, phone_loop_graph, word_list_graph, word_loop_graph
from .models import PhoneModelSet

logger = logging.getLogger(__name__)

GRAPHS = ("phone-loop", "word-loop", "words")


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
        segs.append(Segment(labels[k], int(t0), int(t1), t0 * shift_s, end_s if last else t1 * shift_s))
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
    SequenceTooShortError
        No path fits in the frames (or the beam pruned every one).
    """
    if log_likelihood is None:
        X = check_array(X, n_features=model.n_features)
        ll = model.state_log_likelihood(X)
    else:
        ll = np.ascontiguousarray(log_likelihood, dtype=np.float64)
        if ll.ndim != 2 or ll.shape[1] != model.n_pdfs:
            raise InvalidParameterError(f"log_likelihood must be (n_frames, {model.n_pdfs}), got {ll.shape}")
    logp, init, final = graph.log_probs(*model.transition_log_probs())
    score, states, arcs = kernels.viterbi(ll, graph.state_pdf, graph.arc_src, graph.arc_dst, logp, init, final,
                                          float(beam))
    if not np.isfinite(score):
        raise SequenceTooShortError(
            f"no complete path through the graph in {len(ll)} frames "
            f"(the graph needs at least {graph.min_frames}; beam={beam})")
    words, phones = traceback_segments(graph, model.phones, states, arcs, frame_shift_s, duration_s)
    return Path(float(score), words, phones)


def make_graph(model: PhoneModelSet, graph: str | Graph = "phone-loop", words: Sequence[str] | None = None,
               insertion_penalty: float = 0.0, lm_scale: float = 1.0, sil_prob: float = 0.5) -> Graph:
    """A decoding graph by name: ``'phone-loop'``, ``'word-loop'`` or ``'words'`` (isolated words)."""
    if isinstance(graph, Graph):
        return graph
    lex = model.lexicon
    if graph == "phone-loop":
        return phone_loop_graph(lex, insertion_penalty, lm_scale, model.n_states)
    if graph == "word-loop":
        return word_loop_graph(lex, insertion_penalty, lm_scale, model.n_states)
    if graph == "words":
        return word_list_graph(lex, words, sil_prob, lm_scale, model.n_states)
    raise InvalidParameterError(f"graph must be one of {list(GRAPHS)} or a Graph, got {graph!r}")


def decode_files(
    model_path_or_models: str | os.PathLike | PhoneModelSet,
    audio_paths: Sequence[str | os.PathLike],
    graph: str = "phone-loop",
    words: Sequence[str] | None = None,
    insertion_penalty: float = 0.0,
    lm_scale: float = 1.0,
    beam: float = 0.0,
    feature_config=None,
    drop: Sequence[str] = ("sil",),
    skip_errors: bool = True,
) -> list[tuple[str, list[tuple[str, float, float]], float]]:
    """Decode audio files with phone models.

    Parameters
    ----------
    model_path_or_models : path to a model file saved with :func:`gmmhmm.save`, or a PhoneModelSet
    audio_paths : audio files
    graph : {'phone-loop', 'word-loop', 'words'}
    words : restrict ``'words'`` (isolated words) to these lexicon words
    insertion_penalty : log weight added per word (phone in a phone loop)
    lm_scale : grammar log-probability scale
    beam : pruning beam in log units (<= 0: no pruning)
    feature_config : FeatureConfig, optional; defaults to the one stored in the model
    drop : labels left out of the output (silence)
    skip_errors : a bad audio file (unreadable, empty, too short, ...) is logged as a warning
        and left out of the result; False raises its :class:`~gmmhmm.errors.GmmhmmError`

    Returns
    -------
    list of ``(path, [(token, start_s, end_s), ...], score)``
    """
    import soundfile  # durations only; lazily, like the front end

    from ..features import FeatureConfig, extract_features

    if isinstance(model_path_or_models, PhoneModelSet):
        model = model_path_or_models
    else:
        from ..modelfile import load

        model = load(model_path_or_models)
        if not isinstance(model, PhoneModelSet):
            raise InvalidParameterError(
                f"{os.fspath(model_path_or_models)} holds a {type(model).__name__}, not a PhoneModelSet")
    if feature_config is None:
        feature_config = (FeatureConfig.from_dict(model.feature_config) if model.feature_config
                          else FeatureConfig())
    g = make_graph(model, graph, words, insertion_penalty, lm_scale)
    shift_s = feature_config.shift_ms / 1000.0
    names, feats = [], []
    for p in map(os.fspath, audio_paths):
        try:
            feats.append(extract_features(p, feature_config))
            names.append(p)
        except GmmhmmError as exc:
            if not skip_errors:
                raise
            logger.warning("skipping %s: %s", p, exc)
    out = []
    for path, X, ll in zip(names, feats, model.state_log_likelihood_many(feats)):
        info = soundfile.info(path)
        best = viterbi_path(model, None, g, beam, shift_s, info.frames / info.samplerate, log_likelihood=ll)
        toks = [(s.label, s.start_s, s.end_s) for s in best.words if s.label not in drop]
        out.append((path, toks, best.score))
    return out
