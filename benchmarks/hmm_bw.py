"""Baum-Welch and Viterbi throughput of gmmhmm.hmm against hmmlearn, in the same run.

Three workloads, each started from identical parameters in both libraries
(``init_params=''``) so the log-likelihoods must agree:

(i)   GaussianHMM, 16 states, diag, 200 sequences x 500 frames x 13 dims,
      10 Baum-Welch iterations;
(ii)  GMMHMM, 5 states x 4 mixtures, diag, 39-dim MFCC+deltas of the FSDD
      training set (takes 5-49), 5 iterations (hmmlearn's covariance
      centring, ``covars_centering='previous'``, so the numbers match);
(iii) decode() (Viterbi) of a 50-state GaussianHMM on one 100,000-frame sequence.

gmmhmm uses its fast 'scaling' path; hmmlearn is timed with both of its
implementations and compared against its faster one. Prints a table and,
last, one JSON line (times in seconds; ``peer/ours`` > 1 means gmmhmm is faster).

Runs in the environment it is started in (nothing is pinned here): a user's
default is multi-threaded BLAS, and gmmhmm's own thread policy
(:mod:`gmmhmm._threads`) must be fast there. ``run_all.py`` also runs it with
``OPENBLAS_NUM_THREADS=1`` for a second, BLAS-pinned column. The BLAS thread
count in effect is printed and stored.

Targets (issue 13): scaling vs hmmlearn's scaling >= 3x on (i), log vs log
>= 10x on (i), decode >= 10x on (iii).

    python benchmarks/hmm_bw.py [--repeats 1] [--fsdd-dir PATH] [--only i,ii,iii]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_info  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hmmlearn import hmm as hmmlearn_hmm  # noqa: E402

from gmmhmm.hmm import GMMHMM, GaussianHMM  # noqa: E402

TARGETS = {"gaussian_hmm.speedup_scaling_vs_scaling": 3.0, "gaussian_hmm.speedup_log_vs_log": 10.0,
           "decode.speedup": 10.0}


def blas_threads() -> int:
    """Threads of the BLAS numpy uses, as loaded (what the environment gave it)."""
    return max((lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"), default=1)


def set_params(model, params):
    for name, value in params.items():
        setattr(model, name, np.array(value, copy=True))
    return model


def best_time(fn, repeats):
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def compare_fit(name, ours_cls, ref_cls, kwargs, ours_extra, params, X, lengths, n_iter, repeats):
    """Time n_iter Baum-Welch iterations in both libraries; returns the result dict."""
    kw = dict(kwargs, n_iter=n_iter, tol=-np.inf, init_params="")
    frames = len(X) * n_iter

    def ours(impl):
        return set_params(ours_cls(implementation=impl, **kw, **ours_extra), params).fit(X, lengths)

    def ref(impl):
        return set_params(ref_cls(implementation=impl, **kw), params).fit(X, lengths)

    # compile / warm up outside the timed region: one iteration on all the data with each
    # implementation, so every kernel the timed fits reach (the multi-sequence parallel ones need
    # enough work to be chosen) is compiled or loaded from numba's cache first
    for impl in ("scaling", "log"):
        set_params(ours_cls(implementation=impl, **dict(kw, n_iter=1), **ours_extra), params).fit(X, lengths)
    result = {"frames": int(len(X)), "iterations": n_iter}
    t_ours, m_ours = best_time(lambda: ours("scaling"), repeats)
    result["gmmhmm_seconds"] = round(t_ours, 4)
    result["gmmhmm_scaling_impl_seconds"] = round(t_ours, 4)
    result["gmmhmm_log_impl_seconds"] = round(best_time(lambda: ours("log"), repeats)[0], 4)
    peers = {}
    for impl in ("scaling", "log"):
        t, m = best_time(lambda: ref(impl), repeats)
        peers[impl] = (t, m)
        result[f"hmmlearn_{impl}_impl_seconds"] = round(t, 4)
    impl = min(peers, key=lambda k: peers[k][0])
    t_ref, m_ref = peers[impl]
    result["hmmlearn_seconds"] = round(t_ref, 4)
    result["hmmlearn_fastest_impl"] = impl
    ll_ours, ll_ref = float(m_ours.monitor_.history[-1]), float(m_ref.monitor_.history[-1])
    result.update(
        frames_per_s_ours=round(frames / t_ours), frames_per_s_hmmlearn=round(frames / t_ref),
        speedup=round(t_ref / t_ours, 2), loglik_ours=ll_ours, loglik_hmmlearn=ll_ref,
        loglik_rel_diff=abs(ll_ours - ll_ref) / abs(ll_ref),
        # like for like: both 'log' (hmmlearn's default), both 'scaling'
        speedup_log_vs_log=round(result["hmmlearn_log_impl_seconds"]
                                 / result["gmmhmm_log_impl_seconds"], 2),
        speedup_scaling_vs_scaling=round(result["hmmlearn_scaling_impl_seconds"] / t_ours, 2),
    )
    print(f"{name}: {len(X)} frames x {n_iter} iterations | gmmhmm {t_ours:.3f} s "
          f"({frames / t_ours:,.0f} frames/s; log impl {result['gmmhmm_log_impl_seconds']:.3f} s) | "
          f"hmmlearn[{impl}] {t_ref:.3f} s ({frames / t_ref:,.0f} frames/s; "
          f"scaling {result['hmmlearn_scaling_impl_seconds']:.3f} s, log "
          f"{result['hmmlearn_log_impl_seconds']:.3f} s) | speed-up x{t_ref / t_ours:.2f}")
    print(f"    like for like: log vs log x{result['speedup_log_vs_log']:.2f}, scaling vs scaling "
          f"x{result['speedup_scaling_vs_scaling']:.2f}")
    print(f"    final log-likelihood gmmhmm {ll_ours:.8f}  hmmlearn {ll_ref:.8f}  "
          f"rel diff {result['loglik_rel_diff']:.1e}")
    return result


def gaussian_workload(repeats):
    rng = np.random.default_rng(0)
    S, D, n_seq, T = 16, 13, 200, 500
    true_means = rng.normal(scale=2.0, size=(S, D))
    states = rng.integers(S, size=n_seq * T)
    X = true_means[states] + rng.normal(size=(n_seq * T, D))
    params = dict(startprob_=rng.dirichlet(np.ones(S)), transmat_=rng.dirichlet(np.ones(S), size=S),
                  means_=true_means + rng.normal(scale=0.5, size=(S, D)),
                  covars_=rng.uniform(0.8, 1.5, size=(S, D)))
    kwargs = dict(n_components=S, covariance_type="diag")
    return compare_fit("(i) GaussianHMM 16 states diag", GaussianHMM, hmmlearn_hmm.GaussianHMM,
                       kwargs, {}, params, X, [T] * n_seq, 10, repeats)


def fsdd_features(fsdd_dir):
    from gmmhmm.datasets import list_fsdd, official_split
    train, _ = official_split(list_fsdd(fsdd_dir))
    try:
        from gmmhmm.features import FeatureConfig, extract_many
        feats, failures = extract_many([u.path for u in train], FeatureConfig.fsdd())
        arrays = list(feats.values())
        source = "gmmhmm.features (FeatureConfig.fsdd)"
    except ImportError:  # front end not available: librosa directly
        import librosa
        arrays = []
        for u in train:
            y, sr = librosa.load(u.path, sr=8000)
            m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=13, n_fft=200, hop_length=80, n_mels=23)
            arrays.append(np.vstack([m, librosa.feature.delta(m), librosa.feature.delta(m, order=2)]).T)
        source = "librosa"
    return np.concatenate(arrays), [len(a) for a in arrays], len(train), source


def gmm_workload(repeats, fsdd_dir):
    X, lengths, n_files, source = fsdd_features(fsdd_dir)
    print(f"FSDD training set: {n_files} files, {len(X)} frames of {X.shape[1]} dims ({source})")
    S, M, D = 5, 4, X.shape[1]
    rng = np.random.default_rng(1)
    idx = rng.choice(len(X), size=S * M, replace=False)
    params = dict(startprob_=np.full(S, 1.0 / S), transmat_=rng.dirichlet(np.ones(S) * 5, size=S),
                  weights_=np.full((S, M), 1.0 / M), means_=X[idx].reshape(S, M, D),
                  covars_=np.broadcast_to(X.var(axis=0), (S, M, D)).copy())
    kwargs = dict(n_components=S, n_mix=M, covariance_type="diag")
    result = compare_fit("(ii) GMMHMM 5x4 diag, FSDD MFCC", GMMHMM, hmmlearn_hmm.GMMHMM, kwargs,
                         {"covars_centering": "previous"}, params, X, lengths, 5, repeats)
    result["files"] = n_files
    return result


def decode_workload(repeats):
    rng = np.random.default_rng(2)
    S, D, N = 50, 13, 100_000
    means = rng.normal(scale=2.0, size=(S, D))
    transmat = rng.dirichlet(np.ones(S) * 0.5, size=S)
    params = dict(startprob_=rng.dirichlet(np.ones(S)), transmat_=transmat, means_=means,
                  covars_=rng.uniform(0.8, 1.5, size=(S, D)))
    ours = set_params(GaussianHMM(S, covariance_type="diag", implementation="scaling"), params)
    ref = set_params(hmmlearn_hmm.GaussianHMM(S, covariance_type="diag"), params)
    X, _ = ours.sample(N, random_state=3)
    ours.decode(X[:100])  # compile
    t_ours, (lp_ours, st_ours) = best_time(lambda: ours.decode(X), repeats)
    t_ref, (lp_ref, st_ref) = best_time(lambda: ref.decode(X), repeats)
    agree = float(np.mean(st_ours == st_ref))
    print(f"(iii) decode 50 states, {N} frames | gmmhmm {t_ours:.3f} s ({N / t_ours:,.0f} frames/s) | "
          f"hmmlearn {t_ref:.3f} s ({N / t_ref:,.0f} frames/s) | speed-up x{t_ref / t_ours:.2f}")
    print(f"    Viterbi log-prob gmmhmm {lp_ours:.6f}  hmmlearn {lp_ref:.6f}  path agreement {agree:.6f}")
    return {"frames": N, "gmmhmm_seconds": round(t_ours, 4), "hmmlearn_seconds": round(t_ref, 4),
            "frames_per_s_ours": round(N / t_ours), "frames_per_s_hmmlearn": round(N / t_ref),
            "speedup": round(t_ref / t_ours, 2), "logprob_ours": float(lp_ours),
            "logprob_hmmlearn": float(lp_ref),
            "logprob_rel_diff": abs(lp_ours - lp_ref) / abs(lp_ref), "path_agreement": agree}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=1, help="best of this many runs per timing")
    ap.add_argument("--fsdd-dir", default=None, help="FSDD root (default: ../shared/data/fsdd)")
    ap.add_argument("--only", default="i,ii,iii", help="comma-separated workloads")
    args = ap.parse_args()
    only = set(args.only.split(","))
    import gmmhmm

    results = {"load_average_1min": round(os.getloadavg()[0], 2), "targets": TARGETS,
               "blas_threads": blas_threads(), "gmmhmm_threads": gmmhmm.get_num_threads()}
    print(f"load average {results['load_average_1min']}, {os.cpu_count()} CPUs, BLAS threads "
          f"{results['blas_threads']}, gmmhmm threads {results['gmmhmm_threads']}, best of {args.repeats}")
    if "i" in only:
        results["gaussian_hmm"] = gaussian_workload(args.repeats)
    if "ii" in only:
        results["gmm_hmm_fsdd"] = gmm_workload(args.repeats, args.fsdd_dir)
    if "iii" in only:
        results["decode"] = decode_workload(args.repeats)
    print()
    print(f"{'workload':<16}{'gmmhmm s':>10}{'hmmlearn s':>12}{'speed-up':>10}{'ours fps':>12}"
          f"{'hmmlearn fps':>14}{'loglik rel diff':>17}")
    for key in ("gaussian_hmm", "gmm_hmm_fsdd", "decode"):
        if key in results:
            r = results[key]
            diff = r.get("loglik_rel_diff", r.get("logprob_rel_diff"))
            print(f"{key:<16}{r['gmmhmm_seconds']:>10.3f}{r['hmmlearn_seconds']:>12.3f}"
                  f"{r['speedup']:>9.2f}x{r['frames_per_s_ours']:>12,}{r['frames_per_s_hmmlearn']:>14,}"
                  f"{diff:>17.1e}")
    met = {}
    for key, floor in TARGETS.items():
        part, name = key.split(".")
        if part in results:
            met[key] = results[part][name] >= floor
            print(f"target {key} >= {floor:g}x: {results[part][name]:.2f}x "
                  f"{'met' if met[key] else 'NOT met'}")
    results["targets_met"] = met
    print(json.dumps(results))


if __name__ == "__main__":
    main()
