"""Sharded EM: serial, n_jobs processes and a real Dask LocalCluster agree; lost workers."""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from gmmhmm.corpus import Corpus
from gmmhmm.errors import GmmhmmError, InvalidParameterError, ModelFileError
from gmmhmm.parallel import (StatisticsMismatchError, WorkerFailedError, _checked, _Tally,
                             accumulate_corpus, fit_corpus, tree_sum)

# ----------------------------------------------------------------------------
# A tiny diagonal GMM following the accumulate / + / update protocol
# ----------------------------------------------------------------------------


@dataclass
class ToyStats:
    n: np.ndarray
    s1: np.ndarray
    s2: np.ndarray
    log_prob: float
    n_frames: int

    def __add__(self, other):
        return ToyStats(self.n + other.n, self.s1 + other.s1, self.s2 + other.s2,
                        self.log_prob + other.log_prob, self.n_frames + other.n_frames)


class ToyGMM:
    """Diagonal GMM. ``hang_file``: test hook, the first accumulate to claim it hangs."""

    def __init__(self, n_components=3, max_iter=10, random_state=0, hang_file=None):
        self.n_components, self.max_iter = n_components, max_iter
        self.random_state, self.hang_file = random_state, hang_file
        self.driver_pid = os.getpid()  # the hook only hangs worker processes

    def fit(self, X):
        rng = np.random.RandomState(self.random_state)
        self.means_ = X[rng.choice(len(X), self.n_components, replace=False)].astype(float)
        self.vars_ = np.tile(X.var(0) + 1e-3, (self.n_components, 1))
        self.weights_ = np.full(self.n_components, 1.0 / self.n_components)
        for _ in range(self.max_iter):
            self.update(self.accumulate(X))
        return self

    def accumulate(self, X, sample_weight=None):
        if self.hang_file and os.getpid() != self.driver_pid:
            try:
                os.rename(self.hang_file, self.hang_file + ".claimed")
            except FileNotFoundError:
                pass
            else:
                Path(self.hang_file + ".pid").write_text(str(os.getpid()))
                time.sleep(60)  # killed by the test meanwhile
        X = np.asarray(X, dtype=float)
        logp = (-0.5 * (((X[:, None, :] - self.means_) ** 2) / self.vars_
                        + np.log(2 * np.pi * self.vars_)).sum(-1) + np.log(self.weights_))
        top = logp.max(1, keepdims=True)
        lse = top[:, 0] + np.log(np.exp(logp - top).sum(1))
        resp = np.exp(logp - lse[:, None])
        return ToyStats(resp.sum(0), resp.T @ X, resp.T @ (X * X), float(lse.sum()), len(X))

    def update(self, st):
        self.weights_ = st.n / st.n.sum()
        self.means_ = st.s1 / st.n[:, None]
        self.vars_ = st.s2 / st.n[:, None] - self.means_ ** 2 + 1e-3
        return self


def _data(n_utts=30, seed=0):
    rng = np.random.RandomState(seed)
    centres = np.array([[0.0, 0.0], [4.0, 1.0], [-3.0, 5.0]])
    utts = []
    for i in range(n_utts):
        k = rng.randint(20, 60)
        X = centres[rng.randint(3, size=k)] + rng.randn(k, 2)
        utts.append((f"u{i:02d}", X))
    return utts


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return Corpus.create(tmp_path_factory.mktemp("corpus"), _data(), frames_per_shard=150)


def _params(model):
    return [model.weights_, model.means_, model.vars_]


def assert_close(actual, desired, rtol=1e-10, err_msg=""):
    """Equal to ``rtol`` relative to the array's scale.

    Workers run with fewer BLAS / numba threads than the driver, which can
    change the rounding of sums; a value near zero that comes out of a
    cancellation then differs by a few ulps of the scale, not of itself.
    """
    desired = np.asarray(desired)
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=rtol * 1e-2 * np.abs(desired).max(),
                               err_msg=err_msg)


def _assert_same(a, b, rtol=1e-10):
    for x, y in zip(_params(a), _params(b)):
        assert_close(x, y, rtol=rtol)


def _serial(corpus, **kw):
    return fit_corpus(ToyGMM(**kw), corpus, n_iter=6, tol=0, init_frames=200)


# ----------------------------------------------------------------------------
# Serial
# ----------------------------------------------------------------------------


