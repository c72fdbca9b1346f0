#!/usr/bin/env python
"""FSDD spoken-digit recognition: the project's main job.

Features (MFCC + deltas, CMVN), one left-to-right GMM-HMM per digit trained
with flat start, Baum-Welch and mixture splitting, then every test take
scored by Viterbi against each digit model, best one wins.

With ``cmvn = "speaker"`` the statistics are per speaker and per part of the
split, as Kaldi keeps them per data dir: a training speaker's from its
training takes, a test speaker's from its test takes (in leave-one-speaker-out
folds, the held-out speaker's own audio, no labels). Test takes never enter
the statistics the models are trained on.

Writes ``report.txt``, ``report.json``, ``confusion.png`` (if matplotlib is
installed) and, for the official split, the trained ``model.npz`` (and with
speaker CMVN its statistics, ``cmvn.npz``) to the output folder, and prints
the report.

Usage::

    python recipes/fsdd_digits.py [--config configs/fsdd_digits.toml]
        [--mode official|loso] [--fsdd-dir DIR] [--out exp/fsdd_digits] [-v]
        [--checkpoint-dir DIR] [--resume]

``--resume`` continues an interrupted run from the checkpoints written after
every Baum-Welch iteration (in ``--checkpoint-dir``, default
``<out>/checkpoints``) and ends with the same models as an uninterrupted run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import NamedTuple

# Parallelism comes from processes; a multi-threaded BLAS on the many small
# products of this job only adds synchronisation (set before numpy loads).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from gmmhmm.classifier import HMMClassifier  # noqa: E402
from gmmhmm.cli import RecipeConfig, check_output, read_config  # noqa: E402
from gmmhmm.datasets import Utterance, list_fsdd, split, utt2spk  # noqa: E402
from gmmhmm.modelfile import atomic_write_text  # noqa: E402
from gmmhmm.errors import GmmhmmError  # noqa: E402
from gmmhmm.features import (  # noqa: E402
    CmvnStats,
    FeatureConfig,
    apply_cmvn,
    compute_cmvn_stats,
    extract_many,
    save_cmvn_stats,
)
from gmmhmm.scoring import accuracy, confusion_matrix, format_confusion, plot_confusion  # noqa: E402

logger = logging.getLogger("fsdd_digits")

DEFAULT_CONFIG = REPO / "configs" / "fsdd_digits.toml"


def audio_seconds(utts: list[Utterance]) -> float:
    """Total duration of the recordings (from their headers)."""
    return float(sum(sf.info(str(u.path)).duration for u in utts))


def speaker_cmvn(train: list[Utterance], test: list[Utterance], feats: dict[str, np.ndarray],
                 config: FeatureConfig) -> tuple[dict[str, np.ndarray], dict[str, CmvnStats]]:
    """``feats`` (without CMVN) of one fold after per-speaker CMVN, and the statistics used.

    Statistics are per part of the split (Kaldi: per data dir): a training
    speaker's (``train/<speaker>``) come from its training takes only, a test
    speaker's (``test/<speaker>``) from its test takes only. Features of
    other CMVN modes are returned as they are, with no statistics.
    """
    if config.cmvn != "speaker":
        return feats, {}
    spk = {**utt2spk(train, "train/"), **utt2spk(test, "test/")}
    fold = {p: feats[p] for p in spk if p in feats}
    stats = compute_cmvn_stats(fold, spk)
    return apply_cmvn(fold, stats, spk, variance=config.cmvn_variance), stats


def run_fold(name: str, train: list[Utterance], test: list[Utterance],
             feats: dict[str, np.ndarray], config: RecipeConfig,
             checkpoint_dir: Path | None = None, resume: bool = False) -> tuple[dict, HMMClassifier]:
    """Train on ``train``, decode ``test``; the fold's figures and the classifier.

    ``feats`` are the fold's final features (see :func:`speaker_cmvn`).
    """
    train = [u for u in train if str(u.path) in feats]
    test = [u for u in test if str(u.path) in feats]
    clf = HMMClassifier(**config.model)
    logger.info("[%s] training on %d takes", name, len(train))
    t0 = time.perf_counter()
    clf.fit([feats[str(u.path)] for u in train], [u.digit for u in train], resume=resume,
            checkpoint_dir=None if checkpoint_dir is None else checkpoint_dir / name)
    train_s = time.perf_counter() - t0
    test_feats = [feats[str(u.path)] for u in test]
    # Compile (or load from numba's cache) the scoring kernels before timing: a one-off cost per
    # process, not part of the decoding speed. On every take, so the batch kernels the timed call
    # runs (parallel over sequences) are the ones compiled: one take compiled only the serial ones.
    t0 = time.perf_counter()
    clf.predict_log_likelihoods(test_feats)
    warmup_s = time.perf_counter() - t0
    logger.info("[%s] decoding %d takes", name, len(test))
    t0 = time.perf_counter()
    hyps = clf.predict(test_feats).tolist()
    decode_s = time.perf_counter() - t0
    refs = [u.digit for u in test]
    labels, matrix = confusion_matrix(refs, hyps, labels=[str(d) for d in range(10)])
    test_audio_s = audio_seconds(test)
    fold = {
        "fold": name,
        "n_train": len(train),
        "n_test": len(test),
        "accuracy": accuracy(refs, hyps),
        "train_seconds": train_s,
        "decode_seconds": decode_s,
        "decode_warmup_seconds": warmup_s,
        "test_audio_seconds": test_audio_s,
        "decode_rtf": decode_s / test_audio_s,
        "labels": labels,
        "confusion": matrix.tolist(),
        "errors": [{"utt_id": u.utt_id, "ref": r, "hyp": h} for u, r, h in zip(test, refs, hyps) if r != h],
    }
    logger.info("[%s] accuracy %.2f%% (train %.1f s, decode %.2f s)", name, 100 * fold["accuracy"],
                train_s, decode_s)
    return fold, clf


def format_report(report: dict) -> str:
    lines = [f"FSDD digits, {report['mode']} split, config {report['config']}",
             f"features: {report['n_files']} files, {report['feature_seconds']:.1f} s"
             + (f", {len(report['feature_failures'])} failed" if report["feature_failures"] else "")]
    for f in report["folds"]:
        held = "" if f["fold"] == "official" else f" (held-out speaker {f['fold']})"
        lines += [
            "",
            f"fold {f['fold']}{held}: accuracy {100 * f['accuracy']:.2f}% "
            f"({f['n_test']} test / {f['n_train']} train takes)",
            f"  training {f['train_seconds']:.1f} s, decoding {f['decode_seconds']:.2f} s for "
            f"{f['test_audio_seconds']:.1f} s of audio: RTF {f['decode_rtf']:.5f} "
            f"({1 / f['decode_rtf']:.0f}x faster than real time; "
            f"{f['decode_warmup_seconds']:.2f} s kernel warm-up not included)",
        ]
        if report["mode"] == "official":
            lines += ["", format_confusion(f["labels"], np.array(f["confusion"]))]
    lines += ["", f"mean accuracy: {100 * report['mean_accuracy']:.2f}% over {len(report['folds'])} fold(s)",
              f"total time: {report['total_seconds']:.1f} s"]
    return "\n".join(lines)


class Featurised(NamedTuple):
    """The recordings of an FSDD folder and their features."""

    utts: list[Utterance]
    feats: dict[str, np.ndarray]  # by str(path); failed files are missing; speaker CMVN not applied
    failures: list[tuple[str, str]]  # (path, error)
    seconds: float  # feature extraction time


def featurise(config: RecipeConfig, fsdd_dir: Path | None, progress: bool = False) -> Featurised:
    """List the recordings and extract their features (what :func:`run` does first).

    Speaker CMVN is left to each fold (its statistics depend on the split).
    """
    utts = list_fsdd(fsdd_dir or config.fsdd_dir)
    t0 = time.perf_counter()
    features = config.features
    if features.cmvn == "speaker":
        features = features.replace(cmvn="none")
    feats, failures = extract_many([u.path for u in utts], features, n_jobs=config.feature_jobs,
                                   progress=progress)
    return Featurised(utts, feats, failures, time.perf_counter() - t0)


def run(config: RecipeConfig, mode: str, fsdd_dir: Path | None, out: Path, progress: bool = False,
        checkpoint_dir: Path | None = None, resume: bool = False,
        featurised: Featurised | None = None) -> dict:
    """The whole recipe; returns the report dict (also written to ``out``).

    ``featurised``, from :func:`featurise` with the same config and folder,
    skips feature extraction (its time still counts in the report's total).
    """
    t_start = time.perf_counter()
    if featurised is None:
        featurised = featurise(config, fsdd_dir, progress)
    else:
        t_start -= featurised.seconds
    utts, feats, failures = featurised.utts, featurised.feats, featurised.failures
    folds = split(utts, mode)
    logger.info("%d recordings, %d fold(s)", len(utts), len(folds))
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for name, train, test in folds:
        fold_feats, stats = speaker_cmvn(train, test, feats, config.features)
        fold, clf = run_fold(name, train, test, fold_feats, config, checkpoint_dir, resume)
        results.append(fold)
        if mode == "official":
            if stats:  # Kaldi's cmvn.scp: the statistics the model was trained and tested with
                save_cmvn_stats(out / "cmvn.npz", stats)
            clf.save(out / "model.npz", metadata={"feature_config": config.features.to_dict(),
                                                  "recipe": "fsdd_digits"})
            plot_confusion(fold["labels"], np.array(fold["confusion"]), out / "confusion.png",
                           title=f"FSDD official test: {100 * fold['accuracy']:.1f}%")
    report = {
        "mode": mode,
        "config": str(config.path),
        "n_files": len(utts),
        "feature_failures": [{"path": p, "error": e} for p, e in failures],
        "feature_seconds": featurised.seconds,
        "folds": results,
        "mean_accuracy": float(np.mean([f["accuracy"] for f in results])),
        "total_seconds": time.perf_counter() - t_start,
        "model": {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.model.items()},
        "features": config.features.to_dict(),
    }
    text = format_report(report)
    atomic_write_text(out / "report.txt", text + "\n")
    atomic_write_text(out / "report.json", json.dumps(report, indent=1) + "\n")
    print(text)
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="FSDD spoken-digit recipe: train and test one GMM-HMM per digit.")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="TOML config (default: %(default)s)")
    p.add_argument("--mode", choices=("official", "loso"), default=None,
                   help="official split or all leave-one-speaker-out folds (default: the config's data.split)")
    p.add_argument("--fsdd-dir", type=Path, default=None,
                   help="FSDD folder (default: config, then $GMMHMM_FSDD_DIR, then ../shared/data/fsdd)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: the config's output.dir)")
    p.add_argument("--progress", action="store_true", help="show progress bars")
    p.add_argument("--checkpoint-dir", type=Path, default=None,
                   help="checkpoint every EM iteration here (default with --resume: <out>/checkpoints)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoints")
    p.add_argument("-v", "--verbose", action="count", default=0, help="-v: progress log, -vv: debug")
    args = p.parse_args(argv)
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.verbose < 2:  # per-iteration EM lines only with -vv
        logging.getLogger("gmmhmm.hmm").setLevel(logging.WARNING)
    try:
        config = read_config(args.config)
        out = args.out or (REPO / config.out_dir if not config.out_dir.is_absolute() else config.out_dir)
        check_output(out, "output folder", folder=True)  # now, not after featurising the corpus
        run(config, args.mode or config.split, args.fsdd_dir, out, progress=args.progress or sys.stderr.isatty(),
            checkpoint_dir=args.checkpoint_dir or (out / "checkpoints" if args.resume else None),
            resume=args.resume)
    except (GmmhmmError, OSError) as exc:  # bad data or config, a full disk: one line, no traceback
        print(f"fsdd_digits: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
