"""Sparse graph kernels against brute-force enumeration of every state path."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.special import logsumexp

from gmmhmm.graphs import Lexicon, kernels, utterance_graph


def random_graph(rng, S=4, A=9, n_pdf=3):
    src = rng.integers(0, S, A)
    dst = rng.integers(0, S, A)
    src[:2], dst[:2] = [0, 0], [0, 0]  # a duplicate arc: forward must add, Viterbi must take the max
    logp = np.log(rng.uniform(0.05, 1.0, A))
    pdf = rng.integers(0, n_pdf, S)
    init = np.log(rng.uniform(0.1, 1.0, S))
    init[rng.integers(0, S)] = -np.inf
    final = np.log(rng.uniform(0.1, 1.0, S))
    final[rng.integers(0, S)] = -np.inf
    return pdf, src, dst, logp, init, final


def path_scores(ll, pdf, src, dst, logp, init, final, reduce):
    """Every state sequence with its score (arcs between a pair combined by ``reduce``)."""
    S = len(pdf)
    pair = np.full((S, S), -np.inf)
    for a in range(len(src)):
        pair[src[a], dst[a]] = reduce([pair[src[a], dst[a]], logp[a]])
    out = []
    for seq in itertools.product(range(S), repeat=len(ll)):
        v = init[seq[0]] + final[seq[-1]] + sum(ll[t, pdf[s]] for t, s in enumerate(seq))
        v += sum(pair[a, b] for a, b in zip(seq, seq[1:]))
        out.append((seq, v))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_forward_backward_matches_enumeration(seed):
    rng = np.random.default_rng(seed)
    T, n_pdf = 4, 3
    pdf, src, dst, logp, init, final = random_graph(rng, n_pdf=n_pdf)
    ll = rng.normal(size=(T, n_pdf))
    paths = path_scores(ll, pdf, src, dst, logp, init, final, lambda v: np.logaddexp(*v))
    scores = np.array([v for _, v in paths])
    log_z_ref = logsumexp(scores)
    log_z, gamma, arc_counts, final_counts = kernels.forward_backward(ll, pdf, src, dst, logp, init, final, n_pdf)
    assert log_z == pytest.approx(log_z_ref, rel=1e-10)
    post = np.exp(scores - log_z_ref)
    gamma_ref = np.zeros((T, n_pdf))
    final_ref = np.zeros(len(pdf))
    for (seq, _), p in zip(paths, post):
        for t, s in enumerate(seq):
            gamma_ref[t, pdf[s]] += p
        final_ref[seq[-1]] += p
    np.testing.assert_allclose(gamma, gamma_ref, atol=1e-10)
    np.testing.assert_allclose(gamma.sum(1), 1.0)
    np.testing.assert_allclose(final_counts, final_ref, atol=1e-10)
    # expected arc counts: duplicates share their pair's posterior in proportion to their weight
    arc_ref = np.zeros(len(src))
    for a in range(len(src)):
        same = (src == src[a]) & (dst == dst[a])
        share = np.exp(logp[a] - logsumexp(logp[same]))
        for (seq, _), p in zip(paths, post):
            arc_ref[a] += share * p * sum(1 for x, y in zip(seq, seq[1:]) if (x, y) == (src[a], dst[a]))
    np.testing.assert_allclose(arc_counts, arc_ref, atol=1e-10)
    # every frame transition is one arc
    assert arc_counts.sum() == pytest.approx(T - 1)


@pytest.mark.parametrize("seed", range(5))
def test_viterbi_matches_enumeration(seed):
    rng = np.random.default_rng(seed + 10)
    T, n_pdf = 5, 3
    pdf, src, dst, logp, init, final = random_graph(rng, n_pdf=n_pdf)
    ll = rng.normal(size=(T, n_pdf))
    paths = path_scores(ll, pdf, src, dst, logp, init, final, max)
    best_seq, best = max(paths, key=lambda p: p[1])
    score, states, arcs = kernels.viterbi(ll, pdf, src, dst, logp, init, final, 0.0)
    assert score == pytest.approx(best)
    assert tuple(states) == best_seq
    # the reported arcs connect the states and carry the best weight between them
    for t in range(1, T):
        a = arcs[t]
        assert (src[a], dst[a]) == (states[t - 1], states[t])
        assert logp[a] == logp[(src == src[a]) & (dst == dst[a])].max()
    # a generous beam never changes the result; a zero-width one still returns a path
    assert kernels.viterbi(ll, pdf, src, dst, logp, init, final, 1e6)[0] == pytest.approx(best)
    assert kernels.viterbi(ll, pdf, src, dst, logp, init, final, 1e-9)[0] <= best + 1e-12


def test_no_path_gives_minus_infinity():
    pdf = np.array([0, 0])
    src, dst, logp = np.array([0]), np.array([1]), np.array([0.0])  # 0 -> 1 only, no loops
    init, final = np.array([0.0, -np.inf]), np.array([-np.inf, 0.0])
    ll = np.zeros((3, 1))
    assert kernels.forward_backward(ll, pdf, src, dst, logp, init, final, 1)[0] == -np.inf
    log_z, gamma, arcs, finals = kernels.forward_backward(ll[:0], pdf, src, dst, logp, init, final, 1)
    assert log_z == -np.inf and gamma.shape == (0, 1) and not arcs.any() and not finals.any()
    score, states, _ = kernels.viterbi(ll, pdf, src, dst, logp, init, final, 0.0)
    assert score == -np.inf and len(states) == 0


def test_viterbi_of_no_frames_is_no_path():
    """Viterbi read frame 0 of a 0-frame matrix (numba does not check bounds): a state both initial
    and final scored whatever memory followed, and force_align of a one-phone word to an empty
    log-likelihood matrix crashed with an IndexError in the traceback instead of "no path"."""
    pdf, src, dst, logp = np.array([0]), np.array([0]), np.array([0]), np.array([0.0])
    ll = np.full((0, 1), 7.0)
    score, states, arcs = kernels.viterbi(ll, pdf, src, dst, logp, np.zeros(1), np.zeros(1), 0.0)
    assert score == -np.inf and states.shape == arcs.shape == (0,)


def test_long_sequence_stays_finite():
    lex = Lexicon({"a": ["x", "y"], "b": ["y"]})
    g = utterance_graph(lex, ["a", "b"])
    rng = np.random.default_rng(0)
    ll = rng.normal(-60.0, 5.0, size=(200_000, 3 * len(lex.phones)))
    ls, ll_leave = np.log(np.full(9, 0.6)), np.log(np.full(9, 0.4))
    logp, init, final = g.log_probs(ls, ll_leave)
    log_z, gamma, _, _ = kernels.forward_backward(ll, g.state_pdf, g.arc_src, g.arc_dst, logp, init, final, 9)
    assert np.isfinite(log_z)
    np.testing.assert_allclose(gamma.sum(1), 1.0, atol=1e-8)


def _scaled_args(ll, pdf, src, dst, logp, init, final, n_pdf):
    row_max = ll.max(axis=1)
    return (np.exp(ll - row_max[:, None]), row_max, pdf, src, dst, np.exp(logp), np.exp(init), 0.0,
            np.exp(final), 0.0, n_pdf)


@pytest.mark.parametrize("seed", range(3))
def test_scaled_pass_equals_the_log_pass(seed):
    """The linear-space pass (the one training runs) gives the log-space pass's results."""
    lex = Lexicon({"a": ["x", "y"], "b": ["y"]})
    g = utterance_graph(lex, ["a", "b", "a"])
    rng = np.random.default_rng(seed)
    ll = rng.normal(-60.0, 8.0, size=(400, 3 * len(lex.phones)))
    logp, init, final = g.log_probs(np.log(np.full(9, 0.6)), np.log(np.full(9, 0.4)))
    args = (ll, g.state_pdf, g.arc_src, g.arc_dst, logp, init, final, 9)
    ok, *fast = kernels.forward_backward_scaled(*_scaled_args(*args))
    exact = kernels.forward_backward_log(*args)
    assert ok
    assert fast[0] == pytest.approx(exact[0], rel=1e-12)
    for f, e in zip(fast[1:], exact[1:]):
        np.testing.assert_allclose(f, e, rtol=1e-9, atol=1e-12)


