"""hmmlearn's subclass interface and ConvergenceMonitor on gmmhmm's BaseHMM.

A Poisson-emission HMM is written exactly as one writes it for
``hmmlearn.base.BaseHMM`` (the hooks ``_init``, ``_check``,
``_compute_log_likelihood``, ``_initialize_sufficient_statistics``,
``_accumulate_sufficient_statistics``, ``_do_mstep``,
``_generate_sample_from_state``), and checked against hmmlearn's own
PoissonHMM and against enumeration of all state paths.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import poisson

import gmmhmm
from gmmhmm.hmm import BaseHMM, ConvergenceMonitor

hmmlearn_hmm = pytest.importorskip("hmmlearn.hmm")
hmmlearn_base = pytest.importorskip("hmmlearn.base")


class PoissonHMM(BaseHMM):
    """Written the hmmlearn way (hmmlearn 0.3.3's PoissonHMM, without priors)."""

    def __init__(self, n_components=1, startprob_prior=1.0, transmat_prior=1.0,
                 algorithm="viterbi", random_state=None, n_iter=10, tol=1e-2,
                 verbose=False, params="stl", init_params="stl", implementation="log"):
        super().__init__(n_components, startprob_prior=startprob_prior,
                         transmat_prior=transmat_prior, algorithm=algorithm,
                         random_state=random_state, n_iter=n_iter, tol=tol, verbose=verbose,
                         params=params, init_params=init_params, implementation=implementation)
        self.calls = []

    def _get_n_fit_scalars_per_param(self):
        nc, nf = self.n_components, self.n_features
        return {"s": nc - 1, "t": nc * (nc - 1), "l": nc * nf}

    def _init(self, X, lengths=None):
        super()._init(X, lengths)
        rng = np.random.RandomState(0)
        if self._needs_init("l", "lambdas_"):
            self.lambdas_ = rng.gamma(shape=X.mean() ** 2 / X.var(), scale=X.var() / X.mean(),
                                      size=(self.n_components, self.n_features))

    def _check(self):
        super()._check()
        self.lambdas_ = np.atleast_2d(self.lambdas_)
        if self.lambdas_.shape != (self.n_components, self.n_features):
            raise ValueError("lambdas_ must have shape (n_components, n_features)")

    def _compute_log_likelihood(self, X):
        self.calls.append("loglik")
        return np.array([poisson.logpmf(X, lam).sum(axis=1) for lam in self.lambdas_]).T

    def _generate_sample_from_state(self, state, random_state):
        return random_state.poisson(self.lambdas_[state])

    def _initialize_sufficient_statistics(self):
        self.calls.append("init_stats")
        stats = super()._initialize_sufficient_statistics()
        stats["post"] = np.zeros(self.n_components)
        stats["obs"] = np.zeros((self.n_components, self.n_features))
        return stats

    def _accumulate_sufficient_statistics(self, stats, X, lattice, posteriors, fwdlattice,
                                          bwdlattice):
        self.calls.append("accumulate")
        super()._accumulate_sufficient_statistics(stats, X, lattice, posteriors, fwdlattice,
                                                  bwdlattice)
        if "l" in self.params:
            stats["post"] += posteriors.sum(axis=0)
            stats["obs"] += posteriors.T @ X

    def _do_mstep(self, stats):
        self.calls.append("mstep")
        super()._do_mstep(stats)
        if "l" in self.params:
            self.lambdas_ = stats["obs"] / stats["post"][:, None]


START = np.array([0.6, 0.3, 0.1])
TRANS = np.array([[0.7, 0.2, 0.1], [0.3, 0.5, 0.2], [0.2, 0.3, 0.5]])
LAMBDAS = np.array([[1.0, 6.0], [4.0, 2.0], [9.0, 0.5]])


def _set(model):
    model.startprob_, model.transmat_, model.lambdas_ = START.copy(), TRANS.copy(), LAMBDAS.copy()
    model.n_features = 2
    return model


@pytest.fixture(scope="module")
def data():
    reference = _set(hmmlearn_hmm.PoissonHMM(3, init_params="", random_state=0))
    X, _ = reference.sample(120, random_state=np.random.RandomState(1))
    return X, np.array([50, 40, 30])


def _brute_force_log_prob(X):
    n = len(X)
    logs = np.array([poisson.logpmf(X, lam).sum(axis=1) for lam in LAMBDAS]).T
    total = []
    for path in itertools.product(range(3), repeat=n):
        lp = np.log(START[path[0]]) + logs[0, path[0]]
        for t in range(1, n):
            lp += np.log(TRANS[path[t - 1], path[t]]) + logs[t, path[t]]
        total.append(lp)
    return logsumexp(total), np.array(total)


@pytest.mark.parametrize("implementation", ["log", "scaling"])
def test_scores_match_enumeration(implementation):
    X = np.array([[0, 5], [3, 2], [9, 1], [1, 7], [4, 3]])
    model = _set(PoissonHMM(3, implementation=implementation))
    expected, paths = _brute_force_log_prob(X)
    assert model.score(X) == pytest.approx(expected, rel=1e-10)
    best, states = model.decode(X)
    assert best == pytest.approx(paths.max(), rel=1e-10)
    assert tuple(states) == np.unravel_index(paths.argmax(), (3,) * len(X))
    post = model.predict_proba(X)
    all_paths = np.array(list(itertools.product(range(3), repeat=len(X))))
    weights = np.exp(paths - expected)
    for t in range(len(X)):
        np.testing.assert_allclose(post[t], np.bincount(all_paths[:, t], weights, minlength=3),
                                   rtol=1e-9)


@pytest.mark.parametrize("implementation", ["log", "scaling"])
def test_one_em_step_matches_enumeration(implementation):
    """Expected transition counts and Poisson means of one Baum-Welch step, by enumeration."""
    X = np.array([[0, 5], [3, 2], [9, 1], [1, 7], [4, 3]])
    model = _set(PoissonHMM(3, init_params="", n_iter=1, implementation=implementation)).fit(X)
    expected, paths = _brute_force_log_prob(X)
    weights = np.exp(paths - expected)
    all_paths = np.array(list(itertools.product(range(3), repeat=len(X))))
    trans = np.zeros((3, 3))
    occ = np.zeros((len(X), 3))
    for w, path in zip(weights, all_paths):
        for t in range(len(X) - 1):
            trans[path[t], path[t + 1]] += w
        occ[np.arange(len(X)), path] += w
    np.testing.assert_allclose(model.transmat_, trans / trans.sum(axis=1, keepdims=True), rtol=1e-9)
    np.testing.assert_allclose(model.startprob_, occ[0], rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(model.lambdas_, (occ.T @ X) / occ.sum(axis=0)[:, None], rtol=1e-9)
    assert model.monitor_.history[0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("implementation", ["log", "scaling"])
def test_fit_equals_hmmlearns_poisson_hmm(data, implementation):
    X, lengths = data
    ours = _set(PoissonHMM(3, init_params="", n_iter=8, tol=-np.inf, implementation=implementation))
    theirs = _set(hmmlearn_hmm.PoissonHMM(3, init_params="", n_iter=8, tol=-np.inf,
                                          implementation=implementation))
    ours.fit(X, lengths)
    theirs.fit(X, lengths)
    for name in ("startprob_", "transmat_", "lambdas_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(list(ours.monitor_.history), list(theirs.monitor_.history), rtol=1e-10)
    assert ours.score(X, lengths) == pytest.approx(theirs.score(X, lengths), rel=1e-10)
    np.testing.assert_array_equal(ours.predict(X, lengths), theirs.predict(X, lengths))


class PoissonHMMOwnStats(PoissonHMM):
    """Builds hmmlearn's base statistics dict itself (no super() call), which has no "end"."""

    def _initialize_sufficient_statistics(self):
        S = self.n_components
        return {"nobs": 0, "start": np.zeros(S), "trans": np.zeros((S, S)), "post": np.zeros(S),
                "obs": np.zeros((S, self.n_features))}


def test_subclass_with_hmmlearns_own_statistics_dict_fits_as_hmmlearn(data):
    """gmmhmm's exit counts are an extra key; a dict without it (KeyError 'end') still works."""
    X, lengths = data
    ours = _set(PoissonHMMOwnStats(3, init_params="", n_iter=3, tol=-np.inf)).fit(X, lengths)
    theirs = _set(hmmlearn_hmm.PoissonHMM(3, init_params="", n_iter=3, tol=-np.inf)).fit(X, lengths)
    for name in ("startprob_", "transmat_", "lambdas_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-7, atol=1e-12)


def test_hooks_are_called_in_hmmlearns_order(data):
    X, lengths = data
    model = _set(PoissonHMM(3, init_params="", n_iter=2, tol=-np.inf)).fit(X, lengths)
    per_sequence = ["loglik", "accumulate"] * len(lengths)
    assert model.calls == (["init_stats"] + per_sequence + ["mstep"]) * 2


def test_default_init_and_sampling(data):
    X, lengths = data
    model = PoissonHMM(3, random_state=0, n_iter=20).fit(X, lengths)
    assert np.isclose(model.transmat_.sum(axis=1), 1).all()
    history = np.array(model.monitor_.history)
    assert np.all(np.diff(history) >= -1e-9 * np.abs(history[1:]))  # EM never lowers it
    sampled, states = model.sample(200, random_state=3)
    assert sampled.shape == (200, 2) and np.all(sampled >= 0) and states.shape == (200,)
    assert np.issubdtype(sampled.dtype, np.integer)  # the subclass's own draws


def test_gaussian_hmm_subclass_overriding_one_hook_still_trains():
    """A GaussianHMM subclass that overrides only _do_mstep (calling super) runs the
    hmmlearn path and gives the fast path's model."""
    calls = []

    class Logged(gmmhmm.GaussianHMM):
        def _do_mstep(self, stats):
            calls.append(stats["nobs"])
            super()._do_mstep(stats)

    rng = np.random.RandomState(0)
    X = np.concatenate([rng.normal(0, 1, (60, 2)), rng.normal(4, 1, (60, 2))])
    kwargs = dict(n_components=2, n_iter=5, tol=-np.inf, random_state=0)
    fast = gmmhmm.GaussianHMM(**kwargs).fit(X, [70, 50])
    slow = Logged(**kwargs).fit(X, [70, 50])
    assert calls == [2] * 5
    for name in ("startprob_", "transmat_", "means_", "covars_"):
        np.testing.assert_allclose(getattr(slow, name), getattr(fast, name), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(slow._compute_log_likelihood(X),
                               hmmlearn_hmm.GaussianHMM._compute_log_likelihood(slow, X), rtol=1e-10)


class _OwnMstep(gmmhmm.GaussianHMM):
    """Overrides one hook, so ``fit`` runs hmmlearn's per-sequence E-step and lattices."""

    def _do_mstep(self, stats):
        super()._do_mstep(stats)


def _left_to_right_with_extreme_lattices():
    """Data that reach every lattice extreme: the first frames fit state 2, which the
    topology forbids there (its backward value is e^1000s times the forward's scale), and
    outlier frames that every state scores below e^-745 (their frame likelihoods underflow)."""
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.normal(8, 0.3, (30, 1)), rng.normal(0, 0.3, (10, 1)),
                        rng.normal(4, 0.3, (10, 1)), rng.normal(8, 0.3, (10, 1))])
    X[[35, 45, 55]] += 40.0
    params = dict(startprob_=np.array([1.0, 0, 0]), means_=np.array([[0.0], [4], [8]]),
                  transmat_=np.array([[0.9, 0.1, 0], [0, 0.9, 0.1], [0, 0, 1]]), covars_=np.full((3, 1), 0.1))
    return X, params


@pytest.mark.parametrize("implementation", ["log", "scaling"])
def test_hook_lattices_give_the_expected_transitions_at_extremes(implementation):
    """The transition counts a subclass's super() call collects from hmmlearn-style lattices
    equal the compiled path's, even when a backward value or a frame's likelihoods leave the
    float range (they were NaN, and the transitions silently kept their old values)."""
    X, params = _left_to_right_with_extreme_lattices()
    models = []
    for cls in (gmmhmm.GaussianHMM, _OwnMstep):
        model = cls(3, n_iter=1, init_params="", params="st", implementation=implementation)
        for name, value in params.items():
            setattr(model, name, value.copy())
        models.append(model.fit(X, [40, 20]))
    fast, hooked = models
    assert not np.allclose(fast.transmat_, params["transmat_"])  # the step moves them
    np.testing.assert_allclose(hooked.transmat_, fast.transmat_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(hooked.startprob_, fast.startprob_, rtol=1e-9, atol=1e-12)


def test_hook_lattices_that_cannot_hold_the_counts_raise_rather_than_lose_them():
    """Two chains that never meet: the middle frames favour state 0 by ~880 nats, so state 1's
    share of the normalised forward row underflows to 0, though the end makes state 1 the
    posterior. Scaled lattices cannot hold that sequence (hmmlearn's neither); its transition
    counts were silently lost. The log lattices and the compiled path handle it."""
    X = np.concatenate([np.full(2, 10.0), np.zeros(20), np.full(30, 10.0)])[:, None]
    params = dict(startprob_=np.array([0.99, 0.01]), transmat_=np.eye(2), means_=np.array([[0.0], [10.0]]),
                  covars_=np.ones((2, 1)))
    models = {}
    for cls, implementation in ((gmmhmm.GaussianHMM, "scaling"), (_OwnMstep, "log"), (_OwnMstep, "scaling")):
        model = cls(2, n_iter=1, init_params="", params="st", implementation=implementation)
        for name, value in params.items():
            setattr(model, name, value.copy())
        models[cls, implementation] = model
    fast = models[gmmhmm.GaussianHMM, "scaling"].fit(X)
    np.testing.assert_allclose(models[_OwnMstep, "log"].fit(X).startprob_, fast.startprob_, atol=1e-12)
    with pytest.raises(gmmhmm.errors.ConvergenceError, match="implementation='log'"):
        models[_OwnMstep, "scaling"].fit(X)


# ------------------------------------------------------------------ monitor

class StopAfter3(hmmlearn_base.ConvergenceMonitor):
    @property
    def converged(self):
        return self.iter == 3


@pytest.mark.parametrize("monitor_class", [StopAfter3, ConvergenceMonitor])
def test_user_assigned_monitor_is_honoured(monitor_class):
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.normal(0, 1, (100, 2)), rng.normal(3, 1, (100, 2))])
    model = gmmhmm.GaussianHMM(2, n_iter=50, tol=-np.inf, random_state=0)
    model.monitor_ = (StopAfter3(model.monitor_.tol, 50, False) if monitor_class is StopAfter3
                      else ConvergenceMonitor(-np.inf, 3, False))
    mine = model.monitor_
    model.fit(X)
    assert model.monitor_ is mine
    assert mine.iter == 3 and len(mine.history) == 3


def test_monitor_keeps_the_whole_history_and_follows_set_params():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 2))
    model = gmmhmm.GaussianHMM(2, n_iter=50, tol=-np.inf, random_state=0)
    model.set_params(n_iter=7)
    model.fit(X)
    assert model.monitor_.iter == 7 and len(model.monitor_.history) == 7
    assert "_model_owned" not in repr(model.monitor_)


# ------------------------------------- hmmlearn's other emission hooks

def _exponential_hmm(base):
    """An exponential-emission HMM written as hmmlearn's CategoricalHMM is: it overrides
    ``_compute_likelihood`` (not the log) and ``_check_and_set_n_features`` (its input check,
    which hmmlearn's ``_init`` calls), and nothing else of the E-step."""

    class ExponentialHMM(base):
        def __init__(self, n_components=1, n_iter=10, tol=1e-2, params="str", init_params="",
                     implementation="log"):
            super().__init__(n_components, n_iter=n_iter, tol=tol, params=params,
                             init_params=init_params, implementation=implementation)

        def _check_and_set_n_features(self, X):
            if np.any(X < 0):
                raise ValueError("exponential data must be non-negative")
            super()._check_and_set_n_features(X)

        def _get_n_fit_scalars_per_param(self):
            return {"s": self.n_components - 1, "t": self.n_components * (self.n_components - 1),
                    "r": self.n_components * self.n_features}

        def _compute_likelihood(self, X):
            return np.prod(self.rates_[None] * np.exp(-X[:, None, :] * self.rates_[None]), axis=2)

        def _initialize_sufficient_statistics(self):
            stats = super()._initialize_sufficient_statistics()
            stats["post"], stats["obs"] = np.zeros(self.n_components), np.zeros((self.n_components, 1))
            return stats

        def _accumulate_sufficient_statistics(self, stats, X, lattice, posteriors, fwd, bwd):
            super()._accumulate_sufficient_statistics(stats, X, lattice, posteriors, fwd, bwd)
            stats["post"] += posteriors.sum(axis=0)
            stats["obs"] += posteriors.T @ X

        def _do_mstep(self, stats):
            super()._do_mstep(stats)
            if "r" in self.params:
                self.rates_ = stats["post"][:, None] / stats["obs"]

    return ExponentialHMM


@pytest.mark.parametrize("implementation", ["log", "scaling"])
def test_subclass_overriding_compute_likelihood_and_n_features_check_as_hmmlearn(implementation):
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.exponential(1.0, (60, 1)), rng.exponential(0.1, (40, 1))])
    lengths = [30, 45, 25]
    models = []
    for base in (BaseHMM, hmmlearn_base.BaseHMM):
        model = _exponential_hmm(base)(2, n_iter=6, tol=-np.inf, implementation=implementation)
        model.startprob_, model.transmat_ = np.array([0.5, 0.5]), np.array([[0.8, 0.2], [0.3, 0.7]])
        model.rates_ = np.array([[0.5], [5.0]])
        models.append(model.fit(X, lengths))
    ours, theirs = models
    for name in ("startprob_", "transmat_", "rates_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-8, err_msg=name)
    np.testing.assert_allclose(list(ours.monitor_.history), list(theirs.monitor_.history), rtol=1e-10)
    assert ours.score(X, lengths) == pytest.approx(theirs.score(X, lengths), rel=1e-10)
    np.testing.assert_allclose(ours.predict_proba(X, lengths), theirs.predict_proba(X, lengths), atol=1e-10)
    with pytest.raises(ValueError, match="non-negative"):
        ours.fit(-X, lengths)


def _rates_hmm(base):
    """The exponential HMM leaving params / init_params at hmmlearn's defaults (every
    letter), so its own 'r' is trained and initialised without being named."""

    class RatesHMM(_exponential_hmm(base)):
        def __init__(self, n_components=1, n_iter=10, tol=1e-2):
            base.__init__(self, n_components, n_iter=n_iter, tol=tol, random_state=0)

        def _get_n_fit_scalars_per_param(self):
            return None  # hmmlearn's _init sums it over every letter of params: no count

        def _init(self, X, lengths=None):
            super()._init(X, lengths)
            if self._needs_init("r", "rates_"):
                self.rates_ = np.linspace(0.5, 5.0, self.n_components)[:, None]

    return RatesHMM


def test_subclass_relying_on_hmmlearns_default_params_trains_every_parameter():
    """hmmlearn's BaseHMM defaults params and init_params to every letter; with gmmhmm's 'st'
    such a subclass's own parameter silently kept its initial value."""
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.exponential(1.0, (60, 1)), rng.exponential(0.1, (40, 1))])
    ours, theirs = (_rates_hmm(base)(2, n_iter=5, tol=-np.inf).fit(X, [50, 50])
                    for base in (BaseHMM, hmmlearn_base.BaseHMM))
    assert not np.allclose(theirs.rates_, np.linspace(0.5, 5.0, 2)[:, None])
    np.testing.assert_allclose(ours.rates_, theirs.rates_, rtol=1e-8)
    assert (ours.params, ours.init_params) == (theirs.params, theirs.init_params)


