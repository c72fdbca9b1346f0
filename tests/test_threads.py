"""Thread policy: BLAS single-threaded inside gmmhmm's parallel sections, results
independent of the thread count, the user's settings respected."""

from __future__ import annotations

import gc
import os
import threading

import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import gmmhmm
from gmmhmm import _threads
from gmmhmm.errors import InvalidParameterError
from gmmhmm.hmm import GaussianHMM
from gmmhmm.mixture import GaussianMixture
from gmmhmm.mixture._kmeans import assign


def blas_threads() -> set[int]:
    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


@pytest.fixture(autouse=True)
def default_setting():
    previous = _threads.set_num_threads(None)
    yield
    _threads.set_num_threads(previous)


def test_compute_pins_blas_and_restores_the_callers_limit():
    with threadpool_limits(2, user_api="blas"):
        assert blas_threads() == {2}
        with _threads.compute():
            assert blas_threads() == {1}
            with _threads.compute():  # re-entrant: the inner exit keeps the limit
                pass
            assert blas_threads() == {1}
        assert blas_threads() == {2}


def test_compute_sets_numba_threads_for_the_section_only():
    _threads.set_num_threads(1)
    before = numba.get_num_threads()
    with _threads.compute() as n:
        assert n == 1 and numba.get_num_threads() == 1
    assert numba.get_num_threads() == before


def test_set_num_threads_validates_and_returns_previous():
    assert gmmhmm.set_num_threads(1) is None
    assert gmmhmm.get_num_threads() == 1
    assert gmmhmm.set_num_threads(None) == 1
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(InvalidParameterError, match="n_threads"):
            gmmhmm.set_num_threads(bad)
    with pytest.raises(InvalidParameterError, match="NUMBA_NUM_THREADS"):
        gmmhmm.set_num_threads(numba.config.NUMBA_NUM_THREADS + 1)


@pytest.mark.parametrize("value, expected", [("1", 1), ("not a number", None)])
def test_default_respects_omp_num_threads_at_start(value, expected):
    import subprocess
    import sys

    code = "import gmmhmm, numba, os; print(gmmhmm.get_num_threads(), min(len(os.sched_getaffinity(0)), " \
           "numba.config.NUMBA_NUM_THREADS))"
    env = {**os.environ, "OMP_NUM_THREADS": value}
    got, default = map(int, subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                           check=True).stdout.split())
    assert got == (expected or default)  # a value OpenMP would reject is ignored


def test_omp_num_threads_set_later_changes_nothing(monkeypatch):
    before = gmmhmm.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as Dask's nanny does in the client process
    assert gmmhmm.get_num_threads() == before


def test_cap_threads_is_per_thread_and_nests():
    with _threads.cap_threads(1):
        assert gmmhmm.get_num_threads() == 1
        with _threads.cap_threads(4):  # a cap never raises an outer one
            assert gmmhmm.get_num_threads() == 1
    assert gmmhmm.get_num_threads() == min(_threads._available_cpus(), numba.config.NUMBA_NUM_THREADS)


def test_map_ordered_keeps_item_order():
    assert list(_threads.map_ordered(lambda i: i * i, range(50), 2)) == [i * i for i in range(50)]
    assert list(_threads.map_ordered(lambda i: i, [], 2)) == []


def _hammer(work, n_threads: int = 4) -> None:
    """``work(k)`` on ``n_threads`` threads started together, switching between threads often
    (a race needs a switch at the wrong moment); the first error is raised here."""
    import sys
    import threading

    errors: list[BaseException] = []
    start = threading.Barrier(n_threads)

    def run(k: int) -> None:
        start.wait()
        try:
            work(k)
        except BaseException as exc:  # noqa: BLE001 - raised in the caller
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=run, args=(k,)) for k in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    if errors:
        raise errors[0]


def test_map_ordered_from_threads_with_different_thread_counts():
    """Bug: the shared pool was replaced (and shut down) when a caller asked for another size while
    a second thread, holding the old pool, was still submitting to it: 'cannot schedule new futures
    after shutdown'. Threads of one process with different counts (cap_threads) hammer it here."""
    def work(k: int) -> None:
        for i in range(300):
            n = 2 + (i + k) % 3  # pool sizes 2, 3, 4 in turn, out of step between threads
            assert list(_threads.map_ordered(lambda x: x * x, range(12), n)) == [x * x for x in range(12)]

    _hammer(work)


