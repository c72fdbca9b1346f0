"""EM speed of gmmhmm.GaussianMixture against scikit-learn, same data and start.

N=100,000 frames, D=39, K=32; 'diag' and 'full'; exactly 10 EM iterations
from the same initial weights, means and precisions (tol=0). Prints seconds
per iteration for both, the speed-up, the largest parameter disagreement, and
a final JSON line. Also, in the same run: the diag fit in float32 (speed-up
over float64 and agreement of the predictions), the machine's float64 GEMM
rate and the fraction of it the diag EM iteration reaches (counting the
8 N D K GEMM FLOPs it must do), and k-means (gmmhmm's initialisation,
``n_init`` restarts of k-means++ and Lloyd) against scikit-learn's ``KMeans``
with the same restarts on the same data.

    python benchmarks/gmm_em.py [--n 100000] [--repeats 2]

Runs in the environment it is started in: nothing is pinned (``run_all.py``
adds a BLAS-pinned column by running it again with ``OPENBLAS_NUM_THREADS=1``).

Targets (issue 13): diag >= 4x scikit-learn and >= 25% of the GEMM rate;
float32 >= 1.7x float64 with the same predictions; k-means no slower than
scikit-learn's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from sklearn.cluster import KMeans  # noqa: E402
from sklearn.mixture import GaussianMixture as SkGaussianMixture  # noqa: E402
from threadpoolctl import threadpool_info  # noqa: E402

import gmmhmm  # noqa: E402
from gmmhmm.mixture import GaussianMixture  # noqa: E402
from gmmhmm.mixture._kmeans import kmeans  # noqa: E402

N_ITER = 10


def make_data(n: int, d: int, k: int, seed: int = 0) -> np.ndarray:
    """MFCC-like synthetic frames: K correlated Gaussian clusters."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(k, d))
    mixing = rng.normal(scale=0.4, size=(k, d, d)) + np.eye(d)
    labels = rng.integers(k, size=n)
    z = rng.normal(size=(n, d))
    return centers[labels] + np.einsum("nd,nde->ne", z, mixing[labels])


