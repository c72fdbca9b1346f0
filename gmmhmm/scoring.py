"""Scoring: accuracy, confusion matrices and edit-distance error rates.

Isolated-word results are scored with :func:`accuracy` and
:func:`confusion_matrix`. Token sequences (phones, words) are aligned to
their reference with a minimum-edit-distance alignment (:func:`align`) and
summed into substitution / deletion / insertion counts and an error rate,
``(S + D + I) / N``, per utterance and in total (:func:`error_rates`), as
HTK's HResults and NIST's sclite report them.
"""

from __future__ import annotations

import math

import os
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .errors import InvalidInputError, InvalidParameterError

# Alignment operations, as sclite names them.
CORRECT, SUBSTITUTION, DELETION, INSERTION = "C", "S", "D", "I"


# ---------------------------------------------------------------------------
# Isolated-word scoring
# ---------------------------------------------------------------------------
def _check_pair(y_true: Sequence, y_pred: Sequence) -> tuple[list, list]:
    y_true, y_pred = list(y_true), list(y_pred)
    if len(y_true) != len(y_pred):
        raise InvalidInputError(
            f"got {len(y_true)} reference label(s) but {len(y_pred)} hypothesis label(s)"
        )
    if not y_true:
        raise InvalidInputError("nothing to score: no labels")
    return y_true, y_pred


def accuracy(y_true: Sequence[Hashable], y_pred: Sequence[Hashable]) -> float:
    """Fraction of hypotheses equal to their reference."""
    y_true, y_pred = _check_pair(y_true, y_pred)
    return sum(t == p for t, p in zip(y_true, y_pred)) / len(y_true)


def confusion_matrix(
    y_true: Sequence[Hashable],
    y_pred: Sequence[Hashable],
    labels: Sequence[Hashable] | None = None,
) -> tuple[list, np.ndarray]:
    """Counts of (reference, hypothesis) pairs.

    Parameters
    ----------
    y_true, y_pred : sequences of labels of equal length
    labels : sequence, optional
        Row/column order; defaults to the sorted union of both sequences.
        Labels outside it are an error.

    Returns
    -------
    labels : list
    matrix : ndarray of shape (n_labels, n_labels), int64
        ``matrix[i, j]`` counts references ``labels[i]`` recognised as ``labels[j]``.
    """
    y_true, y_pred = _check_pair(y_true, y_pred)
    labels = sorted(set(y_true) | set(y_pred), key=str) if labels is None else list(labels)
    index = {lab: i for i, lab in enumerate(labels)}
    unknown = sorted({str(v) for v in y_true + y_pred if v not in index})
    if unknown:
        raise InvalidInputError(f"label(s) {unknown} are not in labels {labels}")
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(matrix, ([index[t] for t in y_true], [index[p] for p in y_pred]), 1)
    return labels, matrix


def format_confusion(labels: Sequence[Hashable], matrix: np.ndarray) -> str:
    """Text table: rows are references, columns hypotheses, plus per-row accuracy."""
    names = [str(lab) for lab in labels]
    width = max([len(n) for n in names] + [len(str(int(matrix.max(initial=0)))), 3])
    head = " " * width + " |" + "".join(f" {n:>{width}}" for n in names) + " | acc%"
    lines = ["ref \\ hyp", head, "-" * len(head)]
    for name, row in zip(names, matrix):
        total = row.sum()
        acc = f"{100.0 * row[names.index(name)] / total:5.1f}" if total else "    -"
        lines.append(f"{name:>{width}} |" + "".join(f" {int(v):>{width}}" for v in row) + f" | {acc}")
    return "\n".join(lines)