def test_set_num_threads_from_threads_returns_each_setting_once():
    """set_num_threads swaps atomically: every value set is returned as 'previous' exactly once
    (to the next caller), whatever the threads calling it; a restore sees what it replaced."""
    from collections import Counter

    n = numba.config.NUMBA_NUM_THREADS
    returned: Counter = Counter()

    def work(k: int) -> None:
        got = Counter(_threads.set_num_threads(1 + (4 * i + k) % n) for i in range(2000))
        returned.update(got)  # noqa: B023 - one update per thread, under the GIL

    first = _threads.set_num_threads(None)
    try:
        _hammer(work)
    finally:
        returned[_threads.set_num_threads(first)] += 1
    # every value set (and the None before them) is returned once, the last one by the restore
    assert returned == Counter(1 + (4 * i + k) % n for k in range(4) for i in range(2000)) + Counter([None])


def _data(n=20_000, d=5, k=4, dtype=np.float64):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(k, d))[rng.integers(k, size=n)] * 3 + rng.normal(size=(n, d))).astype(dtype)


@pytest.mark.parametrize("covariance_type", ["diag", "full", "tied", "spherical"])
def test_gmm_statistics_do_not_depend_on_the_thread_count(covariance_type):
    """Blocks are summed in block order, so 1 and 2 threads agree to the last bit."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 numba threads")
    X = _data()
    gm = GaussianMixture(4, covariance_type=covariance_type, max_iter=2, random_state=0).fit(X)
    results = []
    for n in (1, 2):
        gmmhmm.set_num_threads(n)
        stats = gm.accumulate(X)
        results.append((stats.log_likelihood, stats.gaussian.n, stats.gaussian.s1, stats.gaussian.s2,
                        gm.predict_proba(X), assign(X, gm.means_)[1]))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_hmm_fit_and_decode_do_not_depend_on_the_thread_count():
    X = _data(3000, 3, 3)
    lengths = [300] * 10
    out = []
    for n in (1, 2):
        gmmhmm.set_num_threads(n)
        m = GaussianHMM(3, n_iter=3, random_state=0).fit(X, lengths)
        out.append((m.means_, m.transmat_, m.score(X, lengths), m.decode(X, lengths)[1]))
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)


def test_float32_mixture_predicts_like_float64():
    X = _data(5000)
    m64 = GaussianMixture(4, covariance_type="diag", random_state=0).fit(X)
    m32 = GaussianMixture(4, covariance_type="diag", random_state=0).fit(X.astype(np.float32))
    assert m32.means_.dtype == np.float32
    assert np.mean(m32.predict(X.astype(np.float32)) == m64.predict(X)) > 0.999


def test_map_ahead_keeps_order_and_stays_a_bounded_distance_ahead():
    started = []

    def func(i):
        started.append(i)
        return i * i

    out = []
    for k, r in enumerate(_threads.map_ahead(func, list(range(30)), 2)):
        out.append(r)
        assert max(started) <= k + 2  # never more than n_threads items beyond the one consumed
    assert out == [i * i for i in range(30)]
    assert list(_threads.map_ahead(func, [], 2)) == [] and list(_threads.map_ahead(func, [3], 2)) == [9]


def test_map_ahead_runs_each_call_single_threaded_and_passes_errors_on():
    assert set(_threads.map_ahead(lambda i: gmmhmm.get_num_threads(), list(range(6)), 2)) == {1}

    def fail(i):
        if i == 3:
            raise ValueError("item 3")
        return i

    it = _threads.map_ahead(fail, list(range(8)), 2)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match="item 3"):
        next(it)
    early = _threads.map_ahead(lambda i: i, list(range(100)), 2)
    assert next(early) == 0
    early.close()  # the consumer stops early: pending calls are dropped, nothing hangs


def test_embedded_statistics_do_not_depend_on_the_thread_count():
    """Batches are scored on threads ahead of the accumulation but summed in batch order:
    1 and 2 threads agree to the last bit."""
    from test_embedded import LEXICON, synthetic_corpus  # noqa: PLC0415
    from gmmhmm.graphs import EmbeddedTrainer  # noqa: PLC0415

    feats, texts, _, _ = synthetic_corpus(n_utts=30)
    tr = EmbeddedTrainer(LEXICON)
    tr.fit(feats, texts, mixtures=(1, 2), n_iter=(2, 1))
    tr._batch_elements = 600  # many small batches
    out = []
    for n in (1, 2):
        gmmhmm.set_num_threads(n)
        st = tr.accumulate(feats, texts)
        out.append((st.log_likelihood, st.gaussian.n, st.gaussian.s1, st.gaussian.s2, st.trans_self,
                    st.trans_leave, st.n_frames))
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)


class _CountingExecutor(_threads.ThreadPoolExecutor):
    created = 0

    def __init__(self, *args, **kwargs):
        type(self).created += 1
        super().__init__(*args, **kwargs)


@pytest.fixture
def fresh_pool(monkeypatch):
    """map_ordered's shared pool starts empty and is built from a counting executor; the pools
    made here are shut down afterwards."""
    _CountingExecutor.created = 0
    monkeypatch.setattr(_threads, "ThreadPoolExecutor", _CountingExecutor)
    monkeypatch.setattr(_threads, "_pool", None)
    monkeypatch.setattr(_threads, "_pool_size", 0)
    yield _CountingExecutor
    if _threads._pool is not None:
        _threads._pool.shutdown(wait=False)  # a deadlocked test must not hang the session


def test_map_ordered_reuses_its_pool_across_thread_counts(fresh_pool):
    """Bug: every change of size (callers with different counts, set_num_threads between calls)
    started a new pool of threads. Sizes 1, 2, 3 in turn: at most one pool per larger size seen."""
    for i in range(60):
        n = 1 + i % 3
        assert list(_threads.map_ordered(lambda x: x * x, range(20), n)) == [x * x for x in range(20)]
    assert fresh_pool.created <= 2


def test_map_ordered_runs_at_most_n_threads_at_a_time(fresh_pool):
    """A pool bigger than a call's count (grown by another caller) still runs that call on
    ``n_threads`` threads at most, and on that many when the work allows it."""
    import threading
    import time

    lock = threading.Lock()
    running = peak = 0

    def func(x):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.005)
        with lock:
            running -= 1
        return -x

    for n in (3, 2, 3, 2):
        peak = 0
        assert list(_threads.map_ordered(func, range(24), n)) == [-x for x in range(24)]
        assert peak == n


def test_map_ordered_passes_errors_on_and_drops_the_rest(fresh_pool):
    import threading

    started = []
    gate = threading.Event()

    def func(x):
        started.append(x)
        if x == 2:
            raise ValueError("item 2")
        if x > 2:
            gate.wait(5)  # busy until the caller has seen the error
        return x

    it = _threads.map_ordered(func, range(200), 2)
    assert [next(it), next(it)] == [0, 1]
    with pytest.raises(ValueError, match="item 2"):
        next(it)
    gate.set()
    _threads._pool.shutdown(wait=True)  # everything submitted has finished or been dropped
    assert len(started) <= 5  # items not started when the caller saw the error are not run


def test_map_ordered_leaves_a_bounded_number_of_threads(fresh_pool):
    import threading
    import time

    before = set(threading.enumerate())  # the pools of earlier tests are not this test's
    for i in range(40):
        list(_threads.map_ordered(lambda x: x, range(8), 2 + i % 3))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # threads of a replaced pool exit once idle
        alive = [t for t in set(threading.enumerate()) - before if t.name.startswith("gmmhmm")]
        if len(alive) <= 4:
            break
        time.sleep(0.01)
    assert len(alive) <= 4


def test_map_ordered_nested_in_its_own_threads_runs_serially(fresh_pool):
    """A mapped function that itself maps (on fewer threads than the pool holds) would wait for
    work queued behind its own callers, which hold every thread: a nested call runs in its thread."""
    import threading

    def inner(x):
        return sum(_threads.map_ordered(lambda y: x * y, range(4), 2))

    result = []
    t = threading.Thread(target=lambda: result.append(list(_threads.map_ordered(inner, range(6), 3))), daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "nested map_ordered deadlocked"
    assert result == [[6 * x for x in range(6)]]


def test_map_ahead_reuses_the_shared_pool(fresh_pool):
    """Bug: map_ahead started a ThreadPoolExecutor (thread start-up) at every call, i.e. every
    training pass; it now runs on map_ordered's shared pool, whatever the thread count."""
    for i in range(40):
        n = 2 + i % 2
        assert list(_threads.map_ahead(lambda x: x * x, list(range(10)), n)) == [x * x for x in range(10)]
        assert list(_threads.map_ordered(lambda x: -x, range(10), n)) == [-x for x in range(10)]
    assert fresh_pool.created <= 2


