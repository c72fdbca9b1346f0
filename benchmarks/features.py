"""Front-end speed on the FSDD recordings: gmmhmm vs plain librosa.

Featurises every recording (3,000 files of ~0.5 s at 8 kHz) with
gmmhmm.features (MFCC + deltas + CMVN, serial and with n_jobs processes)
and with librosa (librosa.load + librosa.feature.mfcc + librosa.feature.delta,
same frame and filterbank sizes), and prints files/s, real-time factor
(processing time / audio duration) and the speed-up ratios; the last line
is JSON.

    python benchmarks/features.py [--fsdd DIR] [--limit N] [--n-jobs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gmmhmm.datasets import DatasetError, default_fsdd_dir, list_fsdd  # noqa: E402
from gmmhmm.features import FeatureConfig, extract_many  # noqa: E402


def _librosa_features(paths: list[str], cfg: FeatureConfig) -> int:
    import librosa

    frames = 0
    for p in paths:
        y, sr = librosa.load(p, sr=cfg.sample_rate_hz)
        m = librosa.feature.mfcc(
            y=y, sr=sr, n_mfcc=cfg.n_ceps, n_fft=cfg.n_fft, win_length=cfg.frame_length,
            hop_length=cfg.frame_shift, n_mels=cfg.n_mels, fmin=cfg.low_freq_hz,
            fmax=cfg.high_freq_effective_hz, htk=True, lifter=int(cfg.cep_lifter), window="hamming",
        )
        d = librosa.feature.delta(m, order=1)
        dd = librosa.feature.delta(m, order=2)
        x = np.vstack([m, d, dd]).T
        x = (x - x.mean(0)) / np.maximum(x.std(0), 1e-8)
        frames += x.shape[0]
    return frames


def _timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fsdd", default=str(default_fsdd_dir()))
    ap.add_argument("--limit", type=int, default=None, help="use only the first N files")
    ap.add_argument("--n-jobs", type=int, default=2)
    args = ap.parse_args()

    try:
        paths = sorted(str(u.path) for u in list_fsdd(args.fsdd))[: args.limit]  # --limit cuts in file-name order
    except DatasetError as exc:
        raise SystemExit(str(exc)) from exc
    audio_s = sum(sf.info(p).duration for p in paths)
    cfg = FeatureConfig.fsdd()
    print(f"{len(paths)} files, {audio_s:.1f} s of audio; config {cfg.n_features}-dim MFCC+deltas+CMVN")

    extract_many(paths[:20], cfg)  # warm caches (filterbank tables, imports)
    t_serial, (feats, failures) = _timed(lambda: extract_many(paths, cfg))
    t_par, (feats_par, _) = _timed(lambda: extract_many(paths, cfg, n_jobs=args.n_jobs))
    assert not failures and all(np.array_equal(feats[k], feats_par[k]) for k in feats)
    _librosa_features(paths[:20], cfg)
    t_lib, _ = _timed(lambda: _librosa_features(paths, cfg))

    rows = {
        "gmmhmm_serial": t_serial,
        f"gmmhmm_n_jobs_{args.n_jobs}": t_par,
        "librosa_serial": t_lib,
    }
    print(f"{'pipeline':<22}{'seconds':>9}{'files/s':>10}{'RTF':>10}")
    for name, t in rows.items():
        print(f"{name:<22}{t:9.2f}{len(paths) / t:10.0f}{t / audio_s:10.5f}")
    speedup = t_lib / t_serial
    print(f"gmmhmm serial is {speedup:.1f}x faster than librosa; n_jobs={args.n_jobs} is "
          f"{t_lib / t_par:.1f}x faster")
    print(json.dumps({
        "benchmark": "features",
        "n_files": len(paths),
        "audio_seconds": round(audio_s, 2),
        "gmmhmm_seconds": round(t_serial, 3),
        "gmmhmm_parallel_seconds": round(t_par, 3),
        "n_jobs": args.n_jobs,
        "librosa_seconds": round(t_lib, 3),
        "gmmhmm_files_per_s": round(len(paths) / t_serial, 1),
        "gmmhmm_rtf": round(t_serial / audio_s, 6),
        "librosa_rtf": round(t_lib / audio_s, 6),
        "speedup_vs_librosa": round(speedup, 2),
        "load_average_1min": round(os.getloadavg()[0], 2),  # other work on the machine skews timings
    }))


if __name__ == "__main__":
    main()
