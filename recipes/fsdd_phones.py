"""FSDD phone recipe: monophones from word transcripts, then three decoding tasks.

1. Features of every recording used (official split: takes 5-49 train, 0-4
   test; with ``--dev``: takes 10-49 train, 5-9 dev, test takes untouched).
2. Monophone HMMs trained by embedded Baum-Welch from the digit words
   through the lexicon: flat start, re-estimation, mixture splitting.
3. Reports (a) PER of phone-loop decoding of the evaluation takes, (b)
   isolated word accuracy with a one-word grammar, (c) WER of word-loop
   decoding on connected digit strings built from evaluation takes, and checks
   the forced alignments of the evaluation takes (one word, inside the
   recording). The evaluation takes are the test takes, or the dev takes
   with ``--dev``.

Usage::

    python recipes/fsdd_phones.py [--config configs/fsdd_phones.toml] [--quick] [--dev]
        [--out DIR] [--model FILE] [--checkpoint-dir DIR] [--resume]

``--dev`` is for choosing settings (mixtures, insertion penalties, connected
training strings) without looking at the test set: it trains on takes 10-49
and evaluates on takes 5-9 (see :func:`gmmhmm.datasets.dev_split`).

``--model`` skips training and decodes with a model file written by an
earlier run on the same split (e.g. to try other insertion penalties).

``--resume`` continues an interrupted training run from the checkpoint written
after every Baum-Welch iteration (``--checkpoint-dir``, default
``<out>/checkpoints``) and ends with the models of an uninterrupted run.

The report goes to ``exp/fsdd_phones/`` (``exp/fsdd_phones_dev/`` with
``--dev``; report.txt, report.json, the model, CTM files and TextGrids) and is
printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from data_scripts.connected_digits import ConnectedUtterance, make_connected_digits  # noqa: E402
from gmmhmm import load, save  # noqa: E402
from gmmhmm.datasets import Utterance, list_fsdd, split  # noqa: E402
from gmmhmm.modelfile import atomic_write_text  # noqa: E402
from gmmhmm.recipe import load_config as recipe_config, run  # noqa: E402
from gmmhmm.errors import InvalidParameterError  # noqa: E402
from gmmhmm.features import FeatureConfig, extract_features, extract_many  # noqa: E402
from gmmhmm.decoding import decode_many, decoding_graph  # noqa: E402
from gmmhmm.graphs import (DIGIT_WORDS, EmbeddedTrainer, Lexicon, PhoneModelSet, force_align,  # noqa: E402
                           write_alignment)
from gmmhmm.search import DecodingGraph, SearchOptions  # noqa: E402
from gmmhmm.scoring import ErrorRates, error_rates  # noqa: E402

logger = logging.getLogger("fsdd_phones")

#: Word of each FSDD digit label.
WORD = {str(d): DIGIT_WORDS[d] for d in range(10)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(REPO / "configs" / "fsdd_phones.toml"))
    ap.add_argument("--quick", action="store_true", help="short schedule and 40 connected utterances (smoke run)")
    ap.add_argument("--dev", action="store_true",
                    help="train on takes 10-49, evaluate on the dev takes 5-9 (never the test takes 0-4)")
    ap.add_argument("--out", type=Path, default=None,
                    help="output folder (default: [output] dir, or dev_dir with --dev)")
    ap.add_argument("--model", type=Path, default=None,
                    help="skip training: decode with this model file from an earlier run on the same split")
    ap.add_argument("--checkpoint-dir", type=Path, default=None,
                    help="checkpoint every Baum-Welch iteration here (default with --resume: <out>/checkpoints)")
    ap.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoint")
    args = ap.parse_args(argv)
    if args.model is not None and (args.resume or args.checkpoint_dir is not None):
        ap.error("--model skips training; it cannot be combined with --resume or --checkpoint-dir")
    return args


def load_config(path: str, quick: bool = False) -> dict:
    """Read the TOML config; ``quick`` shortens the schedule for a smoke run.

    Raises
    ------
    InvalidParameterError
        The file is missing, not UTF-8 or not TOML.
    KeyError
        A section the recipe needs is missing.
    """
    cfg = recipe_config(path)
    if quick:
        cfg["training"].update(mixtures=[1, 2, 4], n_iter=[2, 2, 2])
        cfg["connected"]["n_utterances"] = 40
    return cfg


def output_dir(cfg: dict, dev: bool, out: Path | None = None) -> Path:
    """``out`` if given, else ``[output] dir`` (``dev_dir``, default ``<dir>_dev``, with ``dev``).

    Config paths are relative to the repository. The dev run gets its own
    folder so that its report and model never overwrite the official ones.
    """
    if out is not None:
        return out
    ocfg = cfg["output"]
    if not dev:
        return REPO / ocfg["dir"]
    return REPO / ocfg.get("dev_dir", ocfg["dir"].rstrip("/") + "_dev")


def connected_strings(utts: list[Utterance], n_utterances: int, seed: int, ccfg: dict,
                      sample_rate_hz: int) -> list[ConnectedUtterance]:
    """Connected-digit strings joined from ``utts`` with the ``[connected]`` settings."""
    return make_connected_digits(utts, n_utterances, sample_rate_hz, seed, ccfg["min_digits"], ccfg["max_digits"],
                                 tuple(ccfg["gap_ms"]), ccfg["noise_level"])


def train_models(train: list[Utterance], feats: dict[str, np.ndarray], lexicon: Lexicon, cfg: dict,
                 feature_config: FeatureConfig, checkpoint_dir: Path | None,
                 resume: bool) -> tuple[PhoneModelSet, list[float]]:
    """Embedded Baum-Welch on the isolated training takes plus connected strings of them.

    Returns
    -------
    model : PhoneModelSet
    history : list of float
        Log-likelihood per frame after each iteration.
    """
    tcfg = cfg["training"]
    trainer = EmbeddedTrainer(lexicon, n_states=tcfg["n_states"], sil_prob=tcfg["sil_prob"],
                              var_floor_frac=tcfg["var_floor_frac"], feature_config=feature_config.to_dict())
    train_X = [feats[str(u.path)] for u in train]
    train_text = [[WORD[u.digit]] for u in train]
    if tcfg["connected_utterances"]:
        # connected strings of *training* takes teach the models word-to-word
        # contexts and inter-word noise, which isolated takes never show
        extra = connected_strings(train, tcfg["connected_utterances"], tcfg["connected_seed"], cfg["connected"],
                                  feature_config.sample_rate_hz)
        train_X += [extract_features(c.signal, feature_config, c.sample_rate_hz) for c in extra]
        train_text += [c.words for c in extra]
    history = trainer.fit(train_X, train_text, mixtures=tcfg["mixtures"], n_iter=tcfg["n_iter"],
                          checkpoint_dir=checkpoint_dir, resume=resume)
    return trainer.model, history


def load_models(path: Path, split_name: str, feature_config: FeatureConfig, lexicon: Lexicon) -> PhoneModelSet:
    """A model file written by this recipe on the split ``split_name``.

    Raises
    ------
    InvalidParameterError
        The file is not phone models, was trained on another split (its
        training takes could be this split's evaluation takes), on other
        features or with another lexicon.
    """
    model, meta = load(path, with_metadata=True)
    if not isinstance(model, PhoneModelSet):
        raise InvalidParameterError(f"{path} holds a {type(model).__name__}, not phone models")
    trained_on = meta.get("split") if isinstance(meta, dict) else None
    if trained_on != split_name:
        raise InvalidParameterError(
            f"{path} was trained on the {trained_on or 'unknown'} split, not the {split_name} split; "
            "--model only takes models of the split being evaluated (another split's training takes "
            "may be these evaluation takes)"
        )
    if model.feature_config is None or FeatureConfig.from_dict(model.feature_config) != feature_config:
        raise InvalidParameterError(f"{path} was trained on other features than the config's [features]")
    if model.lexicon_text != lexicon.to_text():
        raise InvalidParameterError(f"{path} was trained with another lexicon than the config's [training] lexicon")
    return model


def search_options(dcfg: dict, insertion_penalty: float = 0.0) -> SearchOptions:
    """The ``[decoding]`` settings as :class:`~gmmhmm.search.SearchOptions`."""
    return SearchOptions(beam=dcfg["beam"], max_active=dcfg.get("max_active", SearchOptions.max_active), lm_scale=dcfg["lm_scale"],
                         word_insertion_penalty=insertion_penalty)


def decode(model: PhoneModelSet, graph: DecodingGraph, log_likelihoods: list[np.ndarray],
           options: SearchOptions) -> list[list[str]]:
    """Words (phones in a phone loop) of each utterance's best path through ``graph``, silence left out."""
    silence = model.phones[-1]
    return [[w for w in r.words if w != silence] for r in decode_many(graph, log_likelihoods, options)]


def phone_error_rate(model: PhoneModelSet, lexicon: Lexicon, evaluation: list[Utterance],
                     eval_ll: list[np.ndarray], dcfg: dict) -> ErrorRates:
    """(a) Phone-loop decoding scored against the lexicon pronunciations."""
    g = decoding_graph(model, "phone-loop")
    refs = [lexicon.pronunciations[WORD[u.digit]] for u in evaluation]
    return error_rates(refs, decode(model, g, eval_ll, search_options(dcfg, dcfg["phone_insertion_penalty"])))


def isolated_accuracy(model: PhoneModelSet, evaluation: list[Utterance], eval_ll: list[np.ndarray],
                      dcfg: dict) -> float:
    """(b) Fraction of takes whose one-word-grammar decoding is their word."""
    hyps = decode(model, decoding_graph(model, "words"), eval_ll, search_options(dcfg))
    return float(np.mean([h == [WORD[u.digit]] for h, u in zip(hyps, evaluation)]))


def connected_word_errors(model: PhoneModelSet, conn: list[ConnectedUtterance], feature_config: FeatureConfig,
                          dcfg: dict) -> ErrorRates:
    """(c) Word-loop decoding of connected strings (features included)."""
    g = decoding_graph(model, "word-loop")
    conn_ll = model.state_log_likelihood_many(
        [extract_features(c.signal, feature_config, c.sample_rate_hz) for c in conn])
    hyps = decode(model, g, conn_ll, search_options(dcfg, dcfg["word_insertion_penalty"]))
    return error_rates([c.words for c in conn], hyps, [c.utt_id for c in conn])


def check_alignments(model: PhoneModelSet, lexicon: Lexicon, evaluation: list[Utterance],
                     eval_ll: list[np.ndarray], feature_config: FeatureConfig, sil_prob: float, out: Path) -> dict:
    """Force-align every evaluation take to its word; write CTM + TextGrids to ``out/align``.

    Returns
    -------
    dict
        ``n``, ``one_word`` (takes aligned to exactly their word),
        ``inside_recording`` and the mean leading/trailing silence in seconds.
    """
    shift_s = feature_config.frame_shift_s
    overhang_s = (feature_config.frame_length - feature_config.frame_shift) / feature_config.sample_rate_hz
    one_word, inside, lead, trail, aligned = 0, 0, [], [], {}
    for u, ll in zip(evaluation, eval_ll):
        duration = len(ll) * shift_s + overhang_s
        path = force_align(model, None, [WORD[u.digit]], shift_s, duration, sil_prob, ll)
        spoken = [s for s in path.words if s.label != lexicon.silence]
        one_word += len(spoken) == 1 and spoken[0].label == WORD[u.digit]
        inside += all(0.0 <= s.start_s < s.end_s <= duration + 1e-9 for s in spoken)
        lead.append(spoken[0].start_s)
        trail.append(duration - spoken[-1].end_s)
        aligned[u.utt_id] = path
    write_alignment(out / "align", aligned)
    return {"n": len(evaluation), "one_word": one_word, "inside_recording": inside,
            "mean_leading_sil_s": float(np.mean(lead)), "mean_trailing_sil_s": float(np.mean(trail))}


def format_report(report: dict, model: PhoneModelSet, per: ErrorRates, wer: ErrorRates, audio_s: float) -> str:
    """The printed report (also ``report.txt``)."""
    eval_name = "test" if report["split"] == "official" else "dev"
    ali, n_eval = report["alignment"], report["n_eval"]
    source = (f"{report['n_train']} training takes + {report['n_train_connected']} connected strings of them"
              if report["model"] is None else f"models from {report['model']}")
    split = "" if report["split"] == "official" else ", dev split: train takes 10-49, dev takes 5-9"
    return "\n".join([
        f"FSDD phone models{split} ({source}, {n_eval} {eval_name} takes, "
        f"{model.n_mix} Gaussians x {model.n_states} states x {len(model.phones)} phones)",
        f"(a) phone-loop PER           {100 * per.error_rate:6.2f} %  ({per.format('PER').splitlines()[-1]})",
        f"(b) isolated-word accuracy   {100 * report['isolated_word_accuracy']:6.2f} %",
        f"(c) connected-digit WER      {100 * wer.error_rate:6.2f} %  over {report['n_connected']} utterances "
        f"({wer.format('WER').splitlines()[-1]}); {audio_s:.0f} s of audio, real-time factor "
        f"{report['connected_real_time_factor']:.3f} (features + decoding)",
        f"forced alignment: {ali['one_word']}/{n_eval} takes align to exactly their one word, "
        f"{ali['inside_recording']}/{n_eval} inside the recording; mean leading/trailing silence "
        f"{ali['mean_leading_sil_s']:.3f} / {ali['mean_trailing_sil_s']:.3f} s",
        "timings: " + ", ".join(f"{k} {v:.1f}" for k, v in report["timings"].items()),
    ])


def main(argv: list[str] | None = None) -> dict:
    """Run the recipe; returns the report (also written to ``<out>/report.json``)."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = load_config(args.config, args.quick)
    tcfg, dcfg, ccfg = cfg["training"], cfg["decoding"], cfg["connected"]
    out = output_dir(cfg, args.dev, args.out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    report: dict = {"config": args.config, "model": None if args.model is None else str(args.model)}

    t0 = time.perf_counter()
    feature_config = FeatureConfig.from_dict(cfg["features"])
    utts = list_fsdd(cfg["data"]["fsdd_dir"] or None)
    split_name, train, evaluation = split(utts, "dev" if args.dev else "official")[0]
    lexicon = Lexicon.read(tcfg["lexicon"]) if tcfg["lexicon"] else Lexicon.digits()
    model = None if args.model is None else load_models(args.model, split_name, feature_config, lexicon)
    # with --dev the test takes are never read; with --model the training takes neither
    used = set(evaluation) if model is not None else set(train) | set(evaluation)
    feats, failures = extract_many([u.path for u in utts if u in used], feature_config, n_jobs=cfg["data"]["n_jobs"])
    train = [u for u in train if str(u.path) in feats] if model is None else train
    evaluation = [u for u in evaluation if str(u.path) in feats]
    timings["features_s"] = time.perf_counter() - t0
    report["split"] = split_name
    report["n_train"], report["n_eval"], report["n_feature_failures"] = len(train), len(evaluation), len(failures)

    if model is None:
        t0 = time.perf_counter()
        checkpoint_dir = args.checkpoint_dir or (out / "checkpoints" if args.resume else None)
        model, history = train_models(train, feats, lexicon, cfg, feature_config, checkpoint_dir, args.resume)
        timings["training_s"] = time.perf_counter() - t0
        report["n_train_connected"] = tcfg["connected_utterances"]
        report["loglik_per_frame"] = history
        save(model, out / "model.npz", metadata={"split": split_name, "mixtures": list(tcfg["mixtures"]),
                                                  "connected_utterances": tcfg["connected_utterances"]})

    eval_ll = model.state_log_likelihood_many([feats[str(u.path)] for u in evaluation])

    t0 = time.perf_counter()
    per = phone_error_rate(model, lexicon, evaluation, eval_ll, dcfg)
    timings["phone_loop_s"] = time.perf_counter() - t0
    report["per"] = per.error_rate
    report["phone_errors"] = per.to_dict()

    t0 = time.perf_counter()
    report["isolated_word_accuracy"] = isolated_accuracy(model, evaluation, eval_ll, dcfg)
    timings["isolated_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    conn = connected_strings(evaluation, ccfg["n_utterances"], ccfg["seed"], ccfg, feature_config.sample_rate_hz)
    wer = connected_word_errors(model, conn, feature_config, dcfg)
    timings["connected_s"] = time.perf_counter() - t0
    report["connected_wer"] = wer.error_rate
    report["connected_sentence_error_rate"] = wer.sentence_error_rate
    report["connected_errors"] = wer.to_dict()
    report["n_connected"] = len(conn)
    audio_s = sum(len(c.signal) / c.sample_rate_hz for c in conn)
    report["connected_real_time_factor"] = timings["connected_s"] / audio_s

    t0 = time.perf_counter()
    report["alignment"] = check_alignments(model, lexicon, evaluation, eval_ll, feature_config, tcfg["sil_prob"], out)
    timings["alignment_s"] = time.perf_counter() - t0
    report["timings"] = timings

    text = format_report(report, model, per, wer, audio_s)
    atomic_write_text(out / "report.txt", text + "\n")
    atomic_write_text(out / "report.json", json.dumps(report, indent=1, default=float))
    print(text)
    return report


if __name__ == "__main__":
    run(main, "fsdd_phones")
