"""EM speed of gmmhmm.GaussianMixture against scikit-learn, same data and start.

N=100,000 frames, D=39, K=32; 'diag' and 'full'; exactly 10 EM iterations
from the same initial weights, means and precisions (tol=0). Prints seconds
per iteration for both, the speed-up, the largest parameter disagreement, and
a final JSON line.

    python benchmarks/gmm_em.py [--n 100000] [--repeats 2]

On a busy machine multi-threaded OpenBLAS is erratic (and scikit-learn's
``resp.T @ X`` orientation suffers most); ``OPENBLAS_NUM_THREADS=1`` gives
steadier figures for both libraries.
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

from sklearn.mixture import GaussianMixture as SkGaussianMixture  # noqa: E402

from gmmhmm.mixture import GaussianMixture  # noqa: E402

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
    threads = os.environ.get("OPENBLAS_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "default"))
    results = {"n": args.n, "d": args.d, "k": args.k, "iterations": N_ITER, "blas_threads": threads}
    print(f"N={args.n} D={args.d} K={args.k}, {N_ITER} EM iterations, best of {args.repeats}"
          f" (fit time / {N_ITER}, includes the final E-step both libraries do); BLAS threads: {threads}")
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
    print(json.dumps(results))


if __name__ == "__main__":
    main()
