"""Estimate back-off n-gram models from training sentences (SRILM ``ngram-count`` style).

Hand-written on purpose: no maintained pure-Python library serves. nltk.lm
estimates but writes no ARPA; the kenlm module only queries; arpabo's
Kneser-Ney leaves distributions unnormalised; kaldingram is Kaldi's
make_kn_lm.py script (non-interpolated KN only, no Witten-Bell).

Both methods are interpolated, as ``ngram-count -interpolate`` and KenLM
``lmplz`` estimate them::

    p(w|h) = alpha(h, w) + gamma(h) * p(w|h'),   h' = h without its first word

where the lowest order interpolates with the uniform distribution over the
vocabulary (every word but ``<s>``). The model is then written as a back-off
model: each n-gram seen in training gets ``p(w|h)`` above and each context
the back-off weight ``gamma(h)``, so the back-off path reproduces
``gamma(h) * p(w|h')`` for unseen words and every context's distribution sums
to 1 (``1 - sum_seen p(w|h) = gamma(h) * (1 - sum_seen p(w|h'))``).

- ``"witten-bell"``: ``alpha = c(h,w) / (c(h) + N1+(h))``,
  ``gamma = N1+(h) / (c(h) + N1+(h))`` with N1+(h) the number of distinct words
  seen after h (``ngram-count -wbdiscount -interpolate``).
- ``"kneser-ney"``: modified Kneser-Ney (Chen & Goodman): three discounts
  D1, D2, D3+ per order from the counts of counts; lower orders count distinct
  left contexts instead of occurrences, except n-grams starting with ``<s>``
  (``ngram-count -kndiscount -interpolate``, ``lmplz``); the discounts come
  from the modified counts, as SRILM's default does. Where counts of counts
  are too few for three discounts (tiny corpora; SRILM refuses them), one
  discount ``n1 / (n1 + 2 n2)`` is used and a warning logged.

All n-grams are kept (no count cut-offs: SRILM's ``-gt3min 1``); sentences
get one ``<s>`` and one ``</s>``.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from .._textio import is_word
from ..errors import InvalidInputError, InvalidParameterError
from .model import BOS, EOS, LOG10_ZERO, NGramModel

logger = logging.getLogger(__name__)

METHODS = ("witten-bell", "kneser-ney")
Ngram = tuple[str, ...]


def count_ngrams(sentences: Iterable[Sequence[str]], order: int) -> tuple[list[Counter], int]:
    """Raw counts of every 1..order-gram of ``<s> sentence </s>``; also the number of sentences.

    Empty sentences are skipped (as SRILM does); a sentence must be a sequence
    of words without spaces, tabs or line ends (other white space, e.g. U+00A0, is part of a
    word, as in Kaldi and SRILM), ``<s>`` or ``</s>``.
    """
    counts = [Counter() for _ in range(order)]
    n_sent = 0
    for i, sentence in enumerate(sentences):
        if isinstance(sentence, (str, bytes)):
            raise InvalidInputError(f"sentence {i} is a string ({sentence[:40]!r}); pass a sequence of words")
        words = list(sentence)
        for w in words:
            if not isinstance(w, str) or not is_word(w) or w in (BOS, EOS):
                raise InvalidInputError(f"sentence {i}: {w!r} is not a word (one token without spaces; "
                                        f"{BOS} and {EOS} are added)")
        if not words:
            continue
        n_sent += 1
        tokens = [BOS] + words + [EOS]
        for n in range(1, order + 1):
            table = counts[n - 1]
            for j in range(len(tokens) - n + 1):
                table[tuple(tokens[j:j + n])] += 1
    return counts, n_sent


def _kneser_ney_counts(raw: list[Counter]) -> list[Counter]:
    """Highest order: raw counts; lower: distinct left extensions, raw for n-grams starting with <s>."""
    out = [Counter() for _ in raw]
    out[-1] = raw[-1]
    for n in range(len(raw) - 1, 0, -1):  # out[n-1] from raw[n]
        cont: Counter = Counter()
        for k in raw[n]:
            cont[k[1:]] += 1
        out[n - 1] = Counter({k: (c if k[0] == BOS else cont[k]) for k, c in raw[n - 1].items()})
    return out


def _kn_discounts(counts: Iterable[int], n: int) -> tuple[float, float, float]:
    """Chen & Goodman's D1, D2, D3+ from counts of counts; one D = n1/(n1+2n2) if they are degenerate."""
    coc = Counter(c for c in counts if c <= 4)
    n1, n2, n3, n4 = (coc[k] for k in (1, 2, 3, 4))
    if n1 and n2 and n3 and n4:
        y = n1 / (n1 + 2 * n2)
        d = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
        if all(0 < dk <= k + 1 for k, dk in enumerate(d)):
            return d
    d = n1 / (n1 + 2 * n2) if n1 and n2 else 0.5
    logger.warning("order %d: counts of counts %s too few for modified Kneser-Ney; one discount D=%.3g",
                   n, (n1, n2, n3, n4), d)
    return (d, d, d)