def plot_confusion(
    labels: Sequence[Hashable], matrix: np.ndarray, path: str | os.PathLike, title: str = ""
) -> bool:
    """Write the confusion matrix as a PNG; returns False if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1 + 0.5 * n, 1 + 0.5 * n))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), [str(x) for x in labels])
    ax.set_yticks(range(n), [str(x) for x in labels])
    ax.set_xlabel("hypothesis")
    ax.set_ylabel("reference")
    if title:
        ax.set_title(title)
    high = matrix.max(initial=0) / 2
    for i in range(n):
        for j in range(n):
            if matrix[i, j]:
                ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if matrix[i, j] > high else "black")
    fig.tight_layout()
    from .plot import save_figure

    save_figure(fig, path)  # atomically: a failed write leaves the old file
    return True


# ---------------------------------------------------------------------------
# Sequence alignment and error rates
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Alignment:
    """Minimum-edit-distance alignment of a hypothesis to a reference.

    Attributes
    ----------
    pairs : list of (ref_token or None, hyp_token or None, op)
        In order; ``op`` is ``'C'``, ``'S'``, ``'D'`` (ref token missing from
        the hypothesis, hyp is None) or ``'I'`` (extra hyp token, ref is None).
    """

    pairs: list[tuple[Hashable | None, Hashable | None, str]]

    @cached_property  # one pass over the pairs for all the counts
    def _counts(self) -> Counter:
        return Counter(op for *_, op in self.pairs)

    def count(self, op: str) -> int:
        """Number of pairs with operation ``op``."""
        return self._counts[op]

    @property
    def n_correct(self) -> int:
        return self.count(CORRECT)

    @property
    def n_substitutions(self) -> int:
        return self.count(SUBSTITUTION)

    @property
    def n_deletions(self) -> int:
        return self.count(DELETION)

    @property
    def n_insertions(self) -> int:
        return self.count(INSERTION)

    @property
    def n_ref(self) -> int:
        return self.n_correct + self.n_substitutions + self.n_deletions

    @property
    def n_errors(self) -> int:
        return self.n_substitutions + self.n_deletions + self.n_insertions

    def format(self) -> str:
        """Three lines as sclite prints them: REF, HYP and the operations."""
        cols = [(("*" * len(str(h))) if r is None else str(r),
                 ("*" * len(str(r))) if h is None else str(h), op) for r, h, op in self.pairs]
        widths = [max(len(r), len(h)) for r, h, _ in cols]
        ref = " ".join(f"{r:<{w}}" for (r, _, _), w in zip(cols, widths))
        hyp = " ".join(f"{h:<{w}}" for (_, h, _), w in zip(cols, widths))
        ops = " ".join(f"{('' if op == CORRECT else op):<{w}}" for (_, _, op), w in zip(cols, widths))
        return f"REF: {ref}\nHYP: {hyp}\nOPS: {ops}".rstrip()


def align(
    ref: Sequence[Hashable],
    hyp: Sequence[Hashable],
    sub_cost: float = 1.0,
    del_cost: float = 1.0,
    ins_cost: float = 1.0,
) -> Alignment:
    """Align ``hyp`` to ``ref`` at minimum total edit cost.

    Unit costs (the default) give the Levenshtein distance, as sclite counts
    errors; HResults uses ``sub_cost=10, del_cost=7, ins_cost=7``, which
    prefers a substitution to a deletion plus an insertion. Among
    equal-cost alignments, a match or substitution is preferred, then a
    deletion, then an insertion (reading from the end).

    Parameters
    ----------
    ref, hyp : sequences of hashable tokens (a string is one token per character)
    sub_cost, del_cost, ins_cost : float
        Positive operation costs.
    """
    for name, c in (("sub_cost", sub_cost), ("del_cost", del_cost), ("ins_cost", ins_cost)):
        if not (isinstance(c, (int, float)) and np.isfinite(c) and c > 0):
            raise InvalidParameterError(f"{name} must be a positive number, got {c!r}")
    try:
        ref, hyp = list(ref), list(hyp)
    except TypeError as exc:
        raise InvalidInputError(f"ref and hyp must be sequences of tokens: {exc}") from None
    n, m = len(ref), len(hyp)
    # cost[i, j]: best cost of aligning ref[:i] with hyp[:j].
    cost = np.zeros((n + 1, m + 1))
    ins = np.arange(m + 1) * ins_cost
    cost[:, 0] = np.arange(n + 1) * del_cost
    cost[0] = ins
    for i in range(1, n + 1):
        # One row at a time. Without insertions, row[j] = min(diagonal, up);
        # insertions then give cost[i, j] = min over k <= j of row[k] + (j - k) * ins_cost,
        # a running minimum of row - ins.
        same = np.fromiter((ref[i - 1] == h for h in hyp), dtype=bool, count=m)
        row = cost[i].copy()
        row[1:] = np.minimum(cost[i - 1, :-1] + np.where(same, 0.0, sub_cost), cost[i - 1, 1:] + del_cost)
        cost[i] = np.minimum.accumulate(row - ins) + ins
    pairs: list[tuple[Hashable | None, Hashable | None, str]] = []
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0:
            match = ref[i - 1] == hyp[j - 1]
            # equal up to rounding of the sums (np.isclose's 1e-5 would accept a dearer step)
            if math.isclose(cost[i, j], cost[i - 1, j - 1] + (0.0 if match else sub_cost), rel_tol=1e-9):
                pairs.append((ref[i - 1], hyp[j - 1], CORRECT if match else SUBSTITUTION))
                i, j = i - 1, j - 1
                continue
        if i > 0 and math.isclose(cost[i, j], cost[i - 1, j] + del_cost, rel_tol=1e-9):
            pairs.append((ref[i - 1], None, DELETION))
            i -= 1
        else:
            pairs.append((None, hyp[j - 1], INSERTION))
            j -= 1
    return Alignment(pairs[::-1])


@dataclass(frozen=True)
class UtteranceErrors:
    """Counts of one utterance (``utt_id`` may be None)."""

    utt_id: Hashable | None
    n_ref: int
    n_correct: int
    n_substitutions: int
    n_deletions: int
    n_insertions: int
    alignment: Alignment

    @property
    def n_errors(self) -> int:
        return self.n_substitutions + self.n_deletions + self.n_insertions

    @property
    def error_rate(self) -> float:
        """(S + D + I) / N; inf for an empty reference with insertions, 0 if both empty."""
        if self.n_ref == 0:
            return 0.0 if self.n_errors == 0 else float("inf")
        return self.n_errors / self.n_ref


@dataclass(frozen=True)
class ErrorRates:
    """Totals over a corpus, and the per-utterance details.

    ``error_rate`` is the WER (or PER for phones), HTK's ``Corr`` is
    ``correct`` and its ``Acc`` is ``accuracy`` (= 1 - error_rate).
    """

    n_ref: int
    n_correct: int
    n_substitutions: int
    n_deletions: int
    n_insertions: int
    n_sentences: int
    n_sentences_wrong: int
    utterances: list[UtteranceErrors] = field(repr=False)

    @property
    def n_errors(self) -> int:
        return self.n_substitutions + self.n_deletions + self.n_insertions

    @property
    def error_rate(self) -> float:
        return self.n_errors / self.n_ref if self.n_ref else (0.0 if self.n_errors == 0 else float("inf"))

    @property
    def correct(self) -> float:
        return self.n_correct / self.n_ref if self.n_ref else 1.0

    @property
    def accuracy(self) -> float:
        return 1.0 - self.error_rate

    @property
    def sentence_error_rate(self) -> float:
        return self.n_sentences_wrong / self.n_sentences if self.n_sentences else 0.0

    def to_dict(self) -> dict:
        """Totals as plain numbers (for JSON reports)."""
        return {
            "n_ref": self.n_ref, "n_correct": self.n_correct,
            "n_substitutions": self.n_substitutions, "n_deletions": self.n_deletions,
            "n_insertions": self.n_insertions, "n_errors": self.n_errors,
            "error_rate": self.error_rate, "correct": self.correct, "accuracy": self.accuracy,
            "n_sentences": self.n_sentences, "sentence_error_rate": self.sentence_error_rate,
        }

    @classmethod
    def from_dict(cls, totals: dict) -> "ErrorRates":
        """The totals of :meth:`to_dict` (e.g. read back from a JSON report), without per-utterance details."""
        n_sentences = int(totals["n_sentences"])
        return cls(int(totals["n_ref"]), int(totals["n_correct"]), int(totals["n_substitutions"]),
                   int(totals["n_deletions"]), int(totals["n_insertions"]), n_sentences,
                   round(totals["sentence_error_rate"] * n_sentences), [])

    def format(self, unit: str = "WER") -> str:
        """HResults-style summary lines."""
        return (
            f"SENT: %Correct={100 * (1 - self.sentence_error_rate):.2f} "
            f"[H={self.n_sentences - self.n_sentences_wrong}, S={self.n_sentences_wrong}, N={self.n_sentences}]\n"
            f"{unit}: {100 * self.error_rate:.2f}%  %Corr={100 * self.correct:.2f}, "
            f"Acc={100 * self.accuracy:.2f} [H={self.n_correct}, D={self.n_deletions}, "
            f"S={self.n_substitutions}, I={self.n_insertions}, N={self.n_ref}]"
        )


def error_rates(
    refs: Sequence[Sequence[Hashable]],
    hyps: Sequence[Sequence[Hashable]],
    utt_ids: Sequence[Hashable] | None = None,
    **costs: float,
) -> ErrorRates:
    """Align each hypothesis to its reference and total the errors.

    Parameters
    ----------
    refs, hyps : sequences of token sequences, one per utterance
    utt_ids : sequence, optional
        Names for the per-utterance results.
    **costs
        ``sub_cost``, ``del_cost``, ``ins_cost`` passed to :func:`align`.
    """
    refs, hyps = list(refs), list(hyps)
    if len(refs) != len(hyps):
        raise InvalidInputError(f"got {len(refs)} reference(s) but {len(hyps)} hypothesis(es)")
    ids = list(utt_ids) if utt_ids is not None else [None] * len(refs)
    if len(ids) != len(refs):
        raise InvalidInputError(f"got {len(ids)} utterance id(s) for {len(refs)} reference(s)")
    for name, seqs in (("refs", refs), ("hyps", hyps)):
        for k, s in enumerate(seqs):
            if isinstance(s, str):
                raise InvalidInputError(
                    f"{name}[{k}] is a string; pass a list of tokens (e.g. text.split())"
                )
    utts = []
    for uid, r, h in zip(ids, refs, hyps):
        a = align(r, h, **costs)
        utts.append(UtteranceErrors(uid, a.n_ref, a.n_correct, a.n_substitutions,
                                    a.n_deletions, a.n_insertions, a))
    return ErrorRates(
        n_ref=sum(u.n_ref for u in utts),
        n_correct=sum(u.n_correct for u in utts),
        n_substitutions=sum(u.n_substitutions for u in utts),
        n_deletions=sum(u.n_deletions for u in utts),
        n_insertions=sum(u.n_insertions for u in utts),
        n_sentences=len(utts),
        n_sentences_wrong=sum(u.n_errors > 0 for u in utts),
        utterances=utts,
    )
