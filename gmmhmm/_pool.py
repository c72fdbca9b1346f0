"""Worker processes that survive each other and do not outlive their driver.

:func:`map_processes` runs ``func`` over items in worker processes started
from a fork server (spawned where there is none). When a
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
from .errors import WorkerFailedError

logger = logging.getLogger(__name__)

PARENT_POLL_S = 0.5


def watch_parent(driver_pid: int) -> None:
    """Worker initializer: exit as soon as the driving process is gone.

    A forkserver worker's parent is the fork server, which exits with the
    driver; so the worker leaves when its parent changes or the driver's pid
    no longer exists, whichever it sees first.
    """
    parent = os.getppid()

    def driver_alive() -> bool:
        try:
            os.kill(driver_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, owned by someone else
            return True
        return True

    def watch() -> None:
        while os.getppid() == parent and driver_alive():
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


# Modules the fork server imports once, so a worker starts in milliseconds
# instead of importing numpy, scipy, librosa and numba's caches again.
_PRELOAD = ["numpy", "scipy.signal", "gmmhmm.features", "gmmhmm.hmm", "gmmhmm.classifier"]


def _context() -> multiprocessing.context.BaseContext:
    """forkserver where the platform has it, else spawn: never a plain fork, which
    is unsafe once BLAS, OpenMP or numba threads run in the driver."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


def new_pool(n_jobs: int) -> ProcessPoolExecutor:
    """A pool of ``n_jobs`` workers (forkserver, else spawn) that die with this process.

    The workers share the cores: each computes on ``cores // n_jobs``
    threads (BLAS, OpenMP and gmmhmm's own, see :mod:`gmmhmm._threads`), so
    n_jobs processes never oversubscribe the machine.
    """
    threads = max(1, _threads.get_num_threads() // n_jobs)
    return ProcessPoolExecutor(n_jobs, mp_context=_context(), initializer=_init_worker,
                               initargs=(os.getpid(), threads))


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
    When no item ever finishes — workers that die as they start, typically a
    script without an ``if __name__ == "__main__":`` guard re-imported by the
    spawned workers — :class:`~gmmhmm.errors.WorkerFailedError` is raised at
    once instead of retrying every item. Exceptions raised by ``func`` itself
    propagate.
    """
    lost = yield from _run(func, items, range(len(items)), n_jobs)
    if not lost:
        return
    finished_any = len(lost) < len(items)
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
                finished_any = True
                yield i, result
                break
            else:
                if not finished_any:
                    raise WorkerFailedError(
                        f"worker processes died before finishing any of {len(items)} item(s); starting them "
                        "re-imports the main script: guard its top level with "
                        "`if __name__ == \"__main__\":`, or use n_jobs=1")
                logger.warning("item %d: its worker died %d times; giving up on it", i, retries + 1)
                yield i, WorkerDied(retries + 1)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _call_chunk(func: Callable[[Any], Any], chunk: list[Any]) -> list[Any]:
    return [func(item) for item in chunk]


def _run(func: Callable[[Any], Any], items: Sequence[Any], indices: Sequence[int], n_jobs: int):
    """Yield ``(index, result)`` of ``indices`` run in one pool; return the indices lost with a dead worker.

    Items travel in chunks (about 8 per worker), as ``ProcessPoolExecutor.map``
    does: one round trip per item costs more than extracting an utterance.
    """
    lost = []
    n_workers = max(1, min(n_jobs, len(indices)))
    size = max(1, len(indices) // (8 * n_workers))
    chunks = [list(indices[k:k + size]) for k in range(0, len(indices), size)]
    pool = new_pool(n_workers)
    try:
        futures = {pool.submit(_call_chunk, func, [items[i] for i in chunk]): chunk for chunk in chunks}
        waiting = set(futures)
        while waiting:
            done, waiting = wait(waiting, return_when=FIRST_COMPLETED)
            for future in done:
                try:
                    results = future.result()
                except BrokenProcessPool:
                    lost += futures[future]
                    continue
                yield from zip(futures[future], results)
    finally:  # after an error (or an abandoned iteration) start nothing new
        pool.shutdown(wait=True, cancel_futures=True)
    return lost