def test_mass_lost_to_underflow_in_the_scaled_pass_is_redone_in_log_space():
    """State 1 starts 800 nats down (its scaled likelihood underflows to 0) but carries nearly all the
    mass: state 0 dies at frame 5 and the decoy state 2 pays 100 nats a frame. The scaled pass still
    reaches a final state (through the decoy) with a wrong total; its backward pass must notice, and
    forward_backward give the exact answer."""
    T = 10
    pdf = np.arange(3)
    src, dst = np.arange(3), np.arange(3)  # three self-loops, no other arcs
    logp, init, final = np.zeros(3), np.zeros(3), np.zeros(3)
    ll = np.zeros((T, 3))
    ll[0, 1] = -800.0
    ll[5:, 0] = -1000.0
    ll[:, 2] = -100.0
    args = (ll, pdf, src, dst, logp, init, final, 3)
    ok, *_ = kernels.forward_backward_scaled(*_scaled_args(*args))
    assert not ok
    log_z, gamma, arcs, finals = kernels.forward_backward(*args)
    assert log_z == pytest.approx(np.logaddexp.reduce([-800.0, -5000.0 - 0.0, -100.0 * T]), rel=1e-12)
    np.testing.assert_allclose(gamma[:, 1], 1.0, atol=1e-12)
    assert finals[1] == pytest.approx(1.0)


