"""FSDD phone recipe: monophones from word transcripts, then three decoding tasks.

1. Features of every recording (official split: takes 5-49 train, 0-4 test).
2. Monophone HMMs trained by embedded Baum-Welch from the digit words
   through the lexicon: flat start, re-estimation, mixture splitting.
3. Reports (a) PER of phone-loop decoding of the test takes, (b) isolated
   word accuracy with a one-word grammar, (c) WER of word-loop decoding on
   connected digit strings built from test takes, and checks the forced
   alignments of the test takes (one word, inside the recording).

Usage::

    python recipes/fsdd_phones.py [--config configs/fsdd_phones.toml] [--quick]
        [--checkpoint-dir DIR] [--resume]

``--resume`` continues an interrupted training run from the checkpoint written
after every Baum-Welch iteration (``--checkpoint-dir``, default
``<out>/checkpoints``) and ends with the models of an uninterrupted run.

The report goes to ``exp/fsdd_phones/`` (report.txt, report.json, the
model, CTM files and TextGrids) and is printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from data_scripts.connected_digits import make_connected_digits  # noqa: E402
from gmmhmm import save  # noqa: E402
from gmmhmm.datasets import list_fsdd, official_split  # noqa: E402
from gmmhmm.modelfile import atomic_write_text  # noqa: E402
from gmmhmm.errors import GmmhmmError  # noqa: E402
from gmmhmm.features import FeatureConfig, extract_features, extract_many  # noqa: E402
from gmmhmm.graphs import (DIGIT_WORDS, EmbeddedTrainer, Lexicon, force_align, make_graph,  # noqa: E402
                           viterbi_path, write_alignment)
from gmmhmm.scoring import error_rates  # noqa: E402

logger = logging.getLogger("fsdd_phones")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(REPO / "configs" / "fsdd_phones.toml"))
    ap.add_argument("--quick", action="store_true", help="short schedule and 40 connected utterances (smoke run)")
    ap.add_argument("--checkpoint-dir", type=Path, default=None,
                    help="checkpoint every Baum-Welch iteration here (default with --resume: <out>/checkpoints)")
    ap.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoint")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with open(args.config, "rb") as f:
        cfg = tomllib.load(f)
    tcfg, dcfg, ccfg = cfg["training"], cfg["decoding"], dict(cfg["connected"])
    if args.quick:
        tcfg = {**tcfg, "mixtures": [1, 2, 4], "n_iter": [2, 2, 2]}
        ccfg["n_utterances"] = 40
    out = REPO / cfg["output"]["dir"]
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    report: dict = {"config": args.config}

    t0 = time.perf_counter()
    feature_config = FeatureConfig.from_dict(cfg["features"])
    utts = list_fsdd(cfg["data"]["fsdd_dir"] or None)
    train, test = official_split(utts)
    feats, failures = extract_many([u.path for u in utts], feature_config, n_jobs=cfg["data"]["n_jobs"])
    train = [u for u in train if str(u.path) in feats]
    test = [u for u in test if str(u.path) in feats]
    timings["features_s"] = time.perf_counter() - t0
    report["n_train"], report["n_test"], report["n_feature_failures"] = len(train), len(test), len(failures)

    lexicon = Lexicon.read(tcfg["lexicon"]) if tcfg["lexicon"] else Lexicon.digits()
    word = {str(d): DIGIT_WORDS[d] for d in range(10)}
    t0 = time.perf_counter()
    trainer = EmbeddedTrainer(lexicon, n_states=tcfg["n_states"], sil_prob=tcfg["sil_prob"],
                              var_floor_frac=tcfg["var_floor_frac"], feature_config=feature_config.to_dict())
    train_X = [feats[str(u.path)] for u in train]
    train_text = [[word[u.digit]] for u in train]
    if tcfg["connected_utterances"]:
        # connected strings of *training* takes teach the models word-to-word
        # contexts and inter-word noise, which isolated takes never show
        extra = make_connected_digits(train, tcfg["connected_utterances"], feature_config.sample_rate_hz,
                                      tcfg["connected_seed"], ccfg["min_digits"], ccfg["max_digits"],
                                      tuple(ccfg["gap_ms"]), ccfg["noise_level"])
        train_X += [extract_features(c.signal, feature_config, c.sample_rate_hz) for c in extra]
        train_text += [c.words for c in extra]
    report["n_train_connected"] = tcfg["connected_utterances"]
    checkpoint_dir = args.checkpoint_dir or (out / "checkpoints" if args.resume else None)
    history = trainer.fit(train_X, train_text, mixtures=tcfg["mixtures"], n_iter=tcfg["n_iter"],
                          checkpoint_dir=checkpoint_dir, resume=args.resume)
    model = trainer.model
    timings["training_s"] = time.perf_counter() - t0
    report["loglik_per_frame"] = history
    save(model, out / "model.npz")

    shift_s = feature_config.shift_ms / 1000.0
    beam, lm_scale = dcfg["beam"], dcfg["lm_scale"]
    test_ll = model.state_log_likelihood_many([feats[str(u.path)] for u in test])

    # (a) phone recognition
    t0 = time.perf_counter()
    g = make_graph(model, "phone-loop", insertion_penalty=dcfg["phone_insertion_penalty"], lm_scale=lm_scale)
    refs = [lexicon.pronunciations[word[u.digit]] for u in test]
    hyps = [viterbi_path(model, None, g, beam, log_likelihood=ll).tokens() for ll in test_ll]
    per = error_rates(refs, hyps)
    timings["phone_loop_s"] = time.perf_counter() - t0
    report["per"] = per.error_rate
    report["phone_errors"] = per.to_dict()

    # (b) isolated words
    t0 = time.perf_counter()
    g = make_graph(model, "words", lm_scale=lm_scale)
    iso = [viterbi_path(model, None, g, beam, log_likelihood=ll).tokens() for ll in test_ll]
    report["isolated_word_accuracy"] = float(np.mean([h == [word[u.digit]] for h, u in zip(iso, test)]))
    timings["isolated_s"] = time.perf_counter() - t0

    # (c) connected digits
    t0 = time.perf_counter()
    conn = make_connected_digits(test, ccfg["n_utterances"], feature_config.sample_rate_hz, ccfg["seed"],
                                 ccfg["min_digits"], ccfg["max_digits"], tuple(ccfg["gap_ms"]),
                                 ccfg["noise_level"])
    g = make_graph(model, "word-loop", insertion_penalty=dcfg["word_insertion_penalty"], lm_scale=lm_scale)
    conn_ll = model.state_log_likelihood_many(
        [extract_features(c.signal, feature_config, c.sample_rate_hz) for c in conn])
    hyps = [viterbi_path(model, None, g, beam, log_likelihood=ll).tokens() for ll in conn_ll]
    wer = error_rates([c.words for c in conn], hyps, [c.utt_id for c in conn])
    timings["connected_s"] = time.perf_counter() - t0
    report["connected_wer"] = wer.error_rate
    report["connected_sentence_error_rate"] = wer.sentence_error_rate
    report["connected_errors"] = wer.to_dict()
    report["n_connected"] = len(conn)
    audio_s = sum(len(c.signal) / c.sample_rate_hz for c in conn)
    report["connected_real_time_factor"] = timings["connected_s"] / audio_s

    # forced alignment of the test takes
    t0 = time.perf_counter()
    for name in ("words.ctm", "phones.ctm"):
        (out / name).unlink(missing_ok=True)
    one_word, inside, lead, trail = 0, 0, [], []
    for u, ll in zip(test, test_ll):
        duration = len(ll) * shift_s + (feature_config.window_ms - feature_config.shift_ms) / 1000.0
        path = force_align(model, None, [word[u.digit]], shift_s, duration, tcfg["sil_prob"], ll)
        spoken = [s for s in path.words if s.label != lexicon.silence]
        one_word += len(spoken) == 1 and spoken[0].label == word[u.digit]
        inside += all(0.0 <= s.start_s < s.end_s <= duration + 1e-9 for s in spoken)
        lead.append(spoken[0].start_s)
        trail.append(duration - spoken[-1].end_s)
        write_alignment(out / "align", u.utt_id, path)
    timings["alignment_s"] = time.perf_counter() - t0
    report["alignment"] = {"n": len(test), "one_word": one_word, "inside_recording": inside,
                           "mean_leading_sil_s": float(np.mean(lead)), "mean_trailing_sil_s": float(np.mean(trail))}
    report["timings"] = timings

    lines = [
        f"FSDD phone models ({len(train)} training takes + {tcfg['connected_utterances']} connected strings "
        f"of them, {len(test)} test takes, "
        f"{model.n_mix} Gaussians x {model.n_states} states x {len(model.phones)} phones)",
        f"(a) phone-loop PER           {100 * per.error_rate:6.2f} %  ({per.format('PER').splitlines()[-1]})",
        f"(b) isolated-word accuracy   {100 * report['isolated_word_accuracy']:6.2f} %",
        f"(c) connected-digit WER      {100 * wer.error_rate:6.2f} %  over {len(conn)} utterances "
        f"({wer.format('WER').splitlines()[-1]}); {audio_s:.0f} s of audio, real-time factor "
        f"{report['connected_real_time_factor']:.3f} (features + decoding)",
        f"forced alignment: {one_word}/{len(test)} takes align to exactly their one word, "
        f"{inside}/{len(test)} inside the recording; mean leading/trailing silence "
        f"{np.mean(lead):.3f} / {np.mean(trail):.3f} s",
        "timings: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()),
    ]
    text = "\n".join(lines)
    atomic_write_text(out / "report.txt", text + "\n")
    atomic_write_text(out / "report.json", json.dumps(report, indent=1, default=float))
    print(text)
    return report


if __name__ == "__main__":
    try:
        main()
    except GmmhmmError as exc:  # bad data, config values or files: one line, no traceback
        raise SystemExit(f"fsdd_phones: error: {exc}") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SystemExit(f"fsdd_phones: error: cannot read the config or data: {exc}") from None
    except KeyError as exc:
        raise SystemExit(f"fsdd_phones: error: the config lacks the key {exc}") from None