class CategoricalHMM(BaseHMM):
    """Discrete symbols, written as hmmlearn 0.3.3's CategoricalHMM is (its likelihood indexes
    an array with the symbols, and its n_features check refuses anything but integers)."""

    def __init__(self, n_components=1, n_iter=10, tol=1e-2, params="ste", init_params="",
                 implementation="log"):
        super().__init__(n_components, n_iter=n_iter, tol=tol, params=params,
                         init_params=init_params, implementation=implementation)

    def _check_and_set_n_features(self, X):
        if not np.issubdtype(X.dtype, np.integer):
            raise ValueError("Symbols should be integers")
        if X.min() < 0:
            raise ValueError("Symbols should be nonnegative")
        self.n_features = X.max() + 1

    def _get_n_fit_scalars_per_param(self):
        nc, nf = self.n_components, self.n_features
        return {"s": nc - 1, "t": nc * (nc - 1), "e": nc * (nf - 1)}

    def _compute_likelihood(self, X):
        return self.emissionprob_[:, X.squeeze(1)].T

    def _initialize_sufficient_statistics(self):
        stats = super()._initialize_sufficient_statistics()
        stats["obs"] = np.zeros((self.n_components, self.n_features))
        return stats

    def _accumulate_sufficient_statistics(self, stats, X, lattice, posteriors, fwd, bwd):
        super()._accumulate_sufficient_statistics(stats, X, lattice, posteriors, fwd, bwd)
        np.add.at(stats["obs"].T, X.squeeze(1), posteriors)

    def _do_mstep(self, stats):
        super()._do_mstep(stats)
        if "e" in self.params:
            self.emissionprob_ = stats["obs"] / stats["obs"].sum(axis=1, keepdims=True)

    def _generate_sample_from_state(self, state, random_state):
        return [(np.cumsum(self.emissionprob_[state]) > random_state.rand()).argmax()]


