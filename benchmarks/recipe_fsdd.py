#!/usr/bin/env python
"""Benchmark: the official FSDD digits recipe, end to end, against hmmlearn.

Runs ``recipes/fsdd_digits.py`` (features, training, decoding) on the
official split and prints its times, accuracy and real-time factor. As the
peer, the same trained models are copied into ``hmmlearn.hmm.GMMHMM`` and
the test takes decoded with hmmlearn's Viterbi (one ``decode`` per take and
model, as hmmlearn offers no per-sequence batch scoring); ``--peer-train``
also trains hmmlearn models with the same flat start and schedule (slow).
The last line is JSON.

Usage::

    python benchmarks/recipe_fsdd.py [--config configs/fsdd_digits.toml] [--fsdd-dir DIR] [--peer-train]
"""

from __future__ import annotations

import os

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gmmhmm.cli import read_config  # noqa: E402
from gmmhmm.datasets import official_split  # noqa: E402


def load_recipe():
    spec = importlib.util.spec_from_file_location("fsdd_digits", REPO / "recipes" / "fsdd_digits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def to_hmmlearn(model):
    """An hmmlearn GMMHMM with the parameters of a gmmhmm GMMHMM.

    hmmlearn has no exit probabilities: the peer gets ``transmat_`` rows
    given that the model is not left, and may end in any state.
    """
    from hmmlearn.hmm import GMMHMM

    peer = GMMHMM(n_components=model.n_components, n_mix=model.n_mix,
                  covariance_type=model.covariance_type, min_covar=model.min_covar,
                  init_params="", params="stmcw", n_iter=0)
    peer.n_features = model.means_.shape[-1]
    for name in ("startprob_", "weights_", "means_", "covars_"):
        setattr(peer, name, getattr(model, name).copy())
    peer.transmat_ = model._next_state_probs()
    return peer


def peer_train(config, train, feats):
    """hmmlearn training with the same flat start and splitting schedule (gmmhmm's helpers)."""
    import gmmhmm.classifier as C
    from hmmlearn.hmm import GMMHMM

    class Peer(GMMHMM):  # no exit probabilities in hmmlearn: rows renormalised, any state may end
        def fit(self, X, lengths=None):
            self.transmat_ = self.transmat_ / self.transmat_.sum(axis=1, keepdims=True)
            return super().fit(X, lengths)

    def new_hmm(n_states, n_mix, covariance_type, min_covar, n_iter, tol, random_state):
        return Peer(n_components=n_states, n_mix=n_mix, covariance_type=covariance_type,
                      min_covar=min_covar, n_iter=n_iter, tol=tol, params="stmcw", init_params="",
                      random_state=random_state)

    original, C._new_hmm = C._new_hmm, new_hmm
    try:
        clf = C.HMMClassifier(**{**config.model, "n_jobs": 1})
        mixes, iters = clf._schedule()
        t0 = time.perf_counter()
        labels = sorted({u.digit for u in train})
        for lab in labels:
            C.train_word_model([feats[str(u.path)] for u in train if u.digit == lab], clf.n_states,
                               mixes, iters, clf.covariance_type, clf.max_jump, clf.min_covar,
                               clf.tol, clf.random_state)
        return time.perf_counter() - t0
    finally:
        C._new_hmm = original


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=REPO / "configs" / "fsdd_digits.toml")
    p.add_argument("--fsdd-dir", type=Path, default=None)
    p.add_argument("--peer-train", action="store_true", help="also time hmmlearn training (minutes)")
    args = p.parse_args(argv)
    config = read_config(args.config)
    recipe = load_recipe()

    # Features once, for the recipe and for the hmmlearn peer.
    data = recipe.featurise(config, args.fsdd_dir)
    with tempfile.TemporaryDirectory() as out:
        report = recipe.run(config, "official", args.fsdd_dir, Path(out), featurised=data)
        fold = report["folds"][0]
        from gmmhmm.modelfile import load

        clf = load(Path(out) / "model.npz")

    feats = data.feats
    train, test = official_split(data.utts)
    test_x = [feats[str(u.path)] for u in test]
    peers = [to_hmmlearn(m) for m in clf.models_]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peers[0].decode(test_x[0])
        t0 = time.perf_counter()
        scores = np.array([[m.decode(x, algorithm="viterbi")[0] for m in peers] for x in test_x])
        peer_decode_s = time.perf_counter() - t0
    peer_acc = float(np.mean(clf.classes_[scores.argmax(axis=1)] == np.array([u.digit for u in test])))
    ours = clf.predict_log_likelihoods(test_x)
    max_score_diff = float(np.max(np.abs(ours - scores)))

    result = {
        "benchmark": "recipe_fsdd",
        "accuracy": fold["accuracy"],
        "total_seconds": report["total_seconds"],
        "feature_seconds": report["feature_seconds"],
        "train_seconds": fold["train_seconds"],
        "decode_seconds": fold["decode_seconds"],
        "decode_warmup_seconds": fold["decode_warmup_seconds"],
        "test_audio_seconds": fold["test_audio_seconds"],
        "decode_rtf": fold["decode_rtf"],
        "decode_x_realtime": 1 / fold["decode_rtf"],
        "hmmlearn_decode_seconds": peer_decode_s,
        "hmmlearn_accuracy_same_models": peer_acc,
        "decode_speedup_vs_hmmlearn": peer_decode_s / fold["decode_seconds"],
        "max_viterbi_score_diff_vs_hmmlearn": max_score_diff,
        "cpus": os.cpu_count(),
    }
    if args.peer_train:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result["hmmlearn_train_seconds_serial"] = peer_train(config, train, feats)
        result["train_speedup_vs_hmmlearn"] = result["hmmlearn_train_seconds_serial"] / fold["train_seconds"]
    print()
    print(f"accuracy            {100 * result['accuracy']:.2f}%")
    print(f"total recipe        {result['total_seconds']:.1f} s (features {result['feature_seconds']:.1f} s, "
          f"training {result['train_seconds']:.1f} s, decoding {result['decode_seconds']:.2f} s)")
    print(f"decoding            RTF {result['decode_rtf']:.5f} = {result['decode_x_realtime']:.0f}x real time")
    print(f"hmmlearn decoding   {peer_decode_s:.2f} s with the same models "
          f"(accuracy {100 * peer_acc:.2f}%, max score diff {max_score_diff:.2e}): "
          f"gmmhmm is {result['decode_speedup_vs_hmmlearn']:.1f}x faster")
    if args.peer_train:
        print(f"hmmlearn training   {result['hmmlearn_train_seconds_serial']:.1f} s serial: "
              f"gmmhmm (n_jobs={config.model.get('n_jobs', 1)}) is {result['train_speedup_vs_hmmlearn']:.1f}x faster")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
