#!/usr/bin/env python
"""CMU AN4 recipe: monophones, a bigram LM, dev-tuned penalties, test WER.

Stages (Kaldi style; ``--stage N`` starts at stage N and reads the earlier
stages' outputs from the output folder, ``--stop-stage N`` ends after N):

0. data      Kaldi data dirs ``data/{train,test}`` from the AN4 corpus.
1. features  16 kHz MFCC + deltas, CMVN per speaker (``utt2spk``): ``feats/*.npz``.
2. lm        bigram LMs from the training transcripts (Witten-Bell), one
             without the dev speakers' transcripts: ``lm/*.arpa``.
3. train-dev monophones on the training speakers minus the dev speakers
             (flat start, embedded Baum-Welch, mix-up): ``mono_nodev/``.
4. tune      decode the dev speakers over the ``[tuning]`` grid of LM scales
             and word insertion penalties; the best goes to
             ``mono_nodev/decode_dev/best.json``. The test set is never read.
5. train     the same monophones on every training speaker: ``mono/``.
6. decode    the test speakers with the dev-tuned settings; ``%WER`` and
             ``%SER`` lines are printed and appended to ``RESULTS``; hypotheses
             and a CTM keyed by utterance id go to ``mono/decode_test/``.

Usage::

    python recipes/an4.py [--config configs/an4.toml] [--stage N] [--stop-stage N] [--out DIR] [-v]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from gmmhmm import load, save  # noqa: E402
from gmmhmm.errors import GmmhmmError, InvalidParameterError, TranscriptError  # noqa: E402
from gmmhmm.features import FeatureConfig, extract_many  # noqa: E402
from gmmhmm.features.store import load_features, save_features  # noqa: E402
from gmmhmm.graphs import EmbeddedTrainer, Lexicon, PhoneModelSet, to_ctm, viterbi_paths, word_loop_graph  # noqa: E402
from gmmhmm.modelfile import atomic_write_text  # noqa: E402
from gmmhmm.scoring import ErrorRates, error_rates  # noqa: E402

logger = logging.getLogger("an4")

STAGES = ("data", "features", "lm", "train-dev", "tune", "train", "decode")


# ---------------------------------------------------------------------------
# Corpus access (interim: replaced by gmmhmm.data and data_scripts/prepare_an4.py)
# ---------------------------------------------------------------------------
def an4_dir(cfg: dict) -> Path:
    """``[data] an4_dir``, else ``$GMMHMM_AN4_DIR``, else ``../shared/data/an4``."""
    d = cfg["data"].get("an4_dir") or os.environ.get("GMMHMM_AN4_DIR") or str(REPO.parent / "shared" / "data" / "an4")
    return Path(d)


@dataclass
class DataSet:
    """The tables of a Kaldi data dir that the recipe uses."""

    wav: dict[str, str]
    text: dict[str, list[str]]
    utt2spk: dict[str, str]

    @property
    def utterances(self) -> list[str]:
        return sorted(self.wav)

    def subset(self, speakers) -> "DataSet":
        keep = [u for u in self.utterances if self.utt2spk[u] in set(speakers)]
        return DataSet({u: self.wav[u] for u in keep}, {u: self.text[u] for u in keep},
                       {u: self.utt2spk[u] for u in keep})


def _prepare_part(corpus: Path, part: str, out: Path) -> None:
    ids = (corpus / "etc" / f"an4_{part}.fileids").read_text().split()
    text = {}
    for line in (corpus / "etc" / f"an4_{part}.transcription").read_text().splitlines():
        words, utt = line.rsplit("(", 1)
        text[utt.strip(" )")] = [w for w in words.split() if w not in ("<s>", "</s>")]
    wav = {Path(i).name: str(corpus / "wav" / f"{i}.sph") for i in ids}
    out.mkdir(parents=True, exist_ok=True)
    utts = sorted(wav)
    spk = {u: u.split("-")[1] for u in utts}
    atomic_write_text(out / "wav.scp", "".join(f"{u} {wav[u]}\n" for u in utts))
    atomic_write_text(out / "text", "".join(f"{u} {' '.join(text[u])}\n" for u in utts))
    atomic_write_text(out / "utt2spk", "".join(f"{u} {spk[u]}\n" for u in utts))


def prepare_data(corpus: Path, out: Path) -> None:
    for part in ("train", "test"):
        _prepare_part(corpus, part, out / part)


def read_data(path: Path) -> DataSet:
    def table(name):
        return {ln.split()[0]: ln.split()[1:] for ln in (path / name).read_text().splitlines() if ln.strip()}

    return DataSet({u: v[0] for u, v in table("wav.scp").items()}, table("text"),
                   {u: v[0] for u, v in table("utt2spk").items()})


def read_lexicon(corpus: Path) -> Lexicon:
    """AN4 dictionary, first pronunciation of each word, fillers (``<s>`` ...) left out."""
    prons: dict[str, list[str]] = {}
    for line in (corpus / "etc" / "an4.dic").read_text().splitlines():
        f = line.split()
        if f and not f[0].startswith("<"):
            prons.setdefault(f[0].split("(")[0], f[1:])
    return Lexicon(prons, silence="SIL")


# ---------------------------------------------------------------------------
# Stages
# ---------------------------------------------------------------------------
def load_config(path: str | os.PathLike) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)


def data_sets(cfg: dict, out: Path) -> tuple[DataSet, DataSet]:
    """Train and test data dirs of stage 0, restricted to the config's speakers."""
    train, test = read_data(out / "data" / "train"), read_data(out / "data" / "test")
    dcfg = cfg["data"]
    if dcfg.get("train_speakers"):
        train = train.subset(dcfg["train_speakers"])
    if dcfg.get("test_speakers"):
        test = test.subset(dcfg["test_speakers"])
    return train, test


