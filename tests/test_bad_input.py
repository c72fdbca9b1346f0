"""Bad input across the public surface: one table, one specific error per row.

Library rows: the call raises the named :mod:`gmmhmm.errors` class (always a
``ValueError``) with a message matching the pattern. CLI rows: ``gmmhmm``
exits non-zero with one-line messages on stderr and no traceback; batch
commands skip the bad item, report it and still process the rest.

``python tests/test_bad_input.py`` writes the table as Markdown to
``/tmp/bad_input_table.md``.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from conftest import tone
import soundfile as sf

from gmmhmm import GMMHMM, GaussianHMM, GaussianMixture, errors, modelfile
from gmmhmm import scoring as S
from gmmhmm.adapt import adaptation_stats, apply_speaker_transforms, speaker_fmllr_stats
from gmmhmm.checkpoint import resume as checkpoint_resume
from gmmhmm.classifier import HMMClassifier
from gmmhmm.cli import main
from gmmhmm.corpus import Corpus
from gmmhmm.data import DataDir, PerturbedAudio, PipedAudio, perturb_speed
from gmmhmm.features import (FeatureConfig, add_deltas, cmvn, cmvn_per_speaker, deltas, extract_features,
                             extract_many, frame_signal, load_audio, load_features, mel_filterbank, mfcc,
                             save_features, speed_perturb, window_function)
from gmmhmm.decoding import decode_files
from gmmhmm.features.transforms import (FeatureTransform, MlltStats, accumulate_lda_stats, accumulate_mllt_stats,
                                        estimate_lda, estimate_mllt, splice_frames)
from gmmhmm.graphs import (EmbeddedTrainer, Lexicon, TreeContext, TreeStats, accumulate_tree_stats, build_tree,
                           parse_transcripts)
from gmmhmm.graphs.lda_mllt import LdaMlltOptions, train_lda_mllt
from gmmhmm.graphs.questions import cluster_questions, read_phone_classes
from gmmhmm.graphs.triphones import init_tied_model
from gmmhmm.lm import estimate, read_arpa
from gmmhmm.mixture.stats import GaussianStats
from gmmhmm.hmm import topology
from gmmhmm.parallel import accumulate_corpus, fit_corpus
from gmmhmm.search import SearchOptions, compile_graph, word_list, word_loop
from gmmhmm.search import decode as search_decode

REPO = Path(__file__).resolve().parents[1]
E = errors
RATE = 8000

TOML = """
[features]
sample_rate_hz = 8000
[model]
n_states = 2
mix_schedule = [1]
n_iter = [2]
n_jobs = 1
[data]
n_jobs = 1
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> SimpleNamespace:
    d = tmp_path_factory.mktemp("bad_input")
    audio = d / "audio"
    audio.mkdir()
    for digit, freq in ((1, 440), (2, 880)):
        for take in range(3):
            sf.write(audio / f"{digit}_synth_{take}.wav", tone(freq * (1 + 0.02 * take)), RATE)
    bad = d / "bad"
    bad.mkdir()
    sf.write(bad / "empty.wav", np.zeros(0), RATE)
    sf.write(bad / "short.wav", 0.1 * np.ones(50), RATE)
    sf.write(bad / "huge_rate.wav", np.zeros(4000), 4_000_000)
    (bad / "text.wav").write_text("not audio at all\n")
    whole = (audio / "1_synth_0.wav").read_bytes()
    (bad / "truncated.wav").write_bytes(whole[: len(whole) // 2])
    x = tone(300).astype(np.float32)
    x[100] = np.nan
    sf.write(bad / "nan.wav", x, RATE, subtype="FLOAT")
    sf.write(d / "silence.wav", np.zeros(4000), RATE)
    (d / "not_a_model.npz").write_bytes(b"PK\x03\x04 garbage")
    (d / "tiny.toml").write_text(TOML)
    (d / "bad.toml").write_text("[model]\nn_states = -1\n")
    (d / "bad_dir.toml").write_text("[output]\ndir = 3\n")
    (d / "latin1.toml").write_bytes("# caf\xe9\n[output]\ndir = \"x\"\n".encode("latin-1"))
    (d / "labels.txt").write_text("1_synth_0.wav\t1\n")  # no label for the other files
    (d / "hyp.txt").write_text("a.wav\t1\nb.wav\t2\n")
    (d / "ref.txt").write_text("a.wav\t1\n")
    (d / "seq_hyp.txt").write_text("u1 a b\nu2 c\n")
    (d / "seq_ref.txt").write_text("u1 a b c\nu2 c\n")
    (d / "empty.txt").write_text("")
    (d / "dup_text.txt").write_text("u1 a\nu1 b\n")

    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (30, 3)), rng.normal(3, 1, (30, 3))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = GaussianMixture(2, random_state=0).fit(X)
        gh = GaussianHMM(2, random_state=0, n_iter=3).fit(X, [30, 30])
        gg = GMMHMM(2, n_mix=2, random_state=0, n_iter=3).fit(X, [30, 30])
    # left-to-right model that must end in its last state: sequences need >= 3 frames
    lr = GaussianHMM(3, init_params="", params="")
    lr.n_features = 3
    lr.startprob_, lr.transmat_, lr.endprob_ = topology.left_to_right(3, exit_prob=0.5)
    lr.means_ = np.zeros((3, 3))
    lr.covars_ = np.stack([np.eye(3)] * 3)

    config = FeatureConfig(sample_rate_hz=RATE)
    feats = {p: extract_features(p, config) for p in sorted(audio.glob("*.wav"))}
    clf = HMMClassifier(n_states=2, mix_schedule=(1,), n_iter=2).fit(
        list(feats.values()), [p.name[0] for p in feats])
    clf.save(d / "clf.npz", metadata={"feature_config": config.to_dict()})
    gm.save(d / "gmm.npz")
    nan = X.copy()
    nan[5, 1] = np.nan
    corpus = Corpus.create(d / "corpus", [("a", X[:30]), ("b", X[30:])], frames_per_shard=40)
    phones = EmbeddedTrainer(Lexicon.digits(), feature_config=config.to_dict()).flat_start(list(feats.values()))
    modelfile.save(phones, d / "phones.npz")
    (d / "words.txt").write_text("1_synth_0 one\n2_synth_0 eleven\ntext two\n")
    mixed = d / "mixed"
    mixed.mkdir()
    for p in [*sorted(audio.glob("*.wav")), bad / "text.wav", bad / "empty.wav"]:
        (mixed / p.name).write_bytes(p.read_bytes())
    return SimpleNamespace(corpus=corpus, mixed=mixed, d=d, audio=audio, bad=bad, X=X, nan=nan, gm=gm, gh=gh, gg=gg, lr=lr, clf=clf,
                           config=config, out=d / "out")


@dataclass(frozen=True)
class Case:
    entry: str
    problem: str
    call: Callable[[Any], Any]
    error: type
    match: str


def _inf(e):
    X = e.X.copy()
    X[7, 0] = np.inf
    return X


def _data_dir(e, name: str, **tables: str):
    """A data directory under ``e.d`` whose one utterance u1 is 1_synth_0.wav; ``tables`` override files."""
    d = e.d / name
    d.mkdir(exist_ok=True)
    files = {"wav.scp": f"u1 {e.audio / '1_synth_0.wav'}\n", "text": "u1 one\n", "utt2spk": "u1 s1\n", **tables}
    for file, text in files.items():
        (d / file.replace("_", ".")).write_text(text)
    return d


def _copy(e, name: str, new: str):
    """A copy of ``e.d / name`` as ``e.d / new``, for a case that must not touch the shared file."""
    (e.d / new).write_bytes((e.d / name).read_bytes())
    return e.d / new


def _three_utterances(e, name: str, text: str):
    """A data directory of u1, u2, u3 (1_synth_0, 1_synth_1, 2_synth_0.wav) with transcripts ``text``."""
    files = ("1_synth_0", "1_synth_1", "2_synth_0")
    return _data_dir(e, name, text=text, utt2spk="".join(f"u{i} s1\n" for i in (1, 2, 3)),
                     wav_scp="".join(f"u{i} {e.audio / f}.wav\n" for i, f in enumerate(files, 1)))


def _phone_toml(e):
    path = e.d / "phones.toml"
    path.write_text("[features]\nsample_rate_hz = 8000\n[training]\nmixtures = [1]\nn_iter = 1\n")
    return path


def _text_file(e, name: str, text: str):
    (e.d / name).write_text(text)
    return e.d / name


def _lexicon_file(e):
    path = e.d / "digits.lex"
    path.write_text(Lexicon.digits().to_text())
    return path


def _truncated_sphere(e):
    path = e.d / "cut.sph"
    header = b"NIST_1A\n   1024\nsample_count -i 800\nsample_rate -i 8000\nchannel_count -i 1\n" \
             b"sample_n_bytes -i 2\nsample_byte_format -s2 01\nsample_coding -s3 pcm\nend_head\n"
    path.write_bytes(header.ljust(1024, b" ") + np.zeros(400, "<i2").tobytes())
    return path


def _sphere(e):
    """A whole 0.1 s NIST SPHERE file (as _truncated_sphere, with its samples)."""
    path = e.d / "whole.sph"
    path.write_bytes(_truncated_sphere(e).read_bytes() + np.zeros(400, "<i2").tobytes())
    return path


def _trainer(e):
    t = EmbeddedTrainer(Lexicon.digits())
    t.flat_start([e.X])
    return t


def _old_style_end(e):
    g = copy.deepcopy(e.lr)
    g.transmat_, g.endprob_ = topology.left_to_right(3)[1], np.array([0.0, 0.0, 1.0])
    return g


def _unreachable_exit(e):
    g = copy.deepcopy(e.lr)  # starts in state 0, which never leaves; only state 2 exits
    g.transmat_, g.endprob_ = np.diag([1.0, 1.0, 0.5]), np.array([0.0, 0.0, 0.5])
    return g


def _bad_transmat(e):
    g = copy.deepcopy(e.gh)
    g.transmat_ = np.full((2, 2), 0.7)
    return g


def _nan39():
    x = np.zeros((10, 39))
    x[5, 1] = np.nan
    return x


def _arpa(e, text: str) -> Path:
    path = e.d / "lm.arpa"
    path.write_text(text)
    return path


_FILES = {"latin1.txt": "a.wav\t1\nb.wav\tcaf\u00e9\n".encode("latin-1"),
          "bom_ref.txt": "\ufeffa.wav\t1\nb.wav\t2\n".encode("utf-8"),
          "classes.txt": b"AA vowel extra\n"}


def _tree_stats(*keys: tuple, n_features: int = 1) -> TreeStats:
    """Tree statistics of one frame (of ones) per context key."""
    g = GaussianStats.zeros(len(keys), n_features, "diag")
    g.n[:], g.s1[:], g.s2[:] = 1.0, 1.0, 1.0
    return TreeStats(list(keys), g)


def _flat_tree() -> TreeContext:
    """The unsplit tree (one leaf per phone state) of the digit lexicon's phones, 3 states."""
    phones = Lexicon.digits().phones
    return build_tree(TreeStats.zeros(3), [], phones, 3, phones[-1])


def _file(e, name: str) -> Path:
    path = e.d / name
    path.write_bytes(_FILES[name])
    return path


def _fit(model, e):
    return model.fit(e.X) if isinstance(model, GaussianMixture) else model.fit(e.X, [30, 30])


def _save_bad_weights(e):
    model = copy.deepcopy(e.gm)
    model.weights_ = np.array([-0.5, 1.5])
    model.save(e.d / "never_written.npz")


def _hand_set(model, means, covars, **extra):
    """A model whose parameters are set by hand (hmmlearn style), not fitted."""
    S = model.n_components
    model.startprob_, model.transmat_ = np.full(S, 1 / S), np.full((S, S), 1 / S)
    model.means_, model.covars_ = means, covars
    for name, value in extra.items():
        setattr(model, name, value)
    return model


def _feature_file(e) -> Path:
    """A feature file, as `gmmhmm features` writes."""
    path = e.d / "feats.npz"
    save_features(path, {"a": e.X}, metadata={"feature_config": e.config.to_dict()})
    return path


def _tampered(e, name: str) -> Path:
    """A model file edited after saving (valid zip and header, invalid parameters)."""
    path = e.d / f"tampered_{name}.npz"
    if path.exists():
        return path
    metadata = {"feature_config": e.config.to_dict()}
    if name.startswith("clf"):
        model = copy.deepcopy(e.clf)
        n_labels, n_models = (10, 2) if name == "clf_more_labels" else (2, 10)
        model.classes_ = np.array([str(i) for i in range(n_labels)])
        model.models_ = [model.models_[i % 2] for i in range(n_models)]
    elif name == "phones_nan":
        model = modelfile.load(e.d / "phones.npz")
        model.means_ = model.means_.copy()
        model.means_[3, 2] = np.nan
    elif name == "gmm_weights":
        model = copy.deepcopy(e.gm)
        model.weights_ = np.array([-0.5, 1.5])
    elif name.startswith(("gmm_means_", "ghmm_means_")):
        model = copy.deepcopy(e.gm if name.startswith("gmm") else e.gh)
        kind = name.rsplit("_", 1)[1]
        m = model.means_
        model.means_ = {"bool": m > 0, "str": m.astype(str), "datetime": m.astype("datetime64[s]"),
                        "complex": m.astype(complex)}[kind]
    elif name == "list_metadata":
        model, metadata = e.gm, None
    else:
        raise KeyError(name)
    enc = modelfile._Encoder()
    header = {"format": modelfile.FORMAT, "version": 1, "model": enc.model(model, ""),
              "metadata": enc.value(metadata if metadata is not None else [1, 2], "metadata")}
    np.savez(path, __header__=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **enc.arrays)
    return path


LIBRARY = [
    # --- GaussianMixture -------------------------------------------------
    Case("GaussianMixture.fit", "empty X (0 rows)", lambda e: GaussianMixture(2).fit(np.zeros((0, 3))),
         E.InvalidInputError, "0 sample"),
    Case("GaussianMixture.fit", "1-D X", lambda e: GaussianMixture(2).fit(np.zeros(5)), E.InvalidInputError,
         "2-D.*reshape"),
    Case("GaussianMixture.fit", "3-D X", lambda e: GaussianMixture(2).fit(np.zeros((5, 2, 2))),
         E.InvalidInputError, "2-D"),
    Case("GaussianMixture.fit", "no features (n, 0)", lambda e: GaussianMixture(2).fit(np.zeros((5, 0))),
         E.InvalidInputError, "no features"),
    Case("GaussianMixture.fit", "string dtype", lambda e: GaussianMixture(2).fit(np.array([["a", "b"]] * 3)),
         E.InvalidInputError, "numeric"),
    Case("GaussianMixture.fit", "complex dtype", lambda e: GaussianMixture(2).fit(e.X.astype(complex)),
         E.InvalidInputError, "real"),
    Case("GaussianMixture.fit", "ragged nested list", lambda e: GaussianMixture(2).fit([[1, 2], [3]]),
         E.InvalidInputError, "cannot be converted"),
    Case("GaussianMixture.fit", "NaN in X", lambda e: GaussianMixture(2).fit(e.nan), E.NonFiniteInputError,
         "NaN.*row 5, column 1"),
    Case("GaussianMixture.fit", "inf in X", lambda e: GaussianMixture(2).fit(_inf(e)), E.NonFiniteInputError,
         "infinity.*row 7"),
    Case("GaussianMixture.fit", "fewer samples than components", lambda e: GaussianMixture(5).fit(e.X[:3]),
         E.InvalidInputError, "at least as many samples"),
    Case("GaussianMixture.fit", "a single sample", lambda e: GaussianMixture(2).fit(np.zeros((1, 3))),
         E.InvalidInputError, r"1 sample\(s\); at least 2 required"),
    Case("GaussianMixture.fit", "negative sample_weight",
         lambda e: GaussianMixture(2).fit(e.X, sample_weight=-np.ones(60)), E.InvalidInputError, "non-negative"),
    Case("GaussianMixture.fit", "sample_weight of wrong length",
         lambda e: GaussianMixture(2).fit(e.X, sample_weight=np.ones(3)), E.InvalidInputError, r"shape \(60,\)"),
    Case("GaussianMixture.fit", "n_components=0", lambda e: GaussianMixture(0).fit(e.X),
         E.InvalidParameterError, "n_components"),
    Case("GaussianMixture.fit", "unknown covariance_type", lambda e: GaussianMixture(2, covariance_type="x").fit(e.X),
         E.InvalidParameterError, "covariance_type"),
    Case("GaussianMixture.fit", "means_init of wrong shape",
         lambda e: GaussianMixture(2, means_init=np.zeros((3, 3))).fit(e.X), E.InvalidParameterError, "means_init"),
    Case("GaussianMixture.fit", "complex weights_init (numpy would drop the imaginary parts)",
         lambda e: GaussianMixture(2, weights_init=np.array([0.5 + 1j, 0.5 - 1j])).fit(e.X),
         E.InvalidParameterError, "weights_init must be real"),
    Case("GaussianMixture.fit", "complex precisions_init",
         lambda e: GaussianMixture(2, covariance_type="spherical", precisions_init=np.array([1 + 1j, 1])).fit(e.X),
         E.InvalidParameterError, "precisions_init must be real"),
    Case("GaussianMixture.fit", "weights_init not summing to 1",
         lambda e: GaussianMixture(2, weights_init=[0.3, 0.3]).fit(e.X), E.InvalidParameterError,
         "weights_init must sum to 1"),
    Case("GaussianMixture.fit", "unknown init_params", lambda e: GaussianMixture(2, init_params="magic").fit(e.X),
         E.InvalidParameterError, "init_params must be one of.*'magic'"),
    Case("GaussianMixture.fit", "negative reg_covar", lambda e: GaussianMixture(2, reg_covar=-1.0).fit(e.X),
         E.InvalidParameterError, "reg_covar must be a finite number >= 0"),
    Case("GaussianMixture.fit", "integer dtype", lambda e: GaussianMixture(2, dtype="int8").fit(e.X),
         E.InvalidParameterError, "dtype must be 'float64' or 'float32'"),
    Case("GaussianMixture.predict", "other feature dimension", lambda e: e.gm.predict(e.X[:, :2]),
         E.DimensionMismatchError, "2 features.*expect\\w* 3"),
    Case("GaussianMixture.predict", "before fit", lambda e: GaussianMixture(2).predict(e.X), E.NotFittedError,
         "not fitted"),
    Case("GaussianMixture.score_samples", "NaN in X", lambda e: e.gm.score_samples(e.nan), E.NonFiniteInputError,
         "NaN"),
    Case("GaussianMixture.score_samples", "other feature dimension", lambda e: e.gm.score_samples(np.zeros((3, 4))),
         E.DimensionMismatchError, "4 features.*expect\\w* 3"),
    Case("GaussianMixture.update", "statistics of another covariance type",
         lambda e: e.gm.update(GaussianMixture(2, covariance_type="diag").fit(e.X).accumulate(e.X)),
         E.InvalidInputError, "statistics"),
    # --- GaussianHMM / GMMHMM --------------------------------------------
    Case("GaussianHMM.fit", "lengths do not sum to len(X)", lambda e: GaussianHMM(2).fit(e.X, [10, 10]),
         E.InvalidLengthsError, "sum to 20.*60"),
    Case("GaussianHMM.fit", "negative length", lambda e: GaussianHMM(2).fit(e.X, [70, -10]),
         E.InvalidLengthsError, "positive"),
    Case("GaussianHMM.fit", "zero length", lambda e: GaussianHMM(2).fit(e.X, [60, 0]), E.InvalidLengthsError,
         "positive"),
    Case("GaussianHMM.fit", "fractional lengths", lambda e: GaussianHMM(2).fit(e.X, [30.5, 29.5]),
         E.InvalidLengthsError, "integers"),
    Case("GaussianHMM.fit", "2-D lengths", lambda e: GaussianHMM(2).fit(e.X, [[30, 30]]), E.InvalidLengthsError,
         "1-D"),
    Case("GaussianHMM.fit", "string lengths", lambda e: GaussianHMM(2).fit(e.X, ["30", "30"]),
         E.InvalidLengthsError, "integers"),
    Case("GaussianHMM.score", "lengths whose int64 sum wraps round to len(X)",
         lambda e: e.gh.score(e.X, np.array([2**63 - 1, 2**63 - 1, 62])), E.InvalidLengthsError,
         "sequence 0 has 9223372036854775807 frames but X has 60"),
    *[Case("GaussianHMM.covars_", f"{ctype} model given {what}",
           lambda e, c=ctype, v=value: setattr(GaussianHMM(2, covariance_type=c), "covars_", v),
           E.InvalidParameterError, f"'{ctype}' covars_ cannot hold")
      for ctype, what, value in [
          ("diag", "correlated full matrices", np.array([[[1.0, 0.5], [0.5, 1.0]], [[2.0, 0.0], [0.0, 1.0]]])),
          ("tied", "a different matrix per state", np.array([np.eye(2), 2 * np.eye(2)])),
          ("spherical", "a variance per feature", np.array([[1.0, 2.0], [3.0, 3.0]]))]],
    Case("GaussianHMM.fit", "empty X", lambda e: GaussianHMM(2).fit(np.zeros((0, 3))), E.InvalidInputError,
         "0 sample"),
    Case("GaussianHMM.fit", "1-D X", lambda e: GaussianHMM(2).fit(np.ones(5)), E.InvalidInputError, "2-D.*reshape"),
    Case("GaussianHMM.fit", "NaN in X", lambda e: GaussianHMM(2).fit(e.nan), E.NonFiniteInputError, "NaN"),
    Case("GaussianHMM.fit", "fewer frames than states", lambda e: GaussianHMM(5).fit(e.X[:2]),
         E.InvalidInputError, "at least 5 samples"),
    Case("GaussianHMM.fit", "X of another dimension than the preset parameters (init_params='')",
         lambda e: copy.deepcopy(e.lr).fit(e.X[:, :2]), E.DimensionMismatchError, "2 features.*expect\\w* 3"),
    Case("GaussianHMM.fit", "means_ set by hand, of another width than X, n_features unset",
         lambda e: _hand_set(GaussianHMM(2, init_params=""), np.zeros((2, 2)), np.ones((2, 2))).fit(e.X),
         E.DimensionMismatchError, "X has 3 features but means_ have 2"),
    Case("GMMHMM.fit", "means_ set by hand, of another width than X, init_params='s'",
         lambda e: _hand_set(GMMHMM(2, n_mix=2, init_params="s"), np.zeros((2, 2, 4)), np.ones((2, 2, 4)),
                             weights_=np.full((2, 2), 0.5)).fit(e.X),
         E.DimensionMismatchError, "X has 3 features but means_ have 4"),
    Case("GaussianHMM.fit", "unknown covariance_type", lambda e: GaussianHMM(2, covariance_type="banana").fit(e.X),
         E.InvalidParameterError, "covariance_type must be one of.*'banana'"),
    Case("GaussianHMM.fit", "unknown implementation", lambda e: GaussianHMM(2, implementation="fast").fit(e.X),
         E.InvalidParameterError, "implementation must be one of.*'fast'"),
    Case("GaussianHMM.score", "other feature dimension", lambda e: e.gh.score(e.X[:, :2]),
         E.DimensionMismatchError, "expect\\w* 3"),
    Case("GaussianHMM.score", "before fit", lambda e: GaussianHMM(2).score(e.X), E.NotFittedError, "not fitted"),
    Case("GaussianHMM.score", "NaN in X", lambda e: e.gh.score(e.nan), E.NonFiniteInputError, "NaN.*row 5, column 1"),
    Case("GaussianHMM.score", "1-D X", lambda e: e.gh.score(np.ones(5)), E.InvalidInputError, "2-D.*reshape"),
    Case("GaussianHMM.score", "transmat_ rows not summing to 1", lambda e: _bad_transmat(e).score(e.X),
         E.InvalidParameterError, "transmat_ must sum to 1"),
    Case("GaussianHMM.decode", "inf in X", lambda e: e.gh.decode(_inf(e)), E.NonFiniteInputError, "infinity"),
    Case("GaussianHMM.decode", "unknown algorithm", lambda e: e.gh.decode(e.X, algorithm="beam"),
         E.InvalidParameterError, "algorithm"),
    Case("GaussianHMM.score", "sequence too short for the topology", lambda e: e.lr.score(e.X[:2]),
         E.SequenceTooShortError, "2 frame.*at least 3"),
    Case("GaussianHMM.decode", "one sequence too short for the topology",
         lambda e: e.lr.decode(e.X[:10], [8, 2]), E.SequenceTooShortError, "sequence 1"),
    Case("GaussianHMM.score", "endprob_ set as a last-frame mask on a stochastic transmat_",
         lambda e: _old_style_end(e).score(e.X), E.InvalidParameterError, "transmat_ plus its endprob_"),
    Case("GaussianHMM.score", "no state path from a start state to an exit",
         lambda e: _unreachable_exit(e).score(e.X), E.InvalidParameterError,
         "no state path leads from a start state to an exit"),
    *[Case("GaussianHMM.sample", f"currstate={state!r}", lambda e, s=state: e.gh.sample(3, currstate=s),
           E.InvalidParameterError, "currstate must be a state of the model")
      for state in (-1, 2, 1.0)],
    Case("GMMHMM.fit", "inf in X", lambda e: GMMHMM(2, n_mix=2).fit(_inf(e)), E.NonFiniteInputError, "infinity"),
    Case("GMMHMM.score", "other feature dimension", lambda e: e.gg.score(e.X[:, :1]), E.DimensionMismatchError,
         "expect\\w* 3"),
    Case("GMMHMM.predict", "lengths longer than X", lambda e: e.gg.predict(e.X, [100]), E.InvalidLengthsError,
         "sequence 0 has 100 frames but X has 60"),
    Case("GMMHMM.fit", "n_mix=0", lambda e: GMMHMM(2, n_mix=0).fit(e.X), E.InvalidParameterError, "n_mix"),
    # --- checkpointed training -------------------------------------------
    Case("checkpoint.resume", "no checkpoint in the directory",
         lambda e: checkpoint_resume(GaussianHMM(2), e.X, checkpoint_dir=e.d / "nothing"), E.InvalidParameterError,
         "no checkpoint"),
    # --- sharded corpora ------------------------------------------------
    Case("Corpus.open", "missing index", lambda e: Corpus.open(e.d / "no_corpus"), E.ModelFileError,
         "no corpus index"),
    Case("Corpus.create", "NaN in one utterance", lambda e: Corpus.create(e.d / "c1", [("a", e.X), ("b", e.nan)]),
         E.NonFiniteInputError, "utterance 'b'"),
    Case("Corpus.create", "utterances of different dimensions",
         lambda e: Corpus.create(e.d / "c2", [("a", e.X), ("b", e.X[:, :2])]), E.DimensionMismatchError,
         "utterance 'b' has 2 features"),
    Case("Corpus.create", "no utterances", lambda e: Corpus.create(e.d / "c3", []), E.InvalidInputError,
         "at least one utterance"),
    Case("Corpus.create", "duplicate utterance id", lambda e: Corpus.create(e.d / "c4", [("a", e.X), ("a", e.X)]),
         E.InvalidInputError, "duplicate utterance id"),
    Case("fit_corpus", "n_iter=0", lambda e: fit_corpus(GaussianMixture(2), e.corpus, n_iter=0),
         E.InvalidParameterError, "n_iter"),
    Case("fit_corpus", "resume=True without a checkpoint_dir",
         lambda e: fit_corpus(GaussianMixture(2), e.corpus, resume=True), E.InvalidParameterError,
         "needs a checkpoint_dir"),
    Case("accumulate_corpus", "model of another dimension",
         lambda e: accumulate_corpus(GaussianMixture(2, random_state=0).fit(e.X[:, :2]), e.corpus),
         E.DimensionMismatchError, "expect\\w* 2"),
    # --- classifier ------------------------------------------------------
    Case("HMMClassifier.fit", "fractional n_iter", lambda e: HMMClassifier(n_iter=2.5).fit([e.X], [1]),
         E.InvalidParameterError, "n_iter must be an int or a list of ints"),
    Case("HMMClassifier.fit", "string mix_schedule", lambda e: HMMClassifier(mix_schedule="12").fit([e.X], [1]),
         E.InvalidParameterError, "mix_schedule must be an int or a list of ints"),
    Case("HMMClassifier.fit", "no sequences", lambda e: HMMClassifier().fit([], []), E.InvalidInputError, "empty"),
    Case("HMMClassifier.fit", "one 2-D array instead of a list", lambda e: HMMClassifier().fit(e.X, [1]),
         E.InvalidInputError, "list of"),
    Case("HMMClassifier.fit", "fewer labels than sequences",
         lambda e: HMMClassifier(n_states=2, mix_schedule=(1,), n_iter=1).fit([e.X, e.X], [1]),
         E.InvalidInputError, "one label per sequence"),
    Case("HMMClassifier.fit", "float labels",
         lambda e: HMMClassifier(n_states=2, mix_schedule=(1,), n_iter=1).fit([e.X, e.X], [1.5, 2.5]),
         E.InvalidInputError, "integers or strings"),
    Case("HMMClassifier.fit", "NaN in one sequence",
         lambda e: HMMClassifier(n_states=2, mix_schedule=(1,), n_iter=1).fit([e.nan, e.X], [1, 2]),
         E.NonFiniteInputError, r"X_list\[0\]"),
    Case("HMMClassifier.fit", "sequences of different dimensions",
         lambda e: HMMClassifier(n_states=2, mix_schedule=(1,), n_iter=1).fit([e.X, e.X[:, :2]], [1, 2]),
         E.InvalidInputError, "different feature dimensions"),
    Case("HMMClassifier.fit", "decreasing mix_schedule", lambda e: HMMClassifier(mix_schedule=(4, 2)).fit([e.X], [1]),
         E.InvalidParameterError, "non-decreasing"),
    Case("HMMClassifier.fit", "n_iter entries do not match the stages",
         lambda e: HMMClassifier(mix_schedule=(1, 2, 4), n_iter=(1, 2)).fit([e.X, e.X], [1, 2]),
         E.InvalidParameterError, "n_iter has 2 entries but mix_schedule has 3 stages"),
    Case("HMMClassifier.fit", "unknown covariance_type",
         lambda e: HMMClassifier(covariance_type="banded").fit([e.X, e.X], [1, 2]), E.InvalidParameterError,
         "covariance_type must be one of.*'banded'"),
    Case("HMMClassifier.fit", "n_states=0", lambda e: HMMClassifier(n_states=0).fit([e.X, e.X], [1, 2]),
         E.InvalidParameterError, "n_states must be an integer >= 1"),
    Case("HMMClassifier.fit", "min_covar=0", lambda e: HMMClassifier(min_covar=0.0).fit([e.X, e.X], [1, 2]),
         E.InvalidParameterError, "min_covar must be a number, finite and > 0"),
    Case("HMMClassifier.fit", "unknown scoring", lambda e: HMMClassifier(scoring="best").fit([e.X, e.X], [1, 2]),
         E.InvalidParameterError, "scoring must be one of.*'best'"),
    Case("HMMClassifier.fit", "n_jobs=0", lambda e: HMMClassifier(n_jobs=0).fit([e.X, e.X], [1, 2]),
         E.InvalidParameterError, "n_jobs must be a positive integer or -1"),
    Case("HMMClassifier.set_params", "unknown parameter", lambda e: HMMClassifier().set_params(n_mix=3),
         E.InvalidParameterError, "Invalid parameter 'n_mix' for HMMClassifier"),
    Case("HMMClassifier.predict", "other feature dimension", lambda e: e.clf.predict([e.X]),
         E.DimensionMismatchError, "expect\\w* 39"),
    Case("HMMClassifier.predict", "NaN in one sequence", lambda e: e.clf.predict([np.zeros((10, 39)), _nan39()]),
         E.NonFiniteInputError, r"X_list\[1\].*row 5, column 1"),
    Case("HMMClassifier.predict", "before fit", lambda e: HMMClassifier().predict([e.X]), E.NotFittedError,
         "not fitted"),
    # --- features --------------------------------------------------------
    Case("load_audio", "missing file", lambda e: load_audio(e.d / "missing.wav"), E.AudioError, "no such audio file"),
    Case("load_audio", "a folder", lambda e: load_audio(e.d), E.AudioError, "no such audio file"),
    Case("load_audio", "non-audio file", lambda e: load_audio(e.bad / "text.wav"), E.AudioError, "unreadable audio"),
    Case("load_audio", "zero-length audio", lambda e: load_audio(e.bad / "empty.wav"), E.AudioError, "no samples"),
    Case("load_audio", "truncated WAV", lambda e: load_audio(e.bad / "truncated.wav"), E.AudioError, "truncated"),
    Case("load_audio", "NaN samples in a float WAV", lambda e: load_audio(e.bad / "nan.wav"), E.AudioError,
         "NaN"),
    Case("load_audio", "huge sample rate in the header (4 MHz)", lambda e: load_audio(e.bad / "huge_rate.wav"),
         E.AudioError, "implausible sample rate 4000000"),
    Case("load_audio", "resampling to a negative rate", lambda e: load_audio(e.audio / "1_synth_0.wav", -8000),
         E.InvalidParameterError, "sample_rate_hz"),
    Case("speed_perturb", "speed factor 0", lambda e: speed_perturb(np.zeros(100), 0.0), E.InvalidParameterError,
         "speed factor must be a finite number from 0.5 to 2.0, got 0.0"),
    Case("speed_perturb", "speed factor NaN", lambda e: speed_perturb(np.zeros(100), float("nan")),
         E.InvalidParameterError, "speed factor must be a finite number"),
    Case("extract_features", "speed-perturbed missing file",
         lambda e: extract_features(PerturbedAudio(str(e.d / "missing.wav"), 0.9)), E.AudioError, "no such audio file"),
    Case("extract_features", "piped wav.scp command that fails",
         lambda e: extract_features(DataDir.read(_data_dir(e, "dp1", wav_scp="u1 sh -c 'echo no x.flac >&2; exit 2' |\n"))
                                    .source("u1")), E.AudioError,
         r"wav.scp:1: command .* failed \(exit status 2\): no x.flac"),
    Case("extract_features", "piped wav.scp command that writes no audio",
         lambda e: extract_features(DataDir.read(_data_dir(e, "dp2", wav_scp="u1 echo hello |\n")).source("u1")),
         E.AudioError, r"wav.scp:1: output of 'echo hello \|' is not readable audio"),
    Case("extract_features", "sph2pipe start point after the end of the recording",
         lambda e: extract_features(PipedAudio(f"sph2pipe -f wav -t 60: {_sphere(e)} |")), E.AudioError,
         r"sph2pipe start point 60 is after the end of the recording"),
    Case("perturb_speed", "a factor given twice",
         lambda e: perturb_speed(DataDir({"u": "a.wav"}, {"u": ["A"]}, {"u": "s"}), [0.9, 1.0, 0.9]),
         E.InvalidParameterError, "distinct factors"),
    Case("extract_features", "audio shorter than one frame", lambda e: extract_features(e.bad / "short.wav", e.config),
         E.AudioError, "short.wav.*too short for one 25 ms frame"),
    Case("extract_features", "signal without sample_rate_hz", lambda e: extract_features(np.zeros(8000)),
         E.InvalidParameterError, "sample_rate_hz is required"),
    Case("extract_features", "huge signal sample rate (1 THz)",
         lambda e: extract_features(np.zeros(8000), sample_rate_hz=10**12), E.InvalidParameterError, "at most"),
    Case("extract_features", "fractional sample rate",
         lambda e: extract_features(np.zeros(8000), sample_rate_hz=8000.5), E.InvalidParameterError, "integer"),
    Case("extract_features", "2-D signal", lambda e: extract_features(np.zeros((800, 2)), sample_rate_hz=RATE),
         E.InvalidInputError, "1-D"),
    Case("extract_features", "ragged list signal", lambda e: extract_features([[0.0], [1.0, 2.0]], sample_rate_hz=RATE),
         E.InvalidInputError, "cannot be converted"),
    Case("extract_features", "NaN in signal",
         lambda e: extract_features(np.array([0.0, np.nan] * 2000), sample_rate_hz=RATE), E.NonFiniteInputError,
         "NaN"),
    Case("extract_features", "config is not a FeatureConfig", lambda e: extract_features(e.audio / "1_synth_0.wav", {}),
         E.InvalidParameterError, "FeatureConfig"),
    Case("mfcc", "empty signal", lambda e: mfcc(np.zeros(0), 16000), E.AudioError, "0 samples"),
    Case("mfcc", "string signal", lambda e: mfcc(np.array(["a"] * 1000), 16000), E.InvalidInputError, "1-D real"),
    Case("mfcc", "rate differs from the config", lambda e: mfcc(np.zeros(8000), 8000, FeatureConfig()),
         E.InvalidParameterError, "resample"),
    Case("window_function", "1-sample window (was [nan])", lambda e: window_function("hamming", 1),
         E.InvalidParameterError, "length"),
    Case("frame_signal", "frame_shift=0 (was ZeroDivisionError)", lambda e: frame_signal(np.zeros(10), 4, 0),
         E.InvalidParameterError, "frame_shift"),
    Case("frame_signal", "frame_length=0 (was empty frames)", lambda e: frame_signal(np.zeros(10), 0, 1),
         E.InvalidParameterError, "frame_length"),
    Case("frame_signal", "2-D signal (was 3-D frames)", lambda e: frame_signal(np.zeros((3, 3)), 4, 2),
         E.InvalidInputError, "1-D"),
    Case("mel_filterbank", "n_fft=0 (was NaN weights)", lambda e: mel_filterbank(16000, 0, 10, 0.0, 8000.0),
         E.InvalidParameterError, "n_fft"),
    Case("FeatureConfig", "huge sample rate (1 GHz)", lambda e: FeatureConfig(sample_rate_hz=10**9),
         E.InvalidParameterError, "sample_rate_hz"),
    Case("FeatureConfig", "negative window", lambda e: FeatureConfig(window_ms=-1), E.InvalidParameterError,
         "window_ms"),
    Case("FeatureConfig", "window in HTK's 100 ns units (250000.0)", lambda e: FeatureConfig(window_ms=250000.0),
         E.InvalidParameterError, "window_ms=250000 is over the limit"),
    Case("FeatureConfig", "mel filters that cover no FFT bin (was a constant log-floor column)",
         lambda e: FeatureConfig(sample_rate_hz=8000, n_mels=128), E.InvalidParameterError,
         "n_mels=128 is too many mel filters at 8000 Hz with a 256-point FFT"),
    Case("FeatureConfig", "high frequency above Nyquist", lambda e: FeatureConfig(sample_rate_hz=8000, high_freq_hz=6000.0),
         E.InvalidParameterError, "Nyquist"),
    Case("deltas", "empty features", lambda e: deltas(np.zeros((0, 3))), E.InvalidInputError, "0 sample"),
    Case("deltas", "window=0", lambda e: deltas(e.X, 0), E.InvalidParameterError, "window"),
    Case("add_deltas", "order=-1", lambda e: add_deltas(e.X, -1), E.InvalidParameterError, "order"),
    Case("cmvn", "NaN in features", lambda e: cmvn(e.nan), E.NonFiniteInputError, "NaN"),
    Case("cmvn_per_speaker", "fewer speaker ids than utterances", lambda e: cmvn_per_speaker([e.X], ["a", "b"]),
         E.InvalidInputError, "speaker ids"),
    Case("extract_many", "n_jobs=0", lambda e: extract_many([e.audio / "1_synth_0.wav"], n_jobs=0),
         E.InvalidParameterError, "n_jobs"),
    Case("save_features", "1-D feature array", lambda e: save_features(e.out, {"a": np.zeros(3)}),
         E.InvalidInputError, "2-D"),
    Case("save_features", "keys 1 and '1' (one name twice)",
         lambda e: save_features(e.out, {1: e.X, "1": e.X}), E.InvalidInputError, "'1' twice"),
    Case("save_features", "metadata not JSON-able", lambda e: save_features(e.out, {"a": e.X}, {"x": object()}),
         E.InvalidInputError, "JSON"),
    Case("load_features", "a model file", lambda e: load_features(e.d / "gmm.npz"), E.ModelFileError,
         "'gmmhmm-model' file"),
    # --- model files -----------------------------------------------------
    Case("modelfile.load", "missing file", lambda e: modelfile.load(e.d / "missing.npz"), E.ModelFileError,
         "no such file"),
    Case("modelfile.load", "audio file instead of a model", lambda e: modelfile.load(e.audio / "1_synth_0.wav"),
         E.ModelFileError, "not an .npz"),
    Case("modelfile.load", "corrupt zip", lambda e: modelfile.load(e.d / "not_a_model.npz"), E.ModelFileError,
         "corrupt|truncated|unreadable"),
    Case("modelfile.load", "word models: 10 labels, 2 models", lambda e: modelfile.load(_tampered(e, "clf_more_labels")),
         E.ModelFileError, r"10 label\(s\) but 2 model"),
    Case("modelfile.load", "word models: 2 labels, 10 models", lambda e: modelfile.load(_tampered(e, "clf_more_models")),
         E.ModelFileError, r"2 label\(s\) but 10 model"),
    Case("modelfile.load", "phone models with a NaN mean", lambda e: modelfile.load(_tampered(e, "phones_nan")),
         E.ModelFileError, "means_ contains NaN"),
    Case("GaussianMixture.load", "weights [-0.5, 1.5]", lambda e: GaussianMixture.load(_tampered(e, "gmm_weights")),
         E.ModelFileError, "weights_ must be non-negative"),
    *[Case(f"{cls}.load", f"{kind} array as means_", lambda e, n=f"{tag}_means_{kind}": modelfile.load(_tampered(e, n)),
           E.ModelFileError, "means_ must hold real numbers")
      for cls, tag in (("GaussianMixture", "gmm"), ("GaussianHMM", "ghmm"))
      for kind in ("bool", "str", "datetime", "complex")],
    Case("modelfile.load", "metadata that is not a dict",
         lambda e: modelfile.load(_tampered(e, "list_metadata"), with_metadata=True), E.ModelFileError,
         "metadata must be a dict"),
    Case("GaussianMixture.save", "weights [-0.5, 1.5] (never written)",
         _save_bad_weights,
         E.ModelFileError, "not written.*weights_"),
    Case("GaussianHMM.load", "file holds another class", lambda e: GaussianHMM.load(e.d / "gmm.npz"),
         E.ModelFileError, "not a GaussianHMM"),
    Case("modelfile.save", "unregistered class", lambda e: modelfile.save(object(), e.out), E.ModelFileError,
         "get_params|registered"),
    # --- language models -------------------------------------------------
    Case("read_arpa", "missing file", lambda e: read_arpa(e.d / "missing.arpa"), E.ModelFileError, "does not exist"),
    Case("read_arpa", "text without \\data\\", lambda e: read_arpa(e.d / "tiny.toml"), E.ModelFileError,
         "not an ARPA"),
    Case("read_arpa", "header count differs from the section",
         lambda e: read_arpa(_arpa(e, "\\data\\\nngram 1=2\n\n\\1-grams:\n-0.3 </s>\n\\end\\\n")),
         E.ModelFileError, r"lm\.arpa:6: .*announces 2 1-grams"),
    Case("read_arpa", "no 1-grams", lambda e: read_arpa(_arpa(e, "\\data\\\nngram 1=0\n\n\\1-grams:\n\\end\\\n")),
         E.ModelFileError, r"lm\.arpa: no 1-grams"),
    Case("estimate", "a string instead of a word list", lambda e: estimate(["a b c"]), E.InvalidInputError,
         "is a string"),
    Case("estimate", "only empty sentences", lambda e: estimate([[]]), E.InvalidInputError, "no training sentences"),
    Case("estimate", "unknown smoothing method", lambda e: estimate([["a"]], method="add-one"),
         E.InvalidParameterError, "method must be"),
    # --- scoring ---------------------------------------------------------
    Case("accuracy", "lists of different lengths", lambda e: S.accuracy([1, 2], [1]), E.InvalidInputError,
         "2 reference"),
    Case("accuracy", "nothing to score", lambda e: S.accuracy([], []), E.InvalidInputError, "nothing to score"),
    Case("error_rates", "more hypotheses than references", lambda e: S.error_rates([["a"]], [["a"], ["b"]]),
         E.InvalidInputError, "1 reference"),
    Case("error_rates", "strings instead of token lists", lambda e: S.error_rates(["abc"], ["abd"]),
         E.InvalidInputError, "string"),
    Case("align", "None instead of a sequence", lambda e: S.align(None, ["a"]), E.InvalidInputError, "sequences"),
    Case("align", "negative cost", lambda e: S.align(["a"], ["b"], sub_cost=-1), E.InvalidParameterError, "sub_cost"),
    Case("confusion_matrix", "lists of different lengths", lambda e: S.confusion_matrix([1], [1, 2]),
         E.InvalidInputError, "1 reference"),
    # --- lexicon, transcripts, embedded training -------------------------
    Case("Lexicon", "empty lexicon", lambda e: Lexicon({}), E.TranscriptError, "empty"),
    Case("Lexicon.from_text", "word without phones", lambda e: Lexicon.from_text("word\n"), E.TranscriptError,
         "no phones"),
    Case("Lexicon.read", "missing file", lambda e: Lexicon.read(e.d / "missing.lex"), E.TranscriptError,
         "cannot read"),
    Case("Lexicon.read", "/dev/zero", lambda e: Lexicon.read("/dev/zero"), E.TranscriptError,
         "not a regular file or a pipe"),
    Case("Lexicon.read", "a folder", lambda e: Lexicon.read(e.d), E.TranscriptError, "is a directory"),
    Case("Lexicon.read", "latin-1 text", lambda e: Lexicon.read(_file(e, "latin1.txt")), E.TranscriptError,
         "not UTF-8"),
    Case("SearchOptions", "word_insertion_penalty=nan",
         lambda e: SearchOptions(word_insertion_penalty=float("nan")),
         E.InvalidParameterError, "word_insertion_penalty must be a finite number"),
    Case("SearchOptions", "lm_scale=nan", lambda e: SearchOptions(lm_scale=float("nan")),
         E.InvalidParameterError, "lm_scale must be a finite number"),
    *[Case(f"{cls.__name__}.fit", f"{name}={value!r}", lambda e, c=cls, n=name, v=value: _fit(c(**{n: v}), e),
           E.InvalidParameterError, name)
      for cls, name, value in [
          (GaussianHMM, "tol", float("nan")), (GaussianMixture, "tol", -1.0), (GaussianHMM, "tol", "x"),
          (GMMHMM, "tol", None), (GaussianHMM, "startprob_prior", float("nan")),
          (GaussianHMM, "startprob_prior", -1.0), (GaussianHMM, "transmat_prior", float("nan")),
          (GaussianHMM, "transmat_prior", "x"), (GMMHMM, "weights_prior", float("nan")),
          (GaussianHMM, "means_prior", float("nan")), (GaussianHMM, "means_weight", -1.0),
          (GaussianHMM, "covars_prior", float("inf")), (GaussianHMM, "covars_weight", "x"),
          (GaussianHMM, "startprob_prior", np.full(3, 2.0)), (GaussianHMM, "transmat_prior", np.full((3, 3), 2.0)),
          (GaussianHMM, "min_covar", [1, 2]), (GMMHMM, "min_covar", None), (GaussianMixture, "verbose", "x"),
          (GaussianMixture, "tol", float("nan")), (GaussianMixture, "reg_covar", -1.0)]],
    Case("Lexicon.pronounce", "unknown word", lambda e: Lexicon.digits().pronounce(["eleven"]), E.TranscriptError,
         "eleven"),
    Case("parse_transcripts", "duplicate utterance id", lambda e: parse_transcripts("u a\nu b\n"), E.TranscriptError,
         "duplicate"),
    Case("Lexicon.read", "lexiconp line without a probability", lambda e: Lexicon.from_text("a 1 ah\nb ah\n",
         format="kaldip"), E.TranscriptError, "lexicon:2: lexiconp line needs"),
    Case("Lexicon.read", "pronunciation probability above 1", lambda e: Lexicon.from_text("a 1.5 ah\n"),
         E.TranscriptError, r"lexicon:1: pronunciation probability 1.5 is not in \(0, 1\]"),
    Case("Lexicon.check_words", "several words missing", lambda e: Lexicon.digits().check_words(["ten", "one", "eleven"]),
         E.TranscriptError, "not in the lexicon: eleven, ten"),
    Case("DataDir.read", "utterance without speaker", lambda e: DataDir.read(_data_dir(e, "dd1", utt2spk="")),
         E.DataDirError, r"wav.scp:1: utterance 'u1' has no speaker"),
    Case("DataDir.read", "malformed utt2spk line", lambda e: DataDir.read(_data_dir(e, "dd2", utt2spk="u1 s1 s2\n")),
         E.DataDirError, r"utt2spk:1: expected 2 fields, got 3"),
    Case("DataDir.read", "missing audio file", lambda e: DataDir.read(_data_dir(e, "dd3", wav_scp="u1 /no/x.sph\n")),
         E.DataDirError, r"wav.scp:1: audio file of 'u1' does not exist"),
    Case("DataDir.read", "command after sox speed in wav.scp",
         lambda e: DataDir.read(_data_dir(e, "dd4", wav_scp="u1 sox -t wav x.wav -t wav - speed 0.9 | cat |\n")),
         E.DataDirError, r"wav.scp:1: only sox speed steps may follow sox"),
    Case("DataDir.read", "sph2pipe of a missing SPHERE file in wav.scp",
         lambda e: DataDir.read(_data_dir(e, "dd8", wav_scp="u1 sph2pipe -f wav -p -c 1 /no/x.sph |\n")),
         E.DataDirError, r"wav.scp:1: audio file of 'u1' does not exist: /no/x.sph"),
    Case("DataDir.read", "empty command before sox speed in wav.scp",
         lambda e: DataDir.read(_data_dir(e, "dd9", wav_scp="u1 | sox -t wav - -t wav - speed 0.9 |\n")),
         E.DataDirError, r"wav.scp:1: empty command in"),
    Case("DataDir.read", "sox speed factor out of range in wav.scp",
         lambda e: DataDir.read(_data_dir(e, "dd6", wav_scp="u1 sox -t wav x.wav -t wav - speed 3 |\n")),
         E.DataDirError, r"wav.scp:1: speed factor must be a finite number from 0.5 to 2.0, got 3.0 in 'sox"),
    Case("DataDir.read", "sox effect other than speed in wav.scp",
         lambda e: DataDir.read(_data_dir(e, "dd7", wav_scp="u1 sox -t wav x.wav -t wav - tempo 0.9 |\n")),
         E.DataDirError, r"wav.scp:1: sox effect 'tempo' is not understood \(only speed\)"),
    Case("DataDir.read", "feature scp as wav.scp", lambda e: DataDir.read(_data_dir(e, "dd5", wav_scp="u1 f.ark:14\n")),
         E.DataDirError, r"wav.scp:1: 'f.ark:14' is an archive offset: this looks like a feature scp"),
    Case("load_audio", "truncated NIST SPHERE file", lambda e: load_audio(_truncated_sphere(e)), E.AudioError,
         "truncated"),
    Case("EmbeddedTrainer.flat_start", "no utterances", lambda e: EmbeddedTrainer(Lexicon.digits()).flat_start([]),
         E.InvalidInputError, "no training"),
    Case("EmbeddedTrainer.fit", "fewer n_iter entries than mixtures (the last stage dropped)",
         lambda e: _trainer(e).fit([e.X], [["one"]], mixtures=(1, 2), n_iter=(1,)), E.InvalidParameterError,
         "n_iter"),
    Case("EmbeddedTrainer.accumulate", "unknown word in a transcript",
         lambda e: _trainer(e).accumulate([e.X], [["eleven"]]), E.TranscriptError, "eleven"),
    Case("EmbeddedTrainer.accumulate", "other feature dimension",
         lambda e: _trainer(e).accumulate([e.X[:, :2]], [["one"]]), E.DimensionMismatchError, "expect\\w* 3"),
    Case("EmbeddedTrainer.accumulate", "NaN in features", lambda e: _trainer(e).accumulate([e.nan], [["one"]]),
         E.NonFiniteInputError, "NaN"),
    Case("EmbeddedTrainer.accumulate", "fewer transcripts than utterances",
         lambda e: _trainer(e).accumulate([e.X, e.X], [["one"]]), E.InvalidInputError, "transcripts"),
    Case("adaptation_stats", "NaN in features (not 'no path through the graph')",
         lambda e: adaptation_stats(_trainer(e).model, e.nan, _trainer(e).graph(["one"])), E.NonFiniteInputError,
         "NaN.*row 5, column 1"),
    Case("speaker_fmllr_stats", "NaN in features (not an utterance left out as too short)",
         lambda e: speaker_fmllr_stats(_trainer(e).model, [e.X, e.nan], [_trainer(e).graph(["one"])] * 2,
                                       ["s", "s"]), E.NonFiniteInputError, "NaN"),
    Case("apply_speaker_transforms", "fewer speakers than utterances (the last ones dropped)",
         lambda e: apply_speaker_transforms([e.X, e.X], ["s"], {}), E.InvalidInputError, "2 feature arrays.*1 speaker"),
    # --- decision trees ---------------------------------------------------
    Case("TreeContext", "a node reached twice (not a tree)",
         lambda e: TreeContext(["a", "sil"], 1, "sil", [["a"]], [[0], [1]], [[0, 0, 0, 1], [-1, 0, -1, -1]]),
         E.InvalidParameterError, "reached twice"),
    Case("TreeContext", "a pdf shared by two phone states",
         lambda e: TreeContext(["a", "sil"], 1, "sil", [], [[0], [1]], [[-1, 0, -1, -1], [-1, 0, -1, -1]]),
         E.InvalidParameterError, "shared by two phone states"),
    Case("build_tree", "negative min_occupancy",
         lambda e: build_tree(TreeStats.zeros(2), [], ["a", "sil"], 1, "sil", min_occupancy=-1),
         E.InvalidParameterError, "min_occupancy"),
    Case("build_tree", "a question of unknown phones only (a case typo)",
         lambda e: build_tree(TreeStats.zeros(2), [["A"]], ["a", "sil"], 1, "sil"),
         E.InvalidParameterError, "unknown phones \\['A'\\]"),
    Case("cluster_questions", "statistics of a phone not in the phone list",
         lambda e: cluster_questions(_tree_stats(("a", "X", "sil", 0)), ["a", "sil"], 1), E.InvalidInputError,
         "phone 'X'"),
    Case("cluster_questions", "statistics of a state past n_states (would count as the next phone's)",
         lambda e: cluster_questions(_tree_stats(("a", "a", "sil", 1)), ["a", "sil"], 1), E.InvalidInputError,
         "states outside 0 .. 0"),
    Case("init_tied_model", "tree statistics of another feature dimension",
         lambda e: init_tied_model(_trainer(e).model, _flat_tree(), _tree_stats(("OW", "W", "AH", 0))),
         E.DimensionMismatchError, "1 features.*3"),
    Case("init_tied_model", "tree statistics of a state past n_states",
         lambda e: init_tied_model(_trainer(e).model, _flat_tree(), _tree_stats(("OW", "W", "AH", 5), n_features=3)),
         E.InvalidInputError, "states outside 0 .. 2"),
    Case("read_phone_classes", "a line with three fields",
         lambda e: read_phone_classes(_file(e, "classes.txt")), E.InvalidInputError, "classes.txt:1: expected"),
    Case("accumulate_tree_stats", "fewer transcripts than utterances",
         lambda e: accumulate_tree_stats(_trainer(e).model, [e.X, e.X], [["one"]]), E.InvalidInputError,
         "transcripts"),
    # --- feature transforms (LDA, MLLT) and their training ---------------
    Case("splice_frames", "negative context", lambda e: splice_frames(e.X, left=-1), E.InvalidParameterError,
         "left must be"),
    Case("FeatureTransform", "matrix width fits neither 3 spliced features nor an offset",
         lambda e: FeatureTransform(np.ones((2, 11)), 1, 1, n_source_features=3), E.InvalidParameterError,
         "11 columns"),
    Case("FeatureTransform.apply", "features of another dimension (deltas given to a statics transform)",
         lambda e: FeatureTransform(np.ones((2, 4)), 0, 1).apply(e.X), E.DimensionMismatchError, "takes 2"),
    Case("estimate_lda", "more dimensions than the input",
         lambda e: estimate_lda(accumulate_lda_stats(e.X, np.eye(2)[np.arange(60) // 30]), 4),
         E.InvalidParameterError, "exceeds the 3"),
    Case("estimate_lda", "duplicated feature column (singular within-class scatter)",
         lambda e: estimate_lda(accumulate_lda_stats(np.hstack([e.X, e.X[:, :1]]), np.eye(2)[np.arange(60) // 30]),
                                2), E.InvalidInputError, "singular"),
    Case("estimate_mllt", "statistics of no frames", lambda e: estimate_mllt(MlltStats.zeros(3)),
         E.InvalidInputError, "no frames"),
    Case("accumulate_mllt_stats", "zero variances",
         lambda e: accumulate_mllt_stats(e.X, np.ones((60, 2)), np.zeros((2, 3)), np.zeros((2, 3))),
         E.InvalidInputError, "positive variances"),
    Case("EmbeddedTrainer.accumulate", "stats_features with other frame counts",
         lambda e: _trainer(e).accumulate([e.X], [["one"]], stats_features=[e.X[1:]]), E.InvalidInputError,
         "frame counts"),
    Case("train_lda_mllt", "source features with other frame counts",
         lambda e: train_lda_mllt(_trainer(e), [e.X], [e.X[1:]], [["one"]]), E.InvalidInputError,
         "source features"),
    Case("train_lda_mllt", "LDA dimension above the spliced dimension",
         lambda e: train_lda_mllt(_trainer(e), [e.X], [e.X], [["one"]], LdaMlltOptions(lda_dim=28, splice=4)),
         E.InvalidParameterError, "exceeds the 27"),
    # --- search -----------------------------------------------------------
    Case("SearchOptions", "beam 0", lambda e: SearchOptions(beam=0), E.InvalidParameterError, "beam must be"),
    Case("SearchOptions", "max_active -1", lambda e: SearchOptions(max_active=-1), E.InvalidParameterError,
         "max_active must be"),
    Case("SearchOptions", "n_best 0", lambda e: SearchOptions(n_best=0), E.InvalidParameterError, "n_best must be"),
    Case("SearchOptions", "infinite word insertion penalty", lambda e: SearchOptions(word_insertion_penalty=np.inf),
         E.InvalidParameterError, "word_insertion_penalty must be a finite"),
    Case("compile_graph", "grammar words missing from the lexicon",
         lambda e: compile_graph(word_loop(["one", "eleven", "twelve"]), Lexicon.digits(), _transitions(), 3),
         E.TranscriptError, "2 grammar word.*eleven, twelve"),
    Case("compile_graph", "transitions of the wrong size",
         lambda e: compile_graph(word_loop(["one"]), Lexicon.digits(), (np.zeros(3), np.zeros(3)), 3),
         E.InvalidParameterError, "transitions must be"),
    Case("search.decode", "log-likelihoods with too few columns",
         lambda e: search_decode(_digit_graph(), np.zeros((50, 4))), E.InvalidInputError, "log_likelihood must be"),
    Case("search.decode", "NaN log-likelihoods",
         lambda e: search_decode(_digit_graph(), np.full((50, 60), np.nan)), E.InvalidInputError, "NaN"),
    Case("search.decode", "fewer frames than the graph needs",
         lambda e: search_decode(_digit_graph(), np.zeros((2, 60))), E.SequenceTooShortError, "needs at least 6"),
]


def _transitions() -> tuple[np.ndarray, np.ndarray]:
    n = 3 * len(Lexicon.digits().phones)
    return np.log(np.full(n, 0.6)), np.log(np.full(n, 0.4))


def _digit_graph():
    return compile_graph(word_list(Lexicon.digits().words), Lexicon.digits(), _transitions(), 3)


def _id(case: Case) -> str:
    return f"{case.entry}: {case.problem}"


@pytest.mark.parametrize("case", LIBRARY, ids=_id)
def test_library_bad_input(case: Case, env) -> None:
    assert issubclass(case.error, E.GmmhmmError) and issubclass(case.error, ValueError)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(case.error, match=case.match):
            case.call(env)


def test_silence_only_audio_gives_finite_features_and_a_warning(env, caplog):
    """Chosen behaviour: digital silence is valid audio (log energies are floored), with a warning."""
    with caplog.at_level("WARNING", logger="gmmhmm"):
        X = extract_features(env.d / "silence.wav", env.config)
    assert X.shape == (48, 39) and np.isfinite(X).all()
    assert "digital silence" in caplog.text


# ---------------------------------------------------------------------------
# The gmmhmm command
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CliCase:
    command: str
    problem: str
    argv: Callable[[Any], list[str]]
    code: int
    stderr: str  # regex every run must match on stderr
    check: Callable[[Any], None] | None = None  # what a batch job still produced


def _no_png(e) -> None:
    assert not (e.out / "c.png").exists()


def _n_features_written(e) -> None:
    feats, _ = load_features(e.out / "feats.npz")
    assert sorted(Path(k).name for k in feats) == ["1_synth_0.wav", "2_synth_0.wav"]


def _decoded_good_ones(e) -> None:
    lines = (e.out / "hyp.txt").read_text().splitlines()
    got = {Path(line.split("\t")[0]).name: line.split("\t")[1] for line in lines}
    assert got == {"1_synth_0.wav": "1", "2_synth_0.wav": "2"}


def _good_and_bad(e) -> list[str]:
    return [str(e.audio / "1_synth_0.wav"), *[str(p) for p in sorted(e.bad.iterdir())], str(e.audio / "2_synth_0.wav")]


CLI = [
    CliCase("features", "six bad files among two good ones (skipped, reported, rest written)",
            lambda e: ["features", *_good_and_bad(e), "-o", str(e.out / "feats.npz"), "--config", str(e.d / "tiny.toml")],
            1, r"skipped .*empty\.wav: .*no samples[\s\S]*skipped .*text\.wav: .*unreadable", _n_features_written),
    CliCase("features", "only bad files", lambda e: ["features", str(e.bad / "text.wav"), "-o", str(e.out / "x.npz")],
            1, "no file could be featurised"),
    CliCase("features", "folder without audio", lambda e: ["features", str(e.out), "-o", str(e.out / "x.npz")],
            1, "holds no audio files"),
    CliCase("features", "missing config file",
            lambda e: ["features", str(e.audio), "-o", str(e.out / "x.npz"), "--config", str(e.d / "none.toml")],
            1, "config file .* does not exist"),
    CliCase("features", "invalid config value",
            lambda e: ["features", str(e.audio), "-o", str(e.out / "x.npz"), "--config", str(e.d / "bad.toml")],
            1, r"bad\.toml \[model\]: n_states"),
    CliCase("features", "config with a number for a path",
            lambda e: ["features", str(e.audio), "-o", str(e.out / "x.npz"), "--config", str(e.d / "bad_dir.toml")],
            1, r"bad_dir\.toml \[output\]: dir must be a path string, got 3"),
    CliCase("features", "missing -o (usage error)", lambda e: ["features", str(e.audio)], 2, "required"),
    CliCase("train", "unknown label for a file (labels file misses it)",
            lambda e: ["train", str(e.audio), "-o", str(e.out / "m.npz"), "--config", str(e.d / "tiny.toml"),
                       "--labels", str(e.d / "labels.txt")], 1, "no label for"),
    CliCase("train", "bad files among good ones (skipped, reported, model still written)",
            lambda e: ["train", str(e.mixed), "-o", str(e.out / "mixed.npz"), "--config", str(e.d / "tiny.toml")],
            1, r"skipped .*empty\.wav: .*no samples[\s\S]*skipped .*text\.wav: .*unreadable",
            lambda e: modelfile.load(e.out / "mixed.npz").classes_.tolist() == ["1", "2"] or pytest.fail("labels")),
    CliCase("train", "empty labels file",
            lambda e: ["train", str(e.audio), "-o", str(e.out / "m.npz"), "--config", str(e.d / "tiny.toml"),
                       "--labels", str(e.d / "empty.txt")], 1, "labels file .* is empty"),
    CliCase("train", "a model file given as feature data",
            lambda e: ["train", str(e.d / "gmm.npz"), "-o", str(e.out / "m.npz"), "--config", str(e.d / "tiny.toml")],
            1, "'gmmhmm-model' file, expected 'gmmhmm-features'"),
    CliCase("train", "--speed-perturb of a feature file (no audio to perturb: refused before reading it)",
            lambda e: ["train", str(_feature_file(e)), "-o", str(e.out / "m.npz"), "--config", str(e.d / "tiny.toml"),
                       "--speed-perturb", "0.9,1.0,1.1"], 1, "--speed-perturb: .*feats.npz is a feature file"),
    CliCase("decode", "bad files among good ones (skipped, reported, rest decoded)",
            lambda e: ["decode", str(e.d / "clf.npz"), *_good_and_bad(e), "-o", str(e.out / "hyp.txt")],
            1, r"skipped .*huge_rate\.wav: .*implausible sample rate[\s\S]*skipped .*truncated\.wav: .*truncated",
            _decoded_good_ones),
    CliCase("decode", "--ctm and --lm with word models (no CTM was written, the LM never read)",
            lambda e: ["decode", str(e.d / "clf.npz"), str(e.audio), "-o", str(e.out / "h.txt"), "--ctm",
                       str(e.out / "w.ctm"), "--lm", str(e.d / "missing.arpa")], 1,
            "--lm, --ctm: only for phone-model files; .*clf.npz holds word models"),
    CliCase("decode", "model file is not a model",
            lambda e: ["decode", str(e.d / "not_a_model.npz"), str(e.audio)], 1, "not_a_model.npz"),
    CliCase("decode", "model file holds a GaussianMixture",
            lambda e: ["decode", str(e.d / "gmm.npz"), str(e.audio)], 1, "not an HMMClassifier"),
    CliCase("decode", "audio file given as the model",
            lambda e: ["decode", str(e.audio / "1_synth_0.wav"), str(e.audio)], 1, "not a gmmhmm file"),
    CliCase("align", "unknown word and non-audio file (skipped, reported, rest aligned)",
            lambda e: ["align", str(e.d / "phones.npz"), str(e.d / "words.txt"), str(e.audio / "1_synth_0.wav"),
                       str(e.audio / "2_synth_0.wav"), str(e.bad / "text.wav"), "-o", str(e.out / "ali")],
            1, r"skipped .*2_synth_0\.wav: word\(s\) not in the lexicon: eleven[\s\S]*skipped .*text\.wav: .*unreadable",
            lambda e: [p.name for p in (e.out / "ali").glob("*.TextGrid")] == ["1_synth_0.TextGrid"]
            or pytest.fail("alignments")),
    CliCase("train-phones", "transcript words missing from the lexicon (all listed at once)",
            lambda e: ["train-phones", str(_data_dir(e, "tp1", text="u1 one ten eleven\n")), "--lexicon",
                       str(_lexicon_file(e)), "--config", str(e.d / "tiny.toml"), "-o", str(e.out / "p.npz")],
            1, r"text: word\(s\) not in the lexicon: eleven, ten"),
    CliCase("train-phones", "output naming the lexicon (refused before training; the lexicon kept)",
            lambda e: ["train-phones", str(_data_dir(e, "tp2")), "--lexicon", str(_lexicon_file(e)),
                       "--config", str(e.d / "tiny.toml"), "-o", str(e.d / "digits.lex")],
            1, r"output .*digits\.lex is also an input",
            lambda e: Lexicon.read(e.d / "digits.lex") == Lexicon.digits() or pytest.fail("lexicon")),
    CliCase("train-phones", "speed perturbation factor out of range (usage error)",
            lambda e: ["train-phones", str(_data_dir(e, "tp6")), "--lexicon", str(_lexicon_file(e)),
                       "--config", str(e.d / "tiny.toml"), "-o", str(e.out / "p.npz"), "--speed-perturb", "0.9,3"],
            2, r"--speed-perturb: .*speed factor must be a finite number from 0.5 to 2.0, got 3.0"),
    CliCase("train-phones", "output folder missing (refused before training)",
            lambda e: ["train-phones", str(_data_dir(e, "tp3")), "--lexicon", str(_lexicon_file(e)),
                       "--config", str(e.d / "tiny.toml"), "-o", str(e.out / "no" / "p.npz")],
            1, r"folder .*no does not exist"),
    CliCase("train-phones", "an utterance with an empty transcript (skipped, reported, rest trained)",
            lambda e: ["train-phones", str(_three_utterances(e, "tp4", "u1 one\nu2\nu3 two\n")), "--lexicon",
                       str(_lexicon_file(e)), "--config", str(_phone_toml(e)), "-o", str(e.out / "tp4.npz")],
            1, r"skipped u2: transcript has no words[\s\S]*on 2 of 3 utterance\(s\)",
            lambda e: modelfile.load(e.out / "tp4.npz", with_metadata=True)[1]["n_train"] == 2
            or pytest.fail("n_train")),
    CliCase("train-phones", "every transcript empty (nothing to train on)",
            lambda e: ["train-phones", str(_three_utterances(e, "tp5", "u1\nu2\nu3\n")), "--lexicon",
                       str(_lexicon_file(e)), "--config", str(_phone_toml(e)), "-o", str(e.out / "tp5.npz")],
            1, r"no utterance .*has words to train on",
            lambda e: not (e.out / "tp5.npz").exists() or pytest.fail("model written")),
    CliCase("align", "data directory with an empty transcript (skipped, reported, rest aligned)",
            lambda e: ["align", str(e.d / "phones.npz"), str(_three_utterances(e, "al4", "u1 one\nu2\nu3 two\n")),
                       "-o", str(e.out / "al4")],
            1, r"skipped u2: transcript has no words[\s\S]*aligned 2 of 3",
            lambda e: sorted(p.stem for p in (e.out / "al4").glob("*.TextGrid")) == ["u1", "u3"]
            or pytest.fail("alignments")),
    CliCase("align", "transcripts file with an utterance without words (skipped, reported, rest aligned)",
            lambda e: ["align", str(e.d / "phones.npz"), str(_text_file(e, "al5.txt", "1_synth_0 one\n2_synth_0\n")),
                       str(e.audio / "1_synth_0.wav"), str(e.audio / "2_synth_0.wav"), "-o", str(e.out / "al5")],
            1, r"skipped .*2_synth_0\.wav: transcript has no words[\s\S]*aligned 1 of 2",
            lambda e: [p.name for p in (e.out / "al5").glob("*.TextGrid")] == ["1_synth_0.TextGrid"]
            or pytest.fail("alignments")),
    CliCase("train-tri", "output naming the monophone model (refused; the model kept)",
            lambda e: ["train-tri", str(_data_dir(e, "tt1")), "--mono", str(_copy(e, "phones.npz", "mono.npz")),
                       "-o", str(e.d / "mono.npz")],
            1, r"output .*mono\.npz is also an input",
            lambda e: (e.d / "mono.npz").read_bytes() == (e.d / "phones.npz").read_bytes() or pytest.fail("mono")),
    CliCase("decode", "data directory with an utterance without speaker",
            lambda e: ["decode", str(e.d / "phones.npz"), str(_data_dir(e, "dd5", utt2spk=""))],
            1, r"wav.scp:1: utterance 'u1' has no speaker"),
    CliCase("align", "missing transcripts file",
            lambda e: ["align", str(e.d / "phones.npz"), str(e.d / "none.txt"), str(e.audio), "-o", str(e.out / "a2")],
            1, "cannot read transcripts file"),
    CliCase("decode", "phone models over a word graph, one non-audio file (skipped, rest decoded)",
            lambda e: ["decode", str(e.d / "phones.npz"), str(e.audio / "1_synth_0.wav"), str(e.bad / "text.wav"),
                       "--graph", "words", "-o", str(e.out / "ph_hyp.txt")], 1, r"skipped .*text\.wav",
            lambda e: len((e.out / "ph_hyp.txt").read_text().splitlines()) == 1 or pytest.fail("hypotheses")),
    CliCase("lm", "text with a repeated utterance id",
            lambda e: ["lm", str(e.d / "dup_text.txt"), "-o", str(e.out / "lm.arpa")],
            1, r"dup_text\.txt:2: key 'u1' appears twice"),
    CliCase("lm", "missing text file", lambda e: ["lm", str(e.d / "none.txt"), "-o", str(e.out / "lm.arpa")],
            1, "cannot read text file"),
    CliCase("score", "hypothesis without reference (reported, rest scored)",
            lambda e: ["score", str(e.d / "hyp.txt"), "--ref", str(e.d / "ref.txt")], 1, "no reference for b.wav"),
    CliCase("score", "missing hypothesis file",
            lambda e: ["score", str(e.d / "missing.txt"), "--ref", str(e.d / "ref.txt")], 1, "cannot read hypothesis"),
    CliCase("score", "reference with a repeated key",
            lambda e: ["score", str(e.d / "hyp.txt"), "--ref", str(e.d / "dup_text.txt")], 1,
            r"dup_text\.txt:2: key 'u1' appears twice"),
    CliCase("info", "model file whose metadata is not a dict",
            lambda e: ["info", str(_tampered(e, "list_metadata"))], 1, "metadata must be a dict"),
    CliCase("decode", "word-model file with 10 labels and 2 models",
            lambda e: ["decode", str(_tampered(e, "clf_more_labels")), str(e.audio)], 1, r"10 label\(s\) but 2 model"),
    CliCase("decode", "phone-model file with a NaN mean (blamed, not the audio)",
            lambda e: ["decode", str(_tampered(e, "phones_nan")), str(e.audio)], 1, "means_ contains NaN"),
    # --- endless, huge or odd text inputs; outputs that cannot be written ------
    CliCase("train", "--config /dev/zero (a device: refused, not read)",
            lambda e: ["train", str(e.audio), "-o", str(e.out / "m.npz"), "--config", "/dev/zero"],
            1, "cannot read config file /dev/zero: not a regular file or a pipe"),
    CliCase("train", "--labels /dev/urandom",
            lambda e: ["train", str(e.audio), "-o", str(e.out / "m.npz"), "--config", str(e.d / "tiny.toml"),
                       "--labels", "/dev/urandom"], 1, "cannot read labels file /dev/urandom: not a regular file"),
    CliCase("score", "hypotheses from /dev/zero", lambda e: ["score", "/dev/zero", "--ref", str(e.d / "ref.txt")],
            1, "cannot read hypothesis file /dev/zero: not a regular file"),
    CliCase("align", "transcripts from /dev/zero",
            lambda e: ["align", str(e.d / "phones.npz"), "/dev/zero", str(e.audio), "-o", str(e.out / "a3")],
            1, "cannot read transcripts file /dev/zero: not a regular file"),
    CliCase("score", "latin-1 references", lambda e: ["score", str(e.d / "hyp.txt"), "--ref", str(_file(e, "latin1.txt"))],
            1, r"not UTF-8 text \(byte 0xe9 on line 2\)"),
    CliCase("features", "-o in a missing folder (checked before any work)",
            lambda e: ["features", str(e.audio), "-o", str(e.out / "nowhere" / "f.npz")], 1,
            "cannot write feature file .*: folder .*nowhere does not exist"),
    CliCase("train", "-o an existing folder (checked before training)",
            lambda e: ["train", str(e.audio), "-o", str(e.out), "--config", str(e.d / "tiny.toml")], 1,
            "model file .* is a folder; name a file"),
    CliCase("train", "--checkpoint-dir naming a file",
            lambda e: ["train", str(e.audio), "-o", str(e.out / "m.npz"), "--config", str(e.d / "tiny.toml"),
                       "--checkpoint-dir", str(e.d / "tiny.toml")], 1, "checkpoint folder .* exists and is not a folder"),
    CliCase("align", "-o an existing file",
            lambda e: ["align", str(e.d / "phones.npz"), str(e.d / "words.txt"), str(e.audio), "-o",
                       str(e.d / "hyp.txt")], 1, "alignment folder .*hyp.txt exists and is not a folder"),
    CliCase("decode", "--ctm in a missing folder (checked before decoding)",
            lambda e: ["decode", str(e.d / "phones.npz"), str(e.audio), "-o", str(e.out / "h.txt"), "--ctm",
                       str(e.out / "nowhere" / "w.ctm")], 1, "cannot write CTM file .*: folder .* does not exist"),
    CliCase("score", "--png of token sequences (no confusion matrix to draw; was ignored)",
            lambda e: ["score", str(e.d / "seq_hyp.txt"), "--ref", str(e.d / "seq_ref.txt"), "--png",
                       str(e.out / "c.png")], 1, "--png: .*isolated labels", _no_png),
    CliCase("score", "--png in a missing folder",
            lambda e: ["score", str(e.d / "hyp.txt"), "--ref", str(e.d / "hyp.txt"), "--png",
                       str(e.out / "nowhere" / "c.png")], 1, "cannot write PNG file .*: folder .* does not exist"),
    CliCase("decode", "-o naming the model file (an input)",
            lambda e: ["decode", str(e.d / "clf.npz"), str(e.audio), "-o", str(e.d / "clf.npz")], 1,
            "output .*clf.npz is also an input"),
    CliCase("features", "-o naming an input audio file",
            lambda e: ["features", str(e.audio), "-o", str(e.audio / "1_synth_0.wav")], 1,
            "output .*1_synth_0.wav is also an input"),
    CliCase("decode", "--insertion-penalty nan (usage error)",
            lambda e: ["decode", str(e.d / "phones.npz"), str(e.audio), "--insertion-penalty", "nan"], 2,
            "must be a finite number"),
    CliCase("decode", "--lm-scale nan (usage error)",
            lambda e: ["decode", str(e.d / "phones.npz"), str(e.audio), "--lm-scale", "nan"], 2,
            "must be a finite number"),
    CliCase("info", "missing model file", lambda e: ["info", str(e.d / "missing.npz")], 1, "no such file"),
    CliCase("info", "corrupt model file", lambda e: ["info", str(e.d / "not_a_model.npz")], 1, "corrupt|unreadable"),
    CliCase("(none)", "unknown command", lambda e: ["frobnicate"], 2, "invalid choice"),
]


@pytest.mark.parametrize("case", CLI, ids=lambda c: f"{c.command}: {c.problem}")
def test_cli_bad_input(case: CliCase, env, capsys) -> None:
    env.out.mkdir(exist_ok=True)
    code = main(case.argv(env))
    captured = capsys.readouterr()
    assert code == case.code, captured.err
    assert "Traceback" not in captured.err
    assert re.search(case.stderr, captured.err), captured.err
    if case.code == 1:  # our own messages: one line each, prefixed with the program name
        lines = [ln for ln in captured.err.splitlines() if re.search("error|skipped|no reference", ln)]
        assert lines and all(ln.startswith("gmmhmm") for ln in lines), captured.err
    if case.check is not None:
        case.check(env)


def test_a_batch_where_every_input_fails_keeps_the_earlier_outputs(env, capsys) -> None:
    """A run that decodes or aligns nothing is a failed run: it replaced the user's hypotheses, CTM
    and alignments with empty files (and deleted the TextGrids) where `features` writes nothing."""
    kept = env.out / "kept"
    (kept / "ali").mkdir(parents=True, exist_ok=True)
    earlier = {kept / "hyp.txt": "u1\tone\t-1.0\n", kept / "w.ctm": "u1 1 0.00 0.50 one\n",
               kept / "ali" / "u1.TextGrid": "grid\n", kept / "ali" / "words.ctm": "u1 1 0.00 0.50 one\n"}
    for path, text in earlier.items():
        path.write_text(text)
    bad = str(env.bad / "text.wav")
    for argv in (["decode", str(env.d / "clf.npz"), bad, "-o", str(kept / "hyp.txt")],
                 ["decode", str(env.d / "phones.npz"), bad, "-o", str(kept / "hyp.txt"), "--ctm", str(kept / "w.ctm")],
                 ["align", str(env.d / "phones.npz"), str(env.d / "words.txt"), bad, "-o", str(kept / "ali")]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert "skipped" in err and "no output written" in err, err
        assert {p: p.read_text() for p in earlier} == earlier, argv


def test_cli_in_a_real_process_prints_no_traceback(env) -> None:
    """The installed entry point path: a real interpreter, exit code and stderr as a user sees them."""
    proc = subprocess.run([sys.executable, "-m", "gmmhmm.cli", "decode", str(env.d / "not_a_model.npz"),
                           str(env.audio)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "not_a_model.npz" in proc.stderr


def test_batch_feature_extraction_skips_and_reports(env) -> None:
    paths = _good_and_bad(env)
    feats, failures = extract_many(paths, env.config)
    assert sorted(Path(p).name for p in feats) == ["1_synth_0.wav", "2_synth_0.wav"]
    assert sorted(Path(p).name for p, _ in failures) == sorted(p.name for p in env.bad.iterdir())
    assert all(msg for _, msg in failures)


def test_decode_files_skips_and_reports_bad_files(env, caplog) -> None:
    trainer = EmbeddedTrainer(Lexicon.digits(), feature_config=env.config.to_dict())
    model = trainer.flat_start([extract_features(p, env.config) for p in sorted(env.audio.glob("*.wav"))])
    paths = _good_and_bad(env)
    with caplog.at_level("WARNING", logger="gmmhmm"):
        results = decode_files(model, paths, graph="words")
    assert [Path(p).name for p, _, _ in results] == ["1_synth_0.wav", "2_synth_0.wav"]
    assert all(np.isfinite(score) and len(words) >= 1 for _, words, score in results)
    for bad in env.bad.iterdir():
        assert f"skipping {bad}" in caplog.text
    with pytest.raises(E.AudioError, match="no samples"):
        decode_files(model, [env.bad / "empty.wav"], graph="words", skip_errors=False)


CHOSEN_BEHAVIOUR = [
    '* Digital silence (all-zero audio) is valid: finite features (log energies are floored) and a logged warning.',
    '* Batch jobs (`extract_many`, `audio_utterances`, `decode_files`, `gmmhmm features/train/decode/align`) skip a bad file, report it once (return value / warning / stderr line `gmmhmm: skipped PATH: reason`) and finish the rest; the CLI then exits 1.',
    '* Sample rates: file headers must claim 1 kHz to 1 MHz; signals and `FeatureConfig` at most 1 MHz; resampling may produce at most 2**28 samples (about 4.7 h at 16 kHz). Running out of memory on one file skips that file.',
    "* A GMM component or HMM state whose occupancy is below the estimator's minimum keeps its previous parameters (its weight still fades), with a warning; variance floors hold after every update.",
    '* Outputs: an existing device, FIFO or terminal (`/dev/null`, `/dev/stdout`) is written into, never replaced; a symbolic link keeps pointing at its atomically replaced target; a folder as `-o` is refused; `train`, `features`, `decode`, `align` and `score --png` check their output locations before any work; an output that names one of the inputs is refused. `gmmhmm align` removes TextGrids of utterances a re-run did not align.',
    "* Every model is loaded back with the loader's checks before it is written; a model that would not load is an error (`ModelFileError: … not written`) and the old file is kept.",
    '* Model files: every class checks its parameters at load (probabilities in [0, 1] summing to 1, positive variances, real float arrays, one model per label, consistent shapes); loading never unpickles. Members may inflate to at most twice the file size plus 64 MiB (checked before inflating); headers nest at most 64 levels; metadata must be a dict.',
    '* Text inputs (configs, labels, hypotheses, references, transcripts, lexicons, data-dir tables, corpus indexes) must be regular files or pipes of at most 256 MiB, in UTF-8 (a leading byte-order mark is ignored; other encodings are refused with an `iconv` hint); a pipe that delivers nothing for 60 s is an error. File names that are not UTF-8 are read and written back byte for byte.',
    "* Worker processes: a killed worker's files or labels are retried one at a time in a fresh worker, up to two more times, then reported; workers exit within about 0.5 s when the driving process dies.",
    '* Checkpoints hold a digest of their parameters, settings, seed and history: one edited afterwards, or resumed with another `random_state`, is refused. A corpus index listing a shard twice is refused.',
]


def markdown() -> str:
    rows = ["| entry point | bad input | error | message contains |", "| --- | --- | --- | --- |"]
    for c in LIBRARY:
        rows.append(f"| `{c.entry}` | {c.problem} | `{c.error.__name__}` | `{_cell(c.match)}` |")
    rows += ["", "| `gmmhmm` command | bad input | exit code | stderr (one line per problem, no traceback) |",
             "| --- | --- | --- | --- |"]
    for c in CLI:
        rows.append(f"| `{c.command}` | {c.problem} | {c.code} | `{_cell(c.stderr)}` |")
    rows += ["", "| recipe command | exit code | stderr (one line, no traceback) |", "| --- | --- | --- |"]
    for argv, message in RECIPES:
        rows.append(f"| `python {' '.join(argv).replace('BAD_TOML', 'config-without-[training].toml').replace('LATIN1_TOML', 'latin1-config.toml').replace('FILE_TOML', 'an-existing-file')}` | 1 "
                    f"| `{_cell(message)}` |")
    rows += ["", "Chosen behaviour:", "", *CHOSEN_BEHAVIOUR]
    return "\n".join(rows) + "\n"


def _cell(regex: str) -> str:
    return regex.replace("|", "\\|")


RECIPES = [
    (["recipes/fsdd_digits.py", "--fsdd-dir", "/nonexistent/fsdd"], "fsdd_digits: error: FSDD folder .* does not exist"),
    (["recipes/fsdd_digits.py", "--config", "/nonexistent.toml"], "fsdd_digits: error: config file .* does not exist"),
    (["recipes/fsdd_phones.py", "--config", "/nonexistent.toml"], "fsdd_phones: error: config file .* does not exist"),
    (["recipes/fsdd_phones.py", "--config", "BAD_TOML"], "fsdd_phones: error: the config lacks the key 'training'"),
    (["recipes/an4.py", "--stage", "99"], r"an4: error: --stage 99: the stages are 0 \(data\) to 18"),
    (["recipes/an4.py", "--config", "LATIN1_TOML"], "an4: error: cannot read config file .* not UTF-8"),
    (["recipes/an4.py", "--out", "FILE_TOML"], "an4: error: output folder .*bad.toml exists and is not a folder"),
    (["recipes/fsdd_phones.py", "--config", "LATIN1_TOML"], "fsdd_phones: error: cannot read config file .* not UTF-8"),
    (["recipes/cathy_phones.py", "--stage", "3", "--stop-stage", "1"],
     "cathy_phones: error: --stage 3 --stop-stage 1: .*the first no later than the last"),
]


@pytest.mark.parametrize("argv, message", RECIPES,
                         ids=["digits: missing FSDD", "digits: missing config", "phones: missing config",
                              "phones: incomplete config", "an4: stage past the last", "an4: config not UTF-8",
                              "an4: --out names a file",
                              "phones: config not UTF-8",
                              "cathy: first stage after the last"])
def test_recipes_report_bad_input_in_one_line(argv, message, env) -> None:
    argv = [str(env.d / {"BAD_TOML": "bad.toml", "FILE_TOML": "bad.toml", "LATIN1_TOML": "latin1.toml"}[a]) if a.endswith("_TOML") else a
            for a in argv]
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert re.search(message, proc.stderr) and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


if __name__ == "__main__":
    Path("/tmp/bad_input_table.md").write_text(markdown())
    print(f"{len(LIBRARY)} library and {len(CLI)} CLI and {len(RECIPES)} recipe cases written to /tmp/bad_input_table.md")
