"""GaussianHMM / GMMHMM behaviour: recovery, additive statistics, topologies, errors, numerics."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from gmmhmm import errors
from gmmhmm.hmm import GMMHMM, GaussianHMM, HMMStats, topology


def true_gaussian_hmm():
    model = GaussianHMM(n_components=3, covariance_type="diag", init_params="")
    model.startprob_ = np.array([0.6, 0.3, 0.1])
    model.transmat_ = np.array([[0.8, 0.1, 0.1], [0.15, 0.8, 0.05], [0.1, 0.2, 0.7]])
    model.means_ = np.array([[0.0, 1.0], [5.0, -2.0], [-5.0, 3.0]])
    model.covars_ = np.array([[1.0, 0.5], [0.7, 1.2], [1.5, 0.8]])
    return model


def best_permutation(estimated, true):
    S = len(true)
    return min(itertools.permutations(range(S)),
               key=lambda p: np.abs(estimated[list(p)] - true).sum())


def sample_sequences(model, lengths, seed):
    parts = [model.sample(n, random_state=seed + i) for i, n in enumerate(lengths)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def test_seed_example_recovers_means():
    """The brief's hmmlearn example, unchanged but for the import."""
    gen = true_gaussian_hmm()
    gen.means_ = np.array([[0.0], [5.0], [-5.0]])
    gen.covars_ = np.ones((3, 1))
    X, _ = gen.sample(1000, random_state=0)
    model = GMMHMM(n_components=3, n_mix=1, covariance_type="diag", n_iter=100, random_state=0)
    model.fit(X)
    logprob, states = model.decode(X)
    assert np.isfinite(logprob) and states.shape == (1000,)
    np.testing.assert_allclose(np.sort(model.means_.ravel()), [-5, 0, 5], atol=0.2)
    np.testing.assert_allclose(model.transmat_.sum(axis=1), 1.0)


@pytest.mark.parametrize("implementation", ["log", "scaling"])
def test_gaussian_hmm_recovers_known_parameters(implementation):
    true = true_gaussian_hmm()
    lengths = [300] * 10
    X, _ = sample_sequences(true, lengths, seed=1)
    model = GaussianHMM(n_components=3, covariance_type="diag", n_iter=50, random_state=0,
                        implementation=implementation).fit(X, lengths)
    p = list(best_permutation(model.means_, true.means_))
    np.testing.assert_allclose(model.means_[p], true.means_, atol=0.15)
    np.testing.assert_allclose(model._covars_[p], true._covars_, rtol=0.15)
    np.testing.assert_allclose(model.transmat_[np.ix_(p, p)], true.transmat_, atol=0.05)
    assert model.monitor_.converged


def test_gmmhmm_recovers_two_component_emissions():
    gen = GMMHMM(n_components=2, n_mix=2, covariance_type="diag")
    gen.startprob_ = np.array([0.5, 0.5])
    gen.transmat_ = np.array([[0.9, 0.1], [0.2, 0.8]])
    gen.weights_ = np.array([[0.3, 0.7], [0.5, 0.5]])
    gen.means_ = np.array([[[-8.0], [-4.0]], [[4.0], [8.0]]])
    gen.covars_ = np.full((2, 2, 1), 0.5)
    lengths = [200] * 10
    X, _ = sample_sequences(gen, lengths, seed=3)
    model = GMMHMM(n_components=2, n_mix=2, n_iter=50, random_state=0).fit(X, lengths)
    order = np.argsort(model.means_[:, :, 0].mean(axis=1))
    means = model.means_[order]
    weights = model.weights_[order]
    inner = np.argsort(means[:, :, 0], axis=1)
    means = np.take_along_axis(means[:, :, 0], inner, axis=1)
    weights = np.take_along_axis(weights, inner, axis=1)
    np.testing.assert_allclose(means, [[-8, -4], [4, 8]], atol=0.15)
    np.testing.assert_allclose(weights, gen.weights_, atol=0.06)
    np.testing.assert_allclose(model.transmat_[np.ix_(order, order)], gen.transmat_, atol=0.05)