def outgoing_mass(g, self_p=0.7):
    """Total probability leaving each state (incl. ending) with a grammar of probabilities."""
    n = int(g.state_pdf.max()) + 1
    logp, init, final = g.log_probs(np.log(np.full(n, self_p)), np.log(np.full(n, 1 - self_p)))
    mass = np.zeros(g.n_states)
    np.add.at(mass, g.arc_src, np.exp(logp))
    return mass + np.exp(final), np.exp(init).sum()


def test_utterance_graph_is_a_proper_hmm():
    lex = Lexicon.digits()
    g = utterance_graph(lex, ["one", "two", "one"])
    mass, start = outgoing_mass(g)
    np.testing.assert_allclose(mass, 1.0)
    assert start == pytest.approx(1.0)
    # shortest path: 3 states per phone of W AH N T UW W AH N, no silence
    assert g.min_frames == 3 * 8
    assert g.labels == ["one", "two", "one", "sil"]


def test_min_frames_is_computed_once():
    g = utterance_graph(Lexicon.digits(), ["one"])
    assert g.min_frames == 3 * 3
    g.final_extra = np.full(g.n_states, -np.inf)  # graphs are not modified once built: the value stays
    assert g.min_frames == 3 * 3


def _log_z(g, ll, self_p=0.6):
    n = ll.shape[1]
    logp, init, final = g.log_probs(np.log(np.full(n, self_p)), np.log(np.full(n, 1 - self_p)))
    return kernels.forward_backward(ll, g.state_pdf, g.arc_src, g.arc_dst, logp, init, final, n)[0]


ALT_PRONS = {"a": [(["x", "y"], np.log(0.7)), (["y"], np.log(0.3))], "b": [(["x"], 0.0)]}