def test_tree_sum_pairs_in_a_fixed_order():
    assert tree_sum(list("abcde")) == "abcde"
    x = [1e16, 1.0, -1e16, 1.0]
    assert tree_sum(x) == (x[0] + x[1]) + (x[2] + x[3])
    with pytest.raises(InvalidParameterError):
        tree_sum([])


def test_tree_sum_takes_the_addition():
    added = []

    def add(a, b):
        added.append((a, b))
        return f"({a}{b})"

    assert tree_sum(list("abcde"), add) == "(((ab)(cd))e)"
    assert added == [("a", "b"), ("c", "d"), ("(ab)", "(cd)"), ("((ab)(cd))", "e")]
    assert tree_sum(["x"], add) == "x"


@dataclass
class Expr:
    """Statistics that record how they were summed."""

    text: str

    def __add__(self, other):
        return Expr(f"({self.text}+{other.text})")


class SumRecorder:
    """A model whose statistics of a shard are its frame count, summed as a formula."""

    def accumulate(self, X):
        return Expr(str(len(X)))


def test_every_backend_sums_shards_in_the_same_tree(corpus, dask_client):
    per_shard = [Expr(str(s.n_frames)) for s in corpus.shard_info]
    want = tree_sum(per_shard).text
    assert want.count("+") == len(corpus) - 1 > 2
    for kw in (dict(), dict(n_jobs=2), dict(client=dask_client)):
        assert accumulate_corpus(SumRecorder(), corpus, **kw).text == want, kw


class NoKnob(ToyGMM):
    """The EM protocol, but no max_iter / n_iter parameter."""

    def __init__(self):
        super().__init__()
        del self.max_iter

    def get_params(self, deep=True):
        return {}

    def set_params(self, **params):
        return self


def test_shared_checkpoint_helpers(tmp_path):
    from gmmhmm import checkpoint
    from gmmhmm.graphs import EmbeddedTrainer, Lexicon
    from gmmhmm.hmm import GMMHMM
    from gmmhmm.mixture import GaussianMixture

    class NoSignature:
        accumulate = np.add  # a ufunc: inspect.signature cannot read it

    styles = [(ToyGMM(), "frames"), (GaussianMixture(2), "frames"), (GMMHMM(2), "lengths"),
              (EmbeddedTrainer(Lexicon.digits()), "transcripts"), (NoSignature(), "frames")]
    for model, style in styles:
        assert checkpoint.accumulate_style(model) == style, model
    knobs = [(ToyGMM(), "max_iter"), (GaussianMixture(2), "max_iter"), (GMMHMM(2), "n_iter"), (object(), None)]
    for model, knob in knobs:
        assert checkpoint.iteration_param(model) == knob, model
    with pytest.raises(InvalidParameterError, match="neither max_iter nor n_iter"):
        checkpoint.fit(NoKnob(), np.zeros((4, 2)), checkpoint_dir=tmp_path)
    a = np.arange(6.0)
    assert checkpoint.fingerprint_arrays(a, None) == checkpoint._fingerprint(a, None)  # graphs.training's name
    assert checkpoint.fingerprint_arrays(a, None) != checkpoint.fingerprint_arrays(a.reshape(2, 3), None)


class KnobRecorder(ToyGMM):
    """Records the iteration limit its ``fit`` runs with."""

    def fit(self, X):
        self.fit_max_iter = self.max_iter
        return super().fit(X)


@pytest.mark.filterwarnings("ignore:.*not converge")
def test_initialisation_limits_the_models_own_iterations(corpus):
    from gmmhmm.hmm import GMMHMM

    class HMMKnobRecorder(GMMHMM):
        def fit(self, X, lengths=None):
            self.fit_n_iter = self.n_iter
            return super().fit(X, lengths)

    gmm = fit_corpus(KnobRecorder(max_iter=10), corpus, n_iter=1, init_iter=3, init_frames=200)
    assert (gmm.fit_max_iter, gmm.max_iter) == (3, 10)  # max_iter during the initial fit, then restored
    hmm = fit_corpus(HMMKnobRecorder(2, n_mix=1, n_iter=10, random_state=0), corpus, n_iter=1, init_iter=2,
                     init_frames=200)
    assert (hmm.fit_n_iter, hmm.n_iter) == (2, 10)


