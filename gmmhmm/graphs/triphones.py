"""Tied-state triphones from monophones (Kaldi's ``train_deltas.sh`` tri1 step, HTK's HHEd ``TB`` stage).

::

    model, history = train_triphones(mono, features, transcripts, max_leaves=500)

1. align the training data with the monophones and accumulate tree
   statistics per triphone state (:func:`.tree_stats.accumulate_tree_stats`);
2. questions: phone classes (e.g. ``cmudict.phones``) plus clusters of the
   phones' own Gaussians (:mod:`.questions`);
3. grow the trees (:func:`.tree_build.build_tree`);
4. one Gaussian per leaf from the tree statistics, self-loops from the
   monophone state (:func:`init_tied_model`);
5. embedded Baum-Welch through cross-word triphone graphs and mix-up
   (:class:`.training.EmbeddedTrainer`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import DimensionMismatchError, InvalidInputError
from .models import PhoneModelSet
from .questions import class_questions, cluster_questions
from .training import EmbeddedTrainer
from .tree import TreeContext
from .tree_build import build_tree
from .tree_stats import TreeStats, accumulate_tree_stats

logger = logging.getLogger(__name__)


def init_tied_model(aligner: PhoneModelSet, tree: TreeContext, stats: TreeStats) -> PhoneModelSet:
    """A one-Gaussian model over the tree's pdfs (Kaldi's ``gmm-init-model``).

    Each leaf's Gaussian is the ML Gaussian of the tree statistics of the
    contexts that reach it (variances floored at the aligning model's
    floor); a leaf without data (a phone state never aligned) takes the
    Gaussian of its phone state in ``aligner`` (monophones, or the states of
    a tied model pooled). Self-loops come from the aligner's phone state.
    """
    if (tree.phones, tree.n_states) != (aligner.phones, aligner.n_states):
        raise InvalidInputError("the tree's phones and states differ from the aligning model's")
    D, S = aligner.n_features, aligner.n_states
    g = stats.gaussian
    if g.n_features != D:  # one context of 1-dim statistics would broadcast into every dimension
        raise DimensionMismatchError(f"tree statistics of {g.n_features} features, but the aligning model has {D}")
    stats.key_indices(tree.phones, S)  # a state past the last is refused by name
    rows = np.array([tree.pdfs(l, p, r)[j] for l, p, r, j in stats.keys], dtype=np.int64)
    n = np.bincount(rows, g.n, minlength=tree.n_pdfs) if len(rows) else np.zeros(tree.n_pdfs)
    s1, s2 = np.zeros((tree.n_pdfs, D)), np.zeros((tree.n_pdfs, D))
    np.add.at(s1, rows, g.s1)
    np.add.at(s2, rows, g.s2)
    # the aligner's Gaussian and self-loop of each phone state: moments of its mixtures, pooled
    # evenly over its pdfs of that phone state
    w = aligner.weights_
    mu = aligner.means_.reshape(-1, aligner.n_mix, D)
    var = aligner.covars_.reshape(-1, aligner.n_mix, D)
    owner = np.array([p * S + j for p, j in aligner.context.pdf_phone_states()])
    count = np.bincount(owner, minlength=len(aligner.phones) * S)[:, None]
    mean = _pool(np.einsum("km,kmd->kd", w, mu), owner, count)
    second = _pool(np.einsum("km,kmd->kd", w, var + mu**2), owner, count)
    loop = _pool(aligner.self_loop_[:, None], owner, count)[:, 0]
    state = np.array([p * S + j for p, j in tree.pdf_phone_states()])
    has = n > 0
    safe = np.where(has, n, 1.0)[:, None]
    means = np.where(has[:, None], s1 / safe, mean[state])
    covars = np.where(has[:, None], s2 / safe - (s1 / safe) ** 2, second[state] - mean[state] ** 2)
    model = PhoneModelSet(aligner.phones, S, 1, aligner.lexicon_text, aligner.feature_config, context=tree)
    model.weights_ = np.ones((tree.n_pdfs, 1))
    model.means_ = means
    model.covars_ = np.maximum(covars, aligner.var_floor_)
    model.self_loop_ = loop[state]
    model.var_floor_ = aligner.var_floor_.copy()
    logger.info("tied model: %d pdfs (%d without data, from the aligning model)", tree.n_pdfs, int((~has).sum()))
    return model


def _pool(values: np.ndarray, owner: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Mean of ``values`` (n_pdfs, D) over the pdfs of each phone state."""
    out = np.zeros((len(count), values.shape[1]))
    np.add.at(out, owner, values)
    return out / np.maximum(count, 1)


def triphone_questions(stats: TreeStats, phones: Sequence[str], n_states: int,
                       phone_classes: Mapping[str, Sequence[str]] | None = None,
                       var_floor: float | np.ndarray = 1e-3) -> list[frozenset[str]]:
    """Phone-class questions (if given) followed by the data-driven clusters, duplicates removed."""
    qs = class_questions(phone_classes, phones) if phone_classes else []
    qs += cluster_questions(stats, phones, n_states, var_floor)
    return list(dict.fromkeys(qs))


def train_triphones(mono: PhoneModelSet, features: Sequence[np.ndarray], transcripts: Sequence[Sequence[str]],
                    *, phone_classes: Mapping[str, Sequence[str]] | None = None, min_occupancy: float = 100.0,
                    gain_threshold: float = 0.0, max_leaves: int | None = 500,
                    mixtures: Sequence[int] = (1, 2, 4), n_iter: int | Sequence[int] = (4, 3, 3),
                    sil_prob: float = 0.5, var_floor_frac: float = 0.01,
                    min_gaussian_occupancy: float = 2.0) -> tuple[PhoneModelSet, list[float]]:
    """Tied-state triphones from a trained monophone model (Kaldi tri1).

    Parameters
    ----------
    mono : PhoneModelSet
        Trained monophones; they align the data for the tree statistics.
    features, transcripts : the training data (as for :meth:`EmbeddedTrainer.fit`)
    phone_classes : ``{class: [phones]}`` questions (see :func:`.questions.read_phone_classes`)
    min_occupancy, gain_threshold, max_leaves : tree growing (:func:`.tree_build.build_tree`)
    mixtures, n_iter : the re-estimation and mix-up schedule of the tied model
    sil_prob, var_floor_frac, min_gaussian_occupancy : :class:`EmbeddedTrainer` settings

    Returns
    -------
    model : PhoneModelSet whose ``context`` is the tree
    history : average log-likelihood per frame of the monophone alignment
        (first; a Viterbi score) and of every E-step of the tied model
    """
    stats = accumulate_tree_stats(mono, features, transcripts, sil_prob)
    if stats.n_frames == 0:
        raise InvalidInputError("no utterance could be aligned to its transcript; no tree statistics")
    floor = mono.var_floor_
    questions = triphone_questions(stats, mono.phones, mono.n_states, phone_classes, floor)
    silence = mono.context.silence
    tree = build_tree(stats, questions, mono.phones, mono.n_states, silence, min_occupancy=min_occupancy,
                      gain_threshold=gain_threshold, max_leaves=max_leaves, var_floor=floor)
    trainer = EmbeddedTrainer(mono.lexicon, mono.n_states, sil_prob, var_floor_frac, min_gaussian_occupancy,
                              mono.feature_config)
    trainer.model = init_tied_model(mono, tree, stats)
    history = [stats.log_likelihood / stats.n_frames]
    history += trainer.fit(features, transcripts, mixtures=mixtures, n_iter=n_iter, flat_start=False)
    return trainer.model, history
