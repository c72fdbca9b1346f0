"""EM over a sharded corpus: serial, local processes or a Dask cluster.

Every gmmhmm model follows the additive-statistics protocol::

    stats = model.accumulate(<one shard>) + model.accumulate(<another shard>)
    model.update(stats)

so one E-step is a map over shards followed by a reduction with ``+``, and
the M-step runs on the driver. The three backends differ only in where the
map runs:

* serial (``n_jobs=1``, ``client=None``);
* ``n_jobs`` local worker processes (spawned, never forked);
* a ``dask.distributed.Client``: the workers read the shards from a path
  they share; the statistics are summed with a tree of ``+`` tasks.

The driver ships the model (its parameters, a few KB) to the workers once
per iteration and never the data. Whatever the backend, the partial
statistics are combined in the same pairwise tree over the shard order, so
every backend gives the same model as the serial run.

Each shard's statistics travel with a tally of which shards and how many
frames they cover; before an update the driver checks that every shard of
the corpus was counted exactly once, so a lost or duplicated shard can never
silently bias the model. A worker that dies makes the iteration be retried
(``max_retries`` times), then :class:`WorkerFailedError` is raised.

Usage::

    corpus = Corpus.open("feats/corpus.json")
    gm = fit_corpus(GaussianMixture(64, covariance_type="diag"), corpus, n_iter=20, n_jobs=2)

    from dask.distributed import Client
    hmm = fit_corpus(GMMHMM(5, n_mix=4), corpus, client=Client("scheduler:8786"))

    with EStep(n_jobs=4) as estep:            # one E-step at a time, workers kept
        trainer.update(estep(trainer, corpus))
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import math
import os
import pickle
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _threads
from . import _validation as V
from . import checkpoint
from ._pool import new_pool
from .corpus import Corpus
from .errors import ConvergenceError, GmmhmmError, InvalidParameterError, WorkerFailedError  # noqa: F401 (re-exported)

logger = logging.getLogger(__name__)



class StatisticsMismatchError(GmmhmmError):
    """The reduced statistics do not cover every shard of the corpus exactly once."""


@dataclass
class _Tally:
    """Statistics of some shards plus which shards and how many frames they cover, and the
    ids of the utterances the model skipped in them."""

    stats: Any
    shards: tuple[int, ...]
    n_frames: int
    skipped_ids: tuple[str, ...] = ()

    def __add__(self, other: "_Tally") -> "_Tally":
        return _Tally(self.stats + other.stats, self.shards + other.shards, self.n_frames + other.n_frames,
                      self.skipped_ids + other.skipped_ids)


# ----------------------------------------------------------------------------
# What runs on a worker
# ----------------------------------------------------------------------------

def _split(X: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    return np.split(X, np.cumsum(lengths)[:-1])


def _model_call(method: Any, style: str, X: np.ndarray, lengths: np.ndarray, labels: list | None) -> Any:
    """Call ``accumulate`` or ``fit`` with the arguments the model's protocol expects."""
    if style == "transcripts":
        if labels is None:
            raise InvalidParameterError("this model trains on transcripts but the corpus has no labels")
        return method(_split(X, lengths), labels)
    if style == "lengths":
        return method(X, lengths)
    return method(X)


def accumulate_shard(model: Any, shard_path: str, shard_index: int = 0,
                     expected_frames: int | None = None, first_utterance: int = 0) -> _Tally:
    """E-step on one shard file (runs on a worker); returns a tally of statistics.

    Statistics that list skipped utterances (``skipped``, indices into the
    shard) get them as corpus indices (``first_utterance``: the corpus index
    of the shard's first utterance), and the tally carries their ids.
    """
    from .corpus import load_shard  # noqa: PLC0415 - keeps the worker import explicit

    if not os.path.isfile(shard_path):
        from .errors import ModelFileError  # noqa: PLC0415
        raise ModelFileError(f"{shard_path}: corpus shard is missing (is the path shared with the workers?)")
    X, lengths, ids, labels = load_shard(shard_path)
    if expected_frames is not None and X.shape[0] != expected_frames:
        from .errors import ModelFileError  # noqa: PLC0415
        raise ModelFileError(f"{shard_path}: holds {X.shape[0]} frames, the corpus index says {expected_frames}")
    with _threads.cap_threads(_task_threads()):
        stats = _model_call(model.accumulate, checkpoint.accumulate_style(model), X, lengths, labels)
    skipped = getattr(stats, "skipped", None) or []
    if skipped:
        stats.skipped = [first_utterance + i for i in skipped]
    return _Tally(stats, (shard_index,), int(X.shape[0]), tuple(ids[i] for i in skipped))


