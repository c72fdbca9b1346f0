"""How many threads gmmhmm computes with, and keeping BLAS from fighting them.

gmmhmm parallelises its own hot loops: the compiled forward-backward, forward
and Viterbi kernels run sequences in parallel (numba ``prange``) and the GMM
E-step runs blocks of rows on a pool of threads. A multi-threaded BLAS inside
those sections puts a second thread pool on the same cores: OpenBLAS workers
spin-wait for a while after every call and take the cores numba's threads
need, and its threads only slow down the small per-block GEMMs. So inside a
:func:`compute` section BLAS runs on one thread (set with threadpoolctl and
restored on exit, so the user's own numpy code keeps its BLAS threads) and
gmmhmm's threads do the parallel work.

The thread count is :func:`get_num_threads`: what :func:`set_num_threads`
set, else the CPUs this process may use, capped by ``OMP_NUM_THREADS`` as
it was when the process started (the usual per-process limit, which Dask's
nanny and gmmhmm's own worker processes set) and by numba's pool size
(``NUMBA_NUM_THREADS``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numba

from .errors import InvalidParameterError

__all__ = ["set_num_threads", "get_num_threads", "cap_threads", "compute", "map_ahead", "map_ordered"]

_requested: int | None = None
_local = threading.local()
# Re-entrant: a garbage collection can start at any allocation, also in a section holding the
# lock (submitting to the pool, limiting BLAS), and close there a generator left suspended inside
# compute() (in a reference cycle, e.g. its consumer raised and the traceback was kept), whose exit
# takes the lock again on the same thread.
_lock = threading.RLock()
_depth = 0
_limiter: Any = None
_controller: Any = None
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def _env_threads() -> int | None:
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


# Read once, at start-up, as OpenMP and BLAS runtimes do: a library that sets
# the variable later in the process (Dask's nanny does, for the workers it
# spawns) does not change this process's thread count.
_ENV_THREADS = _env_threads()


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def get_num_threads() -> int:
    """Threads gmmhmm's compiled kernels and E-steps use (in this process and thread)."""
    n = _requested
    if n is None:
        n = _available_cpus()
        if _ENV_THREADS is not None:
            n = min(n, _ENV_THREADS)
    cap = getattr(_local, "cap", None)
    if cap is not None:
        n = min(n, cap)
    return max(1, min(n, numba.config.NUMBA_NUM_THREADS))


def set_num_threads(n_threads: int | None) -> int | None:
    """Set the threads gmmhmm computes with (``None``: back to the default).

    The default, all CPUs available to the process (capped by
    ``OMP_NUM_THREADS``), is the fastest measured setting; use 1 when
    running several gmmhmm processes side by side. gmmhmm's worker
    processes (``n_jobs``) and tasks on Dask workers get their share of the
    cores automatically. Returns the previous setting.
    """
    global _requested
    if n_threads is not None and (isinstance(n_threads, bool) or not isinstance(n_threads, int)
                                  or n_threads < 1):
        raise InvalidParameterError(f"n_threads must be a positive integer or None, got {n_threads!r}")
    if n_threads is not None and n_threads > numba.config.NUMBA_NUM_THREADS:
        raise InvalidParameterError(
            f"n_threads={n_threads} exceeds numba's thread pool ({numba.config.NUMBA_NUM_THREADS}); "
            "set NUMBA_NUM_THREADS before starting Python to allow more")
    with _lock:  # one swap: concurrent callers each get the setting they replaced
        previous, _requested = _requested, n_threads
    return previous


@contextlib.contextmanager
def cap_threads(n_threads: int) -> Iterator[None]:
    """At most ``n_threads`` for gmmhmm work started from the calling thread
    (e.g. a task sharing its process with other tasks)."""
    old = getattr(_local, "cap", None)
    _local.cap = max(1, n_threads) if old is None else min(old, max(1, n_threads))
    try:
        yield
    finally:
        _local.cap = old


def _blas_controller() -> Any:
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController  # noqa: PLC0415 - loaded on first use

        _controller = ThreadpoolController()
    return _controller


@contextlib.contextmanager
def compute() -> Iterator[int]:
    """Section of gmmhmm's own parallel work: BLAS on one thread, numba on :func:`get_num_threads`.

    Re-entrant and safe from several threads: the first entry limits BLAS,
    the last exit restores it. Yields the thread count.
    """
    global _depth, _limiter
    n = get_num_threads()
    with _lock:
        if _depth == 0:
            _limiter = _blas_controller().limit(limits=1, user_api="blas")
        _depth += 1
    previous = numba.get_num_threads()  # numba's setting is per calling thread
    owner = threading.get_ident()
    numba.set_num_threads(n)
    try:
        yield n
    finally:
        if threading.get_ident() == owner:  # not when a garbage collection closes it on another thread
            numba.set_num_threads(previous)
        with _lock:
            _depth -= 1
            if _depth == 0:
                _limiter.restore_original_limits()
                _limiter = None


