"""Forward-backward and Viterbi kernels against brute-force enumeration of state paths."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.special import logsumexp

from gmmhmm.hmm import kernels as K
from gmmhmm.hmm.base import min_frames


def random_model(rng, S, N, zeros=False):
    startprob = rng.dirichlet(np.ones(S))
    transmat = rng.dirichlet(np.ones(S), size=S)
    endprob = np.ones(S)
    if zeros:  # left-to-right with a forced final state
        startprob = np.eye(S)[0]
        transmat = np.triu(transmat)
        transmat /= transmat.sum(axis=1, keepdims=True)
        endprob = np.eye(S)[-1]
    framelogprob = rng.normal(scale=3.0, size=(N, S))
    return startprob, transmat, endprob, framelogprob


def brute_force(startprob, transmat, endprob, framelogprob):
    """Log-probability of every path -> total, best path, posteriors, expected transitions."""
    N, S = framelogprob.shape
    paths = np.array(list(itertools.product(range(S), repeat=N)))
    with np.errstate(divide="ignore"):
        lp = (np.log(startprob[paths[:, 0]]) + np.log(endprob[paths[:, -1]])
              + framelogprob[np.arange(N), paths].sum(axis=1)
              + np.log(transmat[paths[:, :-1], paths[:, 1:]]).sum(axis=1))
    total = logsumexp(lp)
    best = int(np.argmax(lp))
    if not np.isfinite(total):
        return total, lp[best], paths[best], None, None
    w = np.exp(lp - total)
    post = np.zeros((N, S))
    xi = np.zeros((S, S))
    for p, wp in zip(paths, w):
        post[np.arange(N), p] += wp
        np.add.at(xi, (p[:-1], p[1:]), wp)
    return total, lp[best], paths[best], post, xi


def fb_scaling(startprob, transmat, framelogprob, endprob):
    """One sequence through the batch scaled path, called like ``K.forward_backward_log``."""
    lps, post, xi = K.forward_backward_multi(startprob, transmat, endprob, framelogprob,
                                             np.array([0, len(framelogprob)]), use_log=False)
    return lps[0], post, xi


CASES = [(S, N, zeros, seed) for S in (1, 2, 3) for N in (1, 2, 6) for zeros in (False, True)
         for seed in (0, 1)]


@pytest.mark.parametrize("S,N,zeros,seed", CASES)
def test_forward_backward_matches_enumeration(S, N, zeros, seed):
    rng = np.random.default_rng(seed)
    startprob, transmat, endprob, flp = random_model(rng, S, N, zeros)
    total, _, _, post, xi = brute_force(startprob, transmat, endprob, flp)
    offsets = np.array([0, N])
    if not np.isfinite(total):  # too short for the forced final state
        for use_log in (False, True):
            lp = K.forward_multi(startprob, transmat, endprob, flp, offsets, use_log)[0]
            assert lp == -np.inf
        for fb in (fb_scaling, K.forward_backward_log):
            lp, p, x = fb(startprob, transmat, flp, endprob)
            assert lp == -np.inf and not p.any() and not x.any()
        return
    for fb in (fb_scaling, K.forward_backward_log):
        lp, p, x = fb(startprob, transmat, flp, endprob)
        assert lp == pytest.approx(total, rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(p, post, atol=1e-12)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
        np.testing.assert_allclose(x, xi, atol=1e-12)
    for use_log in (False, True):
        lps, p, x = K.forward_backward_multi(startprob, transmat, endprob, flp, offsets, use_log)
        assert lps[0] == pytest.approx(total, rel=1e-12)
        np.testing.assert_allclose(p, post, atol=1e-12)
        np.testing.assert_allclose(x, xi, atol=1e-12)
        assert K.forward_multi(startprob, transmat, endprob, flp, offsets, use_log)[0] == \
            pytest.approx(total, rel=1e-12)


@pytest.mark.parametrize("S,N,zeros,seed", CASES)
def test_viterbi_matches_enumeration(S, N, zeros, seed):
    rng = np.random.default_rng(seed + 100)
    startprob, transmat, endprob, flp = random_model(rng, S, N, zeros)
    _, best_lp, best_path, _, _ = brute_force(startprob, transmat, endprob, flp)
    with np.errstate(divide="ignore"):
        lp, path = K.viterbi(np.log(startprob), np.log(transmat), flp, np.log(endprob))
    assert lp == pytest.approx(best_lp, rel=1e-12) or lp == best_lp == -np.inf
    if np.isfinite(best_lp):
        np.testing.assert_array_equal(path, best_path)


def test_public_single_sequence_log_pair():
    rng = np.random.default_rng(5)
    startprob, transmat, endprob, flp = random_model(rng, 3, 6)
    total, _, _, post, _ = brute_force(startprob, transmat, endprob, flp)
    with np.errstate(divide="ignore"):
        logs = np.log(startprob), np.log(transmat), flp, np.log(endprob)
    lp_log, fwd_log = K.forward_log(*logs)
    bwd_log = K.backward_log(*logs)
    assert lp_log == pytest.approx(total, rel=1e-12)
    np.testing.assert_allclose(np.exp(fwd_log + bwd_log - total), post, atol=1e-12)


def test_many_sequences_equal_one_at_a_time():
    rng = np.random.default_rng(7)
    S = 4
    startprob, transmat, endprob, _ = random_model(rng, S, 1)
    lengths = np.array([5, 1, 17, 3, 40])
    flp = rng.normal(scale=4.0, size=(lengths.sum(), S))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    for use_log, parallel in itertools.product((False, True), (False, True)):
        lps, post, xi = K.forward_backward_multi(startprob, transmat, endprob, flp, offsets, use_log,
                                                 parallel=parallel)
        lp_fwd = K.forward_multi(startprob, transmat, endprob, flp, offsets, use_log,
                                 parallel=parallel)
        np.testing.assert_allclose(lp_fwd, lps, rtol=1e-12)
        xi_ref = np.zeros((S, S))
        for k in range(len(lengths)):
            a, b = offsets[k], offsets[k + 1]
            lp, p, x = K.forward_backward_log(startprob, transmat, flp[a:b], endprob)
            assert lps[k] == pytest.approx(lp, rel=1e-12)
            np.testing.assert_allclose(post[a:b], p, atol=1e-12)
            xi_ref += x
        np.testing.assert_allclose(xi, xi_ref, rtol=1e-10, atol=1e-12)
    lps, states = K.viterbi_multi(startprob, transmat, endprob, flp, offsets, parallel=True)
    lps2, states2 = K.viterbi_multi(startprob, transmat, endprob, flp, offsets, parallel=False)
    np.testing.assert_array_equal(lps, lps2)
    np.testing.assert_array_equal(states, states2)
    for k in range(len(lengths)):
        a, b = offsets[k], offsets[k + 1]
        lp, path = K.viterbi(np.log(startprob), np.log(transmat), flp[a:b], np.log(endprob))
        assert lps[k] == lp
        np.testing.assert_array_equal(states[a:b], path)


def test_scaling_falls_back_to_log_when_scaled_likelihoods_underflow():
    # State 0 explains every frame far better, but only state 1 is reachable
    # after the first frame: exp(flp - rowmax) underflows to 0 for state 1.
    startprob = np.array([0.0, 1.0])
    transmat = np.array([[1.0, 0.0], [0.0, 1.0]])
    flp = np.tile([0.0, -2000.0], (5, 1))
    end = np.ones(2)
    lp_s, post_s, _ = fb_scaling(startprob, transmat, flp, end)
    lp_l, post_l, _ = K.forward_backward_log(startprob, transmat, flp, end)
    assert lp_s == pytest.approx(-10000.0) and lp_l == pytest.approx(-10000.0)
    np.testing.assert_allclose(post_s, [[0, 1]] * 5)
    assert K.forward_multi(startprob, transmat, end, flp, np.array([0, 5]), False)[0] == \
        pytest.approx(-10000.0)


@pytest.mark.parametrize("parallel", [False, True])
def test_scaling_falls_back_to_log_on_a_subnormal_normaliser(parallel):
    """Only state 0 is reachable and its scaled likelihood e^-732 is subnormal: 1/c would
    overflow (the scaled scoring pass used to return NaN here)."""
    startprob = np.array([1.0, 0.0])
    transmat = np.eye(2)
    flp = np.array([[0.0, 0.0], [-732.0, 0.0]])
    seq = np.tile(flp, (3, 1))  # three copies of the sequence, scored together
    offsets = np.array([0, 2, 4, 6])
    end = np.ones(2)
    for use_log in (False, True):
        lps = K.forward_multi(startprob, transmat, end, seq, offsets, use_log, parallel=parallel)
        np.testing.assert_allclose(lps, -732.0, rtol=1e-14)
        lps, post, xi = K.forward_backward_multi(startprob, transmat, end, seq, offsets, use_log,
                                                 parallel=parallel)
        np.testing.assert_allclose(lps, -732.0, rtol=1e-14)
        np.testing.assert_allclose(post, [[1, 0]] * 6, atol=1e-12)
        np.testing.assert_allclose(xi, [[3, 0], [0, 0]], atol=1e-12)


@pytest.mark.parametrize("parallel", [False, True])
def test_mass_lost_to_underflow_in_the_scaled_pass_is_redone_in_log_space(parallel):
    """State 1 starts 800 nats down (its scaled likelihood underflows to 0) but carries nearly all
    the mass: state 0 dies at frame 5 and the decoy state 2 pays 100 nats a frame. The scaled pass
    reaches the end through the decoy with a wrong total; a backward pass must notice (it used
    to return NaN posteriors and the decoy's log-likelihood), and log space give the exact answer.
    The same case as the graph kernel's test in test_graphs.py."""
    T = 10
    flp = np.zeros((T, 3))
    flp[0, 1] = -800.0
    flp[5:, 0] = -1000.0
    flp[:, 2] = -100.0
    startprob, transmat, end = np.full(3, 1 / 3), np.eye(3), np.ones(3)
    expected = np.log(1 / 3) + np.logaddexp.reduce([-800.0, -5000.0, -100.0 * T])
    offsets = np.array([0, T, 2 * T])
    lps, post, xi = K.forward_backward_multi(startprob, transmat, end, np.tile(flp, (2, 1)), offsets, False,
                                             parallel=parallel)
    np.testing.assert_allclose(lps, expected, rtol=1e-12)
    np.testing.assert_allclose(post[:, 1], 1.0, atol=1e-12)
    np.testing.assert_allclose(xi, np.diag([0.0, 2 * (T - 1), 0.0]), atol=1e-9)
    # score's forward-only pass: it used to return the decoy's total
    lps = K.forward_multi(startprob, transmat, end, np.tile(flp, (2, 1)), offsets, False, parallel=parallel)
    np.testing.assert_allclose(lps, expected, rtol=1e-12)


def test_min_frames_of_left_to_right_with_final_state():
    S = 4
    start = np.eye(S)[0]
    trans = np.triu(np.ones((S, S))) - np.triu(np.ones((S, S)), 2)  # stay or advance by one
    assert min_frames(start, trans, np.eye(S)[-1]) == S
    assert min_frames(start, trans, np.ones(S)) == 1
    assert min_frames(start, np.eye(S), np.eye(S)[-1]) == 0  # final state unreachable


@pytest.mark.parametrize("S", [2, 3])
def test_log_path_is_exact_when_shifted_sums_underflow(S):
    """The dominant state cannot continue; the only surviving path sits 2000 nats below it."""
    startprob = np.full(S, 1.0 / S)
    transmat = np.eye(S)
    flp = np.full((4, S), -np.inf)
    flp[0] = -2000.0
    flp[0, 0] = 0.0
    flp[1:, 1] = 0.0
    flp[1:, 2:] = -1.0
    end = np.ones(S)
    total, best_lp, best_path, post, xi = brute_force(startprob, transmat, end, flp)
    assert total == pytest.approx(np.log(1.0 / S) - 2000.0 + np.log1p((S - 2) * np.exp(-3.0)),
                                  rel=1e-12)
    for fb in (K.forward_backward_log, fb_scaling):
        lp, p, x = fb(startprob, transmat, flp, end)
        assert lp == pytest.approx(total, rel=1e-12)
        np.testing.assert_allclose(p, post, atol=1e-12)
        np.testing.assert_allclose(x, xi, atol=1e-12)
    with np.errstate(divide="ignore"):
        lp, path = K.viterbi(np.log(startprob), np.log(transmat), flp, np.log(end))
    assert lp == pytest.approx(best_lp, rel=1e-12)
    np.testing.assert_array_equal(path, best_path)


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("order", ["good-bad", "bad-good", "good-bad-good"])
def test_batch_mixing_good_and_underflowing_sequences_counts_no_cross_boundary_transitions(
        order, parallel):
    """A sequence whose scaled pass underflows is redone in log space; the frames of its
    neighbours must not pair with it (the previous sequence's last alpha row used to
    multiply its first frame: 7.37 expected transitions on a 4 + 5 frame batch)."""
    rng = np.random.default_rng(0)
    startprob = np.array([0.0, 0.5, 0.5])
    transmat = np.array([[0.2, 0.4, 0.4], [0.0, 0.6, 0.4], [0.0, 0.3, 0.7]])  # state 0 unreachable
    end = np.ones(3)
    good = rng.normal(scale=3.0, size=(4, 3))
    bad = np.tile([0.0, -2000.0, -1999.0], (5, 1))  # only the unreachable state explains frames 1..4
    bad[0] = [0.0, -1.0, -1.0]  # a first frame that the reachable states still explain
    seqs = {"good-bad": [good, bad], "bad-good": [bad, good], "good-bad-good": [good, bad, good[::-1]]}[order]
    flp = np.concatenate(seqs)
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in seqs])])
    xi_ref = np.zeros((3, 3))
    post_ref = []
    lp_ref = []
    for s in seqs:
        total, _, _, post, xi = brute_force(startprob, transmat, end, s)
        lp_ref.append(total)
        post_ref.append(post)
        xi_ref += xi
    assert xi_ref.sum() == pytest.approx(len(flp) - len(seqs))
    for use_log in (False, True):
        lps, post, xi = K.forward_backward_multi(startprob, transmat, end, flp, offsets, use_log,
                                                 parallel=parallel)
        np.testing.assert_allclose(lps, lp_ref, rtol=1e-12)
        np.testing.assert_allclose(post, np.concatenate(post_ref), atol=1e-12)
        np.testing.assert_allclose(xi, xi_ref, atol=1e-9)
        assert xi.sum() == pytest.approx(len(flp) - len(seqs), abs=1e-9)