@pytest.mark.parametrize("cls", ["gaussian", "gmm"])
def test_split_accumulate_then_update_equals_one_fit_iteration(cls):
    true = true_gaussian_hmm()
    lengths = [50, 70, 30, 90]
    X, _ = sample_sequences(true, lengths, seed=5)
    if cls == "gaussian":
        make = lambda: GaussianHMM(3, covariance_type="full", n_iter=1, init_params="")  # noqa: E731
        emission = dict(means_=true.means_ + 0.3, covars_=np.tile(np.eye(2), (3, 1, 1)))
    else:
        make = lambda: GMMHMM(3, n_mix=2, covariance_type="diag", n_iter=1, init_params="")  # noqa: E731
        emission = dict(weights_=np.full((3, 2), 0.5),
                        means_=np.stack([true.means_ - 0.5, true.means_ + 0.5], axis=1),
                        covars_=np.ones((3, 2, 2)))

    def configured():
        m = make()
        m.startprob_, m.transmat_ = true.startprob_.copy(), true.transmat_.copy()
        for k, v in emission.items():
            setattr(m, k, v.copy())
        return m

    one = configured().fit(X, lengths)
    two = configured()
    cut = lengths[0] + lengths[1]
    stats = two.accumulate(X[:cut], lengths[:2]) + two.accumulate(X[cut:], lengths[2:])
    assert isinstance(stats, HMMStats) and stats.n_sequences == 4 and stats.n_frames == len(X)
    assert stats.log_prob == pytest.approx(one.monitor_.history[-1], rel=1e-12)
    assert sum([two.accumulate(X, lengths)]).log_prob == pytest.approx(stats.log_prob, rel=1e-12)
    two.update(stats)
    for name in ("startprob_", "transmat_", "means_", "covars_"):
        np.testing.assert_allclose(getattr(two, name), getattr(one, name), rtol=1e-10, atol=1e-12)


def test_left_to_right_structural_zeros_survive_training_and_priors():
    S = 4
    start, trans = topology.left_to_right(S, max_jump=2)
    assert np.all(trans[np.tril_indices(S, -1)] == 0) and trans[0, 3] == 0
    np.testing.assert_allclose(trans.sum(axis=1), 1.0)
    gen = GaussianHMM(S)
    gen.startprob_, gen.transmat_ = start, np.array(
        [[0.7, 0.2, 0.1, 0], [0, 0.7, 0.2, 0.1], [0, 0, 0.8, 0.2], [0, 0, 0, 1.0]])
    gen.means_ = np.arange(S, dtype=float)[:, None] * 3
    gen.covars_ = np.ones((S, 1))
    lengths = [25] * 8
    X, _ = sample_sequences(gen, lengths, seed=7)
    model = GaussianHMM(S, n_iter=5, init_params="mc", transmat_prior=2.0, startprob_prior=3.0,
                        random_state=0)
    model.startprob_, model.transmat_ = start.copy(), trans.copy()
    model.fit(X, lengths)
    assert np.all(model.startprob_[1:] == 0)
    assert np.all(model.transmat_[trans == 0] == 0)
    assert np.all(model.transmat_[trans > 0] > 0)
    s_e, t_e = topology.ergodic(3)
    np.testing.assert_allclose(t_e, 1 / 3)
    np.testing.assert_allclose(s_e, 1 / 3)


def test_too_short_sequence_for_forced_final_state_raises():
    S = 4
    model = GaussianHMM(S)
    model.startprob_, model.transmat_, model.endprob_ = topology.left_to_right(S, exit_prob=0.5)
    model.means_ = np.zeros((S, 2))
    model.covars_ = np.ones((S, 2))
    X = np.random.default_rng(0).normal(size=(12, 2))
    assert np.isfinite(model.score(X, [4, 8]))
    for method in (model.score, model.score_samples, model.decode, model.accumulate):
        with pytest.raises(errors.SequenceTooShortError, match=r"sequence 1 has 3 frame\(s\).*at least 4"):
            method(X[:12], [5, 3, 4])
    # every state may end: nothing is too short
    model.endprob_ = None
    model.transmat_ = topology.left_to_right(S)[1]
    assert np.isfinite(model.score(X[:2]))


