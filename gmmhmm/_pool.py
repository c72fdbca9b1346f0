"""Worker processes that survive each other and do not outlive their driver.

:func:`map_processes` runs ``func`` over items in spawned processes. When a
worker dies (killed, out of memory), ``ProcessPoolExecutor`` fails every
unfinished item with ``BrokenProcessPool``; here those items are run again
in a fresh pool, up to ``retries`` times, and items whose worker died every
time are returned as failures instead of aborting the others. Every worker
watches its parent and exits when the driver is gone, so killing the driver
never leaves orphans running.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from . import _threads

logger = logging.getLogger(__name__)

PARENT_POLL_S = 0.5


def watch_parent(parent_pid: int) -> None:
    """Worker initializer: exit as soon as the process that started us is gone."""
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="gmmhmm-parent-watch", daemon=True).start()


# Environment variables that size the BLAS / OpenMP / numba thread pools of a process.
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "BLIS_NUM_THREADS", "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def _init_worker(parent_pid: int, n_threads: int) -> None:
    """Worker initializer: its share of the cores, and exit when the driver is gone."""
    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    # libraries loaded later, grandchildren; not numba's, fixed when it was imported (set_num_threads below)
    os.environ.update({k: str(n_threads) for k in _THREAD_VARS if k != "NUMBA_NUM_THREADS"})
    threadpool_limits(n_threads)  # BLAS / OpenMP already loaded (numpy, scipy)
    _threads.set_num_threads(n_threads)
    watch_parent(parent_pid)


def new_pool(n_jobs: int) -> ProcessPoolExecutor:
    """A spawned pool of ``n_jobs`` workers that die with this process.

    Spawned, not forked: fork is unsafe once BLAS or numba threads run here.
    The workers share the cores: each computes on ``cores // n_jobs``
    threads (BLAS, OpenMP and gmmhmm's own, see :mod:`gmmhmm._threads`), so
    n_jobs processes never oversubscribe the machine.
    """
    threads = max(1, _threads.get_num_threads() // n_jobs)
    return ProcessPoolExecutor(n_jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(os.getpid(), threads))


class WorkerDied:
    """Result of an item whose worker process died on every attempt."""

    def __init__(self, attempts: int) -> None:
        self.attempts = attempts

    def __str__(self) -> str:
        return f"its worker process died ({self.attempts} attempt(s)); killed or out of memory?"


def map_processes(func: Callable[[Any], Any], items: Sequence[Any], n_jobs: int,
                  retries: int = 2) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, func(items[index]))`` as items finish, in any order.

    Items lost with a dead worker are run again one at a time in a single
    worker (so an item that kills its worker cannot take innocent ones with
    it); one whose worker died ``retries + 1`` times yields a :class:`WorkerDied`.
    Exceptions raised by ``func`` itself propagate.
    """
    lost = yield from _run(func, items, range(len(items)), n_jobs)
    if not lost:
        return
    logger.warning("a worker process died; retrying %d unfinished item(s) one at a time", len(lost))
    pool = None
    try:
        for i in sorted(lost):
            for _ in range(retries):
                pool = pool or new_pool(1)
                try:
                    result = pool.submit(func, items[i]).result()
                except BrokenProcessPool:
                    pool.shutdown(wait=True)
                    pool = None
                    continue
                yield i, result
                break
            else:
                logger.warning("item %d: its worker died %d times; giving up on it", i, retries + 1)
                yield i, WorkerDied(retries + 1)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _run(func: Callable[[Any], Any], items: Sequence[Any], indices: Sequence[int], n_jobs: int):
    """Yield ``(index, result)`` of ``indices`` run in one pool; return the indices lost with a dead worker."""
    lost = []
    pool = new_pool(max(1, min(n_jobs, len(indices))))
    try:
        futures = {pool.submit(func, items[i]): i for i in indices}
        waiting = set(futures)
        while waiting:
            done, waiting = wait(waiting, return_when=FIRST_COMPLETED)
            for future in done:
                try:
                    result = future.result()
                except BrokenProcessPool:
                    lost.append(futures[future])
                    continue
                yield futures[future], result
    finally:  # after an error (or an abandoned iteration) start nothing new
        pool.shutdown(wait=True, cancel_futures=True)
    return lost
