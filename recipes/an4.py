#!/usr/bin/env python
"""CMU AN4 recipe: a chain of acoustic-model systems, a bigram LM, dev-tuned penalties, test WER.

Stages (Kaldi style; ``--stage N`` starts at stage N and reads the earlier
stages' outputs from the output folder, ``--stop-stage N`` ends after N;
``python recipes/an4.py --list-stages`` prints the numbers):

0. data      Kaldi data dirs ``data/{train,test}`` from the AN4 corpus.
1. features  16 kHz MFCC + deltas, CMVN per speaker (``utt2spk``): ``feats/*.npz``;
             with ``[vtln] enabled``, each speaker's audio at its own VTLN warp
             factor, chosen without labels under a GMM of the training speakers
             minus the dev speakers (``feats/vtln_warps.json``). With
             ``[data] speed_perturb`` (e.g. ``[0.9, 1.0, 1.1]``), also the speed-perturbed
             copies of the training speakers (Kaldi's ``perturb_data_dir_speed_3way.sh``:
             ids ``sp0.9-...``, each copy of a speaker a new speaker).
2. lm        bigram LMs from the training transcripts (Witten-Bell), one
             without the dev speakers' transcripts: ``lm/*.arpa``.

then, for every system of ``[systems] run`` in order (``mono``, ...; each
starts from the previous system's models of the same training set), four
stages:

* ``<system>-train-dev``  train on the training speakers minus the dev
  speakers (their speed-perturbed copies with ``[data] speed_perturb``): ``<system>_nodev/``;
* ``<system>-tune``  decode the dev speakers over the ``[tuning]`` grid of LM
  scales and word insertion penalties; the best goes to
  ``<system>_nodev/decode_dev/best.json``. The test set is never read;
* ``<system>-train``  the same on every training speaker (dev speakers included; perturbed
  likewise): ``<system>/``. Dev and test audio is never perturbed, nor are the LM's transcripts;
* ``<system>-decode``  the test speakers with the dev-tuned settings;
  ``%WER`` and ``%SER`` lines are printed and appended to ``RESULTS``;
  hypotheses and a CTM keyed by utterance id go to ``<system>/decode_test/``.

Usage::

    python recipes/an4.py [--config configs/an4.toml] [--stage N] [--stop-stage N] [--out DIR]
        [--set SECTION.KEY=VALUE ...] [--report FILE] [-v]

``--set`` overrides one config setting, e.g. a slice of a few speakers::

    python recipes/an4.py --out exp/an4_slice --set 'data.train_speakers=["fash", "fbbh", "mblb"]' \\
        --set 'data.test_speakers=["fcaw"]' --set 'dev.speakers=["fbbh"]' --set 'training.mixtures=[1, 2]' \\
        --set 'training.n_iter=[2, 1]'
"""

from __future__ import annotations

import copy
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
from gmmhmm import load  # noqa: E402, F401  (tests call it through this module)
from gmmhmm.data import DataDir, Lexicon, perturb_speed  # noqa: E402
from gmmhmm.adapt import apply_speaker_transforms, train_sat  # noqa: E402
from gmmhmm.decoding import decode_adapted, decoding_graph  # noqa: E402
from gmmhmm.errors import InvalidParameterError  # noqa: E402
from gmmhmm.features import FeatureConfig  # noqa: E402
from gmmhmm.graphs import EmbeddedTrainer, PhoneModelSet, train_triphones  # noqa: E402
from gmmhmm.graphs.lda_mllt import LdaMlltOptions, static_features, train_lda_mllt  # noqa: E402
from gmmhmm.graphs.questions import read_phone_classes  # noqa: E402
from gmmhmm.lm import NGramModel  # noqa: E402
from gmmhmm.modelfile import atomic_write_text  # noqa: E402
from gmmhmm.recipe import (apply_overrides, argument_parser, best_on_dev, chain_settings, decode_grid,  # noqa: E402
                           kaldi_lines, load_config, load_stage_lm, load_stage_model, read_features, read_tuning, run,
                           save_stage_lm, save_stage_model, settings_key, setup, stage_features, train_monophones,
                           write_tuning)