class _Held:
    """A result that counts how many of its kind are alive (computed, not yet freed)."""
    import threading
    lock = threading.Lock()
    alive = peak = 0

    def __init__(self, x):
        self.x = x
        with _Held.lock:
            _Held.alive += 1
            _Held.peak = max(_Held.peak, _Held.alive)

    def __del__(self):
        with _Held.lock:
            _Held.alive -= 1


@pytest.mark.parametrize("n", [2, 3])
def test_map_ahead_holds_at_most_n_threads_plus_one_results(fresh_pool, n):
    """The look-ahead is bounded by results alive, not only by calls started: the consumer's
    result and at most ``n_threads`` computed ahead of it; results of a finished call are freed."""
    import time

    _Held.alive = _Held.peak = 0
    it = _threads.map_ahead(_Held, list(range(40)), n)
    for k in range(40):  # (not enumerate(it): its cached tuple keeps the last result while it waits)
        r = next(it)
        assert r.x == k  # in item order
        deadline = time.monotonic() + 5
        while _Held.alive < min(n + 1, 40 - k) and time.monotonic() < deadline:
            time.sleep(0.001)  # the threads run the full n_threads items ahead while the consumer works
        assert _Held.alive == min(n + 1, 40 - k)
        del r  # done with it before taking the next
    assert next(it, None) is None
    assert _Held.peak == n + 1
    assert _Held.alive == 0