@pytest.mark.parametrize("seed", range(3))
def test_alternate_pronunciations_are_parallel_paths(seed):
    """Forward over a transcript with a two-pronunciation word = log-sum of the one-pronunciation graphs."""
    lex = Lexicon.from_prons(ALT_PRONS)
    singles = [Lexicon.from_prons({"a": [pron], "b": ALT_PRONS["b"]}) for pron in ALT_PRONS["a"]]
    assert all(s.phones == lex.phones for s in singles)
    rng = np.random.default_rng(seed)
    for words in (["a"], ["b", "a", "b"], ["a", "a"]):
        g = utterance_graph(lex, words)
        ll = rng.normal(size=(3 * 2 * len(words) + 6, 3 * len(lex.phones)))
        # every combination of pronunciations, each graph entered with its pronunciations' weights
        refs = []
        for choice in itertools.product(range(2), repeat=words.count("a")):
            it = iter(choice)
            prons = {"all-phones": [(["x", "y"], 0.0)]}  # same phone list, so the same pdfs
            pick = [next(it) if w == "a" else 0 for w in words]
            weight = sum(ALT_PRONS["a"][k][1] for w, k in zip(words, pick) if w == "a")
            # a transcript whose "a"s use different pronunciations: one lexicon word per position
            names = [f"{w}{i}" for i, w in enumerate(words)]
            for name, w, k in zip(names, words, pick):
                prons[name] = [(ALT_PRONS[w][k][0], 0.0)]
            refs.append(_log_z(utterance_graph(Lexicon.from_prons(prons), names), ll) + weight)
        assert _log_z(g, ll) == pytest.approx(logsumexp(refs), rel=1e-10)
        assert g.labels == list(words) + ["sil"]
    mass, start = outgoing_mass(utterance_graph(lex, ["a", "b", "a"]))
    np.testing.assert_allclose(mass, 1.0)  # pronunciation probabilities summing to 1 keep it an HMM
    assert start == pytest.approx(1.0)
    assert utterance_graph(lex, ["a"]).min_frames == 3  # the short pronunciation


def test_alternates_by_enumeration():
    """One-state phones, tiny transcript: forward equals the sum over every state path."""
    lex = Lexicon.from_prons({"a": [(["x"], np.log(0.25)), (["y", "x"], np.log(0.75))]})
    g = utterance_graph(lex, ["a"], n_states=1)
    n = len(lex.phones)
    rng = np.random.default_rng(3)
    ll = rng.normal(size=(4, n))
    logp, init, final = g.log_probs(np.log(np.full(n, 0.5)), np.log(np.full(n, 0.5)))
    paths = path_scores(ll, g.state_pdf, g.arc_src, g.arc_dst, logp, init, final, lambda v: np.logaddexp(*v))
    ref = logsumexp([v for _, v in paths])
    log_z = kernels.forward_backward(ll, g.state_pdf, g.arc_src, g.arc_dst, logp, init, final, n)[0]
    assert log_z == pytest.approx(ref, rel=1e-10)


# ------------------------------------------------ one HMM core: graphs == dense models


def _dense_vs_graph(g, ll, log_self, log_leave):
    """Graph kernels and dense kernels on the same emissions: every output agrees."""
    from gmmhmm.hmm import kernels as dense_kernels

    assert len(set(zip(g.arc_src.tolist(), g.arc_dst.tolist()))) == len(g.arc_src)  # no parallel arcs
    logp, init, final = g.log_probs(log_self, log_leave)
    startprob, transmat, endprob = g.dense(log_self, log_leave)
    flp = ll[:, g.state_pdf]
    offsets = np.array([0, len(ll)])
    log_z, gamma, arc_counts, final_counts = kernels.forward_backward(
        ll, g.state_pdf, g.arc_src, g.arc_dst, logp, init, final, ll.shape[1])
    score, states, _ = kernels.viterbi(ll, g.state_pdf, g.arc_src, g.arc_dst, logp, init, final, 0.0)
    assert np.isfinite(log_z)
    for use_log in (True, False):
        lps, post, xi = dense_kernels.forward_backward_multi(startprob, transmat, endprob, flp, offsets, use_log)
        assert lps[0] == pytest.approx(log_z, rel=1e-10)
        by_pdf = np.zeros_like(gamma)
        np.add.at(by_pdf.T, g.state_pdf, post.T)
        np.testing.assert_allclose(by_pdf, gamma, atol=1e-9)
        np.testing.assert_allclose(xi[g.arc_src, g.arc_dst], arc_counts, atol=1e-9)
        np.testing.assert_allclose(post[-1], final_counts, atol=1e-9)  # exit counts
    with np.errstate(divide="ignore"):
        vlp, path = dense_kernels.viterbi(np.log(startprob), np.log(transmat), flp, np.log(endprob))
    assert vlp == pytest.approx(score, rel=1e-10)
    np.testing.assert_array_equal(path, states)


