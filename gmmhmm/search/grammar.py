"""Grammars: word-level automata with null (history) nodes, like Kaldi's ``G.fst``.

A :class:`Grammar` has nodes and arcs; a *word arc* ``src -> dst`` carries a
word and its natural-log grammar probability, an *epsilon arc* (``word is
None``) carries only a log weight (an n-gram backoff). Nodes with a final
weight may end the utterance. :func:`gmmhmm.search.compile_graph` expands each
word arc into its pronunciations' phone-model states, so a grammar with ``W``
word arcs compiles to O(W) arcs: a word loop is V arcs, an n-gram LM one arc
per n-gram plus one backoff arc per history, never V² word-to-word links.

N-gram LMs (:func:`ngram_grammar`) follow Kaldi's ``arpa2fst``: one node per
LM history ``h`` (an n-gram that starts a longer one, plus the empty history);
for each n-gram ``h w`` a word arc ``h -> h'`` with ``log p(w | h)``, ``h'``
the longest suffix of ``h w`` that is a history; from each history a backoff
arc to its longest proper suffix with ``log bo(h)``; the final weight of ``h``
is ``log p(</s> | h)`` (backed off exactly). The search starts in ``<s>``.
As in Kaldi, the Viterbi search takes the better of an explicit n-gram and its
backoff path, which for a well-formed LM is the explicit one.
"""

from __future__ import annotations

import logging
import math
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import InvalidParameterError
from ..lm.model import BOS as SENTENCE_START, EOS as SENTENCE_END, LOG10_ZERO as ARPA_LOG10_ZERO, UNK_SPELLINGS

logger = logging.getLogger(__name__)

LN10 = math.log(10.0)
#: Unknown-word tokens have no pronunciation and are left out of the grammar.
UNKNOWN_WORDS = frozenset(UNK_SPELLINGS)


@dataclass
class Grammar:
    """Word-level automaton over null nodes.

    Attributes
    ----------
    n_nodes : int
    arcs : list of (src, dst, word or None, log weight)
        Natural-log grammar weights (scaled by the LM scale when compiled);
        ``word=None`` is an epsilon (backoff) arc.
    start : int
    final : dict node -> log weight
    silence_nodes : set of int
        Nodes after which an optional silence may be inserted.
    """

    n_nodes: int
    arcs: list[tuple[int, int, str | None, float]] = field(default_factory=list)
    start: int = 0
    final: dict[int, float] = field(default_factory=dict)
    silence_nodes: set[int] = field(default_factory=set)

    @property
    def words(self) -> list[str]:
        """Distinct words on arcs, in first-appearance order."""
        return list(dict.fromkeys(w for _, _, w, _ in self.arcs if w is not None))

    def check(self) -> None:
        """Raise :class:`InvalidParameterError` for a node outside ``0 .. n_nodes - 1`` (node -1
        would silently be the last one) or a NaN or +inf log weight (no probability)."""
        named = ([("start", self.start)] + [(f"arc {k}", g) for k, a in enumerate(self.arcs) for g in a[:2]]
                 + [("final weight", g) for g in self.final] + [("silence node", g) for g in self.silence_nodes])
        for what, g in named:
            if not _is_node(g, self.n_nodes):
                raise InvalidParameterError(f"grammar {what}: node {g!r} is not one of 0 .. {self.n_nodes - 1}")
        for what, w in [(f"arc {k}", a[3]) for k, a in enumerate(self.arcs)] + [
                (f"final weight of node {g}", w) for g, w in self.final.items()]:
            if math.isnan(w) or w == math.inf:
                raise InvalidParameterError(f"grammar {what}: log weight {w} is not a log probability")


def _is_node(g: object, n_nodes: int) -> bool:
    try:
        return 0 <= operator.index(g) < n_nodes
    except TypeError:  # not an integer
        return False


def word_loop(words: Sequence[str], silence: bool = True) -> Grammar:
    """Any sequence of ``words``, each with probability ``1/len(words)``.

    One loop node that words leave and re-enter, so the grammar has
    ``len(words)`` arcs. With ``silence``, optional silence between words and
    at both ends.
    """
    words = _check_words(words)
    lp = -math.log(len(words))
    return Grammar(n_nodes=1, arcs=[(0, 0, w, lp) for w in words], start=0, final={0: 0.0},
                   silence_nodes={0} if silence else set())


def word_list(words: Sequence[str], silence: bool = True) -> Grammar:
    """Exactly one of ``words`` (isolated-word recognition), optional silence before and after."""
    words = _check_words(words)
    lp = -math.log(len(words))
    return Grammar(n_nodes=2, arcs=[(0, 1, w, lp) for w in words], start=0, final={1: 0.0},
                   silence_nodes={0, 1} if silence else set())


def _check_words(words: Iterable[str]) -> list[str]:
    words = list(dict.fromkeys(words))
    if not words:
        raise InvalidParameterError("a grammar needs at least one word")
    return words


class NGramLike(Protocol):
    """What :func:`ngram_grammar` needs of :class:`gmmhmm.lm.NGramModel`."""

    order: int
    ngrams: list[dict[tuple[str, ...], tuple[float, float]]]

    def log_prob(self, word: str, history: tuple[str, ...]) -> float: ...


def ngram_grammar(lm: NGramLike, silence: bool = True) -> Grammar:
    """Backoff automaton of an ARPA n-gram model (see the module docstring).

    ``<unk>`` n-grams are left out (they have no pronunciation).
    """
    ngrams = lm.ngrams
    if not ngrams or not ngrams[0]:
        raise InvalidParameterError("the language model has no unigrams")
    # a history is any context that can change a later probability: a proper prefix of a
    # listed n-gram, or an n-gram shorter than the order with a backoff weight
    histories: set[tuple[str, ...]] = {()}
    for n, table in enumerate(ngrams, 1):
        for gram, (_, log10_bo) in table.items():
            histories.update(gram[:i] for i in range(1, n))
            if n < lm.order and log10_bo != 0.0:
                histories.add(gram)
    histories = {h for h in histories if not UNKNOWN_WORDS.intersection(h)}
    ordered = sorted(histories, key=lambda h: (len(h), h))
    node = {h: i for i, h in enumerate(ordered)}

    def state(context: tuple[str, ...]) -> int:
        # the longest suffix that is a history (none is longer than order - 1 words)
        while context not in node:
            context = context[1:]
        return node[context]

    g = Grammar(n_nodes=len(ordered))
    for table in ngrams:
        for gram, (log10_p, _) in table.items():
            h, w = gram[:-1], gram[-1]
            if w in (SENTENCE_START, SENTENCE_END) or UNKNOWN_WORDS.intersection(gram) or h not in node:
                continue
            if log10_p <= ARPA_LOG10_ZERO:
                continue  # probability zero
            g.arcs.append((node[h], state(gram), w, LN10 * log10_p))
    for h in ordered:
        if h:
            bo = ngrams[len(h) - 1].get(h, (0.0, 0.0))[1]
            if bo > ARPA_LOG10_ZERO:
                g.arcs.append((node[h], state(h[1:]), None, LN10 * bo))
        final = lm.log_prob(SENTENCE_END, h)
        if math.isfinite(final):
            g.final[node[h]] = final
    g.start = state((SENTENCE_START,))
    if not g.final:
        raise InvalidParameterError("the language model gives </s> probability zero after every history")
    if silence:
        g.silence_nodes = set(range(g.n_nodes))
    logger.info("n-gram grammar: %d histories, %d arcs", g.n_nodes, len(g.arcs))
    return g