def test_million_frame_sequence_scores_and_decodes():
    model = true_gaussian_hmm()
    X, Z = model.sample(2000, random_state=0)
    X = np.tile(X, (500, 1))  # 1,000,000 frames, one sequence
    scores = {}
    for impl in ("scaling", "log"):
        model.implementation = impl
        scores[impl] = model.score(X)
    assert np.isfinite(scores["scaling"]) and scores["scaling"] < -1e6
    assert scores["scaling"] == pytest.approx(scores["log"], rel=1e-10)
    model.implementation = "scaling"
    lp, post = model.score_samples(X)
    assert lp == pytest.approx(scores["log"], rel=1e-10)
    assert np.all(np.isfinite(post))
    np.testing.assert_allclose(post.sum(axis=1), 1.0, atol=1e-9)
    vlp, states = model.decode(X)
    assert np.isfinite(vlp) and vlp <= lp
    assert states.min() >= 0 and states.max() < 3
    assert np.mean(states[:2000] == Z) > 0.9


def _tiny_hmm(covariance_type, n_states, rng, with_end):
    """A tiny GaussianHMM plus its dense covariance matrices, built independently of the library."""
    D = 2
    model = GaussianHMM(n_states, covariance_type=covariance_type, init_params="", params="")
    model.startprob_ = rng.dirichlet(np.ones(n_states))
    model.transmat_ = rng.dirichlet(np.ones(n_states), size=n_states)
    model.means_ = rng.normal(scale=1.5, size=(n_states, D))
    a = rng.normal(size=(n_states, D, D)) * 0.5
    full = a @ a.transpose(0, 2, 1) + 0.5 * np.eye(D)
    if covariance_type == "full":
        model.covars_, dense = full, full
    elif covariance_type == "tied":
        model.covars_, dense = full[0], np.stack([full[0]] * n_states)
    elif covariance_type == "diag":
        var = rng.uniform(0.3, 2.0, size=(n_states, D))
        model.covars_, dense = var, np.stack([np.diag(v) for v in var])
    else:
        var = rng.uniform(0.3, 2.0, size=n_states)
        model.covars_, dense = var, var[:, None, None] * np.eye(D)
    end = rng.uniform(0.1, 0.9, size=n_states) if with_end else np.ones(n_states)
    if with_end:  # exit probabilities: each row of transmat_ plus its exit sums to 1
        model.endprob_ = end
        model.transmat_ *= 1.0 - end[:, None]
    return model, dense, end


def _enumerate_paths(model, dense, end, X):
    """Every state path of one sequence: total log-prob, best path and its log-prob, posteriors."""
    T, S = len(X), model.n_components
    flp = np.column_stack([multivariate_normal(model.means_[s], dense[s]).logpdf(X).reshape(T)
                           for s in range(S)])
    paths = np.array(list(itertools.product(range(S), repeat=T)))
    lp = (np.log(model.startprob_[paths[:, 0]]) + np.log(end[paths[:, -1]])
          + flp[np.arange(T), paths].sum(axis=1)
          + np.log(model.transmat_[paths[:, :-1], paths[:, 1:]]).sum(axis=1))
    total = logsumexp(lp)
    post = np.zeros((T, S))
    for path, w in zip(paths, np.exp(lp - total)):
        post[np.arange(T), path] += w
    best = int(np.argmax(lp))
    assert np.sort(lp)[-2] < lp[best] - 1e-9  # a unique best path, so the comparison is well defined
    return total, paths[best], lp[best], post


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("n_states, lengths, with_end", [(2, [7], False), (3, [5, 1, 3], True),
                                                           (3, [6], True), (2, [4, 7], False)])