def initial_parameters(X: np.ndarray, k: int, covariance_type: str, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    means = X[rng.choice(len(X), k, replace=False)]
    if covariance_type == "diag":
        precisions = np.tile(1.0 / X.var(axis=0), (k, 1))
    else:
        precisions = np.tile(np.linalg.inv(np.cov(X.T)), (k, 1, 1))
    return dict(weights_init=np.full(k, 1.0 / k), means_init=means, precisions_init=precisions)


def time_fit(cls, X, k, covariance_type, init, repeats):
    best, model = np.inf, None
    for _ in range(repeats):
        m = cls(k, covariance_type=covariance_type, max_iter=N_ITER, tol=0.0, **init)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            m.fit(X)
            best = min(best, time.perf_counter() - t0)
        model = m
    return best / N_ITER, model


def gemm_gflops(n: int = 2000, repeats: int = 3) -> float:
    """float64 GEMM rate of this process's BLAS (its default threads), GFLOP/s."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    a @ b
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e9


def time_kmeans(X: np.ndarray, k: int, n_init: int, repeats: int) -> tuple[float, float, float, float]:
    """Best seconds of gmmhmm's and scikit-learn's k-means (n_init restarts each, interleaved)
    and their inertias (the best restart's; computed outside the timed region)."""
    def ours():
        return [kmeans(X, k, np.random.RandomState(seed)) for seed in range(n_init)]

    def theirs():
        return KMeans(k, n_init=n_init, random_state=0).fit(X)

    best = {ours: np.inf, theirs: np.inf}
    result = {}
    for _ in range(repeats):
        for fn in (ours, theirs):
            t0 = time.perf_counter()
            result[fn] = fn()
            best[fn] = min(best[fn], time.perf_counter() - t0)
    in_ours = min(float(((X - c[lab]) ** 2).sum()) for lab, c in result[ours])
    return best[ours], best[theirs], in_ours, float(result[theirs].inertia_)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--d", type=int, default=39)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    X = make_data(args.n, args.d, args.k)
    # compile the numba kernels outside the timed region
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        GaussianMixture(2, covariance_type="full", max_iter=1).fit(X[:500])
        GaussianMixture(2, covariance_type="diag", max_iter=1).fit(X[:500].astype(np.float32))
    threads = max((lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"), default=1)
    results = {"n": args.n, "d": args.d, "k": args.k, "iterations": N_ITER, "blas_threads": threads,
               "gmmhmm_threads": gmmhmm.get_num_threads(), "load_average_1min": round(os.getloadavg()[0], 2)}
    print(f"N={args.n} D={args.d} K={args.k}, {N_ITER} EM iterations, best of {args.repeats}"
          f" (fit time / {N_ITER}, includes the final E-step both libraries do); BLAS threads: {threads}, "
          f"gmmhmm threads: {results['gmmhmm_threads']}; load average {results['load_average_1min']}")
    for ct in ("diag", "full"):
        init = initial_parameters(X, args.k, ct)
        sk_s, sk = time_fit(SkGaussianMixture, X, args.k, ct, init, args.repeats)
        our_s, ours = time_fit(GaussianMixture, X, args.k, ct, init, args.repeats)
        # largest difference relative to the attribute's scale
        rel = max(
            float(np.max(np.abs(getattr(ours, a) - getattr(sk, a))) / np.max(np.abs(getattr(sk, a))))
            for a in ("weights_", "means_", "covariances_")
        )
        lb_rel = abs(ours.lower_bound_ - sk.lower_bound_) / abs(sk.lower_bound_)
        speedup = sk_s / our_s
        print(f"{ct:5s}: sklearn {sk_s:.4f} s/iter  gmmhmm {our_s:.4f} s/iter  speed-up x{speedup:.2f}"
              f"  max rel param diff {rel:.1e}  lower bound rel diff {lb_rel:.1e}")
        results[ct] = {
            "sklearn_s_per_iter": round(sk_s, 5),
            "gmmhmm_s_per_iter": round(our_s, 5),
            "speedup": round(speedup, 3),
            "max_rel_param_diff": rel,
            "lower_bound_rel_diff": lb_rel,
        }
        if ct == "diag":
            X32 = X.astype(np.float32)
            init32 = {key: np.asarray(v, dtype=np.float32) for key, v in init.items()}
            s32, m32 = time_fit(GaussianMixture, X32, args.k, ct, init32, args.repeats)
            agree = float(np.mean(m32.predict(X32) == ours.predict(X)))
            gemm = gemm_gflops()
            fraction = 8.0 * args.n * args.d * args.k / our_s / 1e9 / gemm
            print(f"       float32 {s32:.4f} s/iter: x{our_s / s32:.2f} float64, predictions agree on "
                  f"{100 * agree:.3f}% of rows (target x1.7, same predictions)")
            print(f"       GEMM rate {gemm:.1f} GFLOP/s ({threads} BLAS threads); the diag EM iteration does "
                  f"{8.0 * args.n * args.d * args.k / our_s / 1e9:.1f} GFLOP/s = {100 * fraction:.0f}% of it "
                  f"(target 25%, goal 40%)")
            results[ct].update(float32_s_per_iter=round(s32, 5), float32_speedup=round(our_s / s32, 3),
                               float32_prediction_agreement=agree)
            results["gemm_gflops"] = round(gemm, 2)
            results["diag_gemm_fraction"] = round(fraction, 3)
    t_ours, t_sk, in_ours, in_sk = time_kmeans(X, args.k, 3, args.repeats)
    print(f"k-means K={args.k}, 3 k-means++ restarts: gmmhmm {t_ours:.3f} s, sklearn KMeans {t_sk:.3f} s "
          f"(x{t_sk / t_ours:.2f}); inertia gmmhmm {in_ours:.6g}, sklearn {in_sk:.6g}")
    results["kmeans"] = {"gmmhmm_seconds": round(t_ours, 4), "sklearn_seconds": round(t_sk, 4),
                         "speedup": round(t_sk / t_ours, 3), "inertia_rel_diff": (in_ours - in_sk) / in_sk}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