def dev_split(train: DataSet, cfg: dict) -> tuple[DataSet, DataSet]:
    """(training speakers minus dev speakers, dev speakers)."""
    dev_spk = set(cfg["dev"]["speakers"])
    speakers = set(train.utt2spk.values())
    if not dev_spk & speakers:
        raise InvalidParameterError(f"none of the [dev] speakers {sorted(dev_spk)} is a training speaker")
    return train.subset(speakers - dev_spk), train.subset(dev_spk & speakers)


def stage_features(cfg: dict, out: Path, train: DataSet, test: DataSet) -> None:
    fc = FeatureConfig.from_dict(cfg["features"])
    (out / "feats").mkdir(exist_ok=True)
    for name, ds in (("train", train), ("test", test)):
        spk_of_path = {ds.wav[u]: ds.utt2spk[u] for u in ds.utterances}
        feats, failures = extract_many([ds.wav[u] for u in ds.utterances], fc, n_jobs=cfg["data"]["n_jobs"],
                                       speaker_of=spk_of_path.__getitem__)
        if failures:
            logger.warning("%s: %d file(s) failed: %s", name, len(failures), failures)
        by_utt = {u: feats[ds.wav[u]] for u in ds.utterances if ds.wav[u] in feats}
        save_features(out / "feats" / f"{name}.npz", by_utt, {"feature_config": fc.to_dict()})


def read_features(out: Path, name: str, ds: DataSet) -> dict[str, np.ndarray]:
    feats, _ = load_features(out / "feats" / f"{name}.npz")
    return {u: feats[u] for u in ds.utterances if u in feats}


def train_models(cfg: dict, lexicon: Lexicon, ds: DataSet, feats: dict[str, np.ndarray]) -> PhoneModelSet:
    tcfg = cfg["training"]
    trainer = EmbeddedTrainer(lexicon, n_states=tcfg["n_states"], sil_prob=tcfg["sil_prob"],
                              var_floor_frac=tcfg["var_floor_frac"], feature_config=cfg["features"])
    utts = [u for u in ds.utterances if u in feats]
    history = trainer.fit([feats[u] for u in utts], [ds.text[u] for u in utts], mixtures=tcfg["mixtures"],
                          n_iter=tcfg["n_iter"])
    logger.info("trained on %d utterances; log-lik/frame %s", len(utts), " ".join(f"{h:.3f}" for h in history))
    return trainer.model


@dataclass
class Decoded:
    hyps: dict[str, list[str]]
    ctm: str
    search_s: float