from gmmhmm.scoring import ErrorRates, error_rates  # noqa: E402
from gmmhmm.search import SearchOptions, to_ctm  # noqa: E402

logger = logging.getLogger("an4")

DATA_STAGES = ("data", "features", "lm")
SYSTEM_STEPS = ("train-dev", "tune", "train", "decode")


def stages(cfg: dict) -> list[str]:
    """Stage names in order: the data stages, then four per system of ``[systems] run``."""
    return list(DATA_STAGES) + [f"{s}-{step}" for s in systems(cfg) for step in SYSTEM_STEPS]


def systems(cfg: dict) -> list[str]:
    """``[systems] run``, checked: known systems, each after the one it starts from."""
    run_ = list(cfg.get("systems", {}).get("run", ["mono"]))
    known = list(TRAINERS)
    if not run_ or run_ != known[:len(run_)]:
        raise InvalidParameterError(f"[systems] run must be a prefix of {known}, got {run_}")
    return run_


def model_key(cfg: dict, system: str, suffix: str) -> str:
    """What ``<system><suffix>/model.npz`` depends on: the training speakers (and dev ones: the
    VTLN warps come from the others), the front end and the settings of every system up to it."""
    chain, settings = chain_settings(cfg, systems(cfg), system, ("features", "vtln", "training"), first_in_shared=True)
    data = {k: cfg["data"].get(k) for k in ("an4_dir", "train_speakers")}
    if speed_factors(cfg):  # only when set: models trained before the setting existed keep their keys
        data["speed_perturb"] = speed_factors(cfg)
    return settings_key({"data": data, "dev": cfg["dev"], "suffix": suffix, "chain": chain, **settings})


def tuning_key(cfg: dict, system: str) -> str:
    """What ``<system>_nodev/decode_dev/best.json`` depends on: the dev models, LM and search settings."""
    si = ADAPTED_FROM.get(system)
    return settings_key([model_key(cfg, system, "_nodev"), si and tuning_key(cfg, si),
                         {k: cfg.get(k) for k in ("lm", "decoding", "tuning")}])


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


def speed_factors(cfg: dict) -> list[float]:
    """``[data] speed_perturb``: the speeds of the training copies (empty: no perturbation)."""
    factors = cfg["data"].get("speed_perturb", [])
    if not isinstance(factors, list):
        raise InvalidParameterError(f"[data] speed_perturb must be a list of speed factors, got {factors!r}")
    return factors


def perturbed(ds: DataDir, cfg: dict, keep_original: bool = False) -> DataDir:
    """``ds`` at the ``[data] speed_perturb`` speeds (:func:`gmmhmm.data.perturb_speed`), with its own
    utterances too if ``keep_original``; ``ds`` itself without perturbation."""
    factors = speed_factors(cfg)
    if not factors:
        return ds
    return perturb_speed(ds, sorted({*factors, 1.0}) if keep_original else factors)


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
def lm_sentences(ds: DataDir) -> list[list[str]]:
    """What the bigram (``[lm]`` order and smoothing) is estimated from: the transcripts of ``ds``."""
    return [ds.text[u] for u in ds.utterances]


def train_mono(cfg: dict, lexicon: Lexicon, ds: DataDir, feats: dict[str, np.ndarray],
               previous: PhoneModelSet | None) -> PhoneModelSet:
    """Monophones: flat start, embedded Baum-Welch and mix-up on the ``[training]`` schedule."""
    return train_monophones(cfg["training"], cfg["features"], lexicon, ds, feats)


def phone_classes_path(cfg: dict) -> Path:
    """``[tri1] phone_classes``, else ``cmudict/cmudict.phones`` beside the AN4 corpus."""
    path = cfg["tri1"].get("phone_classes")
    return Path(path) if path else an4_dir(cfg).parent / "cmudict" / "cmudict.phones"