@pytest.mark.parametrize("implementation", ["log", "scaling"])
def test_categorical_subclass_gets_its_integer_symbols_as_in_hmmlearn(implementation):
    """A model that computes its own likelihoods owns the meaning of X: integer symbols reach
    its hooks as integers (gmmhmm made every X float64, and such a subclass failed)."""
    rng = np.random.RandomState(0)
    X = rng.choice(4, size=(90, 1), p=[0.4, 0.3, 0.2, 0.1])
    lengths = [40, 50]
    start, trans = np.array([0.6, 0.4]), np.array([[0.7, 0.3], [0.4, 0.6]])
    emission = np.array([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]])
    ours = CategoricalHMM(2, n_iter=5, tol=-np.inf, implementation=implementation)
    theirs = hmmlearn_hmm.CategoricalHMM(2, n_iter=5, tol=-np.inf, init_params="",
                                         implementation=implementation)
    for model in (ours, theirs):
        model.startprob_, model.transmat_, model.emissionprob_ = start.copy(), trans.copy(), emission.copy()
        model.fit(X, lengths)
    for name in ("startprob_", "transmat_", "emissionprob_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-8, err_msg=name)
    assert ours.score(X, lengths) == pytest.approx(theirs.score(X, lengths), rel=1e-10)
    np.testing.assert_array_equal(ours.predict(X, lengths), theirs.predict(X, lengths))
    with pytest.raises(ValueError, match="integers"):
        CategoricalHMM(2).fit(X + 0.5)


def test_accumulate_on_a_model_with_its_own_likelihood_says_to_use_fit(data):
    """accumulate / update collect gmmhmm's emission statistics, which a model scoring frames
    with hmmlearn's hooks does not have: a clear error, not AttributeError from inside."""
    X, lengths = data
    with pytest.raises(gmmhmm.errors.InvalidInputError, match="fit"):
        _set(PoissonHMM(3)).accumulate(X, lengths)
