"""Scoring: accuracy, confusion matrices, edit-distance alignment, error rates."""

from __future__ import annotations

import itertools
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from gmmhmm.errors import InvalidInputError, InvalidParameterError
from gmmhmm.scoring import (
    ErrorRates,
    accuracy,
    align,
    confusion_matrix,
    error_rates,
    format_confusion,
    plot_confusion,
)


def brute_force_distance(ref, hyp, sub=1.0, dele=1.0, ins=1.0):
    """Minimum edit cost by plain recursion over every alignment."""

    @lru_cache(maxsize=None)
    def best(i, j):
        if i == 0:
            return j * ins
        if j == 0:
            return i * dele
        return min(
            best(i - 1, j - 1) + (0.0 if ref[i - 1] == hyp[j - 1] else sub),
            best(i - 1, j) + dele,
            best(i, j - 1) + ins,
        )

    return best(len(ref), len(hyp))


def alignment_cost(a, sub=1.0, dele=1.0, ins=1.0):
    return a.n_substitutions * sub + a.n_deletions * dele + a.n_insertions * ins


def check_consistent(a, ref, hyp):
    assert [r for r, _, _ in a.pairs if r is not None] == list(ref)
    assert [h for _, h, _ in a.pairs if h is not None] == list(hyp)
    for r, h, op in a.pairs:
        if op == "C":
            assert r == h
        elif op == "S":
            assert r is not None and h is not None and r != h
        elif op == "D":
            assert h is None and r is not None
        else:
            assert r is None and h is not None


