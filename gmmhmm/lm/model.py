"""A backoff n-gram language model, held as in an ARPA file.

Scores are queried at word ends by the decoder, so :meth:`NGramModel.log_prob`
is a few dict look-ups over natural-log values computed once; the ARPA
(log10) values stay untouched in :attr:`NGramModel.ngrams` for writing back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..errors import InvalidParameterError

BOS, EOS = "<s>", "</s>"
UNK_SPELLINGS = ("<unk>", "<UNK>")
LOG10_ZERO = -99.0  # how ARPA files (SRILM, KenLM) spell log10(0)
_LN10 = math.log(10.0)

Ngram = tuple[str, ...]


def log10_to_ln(value: float) -> float:
    """ARPA log10 -> natural log; SRILM's -99 (and below) is log(0)."""
    return -math.inf if value <= LOG10_ZERO else value * _LN10


class NGramModel:
    """Backoff n-gram model: ``p(w|h) = p(h,w)`` if listed, else ``bo(h) * p(w|h[1:])``.

    Parameters
    ----------
    ngrams : sequence of mappings
        ``ngrams[n-1][(w1, ..., wn)] = (log10 prob, log10 backoff)``, exactly
        as in an ARPA file (backoff 0.0 where the file gives none).
        ``ngrams[0]`` (the unigrams) defines the vocabulary.

    Attributes
    ----------
    order : int
    vocab : list of str
        Unigram words in file order, including ``<s>`` and ``</s>``.
    ngrams : list of dict
    unk : str or None
        The model's unknown-word token (``<unk>`` or ``<UNK>``) if it has one;
        words outside the vocabulary are scored as it.
    """

    def __init__(self, ngrams: Sequence[Mapping[Ngram, tuple[float, float]]]) -> None:
        if not ngrams or not ngrams[0]:
            raise InvalidParameterError("an n-gram model needs at least one unigram")
        self.ngrams: list[dict[Ngram, tuple[float, float]]] = []
        for n, table in enumerate(ngrams, 1):
            table = {tuple(k): (float(p), float(b)) for k, (p, b) in table.items()}
            bad = next((k for k in table if len(k) != n), None)
            if bad is not None:
                raise InvalidParameterError(f"{n}-gram table holds {bad!r}, which has {len(bad)} word(s)")
            self.ngrams.append(table)
        self.order = len(self.ngrams)
        self.vocab = [k[0] for k in self.ngrams[0]]
        self._vocab_set = frozenset(self.vocab)
        for table in self.ngrams[1:]:
            for k in table:
                if not self._vocab_set.issuperset(k):
                    word = next(w for w in k if w not in self._vocab_set)
                    raise InvalidParameterError(f"{len(k)}-gram {' '.join(k)!r}: word {word!r} is not among "
                                                "the 1-grams")
        self.unk = next((u for u in UNK_SPELLINGS if (u,) in self.ngrams[0]), None)
        # Natural-log look-up tables: prob of every n-gram, backoff of every context.
        self._ln_prob: dict[Ngram, float] = {}
        self._ln_backoff: dict[Ngram, float] = {}
        for table in self.ngrams:
            for k, (p, b) in table.items():
                self._ln_prob[k] = log10_to_ln(p)
                if b != 0.0:
                    self._ln_backoff[k] = log10_to_ln(b)
        # Histories that can change a later score: proper prefixes of listed n-grams
        # and n-grams with a backoff weight. Anything else can be dropped from a
        # history without changing any probability (see :meth:`state`).
        self._contexts: set[Ngram] = set(self._ln_backoff)
        for table in self.ngrams[1:]:
            for k in table:
                for i in range(1, len(k)):
                    self._contexts.add(k[:i])

    def __repr__(self) -> str:
        counts = ", ".join(f"{n + 1}-grams={len(t)}" for n, t in enumerate(self.ngrams))
        return f"NGramModel(order={self.order}, {counts})"

    def counts(self) -> list[int]:
        """Number of n-grams of each order (the ARPA ``\\data\\`` header)."""
        return [len(t) for t in self.ngrams]

    def is_context(self, words: Ngram) -> bool:
        """Whether ``words`` prefixes a longer listed n-gram or has a backoff weight."""
        return tuple(words) in self._contexts

    def log_backoff(self, context: Sequence[str]) -> float:
        """Natural-log back-off weight of ``context`` (0.0 where the model lists none)."""
        return self._ln_backoff.get(tuple(context), 0.0)

    def map_word(self, word: str) -> str:
        """``word`` itself if in the vocabulary, else the unknown-word token (if any)."""
        if word in self._vocab_set or self.unk is None:
            return word
        return self.unk

    def _history(self, history: Sequence[str]) -> Ngram:
        """The last order - 1 words of ``history``, out-of-vocabulary ones mapped to ``<unk>``."""
        if self.order == 1:
            return ()
        h = tuple(history[-(self.order - 1):])
        if self.unk is not None:
            vocab, unk = self._vocab_set, self.unk
            h = tuple(w if w in vocab else unk for w in h)
        return h

    def _ln_p(self, h: Ngram, word: str) -> float:
        total = 0.0
        ln_prob, ln_backoff = self._ln_prob, self._ln_backoff
        for start in range(len(h) + 1):
            context = h[start:]
            p = ln_prob.get(context + (word,))
            if p is not None:
                return total + p
            total += ln_backoff.get(context, 0.0)
        return -math.inf

    def _minimal(self, h: Ngram) -> Ngram:
        contexts = self._contexts
        for start in range(len(h)):
            if h[start:] in contexts:
                return h[start:]
        return ()

    def log_prob(self, word: str, history: Sequence[str] = ()) -> float:
        """Natural-log ``p(word | history)`` with backoff; history truncated to order - 1.

        Out-of-vocabulary words score as ``<unk>`` when the model has one,
        else ``-inf``; an out-of-vocabulary history word simply matches no
        context (backing off past it).
        """
        return self._ln_p(self._history(history), self.map_word(word))

    def state(self, history: Sequence[str]) -> Ngram:
        """The shortest suffix of ``history`` that scores every future word as the full one.

        Tokens with equal states can be merged in search (KenLM's state
        minimisation): words left of the longest suffix that prefixes a listed
        n-gram or carries a backoff weight never change a probability.
        """
        return self._minimal(self._history(history))

    def score(self, state: Ngram, word: str) -> tuple[float, Ngram]:
        """``(log_prob(word, state), state(state + (word,)))``: one decoder step at a word end.

        ``state`` must come from :meth:`state` or :meth:`score` (start with
        ``model.state(("<s>",))``); it is used as is, which keeps this fast.
        """
        word = self.map_word(word)
        h = state + (word,)
        if len(h) >= self.order:
            h = h[len(h) - self.order + 1:]
        return self._ln_p(state, word), self._minimal(h)

    def sentence_log_prob(self, words: Sequence[str]) -> float:
        """Natural-log probability of ``<s> words </s>`` (``<s>`` itself is not scored)."""
        history: list[str] = [BOS]
        total = 0.0
        for w in list(words) + [EOS]:
            total += self.log_prob(w, history)
            history.append(w)
        return total

    def perplexity(self, sentences: Iterable[Sequence[str]]) -> Perplexity:
        """SRILM ``ngram -ppl`` statistics of ``sentences`` (words without ``<s>``/``</s>``).

        Out-of-vocabulary words (in a model without ``<unk>``) are skipped and
        counted as ``oovs``; words of probability zero as ``zeroprobs``; both
        are left out of the perplexity, as SRILM does.
        """
        n_sent = n_words = n_oov = n_zero = 0
        log10_total = 0.0
        for sentence in sentences:
            n_sent += 1
            history: list[str] = [BOS]
            for w in list(sentence) + [EOS]:
                if w != EOS:
                    n_words += 1
                if self.map_word(w) not in self._vocab_set:
                    n_oov += 1
                else:
                    lp = self.log_prob(w, history)
                    if lp == -math.inf:
                        n_zero += 1
                    else:
                        log10_total += lp / _LN10
                history.append(w)
        return Perplexity(n_sent, n_words, n_oov, n_zero, log10_total)


@dataclass(frozen=True)
class Perplexity:
    """SRILM-style perplexity report: ``ppl`` counts ``</s>`` as a word, ``ppl1`` does not."""

    sentences: int
    words: int
    oovs: int
    zeroprobs: int
    log10_prob: float

    @property
    def ppl(self) -> float:
        n = self.words - self.oovs - self.zeroprobs + self.sentences
        return 10.0 ** (-self.log10_prob / n) if n > 0 else math.nan

    @property
    def ppl1(self) -> float:
        n = self.words - self.oovs - self.zeroprobs
        return 10.0 ** (-self.log10_prob / n) if n > 0 else math.nan

    def format(self) -> str:
        """The two lines ``ngram -ppl`` prints."""
        return (f"{self.sentences} sentences, {self.words} words, {self.oovs} OOVs\n"
                f"{self.zeroprobs} zeroprobs, logprob= {self.log10_prob:.6g} ppl= {self.ppl:.6g} "
                f"ppl1= {self.ppl1:.6g}")
