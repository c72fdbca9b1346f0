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
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .errors import GmmhmmError, InvalidParameterError, SequenceTooShortError
from .data.lexicon import Lexicon
from .graphs.models import PhoneModelSet
from .search import (DecodeResult, DecodingGraph, SearchOptions, compile_graph, decode, ngram_grammar, word_list,
                     word_loop)

if TYPE_CHECKING:  # the front end is imported lazily, when audio is decoded
    from .features.cmvn import Utt2Spk

logger = logging.getLogger(__name__)

#: Grammars :func:`decoding_graph` builds by name.
GRAPHS = ("phone-loop", "word-loop", "words", "lm")


def phone_lexicon(phones: Sequence[str]) -> Lexicon:
    """Each phone a word pronounced as itself, the last phone silence: the lexicon of phone
    recognition (a phone loop, or a phone n-gram through ``decoding_graph(..., 'lm')``)."""
    return Lexicon.from_text("".join(f"{p} {p}\n" for p in phones), "phones", silence=phones[-1])


def decoding_graph(model: PhoneModelSet, graph: str = "word-loop", lexicon: Lexicon | None = None, lm=None,
                   words: Sequence[str] | None = None, silence_prob: float = 0.5) -> DecodingGraph:
    """A decoding graph for ``model`` by name.

    Parameters
    ----------
    model : PhoneModelSet
        Gives the phones, states per phone and transition probabilities.
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
    if lm is not None:
        graph = "lm"
    if graph not in GRAPHS:
        raise InvalidParameterError(f"graph must be one of {list(GRAPHS)}, got {graph!r}")
    if graph == "phone-loop":
        lexicon = phone_lexicon(model.phones)
        grammar = word_loop(model.phones, silence=False)
    elif graph == "lm":
        if lm is None:
            raise InvalidParameterError("graph 'lm' needs a language model")
        grammar = ngram_grammar(lm)
    else:
        vocabulary = list(lexicon.words if words is None else words)
        grammar = word_loop(vocabulary) if graph == "word-loop" else word_list(vocabulary)
    return compile_graph(grammar, lexicon, model.transition_log_probs(), model.n_states, model.phones, silence_prob)


def decode_many(graph: DecodingGraph, log_likelihoods: Sequence[np.ndarray],
                options: SearchOptions | None = None) -> list[DecodeResult]:
    """:func:`gmmhmm.search.decode` of many utterances, the arc weights computed once."""
    options = SearchOptions() if options is None else options
    weights = graph.arc_weights(options)
    return [decode(graph, ll, options, weights) for ll in log_likelihoods]


def decode_audio(
    model: PhoneModelSet,
    audio_paths: Sequence[str | os.PathLike],
    graph: DecodingGraph,
    options: SearchOptions | None = None,
    feature_config=None,
    skip_errors: bool = True,
    n_jobs: int = 1,
    progress: bool = False,
    utt2spk: Utt2Spk | None = None,
) -> tuple[list[tuple[str, DecodeResult]], list[tuple[str, str]]]:
    """Search results of audio files, and the ``(path, error message)`` of the files that failed.

    Parameters as for :func:`decode_files`; failures are in input order.
    """
    from .features import extract_features, extract_many

    options = SearchOptions() if options is None else options
    config = model.get_feature_config() if feature_config is None else feature_config
    feats, failures = extract_many(audio_paths, config, n_jobs=n_jobs, progress=progress, utt2spk=utt2spk)
    if failures and not skip_errors:
        extract_features(failures[0][0], config)  # raises the file's own error
        raise GmmhmmError(f"{failures[0][0]}: {failures[0][1]}")
    weights = graph.arc_weights(options)
    decoded = []
    for path, ll in zip(feats, model.state_log_likelihood_many(list(feats.values()))):
        try:
            decoded.append((path, decode(graph, ll, options, weights)))
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
    options: SearchOptions | None = None,
    lexicon: Lexicon | None = None,
    lm=None,
    feature_config=None,
    skip_errors: bool = True,
    n_jobs: int = 1,
    progress: bool = False,
    utt2spk: Utt2Spk | None = None,
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
    decoded, _ = decode_audio(model, audio_paths, g, options, config, skip_errors, n_jobs, progress, utt2spk)
    shift_s = config.frame_shift_s
    drop = {model.phones[-1]}
    return [(path, [(s.word, s.start_frame * shift_s, s.end_frame * shift_s) for s in r.word_segments()
                    if s.word not in drop], r.score)
            for path, r in decoded]