def test_public_methods_match_enumeration_of_all_state_paths(covariance_type, n_states, lengths, with_end):
    """score / predict_proba / decode (viterbi and map) / predict against brute force over every path."""
    rng = np.random.default_rng(n_states * 10 + len(lengths) + sum(lengths))
    model, dense, end = _tiny_hmm(covariance_type, n_states, rng, with_end)
    X = rng.normal(scale=2.0, size=(sum(lengths), 2))
    bounds = np.cumsum([0, *lengths])
    seqs = [_enumerate_paths(model, dense, end, X[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    total = sum(s[0] for s in seqs)
    best_path = np.concatenate([s[1] for s in seqs])
    best_lp = sum(s[2] for s in seqs)
    post = np.concatenate([s[3] for s in seqs])
    for impl in ("scaling", "log"):
        model.implementation = impl
        assert model.score(X, lengths) == pytest.approx(total, rel=1e-10)
        lp, p = model.score_samples(X, lengths)
        assert lp == pytest.approx(total, rel=1e-10)
        np.testing.assert_allclose(p, post, atol=1e-10)
        np.testing.assert_allclose(model.predict_proba(X, lengths), post, atol=1e-10)
    vit_lp, vit_path = model.decode(X, lengths)
    assert vit_lp == pytest.approx(best_lp, rel=1e-10)
    np.testing.assert_array_equal(vit_path, best_path)
    np.testing.assert_array_equal(model.predict(X, lengths), best_path)
    map_lp, map_path = model.decode(X, lengths, algorithm="map")
    np.testing.assert_array_equal(map_path, post.argmax(axis=1))
    assert map_lp == pytest.approx(post.max(axis=1).sum(), rel=1e-10)  # hmmlearn's convention
    model.algorithm = "map"
    np.testing.assert_array_equal(model.predict(X, lengths), post.argmax(axis=1))


def test_exit_probabilities_are_reestimated_from_expected_exit_counts():
    """HTK's exit transition: after one EM step ``transmat_[i, j] = xi_ij / occ_i`` and
    ``endprob_[i] = end_i / occ_i``, with expected counts from every state path."""
    rng = np.random.default_rng(3)
    model, dense, end = _tiny_hmm("diag", 3, rng, with_end=True)
    model.params = "t"
    lengths = [4, 5, 3]
    X = rng.normal(scale=2.0, size=(sum(lengths), 2))
    S = 3
    xi, end_counts, occ = np.zeros((S, S)), np.zeros(S), np.zeros(S)
    for a, b in zip(np.cumsum([0, *lengths[:-1]]), np.cumsum(lengths)):
        T = b - a
        flp = np.column_stack([multivariate_normal(model.means_[s], dense[s]).logpdf(X[a:b]).reshape(T)
                               for s in range(S)])
        paths = np.array(list(itertools.product(range(S), repeat=T)))
        lp = (np.log(model.startprob_[paths[:, 0]]) + np.log(end[paths[:, -1]])
              + flp[np.arange(T), paths].sum(axis=1)
              + np.log(model.transmat_[paths[:, :-1], paths[:, 1:]]).sum(axis=1))
        for path, w in zip(paths, np.exp(lp - logsumexp(lp))):
            np.add.at(xi, (path[:-1], path[1:]), w)
            end_counts[path[-1]] += w
            np.add.at(occ, path, w)
    before = model.score(X, lengths)
    for impl in ("scaling", "log"):
        model.implementation = impl
        stats = model.accumulate(X, lengths)
        np.testing.assert_allclose(stats.trans, xi, atol=1e-10)
        np.testing.assert_allclose(stats.end, end_counts, atol=1e-10)
    new = copy.deepcopy(model).update(stats)
    np.testing.assert_allclose(new.transmat_, xi / occ[:, None], rtol=1e-9)
    np.testing.assert_allclose(new.endprob_, end_counts / occ, rtol=1e-9)
    np.testing.assert_allclose(new.transmat_.sum(axis=1) + new.endprob_, 1.0, atol=1e-12)
    assert new.score(X, lengths) >= before  # EM with the exits in the likelihood


def test_word_model_left_only_through_its_final_state_keeps_its_structure():
    """A left-to-right model with exit probability: training keeps the structural zeros,
    re-estimates the final state's exit, and never lowers the likelihood."""
    S = 4
    rng = np.random.default_rng(0)
    means = np.arange(S)[:, None] * 4.0
    seqs = [np.concatenate([m + rng.normal(size=(rng.integers(2, 7), 1)) for m in means])
            for _ in range(10)]
    X, lengths = np.concatenate(seqs), [len(x) for x in seqs]
    model = GaussianHMM(S, init_params="", n_iter=6, tol=-np.inf, random_state=0)
    model.startprob_, model.transmat_, model.endprob_ = topology.left_to_right(S, exit_prob=0.5)
    model.means_, model.covars_ = means + 0.5, np.full((S, 1), 2.0)
    model.fit(X, lengths)
    assert np.all(model.endprob_[:-1] == 0) and 0 < model.endprob_[-1] < 1
    assert np.all(np.tril(model.transmat_, -1) == 0)
    np.testing.assert_allclose(model.transmat_.sum(axis=1) + model.endprob_, 1.0, atol=1e-12)
    history = np.array(model.monitor_.history)
    assert np.all(np.diff(history) >= -1e-9 * np.abs(history[1:]))
    # the mean stay in the final state is 1 / exit: the frames per segment (2 to 6)
    assert 3 < 1 / model.endprob_[-1] < 5
    with pytest.raises(errors.SequenceTooShortError, match="at least 4"):
        model.score(X[:3])
    free = sum(model._get_n_fit_scalars_per_param().values())
    assert model._n_parameters() == free + S  # one exit per row of transitions (BIC / AIC)


def test_em_step_with_an_underflowing_sequence_in_the_batch_matches_log_space():
    """Bug: a sequence redone in log space leaked transition counts across the batch
    boundary into the scaled GEMM (transmat_[1, 2] > 0 with no 1 -> 2 transition)."""
    model = GaussianHMM(3, init_params="", params="st")
    model.startprob_ = np.array([0.0, 0.5, 0.5])
    model.transmat_ = np.array([[0.2, 0.4, 0.4], [0.0, 0.6, 0.4], [0.0, 0.3, 0.7]])  # 0 unreachable
    model.means_ = np.array([[0.0], [40.0], [41.0]])
    model.covars_ = np.ones((3, 1))
    good = np.array([[40.0], [40.1], [39.9], [40.2]])  # state 1 throughout
    bad = np.array([[40.0], [0.0], [0.1], [0.0], [-0.1]])  # frames 1..4 only the unreachable state explains
    X, lengths = np.concatenate([good, bad]), [4, 5]
    stats = {}
    for impl in ("scaling", "log"):
        model.implementation = impl
        stats[impl] = model.accumulate(X, lengths)
    assert stats["scaling"].trans.sum() == pytest.approx(7.0, abs=1e-9)
    np.testing.assert_allclose(stats["scaling"].trans, stats["log"].trans, atol=1e-9)
    new = copy.deepcopy(model).update(stats["scaling"])
    ref = copy.deepcopy(model).update(stats["log"])
    np.testing.assert_allclose(new.transmat_, ref.transmat_, atol=1e-9)


@pytest.mark.parametrize("covariance_type", ["spherical", "diag", "full", "tied"])
def test_covars_getter_output_sets_the_same_covariances(covariance_type):
    """The setter takes the getter's full matrices back (hmmlearn's convention) unchanged."""
    rng = np.random.default_rng(0)
    model, dense, _ = _tiny_hmm(covariance_type, 3, rng, with_end=False)
    compact = model._covars_.copy()
    model.covars_ = model.covars_
    np.testing.assert_array_equal(model._covars_, compact)
    np.testing.assert_array_equal(model.covars_, dense)


def test_get_set_params_round_trip():
    # save/load of fitted HMMs: tests/test_modelfile_models.py::test_fitted_hmm_round_trip
    model = GMMHMM(n_components=2, n_mix=2, covariance_type="full", n_iter=3, random_state=0)
    params = model.get_params()
    assert params["n_components"] == 2 and params["n_mix"] == 2 and params["covariance_type"] == "full"
    clone = type(model)(**params)
    assert clone.get_params() == params
    assert clone.set_params(n_iter=7) is clone and clone.n_iter == 7
    assert clone.get_params() == {**params, "n_iter": 7} and model.n_iter == 3
    with pytest.raises(errors.InvalidParameterError, match="n_mixes"):
        clone.set_params(n_mixes=3)


def test_variance_floor_fraction_of_global_variance():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(300, 2)) * [10.0, 1.0], np.full((50, 2), 3.0)])
    lengths = [350]
    model = GaussianHMM(2, n_iter=10, random_state=0, covars_prior=0.0, init_params="stc",
                        covars_floor_fraction=0.05)
    model.means_ = np.array([[0.0, 0.0], [3.0, 3.0]])  # one state starts on the constant block
    model.fit(X, lengths)
    floor = 0.05 * X.var(axis=0)
    assert np.all(model._covars_ >= floor * (1 - 1e-9))
    assert np.any(np.isclose(model._covars_, floor, rtol=1e-6))  # the constant block hits it
    full = GaussianHMM(2, covariance_type="full", n_iter=5, random_state=0, covars_prior=0.0,
                       covars_floor_fraction=0.05).fit(X, lengths)
    assert np.all(np.diagonal(full.covars_, axis1=1, axis2=2) >= floor * (1 - 1e-9))
    gmm = GMMHMM(2, n_mix=2, n_iter=5, random_state=0, covars_floor_fraction=0.05).fit(X, lengths)
    assert np.all(gmm.covars_ >= floor * (1 - 1e-9))


