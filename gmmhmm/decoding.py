"""Decoding audio with phone models: front end -> log-likelihoods -> search.

This application-layer module does the I/O the search layer must not do:
it reads audio through the front end, scores it with a
:class:`~gmmhmm.graphs.PhoneModelSet` and hands the log-likelihood matrices
to :func:`gmmhmm.search.decode`. The CLI (``gmmhmm decode``) and the recipes
call it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .errors import GmmhmmError, InvalidParameterError, SequenceTooShortError
from .data.datadir import AudioSpan, audio_source_name
from .data.lexicon import Lexicon
from .graphs.models import PhoneModelSet
from .search import (DecodeResult, DecodingGraph, SearchOptions, compile_graph, decode, ngram_grammar, word_list,
                     word_loop)

if TYPE_CHECKING:  # the front end is imported lazily, when audio is decoded
    from .features.cmvn import Utt2Spk

logger = logging.getLogger(__name__)

#: Grammars :func:`decoding_graph` builds by name.
GRAPHS = ("phone-loop", "word-loop", "words", "lm")


def phone_lexicon(phones: Sequence[str], silence: str | None = None) -> Lexicon:
    """Each phone a word pronounced as itself, ``silence`` (default: the last phone) the silence:
    the lexicon of phone recognition (a phone loop, or a phone n-gram through
    ``decoding_graph(..., 'lm')``)."""
    return Lexicon.from_text("".join(f"{p} {p}\n" for p in phones), "phones",
                             silence=phones[-1] if silence is None else silence)


def decoding_graph(model: PhoneModelSet, graph: str = "word-loop", lexicon: Lexicon | None = None, lm=None,
                   words: Sequence[str] | None = None, silence_prob: float = 0.5) -> DecodingGraph:
    """A decoding graph for ``model`` by name.

    Parameters
    ----------
    model : PhoneModelSet
        Gives the phones, states per phone and transition probabilities, and
        its context dependency (``model.context``, when it has one: a triphone
        model decodes with cross-word triphone graphs).
    graph : {'phone-loop', 'word-loop', 'words', 'lm'}
        Free phone loop (phone recognition; silence is one of the phones),
        any word sequence, exactly one word, or the n-gram model ``lm``
        (:class:`gmmhmm.lm.NGramModel`; ``lm`` given implies ``'lm'``).
    lexicon : Lexicon, optional
        Defaults to the lexicon stored in the model.
    words : restrict ``'words'`` and ``'word-loop'`` to these lexicon words
    silence_prob : float
        Probability of the optional silence between words (not in a phone loop).
    """
    lexicon = model.lexicon if lexicon is None else lexicon
    context = getattr(model, "context", None)
    if lm is not None:
        graph = "lm"
    if graph not in GRAPHS:
        raise InvalidParameterError(f"graph must be one of {list(GRAPHS)}, got {graph!r}")
    if graph == "phone-loop":
        lexicon = phone_lexicon(model.phones, None if context is None else context.silence)
        grammar = word_loop(model.phones, silence=False)
    elif graph == "lm":
        if lm is None:
            raise InvalidParameterError("graph 'lm' needs a language model")
        grammar = ngram_grammar(lm)
    else:
        vocabulary = list(lexicon.words if words is None else words)
        grammar = word_loop(vocabulary) if graph == "word-loop" else word_list(vocabulary)
    return compile_graph(grammar, lexicon, model.transition_log_probs(), model.n_states, model.phones, silence_prob,
                         context)


def decode_many(graph: DecodingGraph, log_likelihoods: Sequence[np.ndarray],
                options: SearchOptions | None = None) -> list[DecodeResult]:
    """:func:`gmmhmm.search.decode` of many utterances, the arc weights computed once; an
    utterance whose every path the beam prunes raises (:func:`decode_adapted` and the CLI skip
    and report it instead)."""
    out, _ = _search_all(graph, dict(enumerate(log_likelihoods)), SearchOptions() if options is None else options,
                         skip_errors=False)
    return list(out.values())


@dataclass
class AdaptedDecoding:
    """Results of :func:`decode_adapted`, keyed by utterance id.

    Attributes
    ----------
    first : {utt: DecodeResult} speaker-independent first pass
    adapted : {utt: DecodeResult} the pass with every speaker's fMLLR transform (an utterance whose
        every path the beam pruned is missing from a pass)
    transforms : {speaker: (D, D+1)} (utterance id for one without a speaker; a speaker whose statistics fell below ``min_count`` has none)
    """

    first: dict
    adapted: dict
    transforms: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)


def _search_all(graph: DecodingGraph, lls: dict, options: SearchOptions, skip_errors: bool = True
                ) -> tuple[dict, dict[str, str]]:
    """1-best result of every utterance, and the error message of those whose every path the
    beam pruned (a warning each; ``skip_errors=False`` raises instead)."""
    weights = graph.arc_weights(options)
    out, errors = {}, {}
    for u, ll in lls.items():
        try:
            out[u] = decode(graph, ll, options, weights)
        except SequenceTooShortError as exc:
            if not skip_errors:
                raise
            logger.warning("skipping %s: %s", u, exc)
            errors[u] = str(exc)
    return out, errors


def decode_adapted(model: PhoneModelSet, graph: DecodingGraph, features: Mapping[str, np.ndarray],
                   utt2spk: Mapping[str, str] | None = None, options: SearchOptions | None = None,
                   lexicon: Lexicon | None = None, silence_weight: float = 0.01, sil_prob: float = 0.5,
                   n_passes: int = 1, fmllr_n_iters: int = 10, min_count: float = 20.0,
                   skip_errors: bool = True, first_pass: Mapping[str, DecodeResult] | None = None,
                   si_model: PhoneModelSet | None = None, update_type: str = "full") -> AdaptedDecoding:
    """Unsupervised fMLLR (Kaldi ``decode_fmllr.sh``): decode, adapt per speaker, decode again.

    Each speaker's transform is estimated from forward-backward of its
    utterances through the composite HMMs of their first-pass hypotheses
    (silence posteriors scaled by ``silence_weight``), and the utterances are
    decoded again with transformed features. ``n_passes`` > 1 repeats the
    estimate from the latest hypotheses.

    Parameters
    ----------
    model : PhoneModelSet (speaker independent, or trained with :func:`gmmhmm.adapt.train_sat`)
    graph : DecodingGraph (:func:`decoding_graph`)
    features : {utt: (T, D)} features as the model takes them
    utt2spk : {utt: speaker}; an utterance it lacks is its own speaker (named by its id)
    options : SearchOptions
    lexicon : the lexicon the graph was compiled with (default: the model's;
        :func:`phone_lexicon` for a phone loop)
    silence_weight, sil_prob : silence posterior scale; optional-silence probability of the
        hypothesis HMMs
    n_passes, fmllr_n_iters, min_count : adaptation passes; row-update passes and least occupancy
        of :func:`gmmhmm.adapt.estimate_fmllr`
    skip_errors : an utterance whose every path the beam prunes is left out with a warning
        (False: its :class:`~gmmhmm.errors.SequenceTooShortError` is raised)
    first_pass : {utt: DecodeResult}, optional
        Hypotheses to adapt from instead of a first pass.
    si_model : PhoneModelSet, optional
        Scores the first pass instead of ``model`` (same pdfs; ``graph`` is used as is): the
        speaker-independent model when ``model`` was trained with SAT (Kaldi's ``final.alimdl``).
    update_type : {'full', 'diag', 'offset'}
        Transform family (:func:`gmmhmm.adapt.estimate_fmllr`); 'diag' or 'offset' for little data.
    """
    from .adapt import apply_speaker_transforms, estimate_speaker_transforms, speaker_fmllr_stats, transcript_graph
    from .errors import TranscriptError

    options = SearchOptions() if options is None else options
    utts = list(features)
    speakers = [(utt2spk or {}).get(u, u) for u in utts]
    feats = [features[u] for u in utts]
    first_model = model if si_model is None else si_model
    if first_model.n_pdfs != model.n_pdfs or first_model.n_features != model.n_features:
        raise InvalidParameterError(f"the first-pass model has {first_model.n_pdfs} pdfs of {first_model.n_features} "
                                    f"features, the adapted one {model.n_pdfs} of {model.n_features}")
    if first_pass is None:
        first, errors = _search_all(graph, dict(zip(utts, first_model.state_log_likelihood_many(feats))), options,
                                    skip_errors)
    else:
        first, errors = {u: first_pass[u] for u in utts if u in first_pass}, {}
    hyps, transforms = first, {}
    for _ in range(n_passes):
        graphs = []
        for u in utts:
            try:
                graphs.append(transcript_graph(model, hyps[u].words, lexicon, sil_prob) if u in hyps
                              and hyps[u].words else None)
            except (TranscriptError, InvalidParameterError) as exc:
                logger.warning("%s: hypothesis not usable for adaptation: %s", u, exc)
                graphs.append(None)
        stats = speaker_fmllr_stats(model, feats, graphs, speakers, transforms, silence_weight)
        transforms = estimate_speaker_transforms(stats, transforms, fmllr_n_iters, min_count, update_type)
        adapted = apply_speaker_transforms(feats, speakers, transforms)
        hyps, errors = _search_all(graph, dict(zip(utts, model.state_log_likelihood_many(adapted))), options,
                                   skip_errors)
    return AdaptedDecoding(first, hyps, transforms, errors)


def decode_audio(
    model: PhoneModelSet,
    audio_paths: Sequence[str | os.PathLike | AudioSpan],
    graph: DecodingGraph,
    options: SearchOptions | None = None,
    feature_config=None,
    skip_errors: bool = True,
    n_jobs: int = 1,
    progress: bool = False,
    utt2spk: Utt2Spk | None = None,
    fmllr: bool = False,
    lexicon: Lexicon | None = None,
    silence_weight: float = 0.01,
    si_model: PhoneModelSet | None = None,
    fmllr_update_type: str = "full",
    vtln_warps: Mapping[str, float] | None = None,
) -> tuple[list[tuple[str, DecodeResult]], list[tuple[str, str]]]:
    """Search results of audio files, and the ``(path, error message)`` of the files that failed.

    Parameters as for :func:`decode_files`; ``audio_paths`` may also hold
    :class:`~gmmhmm.data.AudioSpan` stretches (Kaldi ``segments``), reported
    under ``span.name``; ``vtln_warps`` (keyed like them) is each file's VTLN
    warp, as in :func:`gmmhmm.features.extract_many`. Failures are in input order.
    """
    from .features import extract_features, extract_many

    options = SearchOptions() if options is None else options
    config = model.get_feature_config() if feature_config is None else feature_config
    feats, failures = extract_many(audio_paths, config, n_jobs=n_jobs, progress=progress, utt2spk=utt2spk,
                                   vtln_warps=vtln_warps)
    if failures and not skip_errors:
        first = next(p for p in audio_paths if audio_source_name(p) == failures[0][0])
        extract_features(first, config.replace(vtln_warp=(vtln_warps or {}).get(failures[0][0], config.vtln_warp)))
        # (raises the file's own error)
        raise GmmhmmError(f"{failures[0][0]}: {failures[0][1]}")
    feats = {p: model.transform_features(X) for p, X in feats.items()}  # the stored LDA+MLLT, if any
    if fmllr:
        from .features.cmvn import _speaker_lookup

        speaker = _speaker_lookup(utt2spk)
        out = decode_adapted(model, graph, feats, {p: speaker(p) for p in feats}, options, lexicon,
                             silence_weight, skip_errors=skip_errors, si_model=si_model,
                             update_type=fmllr_update_type)
        results, errors = out.adapted, out.errors
    else:
        results, errors = _search_all(graph, dict(zip(feats, model.state_log_likelihood_many(list(feats.values())))),
                                      options, skip_errors)
    decoded = [(path, results[path]) for path in feats if path in results]
    failures += list(errors.items())
    order = {audio_source_name(p): k for k, p in enumerate(audio_paths)}
    return decoded, sorted(failures, key=lambda f: order[f[0]])


def decode_files(
    model_path_or_models: str | os.PathLike | PhoneModelSet,
    audio_paths: Sequence[str | os.PathLike],
    graph: str = "phone-loop",
    words: Sequence[str] | None = None,
    options: SearchOptions | None = None,
    lexicon: Lexicon | None = None,
    lm=None,
    feature_config=None,
    skip_errors: bool = True,
    n_jobs: int = 1,
    progress: bool = False,
    utt2spk: Utt2Spk | None = None,
    fmllr: bool = False,
) -> list[tuple[str, list[tuple[str, float, float]], float]]:
    """Decode audio files with phone models.

    Parameters
    ----------
    model_path_or_models : path to a model file saved with :func:`gmmhmm.save`, or a PhoneModelSet
    audio_paths : audio files
    graph : {'phone-loop', 'word-loop', 'words', 'lm'}
        See :func:`decoding_graph`.
    words : restrict ``'words'`` / ``'word-loop'`` to these lexicon words
    options : SearchOptions
        Beam, histogram pruning, word (phone, in a phone loop) insertion penalty, LM scale.
    lexicon : Lexicon, optional; defaults to the model's
    lm : gmmhmm.lm.NGramModel, optional; implies ``graph='lm'``
    feature_config : FeatureConfig, optional; defaults to the one stored in the model
    skip_errors : a bad audio file (unreadable, empty, too short, ...) is logged as a warning
        and left out of the result; False raises its :class:`~gmmhmm.errors.GmmhmmError`
    n_jobs, progress : feature extraction processes (-1: all CPUs) and progress bar,
        as for :func:`gmmhmm.features.extract_many`
    utt2spk : mapping or function path -> speaker, optional
        Speakers for ``cmvn='speaker'`` (Kaldi's utt2spk, keyed by ``os.fspath(path)``);
        without it each file is its own speaker, so a file decodes the same alone or in a batch.
    fmllr : decode twice, the second time with a per-speaker (``utt2spk``) fMLLR transform
        estimated from the first pass's hypotheses (:func:`decode_adapted`)

    Returns
    -------
    list of ``(path, [(word, start_s, end_s), ...], score)``; silence is left out.
    """
    if isinstance(model_path_or_models, PhoneModelSet):
        model = model_path_or_models
    else:
        from .modelfile import load

        model = load(model_path_or_models)
        if not isinstance(model, PhoneModelSet):
            raise InvalidParameterError(
                f"{os.fspath(model_path_or_models)} holds a {type(model).__name__}, not a PhoneModelSet")
    config = model.get_feature_config() if feature_config is None else feature_config
    g = decoding_graph(model, graph, lexicon, lm, words)
    decoded, _ = decode_audio(model, audio_paths, g, options, config, skip_errors, n_jobs, progress, utt2spk,
                              fmllr, phone_lexicon(model.phones, getattr(model.context, "silence", None))
                              if graph == "phone-loop" and lm is None else lexicon)
    shift_s = config.frame_shift_s
    drop = {model.phones[-1]}
    return [(path, [(s.word, s.start_frame * shift_s, s.end_frame * shift_s) for s in r.word_segments()
                    if s.word not in drop], r.score)
            for path, r in decoded]
