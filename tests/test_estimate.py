"""The one Gaussian estimator, HTK's mix-up, and the numerical bugs of issue 15 (1, 4, 5, 7)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from gmmhmm.classifier import HMMClassifier
from gmmhmm.errors import InvalidInputError, InvalidParameterError
from gmmhmm.graphs import EmbeddedTrainer, Lexicon
from gmmhmm.hmm import GMMHMM, GaussianHMM
from gmmhmm.mixture import ConvergenceWarning, GaussianMixture, GaussianParams, GaussianStats, GaussianUpdateOptions, update_gaussians
from gmmhmm.mixture.estimate import global_variance
from gmmhmm.mixture.mixup import mix_up
from gmmhmm.modelfile import load

TYPES = ["full", "tied", "diag", "spherical"]


def _loewner_floor_holds(cov: np.ndarray, floor: np.ndarray, covariance_type: str, rtol: float = 1e-9) -> bool:
    """Every variance along every direction is at least the floor: C >= diag(floor)."""
    if covariance_type == "spherical":
        return bool(np.all(cov >= np.mean(floor) * (1 - rtol)))
    if covariance_type == "diag":
        return bool(np.all(cov >= floor * (1 - rtol)))
    s = 1 / np.sqrt(floor)
    white = cov.reshape(-1, len(floor), len(floor)) * s[:, None] * s[None, :]
    return bool(np.all(np.linalg.eigvalsh(white) >= 1 - rtol))


# --------------------------------------------------------------------------
# the estimator itself
# --------------------------------------------------------------------------

@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_map_update_matches_hand_computed_posterior_mode(covariance_type):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 2)) * [1.0, 3.0] + 5.0
    resp = rng.dirichlet([1.0, 1.0], size=50)
    stats = GaussianStats.from_posteriors(X, resp, "full" if covariance_type == "full" else "diag")
    mu0, tau, psi, nu = np.array([1.0, -1.0]), 2.0, 0.5, 3.0
    opts = GaussianUpdateOptions(means_prior=mu0, means_weight=tau, covars_prior=psi if covariance_type != "full"
                                 else psi * np.eye(2), covars_dof=nu, reg_covar=1e-4)
    new, report = update_gaussians(stats, covariance_type, opts)
    for k in range(2):
        r = resp[:, k]
        mu = (tau * mu0 + r @ X) / (tau + r.sum())
        np.testing.assert_allclose(new.means[k], mu, rtol=1e-12)
        d = X - mu
        scatter = (r[:, None] * d).T @ d + tau * np.outer(mu - mu0, mu - mu0)
        if covariance_type == "full":
            want = (psi * np.eye(2) + scatter) / (r.sum() + nu) + 1e-4 * np.eye(2)
        elif covariance_type == "diag":
            want = (psi + np.diag(scatter)) / (r.sum() + nu) + 1e-4
        else:
            want = (psi + np.trace(scatter)) / (2 * r.sum() + nu) + 1e-4
        np.testing.assert_allclose(new.covars[k], want, rtol=1e-10)
    assert report.n_kept == 0 and report.n_floored == 0


def test_weights_prior_and_min_weight():
    stats = GaussianStats("diag", np.array([6.0, 3.0, 1.0, 0.0]), np.zeros((4, 1)), np.ones((4, 1)))
    prev = GaussianParams("diag", np.zeros((4, 1)), np.ones((4, 1)), np.full((2, 2), 0.5))
    new, _ = update_gaussians(stats, "diag", GaussianUpdateOptions(weights_prior=1.0), prev)
    np.testing.assert_allclose(new.weights, [[7 / 11, 4 / 11], [2 / 3, 1 / 3]])
    new, report = update_gaussians(stats, "diag", GaussianUpdateOptions(min_weight=0.1), prev)
    np.testing.assert_allclose(new.weights[1], [1 / 1.1, 0.1 / 1.1])
    assert report.n_weights_floored == 1
    # no count and no prior in a mixture: its previous weights stay
    empty = GaussianStats("diag", np.array([1.0, 1.0, 0.0, 0.0]), np.zeros((4, 1)), np.ones((4, 1)))
    np.testing.assert_allclose(update_gaussians(empty, "diag", None, prev)[0].weights[1], [0.5, 0.5])


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("occupancy", [1e-200, 1e-300, 5e-324, 0.0])
def test_near_empty_component_keeps_previous_parameters_and_never_nan(covariance_type, occupancy):
    """Occupancy 1e-200 (or subnormal) with hmmlearn's MLE prior (dof formed as (n + 1) - 1 there)."""
    rng = np.random.default_rng(1)
    D = 3
    X = rng.normal(size=(40, D))
    resp = np.column_stack([np.ones(40), np.full(40, occupancy / 40)])
    stats = GaussianStats.from_posteriors(X, resp, "tied" if covariance_type == "tied" else covariance_type)
    prev_cov = {"full": np.stack([np.eye(D)] * 2), "tied": np.eye(D), "diag": np.ones((2, D)),
                "spherical": np.ones(2)}[covariance_type]
    prev = GaussianParams(covariance_type, np.array([[0.0] * D, [34.0] * D]), prev_cov * 2.0, np.array([[0.5, 0.5]]))
    new, report = update_gaussians(stats, covariance_type, GaussianUpdateOptions(variance_floor=1e-3), prev)
    for value in (new.means, new.covars, new.weights):
        assert np.all(np.isfinite(value))
    assert report.kept.tolist() == [False, True]
    np.testing.assert_array_equal(new.means[1], prev.means[1])
    if covariance_type != "tied":
        np.testing.assert_array_equal(new.covars[1], prev.covars[1])
    assert new.weights[0, 1] == pytest.approx(0.0, abs=1e-190)
    # a first estimate (no previous parameters): the empty component gets the global mean and
    # variance, plus reg_covar like every other
    first, _ = update_gaussians(stats, covariance_type, GaussianUpdateOptions(reg_covar=0.5))
    np.testing.assert_allclose(first.means[1], X.mean(axis=0))
    if covariance_type in ("diag", "spherical"):
        assert np.all(first.covars >= 0.5)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_floor_holds_for_every_component_and_is_reported(covariance_type):
    rng = np.random.default_rng(2)
    X = np.column_stack([rng.normal(size=60) * 10, 1.0 + 1e-12 * rng.normal(size=60), rng.normal(size=60)])
    X[:30, 2] *= 1e-5  # a component collapsed in one dimension
    resp = np.zeros((60, 2))
    resp[:30, 0] = resp[30:, 1] = 1.0
    stats = GaussianStats.from_posteriors(X, resp, covariance_type)
    floor = np.array([150.0 if covariance_type == "spherical" else 0.5, 1e-3, 1e-3])
    new, report = update_gaussians(stats, covariance_type, GaussianUpdateOptions(variance_floor=floor))
    assert report.n_floored > 0
    assert _loewner_floor_holds(np.asarray(new.covars), floor, covariance_type)
    # relative floor: HTK vFloor of the global variance (of the columns that vary at all)
    stats = GaussianStats.from_posteriors(X[:, [0, 2]], resp, covariance_type)
    frac = 0.99 if covariance_type in ("tied", "spherical") else 0.2  # pooled / averaged: close to global
    new, report = update_gaussians(stats, covariance_type, GaussianUpdateOptions(variance_floor_fraction=frac))
    g = global_variance(stats)
    np.testing.assert_allclose(g, X[:, [0, 2]].var(axis=0), rtol=1e-9)
    assert report.n_floored > 0
    assert _loewner_floor_holds(np.asarray(new.covars), frac * g, covariance_type)