def test_collapsed_state_is_repaired_not_nan(caplog):
    """A state owning only identical frames gets zero ML variance: floored at min_covar, and reported."""
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(size=(100, 1)), np.full((20, 1), 50.0)])
    model = GaussianHMM(2, covars_prior=0.0, min_covar=1e-3, n_iter=3, random_state=0,
                        init_params="")
    model.startprob_ = np.array([0.5, 0.5])
    model.transmat_ = np.full((2, 2), 0.5)
    model.means_ = np.array([[0.0], [50.0]])
    model.covars_ = np.ones((2, 1))
    with caplog.at_level("INFO", logger="gmmhmm.mixture.estimate"):
        model.fit(X)
    assert "1 variance(s)" in caplog.text and "floored" in caplog.text
    np.testing.assert_allclose(model._covars_[1], 1e-3)
    assert np.isfinite(model.score(X))


@pytest.mark.parametrize("cls", ["gaussian", "gmm"])
def test_small_batches_give_the_same_results(cls, monkeypatch):
    """Sequences are processed in memory-bounded batches; the split must not matter."""
    from gmmhmm.hmm import base

    true = true_gaussian_hmm()
    lengths = [30, 1, 45, 12, 60, 7]
    X, _ = sample_sequences(true, lengths, seed=9)
    if cls == "gaussian":
        model = true
    else:
        model = GMMHMM(3, n_mix=2, n_iter=2, random_state=0).fit(X, lengths)
    ref_stats = model.accumulate(X, lengths)
    ref = (model.score(X, lengths), model.score_samples(X, lengths)[1], model.decode(X, lengths))
    monkeypatch.setattr(base, "_BATCH_ELEMENTS", 100)  # a few sequences per batch
    monkeypatch.setattr(base, "_MIN_BATCH_FRAMES", 1)
    assert len(list(base._batches(np.array(lengths), model._emission().n_columns))) >= 3
    stats = model.accumulate(X, lengths)
    assert stats.log_prob == pytest.approx(ref_stats.log_prob, rel=1e-12)
    np.testing.assert_allclose(stats.trans, ref_stats.trans, rtol=1e-10)
    np.testing.assert_allclose(stats.start, ref_stats.start, rtol=1e-10)
    np.testing.assert_allclose(stats.end, ref_stats.end, rtol=1e-10)
    np.testing.assert_allclose(stats.emission.s1, ref_stats.emission.s1, rtol=1e-10)
    assert model.score(X, lengths) == pytest.approx(ref[0], rel=1e-12)
    np.testing.assert_allclose(model.score_samples(X, lengths)[1], ref[1], atol=1e-12)
    lp, states = model.decode(X, lengths)
    assert lp == pytest.approx(ref[2][0], rel=1e-12)
    np.testing.assert_array_equal(states, ref[2][1])


