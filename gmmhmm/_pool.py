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

import contextlib
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


# Environment variables that size the BLAS / OpenMP / numba thread pools of a worker.
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "BLIS_NUM_THREADS", "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


@contextlib.contextmanager
def _thread_env(n_threads: int):
    """Temporarily set the thread-count variables children inherit at start."""
    old = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update({k: str(n_threads) for k in _THREAD_VARS})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def new_pool(n_jobs: int) -> ProcessPoolExecutor:
    """A spawned pool of ``n_jobs`` started workers that die with this process.

    Spawned, not forked: fork is unsafe once BLAS or numba threads run here.
    Not forkserver: its children inherit the server's environment, not ours.
    The workers share the cores: each starts with ``cores // n_jobs`` threads
    for BLAS, OpenMP and numba (gmmhmm's :func:`~gmmhmm._threads.get_num_threads`
    reads the same), so n_jobs processes never oversubscribe the machine.
    """
    threads = max(1, _threads.get_num_threads() // n_jobs)
    with _thread_env(threads):
        pool = ProcessPoolExecutor(n_jobs, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=watch_parent, initargs=(os.getpid(),))
        # Start every worker now, while the environment is set (they start on demand).
        for f in [pool.submit(os.getpid) for _ in range(n_jobs)]:
            f.result()
    return pool


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