def test_corpus_em_equals_in_memory_em(corpus):
    X = np.concatenate([u[1] for u in _data()])
    model = _serial(corpus)
    # same initialisation: fit on the first whole utterances reaching init_frames
    ends = np.cumsum([len(u[1]) for u in _data()])
    first = int(np.argmax(ends >= 200)) + 1  # utterances needed to reach init_frames=200
    assert ends[first - 2] < 200 <= ends[first - 1]
    ref = ToyGMM(max_iter=1).fit(X[:ends[first - 1]])
    history = []
    for _ in range(6):
        st = ref.accumulate(X)
        history.append(st.log_prob)
        ref.update(st)
    _assert_same(model, ref, rtol=1e-12)
    np.testing.assert_allclose(model.corpus_log_likelihood_, history, rtol=1e-12)
    assert np.all(np.diff(model.corpus_log_likelihood_) >= -1e-9)  # EM never decreases


def test_accumulate_corpus_is_the_sum_over_shards(corpus):
    model = ToyGMM(max_iter=2).fit(_data()[0][1])
    st = accumulate_corpus(model, corpus)
    parts = [model.accumulate(X) for X, *_ in corpus]
    assert st.n_frames == corpus.n_frames == sum(p.n_frames for p in parts)
    np.testing.assert_allclose(st.s2, sum(p.s2 for p in parts[1:]) + parts[0].s2, rtol=1e-12)


def test_tolerance_stops_early(corpus):
    model = fit_corpus(ToyGMM(), corpus, n_iter=200, tol=1e-3, init_frames=200)
    hist = model.corpus_log_likelihood_
    assert 2 <= len(hist) < 200
    assert abs(hist[-1] - hist[-2]) / corpus.n_frames < 1e-3
    assert abs(hist[-2] - hist[-3]) / corpus.n_frames >= 1e-3


def test_lost_or_duplicated_shards_are_detected(corpus):
    st = ToyStats(np.ones(3), np.ones((3, 2)), np.ones((3, 2)), 0.0, 10)
    frames = [s.n_frames for s in corpus.shard_info]
    ok = _Tally(st, tuple(range(len(corpus))), sum(frames))
    assert _checked(ok, corpus) is st
    dup = _Tally(st, (0,) + tuple(range(1, len(corpus))) + (1,), sum(frames) + frames[1])
    with pytest.raises(StatisticsMismatchError, match=r"counted twice \[1\]"):
        _checked(dup, corpus)
    lost = _Tally(st, tuple(range(1, len(corpus))), sum(frames) - frames[0])
    with pytest.raises(StatisticsMismatchError, match=r"missing shards \[0\]"):
        _checked(lost, corpus)


def test_bad_arguments_and_missing_shards(tmp_path):
    corpus = Corpus.create(tmp_path, _data(), frames_per_shard=150)
    for kw in [dict(n_iter=0), dict(tol=-1.0), dict(tol=float("nan")), dict(n_jobs=0), dict(max_retries=-1)]:
        with pytest.raises(InvalidParameterError):
            fit_corpus(ToyGMM(), corpus, **kw)

    class NoLogLik(ToyGMM):
        def accumulate(self, X, sample_weight=None):
            st = super().accumulate(X)
            if not self.fitting:
                return (st.n, st.n_frames)  # tuples "add" but carry no log-likelihood
            return st

        fitting = True

        def fit(self, X):
            super().fit(X)
            self.fitting = False
            return self

    with pytest.raises(InvalidParameterError, match="log-likelihood"):
        fit_corpus(NoLogLik(max_iter=1).fit(_data()[0][1]), corpus, n_iter=1, init=False)
    os.remove(corpus.shards[2])
    with pytest.raises(ModelFileError, match="missing"):
        fit_corpus(ToyGMM(), corpus, n_iter=1)


# ----------------------------------------------------------------------------
# Local processes
# ----------------------------------------------------------------------------


def _kill_when_hung(hang_file: Path, timeout: float = 60.0) -> threading.Thread:
    """Kill (SIGKILL) the worker process that claims ``hang_file``."""
    def run():
        pid_file = Path(str(hang_file) + ".pid")
        deadline = time.monotonic() + timeout
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.05)
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_processes_equal_serial_and_survive_a_killed_worker(corpus, tmp_path):
    serial = _serial(corpus)
    parallel = fit_corpus(ToyGMM(), corpus, n_iter=6, tol=0, init_frames=200, n_jobs=2)
    _assert_same(parallel, serial)
    np.testing.assert_allclose(parallel.corpus_log_likelihood_, serial.corpus_log_likelihood_, rtol=1e-10)

    hang = tmp_path / "hang"
    hang.touch()
    killer = _kill_when_hung(hang)
    survived = fit_corpus(ToyGMM(hang_file=str(hang)), corpus, n_iter=6, tol=0, init_frames=200, n_jobs=2)
    killer.join()
    assert Path(str(hang) + ".claimed").exists()  # a worker really hung and was killed
    _assert_same(survived, serial)