def test_floor_leaves_covariances_above_it_untouched():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 3)) @ rng.normal(size=(3, 3))
    stats = GaussianStats.from_posteriors(X, np.ones((200, 1)), "full")
    plain, _ = update_gaussians(stats, "full")
    floored, report = update_gaussians(stats, "full", GaussianUpdateOptions(variance_floor=1e-8))
    assert report.n_floored == 0
    np.testing.assert_array_equal(plain.covars, floored.covars)


def test_bad_options_and_layouts_are_refused():
    stats = GaussianStats.zeros(2, 2, "diag")
    stats.n[:] = 1.0
    with pytest.raises(InvalidParameterError, match="variance_floor"):
        update_gaussians(stats, "diag", GaussianUpdateOptions(variance_floor=-1.0))
    with pytest.raises(InvalidParameterError, match="means_prior"):
        update_gaussians(stats, "diag", GaussianUpdateOptions(means_prior=float("nan")))
    with pytest.raises(InvalidInputError, match="cannot give"):
        update_gaussians(stats, "full")
    with pytest.raises(InvalidInputError, match="mixtures of 3"):
        update_gaussians(stats, "diag", n_mix=3)


# --------------------------------------------------------------------------
# bug 1: GMMHMM with a nearly empty component
# --------------------------------------------------------------------------