def test_frame_batches_group_whole_sequences():
    from gmmhmm.hmm.base import frame_batches

    assert list(frame_batches([3, 4, 2, 9, 1], 7)) == [(0, 2), (2, 3), (3, 4), (4, 5)]
    assert list(frame_batches([3, 4, 2, 9, 1], 100)) == [(0, 5)]
    assert list(frame_batches([], 7)) == []


@pytest.mark.parametrize("cls", [GaussianHMM, GMMHMM])
def test_failed_fit_leaves_the_model_as_it_was(cls):
    """A refit that raises (here: fewer frames than states for the k-means start) changes
    nothing; GMMHMM had already reset its weights to uniform."""
    rng = np.random.RandomState(0)
    X = np.vstack([rng.normal(0, 1, (40, 2)), rng.normal(4, 1, (40, 2))])
    model = cls(3, random_state=0, **({"n_mix": 2} if cls is GMMHMM else {})).fit(X)
    before = {name: np.copy(getattr(model, name)) for name in cls._saved_attributes if hasattr(model, name)}
    score = model.score(X)
    with pytest.raises(errors.InvalidInputError):
        model.fit(X[:2])
    for name, value in before.items():
        np.testing.assert_array_equal(getattr(model, name), value, err_msg=name)
    assert model.score(X) == score


