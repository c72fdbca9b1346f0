"""Scaling of the sharded E-step from 1 to N processes, and the GEMM efficiency of the GMM E-step.

Measures, in one run:

* an embedded-training E-step (phone models from ``gmmhmm.graphs`` trained on
  FSDD word transcripts; falls back to one GMMHMM over the FSDD frames if the
  graphs layer is unavailable, and says so) over a sharded FSDD corpus,
  with ``gmmhmm.parallel.EStep`` on 1 process and on ``--n-jobs`` processes;
* a diagonal-covariance GaussianMixture E-step over a synthetic corpus, same way;
* the machine's float64 GEMM rate (large square matmul) and the fraction of
  it the in-process diag GMM E-step achieves, counting only the GEMM FLOPs it
  must do (8 N D K: log-densities and statistics, 4 N D K each).

Every process uses one BLAS thread (set below, before numpy loads), so the
speed-up isolates the process-level parallelism and the GEMM rate matches
the thread count of the E-step. Timings are the best of ``--repeat`` runs,
1 and N processes alternating, after a warm-up (worker start and numba
compilation excluded); the load average is printed because a shared
machine skews every figure. Targets:
speed-up >= 1.7 on 2 processes, GEMM fraction >= 0.40. Last line: JSON.

    python benchmarks/parallel_scaling.py [--fsdd DIR] [--limit N] [--n-jobs 2]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gmmhmm.corpus import Corpus  # noqa: E402
from gmmhmm.parallel import EStep  # noqa: E402


def best_time(fn, repeat: int) -> float:
    fn()  # warm-up: worker start, imports, numba compilation
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def scaling(model, corpus: Corpus, n_jobs: int, repeat: int) -> tuple[float, float]:
    """Best E-step time on 1 process and on ``n_jobs`` processes.

    The two are timed alternately, so a machine shared with other jobs
    loads both alike; the minimum over repeats is the least disturbed run.
    """
    with EStep(n_jobs=1) as one, EStep(n_jobs=n_jobs) as many:
        one(model, corpus), many(model, corpus)  # warm-up: worker start, numba compilation
        times: list[list[float]] = [[], []]
        for _ in range(repeat):
            for k, estep in enumerate((one, many)):
                t = time.perf_counter()
                estep(model, corpus)
                times[k].append(time.perf_counter() - t)
    return min(times[0]), min(times[1])


def gemm_gflops(n: int = 2000, repeat: int = 3) -> float:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    return 2.0 * n**3 / best_time(lambda: a @ b, repeat) / 1e9


def fsdd_corpus(fsdd: Path, limit: int | None, n_jobs: int, out: Path, n_shards: int) -> Corpus:
    from gmmhmm.datasets import list_fsdd
    from gmmhmm.features import FeatureConfig, extract_many
    from gmmhmm.graphs import DIGIT_WORDS

    utts = list_fsdd(fsdd)
    if limit:
        # every limit-th file, so every speaker and digit stays represented
        utts = utts[:: max(1, len(utts) // limit)][:limit]
    cfg = FeatureConfig.fsdd()
    feats, failures = extract_many([u.path for u in utts], cfg, n_jobs=n_jobs)
    rows = [(str(u.path.stem), feats[str(u.path)], [DIGIT_WORDS[int(u.digit)]])
            for u in utts if str(u.path) in feats]
    total = sum(len(r[1]) for r in rows)
    return Corpus.create(out, rows, frames_per_shard=max(1, total // n_shards), feature_config=cfg)


def embedded_model(corpus: Corpus, n_mix: int):
    """The phone-model trainer, flat-started and split to ``n_mix``; or GMMHMM if graphs is missing."""
    X, lengths, _, labels = corpus.load_shard(0)
    try:
        from gmmhmm.graphs import EmbeddedTrainer, Lexicon

        trainer = EmbeddedTrainer(Lexicon.digits())
        trainer.flat_start(np.split(X, np.cumsum(lengths)[:-1]))
        if n_mix > 1:
            trainer.model.split_mixtures(n_mix)
        return trainer, f"graphs.EmbeddedTrainer (phone HMMs, {n_mix} Gaussians/state)"
    except ImportError as exc:
        from gmmhmm.hmm import GMMHMM

        print(f"gmmhmm.graphs unavailable ({exc}); using GMMHMM on FSDD frames")
        model = GMMHMM(n_components=5, n_mix=n_mix, covariance_type="diag", n_iter=1, random_state=0)
        return model.fit(X, lengths), f"hmm.GMMHMM (5 states, {n_mix} mix) on FSDD frames"


def main() -> None:
    default = os.environ.get("GMMHMM_FSDD_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fsdd", default=default)
    ap.add_argument("--limit", type=int, default=1500, help="FSDD files to use (0: all 3000)")
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--n-mix", type=int, default=4, help="Gaussians per phone state")
    ap.add_argument("--gmm-frames", type=int, default=400_000)
    ap.add_argument("--gmm-components", type=int, default=128)
    ap.add_argument("--gmm-dim", type=int, default=39)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n_shards = 4 * args.n_jobs  # several shards per worker keep the load balanced

    from gmmhmm.mixture.gmm import GaussianMixture

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        fsdd = fsdd_corpus(Path(args.fsdd), args.limit or None, args.n_jobs, Path(tmp, "fsdd"), n_shards)
        print(f"FSDD corpus: {fsdd.n_utterances} utterances, {fsdd.n_frames} frames, {len(fsdd)} shards "
              f"({time.perf_counter() - t:.1f} s to featurise)")
        model, which = embedded_model(fsdd, args.n_mix)
        emb1, embn = scaling(model, fsdd, args.n_jobs, args.repeat)

        rng = np.random.default_rng(0)
        N, D, K = args.gmm_frames, args.gmm_dim, args.gmm_components
        centres = rng.standard_normal((K, D)) * 3
        per = N // n_shards
        rows = ((f"s{i}", centres[rng.integers(K, size=per)] + rng.standard_normal((per, D)))
                for i in range(n_shards))
        synth = Corpus.create(Path(tmp, "gmm"), rows, frames_per_shard=per)
        X0, *_ = synth.load_shard(0)
        gm = GaussianMixture(K, covariance_type="diag", max_iter=1, random_state=0).fit(X0[:20_000])
        gmm1, gmmn = scaling(gm, synth, args.n_jobs, args.repeat)

        X = np.concatenate([x for x, *_ in synth])
        t_estep = best_time(lambda: gm.accumulate(X), args.repeat)
    peak = gemm_gflops()
    estep_gflops = 8.0 * X.shape[0] * D * K / t_estep / 1e9
    fraction = estep_gflops / peak

    print(f"embedded E-step model: {which}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'E-step':<28}{'1 proc s':>10}{f'{args.n_jobs} procs s':>12}{'speed-up':>10}")
    print(f"{'embedded training (FSDD)':<28}{emb1:10.3f}{embn:12.3f}{emb1 / embn:10.2f}")
    print(f"{f'diag GMM N={N} D={D} K={K}':<28}{gmm1:10.3f}{gmmn:12.3f}{gmm1 / gmmn:10.2f}")
    print(f"GEMM float64 (1 thread): {peak:.2f} GFLOP/s; in-process diag GMM E-step: {estep_gflops:.2f} "
          f"GFLOP/s = {fraction:.0%} of GEMM (target >= 40%)")
    print(json.dumps({
        "benchmark": "parallel_scaling",
        "n_jobs": args.n_jobs,
        "blas_threads_per_process": 1,
        "embedded_model": which,
        "fsdd_utterances": fsdd.n_utterances,
        "fsdd_frames": fsdd.n_frames,
        "embedded_1proc_seconds": round(emb1, 4),
        "embedded_nproc_seconds": round(embn, 4),
        "embedded_speedup": round(emb1 / embn, 3),
        "gmm_frames": N, "gmm_dim": D, "gmm_components": K,
        "gmm_1proc_seconds": round(gmm1, 4),
        "gmm_nproc_seconds": round(gmmn, 4),
        "gmm_speedup": round(gmm1 / gmmn, 3),
        "gemm_gflops": round(peak, 3),
        "gmm_estep_gflops": round(estep_gflops, 3),
        "gemm_fraction": round(fraction, 3),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "speedup_target": 1.7,
        "gemm_fraction_target": 0.4,
    }))


if __name__ == "__main__":
    main()
