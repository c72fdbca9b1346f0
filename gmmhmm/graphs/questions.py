"""Questions for decision trees: sets of phones asked of a left or right context.

Two sources, used together as HTK's ``QS`` lists and Kaldi's
``questions.int`` are:

* phonetic classes from a ``PHONE<TAB>class`` file such as
  ``cmudict.phones`` (vowel, stop, nasal, ...): :func:`read_phone_classes`,
  :func:`class_questions`;
* classes found from the data by clustering phones bottom-up on their
  single-Gaussian statistics (Kaldi's ``cluster-phones``):
  :func:`cluster_questions`, every cluster formed on the way (singletons
  included) is a question.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from .._textio import read_text_input
from ..errors import InvalidInputError
from .tree_build import gaussian_log_likelihood
from .tree_stats import TreeStats


def read_phone_classes(path: str | os.PathLike) -> dict[str, list[str]]:
    """``PHONE<TAB>class`` lines -> ``{class: [phones]}`` (file order).

    Raises
    ------
    InvalidInputError
        A line does not have exactly two fields.
    """
    classes: dict[str, list[str]] = {}
    for lineno, line in enumerate(read_text_input(path, "phone classes").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise InvalidInputError(f"{path}:{lineno}: expected 'PHONE<TAB>class', got {line.rstrip()!r}")
        classes.setdefault(fields[1], []).append(fields[0])
    return classes


def class_questions(classes: Mapping[str, Iterable[str]], phones: Sequence[str]) -> list[frozenset[str]]:
    """One question per class, restricted to ``phones`` (empty ones dropped)."""
    known = set(phones)
    out = [frozenset(set(members) & known) for members in classes.values()]
    return [q for q in dict.fromkeys(out) if q]


def phone_state_stats(stats: TreeStats, phones: Sequence[str], n_states: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Statistics summed over contexts per (phone, state): ``n (P, S)``, ``s1, s2 (P, S, D)``."""
    P, D = len(phones), stats.gaussian.n_features
    keys = stats.key_indices(phones, n_states)
    rows = keys[:, 1] * n_states + keys[:, 3]
    n = np.bincount(rows, stats.gaussian.n, minlength=P * n_states)
    s1 = np.zeros((P * n_states, D))
    s2 = np.zeros((P * n_states, D))
    np.add.at(s1, rows, stats.gaussian.s1)
    np.add.at(s2, rows, stats.gaussian.s2)
    return n.reshape(P, n_states), s1.reshape(P, n_states, D), s2.reshape(P, n_states, D)


def cluster_questions(stats: TreeStats, phones: Sequence[str], n_states: int,
                      var_floor: float | np.ndarray = 1e-3) -> list[frozenset[str]]:
    """Phone sets from agglomerative clustering of the phones seen in ``stats``.

    Each phone starts as a cluster holding its per-state statistics (all
    contexts pooled); the two clusters whose merge loses the least
    single-Gaussian log-likelihood (summed over the states) merge, until one
    is left. Every cluster but the last is a question.
    """
    n, s1, s2 = phone_state_stats(stats, phones, n_states)
    seen = [p for p in range(len(phones)) if n[p].sum() > 0]
    clusters = {p: (frozenset([phones[p]]), n[p], s1[p], s2[p]) for p in seen}

    def loglik(c) -> float:
        return float(gaussian_log_likelihood(c[1], c[2], c[3], var_floor).sum())

    ll = {k: loglik(c) for k, c in clusters.items()}
    out = [c[0] for c in clusters.values()]
    next_id = len(phones)
    while len(clusters) > 1:
        keys = list(clusters)
        best = None
        for a in range(len(keys)):
            for b in range(a + 1, len(keys)):
                ca, cb = clusters[keys[a]], clusters[keys[b]]
                merged = (ca[0] | cb[0], ca[1] + cb[1], ca[2] + cb[2], ca[3] + cb[3])
                loss = ll[keys[a]] + ll[keys[b]] - loglik(merged)
                if best is None or loss < best[0]:
                    best = (loss, keys[a], keys[b], merged)
        _, ka, kb, merged = best
        del clusters[ka], clusters[kb], ll[ka], ll[kb]
        clusters[next_id], ll[next_id] = merged, loglik(merged)
        next_id += 1
        if len(clusters) > 1:
            out.append(merged[0])
    return out