def test_parallel_log_forward_backward_memory_does_not_grow_with_sequences_times_states_squared():
    """The parallel log-space pass sums expected transitions per group of sequences (a fixed
    number of groups), not in one S x S matrix per sequence: 5000 sequences of 20 states held
    16 MB of them. Results: those of the serial pass, and of brute-force enumeration."""
    import tracemalloc

    rng = np.random.default_rng(11)
    S, n_seq = 20, 5000
    startprob, transmat, endprob, _ = random_model(rng, S, 1)
    flp = rng.normal(scale=3.0, size=(2 * n_seq, S))
    offsets = np.arange(0, 2 * n_seq + 1, 2)
    serial = K.forward_backward_multi(startprob, transmat, endprob, flp, offsets, True, parallel=False)
    K.forward_backward_multi(startprob, transmat, endprob, flp[:4], offsets[:3], True, parallel=True)  # compiled
    tracemalloc.start()
    try:
        lps, post, xi = K.forward_backward_multi(startprob, transmat, endprob, flp, offsets, True, parallel=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    outputs = lps.nbytes + post.nbytes + xi.nbytes
    assert peak < outputs + 4 * 1024**2, peak
    np.testing.assert_array_equal(lps, serial[0])
    np.testing.assert_array_equal(post, serial[1])
    np.testing.assert_allclose(xi, serial[2], rtol=1e-12)


@pytest.mark.parametrize("n_seq", [1, 3, 130])
def test_parallel_log_forward_backward_of_many_sequences_matches_enumeration(n_seq):
    rng = np.random.default_rng(n_seq)
    startprob, transmat, endprob, _ = random_model(rng, 3, 1, zeros=n_seq == 3)
    lengths = rng.integers(1, 5, size=n_seq)
    flp = rng.normal(scale=3.0, size=(lengths.sum(), 3))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    lps, post, xi = K.forward_backward_multi(startprob, transmat, endprob, flp, offsets, True, parallel=True)
    xi_ref = np.zeros((3, 3))
    for k in range(n_seq):
        a, b = offsets[k], offsets[k + 1]
        total, _, _, p, x = brute_force(startprob, transmat, endprob, flp[a:b])
        if not np.isfinite(total):
            assert lps[k] == -np.inf and not post[a:b].any()
            continue
        assert lps[k] == pytest.approx(total, rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(post[a:b], p, atol=1e-12)
        xi_ref += x
    np.testing.assert_allclose(xi, xi_ref, rtol=1e-12, atol=1e-12)
