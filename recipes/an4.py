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

    python recipes/an4.py [--config configs/an4.toml] [--stage N] [--stop-stage N] [--out DIR]
        [--set SECTION.KEY=VALUE ...] [--report FILE] [-v]

``--set`` overrides one config setting, e.g. a slice of a few speakers::

    python recipes/an4.py --out exp/an4_slice --set 'data.train_speakers=["fash", "fbbh", "mblb"]' \\
        --set 'data.test_speakers=["fcaw"]' --set 'dev.speakers=["fbbh"]' --set 'training.mixtures=[1, 2]' \\
        --set 'training.n_iter=[2, 1]'
"""

from __future__ import annotations

import json
import logging
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from data_scripts.prepare_an4 import default_an4_dir, prepare  # noqa: E402
from gmmhmm import load, save  # noqa: E402
from gmmhmm.data import DataDir, Lexicon  # noqa: E402
from gmmhmm.decoding import decoding_graph  # noqa: E402
from gmmhmm.errors import InvalidParameterError  # noqa: E402
from gmmhmm.graphs import PhoneModelSet  # noqa: E402
from gmmhmm.lm import NGramModel, estimate, read_arpa, write_arpa  # noqa: E402
from gmmhmm.modelfile import atomic_write_text  # noqa: E402
from gmmhmm.recipe import (Stages, argument_parser, decode_grid, kaldi_lines, read_features, run, setup,  # noqa: E402
                           stage_features, train_monophones)
from gmmhmm.recipe import apply_overrides, load_config  # noqa: E402, F401  (tests call them through this module)
from gmmhmm.scoring import ErrorRates, error_rates  # noqa: E402
from gmmhmm.search import SearchOptions, to_ctm  # noqa: E402

logger = logging.getLogger("an4")

STAGES = ("data", "features", "lm", "train-dev", "tune", "train", "decode")


# ---------------------------------------------------------------------------
# Settings and data
# ---------------------------------------------------------------------------
def an4_dir(cfg: dict) -> Path:
    """``[data] an4_dir``, else ``$GMMHMM_AN4_DIR``, else ``../shared/data/an4``."""
    return Path(cfg["data"]["an4_dir"]) if cfg["data"].get("an4_dir") else default_an4_dir()


def data_sets(cfg: dict, out: Path) -> tuple[DataDir, DataDir]:
    """Train and test data dirs of stage 0, restricted to the config's speakers."""
    sets = []
    for name in ("train", "test"):
        ds = DataDir.read(out / "data" / name)
        speakers = cfg["data"].get(f"{name}_speakers") or ds.speakers
        unknown = sorted(set(speakers) - set(ds.speakers))
        if unknown:
            raise InvalidParameterError(f"[data] {name}_speakers: {unknown} are not {name} speakers")
        sets.append(ds.subset(u for s in speakers for u in ds.spk2utt[s]))
    return sets[0], sets[1]


def dev_split(train: DataDir, cfg: dict) -> tuple[DataDir, DataDir]:
    """(training speakers minus the ``[dev]`` speakers, the dev speakers)."""
    dev = set(cfg["dev"]["speakers"]) & set(train.speakers)
    if not dev or dev == set(train.speakers):
        raise InvalidParameterError(f"[dev] speakers {cfg['dev']['speakers']} must be some, not all, of the "
                                    f"training speakers {train.speakers}")
    spk2utt = train.spk2utt
    return (train.subset(u for s in train.speakers if s not in dev for u in spk2utt[s]),
            train.subset(u for s in sorted(dev) for u in spk2utt[s]))


# ---------------------------------------------------------------------------
# Stages
# ---------------------------------------------------------------------------
def stage_lm(cfg: dict, ds: DataDir, path: Path) -> NGramModel:
    """Bigram (``[lm]`` order and smoothing) of the transcripts of ``ds``, written as ARPA."""
    lm = estimate([ds.text[u] for u in ds.utterances], order=cfg["lm"]["order"], method=cfg["lm"]["method"])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_arpa(lm, path)
    return lm


def train_models(cfg: dict, lexicon: Lexicon, ds: DataDir, feats: dict[str, np.ndarray]) -> PhoneModelSet:
    """Flat start, embedded Baum-Welch and mix-up on the ``[training]`` schedule."""
    return train_monophones(cfg["training"], cfg["features"], lexicon, ds, feats)