def _task_threads() -> int:
    """Threads one task may use: on a Dask worker running ``nthreads`` tasks at
    once, its share of the cores (the nanny's ``OMP_NUM_THREADS=1`` may cap it
    further); elsewhere, no cap beyond gmmhmm's default."""
    cpus = _threads.get_num_threads()
    if "distributed" not in sys.modules:
        return cpus
    from distributed import get_worker  # noqa: PLC0415

    try:
        worker = get_worker()
    except ValueError:  # not in a Dask task
        return cpus
    state = getattr(worker, "state", worker)
    return max(1, cpus // max(1, int(getattr(state, "nthreads", 1))))


def _accumulate_pickled(payload: bytes, shard_path: str, shard_index: int, expected_frames: int,
                        first_utterance: int) -> _Tally:
    return accumulate_shard(pickle.loads(payload), shard_path, shard_index, expected_frames, first_utterance)


def _first_utterances(corpus: Corpus) -> list[int]:
    """Corpus index of each shard's first utterance."""
    return np.cumsum([0] + [s.n_utterances for s in corpus.shard_info[:-1]]).tolist()


def _add(a: Any, b: Any) -> Any:
    return a + b


def tree_sum(items: list[Any], add: Callable[[Any, Any], Any] = _add) -> Any:
    """Sum ``items`` pairwise, (((0+1)+(2+3))+...), in a fixed order.

    Parameters
    ----------
    items : non-empty list
    add : callable(a, b), optional
        The addition; the Dask backend passes one that submits ``a + b`` as
        a task, so its reduction pairs (and rounds) exactly as here.
    """
    if not items:
        raise InvalidParameterError("nothing to sum")
    while len(items) > 1:
        items = [add(items[i], items[i + 1]) if i + 1 < len(items) else items[i] for i in range(0, len(items), 2)]
    return items[0]


# ----------------------------------------------------------------------------
# Backends: map accumulate over shards, reduce with +
# ----------------------------------------------------------------------------

class _Serial:
    def map_reduce(self, model: Any, corpus: Corpus) -> _Tally:
        return tree_sum([accumulate_shard(model, s.path, i, s.n_frames, first)
                         for i, (s, first) in enumerate(zip(corpus.shard_info, _first_utterances(corpus)))])

    def close(self) -> None:
        pass


class _Processes:
    """A pool of local processes kept for the whole fit; rebuilt if a worker dies."""

    def __init__(self, n_jobs: int) -> None:
        self.n_jobs = n_jobs
        self.pool: ProcessPoolExecutor | None = None

    def _start(self) -> ProcessPoolExecutor:
        if self.pool is None:
            # spawned, sharing the cores; its workers die with this process
            self.pool = new_pool(self.n_jobs)
        return self.pool

    def map_reduce(self, model: Any, corpus: Corpus) -> _Tally:
        pool = self._start()
        payload = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
        futures = [pool.submit(_accumulate_pickled, payload, s.path, i, s.n_frames, first)
                   for i, (s, first) in enumerate(zip(corpus.shard_info, _first_utterances(corpus)))]
        try:
            return tree_sum([f.result() for f in futures])
        except BrokenProcessPool as exc:
            self.close()
            raise _WorkerLost(f"a worker process died: {exc}") from exc
        finally:
            for f in futures:  # after an error in one shard, skip the rest
                f.cancel()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


class _Dask:
    """Map over shard *paths* on a dask.distributed cluster, then a tree of ``+`` tasks."""

    def __init__(self, client: Any) -> None:
        try:  # fail here, with a hint, rather than at the first E-step
            importlib.import_module("distributed")
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("client= needs dask.distributed: pip install 'gmmhmm[distributed]'") from exc
        self.client = client

    def map_reduce(self, model: Any, corpus: Corpus) -> _Tally:
        from distributed import KilledWorker  # noqa: PLC0415
        from distributed.comm.core import CommClosedError  # noqa: PLC0415

        client = self.client
        try:
            # A task, not scattered data: if every worker holding the model
            # dies, the scheduler can recompute it from the graph.
            payload = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
            model_future = client.submit(pickle.loads, payload, pure=False)
            futures = client.map(accumulate_shard, [model_future] * len(corpus),
                                 corpus.shards, range(len(corpus)),
                                 [s.n_frames for s in corpus.shard_info], _first_utterances(corpus),
                                 pure=False)
            total = tree_sum(futures, lambda a, b: client.submit(_add, a, b, pure=False))
            return total.result()
        except (KilledWorker, CommClosedError) as exc:
            raise _WorkerLost(f"a Dask worker was lost: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        pass  # the client belongs to the caller


class _WorkerLost(Exception):
    """Internal: the backend lost a worker; the iteration may be retried."""


def _backend(n_jobs: int, client: Any):
    if client is not None:
        return _Dask(client)
    n_jobs = V.check_positive_int(n_jobs, "n_jobs")
    return _Serial() if n_jobs == 1 else _Processes(n_jobs)


# ----------------------------------------------------------------------------
# Public entry points
# ----------------------------------------------------------------------------

def _log_prob(stats: Any) -> float:
    for name in ("log_prob", "log_likelihood", "loglik"):
        value = getattr(stats, name, None)
        if value is not None:
            return float(value)
    raise InvalidParameterError(f"{type(stats).__name__} carries no log-likelihood (log_prob)")


def _checked(tally: _Tally, corpus: Corpus) -> Any:
    """Return the statistics after checking they cover every shard exactly once."""
    expected = tuple(range(len(corpus)))
    if tuple(sorted(tally.shards)) != expected or tally.n_frames != corpus.n_frames:
        missing = sorted(set(expected) - set(tally.shards))
        dup = sorted({i for i in tally.shards if tally.shards.count(i) > 1})
        raise StatisticsMismatchError(
            f"statistics cover {tally.n_frames} frames of {corpus.n_frames}; missing shards {missing}, "
            f"shards counted twice {dup}")
    n_frames = getattr(tally.stats, "n_frames", None)  # may be fewer: models can skip utterances
    if n_frames is not None and int(n_frames) > corpus.n_frames:
        raise StatisticsMismatchError(
            f"statistics count {int(n_frames)} frames but the corpus has only {corpus.n_frames}")
    return tally.stats


class EStep:
    """A reusable E-step over a corpus; keeps its worker processes between calls.

    ``EStep(n_jobs, client, max_retries)(model, corpus)`` returns the summed
    statistics of every shard, checked to cover each shard exactly once.
    Use it as a context manager (or call :meth:`close`) to stop the workers.
    Utterances the model skipped (statistics with a ``skipped`` list) are
    named by id in a warning the first time this E-step sees them; workers'
    own log records stay in their processes.

    Parameters
    ----------
    n_jobs : int
        Local worker processes (ignored when ``client`` is given).
    client : dask.distributed.Client, optional
        Run on this cluster; its workers must see the shard paths.
    max_retries : int
        Times an E-step is repeated after a worker dies.
    """

    def __init__(self, n_jobs: int = 1, client: Any = None, max_retries: int = 2) -> None:
        self.max_retries = V.check_positive_int(max_retries, "max_retries", minimum=0)
        self._backend = _backend(n_jobs, client)
        self._reported: set[tuple[str, str]] = set()  # (corpus, utterance id) already warned about

    def __call__(self, model: Any, corpus: Corpus | str | os.PathLike) -> Any:
        corpus = corpus if isinstance(corpus, Corpus) else Corpus.open(corpus)
        for attempt in range(self.max_retries + 1):
            try:
                tally = self._backend.map_reduce(model, corpus)
            except _WorkerLost as exc:
                if attempt == self.max_retries:
                    raise WorkerFailedError(
                        f"E-step failed after {self.max_retries + 1} attempt(s): {exc}") from exc
                logger.warning("%s; retrying the iteration (%d/%d)", exc, attempt + 1, self.max_retries)
                continue
            self._report_skipped(tally.skipped_ids, corpus)
            return _checked(tally, corpus)
        raise AssertionError("unreachable")

    def _report_skipped(self, ids: tuple[str, ...], corpus: Corpus) -> None:
        """Warn once per utterance (every E-step of EM skips the same ones), then at DEBUG."""
        new = [i for i in ids if (corpus.index_path, i) not in self._reported]
        if new:
            logger.warning("%d utterance(s) of %s skipped by the model (too short for their transcript, or no "
                           "path through their graph): %s", len(new), corpus.index_path, " ".join(new))
        if len(new) < len(ids):
            logger.debug("%d utterance(s) skipped again", len(ids) - len(new))
        self._reported.update((corpus.index_path, i) for i in new)

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> "EStep":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def accumulate_corpus(model: Any, corpus: Corpus | str | os.PathLike, *, n_jobs: int = 1,
                      client: Any = None, max_retries: int = 2) -> Any:
    """One E-step over every shard of ``corpus``: the summed statistics.

    Parameters
    ----------
    model : fitted or initialised gmmhmm model (or embedded trainer)
    corpus : Corpus or path to its index
    n_jobs, client, max_retries :
        See :class:`EStep`.

    Returns
    -------
    The model's statistics object, as ``model.accumulate`` returns, over all shards.
    """
    with EStep(n_jobs, client, max_retries) as estep:
        return estep(model, corpus)


def _initialise(model: Any, corpus: Corpus, init_frames: int, init_iter: int) -> None:
    """Fit ``model`` briefly (``init_iter`` EM iterations) on the first utterances.

    Takes whole utterances in corpus order until ``init_frames`` frames are reached.
    """
    parts, frames = [], 0
    for X, lengths, ids, labels in corpus:
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        # whole utterances, in corpus order, until init_frames is reached
        keep = min(int(np.searchsorted(bounds, init_frames - frames, side="left")), len(lengths))
        parts.append((X[:bounds[keep]], lengths[:keep], None if labels is None else labels[:keep]))
        frames += int(bounds[keep])
        if frames >= init_frames:
            break
    X = np.concatenate([p[0] for p in parts])
    lengths = np.concatenate([p[1] for p in parts])
    labels = None if parts[0][2] is None else [v for p in parts for v in p[2]]
    style = checkpoint.accumulate_style(model)
    logger.info("initialising %s on %d frames (%d utterances)", type(model).__name__, len(X), len(lengths))
    if hasattr(model, "flat_start"):  # embedded trainer: HCompV-style flat start
        model.flat_start(_split(X, lengths))
        return
    knob = checkpoint.iteration_param(model)
    old = getattr(model, knob) if knob else None
    if knob:
        setattr(model, knob, init_iter)
    try:
        with warnings.catch_warnings():  # a deliberately short fit is not expected to converge
            warnings.filterwarnings("ignore", message=".*not converge.*")
            _model_call(model.fit, style, X, lengths, labels)
    finally:
        if knob:
            setattr(model, knob, old)


def _corpus_fingerprint(corpus: Corpus) -> str:
    """Identifies a corpus by its shards' names, sizes and bytes (one streamed read of each file)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((corpus.n_features, str(corpus.dtype))).encode())
    for s in corpus.shard_info:
        h.update(repr((os.path.basename(s.path), s.n_frames, s.n_utterances)).encode())
        with open(s.path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _checkpointed(model: Any) -> Any:
    """The object whose parameters a checkpoint stores: an embedded trainer's model set, else the model."""
    return model.model if hasattr(model, "flat_start") else model


def _resume_corpus_fit(model: Any, path: Any, fingerprint: str, settings: dict
                       ) -> tuple[list[float], bool, float] | None:
    """Restore ``model`` from the checkpoint at ``path``: ``(history, converged, weight)``, or None."""
    found = checkpoint.load_checkpoint(path)
    if found is None:
        return None
    saved, state = found
    if state.get("settings") != settings:
        raise InvalidParameterError(f"{path} was written with other initialisation settings "
                                    f"({state.get('settings')} vs {settings}); delete it or use another "
                                    "checkpoint directory")
    if hasattr(model, "flat_start"):
        if state.get("data") != fingerprint:
            raise InvalidParameterError(f"{path} was written while training on a different corpus; "
                                        "delete it or use another checkpoint directory")
        model.model = saved
    else:
        checkpoint.restore_into(model, saved, state, fingerprint, path)
    return ([float(v) for v in state.get("history", [])], bool(state.get("converged", False)),
            float(state.get("weight", 0.0)))


def fit_corpus(model: Any, corpus: Corpus | str | os.PathLike, *, n_iter: int = 10, tol: float = 1e-4,
               n_jobs: int = 1, client: Any = None, init: bool = True, init_frames: int = 100_000,
               init_iter: int = 1, max_retries: int = 2,
               checkpoint_dir: str | os.PathLike | None = None, resume: bool = False) -> Any:
    """Train ``model`` by EM over a sharded corpus, on any backend.

    The model is first initialised from the first whole utterances holding
    ``init_frames`` frames: with its own ``fit`` limited to ``init_iter``
    iterations, or, for an embedded trainer, its ``flat_start``. Skip this
    with ``init=False`` for a model that already has parameters (e.g. a
    trainer after ``trainer.model.split_mixtures(n)``). Then each iteration
    is ``model.update(sum of model.accumulate over shards)``.

    Parameters
    ----------
    model : GaussianMixture, GaussianHMM, GMMHMM or an embedded trainer
    corpus : Corpus or path to its index
    n_iter : int
        Maximum EM iterations over the whole corpus.
    tol : float
        Stop when the per-frame average log-likelihood improves by less than this.
    n_jobs, client, max_retries :
        See :class:`EStep`.
    init, init_frames, init_iter :
        Initialisation from a subsample (see above).
    checkpoint_dir : path, optional
        Write ``checkpoint.npz`` here (atomically) after the initialisation
        and after every iteration: the model (an embedded trainer's model
        set) with the iteration count and log-likelihood history.
    resume : bool
        Continue from the checkpoint in ``checkpoint_dir``, if any. It must
        come from the same corpus (shard names and contents), model parameters
        and initialisation settings; ``n_iter`` and ``tol`` may differ. As
        iterations draw no random numbers, a resumed fit ends where an
        uninterrupted one does.

    Returns
    -------
    model
        Fitted in place; ``model.corpus_log_likelihood_`` lists the total
        log-likelihood of each iteration (under the parameters before its
        update). ``n_iter_``, ``converged_`` and ``lower_bound_`` (per-frame
        log-likelihood of the last E-step) are set if the model has them.
    """
    corpus = corpus if isinstance(corpus, Corpus) else Corpus.open(corpus)
    n_iter = V.check_positive_int(n_iter, "n_iter")
    V.check_positive_int(init_frames, "init_frames")
    V.check_positive_int(init_iter, "init_iter", minimum=0)
    if not (isinstance(tol, (int, float)) and math.isfinite(tol) and tol >= 0):
        raise InvalidParameterError(f"tol must be a finite number >= 0, got {tol!r}")
    if resume and checkpoint_dir is None:
        raise InvalidParameterError("resume=True needs a checkpoint_dir")
    history: list[float] = []
    converged = False
    weight = corpus.n_frames  # what the per-frame figures divide by (the last E-step's weight)
    path = fingerprint = None
    settings = {"init": bool(init), "init_frames": int(init_frames), "init_iter": int(init_iter)}
    if checkpoint_dir is not None:
        path = checkpoint.checkpoint_path(checkpoint_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        fingerprint = _corpus_fingerprint(corpus)

    def save(iteration: int) -> None:
        if path is not None:
            checkpoint.save_checkpoint(path, _checkpointed(model), {
                "iteration": iteration, "history": history, "converged": converged,
                "weight": weight, "data": fingerprint, "settings": settings})

    restored = _resume_corpus_fit(model, path, fingerprint, settings) if resume else None
    with EStep(n_jobs, client, max_retries) as estep:
        if restored is not None:
            history, converged, weight = restored
            logger.info("resuming from %s after iteration %d", path, len(history))
        else:
            if init:
                _initialise(model, corpus, init_frames, init_iter)
            save(0)
        for it in range(len(history), n_iter):
            if converged:
                break
            start = time.perf_counter()
            stats = estep(model, corpus)
            log_prob = _log_prob(stats)
            if not math.isfinite(log_prob):
                raise ConvergenceError(f"iteration {it + 1}: total log-likelihood is {log_prob}")
            model.update(stats)
            history.append(log_prob)
            weight = float(getattr(stats, "n_frames", None) or getattr(stats, "total_weight", None)
                           or corpus.n_frames)
            gain = (log_prob - history[-2]) / weight if len(history) > 1 else math.inf
            logger.info("iteration %d: log-likelihood %.6g (%+.3g per frame) in %.2f s",
                        it + 1, log_prob, gain if len(history) > 1 else 0.0, time.perf_counter() - start)
            converged = abs(gain) < tol
            save(it + 1)
    model.corpus_log_likelihood_ = history
    # scikit-learn-style models report the corpus fit, not the initialisation
    for name, value in (("n_iter_", len(history)), ("converged_", converged),
                        ("lower_bound_", history[-1] / weight if history else -math.inf)):
        if hasattr(model, name):
            setattr(model, name, value)
    return model