def test_map_ahead_stopped_early_runs_nothing_more(fresh_pool):
    import threading

    started = []
    gate = threading.Event()

    def func(x):
        started.append(x)
        gate.wait(5)
        return x

    it = _threads.map_ahead(func, list(range(200)), 2)
    gate.set()
    assert next(it) == 0
    it.close()  # the consumer stops: the items not started are never run
    _threads._pool.shutdown(wait=True)
    assert len(started) <= 3


def test_map_ahead_passes_errors_on_and_drops_the_rest(fresh_pool):
    started = []

    def func(x):
        started.append(x)
        if x == 2:
            raise ValueError("item 2")
        return x

    it = _threads.map_ahead(func, list(range(200)), 2)
    assert [next(it), next(it)] == [0, 1]
    with pytest.raises(ValueError, match="item 2"):
        next(it)
    _threads._pool.shutdown(wait=True)
    assert len(started) <= 5


def _in_thread(target):
    import threading

    result = []
    t = threading.Thread(target=lambda: result.append(target()), daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "deadlocked"
    return result[0]


@pytest.mark.parametrize("outer", ["map_ordered", "map_ahead"])
@pytest.mark.parametrize("inner", ["map_ordered", "map_ahead"])
def test_map_ahead_nested_in_the_pool_threads_runs_serially(fresh_pool, outer, inner):
    """A map_ahead (or map_ordered) inside a function mapped on the shared pool would queue behind
    the callers holding its threads: it runs in its own thread."""
    def work(x):
        return sum(getattr(_threads, inner)(lambda y: x * y, list(range(4)), 2))

    assert _in_thread(lambda: list(getattr(_threads, outer)(work, list(range(6)), 2))) == [6 * x for x in range(6)]


def test_map_ahead_consumer_may_use_the_pool_itself(fresh_pool):
    """The consumer of map_ahead (an accumulator) runs its own map_ordered on the same pool, which
    may be no larger than map_ahead's count: the work computed ahead must not hold the threads."""
    def consume():
        out = []
        for r in _threads.map_ahead(lambda x: x + 1, list(range(20)), 2):
            out.append(sum(_threads.map_ordered(lambda y: r * y, range(4), 2)))
        return out

    assert _in_thread(consume) == [6 * (x + 1) for x in range(20)]


class _CollectingExecutor(_CountingExecutor):
    def submit(self, *args, **kwargs):
        gc.collect()  # a collection can start at any allocation, as at the Future made here
        return super().submit(*args, **kwargs)


@pytest.mark.parametrize("mapper", [_threads.map_ordered, _threads.map_ahead])
def test_a_collection_in_a_locked_section_may_end_an_abandoned_compute_section(monkeypatch, mapper):
    """Bug (a hang, main too): a generator left suspended inside compute() in a reference cycle
    (e.g. HMM forward-backward or embedded posteriors whose consumer raised, the traceback kept)
    is closed by whichever thread's allocation starts the next garbage collection, possibly
    while that thread holds the module lock to submit to the pool (or limit BLAS): its exit took
    the lock again on the same thread and waited for itself forever."""
    monkeypatch.setattr(_threads, "ThreadPoolExecutor", _CollectingExecutor)
    monkeypatch.setattr(_threads, "_pool", None)
    monkeypatch.setattr(_threads, "_pool_size", 0)
    fresh = threading.RLock() if hasattr(_threads._lock, "_is_owned") else threading.Lock()
    monkeypatch.setattr(_threads, "_lock", fresh)  # a hang leaves the session's lock and sections
    monkeypatch.setattr(_threads, "_depth", 0)
    monkeypatch.setattr(_threads, "_limiter", None)

    def section():
        with _threads.compute():
            yield

    numba_threads = numba.get_num_threads()
    numba.set_num_threads(1)
    abandoned = section()
    next(abandoned)
    numba.set_num_threads(numba_threads)
    cycle = [abandoned]
    cycle.append(cycle)
    del abandoned, cycle
    result = []

    def run():
        result.append(list(mapper(lambda x: x * x, list(range(6)), 2)))
        result.append(numba.get_num_threads())  # the section's exit restored its own thread's setting only

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "the collection's generator exit waited for the lock its own thread held"
    assert result == [[x * x for x in range(6)], numba.config.NUMBA_NUM_THREADS]
    assert _threads._depth == 0  # the abandoned section was ended, BLAS limits restored
    _threads._pool.shutdown(wait=False)