def search_options(cfg: dict, lm_scale: float, word_insertion_penalty: float) -> SearchOptions:
    d = cfg["decoding"]
    return SearchOptions(beam=d["beam"], max_active=d["max_active"], lm_scale=lm_scale,
                         word_insertion_penalty=word_insertion_penalty)


def decode(model: PhoneModelSet, lexicon: Lexicon, lm: NGramModel, ll: dict[str, np.ndarray],
           options: list[SearchOptions], cfg: dict) -> list[dict]:
    """1-best results ``{utt: DecodeResult or None}`` of every utterance, once per set of ``options``.

    An utterance whose every path the beam prunes gets None (and a warning).

    The graph (LM x lexicon x phone models) is compiled once; only its
    weights change with the LM scale and insertion penalty.
    """
    graph = decoding_graph(model, "lm", lexicon, lm, silence_prob=cfg["training"]["sil_prob"])
    return decode_grid(graph, ll, options)


def score(ds: DataDir, results: dict) -> ErrorRates:
    utts = list(results)
    return error_rates([ds.text[u] for u in utts], [hyp_words(results[u]) for u in utts], utts)


def hyp_words(result) -> list[str]:
    return [] if result is None else result.words


def stage_tune(cfg: dict, model: PhoneModelSet, lexicon: Lexicon, lm: NGramModel, dev: DataDir,
               feats: dict[str, np.ndarray], out: Path) -> dict:
    """Grid search of (LM scale, word insertion penalty) on the dev speakers.

    The best has the fewest word errors, then the fewest sentence errors,
    then comes first in the grid. Writes ``tuning.txt`` and ``best.json``.
    """
    utts = [u for u in dev.utterances if u in feats]
    ll = dict(zip(utts, model.state_log_likelihood_many([feats[u] for u in utts])))
    grid = [(s, p) for s in cfg["tuning"]["lm_scales"] for p in cfg["tuning"]["word_insertion_penalties"]]
    results = decode(model, lexicon, lm, ll, [search_options(cfg, s, p) for s, p in grid], cfg)
    rows, best = [], None
    for (lm_scale, wip), res in zip(grid, results):
        er = score(dev, res)
        rows.append(f"lm_scale {lm_scale:5.1f} wip {wip:6.1f} " + kaldi_lines(er).replace("\n", " "))
        if best is None or (er.n_errors, er.n_sentences_wrong) < best[0]:
            best = ((er.n_errors, er.n_sentences_wrong),
                    {"lm_scale": lm_scale, "word_insertion_penalty": wip, "dev_wer": er.error_rate,
                     "dev_ser": er.sentence_error_rate, "dev_speakers": dev.speakers, "n_dev_utterances": len(utts)})
    d = out / "mono_nodev" / "decode_dev"
    d.mkdir(parents=True, exist_ok=True)
    atomic_write_text(d / "tuning.txt", "\n".join(rows) + "\n")
    atomic_write_text(d / "best.json", json.dumps(best[1], indent=1))
    print(f"dev-tuned: lm_scale {best[1]['lm_scale']:g}, word insertion penalty "
          f"{best[1]['word_insertion_penalty']:g} (dev %WER {100 * best[1]['dev_wer']:.2f} over {len(utts)} "
          f"utterances of {len(dev.speakers)} speakers)")
    return best[1]


