#!/usr/bin/env python
"""FSDD leave-one-speaker-out with phone models trained on FSDD plus AN4.

Digit models that generalise to new speakers (issue 11, stage 4): instead of
one whole-word HMM per digit trained on five FSDD speakers, each fold trains
the AN4 recipe's chain of systems (``recipes/an4.py``: monophones, tied-state
triphones, LDA + MLLT, speaker-adaptive training) on the five other FSDD
speakers *and* AN4's 74 training speakers, both at FSDD's 8 kHz (AN4 is
resampled), and recognises the held-out speaker's digits with a one-word
grammar over the ten digit words. The pronunciations are AN4's dictionary
(``etc/an4.dic``), checked to contain every pronunciation of gmmhmm's own
``digits.lex``.

Stages (``--stage N`` / ``--stop-stage N`` as in ``recipes/an4.py``):

0. data         AN4 Kaldi data dirs ``data/{train,test}`` and ``data/lexicon.txt``.
1. features     8 kHz MFCC + deltas of FSDD and AN4, without CMVN: ``feats/*.npz``
                (kept and reused while the ``[features]`` config is unchanged).
                CMVN is applied in memory per speaker, from that speaker's own
                audio (no labels), so a held-out speaker is normalised as a new
                user would be; with ``[cmvn] frames = "speech"`` from its speech
                frames only (energy VAD), so silence does not bias it. With
                ``[vtln] enabled`` every speaker's audio is analysed at its own
                VTLN warp (``feats/vtln_warps.json``: :func:`speaker_warps`), chosen
                from that audio alone under a GMM of AN4 training speakers minus
                the dev speakers, so one set of warps serves every fold.
2. dev          every system trained on AN4 training speakers minus ``[dev]``
                speakers plus FSDD (``dev/<system>.model.npz``); the ``[dev]``
                speakers' digit strings decoded with a digit loop over the
                ``[tuning]`` insertion penalties, then by each decoding system
                (each dev speaker adapted from its own digit strings) and the
                ``[tuning]`` MAP passes; the choices go to ``dev/best.json``. No
                test speaker of either corpus is read.
3. fold-train   per FSDD speaker, every system trained without it
                (``folds/<speaker>/<system>.model.npz``, read back by a later run
                while its data and settings are unchanged, else trained again).
4. fold-decode  per FSDD speaker, its 500 takes decoded with a one-word grammar
                over the ten digits and, as a cross-corpus check, AN4's test
                speakers' digit strings with a digit loop (dev-tuned penalty),
                once per decoding system (:func:`systems`): the speaker
                independent ones, ``<system>+fmllr`` (``[fmllr]``: unsupervised
                fMLLR per test speaker, Kaldi's decode_fmllr; a SAT system's
                first pass by the system before it) and ``<system>+fmllr+map``
                (``[map]``: then MAP means from the adapted hypotheses).
                Adaptation reads only the test speaker's own audio, never its
                labels. Results go to ``folds/<speaker>.json``; a later run with
                the same settings and models reads them back (``--held-out
                SPEAKER`` runs some folds, e.g. several processes in parallel).
5. nested       the best stage, chosen per fold by leave-one-speaker-out inside
                its training speakers: for every pair of FSDD speakers the
                chain is trained without both (``nested/<a>+<b>/``) and each is
                decoded by every system (``nested/<a>+<b>.json``); fold f takes
                the system most accurate on the other speakers' takes
                (:func:`nested_choice`). ``--pair A+B`` runs some pairs. With a
                ``[nested]`` grid, each MAP system is replaced by one candidate
                per (tau, passes) (:func:`candidates`), chosen jointly with the
                system; only the chosen candidate then decodes the held-out
                speaker (with stage 3's models).

Prints Kaldi-style lines (``%ACC`` per held-out speaker and their mean,
``%WER``/``%SER`` of the AN4 digit strings) per system and, when every fold
was decoded, appends them to ``<out>/RESULTS``; ``report.json`` has everything.

Usage::

    python recipes/fsdd_loso.py [--config configs/fsdd_loso.toml] [--stage N] [--stop-stage N]
        [--out DIR] [--set SECTION.KEY=VALUE ...] [--held-out SPEAKER ...] [-v]

On two cores, two processes finish stages 0-4 in about an hour (one process: about twice
that), and stage 5's 15 pairs in about two more hours::

    python recipes/fsdd_loso.py --stop-stage 1
    python recipes/fsdd_loso.py --stage 2 --stop-stage 3 --held-out george --held-out jackson --held-out lucas &
    python recipes/fsdd_loso.py --stage 3 --stop-stage 3 --held-out nicolas --held-out theo --held-out yweweler &
    wait; python recipes/fsdd_loso.py --stage 4 --stop-stage 4   # decodes every fold, writes RESULTS
    python recipes/fsdd_loso.py --stage 5 --pair george+jackson ... &   # two halves of the 15 pairs
    python recipes/fsdd_loso.py --stage 5 --pair lucas+theo ... &
    wait; python recipes/fsdd_loso.py --stage 5   # the nested choice per fold, appended to RESULTS
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path

# Parallelism comes from processes; a multi-threaded BLAS only adds synchronisation.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

import numpy as np  # noqa: E402

from data_scripts.prepare_an4 import prepare  # noqa: E402
from gmmhmm import load, save  # noqa: E402
from gmmhmm.adapt import apply_speaker_transforms, map_adapt, speaker_fmllr_stats, transcript_graph  # noqa: E402
from gmmhmm.data import DIGIT_WORDS, DataDir, Lexicon, PerturbedAudio  # noqa: E402
from gmmhmm.data.datadir import check_speed_factors, speed_prefix  # noqa: E402
from gmmhmm.datasets import Utterance, list_fsdd  # noqa: E402
from gmmhmm.decoding import decode_adapted, decoding_graph  # noqa: E402
from gmmhmm.errors import InvalidParameterError, TranscriptError  # noqa: E402
from gmmhmm.features import (FeatureConfig, apply_cmvn, compute_cmvn_stats, energy_vad, extract_many,  # noqa: E402
                             frame_log_energy_db)
from gmmhmm.features.store import load_features, save_features  # noqa: E402
from gmmhmm.graphs import PhoneModelSet  # noqa: E402
from gmmhmm.modelfile import atomic_write_text  # noqa: E402
from gmmhmm.recipe import (Stages, argument_parser, best_on_dev, chain_settings, decode_grid, kaldi_lines,  # noqa: E402
                           run, setup, vtln_warps)
from gmmhmm.recipe import apply_overrides, load_config  # noqa: E402, F401  (tests call them through this module)
from gmmhmm.scoring import ErrorRates, error_rates  # noqa: E402
from gmmhmm.search import SearchOptions  # noqa: E402
from recipes.an4 import ADAPTED_FROM, TRAINERS, an4_dir, model_features  # noqa: E402
from recipes.an4 import systems as an4_systems  # noqa: E402

logger = logging.getLogger("fsdd_loso")

STAGES = ("data", "features", "dev", "fold-train", "fold-decode", "nested")
#: Words of the FSDD labels '0'..'9' in AN4's dictionary (upper case).
FSDD_WORDS = {str(d): w.upper() for d, w in enumerate(DIGIT_WORDS)}
#: Digit-string vocabulary of AN4 (which also says "oh" for zero).
AN4_DIGITS = tuple(FSDD_WORDS.values()) + ("OH",)


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------
def check_pronunciations(lexicon: Lexicon) -> None:
    """Every pronunciation of ``digits.lex`` must be one of ``lexicon``'s for that digit.

    FSDD is transcribed through the AN4 dictionary, so this keeps both
    corpora on the same pronunciations of every digit.

    Raises
    ------
    TranscriptError
        A digit is missing or pronounced differently.
    """
    digits = Lexicon.digits()
    lexicon.check_words(FSDD_WORDS.values(), source="AN4 dictionary")
    for word in digits.words:
        ours = {p for p, _ in digits.prons(word)}
        theirs = {p for p, _ in lexicon.prons(word.upper())}
        if not ours <= theirs:
            raise TranscriptError(f"digit {word!r}: digits.lex has {sorted(ours)}, the AN4 dictionary "
                                  f"{sorted(theirs)}; the corpora must share pronunciations")


def speakers_of(ds: DataDir, chosen: list[str], name: str) -> DataDir:
    """``ds`` restricted to ``chosen`` speakers (all if empty)."""
    unknown = sorted(set(chosen) - set(ds.speakers))
    if unknown:
        raise InvalidParameterError(f"[data] {name}: {unknown} are not speakers of that set")
    spk2utt = ds.spk2utt
    return ds.subset(u for s in (chosen or ds.speakers) for u in spk2utt[s])


def speed_factors(cfg: dict) -> list[float]:
    """``[data] speed_perturb`` but 1.0 (the originals are always there): the training copies' speeds."""
    factors = cfg["data"].get("speed_perturb", [])
    return [f for f in check_speed_factors(factors) if f != 1.0] if factors else []


