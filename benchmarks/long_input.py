"""Long inputs: time and peak memory of gmmhmm against librosa/hmmlearn, in the same run.

Two workloads, each leg in its own process so that peak memory is clean:

(a) a synthesised 60-second, 8 kHz recording through the front end
    (MFCC + deltas + CMVN) and isolated-word decoding with a 10-digit
    ``HMMClassifier`` (trained on FSDD if present, else on synthetic tones);
    peer: librosa MFCC + deltas and hmmlearn scoring with the same models;
(b) one 1,000,000-frame, 39-dim feature sequence through a 6-state x
    4-mixture diagonal ``GMMHMM``: ``score`` and ``decode`` (Viterbi); peer:
    hmmlearn's ``GMMHMM`` with identical parameters.

Memory is the growth of the process's peak RSS (``VmHWM``, reset before
each call) beyond what the process held before it (input included), and
tracemalloc's peak of Python/numpy allocations. The check: gmmhmm's extra
peak memory stays within ``BOUND`` times the size of the input features.

Prints a table and, last, one JSON line (seconds, MiB; ``peer/ours`` > 1
means gmmhmm is faster or smaller).

    python benchmarks/long_input.py [--frames 1000000] [--skip-peer]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RATE_HZ = 8000
SECONDS = 60
BOUND = 2.5  # extra peak memory <= BOUND x input bytes (measured: ~2.0 for 1M frames)
MIB = 2.0**20


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _reset_peak() -> None:
    """Reset the peak RSS (VmHWM) to the current RSS (Linux >= 4.0), so each call is measured alone."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def measure(fn):
    """(result, seconds, extra peak RSS MiB, tracemalloc peak MiB) of ``fn()``."""
    _reset_peak()
    before = _status_mib("VmRSS")
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t0
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, seconds, max(_status_mib("VmHWM") - before, 0.0), traced / MIB