def stage_decode(cfg: dict, model: PhoneModelSet, lexicon: Lexicon, lm: NGramModel, test: DataDir,
                 feats: dict[str, np.ndarray], tuned: dict, out: Path) -> dict:
    """Decode the test speakers with the dev-tuned settings; score, CTM, RESULTS."""
    shift_s = cfg["features"]["shift_ms"] / 1000.0
    utts = [u for u in test.utterances if u in feats]
    audio_s = sum(sf.info(test.wav[u]).duration for u in utts)
    opt = search_options(cfg, tuned["lm_scale"], tuned["word_insertion_penalty"])
    # compiled kernels load from numba's cache (or compile) on first use: warm them up untimed
    t0 = time.perf_counter()
    decode(model, lexicon, lm, {utts[0]: model.state_log_likelihood(feats[utts[0]])}, [opt], cfg)
    warmup_s = time.perf_counter() - t0
    t0, cpu0 = time.perf_counter(), time.process_time()
    ll = dict(zip(utts, model.state_log_likelihood_many([feats[u] for u in utts])))
    t1 = time.perf_counter()
    decoded = decode(model, lexicon, lm, ll, [opt], cfg)[0]
    t2, cpu_s = time.perf_counter(), time.process_time() - cpu0
    # an utterance whose audio failed in stage 1 is scored as all deleted, never left out
    results = {u: decoded.get(u) for u in test.utterances}
    er = score(test, results)
    d = out / "mono" / "decode_test"
    d.mkdir(parents=True, exist_ok=True)
    atomic_write_text(d / "hyp.txt", "".join(f"{u} {' '.join(hyp_words(r))}\n" for u, r in results.items()))
    atomic_write_text(d / "ctm", "".join(to_ctm(u, r, shift_s) for u, r in results.items() if r is not None))
    lines = kaldi_lines(er)
    atomic_write_text(d / "wer.txt", lines + "\n" + er.format("WER") + "\n")
    settings = (f"mono {model.n_mix}g bigram lm_scale={tuned['lm_scale']:g} "
                f"wip={tuned['word_insertion_penalty']:g} beam={opt.beam:g}")
    with open(out / "RESULTS", "a", encoding="utf-8") as f:
        f.write("".join(f"{ln} {d.name} {settings}\n" for ln in lines.splitlines()))
    report = {"errors": er.to_dict(), "audio_s": audio_s, "scoring_s": t1 - t0, "search_s": t2 - t1,
              "real_time_factor": (t2 - t0) / audio_s, "cpu_real_time_factor": cpu_s / audio_s,
              "warmup_s": warmup_s, "n_utterances": len(results), "n_decoded": len(utts), "settings": settings,
              "peak_active": max(r.stats.get("peak_active", 0) for r in results.values() if r is not None)}
    atomic_write_text(d / "report.json", json.dumps(report, indent=1))
    print(lines)
    print(f"decoding: {audio_s:.1f} s of audio in {t2 - t0:.2f} s ({t1 - t0:.2f} s acoustic scoring + "
          f"{t2 - t1:.2f} s search), real-time factor {report['real_time_factor']:.4f} "
          f"({1 / report['real_time_factor']:.0f}x faster than real time; CPU time {cpu_s:.2f} s, "
          f"{audio_s / cpu_s:.0f}x; kernel warm-up {warmup_s:.2f} s before)")
    return report


def peak_memory_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv: list[str] | None = None) -> dict:
    """Run stages ``--stage`` .. ``--stop-stage``; returns a report with per-stage times."""
    args = argument_parser(__doc__.splitlines()[0], REPO / "configs" / "an4.toml", len(STAGES), STAGES).parse_args(argv)
    cfg, out = setup(args, REPO)
    run = Stages(STAGES, args.stage, args.stop_stage)
    timings = run.timings
    report: dict = {"timings_s": timings}

    run(0, lambda: prepare(an4_dir(cfg), out / "data"))
    lexicon = Lexicon.read(out / "data" / "lexicon.txt")
    train, test = data_sets(cfg, out)
    train_nodev, dev = dev_split(train, cfg)
    lm_dir = out / "lm"
    run(1, lambda: stage_features(cfg["features"], cfg["data"]["n_jobs"], out, {"train": train, "test": test},
                                  by_speaker=True))
    run(2, lambda: (stage_lm(cfg, train_nodev, lm_dir / "bigram_nodev.arpa"), stage_lm(cfg, train, lm_dir / "bigram.arpa")))

    def train_stage(ds: DataDir, name: str, speakers: str) -> None:
        model = train_models(cfg, lexicon, ds, read_features(out, "train", ds))
        (out / name).mkdir(exist_ok=True)
        save(model, out / name / "model.npz", metadata={"speakers": speakers, "n_speakers": len(ds.speakers)})

    run(3, lambda: train_stage(train_nodev, "mono_nodev", "train minus dev"))
    report["tuned"] = run(4, lambda: stage_tune(cfg, load(out / "mono_nodev" / "model.npz"), lexicon,
                                                read_arpa(lm_dir / "bigram_nodev.arpa"), dev,
                                                read_features(out, "train", dev), out))
    run(5, lambda: train_stage(train, "mono", "train"))
    report["test"] = run(6, lambda: stage_decode(
        cfg, load(out / "mono" / "model.npz"), lexicon, read_arpa(lm_dir / "bigram.arpa"), test,
        read_features(out, "test", test), json.loads((out / "mono_nodev" / "decode_dev" / "best.json").read_text()),
        out))
    report["peak_memory_mb"] = peak_memory_mb()
    print("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
          + f"; peak memory {report['peak_memory_mb']:.0f} MB")
    if args.report is not None:
        atomic_write_text(args.report, json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    run(main, "an4")