def test_accuracy_and_confusion_hand_checked():
    y_true = ["a", "a", "b", "b", "c"]
    y_pred = ["a", "b", "b", "b", "a"]
    assert accuracy(y_true, y_pred) == pytest.approx(3 / 5)
    labels, m = confusion_matrix(y_true, y_pred)
    assert labels == ["a", "b", "c"]
    np.testing.assert_array_equal(m, [[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    assert m.sum() == 5 and np.trace(m) == 3
    text = format_confusion(labels, m)
    assert "100.0" in text and " 50.0" in text and "  0.0" in text


def test_confusion_unknown_label_and_length_mismatch():
    with pytest.raises(InvalidInputError, match="not in labels"):
        confusion_matrix(["a"], ["z"], labels=["a", "b"])
    with pytest.raises(InvalidInputError, match="2 reference"):
        accuracy(["a", "b"], ["a"])
    with pytest.raises(InvalidInputError, match="no labels"):
        accuracy([], [])


def test_plot_confusion_writes_png(tmp_path):
    labels, m = confusion_matrix([0, 1, 1], [0, 1, 0])
    out = tmp_path / "cm.png"
    assert plot_confusion(labels, m, out, title="t")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_confusion_failure_keeps_the_old_file(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    def broken_savefig(self, fname, **kwargs):
        if isinstance(fname, (str, Path)):
            Path(fname).write_bytes(b"half a PNG")
        else:
            fname.write(b"half a PNG")
        raise OSError("disk full")

    out = tmp_path / "cm.png"
    out.write_bytes(b"precious")
    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    labels, m = confusion_matrix([0, 1], [0, 0])
    with pytest.raises(OSError):
        plot_confusion(labels, m, out)
    assert out.read_bytes() == b"precious" and [p.name for p in tmp_path.iterdir()] == ["cm.png"]


@pytest.mark.parametrize(
    "ref, hyp, s, d, i",
    [
        ("a b c".split(), "a b c".split(), 0, 0, 0),
        ("a b c".split(), "a x c".split(), 1, 0, 0),
        ("a b c".split(), "a c".split(), 0, 1, 0),
        ("a b c".split(), "a b y c".split(), 0, 0, 1),
        ([], "a b".split(), 0, 0, 2),
        ("a b".split(), [], 0, 2, 0),
        ("the cat sat".split(), "cat sat down".split(), 0, 1, 1),
    ],
)
def test_align_known_cases(ref, hyp, s, d, i):
    a = align(ref, hyp)
    check_consistent(a, ref, hyp)
    assert (a.n_substitutions, a.n_deletions, a.n_insertions) == (s, d, i)
    assert a.n_ref == len(ref)


def test_align_brute_force_all_small_sequences():
    tokens = "ab"
    seqs = [s for n in range(4) for s in itertools.product(tokens, repeat=n)]
    for ref in seqs:
        for hyp in seqs:
            a = align(ref, hyp)
            check_consistent(a, ref, hyp)
            assert alignment_cost(a) == brute_force_distance(ref, hyp)


def test_align_htk_costs_match_brute_force_and_prefer_substitution():
    rng = np.random.default_rng(0)
    costs = dict(sub_cost=10.0, del_cost=7.0, ins_cost=7.0)
    for _ in range(200):
        ref = tuple(rng.integers(0, 3, size=rng.integers(0, 6)))
        hyp = tuple(rng.integers(0, 3, size=rng.integers(0, 6)))
        a = align(ref, hyp, **costs)
        check_consistent(a, ref, hyp)
        assert alignment_cost(a, 10, 7, 7) == pytest.approx(brute_force_distance(ref, hyp, 10, 7, 7))
    # 10 < 7 + 7: one substitution, not a deletion and an insertion.
    a = align(["a"], ["b"], **costs)
    assert (a.n_substitutions, a.n_deletions, a.n_insertions) == (1, 0, 0)
    # but with sub_cost > del + ins the pair is cheaper
    a = align(["a"], ["b"], sub_cost=3.0)
    assert (a.n_substitutions, a.n_deletions, a.n_insertions) == (0, 1, 1)


@pytest.mark.parametrize("sub, dele, ins", [(0.3, 0.7, 1.1), (1.7, 0.9, 0.35), (2.0, 1.0, 0.1)])
def test_align_fractional_costs_match_brute_force(sub, dele, ins):
    """Cheap insertions make runs of them optimal: the running-minimum row update must find them."""
    rng = np.random.default_rng(1)
    for _ in range(150):
        ref = tuple(rng.integers(0, 3, size=rng.integers(0, 7)))
        hyp = tuple(rng.integers(0, 3, size=rng.integers(0, 9)))
        a = align(ref, hyp, sub, dele, ins)
        check_consistent(a, ref, hyp)
        assert alignment_cost(a, sub, dele, ins) == pytest.approx(brute_force_distance(ref, hyp, sub, dele, ins))
        assert a.n_ref == len(ref) and a.n_correct + a.n_substitutions + a.n_insertions == len(hyp)


@pytest.mark.parametrize("sub, dele, ins", [(1.00001, 0.5, 0.5), (0.99999, 0.5, 0.5), (2e5 + 1, 1e5, 1e5)])
def test_align_near_ties_take_the_cheaper_path(sub, dele, ins):
    """The back-trace must not accept a step that is merely within numpy's default 1e-5 of optimal."""
    a = align(["a"], ["b"], sub, dele, ins)
    assert (a.n_substitutions == 1) == (sub < dele + ins)
    rng = np.random.default_rng(2)
    for _ in range(50):
        ref = tuple(rng.integers(0, 3, size=rng.integers(0, 6)))
        hyp = tuple(rng.integers(0, 3, size=rng.integers(0, 6)))
        a = align(ref, hyp, sub, dele, ins)
        best = brute_force_distance(ref, hyp, sub, dele, ins)
        assert alignment_cost(a, sub, dele, ins) == pytest.approx(best, rel=1e-12)


def test_align_format_and_bad_costs():
    text = align("a b c".split(), "a x c d".split()).format()
    lines = text.splitlines()
    assert lines[0].startswith("REF: a b c *")
    assert lines[1].startswith("HYP: a x c d")
    assert "S" in lines[2] and "I" in lines[2]
    with pytest.raises(InvalidParameterError, match="del_cost"):
        align("a", "b", del_cost=0)


def test_error_rates_totals_and_per_utterance():
    refs = ["a b c".split(), "d e".split(), "f".split()]
    hyps = ["a c".split(), "d e x".split(), "f".split()]
    r = error_rates(refs, hyps, utt_ids=["u1", "u2", "u3"])
    assert (r.n_ref, r.n_correct, r.n_substitutions, r.n_deletions, r.n_insertions) == (6, 5, 0, 1, 1)
    assert r.error_rate == pytest.approx(2 / 6)
    assert r.correct == pytest.approx(5 / 6)
    assert r.accuracy == pytest.approx(4 / 6)
    assert r.n_sentences == 3 and r.n_sentences_wrong == 2
    assert [u.utt_id for u in r.utterances] == ["u1", "u2", "u3"]
    assert [u.error_rate for u in r.utterances] == pytest.approx([1 / 3, 1 / 2, 0.0])
    assert "H=5, D=1, S=0, I=1, N=6" in r.format()
    assert r.to_dict()["n_errors"] == 2


def test_error_rates_totals_round_trip_through_a_json_dict():
    """from_dict(to_dict()) keeps every total (reports read back for RESULTS lines); 7 of 9 sentences wrong."""
    import json

    refs = [[str(i)] * (i + 1) for i in range(9)]
    hyps = [r if i in (2, 5) else r[1:] + ["x", "y"] for i, r in enumerate(refs)]
    r = error_rates(refs, hyps)
    back = ErrorRates.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back.n_sentences_wrong == 7
    assert back.to_dict() == r.to_dict() and back.utterances == []


def test_error_rates_rejects_strings_and_mismatch():
    with pytest.raises(InvalidInputError, match="string"):
        error_rates(["a b"], ["a b"])
    with pytest.raises(InvalidInputError, match="2 reference"):
        error_rates([["a"], ["b"]], [["a"]])