def decode(model: PhoneModelSet, lexicon: Lexicon, ll: dict[str, np.ndarray], lm_scale: float,
           insertion_penalty: float, cfg: dict, shift_s: float) -> Decoded:
    """Best word sequence of each utterance (interim: word loop, lm_scale unused)."""
    t0 = time.perf_counter()
    g = word_loop_graph(lexicon, insertion_penalty, lm_scale, model.n_states)
    paths = viterbi_paths(model, g, list(ll.values()), cfg["decoding"]["beam"], shift_s)
    search_s = time.perf_counter() - t0
    hyps, ctm = {}, []
    for u, p in zip(ll, paths):
        hyps[u] = p.tokens(drop=(lexicon.silence,))
        ctm.append(to_ctm(u, [s for s in p.words if s.label != lexicon.silence]))
    return Decoded(hyps, "".join(ctm), search_s)


def kaldi_lines(er: ErrorRates) -> str:
    """``%WER`` and ``%SER`` lines as Kaldi's compute-wer prints them."""
    return (f"%WER {100 * er.error_rate:.2f} [ {er.n_errors} / {er.n_ref}, {er.n_insertions} ins, "
            f"{er.n_deletions} del, {er.n_substitutions} sub ]\n"
            f"%SER {100 * er.sentence_error_rate:.2f} [ {er.n_sentences_wrong} / {er.n_sentences} ]")


def score(ds: DataSet, hyps: dict[str, list[str]]) -> ErrorRates:
    utts = list(hyps)
    return error_rates([ds.text[u] for u in utts], [hyps[u] for u in utts], utts)


def stage_tune(cfg: dict, model: PhoneModelSet, lexicon: Lexicon, dev: DataSet, feats: dict[str, np.ndarray],
               out: Path) -> dict:
    """Grid search of (lm_scale, word insertion penalty) on the dev speakers."""
    shift_s = cfg["features"]["shift_ms"] / 1000.0
    utts = [u for u in dev.utterances if u in feats]
    ll = dict(zip(utts, model.state_log_likelihood_many([feats[u] for u in utts])))
    rows, best = [], None
    for lm_scale in cfg["tuning"]["lm_scales"]:
        for wip in cfg["tuning"]["word_insertion_penalties"]:
            er = score(dev, decode(model, lexicon, ll, lm_scale, wip, cfg, shift_s).hyps)
            rows.append(f"lm_scale {lm_scale:5.1f} wip {wip:6.1f} " + kaldi_lines(er).replace("\n", " "))
            key = (er.n_errors, er.n_sentences_wrong)
            if best is None or key < best[0]:
                best = (key, {"lm_scale": lm_scale, "word_insertion_penalty": wip, "dev_wer": er.error_rate,
                              "dev_ser": er.sentence_error_rate, "n_dev_utterances": len(utts)})
    d = out / "mono_nodev" / "decode_dev"
    d.mkdir(parents=True, exist_ok=True)
    atomic_write_text(d / "tuning.txt", "\n".join(rows) + "\n")
    atomic_write_text(d / "best.json", json.dumps(best[1], indent=1))
    logger.info("dev-tuned: %s", best[1])
    return best[1]