def test_processes_fail_clearly_without_retries(corpus, tmp_path):
    hang = tmp_path / "hang"
    hang.touch()
    killer = _kill_when_hung(hang)
    model = ToyGMM(hang_file=str(hang))
    with pytest.raises(WorkerFailedError, match="died") as info:
        fit_corpus(model, corpus, n_iter=3, tol=0, init_frames=200, n_jobs=2, max_retries=0)
    killer.join()
    assert isinstance(info.value, GmmhmmError)
    assert not hasattr(model, "corpus_log_likelihood_")


@pytest.mark.parametrize("kind", ["GaussianHMM", "GMMHMM"])
def test_real_hmm_over_processes_equals_serial(tmp_path, kind):
    from gmmhmm import hmm

    corpus = Corpus.create(tmp_path, _data(n_utts=16), frames_per_shard=200)
    make = (lambda: hmm.GaussianHMM(3, random_state=1)) if kind == "GaussianHMM" else (
        lambda: hmm.GMMHMM(3, n_mix=2, random_state=1))
    fits = [fit_corpus(make(), corpus, n_iter=4, tol=0, init_frames=150, n_jobs=n) for n in (1, 2)]
    names = ("startprob_", "transmat_", "means_", "covars_") + (("weights_",) if kind == "GMMHMM" else ())
    for name in names:
        assert_close(getattr(fits[1], name), getattr(fits[0], name))
    hist = fits[0].corpus_log_likelihood_
    assert np.all(np.diff(hist) >= -1e-8 * abs(hist[-1]))


# ----------------------------------------------------------------------------
# Dask (one real LocalCluster for the module)
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_client():
    import distributed  # a declared test dependency: missing, the Dask tests must fail, not skip
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_dask_equals_serial_and_survives_a_killed_worker(corpus, dask_client, tmp_path):
    serial = _serial(corpus)
    on_dask = fit_corpus(ToyGMM(), corpus, n_iter=6, tol=0, init_frames=200, client=dask_client)
    _assert_same(on_dask, serial)
    np.testing.assert_allclose(on_dask.corpus_log_likelihood_, serial.corpus_log_likelihood_, rtol=1e-10)

    pids_before = set(dask_client.run(os.getpid).values())
    hang = tmp_path / "hang"
    hang.touch()
    killer = _kill_when_hung(hang)
    survived = fit_corpus(ToyGMM(hang_file=str(hang)), corpus, n_iter=6, tol=0, init_frames=200,
                          client=dask_client)
    killer.join()
    assert int(Path(str(hang) + ".pid").read_text()) in pids_before
    _assert_same(survived, serial)


# ----------------------------------------------------------------------------
# Real models
# ----------------------------------------------------------------------------


def _em_in_memory(model, X, n_iter, **kw):
    history = []
    for _ in range(n_iter):
        st = model.accumulate(X, **kw)
        history.append(getattr(st, "log_likelihood", getattr(st, "log_prob", None)))
        model.update(st)
    return history


@pytest.mark.filterwarnings("ignore:.*not converge")  # the one-iteration starting fit
def test_real_gmm_every_backend_equals_in_memory_em(corpus, dask_client):
    import copy

    from gmmhmm.mixture import GaussianMixture

    X = np.concatenate([u[1] for u in _data()])
    start = GaussianMixture(3, covariance_type="diag", max_iter=1, random_state=0).fit(X[:300])
    ref = copy.deepcopy(start)
    history = _em_in_memory(ref, X, 3)
    for kw in (dict(), dict(n_jobs=2), dict(client=dask_client)):
        model = fit_corpus(copy.deepcopy(start), corpus, n_iter=3, tol=0, init=False, **kw)
        for name in ("weights_", "means_", "covariances_"):
            assert_close(getattr(model, name), getattr(ref, name), err_msg=str(kw))
        np.testing.assert_allclose(model.corpus_log_likelihood_, history, rtol=1e-10)
        assert model.n_iter_ == 3 and model.converged_ is False
        assert model.lower_bound_ == pytest.approx(history[-1] / len(X), rel=1e-12)