def train_tri1(cfg: dict, lexicon: Lexicon, ds: DataDir, feats: dict[str, np.ndarray],
               previous: PhoneModelSet | None) -> PhoneModelSet:
    """Tied-state cross-word triphones from the monophones' alignments (Kaldi tri1, HTK HHEd TB)."""
    t, tcfg = cfg["tri1"], cfg["training"]
    utts = [u for u in ds.utterances if u in feats]
    model, history = train_triphones(
        previous, [feats[u] for u in utts], [ds.text[u] for u in utts],
        phone_classes=read_phone_classes(phone_classes_path(cfg)), min_occupancy=t["min_occupancy"],
        gain_threshold=t["gain_threshold"], max_leaves=t["max_leaves"], mixtures=t["mixtures"],
        n_iter=t["n_iter"], sil_prob=tcfg["sil_prob"], var_floor_frac=tcfg["var_floor_frac"])
    logger.info("tri1: %d tied states; log-lik/frame %s", model.n_pdfs, " ".join(f"{h:.3f}" for h in history))
    return model


def model_features(model: PhoneModelSet, cfg: dict, X: np.ndarray) -> np.ndarray:
    """A model's own features from the stored front-end features (MFCC + deltas, speaker CMVN):
    models with an LDA + MLLT transform take the spliced statics through it."""
    if model.feature_transform_ is None:
        return X
    return model.transform_features(static_features(X, FeatureConfig.from_dict(cfg["features"])))


def train_tri2(cfg: dict, lexicon: Lexicon, ds: DataDir, feats: dict[str, np.ndarray],
               previous: PhoneModelSet | None) -> PhoneModelSet:
    """LDA + MLLT on the tri1 tied states (Kaldi tri2b): LDA classes are tri1's pdfs, the models move
    into the LDA space by single-pass retraining, MLLT is re-estimated at the configured passes."""
    t, tcfg = cfg["tri2"], cfg["training"]
    utts = [u for u in ds.utterances if u in feats]
    trainer = EmbeddedTrainer(lexicon, n_states=tcfg["n_states"], sil_prob=tcfg["sil_prob"],
                              var_floor_frac=tcfg["var_floor_frac"], feature_config=cfg["features"])
    trainer.model = copy.deepcopy(previous)  # trained in place; the caller keeps the system it started from
    X = [feats[u] for u in utts]
    fc = FeatureConfig.from_dict(cfg["features"])
    history = train_lda_mllt(trainer, X, [static_features(x, fc) for x in X], [ds.text[u] for u in utts],
                             LdaMlltOptions(lda_dim=t["lda_dim"], splice=t["splice"], n_iter=t["n_iter"],
                                            mllt_iters=tuple(t["mllt_iters"])))
    logger.info("tri2: log-lik/frame %s", " ".join(f"{h:.3f}" for h in history))
    return trainer.model


def train_tri3(cfg: dict, lexicon: Lexicon, ds: DataDir, feats: dict[str, np.ndarray],
               previous: PhoneModelSet | None) -> PhoneModelSet:
    """Speaker-adaptive training on the tri2 models and features (Kaldi tri3b): a full fMLLR
    transform per training speaker, re-estimated at the configured passes, models re-estimated
    from the adapted features."""
    t, tcfg = cfg["tri3"], cfg["training"]
    utts = [u for u in ds.utterances if u in feats]
    trainer = EmbeddedTrainer(lexicon, n_states=tcfg["n_states"], sil_prob=tcfg["sil_prob"],
                              var_floor_frac=tcfg["var_floor_frac"], feature_config=cfg["features"])
    trainer.model = copy.deepcopy(previous)  # trained in place; the caller keeps the system it started from
    sat = train_sat(trainer, [model_features(previous, cfg, feats[u]) for u in utts], [ds.text[u] for u in utts],
                    [ds.utt2spk[u] for u in utts], n_iter=t["n_iter"], fmllr_iters=tuple(t["fmllr_iters"]),
                    silence_weight=t["silence_weight"])
    logger.info("tri3: %d speaker transforms; SAT log-lik/frame %s", len(sat.transforms),
                " ".join(f"{h:.3f}" for h in sat.history))
    return trainer.model