# ---------------------------------------------------------------------------
# Shared fixtures of the legs
# ---------------------------------------------------------------------------
def synth_audio(seconds: float = SECONDS, seed: int = 0) -> np.ndarray:
    """Speech-like test signal: gliding harmonics in bursts, with pauses and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE_HZ)) / RATE_HZ
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE_HZ
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    bursts = (np.sin(2 * np.pi * 1.3 * t) > -0.3).astype(float)
    return 0.2 * voiced * bursts + 0.01 * rng.standard_normal(t.size)


def digit_model(config):
    """10-digit classifier: FSDD (one speaker, takes 5-14) if present, else synthetic tones."""
    from gmmhmm.classifier import HMMClassifier
    from gmmhmm.datasets import default_fsdd_dir
    from gmmhmm.features import extract_features

    fsdd = default_fsdd_dir() / "recordings"
    X, y = [], []
    for d in range(10):
        for take in range(5, 15):
            path = fsdd / f"{d}_jackson_{take}.wav"
            if path.is_file():
                X.append(extract_features(path, config))
            else:
                sig = synth_audio(0.5, seed=100 * d + take) * np.sin(2 * np.pi * (200 + 60 * d)
                                                                     * np.arange(4000) / RATE_HZ)
                X.append(extract_features(sig, config, sample_rate_hz=RATE_HZ))
            y.append(d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return HMMClassifier(n_states=6, mix_schedule=(1, 2), n_iter=(3, 3), random_state=0).fit(X, y)


def big_model(n_features: int = 39):
    from gmmhmm import GMMHMM

    rng = np.random.default_rng(0)
    S, M = 6, 4
    m = GMMHMM(S, n_mix=M, covariance_type="diag", init_params="", params="")
    m.n_features = n_features
    m.startprob_ = np.full(S, 1.0 / S)
    m.transmat_ = np.full((S, S), 0.02 / (S - 1)) + np.eye(S) * (0.98 - 0.02 / (S - 1))
    m.weights_ = np.full((S, M), 1.0 / M)
    m.means_ = rng.normal(0, 2, (S, M, n_features))
    m.covars_ = rng.uniform(0.5, 2.0, (S, M, n_features))
    return m


def big_features(n_frames: int, n_features: int = 39) -> np.ndarray:
    """Frames drawn around the model's means in runs of ~50 frames per state."""
    m = big_model(n_features)
    rng = np.random.default_rng(1)
    states = np.repeat(rng.integers(0, 6, n_frames // 50 + 1), 50)[:n_frames]
    mix = rng.integers(0, 4, n_frames)
    X = m.means_[states, mix]
    X += rng.standard_normal(X.shape) * np.sqrt(m.covars_[states, mix])
    return X


def to_hmmlearn(model):
    from hmmlearn import hmm as hl

    p = hl.GMMHMM(model.n_components, n_mix=model.n_mix, covariance_type=model.covariance_type,
                  init_params="", params="")
    p.n_features = model.n_features
    for name in ("startprob_", "transmat_", "weights_", "means_", "covars_"):
        setattr(p, name, np.array(getattr(model, name), copy=True))
    return p


# ---------------------------------------------------------------------------
# Legs (each run in a child process)
# ---------------------------------------------------------------------------
def leg_audio(peer: bool) -> dict:
    import soundfile as sf

    from gmmhmm.features import FeatureConfig, extract_features

    config = FeatureConfig.fsdd()
    clf = digit_model(config)
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "long.wav"
        sf.write(wav, synth_audio(), RATE_HZ, subtype="PCM_16")
        if not peer:
            extract_features(wav, config)  # warm-up (tables, JIT) outside the timing
            X, t_feat, mem_feat, tr_feat = measure(lambda: extract_features(wav, config))
            clf.predict_log_likelihoods([X[:200]])
            scores, t_dec, mem_dec, tr_dec = measure(lambda: clf.predict_log_likelihoods([X]))
            assert np.isfinite(scores).all()
            return {"frames": len(X), "features_s": t_feat, "features_mib": mem_feat, "features_traced_mib": tr_feat,
                    "decode_s": t_dec, "decode_mib": mem_dec, "decode_traced_mib": tr_dec,
                    "label": int(clf.classes_[scores.argmax()]), "input_mib": X.nbytes / MIB,
                    "audio_mib": SECONDS * RATE_HZ * 8 / MIB}
        import librosa

        def librosa_features():
            y, _ = librosa.load(wav, sr=RATE_HZ)
            c = librosa.feature.mfcc(y=y, sr=RATE_HZ, n_mfcc=13, n_fft=256, hop_length=80, win_length=200,
                                     n_mels=23, center=False)
            feats = np.vstack([c, librosa.feature.delta(c), librosa.feature.delta(c, order=2)]).T
            return (feats - feats.mean(0)) / feats.std(0)

        librosa_features()
        _, t_feat, mem_feat, tr_feat = measure(librosa_features)
        X = extract_features(wav, config)
        peers = [to_hmmlearn(m) for m in clf.models_]
        peers[0].score(X[:200])

        def hmmlearn_decode():
            return np.array([p.decode(X, algorithm="viterbi")[0] for p in peers])

        scores, t_dec, mem_dec, tr_dec = measure(hmmlearn_decode)
        return {"frames": len(X), "features_s": t_feat, "features_mib": mem_feat, "features_traced_mib": tr_feat,
                "decode_s": t_dec, "decode_mib": mem_dec, "decode_traced_mib": tr_dec,
                "label": int(clf.classes_[scores.argmax()]), "input_mib": X.nbytes / MIB}


def leg_million(frames: int, peer: bool) -> dict:
    model = big_model()
    X = big_features(frames)
    m = to_hmmlearn(model) if peer else model
    m.score(X[:1000])  # JIT / warm-up outside the timing
    m.decode(X[:1000])
    logprob, t_score, mem_score, tr_score = measure(lambda: m.score(X))
    (vit, states), t_dec, mem_dec, tr_dec = measure(lambda: m.decode(X, algorithm="viterbi"))
    assert np.isfinite(logprob) and np.isfinite(vit) and states.shape == (frames,)
    return {"frames": frames, "score_s": t_score, "score_mib": mem_score, "score_traced_mib": tr_score,
            "decode_s": t_dec, "decode_mib": mem_dec, "decode_traced_mib": tr_dec, "logprob": float(logprob),
            "viterbi": float(vit), "input_mib": X.nbytes / MIB}


def run_leg(name: str, frames: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--leg", name, "--frames", str(frames)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"leg {name} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--leg", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.leg:
        what, who = args.leg.split(":")
        out = leg_audio(who == "peer") if what == "audio" else leg_million(args.frames, who == "peer")
        print(json.dumps(out))
        return

    legs = ["audio:ours", "million:ours"] + ([] if args.skip_peer else ["audio:peer", "million:peer"])
    res = {leg: run_leg(leg, args.frames) for leg in legs}
    a, b = res["audio:ours"], res["million:ours"]
    rows = [("60 s audio: features", a, "features", "audio:peer", "librosa"),
            ("60 s audio: 10-digit decode", a, "decode", "audio:peer", "hmmlearn"),
            (f"{b['frames']:,} frames: GMMHMM score", b, "score", "million:peer", "hmmlearn"),
            (f"{b['frames']:,} frames: GMMHMM decode", b, "decode", "million:peer", "hmmlearn")]
    print(f"{'workload':34s} {'ours s':>8s} {'ours MiB':>9s} {'traced':>8s} {'peer s':>8s} {'peer MiB':>9s}"
          f" {'peer/ours t':>11s} {'peer/ours mem':>13s}")
    summary: dict = {"bound_x_input": BOUND}
    ok = True
    for title, r, key, peer_leg, peer_name in rows:
        p = res.get(peer_leg)
        t, mem, tr = r[f"{key}_s"], r[f"{key}_mib"], r[f"{key}_traced_mib"]
        pt = p[f"{key}_s"] if p else float("nan")
        pm = p[f"{key}_mib"] if p else float("nan")
        print(f"{title:34s} {t:8.3f} {mem:9.1f} {tr:8.1f} {pt:8.3f} {pm:9.1f} {pt / t:11.2f} "
              f"{pm / max(mem, 1.0):13.2f}  ({peer_name})")
        # input: the float64 signal and its features for the front end, the features for decoding
        size = r["input_mib"] + (r["audio_mib"] if key == "features" else 0.0)
        within = max(mem, tr) <= BOUND * size + 16  # + small fixed allowance (tables, JIT)
        ok &= within
        summary[f"{title}"] = {"ours_s": round(t, 4), "ours_extra_mib": round(mem, 1), "ours_traced_mib": round(tr, 1),
                               "peer_s": round(pt, 4), "peer_extra_mib": round(pm, 1), "peer_over_ours_time":
                               round(pt / t, 2), "input_mib": round(size, 1), "within_bound": within}
    print(f"memory bound (extra peak <= {BOUND} x input + 16 MiB): {'OK' if ok else 'EXCEEDED'}")
    if "million:peer" in res:
        print(f"log-likelihood ours {b['logprob']:.6f} hmmlearn {res['million:peer']['logprob']:.6f}")
    summary["memory_within_bound"] = ok
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