def stage_decode(cfg: dict, model: PhoneModelSet, lexicon: Lexicon, test: DataSet, feats: dict[str, np.ndarray],
                 tuned: dict, out: Path) -> dict:
    shift_s = cfg["features"]["shift_ms"] / 1000.0
    utts = [u for u in test.utterances if u in feats]
    audio_s = sum(sf.info(test.wav[u]).duration for u in utts)
    t0 = time.perf_counter()
    ll = dict(zip(utts, model.state_log_likelihood_many([feats[u] for u in utts])))
    dec = decode(model, lexicon, ll, tuned["lm_scale"], tuned["word_insertion_penalty"], cfg, shift_s)
    decode_s = time.perf_counter() - t0
    er = score(test, dec.hyps)
    d = out / "mono" / "decode_test"
    d.mkdir(parents=True, exist_ok=True)
    atomic_write_text(d / "hyp.txt", "".join(f"{u} {' '.join(h)}\n" for u, h in dec.hyps.items()))
    atomic_write_text(d / "ctm", dec.ctm)
    lines = kaldi_lines(er)
    atomic_write_text(d / "wer.txt", lines + "\n" + er.format("WER") + "\n")
    settings = (f"lm_scale={tuned['lm_scale']:g} wip={tuned['word_insertion_penalty']:g} "
                f"beam={cfg['decoding']['beam']:g} ({model.n_mix} Gaussians)")
    with open(out / "RESULTS", "a", encoding="utf-8") as f:
        f.write("".join(f"{ln} {d.relative_to(out.parent) if out.parent in d.parents else d} {settings}\n"
                        for ln in lines.splitlines()))
    report = {"wer": er.to_dict(), "audio_s": audio_s, "decode_s": decode_s, "search_s": dec.search_s,
              "real_time_factor": decode_s / audio_s, "n_utterances": len(utts), **tuned}
    atomic_write_text(d / "report.json", json.dumps(report, indent=1))
    print(lines)
    print(f"decoding: {audio_s:.1f} s of audio in {decode_s:.2f} s (scoring + search), "
          f"real-time factor {decode_s / audio_s:.4f} ({audio_s / decode_s:.0f}x faster than real time)")
    return report


def peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(REPO / "configs" / "an4.toml"))
    ap.add_argument("--stage", type=int, default=0, help=f"first stage: {dict(enumerate(STAGES))}")
    ap.add_argument("--stop-stage", type=int, default=len(STAGES) - 1)
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: [output] dir)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(message)s")
    cfg = load_config(args.config)
    out = args.out or REPO / cfg["output"]["dir"]
    out.mkdir(parents=True, exist_ok=True)
    corpus = an4_dir(cfg)
    run = range(args.stage, args.stop_stage + 1)
    timings: dict[str, float] = {}
    report: dict = {"timings_s": timings}

    def timed(i: int):
        class _T:
            def __enter__(self):
                self.t0 = time.perf_counter()
                print(f"stage {i}: {STAGES[i]}", flush=True)

            def __exit__(self, *exc):
                timings[STAGES[i]] = time.perf_counter() - self.t0
        return _T()

    if 0 in run:
        with timed(0):
            prepare_data(corpus, out / "data")
    lexicon = read_lexicon(corpus)
    train, test = data_sets(cfg, out)
    train_nodev, dev = dev_split(train, cfg)
    if 1 in run:
        with timed(1):
            stage_features(cfg, out, train, test)
    # stage 2 (LM) lands with gmmhmm.lm
    if 3 in run:
        with timed(3):
            feats = read_features(out, "train", train_nodev)
            model = train_models(cfg, lexicon, train_nodev, feats)
            (out / "mono_nodev").mkdir(exist_ok=True)
            save(model, out / "mono_nodev" / "model.npz", metadata={"speakers": "train minus dev"})
    if 4 in run:
        with timed(4):
            model = load(out / "mono_nodev" / "model.npz")
            report["tuned"] = stage_tune(cfg, model, lexicon, dev, read_features(out, "train", dev), out)
    if 5 in run:
        with timed(5):
            feats = read_features(out, "train", train)
            model = train_models(cfg, lexicon, train, feats)
            (out / "mono").mkdir(exist_ok=True)
            save(model, out / "mono" / "model.npz", metadata={"speakers": "train"})
    if 6 in run:
        with timed(6):
            tuned = json.loads((out / "mono_nodev" / "decode_dev" / "best.json").read_text())
            model = load(out / "mono" / "model.npz")
            report["test"] = stage_decode(cfg, model, lexicon, test, read_features(out, "test", test), tuned, out)
    report["peak_memory_mb"] = peak_memory_mb()
    print("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
          + f"; peak memory {report['peak_memory_mb']:.0f} MB")
    return report


if __name__ == "__main__":
    try:
        main()
    except GmmhmmError as exc:
        raise SystemExit(f"an4: error: {exc}") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SystemExit(f"an4: error: {exc}") from None
    except KeyError as exc:
        raise SystemExit(f"an4: error: the config lacks the key {exc}") from None