#: system -> the system whose models and dev-tuned settings give its first decoding pass, for
#: systems decoded with unsupervised per-speaker fMLLR (Kaldi's decode_fmllr.sh with the SI alimdl)
ADAPTED_FROM = {"tri3": "tri2"}


#: system name -> training function ``(cfg, lexicon, data, features, previous system's model) -> model``,
#: in chain order: each system starts from the one before it.
TRAINERS = {"mono": train_mono, "tri1": train_tri1, "tri2": train_tri2, "tri3": train_tri3}


def log_likelihoods(model: PhoneModelSet, cfg: dict, ds: DataDir, feats: dict[str, np.ndarray],
                    adapt: tuple | None = None) -> dict[str, np.ndarray]:
    """Per-state emission log-likelihoods of every utterance of ``ds`` that has features.

    ``adapt = (first-pass model, lexicon, LM, first-pass SearchOptions)``: the features go through
    each speaker's fMLLR transform, estimated from the first pass's hypotheses (unsupervised).
    """
    utts = [u for u in ds.utterances if u in feats]
    X = [model_features(model, cfg, feats[u]) for u in utts]
    if adapt is not None:
        si_model, lexicon, lm, si_options = adapt
        graph = decoding_graph(model, "lm", lexicon, lm, silence_prob=cfg["training"]["sil_prob"])
        speakers = [ds.utt2spk[u] for u in utts]
        out = decode_adapted(model, graph, dict(zip(utts, X)), dict(zip(utts, speakers)), si_options, lexicon,
                             si_model=si_model, update_type=cfg["tri3"]["fmllr_update_type"],
                             n_passes=cfg["tri3"]["n_passes"])
        X = apply_speaker_transforms(X, speakers, out.transforms)
    return dict(zip(utts, model.state_log_likelihood_many(X)))


def search_options(cfg: dict, lm_scale: float, word_insertion_penalty: float) -> SearchOptions:
    d = cfg["decoding"]
    return SearchOptions(beam=d["beam"], max_active=d["max_active"], lm_scale=lm_scale,
                         word_insertion_penalty=word_insertion_penalty, allow_partial=d["allow_partial"])


def decode(model: PhoneModelSet, lexicon: Lexicon, lm: NGramModel, ll: dict[str, np.ndarray],
           options: list[SearchOptions], cfg: dict) -> list[dict]:
    """1-best results ``{utt: DecodeResult or None}`` of every utterance, once per set of ``options``,
    through the graph of the LM, the lexicon and the models (:func:`gmmhmm.recipe.decode_grid`)."""
    graph = decoding_graph(model, "lm", lexicon, lm, silence_prob=cfg["training"]["sil_prob"])
    return decode_grid(graph, ll, options)


def score(ds: DataDir, results: dict) -> ErrorRates:
    utts = list(results)
    return error_rates([ds.text[u] for u in utts], [hyp_words(results[u]) for u in utts], utts)


def hyp_words(result) -> list[str]:
    return [] if result is None else result.words


def stage_tune(cfg: dict, system: str, model: PhoneModelSet, lexicon: Lexicon, lm: NGramModel, dev: DataDir,
               feats: dict[str, np.ndarray], out: Path, adapt: tuple | None = None) -> dict:
    """Grid search of (LM scale, word insertion penalty) on the dev speakers.

    The best has the fewest word errors, then the fewest sentence errors,
    then comes first in the grid. Writes ``tuning.txt`` and ``best.json``.
    """
    ll = log_likelihoods(model, cfg, dev, feats, adapt)
    utts = list(ll)
    grid = [(s, p) for s in cfg["tuning"]["lm_scales"] for p in cfg["tuning"]["word_insertion_penalties"]]
    results = decode(model, lexicon, lm, ll, [search_options(cfg, s, p) for s, p in grid], cfg)
    rates = [score(dev, res) for res in results]
    rows = [f"lm_scale {s:5.1f} wip {p:6.1f} " + kaldi_lines(er).replace("\n", " ") for (s, p), er in zip(grid, rates)]
    k = best_on_dev(rates)
    best = {"lm_scale": grid[k][0], "word_insertion_penalty": grid[k][1], "dev_wer": rates[k].error_rate,
            "dev_ser": rates[k].sentence_error_rate, "dev_speakers": dev.speakers, "n_dev_utterances": len(utts)}
    write_tuning(out / f"{system}_nodev" / "decode_dev", rows, best, tuning_key(cfg, system))
    print(f"{system} dev-tuned: lm_scale {best['lm_scale']:g}, word insertion penalty "
          f"{best['word_insertion_penalty']:g} (dev %WER {100 * best['dev_wer']:.2f} over {len(utts)} "
          f"utterances of {len(dev.speakers)} speakers)")
    return best


