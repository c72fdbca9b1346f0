"""Viterbi token-passing decoding over grammar graphs, and its traceback.

The per-frame search runs in :func:`.kernels.viterbi`; here the best path
becomes time-stamped phone and word segments.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from .._validation import check_number
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


def _check_log_likelihood(model: PhoneModelSet, log_likelihood: np.ndarray) -> np.ndarray:
    ll = np.ascontiguousarray(log_likelihood, dtype=np.float64)
    if ll.ndim != 2 or ll.shape[1] != model.n_pdfs:
        raise InvalidParameterError(f"log_likelihood must be (n_frames, {model.n_pdfs}), got {ll.shape}")
    return ll


def _best_path(model: PhoneModelSet, ll: np.ndarray, graph: Graph, weights: tuple[np.ndarray, ...], beam: float,
               frame_shift_s: float, duration_s: float | None) -> Path:
    """Viterbi search and traceback with the graph's arc / initial / final log weights given."""
    score, states, arcs = kernels.viterbi(ll, graph.state_pdf, graph.arc_src, graph.arc_dst, *weights, float(beam))
    if not np.isfinite(score):
        raise SequenceTooShortError(
            f"no complete path through the graph in {len(ll)} frames "
            f"(the graph needs at least {graph.min_frames}; beam={beam})")
    words, phones = traceback_segments(graph, model.phones, states, arcs, frame_shift_s, duration_s)
    return Path(float(score), words, phones)


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
    # state_log_likelihood validates X
    ll = model.state_log_likelihood(X) if log_likelihood is None else _check_log_likelihood(model, log_likelihood)
    return _best_path(model, ll, graph, graph.log_probs(*model.transition_log_probs()), beam, frame_shift_s,
                      duration_s)


def viterbi_paths(model: PhoneModelSet, graph: Graph, log_likelihoods: Sequence[np.ndarray], beam: float = 0.0,
                  frame_shift_s: float = 0.01, durations_s: Sequence[float | None] | None = None) -> list[Path]:
    """:func:`viterbi_path` of many utterances through one graph, its arc weights computed once.

    Parameters
    ----------
    model : PhoneModelSet
    graph : Graph
    log_likelihoods : sequence of (T, n_pdfs) arrays
        From :meth:`PhoneModelSet.state_log_likelihood_many`.
    beam, frame_shift_s : as for :func:`viterbi_path`
    durations_s : sequence of float or None, optional
        End time of each utterance's last segment.

    Raises
    ------
    SequenceTooShortError
        An utterance has no path through the graph.
    """
    durations_s = [None] * len(log_likelihoods) if durations_s is None else list(durations_s)
    if len(durations_s) != len(log_likelihoods):
        raise InvalidParameterError(f"{len(durations_s)} durations for {len(log_likelihoods)} utterances")
    weights = graph.log_probs(*model.transition_log_probs())
    return [_best_path(model, _check_log_likelihood(model, ll), graph, weights, beam, frame_shift_s, d)
            for ll, d in zip(log_likelihoods, durations_s)]


def make_graph(model: PhoneModelSet, graph: str | Graph = "phone-loop", words: Sequence[str] | None = None,
               insertion_penalty: float = 0.0, lm_scale: float = 1.0, sil_prob: float = 0.5) -> Graph:
    """A decoding graph by name: ``'phone-loop'``, ``'word-loop'`` or ``'words'`` (isolated words)."""
    if isinstance(graph, Graph):
        return graph
    check_number(insertion_penalty, "insertion_penalty")
    check_number(lm_scale, "lm_scale", "positive")
    check_number(sil_prob, "sil_prob", "nonneg")
    lex = model.lexicon
    if graph == "phone-loop":
        return phone_loop_graph(lex, insertion_penalty, lm_scale, model.n_states)
    if graph == "word-loop":
        return word_loop_graph(lex, insertion_penalty, lm_scale, model.n_states)
    if graph == "words":
        return word_list_graph(lex, words, sil_prob, lm_scale, model.n_states)
    raise InvalidParameterError(f"graph must be one of {list(GRAPHS)} or a Graph, got {graph!r}")


def _decode_audio(
    model: PhoneModelSet,
    audio_paths: Sequence[str | os.PathLike],
    graph: str | Graph = "phone-loop",
    words: Sequence[str] | None = None,
    insertion_penalty: float = 0.0,
    lm_scale: float = 1.0,
    beam: float = 0.0,
    feature_config=None,
    skip_errors: bool = True,
    n_jobs: int = 1,
    progress: bool = False,
    speaker_of: Callable[[str], Hashable] | None = None,
) -> tuple[list[tuple[str, Path]], list[tuple[str, str]]]:
    """Best paths of audio files, and the ``(path, error message)`` of the files that failed.

    Parameters as for :func:`decode_files`; failures are in input order.
    """
    import soundfile  # durations only; lazily, like the front end

    from ..datasets import speaker_of as default_speaker_of
    from ..features import extract_features, extract_many

    config = model.get_feature_config() if feature_config is None else feature_config
    g = make_graph(model, graph, words, insertion_penalty, lm_scale)
    feats, failures = extract_many(audio_paths, config, n_jobs=n_jobs, progress=progress,
                                   speaker_of=speaker_of or default_speaker_of)
    if failures and not skip_errors:
        extract_features(failures[0][0], config)  # raises the file's own error
        raise GmmhmmError(f"{failures[0][0]}: {failures[0][1]}")
    weights = g.log_probs(*model.transition_log_probs())
    shift_s = config.shift_ms / 1000.0
    decoded = []
    for path, ll in zip(feats, model.state_log_likelihood_many(list(feats.values()))):
        info = soundfile.info(path)
        try:
            decoded.append((path, _best_path(model, ll, g, weights, beam, shift_s, info.frames / info.samplerate)))
        except SequenceTooShortError as exc:
            if not skip_errors:
                raise
            logger.warning("skipping %s: %s", path, exc)
            failures.append((path, str(exc)))
    order = {os.fspath(p): k for k, p in enumerate(audio_paths)}
    return decoded, sorted(failures, key=lambda f: order[f[0]])


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
    n_jobs: int = 1,
    progress: bool = False,
    speaker_of: Callable[[str], Hashable] | None = None,
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
    n_jobs, progress : feature extraction processes (-1: all CPUs) and progress bar,
        as for :func:`gmmhmm.features.extract_many`
    speaker_of : callable path -> speaker, optional
        Groups the files for ``cmvn='speaker'``; defaults to :func:`gmmhmm.datasets.speaker_of`
        (FSDD file name, else folder).

    Returns
    -------
    list of ``(path, [(token, start_s, end_s), ...], score)``
    """
    if isinstance(model_path_or_models, PhoneModelSet):
        model = model_path_or_models
    else:
        from ..modelfile import load

        model = load(model_path_or_models)
        if not isinstance(model, PhoneModelSet):
            raise InvalidParameterError(
                f"{os.fspath(model_path_or_models)} holds a {type(model).__name__}, not a PhoneModelSet")
    decoded, _ = _decode_audio(model, audio_paths, graph, words, insertion_penalty, lm_scale, beam, feature_config,
                               skip_errors, n_jobs, progress, speaker_of)
    return [(path, [(s.label, s.start_s, s.end_s) for s in best.words if s.label not in drop], best.score)
            for path, best in decoded]
