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

Nothing is pinned in the environment. For the 1 -> N process comparison the
driver computes on one thread (``gmmhmm.set_num_threads(1)``, said in the
output) and each of the N workers gets ``cores // N`` threads (gmmhmm's
worker pools do that themselves), so the speed-up isolates the
process-level parallelism. The GEMM rate and the in-process E-step run with
the default thread counts (all cores for BLAS and for gmmhmm), as a user
gets them. Each of ``--repeat`` repeats times 1 then N processes, after a
warm-up (worker start and numba compilation excluded); the speed-up is the
median of those paired ratios (their range is printed too), and the best
times are printed beside it. The load average is printed because a shared
machine skews every figure. Targets:
speed-up >= 1.7 on 2 processes, GEMM fraction >= 0.40. Last line: JSON.

    python benchmarks/parallel_scaling.py [--fsdd DIR] [--limit N] [--n-jobs 2]
"""

from __future__ import annotations

import os

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_info  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gmmhmm.corpus import Corpus, audio_utterances  # noqa: E402
from gmmhmm.datasets import default_fsdd_dir, list_fsdd  # noqa: E402
from gmmhmm.parallel import EStep  # noqa: E402

import gmmhmm  # noqa: E402


def best_time(fn, repeat: int) -> tuple[float, float]:
    """Best wall and best CPU seconds of ``fn()`` over ``repeat`` runs after a warm-up."""
    fn()  # warm-up: imports, numba compilation
    wall, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return min(wall), min(cpu)


def _children_cpu() -> dict[int, float]:
    """CPU seconds (user + system) of each child process, if psutil is available."""
    try:
        import psutil
    except ImportError:
        return {}
    out = {}
    for child in psutil.Process().children(recursive=True):
        try:
            t = child.cpu_times()
            out[child.pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


def scaling(model, corpus: Corpus, n_jobs: int, repeat: int, client=None) -> dict[str, float]:
    """E-step speed-up from 1 to ``n_jobs`` processes, best wall times, and the CPU critical path.

    The two are timed alternately, so a machine shared with other jobs
    loads both alike; the speed-up is the median of the paired ratios.
    The CPU critical path (driver CPU + the busiest worker's CPU) is what the
    wall time would be on otherwise idle cores. With ``client``, the N-way
    run is on that Dask cluster instead of local processes.
    """
    with EStep(n_jobs=1) as one, EStep(n_jobs=n_jobs, client=client) as many:
        one(model, corpus), many(model, corpus)  # warm-up: worker start, numba compilation
        wall: list[list[float]] = [[], []]
        cpu: list[list[float]] = [[], []]
        for _ in range(repeat):
            for k, estep in enumerate((one, many)):
                before, c0, t0 = _children_cpu(), time.process_time(), time.perf_counter()
                estep(model, corpus)
                wall[k].append(time.perf_counter() - t0)
                after = _children_cpu()
                busiest = max((after[p] - before.get(p, 0.0) for p in after), default=0.0) if k else 0.0
                cpu[k].append(time.process_time() - c0 + busiest)
    # Each repeat times 1 and N processes back to back, so its ratio sees one load; the median of
    # those paired ratios is steadier than a ratio of two minima taken at different moments.
    paired = [w1 / wn for w1, wn in zip(wall[0], wall[1])]
    return {"wall_1": min(wall[0]), "wall_n": min(wall[1]), "cpu_1": min(cpu[0]), "cpu_n": min(cpu[1]),
            "median_speedup": float(np.median(paired)), "min_speedup": min(paired), "max_speedup": max(paired)}


def gemm_gflops(n: int = 2000, repeat: int = 3) -> tuple[float, float]:
    """float64 GEMM rate (GFLOP/s) by wall time and by CPU time."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    wall, cpu = best_time(lambda: a @ b, repeat)
    return 2.0 * n**3 / wall / 1e9, 2.0 * n**3 / cpu / 1e9


def fsdd_corpus(fsdd: Path, limit: int | None, n_jobs: int, out: Path, n_shards: int) -> Corpus:
    from gmmhmm.features import FeatureConfig
    from gmmhmm.graphs import DIGIT_WORDS

    utts = list_fsdd(fsdd)
    if limit:
        # every limit-th file, so every speaker and digit stays represented
        utts = utts[:: max(1, len(utts) // limit)][:limit]
    cfg = FeatureConfig.fsdd()
    # Held in memory (~50 MB for all of FSDD): the total sizes the shards so that each worker gets several.
    rows = list(audio_utterances([u.path for u in utts], cfg, n_jobs=n_jobs,
                                 labels=[[DIGIT_WORDS[int(u.digit)]] for u in utts]))
    frames = sum(len(x) for _, x, _ in rows)
    return Corpus.create(out, rows, frames_per_shard=max(1, frames // n_shards), feature_config=cfg)


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
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fsdd", default=str(default_fsdd_dir()))
    ap.add_argument("--limit", type=int, default=0, help="FSDD files to use (0: all 3000)")
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--n-mix", type=int, default=4, help="Gaussians per phone state")
    ap.add_argument("--gmm-frames", type=int, default=400_000)
    ap.add_argument("--gmm-components", type=int, default=128)
    ap.add_argument("--gmm-dim", type=int, default=39)
    ap.add_argument("--repeat", type=int, default=15, help="paired 1 / N process timings")
    ap.add_argument("--dask", action="store_true",
                    help="also time the embedded E-step on a local Dask cluster of --n-jobs workers")
    args = ap.parse_args()
    n_shards = 4 * args.n_jobs  # several shards per worker keep the load balanced

    from gmmhmm.mixture.gmm import GaussianMixture

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        fsdd = fsdd_corpus(Path(args.fsdd), args.limit or None, args.n_jobs, Path(tmp, "fsdd"), n_shards)
        print(f"FSDD corpus: {fsdd.n_utterances} utterances, {fsdd.n_frames} frames, {len(fsdd)} shards "
              f"({time.perf_counter() - t:.1f} s to featurise)")
        model, which = embedded_model(fsdd, args.n_mix)
        default_threads = gmmhmm.set_num_threads(1)  # the 1-process baseline: one thread, as each worker
        emb = scaling(model, fsdd, args.n_jobs, args.repeat)
        dask = None
        if args.dask:
            from distributed import Client, LocalCluster

            with LocalCluster(n_workers=args.n_jobs, threads_per_worker=1, processes=True,
                              dashboard_address=None) as cluster, Client(cluster) as client:
                dask = scaling(model, fsdd, args.n_jobs, args.repeat, client=client)

        rng = np.random.default_rng(0)
        N, D, K = args.gmm_frames, args.gmm_dim, args.gmm_components
        centres = rng.standard_normal((K, D)) * 3
        per = N // n_shards
        rows = ((f"s{i}", centres[rng.integers(K, size=per)] + rng.standard_normal((per, D)))
                for i in range(n_shards))
        synth = Corpus.create(Path(tmp, "gmm"), rows, frames_per_shard=per)
        X0, *_ = synth.load_shard(0)
        with warnings.catch_warnings():  # a one-iteration start is not meant to converge
            warnings.simplefilter("ignore")
            gm = GaussianMixture(K, covariance_type="diag", max_iter=1, random_state=0).fit(X0[:20_000])
        gmm = scaling(gm, synth, args.n_jobs, args.repeat)
        gmmhmm.set_num_threads(default_threads)

        X = np.concatenate([x for x, *_ in synth])
        t_wall, t_cpu = best_time(lambda: gm.accumulate(X), args.repeat)
    peak_wall, peak_cpu = gemm_gflops()
    blas = max((lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"), default=1)
    flops = 8.0 * X.shape[0] * D * K
    fraction, fraction_cpu = flops / t_wall / 1e9 / peak_wall, flops / t_cpu / 1e9 / peak_cpu
    load = os.getloadavg()[0]

    print(f"embedded E-step model: {which}; load average {load:.1f} on {os.cpu_count()} CPUs")
    print(f"(1 process computing on 1 thread vs {args.n_jobs} worker processes on "
          f"{max(1, gmmhmm.get_num_threads() // args.n_jobs)} thread(s) each)")
    print(f"{'E-step':<30}{'1 proc s':>10}{f'{args.n_jobs} procs s':>12}{'speed-up':>10}{'range':>13}"
          f"{'CPU-path speed-up':>19}")
    rows = [("embedded training (FSDD)", emb), (f"diag GMM N={N} D={D} K={K}", gmm)]
    if dask:
        rows.append(("embedded, Dask workers", dask))
    for name, r in rows:
        print(f"{name:<30}{r['wall_1']:10.3f}{r['wall_n']:12.3f}{r['median_speedup']:10.2f}"
              f"{r['min_speedup']:7.2f}-{r['max_speedup']:<5.2f}{r['cpu_1'] / r['cpu_n']:19.2f}")
    print(f"(speed-up: median over {args.repeat} paired repeats; 1 proc s / {args.n_jobs} procs s: best times)")
    print("(CPU-path speed-up: 1-process CPU time / (driver CPU + busiest worker CPU), i.e. the wall-clock "
          "speed-up on idle cores)")
    print(f"GEMM float64 ({blas} BLAS threads): {peak_wall:.2f} GFLOP/s; in-process diag GMM E-step "
          f"({gmmhmm.get_num_threads()} gmmhmm threads): "
          f"{flops / t_wall / 1e9:.2f} GFLOP/s = {fraction:.0%} of GEMM by wall time, {fraction_cpu:.0%} by "
          f"CPU time (target >= 40%)")
    print(json.dumps({
        "benchmark": "parallel_scaling",
        "n_jobs": args.n_jobs,
        "threads_per_process_in_scaling": 1,
        "blas_threads": blas,
        "gmmhmm_threads": gmmhmm.get_num_threads(),
        "embedded_model": which,
        "fsdd_utterances": fsdd.n_utterances,
        "fsdd_frames": fsdd.n_frames,
        "embedded_1proc_seconds": round(emb["wall_1"], 4),
        "embedded_nproc_seconds": round(emb["wall_n"], 4),
        "embedded_speedup": round(emb["median_speedup"], 3),
        "embedded_speedup_range": [round(emb["min_speedup"], 3), round(emb["max_speedup"], 3)],
        "embedded_cpu_path_speedup": round(emb["cpu_1"] / emb["cpu_n"], 3),
        "dask_embedded_speedup": round(dask["median_speedup"], 3) if dask else None,
        "gmm_frames": N, "gmm_dim": D, "gmm_components": K,
        "gmm_1proc_seconds": round(gmm["wall_1"], 4),
        "gmm_nproc_seconds": round(gmm["wall_n"], 4),
        "gmm_speedup": round(gmm["median_speedup"], 3),
        "gmm_speedup_range": [round(gmm["min_speedup"], 3), round(gmm["max_speedup"], 3)],
        "gmm_cpu_path_speedup": round(gmm["cpu_1"] / gmm["cpu_n"], 3),
        "gemm_gflops": round(peak_wall, 3),
        "gmm_estep_gflops": round(flops / t_wall / 1e9, 3),
        "gemm_fraction": round(fraction, 3),
        "gemm_fraction_cpu_time": round(fraction_cpu, 3),
        "load_average_1min": round(load, 2),
        "speedup_target": 1.7,
        "gemm_fraction_target": 0.4,
    }))


if __name__ == "__main__":
    main()