def stage_decode(cfg: dict, system: str, model: PhoneModelSet, lexicon: Lexicon, lm: NGramModel, test: DataDir,
                 feats: dict[str, np.ndarray], tuned: dict, out: Path, adapt: tuple | None = None) -> dict:
    """Decode the test speakers with the dev-tuned settings; score, CTM, RESULTS."""
    shift_s = cfg["features"]["shift_ms"] / 1000.0
    utts = [u for u in test.utterances if u in feats]
    audio_s = sum(sf.info(test.wav[u]).duration for u in utts)
    opt = search_options(cfg, tuned["lm_scale"], tuned["word_insertion_penalty"])
    # compiled kernels load from numba's cache (or compile) on first use: warm them up untimed
    t0 = time.perf_counter()
    decode(model, lexicon, lm, log_likelihoods(model, cfg, test.subset(utts[:1]), feats, adapt), [opt], cfg)
    warmup_s = time.perf_counter() - t0
    t0, cpu0 = time.perf_counter(), time.process_time()
    ll = log_likelihoods(model, cfg, test, feats, adapt)
    t1 = time.perf_counter()
    decoded = decode(model, lexicon, lm, ll, [opt], cfg)[0]
    t2, cpu_s = time.perf_counter(), time.process_time() - cpu0
    # an utterance whose audio failed in stage 1 is scored as all deleted, never left out
    results = {u: decoded.get(u) for u in test.utterances}
    er = score(test, results)
    d = out / system / "decode_test"
    d.mkdir(parents=True, exist_ok=True)
    atomic_write_text(d / "hyp.txt", "".join(f"{u} {' '.join(hyp_words(r))}\n" for u, r in results.items()))
    atomic_write_text(d / "ctm", "".join(to_ctm(u, r, shift_s) for u, r in results.items() if r is not None))
    lines = kaldi_lines(er)
    atomic_write_text(d / "wer.txt", lines + "\n" + er.format("WER") + "\n")
    vtln = " vtln" if cfg.get("vtln", {}).get("enabled", False) else ""
    vtln += f" speed={','.join(f'{f:g}' for f in speed_factors(cfg))}" if speed_factors(cfg) else ""
    settings = (f"{system}{vtln} {model.n_pdfs} pdfs {model.n_mix}g bigram lm_scale={tuned['lm_scale']:g} "
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
    ap = argument_parser(__doc__.splitlines()[0], REPO / "configs" / "an4.toml")
    ap.add_argument("--list-stages", action="store_true", help="print the stage numbers and names, then exit")
    args = ap.parse_args(argv)
    if args.list_stages:
        names = stages(apply_overrides(load_config(args.config), args.set))
        print("\n".join(f"{i} {n}" for i, n in enumerate(names)))
        return {"stages": names}
    cfg, out = setup(args, REPO, stages)
    names = stages(cfg)
    stop = len(names) - 1 if args.stop_stage is None else args.stop_stage
    timings: dict[str, float] = {}
    report: dict = {"timings_s": timings, "tuned": {}, "test": {}}

    def run(name: str, fn):
        i = names.index(name)
        if not args.stage <= i <= stop:
            return None
        print(f"stage {i}: {name}", flush=True)
        t0 = time.perf_counter()
        result = fn()
        timings[name] = time.perf_counter() - t0
        return result

    run("data", lambda: prepare(an4_dir(cfg), out / "data"))
    lexicon = Lexicon.read(out / "data" / "lexicon.txt")
    train, test = data_sets(cfg, out)
    train_nodev, dev = dev_split(train, cfg)
    lm_dir = out / "lm"
    # the training utterances models are trained on: perturbed copies (of the dev split's speakers
    # for the dev models); the features stage also needs the originals (dev decoding, VTLN's GMM)
    fit = {"": perturbed(train, cfg), "_nodev": perturbed(train_nodev, cfg)}
    run("features", lambda: stage_features(cfg["features"], cfg["data"]["n_jobs"], out,
                                           {"train": perturbed(train, cfg, keep_original=True), "test": test},
                                           by_speaker=True,
                                           vtln=cfg.get("vtln"), vtln_model_speakers=train_nodev.speakers))
    run("lm", lambda: (save_stage_lm(lm_dir / "bigram_nodev.arpa", lm_sentences(train_nodev), cfg["lm"]),
                       save_stage_lm(lm_dir / "bigram.arpa", lm_sentences(train), cfg["lm"])))

    def model(system: str, suffix: str) -> PhoneModelSet:
        """A trained system, checked to come from this config (else its training stage is named)."""
        return load_stage_model(out / f"{system}{suffix}" / "model.npz", model_key(cfg, system, suffix),
                                f"{system}-{'train-dev' if suffix else 'train'}")

    def train_stage(system: str, previous: str | None, ds: DataDir, suffix: str, speakers: str) -> None:
        prev_model = model(previous, suffix) if previous else None
        trained = TRAINERS[system](cfg, lexicon, ds, read_features(out, "train", ds, cfg, train_nodev.speakers), prev_model)
        save_stage_model(out / f"{system}{suffix}" / "model.npz", trained, model_key(cfg, system, suffix),
                         {"speakers": speakers, "n_speakers": len(ds.speakers), "system": system})

    chain = systems(cfg)

    def tuned_settings(system: str) -> dict:
        return read_tuning(out / f"{system}_nodev" / "decode_dev", tuning_key(cfg, system), f"{system}-tune")

    def adaptation(system: str, suffix: str, lm: NGramModel) -> tuple | None:
        """First-pass model, lexicon, LM and dev-tuned options of a system decoded with fMLLR."""
        si = ADAPTED_FROM.get(system)
        if si is None:
            return None
        t = tuned_settings(si)
        return (model(si, suffix), lexicon, lm,
                search_options(cfg, t["lm_scale"], t["word_insertion_penalty"]))

    for k, system in enumerate(chain):
        previous = chain[k - 1] if k else None
        run(f"{system}-train-dev", lambda: train_stage(system, previous, fit["_nodev"], "_nodev", "train minus dev"))
        # read only by the stages run; refused if made for other [lm] settings or transcripts
        lm_dev = lambda: load_stage_lm(lm_dir / "bigram_nodev.arpa", lm_sentences(train_nodev), cfg["lm"])  # noqa: E731
        lm_test = lambda: load_stage_lm(lm_dir / "bigram.arpa", lm_sentences(train), cfg["lm"])  # noqa: E731
        tuned = run(f"{system}-tune", lambda: stage_tune(
            cfg, system, model(system, "_nodev"), lexicon, lm_dev(), dev,
            read_features(out, "train", dev, cfg, train_nodev.speakers), out, adaptation(system, "_nodev", lm_dev())))
        run(f"{system}-train", lambda: train_stage(system, previous, fit[""], "", "train"))
        tested = run(f"{system}-decode", lambda: stage_decode(
            cfg, system, model(system, ""), lexicon, lm_test(), test,
            read_features(out, "test", test, cfg, train_nodev.speakers), tuned_settings(system), out, adaptation(system, "", lm_test())))
        if tuned is not None:
            report["tuned"][system] = tuned
        if tested is not None:
            report["test"][system] = tested
    report["peak_memory_mb"] = peak_memory_mb()
    print("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
          + f"; peak memory {report['peak_memory_mb']:.0f} MB")
    if args.report is not None:
        atomic_write_text(args.report, json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    run(main, "an4")