def test_scaling_benchmark_featurises_its_corpus_once(tmp_path, monkeypatch):
    from conftest import load_script
    from test_fsdd_recipe import _tiny_fsdd

    saved = dict(os.environ)
    try:
        bench = load_script("benchmarks/parallel_scaling.py")
    finally:  # the script pins thread counts for itself, not for this test session
        os.environ.clear()
        os.environ.update(saved)
    calls = []
    audio_utterances = bench.audio_utterances
    monkeypatch.setattr(bench, "audio_utterances", lambda *a, **k: calls.append(1) or audio_utterances(*a, **k))
    corpus = bench.fsdd_corpus(_tiny_fsdd(tmp_path / "fsdd"), None, 1, tmp_path / "c", n_shards=3)
    assert len(calls) == 1
    assert corpus.n_utterances == 30 and 3 <= len(corpus) <= 4
    _, _, ids, labels = corpus.load_shard(0)
    assert ids[0] == "0_synth_0" and labels[0] == ["zero"]


@pytest.mark.integration
def test_embedded_training_over_fsdd_shards(fsdd_path, tmp_path):
    from gmmhmm.datasets import list_fsdd
    from gmmhmm.features import FeatureConfig, extract_many
    from gmmhmm.graphs import DIGIT_WORDS, EmbeddedTrainer, Lexicon

    utts = list_fsdd(fsdd_path)[::75]  # 40 recordings across speakers and digits
    feats, failures = extract_many([u.path for u in utts], FeatureConfig.fsdd())
    assert not failures
    rows = [(u.path.stem, feats[str(u.path)], [DIGIT_WORDS[int(u.digit)]]) for u in utts]
    corpus = Corpus.create(tmp_path, rows, frames_per_shard=600, feature_config=FeatureConfig.fsdd())
    assert len(corpus) >= 3

    # reference: the trainer's own cycle on in-memory features, same flat start
    X = [r[1] for r in rows]
    words = [r[2] for r in rows]
    ends = np.cumsum([len(x) for x in X])
    first = int(np.argmax(ends >= 1000)) + 1
    ref = EmbeddedTrainer(Lexicon.digits())
    ref.flat_start(X[:first])
    history = []
    for _ in range(2):
        st = ref.accumulate(X, words)
        history.append(st.log_likelihood)
        ref.update(st)

    fits = [fit_corpus(EmbeddedTrainer(Lexicon.digits()), corpus, n_iter=2, tol=0, init_frames=1000,
                       n_jobs=n_jobs) for n_jobs in (1, 2)]
    for name in ("means_", "covars_", "weights_", "self_loop_"):
        serial, parallel, want = (getattr(t.model, name) for t in (fits[0], fits[1], ref))
        assert_close(serial, want)
        assert_close(parallel, serial)
    np.testing.assert_allclose(fits[0].corpus_log_likelihood_, history, rtol=1e-10)
    np.testing.assert_allclose(fits[1].corpus_log_likelihood_, fits[0].corpus_log_likelihood_, rtol=1e-10)
    assert history[1] > history[0]


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_skipped_utterances_are_named_by_corpus_index_and_id_once(tmp_path, n_jobs, caplog):
    """An utterance the trainer skips (too short for its transcript) in a later shard is counted
    at its corpus index, not its index within the shard, and the E-step driver names it once,
    whichever process skipped it."""
    import logging

    from gmmhmm.graphs import EmbeddedTrainer, Lexicon
    from gmmhmm.parallel import EStep

    rng = np.random.default_rng(0)
    rows = [(f"u{i}", rng.standard_normal((2 if i == 5 else 60, 13)), ["one"]) for i in range(8)]
    corpus = Corpus.create(tmp_path / "c", rows, frames_per_shard=150)
    first_of_shard = np.cumsum([0] + [s.n_utterances for s in corpus.shard_info])
    assert len(corpus) >= 3 and first_of_shard[1] <= 5 < first_of_shard[-1] and 5 not in first_of_shard
    trainer = EmbeddedTrainer(Lexicon.digits())
    trainer.flat_start([x for _, x, _ in rows])
    in_memory = trainer.accumulate([x for _, x, _ in rows], [w for *_, w in rows])
    assert in_memory.skipped == [5]
    with caplog.at_level(logging.WARNING, logger="gmmhmm.parallel"), EStep(n_jobs=n_jobs) as estep:
        for _ in range(2):  # the same E-step twice, as in EM
            stats = estep(trainer, corpus)
            assert stats.skipped == [5] and stats.n_utterances == 7
    named = [r for r in caplog.records if r.name == "gmmhmm.parallel" and "u5" in r.getMessage()]
    assert len(named) == 1 and named[0].levelno == logging.WARNING