@pytest.mark.parametrize("cls", [GaussianHMM, GMMHMM])
@pytest.mark.parametrize("other_states", [1, 2])
def test_update_with_another_models_statistics_raises_and_changes_nothing(cls, other_states):
    """Statistics of a model with other states are refused by name; the 1-state model's
    startprob_ and transmat_ had already taken the 3 states' shapes, and the 2-state one
    failed inside numpy."""
    rng = np.random.RandomState(0)
    X = np.vstack([rng.normal(0, 1, (40, 2)), rng.normal(4, 1, (40, 2))])
    kwargs = {"n_mix": 2} if cls is GMMHMM else {}
    stats = cls(3, random_state=0, n_iter=2, **kwargs).fit(X).accumulate(X)
    model = cls(other_states, random_state=0, n_iter=2, **kwargs).fit(X)
    before = {name: np.copy(getattr(model, name)) for name in cls._saved_attributes if hasattr(model, name)}
    with pytest.raises(errors.InvalidInputError, match="3 states.*model has %d" % other_states):
        model.update(stats)
    for name, value in before.items():
        np.testing.assert_array_equal(getattr(model, name), value, err_msg=name)


def test_spherical_covars_getter_takes_the_dimension_from_n_features_before_means():
    """As hmmlearn: with n_features known and means_ not yet set, spherical covars_ are
    n_features x n_features matrices (they were n_components x n_components)."""
    model = GaussianHMM(3, covariance_type="spherical")
    model.n_features = 2
    model.covars_ = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(model.covars_, np.array([1.0, 2.0, 3.0])[:, None, None] * np.eye(2))