@pytest.mark.parametrize("covariance_type", TYPES)
def test_gmmhmm_survives_a_component_34_sigma_away(covariance_type):
    """After one EM step the far component's occupancy is ~1e-209 (not flushed to 0)."""
    X = np.random.default_rng(0).normal(size=(200, 1))
    m = GMMHMM(1, n_mix=2, covariance_type=covariance_type, n_iter=3, init_params="", tol=-np.inf)
    m.startprob_, m.transmat_ = np.array([1.0]), np.array([[1.0]])
    m.weights_ = np.array([[0.5, 0.5]])
    m.means_ = np.array([[[0.0], [34.0]]])
    m.covars_ = {"diag": np.ones((1, 2, 1)), "spherical": np.ones((1, 2)), "full": np.ones((1, 2, 1, 1)),
                 "tied": np.ones((1, 1, 1))}[covariance_type]
    m.n_iter = 1
    m.fit(X)
    assert 0 < m.weights_[0, 1] < 1e-150  # really tiny, not zero: the realistic case
    assert np.all(np.isfinite(m.covars_))  # was inf: the prior's denominator (n + 1) - 1 rounded to 0
    m.n_iter = 3
    m.fit(X)  # raised "increase reg_covar" (a parameter GMMHMM lacks)
    for name in ("weights_", "means_", "covars_"):
        assert np.all(np.isfinite(getattr(m, name))), name
    assert m.means_[0, 1, 0] == 34.0  # kept its parameters
    assert np.isfinite(m.score(X))


# --------------------------------------------------------------------------
# bug 4: floors hold after every M-step, in every model
# --------------------------------------------------------------------------

