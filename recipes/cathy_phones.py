#!/usr/bin/env python
"""Cathy phone recipe: phoneme recognition of one speaker reading the CMU ARCTIC prompts.

Monophones trained from word transcripts through cmudict (39 phones without
stress, plus silence), then tied-state triphones, a phone bigram LM, phone-loop decoding scored as PER
against the dictionary pronunciations, forced alignments as TextGrids.

Stages (Kaldi style; ``--stage N`` starts at stage N and reads the earlier
stages' outputs from the output folder, ``--stop-stage N`` ends after N):

0. data      Kaldi data dirs ``data/{train,test}``, ``data/lexicon.txt`` and
             ``data/dropped.txt`` (utterances with words cmudict lacks); test
             = every ``[data] test_every``-th distinct prompt, so no test
             sentence is ever trained on.
1. features  16 kHz MFCC + deltas, CMVN per utterance: ``feats/*.npz``.
2. lm        phone bigrams over the canonical (first cmudict) pronunciations of
             the training transcripts, one without the dev prompts: ``lm/*.arpa``.

then, for each acoustic system (``mono``, then ``tri1``: tied-state cross-word
triphones grown from the mono alignments; see :data:`SYSTEMS`), stages 3-7 as below
for mono, 8-12 the same for tri1:

3. mono-dev     the system trained on the training prompts minus the dev
                prompts: ``mono_nodev/``.
4. mono-tune    decode the dev prompts over the ``[tuning]`` grid of LM scales
                and phone insertion penalties: ``mono_nodev/decode_dev/best.json``.
                The test set is never read.
5. mono         the system trained on every training prompt: ``mono/``.
6. mono-decode  phone-loop decoding of the test prompts with the dev-tuned
                settings; ``%PER`` and ``%SER`` lines printed and appended to
                ``RESULTS`` after the dev lines of the tuning (``mono_nodev/decode_dev``);
                ``mono/decode_test/{hyp.txt,ref.txt,per.txt,report.json}``.
7. mono-align   forced alignments of the first ``[align] n_files`` test
                utterances to their transcripts: ``mono/align_test/*.TextGrid``
                (tiers ``words`` and ``phones``) and CTMs.

Usage::

    python recipes/cathy_phones.py [--config configs/cathy_phones.toml] [--stage N] [--stop-stage N]
        [--out DIR] [--set SECTION.KEY=VALUE ...] [--report FILE] [-v]

``--set`` overrides one config setting, e.g. a slice of a few prompts::

    python recipes/cathy_phones.py --out exp/cathy_slice --set data.n_train_prompts=40 \\
        --set data.n_test_prompts=5 --set 'mono.mixtures=[1, 2]' --set 'mono.n_iter=[2, 1]'
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from data_scripts.prepare_cathy import default_cathy_dir, default_cmudict, every_nth, prepare, prompt_of  # noqa: E402
from gmmhmm import load  # noqa: E402, F401  (tests call it through this module)
from gmmhmm.data import DataDir, Lexicon  # noqa: E402
from gmmhmm.decoding import decoding_graph, phone_lexicon  # noqa: E402
from gmmhmm.errors import InvalidParameterError, SequenceTooShortError  # noqa: E402
from gmmhmm.features import FeatureConfig  # noqa: E402
from gmmhmm.graphs import PhoneModelSet, force_align, train_triphones, write_alignment  # noqa: E402
from gmmhmm.graphs.questions import read_phone_classes  # noqa: E402
from gmmhmm.lm import NGramModel  # noqa: E402
from gmmhmm.modelfile import atomic_write_text  # noqa: E402
from gmmhmm.recipe import (Stages, argument_parser, best_on_dev, chain_settings, decode_grid, kaldi_lines,  # noqa: E402
                           read_features, run, load_stage_lm, load_stage_model, read_tuning, save_stage_lm,
                           save_stage_model, settings_key, setup, stage_features, train_monophones, write_tuning)
from gmmhmm.scoring import ErrorRates, error_rates  # noqa: E402
from gmmhmm.search import SearchOptions  # noqa: E402

logger = logging.getLogger("cathy_phones")

#: A system's trainer: ``(cfg, lexicon, data, features, parent model or None) -> model``.
Trainer = Callable[[dict, Lexicon, DataDir, dict, "PhoneModelSet | None"], PhoneModelSet]


# ---------------------------------------------------------------------------
# Settings and data
# ---------------------------------------------------------------------------
def data_sets(cfg: dict, out: Path) -> tuple[DataDir, DataDir]:
    """Train and test data dirs of stage 0, cut to the first ``[data] n_*_prompts`` prompts (0: all)."""
    sets = []
    for name in ("train", "test"):
        ds = DataDir.read(out / "data" / name)
        n = cfg["data"][f"n_{name}_prompts"]
        keep = sorted({prompt_of(u) for u in ds.utterances})[:n] if n else None
        sets.append(ds if keep is None else ds.subset(u for u in ds.utterances if prompt_of(u) in set(keep)))
    return sets[0], sets[1]


def dev_split(train: DataDir, cfg: dict) -> tuple[DataDir, DataDir]:
    """(training prompts minus the dev prompts, the dev prompts): every ``[dev] every``-th
    training prompt from ``offset``, all recordings of a prompt on one side."""
    dev_prompts = every_nth((prompt_of(u) for u in train.utterances), cfg["dev"]["every"], cfg["dev"]["offset"])
    dev = [u for u in train.utterances if prompt_of(u) in dev_prompts]
    if not dev or len(dev) == len(train):
        raise InvalidParameterError(f"[dev] every {cfg['dev']['every']} / offset {cfg['dev']['offset']} must pick "
                                    "some, not all, of the training prompts")
    return train.subset(u for u in train.utterances if prompt_of(u) not in dev_prompts), train.subset(dev)


def n_prompts(ds: DataDir) -> int:
    return len({prompt_of(u) for u in ds.utterances})


def phone_strings(lexicon: Lexicon, ds: DataDir) -> dict[str, list[str]]:
    """Reference phones of each utterance: the first cmudict pronunciation of each word, joined."""
    return {u: [p for pron in lexicon.pronounce(ds.text[u]) for p in pron] for u in ds.utterances}


# ---------------------------------------------------------------------------
# Stages
# ---------------------------------------------------------------------------
def lm_sentences(lexicon: Lexicon, ds: DataDir) -> list[list[str]]:
    """What the phone n-gram (``[lm]`` order and smoothing) is estimated from: the reference phones of ``ds``."""
    return list(phone_strings(lexicon, ds).values())


def train_mono(cfg: dict, lexicon: Lexicon, ds: DataDir, feats: dict[str, np.ndarray],
               parent: PhoneModelSet | None = None) -> PhoneModelSet:
    """Monophones: flat start, embedded Baum-Welch and mix-up on the ``[mono]`` schedule
    (word transcripts, every cmudict pronunciation allowed)."""
    return train_monophones(cfg["mono"], cfg["features"], lexicon, ds, feats)


def train_tri1(cfg: dict, lexicon: Lexicon, ds: DataDir, feats: dict[str, np.ndarray],
               parent: PhoneModelSet | None = None) -> PhoneModelSet:
    """Tied-state cross-word triphones from the monophones' alignments (``[tri1]``; questions from
    ``cmudict.phones`` beside the dictionary plus clustered ones)."""
    t, mono = cfg["tri1"], cfg["mono"]
    dictionary = Path(cfg["data"]["cmudict"]) if cfg["data"]["cmudict"] else default_cmudict()
    utts = [u for u in ds.utterances if u in feats]
    model, history = train_triphones(
        parent, [feats[u] for u in utts], [ds.text[u] for u in utts],
        phone_classes=read_phone_classes(dictionary.parent / "cmudict.phones"), min_occupancy=t["min_occupancy"],
        gain_threshold=t["gain_threshold"], max_leaves=t["max_leaves"], mixtures=t["mixtures"],
        n_iter=t["n_iter"], sil_prob=mono["sil_prob"], var_floor_frac=mono["var_floor_frac"])
    logger.info("tri1: %d tied states; log-lik/frame %s", model.n_pdfs, " ".join(f"{h:.3f}" for h in history))
    return model


#: Acoustic systems in training order: ``(name, trainer, parent system)``. Each gets the
#: stages ``<name>-dev``, ``<name>-tune``, ``<name>``, ``<name>-decode``, ``<name>-align``;
#: the trainer receives the parent's model trained on the same prompts (``<parent>_nodev``
#: for the dev system). Triphones plug in here, e.g. ``("tri1", train_tri1, "mono")``
#: with ``train_tri1(cfg, lexicon, ds, feats, mono_model)`` building the tree from mono
#: alignments (a ``[tri1]`` config section holds its settings); decoding, tuning, PER,
#: RESULTS and TextGrids then come for free.
SYSTEMS: list[tuple[str, Trainer, str | None]] = [("mono", train_mono, None), ("tri1", train_tri1, "mono")]



def model_key(cfg: dict, name: str, suffix: str) -> str:
    """What ``<name><suffix>/model.npz`` depends on: the data, dev split, front end and the
    settings of every system up to ``name``."""
    _, settings = chain_settings(cfg, [n for n, _, _ in SYSTEMS], name, ("features",))
    return settings_key({"data": {k: v for k, v in cfg["data"].items() if k not in ("n_jobs", "n_test_prompts")},
                         "dev": cfg["dev"], "suffix": suffix, **settings})


def tuning_key(cfg: dict, name: str) -> str:
    """What ``<name>_nodev/decode_dev/best.json`` depends on: the dev models, LM and search settings."""
    return settings_key([model_key(cfg, name, "_nodev"), {k: cfg[k] for k in ("lm", "decoding", "tuning")}])


STAGES = ("data", "features", "lm") + tuple(
    f"{name}{suffix}" for name, _, _ in SYSTEMS for suffix in ("-dev", "-tune", "", "-decode", "-align"))


def search_options(cfg: dict, lm_scale: float, phone_insertion_penalty: float) -> SearchOptions:
    d = cfg["decoding"]
    return SearchOptions(beam=d["beam"], max_active=d["max_active"], lm_scale=lm_scale,
                         word_insertion_penalty=phone_insertion_penalty)


def decode(model: PhoneModelSet, lm: NGramModel, ll: dict[str, np.ndarray], options: list[SearchOptions],
           cfg: dict) -> list[dict[str, list[str] | None]]:
    """Recognised phones ``{utt: phones or None}`` of every utterance, once per set of ``options``.

    The graph is the phone n-gram ``lm`` over the model's phones, each phone a
    word pronounced as itself, with optional silence between phones
    (``[decoding] silence_prob``); it is compiled once, only its weights change
    with the LM scale and insertion penalty. Silence is left out of the
    result. An utterance whose every path the beam prunes gets None (and a warning).
    """
    graph = decoding_graph(model, "lm", phone_lexicon(model.phones), lm, silence_prob=cfg["decoding"]["silence_prob"])
    return [{u: None if r is None else r.words for u, r in res.items()} for res in decode_grid(graph, ll, options)]


def score(refs: dict[str, list[str]], hyps: dict[str, list[str] | None]) -> ErrorRates:
    utts = list(hyps)
    return error_rates([refs[u] for u in utts], [hyps[u] or [] for u in utts], utts)


def stage_tune(cfg: dict, model: PhoneModelSet, lexicon: Lexicon, lm: NGramModel, dev: DataDir,
               feats: dict[str, np.ndarray], out: Path, key: str | None = None) -> dict:
    """Grid search of (LM scale, phone insertion penalty) on the dev prompts.

    The best has the fewest phone errors, then the fewest sentence errors,
    then comes first in the grid. Writes ``tuning.txt`` and ``best.json`` to ``out``.
    """
    utts = [u for u in dev.utterances if u in feats]
    ll = dict(zip(utts, model.state_log_likelihood_many([feats[u] for u in utts])))
    grid = [(s, p) for s in cfg["tuning"]["lm_scales"] for p in cfg["tuning"]["phone_insertion_penalties"]]
    results = decode(model, lm, ll, [search_options(cfg, s, p) for s, p in grid], cfg)
    refs = phone_strings(lexicon, dev)
    rates = [score(refs, res) for res in results]
    rows = [f"lm_scale {s:5.1f} pip {p:6.1f} " + kaldi_lines(er, "PER").replace("\n", " ")
            for (s, p), er in zip(grid, rates)]
    for row in rows:
        logger.info("dev: %s", row)
    k = best_on_dev(rates)
    best = {"lm_scale": grid[k][0], "phone_insertion_penalty": grid[k][1], "dev_per": rates[k].error_rate,
            "dev_errors": rates[k].to_dict(), "n_dev_prompts": n_prompts(dev), "n_dev_utterances": len(utts)}
    write_tuning(out, rows, best, key)
    print(f"dev-tuned: lm_scale {best['lm_scale']:g}, phone insertion penalty "
          f"{best['phone_insertion_penalty']:g} (dev %PER {100 * best['dev_per']:.2f} over {len(utts)} "
          f"utterances of {n_prompts(dev)} prompts)")
    return best


def stage_decode(cfg: dict, name: str, model: PhoneModelSet, lexicon: Lexicon, lm: NGramModel, test: DataDir,
                 feats: dict[str, np.ndarray], tuned: dict, out: Path) -> dict:
    """Decode the test prompts with the dev-tuned settings; score, hypotheses, RESULTS."""
    utts = [u for u in test.utterances if u in feats]
    audio_s = sum(sf.info(test.wav[u]).duration for u in utts)
    opt = search_options(cfg, tuned["lm_scale"], tuned["phone_insertion_penalty"])
    t0 = time.perf_counter()
    ll = dict(zip(utts, model.state_log_likelihood_many([feats[u] for u in utts])))
    decoded = decode(model, lm, ll, [opt], cfg)[0]
    decode_s = time.perf_counter() - t0
    # an utterance whose audio failed in stage 1 is scored as all deleted, never left out
    hyps = {u: decoded.get(u) for u in test.utterances}
    refs = phone_strings(lexicon, test)
    er = score(refs, hyps)
    d = out / name / "decode_test"
    d.mkdir(parents=True, exist_ok=True)
    atomic_write_text(d / "hyp.txt", "".join(f"{u} {' '.join(h or [])}\n" for u, h in hyps.items()))
    atomic_write_text(d / "ref.txt", "".join(f"{u} {' '.join(refs[u])}\n" for u in hyps))
    lines = kaldi_lines(er, "PER")
    atomic_write_text(d / "per.txt", lines + "\n" + er.format("PER") + "\n")
    settings = (f"{name} {model.n_pdfs} pdfs {model.n_mix}g phone-{cfg['lm']['order']}gram "
                f"lm_scale={tuned['lm_scale']:g} pip={tuned['phone_insertion_penalty']:g} beam={opt.beam:g}")
    # the dev lines are those of the tuning (the system trained without the dev prompts)
    dev_lines = kaldi_lines(ErrorRates.from_dict(tuned["dev_errors"]), "PER")
    with open(out / "RESULTS", "a", encoding="utf-8") as f:
        f.write("".join(f"{ln} {name}_nodev/decode_dev {settings}\n" for ln in dev_lines.splitlines()))
        f.write("".join(f"{ln} {name}/{d.name} {settings}\n" for ln in lines.splitlines()))
    report = {"errors": er.to_dict(), "audio_s": audio_s, "decode_s": decode_s,
              "real_time_factor": decode_s / audio_s, "n_prompts": n_prompts(test),
              "n_utterances": len(hyps), "n_decoded": len(utts), "settings": settings}
    atomic_write_text(d / "report.json", json.dumps(report, indent=1))
    print(lines)
    print(f"decoding: {audio_s:.1f} s of audio in {decode_s:.1f} s (real-time factor {report['real_time_factor']:.3f})")
    return report


def stage_align(cfg: dict, name: str, model: PhoneModelSet, test: DataDir, feats: dict[str, np.ndarray],
                out: Path) -> list[str]:
    """Forced alignments of the first ``[align] n_files`` test utterances: TextGrids + CTMs."""
    fc = FeatureConfig.from_dict(cfg["features"])
    shift_s = fc.frame_shift_s
    aligned = {}
    for u in [u for u in test.utterances if u in feats][:cfg["align"]["n_files"]]:
        duration_s = sf.info(test.wav[u]).duration
        try:
            aligned[u] = force_align(model, feats[u], test.text[u], shift_s, duration_s, cfg["mono"]["sil_prob"])
        except SequenceTooShortError as exc:
            logger.warning("%s: not aligned: %s", u, exc)
    write_alignment(out / name / "align_test", aligned)
    print(f"forced alignments of {len(aligned)} test utterances: {out / name / 'align_test'}")
    return sorted(aligned)


def main(argv: list[str] | None = None) -> dict:
    """Run stages ``--stage`` .. ``--stop-stage``; returns a report with per-stage times."""
    args = argument_parser(__doc__.splitlines()[0], REPO / "configs" / "cathy_phones.toml", len(STAGES),
                           STAGES).parse_args(argv)
    cfg, out = setup(args, REPO, STAGES)
    run_stage = Stages(STAGES, args.stage, args.stop_stage)
    timings = run_stage.timings
    report: dict = {"timings_s": timings}

    dcfg = cfg["data"]
    report["data"] = run_stage("data", lambda: prepare(
        Path(dcfg["cathy_dir"]) if dcfg["cathy_dir"] else default_cathy_dir(),
        Path(dcfg["cmudict"]) if dcfg["cmudict"] else default_cmudict(), out / "data",
        dcfg["test_every"], dcfg["test_offset"]))
    if report["data"] is not None and report["data"]["dropped_utterances"]:
        print(f"{report['data']['dropped_utterances']} utterances dropped for words cmudict lacks: "
              f"{out / 'data' / 'dropped.txt'}")
    lexicon = Lexicon.read(out / "data" / "lexicon.txt")
    train, test = data_sets(cfg, out)
    train_nodev, dev = dev_split(train, cfg)
    report["sets"] = {name: {"prompts": n_prompts(ds), "utterances": len(ds)}
                      for name, ds in (("train", train), ("train_nodev", train_nodev), ("dev", dev), ("test", test))}
    print("prompts / utterances: " + ", ".join(f"{k} {v['prompts']} / {v['utterances']}"
                                               for k, v in report["sets"].items()))
    lm_dir = out / "lm"
    run_stage("features", lambda: stage_features(cfg["features"], dcfg["n_jobs"], out, {"train": train, "test": test}))
    run_stage("lm", lambda: (save_stage_lm(lm_dir / "phone_bigram_nodev.arpa", lm_sentences(lexicon, train_nodev),
                                           cfg["lm"]),
                             save_stage_lm(lm_dir / "phone_bigram.arpa", lm_sentences(lexicon, train), cfg["lm"])))

    def model(name: str, suffix: str) -> PhoneModelSet:
        """A trained system, checked to come from this config (else its training stage is named)."""
        return load_stage_model(out / f"{name}{suffix}" / "model.npz", model_key(cfg, name, suffix),
                                f"{name}{'-dev' if suffix else ''}")

    def lm(file: str, ds: DataDir) -> NGramModel:
        """The lm stage's LM of ``ds``, checked to come from this config's [lm] and data."""
        return load_stage_lm(lm_dir / file, lm_sentences(lexicon, ds), cfg["lm"])

    def train_stage(name: str, trainer: Trainer, parent: str | None, ds: DataDir, suffix: str) -> None:
        parent_model = None if parent is None else model(parent, suffix)
        trained = trainer(cfg, lexicon, ds, read_features(out, "train", ds, cfg), parent_model)
        save_stage_model(out / f"{name}{suffix}" / "model.npz", trained, model_key(cfg, name, suffix),
                         {"prompts": n_prompts(ds), "utterances": len(ds)})

    for name, trainer, parent in SYSTEMS:
        run_stage(f"{name}-dev", lambda: train_stage(name, trainer, parent, train_nodev, "_nodev"))
        report[f"{name}_tuned"] = run_stage(f"{name}-tune", lambda: stage_tune(
            cfg, model(name, "_nodev"), lexicon, lm("phone_bigram_nodev.arpa", train_nodev),
            dev, read_features(out, "train", dev, cfg), out / f"{name}_nodev" / "decode_dev", tuning_key(cfg, name)))
        run_stage(name, lambda: train_stage(name, trainer, parent, train, ""))
        report[f"{name}_test"] = run_stage(f"{name}-decode", lambda: stage_decode(
            cfg, name, model(name, ""), lexicon, lm("phone_bigram.arpa", train), test,
            read_features(out, "test", test, cfg),
            read_tuning(out / f"{name}_nodev" / "decode_dev", tuning_key(cfg, name), f"{name}-tune"), out))
        report[f"{name}_aligned"] = run_stage(f"{name}-align", lambda: stage_align(
            cfg, name, model(name, ""), test, read_features(out, "test", test, cfg), out))
    print(run_stage.summary())
    if args.report is not None:
        atomic_write_text(args.report, json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    run(main, "cathy_phones")
