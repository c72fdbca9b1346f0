"""LDA + MLLT on a slice of AN4: monophones, then tri2b-style models, through the library and the CLI.

Uses three training speakers of ../shared/data/an4 (fails loudly when it is missing).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from conftest import load_script

from gmmhmm import load
from gmmhmm.cli import main
from gmmhmm.data import DataDir, Lexicon
from gmmhmm.errors import DimensionMismatchError
from gmmhmm.features import FeatureConfig, extract_many
from gmmhmm.features.transforms import FeatureTransform
from gmmhmm.graphs import EmbeddedTrainer, force_align
from gmmhmm.graphs.lda_mllt import LdaMlltOptions, static_features, train_lda_mllt
from gmmhmm.scoring import error_rates

SPEAKERS = ["fash", "mblw", "fjdn"]
CONFIG = FeatureConfig(sample_rate_hz=16000, delta_order=2, cmvn="speaker")
TOML = """
[features]
sample_rate_hz = 16000
delta_order = 2
cmvn = "speaker"

[training]
mixtures = [1, 2]
n_iter = [2, 1]
"""


@pytest.fixture(scope="module")
def an4_slice(an4_path, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("an4lda")
    load_script("data_scripts/prepare_an4.py").prepare(an4_path, tmp / "all")
    train = DataDir.read(tmp / "all" / "train")
    ds = train.subset(u for s in SPEAKERS for u in train.spk2utt[s])
    ds.write(tmp / "data")
    (tmp / "tiny.toml").write_text(TOML)
    feats, failures = extract_many([ds.wav[u] for u in ds.utterances], CONFIG,
                                   utt2spk={ds.wav[u]: ds.utt2spk[u] for u in ds.utterances})
    assert not failures
    utts = ds.utterances
    return tmp, ds, Lexicon.read(tmp / "all" / "lexicon.txt"), utts, [feats[ds.wav[u]] for u in utts]


@pytest.fixture(scope="module")
def models(an4_slice):
    _, ds, lexicon, utts, feats = an4_slice
    texts = [ds.text[u] for u in utts]
    mono = EmbeddedTrainer(lexicon, feature_config=CONFIG.to_dict())
    mono.fit(feats, texts, mixtures=(1, 2), n_iter=(3, 2))
    tri2 = copy.deepcopy(mono)
    history = train_lda_mllt(tri2, feats, [static_features(X, CONFIG) for X in feats], texts,
                             LdaMlltOptions(lda_dim=40, splice=4, n_iter=3, mllt_iters=(0, 1)))
    return mono.model, tri2.model, history


def test_lda_mllt_models_on_an4(models, an4_slice):
    mono, tri2, history = models
    _, ds, _, utts, feats = an4_slice
    assert tri2.n_features == 40 and tri2.n_mix == mono.n_mix
    t = tri2.feature_transform_
    assert isinstance(t, FeatureTransform) and (t.n_source_features, t.n_spliced) == (13, 117)
    assert FeatureConfig.from_dict(tri2.feature_config) == CONFIG.replace(delta_order=0)
    # re-estimation in the LDA space (MLLT passes with their log|det|) raises the likelihood
    assert all(b >= a - 1e-6 for a, b in zip(history[1:], history[2:])), history
    # the new models align the training utterances as the monophones do, to a frame or two
    agree = []
    for u, X in list(zip(utts, feats))[:8]:
        a = force_align(mono, X, ds.text[u])
        b = force_align(tri2, tri2.transform_features(static_features(X, CONFIG)), ds.text[u])
        frames_a = np.repeat([s.label for s in a.phones], [s.end_frame - s.start_frame for s in a.phones])
        frames_b = np.repeat([s.label for s in b.phones], [s.end_frame - s.start_frame for s in b.phones])
        agree.append(np.mean(frames_a == frames_b))
    assert np.mean(agree) > 0.8, agree
    with pytest.raises(DimensionMismatchError):
        tri2.transform_features(feats[0])  # 39 columns: the model needs the 13 statics


def test_cli_trains_decodes_and_aligns_with_the_stored_transform(an4_slice, capsys):
    tmp, ds, _, _, _ = an4_slice
    model = tmp / "tri2.npz"
    assert main(["train-phones", str(tmp / "data"), "--lexicon", str(tmp / "all" / "lexicon.txt"),
                 "--config", str(tmp / "tiny.toml"), "-o", str(model), "--lda-mllt", "--lda-dim", "30",
                 "--splice", "3", "--lda-mllt-iters", "2"]) == 0
    assert "LDA+MLLT (30 dims)" in capsys.readouterr().err
    m = load(model)
    assert m.n_features == 30 and m.feature_transform_.n_spliced == 13 * 7
    assert main(["info", str(model)]) == 0
    assert "feature transform: 13 features spliced -3/+3, matrix (30, 91)" in capsys.readouterr().out
    # decoding and alignment need no new option: the model file carries the transform
    assert main(["lm", str(tmp / "data" / "text"), "-o", str(tmp / "lm.arpa")]) == 0
    few = ds.subset(ds.utterances[::5])
    few.write(tmp / "few")
    hyp = tmp / "hyp.txt"
    assert main(["decode", str(model), str(tmp / "few"), "--lm", str(tmp / "lm.arpa"), "-o", str(hyp),
                 "--beam", "130", "--max-active", "2000"]) == 0
    hyps = {k: words.split() for k, words, _ in (line.split("\t") for line in hyp.read_text().splitlines())}
    er = error_rates([few.text[u] for u in few.utterances], [hyps[u] for u in few.utterances])
    assert er.error_rate < 0.5  # seen speakers and sentences: most words right
    assert main(["align", str(model), str(tmp / "few"), "-o", str(tmp / "ali")]) == 0
    words = [line.split() for line in (tmp / "ali" / "words.ctm").read_text().splitlines()]
    for u in few.utterances:
        assert [w[4] for w in words if w[0] == u and w[4] != "sil"] == few.text[u]


def test_cli_lda_options_checked_before_training(an4_slice, capsys):
    tmp, _, _, _, _ = an4_slice
    argv = ["train-phones", str(tmp / "data"), "--lexicon", str(tmp / "all" / "lexicon.txt"),
            "--config", str(tmp / "tiny.toml"), "-o", str(tmp / "bad.npz"), "--lda-mllt"]
    assert main(argv + ["--lda-dim", "200"]) == 1
    assert "--lda-dim 200 exceeds the 117 dimensions" in capsys.readouterr().err
    assert main(argv + ["--splice", "-1"]) == 1
    assert "splice" in capsys.readouterr().err
    assert not (tmp / "bad.npz").exists()
