"""Peak memory of training over a sharded corpus larger than a memory budget.

Writes a synthetic float64 corpus of ``--corpus-mb`` megabytes (default 2.5 x
the budget) shard by shard, then trains a diagonal GaussianMixture on it
with :func:`gmmhmm.parallel.fit_corpus` (serial: the driver reads one shard
at a time). Reports the peak of Python/numpy allocations (tracemalloc) and
the growth of the process's max RSS (resource.getrusage) over the baseline
after imports, against the budget and against the corpus size an in-memory
fit would need at least. Last line: JSON.

    python benchmarks/corpus_memory.py [--budget-mb 100] [--corpus-mb 250]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gmmhmm.corpus import Corpus  # noqa: E402
from gmmhmm.mixture.gmm import GaussianMixture  # noqa: E402
from gmmhmm.parallel import fit_corpus  # noqa: E402

MB = 1024 * 1024


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def utterances(total_frames: int, dim: int, n_components: int, seed: int = 0):
    """Synthetic utterances of 100-400 frames from a random GMM, generated lazily."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_components, dim)) * 3
    made, i = 0, 0
    while made < total_frames:
        n = min(int(rng.integers(100, 400)), total_frames - made)
        yield f"utt{i:07d}", centres[rng.integers(n_components, size=n)] + rng.standard_normal((n, dim))
        made, i = made + n, i + 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget-mb", type=float, default=100.0)
    ap.add_argument("--corpus-mb", type=float, default=None, help="default: 2.5 x budget")
    ap.add_argument("--dim", type=int, default=39)
    ap.add_argument("--components", type=int, default=16)
    ap.add_argument("--n-iter", type=int, default=2)
    args = ap.parse_args()
    corpus_mb = args.corpus_mb or 2.5 * args.budget_mb
    D = args.dim
    total_frames = int(corpus_mb * MB / (8 * D))
    # 1/10 of the budget per shard leaves room for the E-step's work arrays
    frames_per_shard = int(args.budget_mb * MB / 10 / (8 * D))

    # warm-up on tiny data: imports and numba compilation are not the corpus's cost
    warm = np.random.default_rng(1).standard_normal((500, D))
    GaussianMixture(4, covariance_type="diag", max_iter=2, random_state=0).fit(warm)
    base_rss = max_rss_mb()
    tracemalloc.start()

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        corpus = Corpus.create(tmp, utterances(total_frames, D, args.components),
                               frames_per_shard=frames_per_shard)
        t_write = time.perf_counter() - t
        _, peak_write = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        t = time.perf_counter()
        gm = GaussianMixture(args.components, covariance_type="diag", random_state=0)
        fit_corpus(gm, corpus, n_iter=args.n_iter, tol=0, init_frames=50_000)
        t_fit = time.perf_counter() - t
        _, peak_fit = tracemalloc.get_traced_memory()
        n_shards, n_frames = len(corpus), corpus.n_frames
    tracemalloc.stop()
    rss_growth = max_rss_mb() - base_rss
    data_mb = n_frames * D * 8 / MB
    peak_mb = max(peak_write, peak_fit) / MB
    ok = peak_mb < args.budget_mb and rss_growth < args.budget_mb

    print(f"corpus: {n_frames} frames x {D} float64 = {data_mb:.0f} MB in {n_shards} shards "
          f"(written in {t_write:.1f} s); budget {args.budget_mb:.0f} MB")
    print(f"fit_corpus: GaussianMixture(K={args.components}, diag), {args.n_iter} EM iterations in {t_fit:.1f} s")
    print(f"{'measure':<36}{'MB':>8}{'/ budget':>10}{'/ corpus':>10}")
    for name, v in [("tracemalloc peak, writing", peak_write / MB), ("tracemalloc peak, training", peak_fit / MB),
                    ("max RSS growth over baseline", rss_growth)]:
        print(f"{name:<36}{v:8.1f}{v / args.budget_mb:10.2f}{v / data_mb:10.2f}")
    print(f"baseline RSS after imports {base_rss:.0f} MB; peak memory {'within' if ok else 'OVER'} budget")
    print(json.dumps({
        "benchmark": "corpus_memory",
        "budget_mb": args.budget_mb,
        "corpus_mb": round(data_mb, 1),
        "n_frames": n_frames,
        "n_shards": n_shards,
        "tracemalloc_peak_write_mb": round(peak_write / MB, 1),
        "tracemalloc_peak_fit_mb": round(peak_fit / MB, 1),
        "max_rss_growth_mb": round(rss_growth, 1),
        "baseline_rss_mb": round(base_rss, 1),
        "fit_seconds": round(t_fit, 2),
        "within_budget": ok,
    }))


if __name__ == "__main__":
    main()