class _Feed:
    """``func(item)`` for every item on at most ``n`` threads of the shared pool, at most
    ``ahead`` items beyond those the caller has taken, the results yielded in item order.

    One pool serves every thread count and both maps: up to ``n`` drains take the items in order,
    and a drain that finds the window full leaves its thread (it never waits for the caller,
    whose own work may need the pool's threads); the caller starts drains again as it takes
    results. Only a count larger than the pool replaces it (shut down without waiting, so the
    work already in it still runs; its idle threads exit, and concurrent.futures joins the
    pool's threads at interpreter exit). Drains are submitted under the module lock, so the pool
    is never replaced while a caller is submitting to it.
    """

    def __init__(self, func: Callable[[Any], Any], items: Sequence[Any], n: int, ahead: int) -> None:
        self.func, self.n, self.ahead, self.size = func, n, ahead, len(items)
        self.futures = [Future() for _ in items]
        self.queue = deque(zip(items, self.futures))  # the drains' share: popped as taken
        self.lock = threading.Lock()
        self.next = 0  # the next item a drain takes
        self.limit = 0  # items below it may start
        self.drains = 0  # drains submitted and not finished

    def _take(self) -> tuple[Any, Future] | None:
        with self.lock:
            if self.next >= self.limit:
                self.drains -= 1
                return None
            self.next += 1
            return self.queue.popleft()

    def _drain(self) -> None:
        _local.in_pool = True  # a map inside func runs serially (see map_ordered)
        while (task := self._take()) is not None:
            item, future = task
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(self.func(item))
                except BaseException as exc:  # noqa: BLE001 - raised in the caller by result()
                    future.set_exception(exc)
            del task, item, future  # a result is not kept while the drain takes the next item

    def _open(self, taken: int) -> None:
        """The caller has ``taken`` results: let ``ahead`` more items start, on new drains as far
        as ``n`` allows."""
        global _pool, _pool_size
        with self.lock:
            self.limit = min(self.size, taken + self.ahead)
            start = min(self.n - self.drains, self.limit - self.next)
            self.drains += max(0, start)
        if start <= 0:
            return
        with _lock:
            if _pool is None or _pool_size < self.n:
                if _pool is not None:
                    _pool.shutdown(wait=False)
                _pool_size = max(self.n, numba.config.NUMBA_NUM_THREADS)  # the usual largest count, at once
                _pool = ThreadPoolExecutor(_pool_size, thread_name_prefix="gmmhmm")
            for _ in range(start):
                _pool.submit(self._drain)

    def __iter__(self) -> Iterator[Any]:
        futures, self.futures = self.futures[::-1], []
        try:
            self._open(0)
            for taken in range(1, self.size + 1):
                future = futures.pop()  # popped: a result is not kept once the caller is done with it
                future.result()  # done (or raises): the next item may start
                self._open(taken)
                yield future.result()
        finally:  # the consumer stopped early or failed: nothing more starts, drop what has not started
            with self.lock:
                self.limit = self.next
            for future in futures:
                future.cancel()


def map_ordered(func: Callable[[Any], Any], items: Sequence[Any], n_threads: int) -> Iterator[Any]:
    """``func(item)`` for every item on ``n_threads`` threads, yielded in item order.

    The caller combines the results in that order, so a sum over them does
    not depend on the thread count. ``func`` must release the GIL for its
    heavy work (BLAS, numpy ufuncs, ``nogil`` numba kernels). Called from
    within ``func`` (on one of the pool's threads) it runs serially: its work
    would queue behind the callers holding the threads.
    """
    if n_threads <= 1 or len(items) <= 1 or getattr(_local, "in_pool", False):
        yield from map(func, items)
        return
    yield from _Feed(func, items, n_threads, ahead=len(items))


def map_ahead(func: Callable[[Any], Any], items: Sequence[Any], n_threads: int) -> Iterator[Any]:
    """``func(item)`` on ``n_threads`` threads at most ``n_threads`` items ahead of the
    caller, yielded in item order: a pipeline whose consumer (e.g. a statistics
    accumulator) works on one result while the next ones are computed, holding
    only ``n_threads + 1`` results at a time.

    Each call runs single-threaded (:func:`cap_threads`), so nested gmmhmm
    parallel sections run serially inside it. ``func`` must release the GIL
    for its heavy work, and nested calls run serially, as for :func:`map_ordered`;
    both share one pool of threads.
    """
    if n_threads <= 1 or len(items) <= 1 or getattr(_local, "in_pool", False):
        yield from map(func, items)
        return

    def capped(item: Any) -> Any:
        with cap_threads(1):
            return func(item)

    yield from _Feed(capped, items, n_threads, ahead=n_threads)