def _by_context(table: Counter) -> dict[Ngram, dict[str, int]]:
    grouped: dict[Ngram, dict[str, int]] = defaultdict(dict)
    for k in sorted(table):
        grouped[k[:-1]][k[-1]] = table[k]
    return grouped


def estimate(sentences: Iterable[Sequence[str]], order: int = 2, method: str = "witten-bell",
             vocab: Iterable[str] | None = None) -> NGramModel:
    """Estimate an interpolated n-gram model (written as back-off) from ``sentences``.

    Parameters
    ----------
    sentences : iterable of sequences of str
        Training sentences as word lists, without ``<s>``/``</s>`` (they are added).
    order : int
        1 (unigram), 2 (bigram), 3 (trigram), ...
    method : {"witten-bell", "kneser-ney"}
        Interpolated Witten-Bell or modified Kneser-Ney (see the module docstring).
    vocab : iterable of str, optional
        Extra words to give probability (for instance a lexicon's words missing
        from the text); they get only their share of the uniform distribution.

    Returns
    -------
    NGramModel
        Unigrams ``</s>``, ``<s>`` (log10 prob -99), then the words sorted;
        higher orders every n-gram seen in training, sorted.
    """
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise InvalidParameterError(f"order must be an integer >= 1, got {order!r}")
    if method not in METHODS:
        raise InvalidParameterError(f"method must be one of {METHODS}, got {method!r}")
    raw, n_sent = count_ngrams(sentences, order)
    if not n_sent:
        raise InvalidInputError("no training sentences (all empty)")
    extra = set(vocab or ())
    bad = sorted(w for w in extra if not isinstance(w, str) or not is_word(w) or w in (BOS, EOS))
    if bad:
        raise InvalidInputError(f"vocab holds non-words {bad[:5]!r}")
    words = sorted(({k[0] for k in raw[0]} | extra) - {BOS, EOS})
    events = [EOS] + words  # what the model predicts; <s> is only ever a context
    counts = _kneser_ney_counts(raw) if method == "kneser-ney" else raw

    # prob[k] = p(w|h) for listed k = h + (w,), bow[h] = gamma(h); natural probabilities.
    prob: dict[Ngram, float] = {}
    bow: dict[Ngram, float] = {}

    def lower(context: Ngram, w: str) -> float:
        """p(w|context) of the (back-off) model built so far."""
        weight = 1.0
        for start in range(len(context) + 1):
            k = context[start:] + (w,)
            if k in prob:
                return weight * prob[k]
            weight *= bow.get(context[start:], 1.0)
        raise AssertionError(f"{w!r} has no unigram")  # every event has one

    for n in range(1, order + 1):
        table = counts[n - 1]
        if n == 1:  # one context (): all events, unseen ones with count 0, <s> excluded
            grouped = {(): {w: table.get((w,), 0) for w in events}}
        else:
            grouped = _by_context(table)
        if method == "kneser-ney":
            d = _kn_discounts((c for k, c in table.items() if n > 1 or k[0] != BOS), n)
        for h, followers in grouped.items():
            total = sum(followers.values())
            seen = [c for c in followers.values() if c > 0]
            if method == "witten-bell":
                types = len(seen)
                alpha = {w: c / (total + types) for w, c in followers.items()}
                gamma = types / (total + types)
            else:
                alpha = {w: max(c - d[min(c, 3) - 1], 0.0) / total if c else 0.0 for w, c in followers.items()}
                gamma = sum(d[min(c, 3) - 1] for c in seen) / total
            for w, a in alpha.items():
                low = 1.0 / len(events) if n == 1 else lower(h[1:], w)
                prob[h + (w,)] = a + gamma * low
            if n > 1:
                bow[h] = gamma

    def log10(x: float) -> float:
        return math.log10(x) if x > 0 else LOG10_ZERO

    tables: list[dict[Ngram, tuple[float, float]]] = [{} for _ in range(order)]
    tables[0][(EOS,)] = (log10(prob[(EOS,)]), 0.0)
    tables[0][(BOS,)] = (LOG10_ZERO, log10(bow[(BOS,)]) if (BOS,) in bow else 0.0)
    for w in words:
        tables[0][(w,)] = (log10(prob[(w,)]), log10(bow[(w,)]) if (w,) in bow else 0.0)
    for n in range(2, order + 1):
        for k in sorted(counts[n - 1]):
            tables[n - 1][k] = (log10(prob[k]), log10(bow[k]) if k in bow else 0.0)
    model = NGramModel(tables)
    logger.info("estimated %s %d-gram model from %d sentences: %s", method, order, n_sent, model.counts())
    return model