def fsdd_utterances(cfg: dict) -> list[Utterance]:
    utts = list_fsdd(cfg["data"]["fsdd_dir"] or None)
    chosen = cfg["data"]["fsdd_speakers"]
    unknown = sorted(set(chosen) - {u.speaker for u in utts})
    if unknown:
        raise InvalidParameterError(f"[data] fsdd_speakers: {unknown} are not FSDD speakers")
    return [u for u in utts if not chosen or u.speaker in chosen]


# ---------------------------------------------------------------------------
# Features: extracted once without CMVN, normalised per speaker in memory
# ---------------------------------------------------------------------------
def raw_config(cfg: dict) -> FeatureConfig:
    return FeatureConfig.from_dict(cfg["features"]).replace(cmvn="none")


def audio_name(item: str | PerturbedAudio) -> str:
    """The key :func:`gmmhmm.features.extract_many` gives an audio item's features: its path or name."""
    return item if isinstance(item, str) else item.name


def extract(audio: dict[str, str | PerturbedAudio], fc: FeatureConfig, n_jobs: int,
            warps: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """Features by utterance id of ``audio`` (id -> file or speed-perturbed file), each at its
    ``warps`` VTLN factor (default: ``fc``'s)."""
    names = {u: audio_name(a) for u, a in audio.items()}
    by_name, failures = extract_many(list(audio.values()), fc, n_jobs=n_jobs,
                                     vtln_warps={names[u]: w for u, w in (warps or {}).items() if u in audio})
    for p, msg in failures:
        logger.warning("%s left out: %s", p, msg)
    return {u: by_name[n] for u, n in names.items() if n in by_name}


def cached_features(path: Path, audio: dict[str, str | PerturbedAudio], fc: FeatureConfig, n_jobs: int,
                    warps: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """:func:`extract`, read from ``path`` when it has them all with the same settings."""
    meta_want = {"feature_config": fc.to_dict(), "vtln_warps": {u: warps[u] for u in sorted(audio)} if warps else None}
    if path.is_file():
        feats, meta = load_features(path)
        if (all(meta.get(k) == v for k, v in meta_want.items())
                and set(audio) <= set(feats) | set(meta.get("failed", []))):
            return {u: feats[u] for u in audio if u in feats}
    feats = extract(audio, fc, n_jobs, warps)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_features(path, feats, {**meta_want, "failed": sorted(set(audio) - set(feats))})
    return feats


def speaker_warps(cfg: dict, out: Path, audio: dict[str, str | PerturbedAudio], utt2spk: dict[str, str],
                  model_speakers: set[str]) -> dict[str, float]:
    """Every speaker's VTLN warp (``[vtln]``), kept in ``feats/vtln_warps.json``.

    :func:`gmmhmm.adapt.train_vtln`: a diagonal GMM of ``model_speakers``' speech (the AN4 training
    speakers but the dev ones: no FSDD speaker, no dev speaker) is trained with VTLN, then every
    speaker's warp is the factor under which that GMM scores the speaker's own speaker-normalised
    audio highest. No labels are read, so training, dev and held-out speakers are warped alike and
    one set of warps serves the dev stage and every fold.
    """
    vcfg, fc, n_jobs = cfg["vtln"], raw_config(cfg), cfg["data"]["n_jobs"]
    path = out / "feats" / "vtln_warps.json"
    key = hashlib.sha256(json.dumps([fc.to_dict(), vcfg, cfg["cmvn"], sorted(model_speakers),
                                     sorted(utt2spk.items()), sorted((u, audio_name(a)) for u, a in audio.items())],
                                    sort_keys=True).encode()
                         ).hexdigest()
    if path.is_file():
        found = json.loads(path.read_text())
        if found.get("key") == key:
            return found["warps"]
    return vtln_warps(lambda warp: speaker_normalised(extract(audio, fc.replace(vtln_warp=warp), n_jobs), utt2spk, cfg),
                      utt2spk, [u for u in audio if utt2spk[u] in model_speakers], vcfg, path, extra={"key": key})


def speaker_normalised(feats: dict[str, np.ndarray], utt2spk: dict[str, str], cfg: dict) -> dict[str, np.ndarray]:
    """Per-speaker CMVN, each speaker's statistics from all its utterances in ``feats``.

    With ``[cmvn] frames = "speech"`` only frames within ``vad_margin_db`` of
    their utterance's loudest frame count (:func:`gmmhmm.features.energy_vad`),
    so leading and trailing silence, whose length differs by corpus and
    speaker, does not shift the mean nor widen the variance.
    """
    spk = {u: utt2spk[u] for u in feats}
    ccfg = cfg["cmvn"]
    if ccfg["frames"] not in ("all", "speech"):
        raise InvalidParameterError(f"[cmvn] frames must be 'all' or 'speech', got {ccfg['frames']!r}")
    frames = None
    if ccfg["frames"] == "speech":
        fc = raw_config(cfg)
        frames = {u: energy_vad(frame_log_energy_db(x, fc), ccfg["vad_margin_db"]) for u, x in feats.items()}
    stats = compute_cmvn_stats(feats, spk, frames=frames)
    return apply_cmvn(feats, stats, spk, variance=cfg["features"].get("cmvn_variance", True))


class Corpora:
    """Both corpora's speaker-normalised features and transcripts, by utterance id."""

    def __init__(self, cfg: dict, out: Path) -> None:
        fc, n_jobs = raw_config(cfg), cfg["data"]["n_jobs"]
        if cfg["features"].get("cmvn", "speaker") != "speaker":
            raise InvalidParameterError("[features] cmvn must be 'speaker' (statistics from each speaker's own audio)")
        self.fsdd = fsdd_utterances(cfg)
        self.text = {u.utt_id: [FSDD_WORDS[u.digit]] for u in self.fsdd}
        self.utt2spk: dict[str, str] = {u.utt_id: u.speaker for u in self.fsdd}
        audio = {"fsdd": {u.utt_id: str(u.path) for u in self.fsdd}}
        self.an4: dict[str, DataDir] = {}
        for name in ("train", "test"):
            ds = speakers_of(DataDir.read(out / "data" / name), cfg["data"][f"an4_{name}_speakers"], f"an4_{name}_speakers")
            audio[f"an4_{name}"] = {u: ds.source(u) for u in ds.utterances}
            self.text.update(ds.text)
            self.utt2spk.update(ds.utt2spk)
            self.an4[name] = ds
        # Kaldi's speed perturbation of the training speakers: copies sp<f>-<utt>, each copy of a
        # speaker a new speaker (own CMVN and VTLN warp); held-out and test audio is never trained on
        self.copies: dict[str, list[str]] = {}
        for f in speed_factors(cfg):
            for name in ("fsdd", "an4_train"):
                copies = {speed_prefix(f) + u: PerturbedAudio(p, f) for u, p in audio[name].items()}
                audio[f"{name}_{speed_prefix(f)[:-1]}"] = copies
                for c, u in zip(copies, audio[name]):
                    self.copies.setdefault(u, []).append(c)
                    self.text[c] = self.text[u]
                    self.utt2spk[c] = speed_prefix(f) + self.utt2spk[u]
        self.warps: dict[str, float] = {}
        vtln = cfg.get("vtln", {}).get("enabled", False)
        if vtln:
            model_speakers = set(self.an4["train"].speakers) - set(cfg["dev"]["speakers"])
            self.warps = speaker_warps(cfg, out, {u: p for a in audio.values() for u, p in a.items()},
                                       self.utt2spk, model_speakers)
        self.feats: dict[str, np.ndarray] = {}
        for name, paths in audio.items():
            warps = {u: self.warps[self.utt2spk[u]] for u in paths} if vtln else None
            raw = cached_features(out / "feats" / f"{name}{'.vtln' if vtln else ''}.npz", paths, fc, n_jobs, warps)
            self.feats.update(speaker_normalised(raw, self.utt2spk, cfg))

    def with_copies(self, utts: list[str]) -> list[str]:
        """``utts`` and their speed-perturbed copies (``[data] speed_perturb``), as training data."""
        return utts + [c for u in utts for c in self.copies.get(u, []) if c in self.feats]

    def fsdd_ids(self, exclude: tuple[str, ...] = (), only: str | None = None) -> list[str]:
        return [u.utt_id for u in self.fsdd if u.utt_id in self.feats
                and u.speaker not in exclude and (only is None or u.speaker == only)]

    def an4_ids(self, name: str, speakers: set[str] | None = None, digits_only: bool = False) -> list[str]:
        ds = self.an4[name]
        return [u for u in ds.utterances if u in self.feats
                and (speakers is None or ds.utt2spk[u] in speakers)
                and (not digits_only or set(ds.text[u]) <= set(AN4_DIGITS))]


# ---------------------------------------------------------------------------
# Training and decoding
# ---------------------------------------------------------------------------
def train(cfg: dict, lexicon: Lexicon, data: Corpora, utts: list[str], system: str,
          previous: PhoneModelSet | None) -> PhoneModelSet:
    """``system`` of the AN4 recipe's chain (``recipes/an4.py``: monophones, triphones, LDA+MLLT,
    SAT) trained on ``utts`` of both corpora, starting from ``previous`` (the system before it)."""
    ds = DataDir(wav={u: "" for u in utts}, text={u: data.text[u] for u in utts},
                 utt2spk={u: data.utt2spk[u] for u in utts})
    return TRAINERS[system](cfg, lexicon, ds, data.feats, previous)


def train_all(cfg: dict, lexicon: Lexicon, data: Corpora, utts: list[str], folder: Path) -> tuple[dict, dict]:
    """Every system of ``[systems] run`` trained on ``utts``, each kept as ``folder/<system>.model.npz``
    and read back from there by a later run if its :func:`training_key` is the same (else trained
    again). Returns ``({system: model}, {system: {"train_seconds", "training_key"}})``."""
    models: dict[str, PhoneModelSet] = {}
    info: dict[str, dict] = {}
    previous = None
    folder.mkdir(parents=True, exist_ok=True)
    for system in an4_systems(cfg):
        path = folder / f"{system}.model.npz"
        key = training_key(cfg, system, utts)
        model, meta = load(path, with_metadata=True) if path.is_file() else (None, {})
        if meta.get("training_key") != key:
            if model is not None:
                logger.warning("%s: trained with other settings or data; training it again", path)
            t0 = time.perf_counter()
            model = train(cfg, lexicon, data, utts, system, previous)
            meta = {"system": system, "n_train": len(utts), "train_seconds": time.perf_counter() - t0,
                    "training_key": key}
            save(model, path, metadata=meta)
            logger.info("%s: %s trained in %.0f s", folder.name, system, meta["train_seconds"])
        models[system], previous = model, model
        info[system] = {"train_seconds": meta["train_seconds"], "training_key": key}
    return models, info


def training_key(cfg: dict, system: str, utts: list[str]) -> str:
    """What a system's models depend on: the training utterances and the settings of the front end
    and of every system up to ``system``. A model file read back must carry the same key."""
    chain, settings = chain_settings(cfg, an4_systems(cfg), system, ("features", "cmvn", "training"),
                                     first_in_shared=True)
    if cfg.get("vtln", {}).get("enabled", False):  # (a key without it reads models trained before VTLN existed)
        settings["vtln"] = cfg["vtln"]
    settings |= {"chain": chain, "corpora": [cfg["data"]["fsdd_dir"], cfg["data"]["an4_dir"]]}
    blob = json.dumps([settings, sorted(utts)], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def options(cfg: dict, word_insertion_penalty: float = 0.0) -> SearchOptions:
    d = cfg["decoding"]
    return SearchOptions(beam=d["beam"], max_active=d["max_active"], word_insertion_penalty=word_insertion_penalty,
                         allow_partial=d.get("allow_partial", False))


def systems(cfg: dict, tuned: dict) -> dict[str, dict]:
    """Decoding systems by name, least to most adapted; the last is the most adapted.

    Each is ``{"model": trained system, "adapt": None or fMLLR settings}``: every trained system
    but SAT ones speaker independent, then for each ``[fmllr] systems`` entry unsupervised fMLLR
    (a SAT system's first pass by the system before it, Kaldi's decode_fmllr.sh with the SI
    alimdl) and, with ``[map] enabled``, MAP means after it (``tuned["map_n_iter"][name]`` passes,
    chosen on dev).
    """
    fcfg, mcfg = dict(cfg.get("fmllr", {})), dict(cfg.get("map", {}))
    trained = an4_systems(cfg)
    adapted = fcfg.pop("systems", trained[:1])
    unknown = sorted(set(adapted) - set(trained))
    if unknown:
        raise InvalidParameterError(f"[fmllr] systems: {unknown} are not trained ([systems] run = {trained})")
    enabled = fcfg.pop("enabled", False)
    missing = [s for s in trained if s in ADAPTED_FROM and (not enabled or s not in adapted)]
    if missing:
        raise InvalidParameterError(f"{missing}: speaker-adaptive systems decode only with fMLLR; "
                                    "add them to [fmllr] systems")
    out: dict[str, dict] = {s: {"model": s, "adapt": None} for s in trained if s not in ADAPTED_FROM}
    if enabled:
        for s in trained:
            if s not in adapted:
                continue
            first = ADAPTED_FROM.get(s)
            out[f"{s}+fmllr"] = {"model": s, "adapt": {**fcfg, "si": first}}
            if mcfg.get("enabled", False):
                name = f"{s}+fmllr+map"
                out[name] = {"model": s, "adapt": {**fcfg, "si": first, "map_tau": mcfg["tau"],
                                                   "map_n_iter": tuned.get("map_n_iter", {}).get(name)}}
    return out


#: fMLLR decodings of the latest models (under "models"), reused by the MAP systems that follow, and
#: under (fMLLR key, tau) the results after each MAP pass, which a candidate with more passes extends.
_FMLLR_PASSES: dict = {}


def recognise(cfg: dict, models: dict[str, PhoneModelSet], system: dict, lexicon: Lexicon, data: Corpora,
              utts: list[str], grammar: str, words: tuple[str, ...], opts: list[SearchOptions],
              utt2spk: dict[str, str]) -> list[list[list[str]]]:
    """Word sequences (silence left out) of ``utts`` by ``system`` (of :func:`systems`), once per
    element of ``opts``.

    With adaptation, each ``utt2spk`` speaker is adapted without supervision, from the hypotheses
    of its own utterances: fMLLR (:func:`gmmhmm.decoding.decode_adapted`), then, with
    ``map_tau``, MAP means (:func:`gmmhmm.adapt.map_adapt`) from the fMLLR pass's hypotheses.
    """
    model, adapt = models[system["model"]], system["adapt"]
    sil_prob = cfg["training"]["sil_prob"]
    graph = decoding_graph(model, grammar, lexicon, words=words, silence_prob=sil_prob)
    feats = {u: model_features(model, cfg, data.feats[u]) for u in utts}
    if adapt is None:  # decode_grid: an utterance without a path gets None (no words) and a warning
        grid = decode_grid(graph, dict(zip(utts, model.state_log_likelihood_many(list(feats.values())))), opts)
    out = []
    for k, o in enumerate(opts):
        if adapt is None:
            results = grid[k]
        else:
            fmllr = {k: v for k, v in adapt.items() if k not in ("map_tau", "map_n_iter", "si")}
            key = (system["model"], tuple(utts), grammar, words, o, repr(sorted(fmllr.items())))
            if _FMLLR_PASSES.get("models") is not models:  # the MAP system starts from the fMLLR system's pass
                _FMLLR_PASSES.clear()
                _FMLLR_PASSES["models"] = models
            if key not in _FMLLR_PASSES:
                si = models[adapt["si"]] if adapt["si"] else None
                _FMLLR_PASSES[key] = decode_adapted(model, graph, feats, utt2spk, o, lexicon, sil_prob=sil_prob,
                                                    si_model=si, **fmllr)
            decoded = _FMLLR_PASSES[key]
            results = decoded.adapted
            if "map_tau" in adapt:  # passes of one tau extend each other: pass n starts from pass n - 1
                passes = _FMLLR_PASSES.setdefault((key, adapt["map_tau"]), [])
                map_passes(model, graph, lexicon, feats, utt2spk, decoded, o, sil_prob, adapt["map_tau"],
                           adapt["map_n_iter"], passes)
                results = passes[adapt["map_n_iter"] - 1] if adapt["map_n_iter"] else results
        out.append([[w for w in results[u].words if w != lexicon.silence] if results.get(u) else [] for u in utts])
    return out


def map_passes(model: PhoneModelSet, graph, lexicon: Lexicon, feats: dict[str, np.ndarray],
               utt2spk: dict[str, str], decoded, opts: SearchOptions, sil_prob: float, tau: float, n_iter: int,
               passes: list[dict]) -> list[dict]:
    """Extend ``passes`` (the results after MAP pass 1, 2, ...) to ``n_iter`` passes and return it.

    Each pass, per speaker: MAP means (prior: ``model``) from the latest hypotheses on the fMLLR
    features, then decode again. Speakers are independent, so pass n of every speaker follows
    pass n - 1 of every speaker; a speaker without a hypothesis keeps its results.
    """
    by_spk: dict[str, list[str]] = {}
    for u in feats:
        by_spk.setdefault(utt2spk.get(u, u), []).append(u)
    Xa = {spk: apply_speaker_transforms([feats[u] for u in utts], [spk] * len(utts), decoded.transforms)
          for spk, utts in by_spk.items()} if len(passes) < n_iter else {}
    while len(passes) < n_iter:
        results = dict(passes[-1] if passes else decoded.adapted)
        for spk, utts in by_spk.items():
            hyp = [k for k, u in enumerate(utts) if results.get(u) and results[u].words]
            graphs = [transcript_graph(model, results[utts[k]].words, lexicon, sil_prob) for k in hyp]
            # statistics of the transformed features: identity transform on Xa
            stats = speaker_fmllr_stats(model, [Xa[spk][k] for k in hyp], graphs, [spk] * len(hyp), gaussian=True)
            if spk not in stats:
                continue
            adapted = map_adapt(model, stats[spk], tau=tau)
            results.update(decode_grid(graph, dict(zip(utts, adapted.state_log_likelihood_many(Xa[spk]))), [opts])[0])
        passes.append(results)
    return passes


def digit_string_errors(cfg: dict, models: dict, system: dict, lexicon: Lexicon, data: Corpora, utts: list[str],
                        penalties: list[float]) -> list[ErrorRates]:
    """Digit-loop %WER of AN4 digit strings by ``system``, per insertion penalty (adapted per AN4 speaker)."""
    hyps = recognise(cfg, models, system, lexicon, data, utts, "word-loop", AN4_DIGITS,
                     [options(cfg, p) for p in penalties], data.utt2spk)
    return [error_rates([data.text[u] for u in utts], h, utts) for h in hyps]


def stage_dev(cfg: dict, lexicon: Lexicon, data: Corpora, out: Path) -> dict:
    """Train every system without the dev speakers; on their digit strings pick the digit-loop
    insertion penalty (with the first system) and each MAP system's passes, and write every
    system's dev %WER."""
    dev = set(cfg["dev"]["speakers"])
    train_spk = set(data.an4["train"].speakers)
    if not dev or not dev < train_spk:
        raise InvalidParameterError("[dev] speakers must be some, not all, of the AN4 training speakers")
    utts = data.with_copies(data.an4_ids("train", train_spk - dev) + data.fsdd_ids())
    models, _ = train_all(cfg, lexicon, data, utts, out / "dev")
    dev_utts = data.an4_ids("train", dev, digits_only=True)
    penalties = cfg["tuning"]["word_insertion_penalties"]
    first = an4_systems(cfg)[0]
    ers = digit_string_errors(cfg, models, {"model": first, "adapt": None}, lexicon, data, dev_utts, penalties)
    best = best_on_dev(ers)
    rows = [f"{first} wip {p:6.1f} " + kaldi_lines(er).replace("\n", " ") for p, er in zip(penalties, ers)]
    tuned = {"word_insertion_penalty": penalties[best], "dev_wer": ers[best].error_rate,
             "dev_speakers": sorted(dev), "n_dev_utterances": len(dev_utts), "n_train_utterances": len(utts)}
    print("\n".join(rows))
    print(f"dev-tuned digit-loop insertion penalty {penalties[best]:g} (dev %WER {100 * ers[best].error_rate:.2f}, "
          f"{len(dev_utts)} digit strings of {len(dev)} AN4 training speakers)")
    tuned.update(dev_systems(cfg, models, lexicon, data, dev_utts, penalties[best], rows))
    atomic_write_text(out / "dev" / "tuning.txt", "\n".join(rows) + "\n")
    atomic_write_text(out / "dev" / "best.json", json.dumps(tuned, indent=1))
    return tuned


def dev_systems(cfg: dict, models: dict, lexicon: Lexicon, data: Corpora, dev_utts: list[str],
                penalty: float, rows: list[str]) -> dict:
    """Each system's dev %WER, every ``[tuning] map_n_iters`` for a MAP system; the fewest errors
    picks its MAP passes (a tie: more passes, the more adapted setting). Adds lines to ``rows``."""
    found: dict = {"dev_systems": {}, "map_n_iter": {}}
    for name, system in systems(cfg, {}).items():
        adapt = system["adapt"]
        grid = cfg["tuning"]["map_n_iters"] if adapt and "map_tau" in adapt else [None]
        ers = {}
        for n in grid:
            setting = system if n is None else {**system, "adapt": {**adapt, "map_n_iter": n}}
            (ers[n],) = digit_string_errors(cfg, models, setting, lexicon, data, dev_utts, [penalty])
            label = name if n is None else f"{name} map_n_iter={n}"
            found["dev_systems"][label] = ers[n].error_rate
            rows.append(f"{label:30s} " + kaldi_lines(ers[n]).replace("\n", " "))
            print(rows[-1], flush=True)
        if grid != [None]:
            found["map_n_iter"][name] = min(grid, key=lambda n: (ers[n].n_errors, ers[n].n_sentences_wrong, -n))
            print(f"{name}: dev-chosen MAP passes {found['map_n_iter'][name]}")
    return found


def fold_speakers(data: Corpora, held_out: list[str] | None) -> list[str]:
    """``held_out`` (default: every FSDD speaker of the config), checked."""
    speakers = sorted({u.speaker for u in data.fsdd})
    unknown = sorted(set(held_out or []) - set(speakers))
    if unknown:
        raise InvalidParameterError(f"--held-out {unknown}: not FSDD speakers of the config ({speakers})")
    return held_out or speakers


def training_utterances(data: Corpora, held_out: tuple[str, ...]) -> list[str]:
    """What a fold (or a nested pair) trains on: AN4's training speakers and the FSDD speakers not held
    out (with their speed-perturbed copies)."""
    return data.with_copies(data.an4_ids("train") + data.fsdd_ids(exclude=held_out))


def fold_models(cfg: dict, lexicon: Lexicon, data: Corpora, speaker: str, out: Path) -> tuple[dict, dict]:
    """Every system trained without FSDD ``speaker`` (``folds/<speaker>/<system>.model.npz``)."""
    return train_all(cfg, lexicon, data, training_utterances(data, (speaker,)),
                     out / "folds" / speaker)


def stage_fold_train(cfg: dict, lexicon: Lexicon, data: Corpora, out: Path, held_out: list[str] | None) -> dict:
    """Train the folds of ``held_out`` FSDD speakers (default: all); seconds per system per fold."""
    return {s: {k: v["train_seconds"] for k, v in fold_models(cfg, lexicon, data, s, out)[1].items()}
            for s in fold_speakers(data, held_out)}


def evaluate(cfg: dict, models: dict, system: dict, lexicon: Lexicon, data: Corpora, speaker: str,
             tuned: dict, an4_test: bool = True) -> dict:
    """Held-out ``speaker``'s digit accuracy and (``an4_test``) AN4 test digit strings' errors of one system."""
    t0 = time.perf_counter()
    test = data.fsdd_ids(only=speaker)
    (hyps,) = recognise(cfg, models, system, lexicon, data, test, "words", tuple(FSDD_WORDS.values()),
                        [options(cfg)], {u: speaker for u in test})
    refs = [data.text[u] for u in test]
    out = {"n_test": len(test), "n_correct": sum(h == r for h, r in zip(hyps, refs)),
           "accuracy": float(np.mean([h == r for h, r in zip(hyps, refs)])),
           "errors": [{"utt_id": u, "ref": r[0], "hyp": " ".join(h)} for u, r, h in zip(test, refs, hyps) if h != r]}
    if an4_test:
        (an4,) = digit_string_errors(cfg, models, system, lexicon, data, data.an4_ids("test", digits_only=True),
                                     [tuned["word_insertion_penalty"]])
        out |= {"an4_test_digits": an4.to_dict(), "an4_test_digits_lines": kaldi_lines(an4)}
    return out | {"decode_seconds": time.perf_counter() - t0}


def decoding_key(cfg: dict, tuned: dict, info: dict[str, dict]) -> str:
    """What a fold's results depend on: the whole config but its output folder, process count and
    ``[nested]`` grid (a grid candidate's name holds its settings), the dev choices, and the
    models' training keys (``info`` of :func:`train_all`)."""
    settings = {k: v for k, v in cfg.items() if k not in ("output", "nested")}  # [nested] names its candidates
    # (speed_perturb only when set: folds decoded before the setting existed keep their key)
    settings["data"] = {k: v for k, v in cfg["data"].items() if k != "n_jobs" and (k != "speed_perturb" or v)}
    blob = json.dumps([settings, tuned, {s: v["training_key"] for s, v in info.items()}], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def decoded(path: Path, key: str) -> dict:
    """The results a run kept in ``path`` if they were decoded under ``key`` (:func:`decoding_key`),
    else ``{}``: what is missing is decoded (again)."""
    kept = json.loads(path.read_text()) if path.is_file() else {}
    if kept and kept.get("decoding_key") != key:
        logger.warning("%s: decoded with other settings or models; decoding again", path)
        return {}
    return kept


def settings_label(cfg: dict, name: str, system: dict, tuned: dict, n_gaussians: int) -> str:
    adapt = system["adapt"] or {}
    return (f"{name} {n_gaussians}g fsdd-others+an4-train 8kHz spk-cmvn-{cfg['cmvn']['frames']} "
            f"wip={tuned['word_insertion_penalty']:g}"
            + (f" map_n_iter={adapt['map_n_iter']}" if "map_tau" in adapt else ""))


def stage_fold_decode(cfg: dict, lexicon: Lexicon, data: Corpora, tuned: dict, out: Path,
                      held_out: list[str] | None = None) -> dict:
    """Decode the folds of ``held_out`` FSDD speakers (default: all) with every system.

    Each system's results go to ``folds/<speaker>.json`` and are read back by a later run.
    """
    speakers = fold_speakers(data, held_out)
    decoders = systems(cfg, tuned)
    folds = []
    for speaker in speakers:
        path = out / "folds" / f"{speaker}.json"
        models, info = fold_models(cfg, lexicon, data, speaker, out)
        key = decoding_key(cfg, tuned, info)
        fold = {"systems": decoded(path, key).get("systems", {}), "decoding_key": key}
        for name, system in decoders.items():
            if name not in fold["systems"]:
                fold["systems"][name] = evaluate(cfg, models, system, lexicon, data, speaker, tuned)
                fold["systems"][name]["n_gaussians"] = models[system["model"]].n_mix
        fold.update(speaker=speaker, n_train=len(training_utterances(data, (speaker,))),
                    train_seconds={k: v["train_seconds"] for k, v in info.items()})
        atomic_write_text(path, json.dumps(fold, indent=1))
        folds.append(fold)
        for name, r in fold["systems"].items():
            print(f"%ACC {100 * r['accuracy']:.2f} [ {r['n_correct']} / {r['n_test']} ] fsdd_heldout_{speaker} {name} "
                  f"(decode {r['decode_seconds']:.0f} s)", flush=True)
    lines, summary = [], {}
    names = list(decoders)
    for name in names:
        settings = settings_label(cfg, name, decoders[name], tuned, folds[0]["systems"][name]["n_gaussians"])
        res = [f["systems"][name] for f in folds]
        mean = float(np.mean([r["accuracy"] for r in res]))
        summary[name] = {"mean_accuracy": mean, "accuracy": {f["speaker"]: r["accuracy"] for f, r in zip(folds, res)},
                         "decode_seconds": sum(r["decode_seconds"] for r in res)}
        lines += [f"%ACC {100 * r['accuracy']:.2f} [ {r['n_correct']} / {r['n_test']} ] fsdd_heldout_{f['speaker']} "
                  f"{settings}" for f, r in zip(folds, res)]
        lines.append(f"%ACC {100 * mean:.2f} mean over {len(folds)} held-out FSDD speakers {settings}"
                     + (" (the most adapted system)" if name == names[-1] else ""))
        lines += [f"{ln} an4_test_digits model_without_{f['speaker']} {settings}"
                  for f, r in zip(folds, res) for ln in r["an4_test_digits_lines"].splitlines()]
    if held_out is None or set(held_out) == {u.speaker for u in data.fsdd}:  # a partial run leaves RESULTS
        with open(out / "RESULTS", "a", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return {"folds": folds, "systems": summary, "best_stage": names[-1],
            "train_seconds": sum(sum(f["train_seconds"].values()) for f in folds)}


# ---------------------------------------------------------------------------
# Nested selection of the best stage
# ---------------------------------------------------------------------------
def speaker_pairs(data: Corpora) -> list[tuple[str, str]]:
    """Every unordered pair of FSDD speakers of the config, sorted."""
    speakers = fold_speakers(data, None)
    return [(a, b) for i, a in enumerate(speakers) for b in speakers[i + 1:]]


def parse_pairs(data: Corpora, pairs: list[str] | None) -> list[tuple[str, str]]:
    """``--pair A+B`` arguments (default: every pair), checked against :func:`speaker_pairs`."""
    every = speaker_pairs(data)
    if not pairs:
        return every
    chosen = [tuple(sorted(p.split("+"))) for p in pairs]
    unknown = [p for p, c in zip(pairs, chosen) if c not in every]
    if unknown:
        raise InvalidParameterError(f"--pair {unknown}: not two different FSDD speakers of the config joined by '+'")
    return list(dict.fromkeys(chosen))


def candidates(cfg: dict, tuned: dict) -> dict[str, dict]:
    """Stage 5's candidates, least to most adapted: :func:`systems`, with each MAP system replaced
    by one candidate per ``[nested]`` (tau, passes), named ``<system>[tau=T,n=N]`` and ordered by
    passes, then by decreasing tau (fewer passes and a larger tau adapt less). Empty grids: the
    systems themselves."""
    grid = cfg.get("nested", {})
    taus, n_iters = grid.get("map_taus", []), grid.get("map_n_iters", [])
    if bool(taus) != bool(n_iters):
        raise InvalidParameterError("[nested] map_taus and map_n_iters are both empty or both given")
    if any(t <= 0 for t in taus) or any(int(n) != n or n < 1 for n in n_iters):
        raise InvalidParameterError(f"[nested] needs map_taus > 0 and map_n_iters >= 1 (integers), got "
                                    f"{taus} and {n_iters}")
    out: dict[str, dict] = {}
    for name, system in systems(cfg, tuned).items():
        if not taus or "map_tau" not in (system["adapt"] or {}):
            out[name] = system
            continue
        for n in sorted(set(n_iters)):
            for tau in sorted(set(taus), reverse=True):
                out[f"{name}[tau={tau:g},n={int(n)}]"] = {
                    "model": system["model"], "adapt": {**system["adapt"], "map_tau": float(tau), "map_n_iter": int(n)}}
    return out


def nested_choice(inner: dict[str, dict[str, dict[str, dict]]], names: list[str]) -> dict[str, dict]:
    """Per outer fold, the decoding system with the highest accuracy over the pooled inner held-out takes.

    ``inner[f][i][s]`` is system ``s``'s result (``n_correct``, ``n_test``) on FSDD speaker ``i``
    by models trained without both ``f`` and ``i``, so fold ``f``'s choice reads no take of ``f``.
    Ties go to the later of ``names`` (least to most adapted: the more adapted system).
    Returns ``{f: {"system", "inner_accuracy": {s: pooled accuracy}}}``.
    """
    out = {}
    for f, by_speaker in inner.items():
        accuracy = {}
        for s in names:
            n = sum(r[s]["n_test"] for r in by_speaker.values())
            accuracy[s] = sum(r[s]["n_correct"] for r in by_speaker.values()) / n if n else 0.0
        best = max(range(len(names)), key=lambda k: (accuracy[names[k]], k))
        out[f] = {"system": names[best], "inner_accuracy": accuracy}
    return out


def stage_nested(cfg: dict, lexicon: Lexicon, data: Corpora, tuned: dict, out: Path,
                 pairs: list[str] | None = None) -> dict | None:
    """Choose each fold's system by leave-one-speaker-out inside its training speakers.

    For every pair of FSDD speakers, the chain is trained without both (``nested/<a>+<b>/``) and
    each of the two decoded with every system (``nested/<a>+<b>.json``): speaker ``b``'s takes
    score the systems for fold ``a`` and the other way round. When every pair is done and every
    fold decoded (stage 4), each fold's system is :func:`nested_choice` and its held-out accuracy
    (from ``folds/<speaker>.json``) counts; the mean over folds is the best stage's figure.
    """
    if len(fold_speakers(data, None)) < 2:
        logger.warning("the nested choice needs at least two FSDD speakers; stage 5 does nothing")
        return None
    decoders = candidates(cfg, tuned)
    names = list(decoders)
    done: dict[tuple[str, str], dict] = {}
    for pair in parse_pairs(data, pairs):
        path = out / "nested" / f"{pair[0]}+{pair[1]}.json"
        train_utts = training_utterances(data, pair)
        keys = {s: {"training_key": training_key(cfg, s, train_utts)} for s in an4_systems(cfg)}
        key = decoding_key(cfg, tuned, keys)
        res = {"speakers": decoded(path, key).get("speakers", {}), "decoding_key": key, "n_train": len(train_utts)}
        models = None  # trained (or read back) only if a take is left to decode
        for speaker in pair:
            got = res["speakers"].setdefault(speaker, {})
            for name, system in decoders.items():
                if name not in got:
                    if models is None:
                        models, _ = train_all(cfg, lexicon, data, train_utts, out / "nested" / "+".join(pair))
                    got[name] = evaluate(cfg, models, system, lexicon, data, speaker, tuned, an4_test=False)
                    atomic_write_text(path, json.dumps(res, indent=1))
                r = got[name]
                print(f"%ACC {100 * r['accuracy']:.2f} [ {r['n_correct']} / {r['n_test']} ] fsdd_inner_{speaker} "
                      f"{name} model_without_{pair[0]}+{pair[1]}", flush=True)
        done[pair] = res
    if set(done) != set(speaker_pairs(data)):
        return None  # a partial run (--pair): the choice waits for every pair
    inner: dict = {}
    for (a, b), res in done.items():
        inner.setdefault(a, {})[b] = res["speakers"][b]
        inner.setdefault(b, {})[a] = res["speakers"][a]
    chosen = nested_choice(inner, names)
    folds = {}
    for speaker in fold_speakers(data, None):
        path = out / "folds" / f"{speaker}.json"
        utts = training_utterances(data, (speaker,))
        keys = {s: {"training_key": training_key(cfg, s, utts)} for s in an4_systems(cfg)}  # (never trains)
        folds[speaker] = json.loads(path.read_text()) if path.is_file() else {}
        if folds[speaker].get("decoding_key") != decoding_key(cfg, tuned, keys):
            logger.warning("%s: missing or decoded with other settings; the nested choice is made, but its "
                           "figures wait for stage 4 of every fold", path)
            return {"chosen": chosen}
    for speaker, fold in folds.items():  # a grid candidate decodes the held-out speaker only once chosen
        system = chosen[speaker]["system"]
        if system not in fold["systems"]:
            models, _ = fold_models(cfg, lexicon, data, speaker, out)  # stage 3's models, read back
            fold["systems"][system] = evaluate(cfg, models, decoders[system], lexicon, data, speaker, tuned)
            fold["systems"][system]["n_gaussians"] = models[decoders[system]["model"]].n_mix
            atomic_write_text(out / "folds" / f"{speaker}.json", json.dumps(fold, indent=1))
    lines, accuracy = [], {}
    for speaker, fold in folds.items():
        system = chosen[speaker]["system"]
        r = fold["systems"][system]
        accuracy[speaker] = r["accuracy"]
        inner_acc = 100 * chosen[speaker]["inner_accuracy"][system]
        lines.append(f"%ACC {100 * r['accuracy']:.2f} [ {r['n_correct']} / {r['n_test']} ] fsdd_heldout_{speaker} "
                     f"best_stage={system} (nested choice: inner %ACC {inner_acc:.2f} on the other speakers)")
    mean = float(np.mean(list(accuracy.values())))
    lines.append(f"%ACC {100 * mean:.2f} mean over {len(accuracy)} held-out FSDD speakers, system chosen per fold "
                 f"by nested leave-one-speaker-out (best stage) wip={tuned['word_insertion_penalty']:g}")
    with open(out / "RESULTS", "a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return {"mean_accuracy": mean, "accuracy": accuracy, "chosen": chosen}


def main(argv: list[str] | None = None) -> dict:
    ap = argument_parser(__doc__.splitlines()[0], REPO / "configs" / "fsdd_loso.toml", len(STAGES), STAGES)
    ap.add_argument("--held-out", action="append", default=None, metavar="SPEAKER",
                    help="run only this speaker's fold (repeatable; e.g. two processes on two halves)")
    ap.add_argument("--pair", action="append", default=None, metavar="A+B",
                    help="stage 5: train and decode only this pair of FSDD speakers (repeatable)")
    args = ap.parse_args(argv)
    cfg, out = setup(args, REPO, STAGES)
    stage = Stages(STAGES, args.stage, args.stop_stage)
    report: dict = {"config": args.config, "timings_s": stage.timings}

    stage(0, lambda: prepare(an4_dir(cfg), out / "data"))
    lexicon = Lexicon.read(out / "data" / "lexicon.txt")
    check_pronunciations(lexicon)
    data = stage(1, lambda: Corpora(cfg, out))
    if args.stop_stage >= 2 and data is None:
        data = Corpora(cfg, out)
    report["tuned"] = stage(2, lambda: stage_dev(cfg, lexicon, data, out))
    report["trained"] = stage(3, lambda: stage_fold_train(cfg, lexicon, data, out, args.held_out))
    report["loso"] = stage(4, lambda: stage_fold_decode(cfg, lexicon, data,
                                                        json.loads((out / "dev" / "best.json").read_text()),
                                                        out, args.held_out))
    report["nested"] = stage(5, lambda: stage_nested(cfg, lexicon, data,
                                                     json.loads((out / "dev" / "best.json").read_text()),
                                                     out, args.pair))
    print(stage.summary())
    atomic_write_text(out / "report.json", json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    run(main, "fsdd_loso")