def _hard_data(seed: int, T: int = 400, D: int = 3):
    """Long sequence, a near-constant feature (1e-12) and a far, rarely visited cluster."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(T, D))
    X[:, 1] = 1.0 + 1e-12 * rng.normal(size=T)
    X[-3:, 0] += 40.0
    return X


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("kind", ["GaussianHMM", "GMMHMM"])
def test_hmm_floor_holds_after_every_m_step(kind, covariance_type, seed):
    X = _hard_data(seed)
    lengths = [100, 300]
    floor = np.full(3, 1e-2)
    if kind == "GaussianHMM":
        model = GaussianHMM(3, covariance_type=covariance_type, min_covar=1e-2, n_iter=1, random_state=seed,
                            covars_prior=0.0)
    else:  # with HTK's relative floor on top
        model = GMMHMM(2, n_mix=3, covariance_type=covariance_type, min_covar=1e-2, n_iter=1, random_state=seed,
                       covars_floor_fraction=0.01)
        floor = np.maximum(floor, 0.01 * X.var(axis=0))
    model.fit(X, lengths)
    for _ in range(4):
        model.update(model.accumulate(X, lengths))
        params = model._gaussian_params() if kind == "GMMHMM" else GaussianParams(
            covariance_type, model.means_, model._covars_, None)
        for value in (params.means, params.covars, params.weights if params.weights is not None else 0.0):
            assert np.all(np.isfinite(value))
        assert _loewner_floor_holds(params.covars, floor, covariance_type)


def test_classifier_min_covar_is_a_true_floor():
    """Issue 15 bug 4: a variance ended at 5.9e-9 with min_covar=1e-3."""
    rng = np.random.default_rng(4)
    X_list, y = [], []
    for label, centre in (("a", 0.0), ("b", 4.0)):
        for _ in range(4):
            x = rng.normal(centre, 1.0, size=(rng.integers(30, 60), 3))
            x[:, 2] = 0.5 + 1e-6 * rng.normal(size=len(x))  # nearly constant feature
            X_list.append(x)
            y.append(label)
    clf = HMMClassifier(n_states=3, mix_schedule=[1, 2, 4], n_iter=3, min_covar=1e-3).fit(X_list, y)
    for model in clf.models_:
        assert model.covars_.min() >= 1e-3 * (1 - 1e-12)
    assert clf.score(X_list, y) == 1.0


def test_embedded_trainer_floor_holds_after_every_m_step():
    lexicon = Lexicon({"ab": ["A", "B"], "b": ["B"]})
    rng = np.random.default_rng(9)
    centres = {p: rng.uniform(-6, 6, size=(3, 2)) for p in ("A", "B", "sil")}
    feats, texts = [], []
    for _ in range(12):
        words = list(rng.choice(lexicon.words, size=rng.integers(1, 3)))
        phones = ["sil"] + [p for w in words for p in lexicon.pronunciations[w]] + ["sil"]
        x = np.concatenate([np.repeat(centres[p], rng.integers(2, 6), axis=0) for p in phones])
        x = x + 0.5 * rng.normal(size=x.shape)
        feats.append(np.column_stack([x, 2.0 + 1e-12 * rng.normal(size=len(x))]))  # a near-constant feature
        texts.append(words)
    tr = EmbeddedTrainer(lexicon)
    tr.flat_start(feats)
    floor = tr.model.var_floor_.copy()
    for n_mix in (1, 4, 16):
        if n_mix != tr.model.n_mix:
            tr.model.split_mixtures(n_mix)
        tr.update(tr.accumulate(feats, texts))
        m = tr.model
        assert np.all(np.isfinite(m.means_)) and np.all(np.isfinite(m.covars_))
        assert np.all(m.covars_ >= floor * (1 - 1e-12)) and np.all(m.weights_ >= 1e-5 / 1.1)


def test_gaussian_mixture_near_empty_component_and_constant_feature():
    rng = np.random.default_rng(5)
    X = np.column_stack([rng.normal(size=300), np.full(300, 3.0) + 1e-12 * rng.normal(size=300)])
    for ct in TYPES:
        gmm = GaussianMixture(2, covariance_type=ct, means_init=[[0.0, 3.0], [60.0, 3.0]], max_iter=4, tol=0.0,
                              reg_covar=1e-6, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gmm.fit(X)
        assert np.all(np.isfinite(gmm.covariances_)) and np.all(np.isfinite(gmm.means_))
        diag = {"full": lambda c: np.diagonal(c, axis1=1, axis2=2), "tied": np.diag,
                "diag": lambda c: c, "spherical": lambda c: c}[ct](gmm.covariances_)
        assert np.all(diag >= 1e-6)


# --------------------------------------------------------------------------
# bug 5: HTK's mix-up
# --------------------------------------------------------------------------

def test_mix_up_penalises_components_already_split():
    p = GaussianParams("diag", np.array([[0.0, 0.0], [10.0, 10.0]]), np.array([[4.0, 1.0], [1.0, 1.0]]),
                       np.array([[0.8, 0.2]]))
    up = mix_up(p, 4)
    np.testing.assert_allclose(up.weights, [[0.4, 0.1, 0.4, 0.1]])
    # every dimension moves +-0.2 sd; '+' half in place, '-' half appended (HHEd UpMix)
    np.testing.assert_allclose(up.means, [[0.4, 0.2], [10.2, 10.2], [-0.4, -0.2], [9.8, 9.8]])
    np.testing.assert_array_equal(up.covars, p.covars[[0, 1, 0, 1]])
    with pytest.raises(InvalidParameterError, match="down to"):
        mix_up(p, 1)


def test_mix_up_skips_a_collapsed_component():
    """HeaviestMix docks 5000 from a component whose gConst is 4 sd below the mean."""
    var = np.ones((30, 1))
    var[0] = 1e-30
    w = np.full((1, 30), 1 / 60)
    w[0, 0] = 0.5
    p = GaussianParams("diag", np.arange(30.0)[:, None], var, w / w.sum())
    up = mix_up(p, 31)
    assert up.weights[0, 0] == p.weights[0, 0] and up.weights[0, 1] == p.weights[0, 1] / 2


@pytest.mark.parametrize("covariance_type", TYPES)
def test_gaussian_mixture_split_is_the_htk_mix_up_without_side_effects(covariance_type):
    rng = np.random.default_rng(6)
    X = rng.normal(size=(300, 2)) * [1.0, 3.0]
    gmm = GaussianMixture(2, covariance_type=covariance_type, random_state=0, warm_start=False).fit(X)
    before = gmm.get_params()
    want = mix_up(gmm._gaussian_params(), 5)
    gmm.split(5)
    assert gmm.get_params() == {**before, "n_components": 5}
    np.testing.assert_allclose(gmm.weights_, want.weights[0])
    np.testing.assert_allclose(gmm.means_, want.means)
    np.testing.assert_allclose(gmm.covariances_, want.covars)
    lb = gmm.score(X)
    gmm.update(gmm.accumulate(X))  # EM continues from the split model
    assert gmm.score(X) >= lb - 1e-9


# --------------------------------------------------------------------------
# bug 7 (part): GMMHMM information criteria
# --------------------------------------------------------------------------

def test_gmmhmm_bic_counts_every_states_weights():
    rng = np.random.default_rng(7)
    S, M, D = 3, 4, 2
    X = rng.normal(size=(120, D))
    m = GMMHMM(S, n_mix=M, n_iter=2, random_state=0).fit(X)
    n_params = (S - 1) + S * (S - 1) + S * M * D + S * M * D + S * (M - 1)
    ll = m.score(X)
    assert m.bic(X) == pytest.approx(-2 * ll + n_params * np.log(len(X)))
    assert m.aic(X) == pytest.approx(-2 * ll + 2 * n_params)


# --------------------------------------------------------------------------
# issue 16 item 2 (the cause): huge mix-up schedules on 3 takes per digit
# --------------------------------------------------------------------------

@pytest.mark.parametrize("schedule", [([1, 128], [1, 1]), ([1, 2, 4, 8, 16, 32], [1] * 6)])
def test_three_takes_per_digit_with_huge_mixtures_train_finite_loadable_models(schedule, tmp_path):
    """Issue 16 item 2: heavy-tailed frames (like MFCCs) leave components with occupancy ~1e-17;
    before the one estimator [1..32] gave NaN models and [1, 128] variances of 1e-8 below min_covar."""
    rng = np.random.default_rng(0)
    X_list, y = [], []
    for digit in range(4):
        centres = rng.normal(scale=2.0, size=(6, 39))
        for _ in range(3):
            T = int(rng.integers(30, 50))
            X_list.append(np.repeat(centres, -(-T // 6), axis=0)[:T] + rng.standard_t(2.0, size=(T, 39)))
            y.append(str(digit))
    mixes, iters = schedule
    clf = HMMClassifier(n_states=6, mix_schedule=mixes, n_iter=iters, random_state=0).fit(X_list, y)
    for model in clf.models_:
        for name in ("weights_", "means_", "covars_"):
            assert np.all(np.isfinite(getattr(model, name))), name
        assert model.covars_.min() >= clf.min_covar * (1 - 1e-12)
    clf.save(tmp_path / "m.npz")
    again = load(tmp_path / "m.npz")
    np.testing.assert_array_equal(again.predict(X_list), clf.predict(X_list))


def test_negative_eigenvalues_raised_to_zero_and_non_finite_matrices_left_alone():
    """Without a floor, ML scatter with a rounding-negative eigenvalue becomes the nearest PSD
    matrix; a matrix with NaN or infinity stays as it is for the caller's check to report
    (LAPACK's eigvalsh returns finite garbage for it, which must not turn it into a 'valid'
    covariance)."""
    from gmmhmm.mixture.estimate import _apply_floor

    v = np.array([[0.6, 0.8], [-0.8, 0.6]])
    indefinite = v @ np.diag([2.0, -1e-7]) @ v.T
    stack = np.stack([np.full((2, 2), np.nan), indefinite, np.eye(2), [[np.inf, 0.0], [0.0, 1.0]]])
    for floor in (np.zeros(2), np.full(2, 1e-3)):
        out, n_floored = _apply_floor(stack, floor, "full")
        assert np.isnan(out[0]).all() and out[3, 0, 0] == np.inf
        np.testing.assert_allclose(out[1], v @ np.diag([2.0, floor[0]]) @ v.T, atol=1e-15)
        assert np.linalg.eigvalsh(out[1]).min() >= floor[0] * (1 - 1e-12) - 1e-15
        np.testing.assert_array_equal(out[2], np.eye(2))
        assert n_floored == (1 if floor[0] else 0)  # raising rounding negatives to 0 is no flooring


def _brute_force_full_update(X, resp, floor, reg_covar, tied_groups=None):
    """Per component: centred weighted scatter / n + reg, then C >= floor*I by one eigh each (a loop)."""
    n = resp.sum(axis=0)
    means = (resp.T @ X) / n[:, None]
    scatters = np.stack([(resp[:, k, None] * (X - means[k])).T @ (X - means[k]) for k in range(len(n))])
    if tied_groups is None:
        covs = scatters / n[:, None, None]
    else:
        g = resp.shape[1] // tied_groups
        covs = np.stack([scatters[i * g:(i + 1) * g].sum(0) / n[i * g:(i + 1) * g].sum() for i in range(tied_groups)])
    out = []
    for c in covs + reg_covar * np.eye(X.shape[1]):
        lam, v = np.linalg.eigh(c)
        out.append(c if lam.min() >= floor else (v * np.maximum(lam, floor)) @ v.T)
    return means, np.stack(out)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_full_and_tied_updates_match_a_brute_force_floor_and_the_floor_holds_after_every_update(
        covariance_type, seed):
    """One eigendecomposition per matrix per update (the floor step also makes the ML moments
    positive semi-definite): the same parameters as per-matrix centred scatter, regularised
    and floored by its own eigh, and after every update no eigenvalue below the floor."""
    rng = np.random.default_rng(seed)
    D, K = 5, 6
    X = rng.normal(size=(120, D)) @ rng.normal(size=(D, D)) * rng.uniform(0.05, 1.0, D) + 0.5
    for step, (floor, reg) in enumerate([(0.0, 0.0), (0.0, 1e-6), (1e-3, 0.0), (0.05, 1e-6), (0.3, 0.0)]):
        resp = rng.dirichlet(np.full(K, 0.3), size=len(X))
        stats = GaussianStats.from_posteriors(X, resp, "full")
        groups = 2 if covariance_type == "tied" else None
        new, _ = update_gaussians(stats, covariance_type, GaussianUpdateOptions(variance_floor=floor, reg_covar=reg),
                                  n_mix=K // 2 if groups else None)
        means, covs = _brute_force_full_update(X, resp, floor, reg, groups)
        np.testing.assert_allclose(new.means, means, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(np.asarray(new.covars), covs, rtol=1e-10, atol=1e-12)
        assert np.linalg.eigvalsh(np.asarray(new.covars)).min() >= floor * (1 - 1e-12) - 1e-15, step