@pytest.mark.parametrize("seed", range(3))
def test_graph_and_equivalent_dense_model_agree(seed):
    """Utterance graphs (with optional silences) and their dense form: same likelihood, occupancies,
    transition and exit counts, and Viterbi path on the same emissions."""
    rng = np.random.default_rng(seed)
    lex = Lexicon.digits()
    n_pdf = 3 * len(lex.phones)
    log_self = np.log(rng.uniform(0.3, 0.9, n_pdf))
    log_leave = np.log1p(-np.exp(log_self))
    for g in (utterance_graph(lex, ["one", "two"]), utterance_graph(lex, ["nine"], sil_prob=0.3)):
        ll = rng.normal(scale=2.0, size=(g.min_frames + 12, n_pdf))
        _dense_vs_graph(g, ll, log_self, log_leave)


def test_left_to_right_word_model_and_its_graph_give_the_same_scores_and_training():
    """A GaussianHMM word model left only through its final state (topology.left_to_right
    with exit_prob) and the one-unit graph of the same phone models: the same
    log-likelihood, Viterbi path, and re-estimated self-loop / exit probabilities."""
    from gmmhmm.graphs.graph import build_graph
    from gmmhmm.graphs.training import _transition_counts
    from gmmhmm.hmm import GaussianHMM, topology

    rng = np.random.default_rng(0)
    n_states, phones = 3, [0, 1]  # one word of two 3-state phones: 6 states
    S = n_states * len(phones)
    self_loop = rng.uniform(0.4, 0.8, S)
    g = build_graph(["w"], [(0, phones)], [], {0: 0.0}, {0: 0.0}, n_states)
    model = GaussianHMM(S, init_params="", params="t")
    model.startprob_, transmat, endprob = topology.left_to_right(S, exit_prob=0.5)
    model.transmat_ = np.diag(self_loop) + np.diag(1 - self_loop[:-1], 1)
    model.endprob_ = np.eye(S)[-1] * (1 - self_loop[-1])
    assert np.array_equal(model.transmat_ > 0, transmat > 0) and np.array_equal(model.endprob_ > 0, endprob > 0)
    model.means_ = rng.normal(scale=3.0, size=(S, 2))
    model.covars_ = np.full((S, 2), 1.5)
    lengths = [14, 9, 20]
    X = rng.normal(scale=3.0, size=(sum(lengths), 2))
    bounds = np.cumsum([0, *lengths])
    ll_all, _ = model._emission().log_likelihood(X, need_cache=False)  # pdf k = state k here
    log_self, log_leave = np.log(self_loop), np.log1p(-self_loop)
    logp, init, final = g.log_probs(log_self, log_leave)
    total, paths, arcs, finals = 0.0, [], [], []
    for a, b in zip(bounds[:-1], bounds[1:]):
        _dense_vs_graph(g, ll_all[a:b], log_self, log_leave)
        log_z, _, arc_counts, final_counts = kernels.forward_backward(
            ll_all[a:b], g.state_pdf, g.arc_src, g.arc_dst, logp, init, final, S)
        paths.append(kernels.viterbi(ll_all[a:b], g.state_pdf, g.arc_src, g.arc_dst, logp, init, final, 0.0)[1])
        total += log_z
        arcs.append(arc_counts)
        finals.append(final_counts)
    for impl in ("log", "scaling"):
        model.implementation = impl
        assert model.score(X, lengths) == pytest.approx(total, rel=1e-10)
    vlp, states = model.decode(X, lengths)
    np.testing.assert_array_equal(states, np.concatenate(paths))
    # training: the graph trainer's self-loop / leave counts give the dense model's M-step
    stay, leave = _transition_counts([g] * len(lengths), arcs, finals, S)
    model.update(model.accumulate(X, lengths))
    np.testing.assert_allclose(np.diag(model.transmat_), stay / (stay + leave), rtol=1e-9)
    np.testing.assert_allclose(model.endprob_[-1], leave[-1] / (stay[-1] + leave[-1]), rtol=1e-9)
