"""Monophones -> tied-state triphones on a slice of AN4 (three training speakers).

Fails loudly (never skips) when ../shared/data/an4 is missing.
"""

from __future__ import annotations

import tomllib

import numpy as np
import pytest

from gmmhmm import load, save
from gmmhmm.cli import main
from gmmhmm.data import DataDir, Lexicon
from gmmhmm.features import FeatureConfig, extract_many
from gmmhmm.graphs import EmbeddedTrainer, force_align
from gmmhmm.graphs.questions import read_phone_classes
from gmmhmm.graphs.tree import TreeContext
from gmmhmm.graphs.triphones import train_triphones

from conftest import REPO_ROOT, load_script

SPEAKERS = ["fash", "fbbh", "mblb"]


@pytest.fixture(scope="module")
def an4_slice(an4_path, tmp_path_factory):
    """(data dir of the slice, lexicon, features, transcripts, feature config)."""
    out = tmp_path_factory.mktemp("an4tree")
    load_script("data_scripts/prepare_an4.py").prepare(an4_path, out)
    with open(REPO_ROOT / "configs" / "an4.toml", "rb") as f:
        features = tomllib.load(f)["features"]
    train = DataDir.read(out / "train")
    ds = train.subset(u for s in SPEAKERS for u in train.spk2utt[s])
    ds.write(out / "slice")
    feats, failures = extract_many([ds.wav[u] for u in ds.utterances], FeatureConfig.from_dict(features),
                                   utt2spk={ds.wav[u]: ds.utt2spk[u] for u in ds.utterances})
    assert not failures
    utts = ds.utterances
    return (out / "slice", Lexicon.read(out / "lexicon.txt"), [feats[ds.wav[u]] for u in utts],
            [ds.text[u] for u in utts], features)


@pytest.fixture(scope="module")
def mono(an4_slice):
    """(monophones, their training history): one Gaussian per state, four passes."""
    _, lexicon, X, texts, features = an4_slice
    trainer = EmbeddedTrainer(lexicon, feature_config=features)
    history = trainer.fit(X, texts, mixtures=[1], n_iter=[4])
    return trainer.model, history


def test_mono_to_tri_raises_the_training_likelihood(an4_slice, mono, tmp_path):
    _, lexicon, X, texts, features = an4_slice
    mono_model, mono_history = mono
    classes = read_phone_classes(REPO_ROOT.parent / "shared" / "data" / "cmudict" / "cmudict.phones")
    tri, history = train_triphones(mono_model, X, texts, phone_classes=classes, min_occupancy=50, max_leaves=150,
                                   mixtures=[1], n_iter=[2])
    assert isinstance(tri.context, TreeContext)
    assert mono_model.n_pdfs < tri.n_pdfs <= 150
    assert all(b >= a - 1e-6 for a, b in zip(history[1:], history[2:])), history
    # one Gaussian per state either way: the tied triphones fit the training data better
    assert history[-1] > mono_history[-1] + 0.5, (mono_history, history)
    save(tri, tmp_path / "tri.npz")
    back = load(tmp_path / "tri.npz")
    path = force_align(back, X[0], texts[0])  # alignment goes through the cross-word triphone graph
    assert path.tokens() == texts[0]
    assert np.isfinite(path.score)


def test_train_tri_command(an4_slice, mono, tmp_path, capsys):
    data = an4_slice[0]
    save(mono[0], tmp_path / "mono.npz")
    tri = tmp_path / "tri.npz"
    assert main(["train-tri", str(data), "--mono", str(tmp_path / "mono.npz"), "-o", str(tri), "--num-leaves", "110",
                 "--min-occupancy", "80", "--mixtures", "1,2", "--n-iter", "1"]) == 0
    model = load(tri)
    assert isinstance(model.context, TreeContext) and mono[0].n_pdfs < model.n_pdfs <= 110 and model.n_mix == 2
    assert model.feature_config == mono[0].feature_config
    assert "tied states" in capsys.readouterr().err
    # a missing model file, a model file of another kind and bad schedules are refused with one line
    assert main(["train-tri", str(data), "--mono", str(tmp_path / "missing.npz"), "-o", str(tmp_path / "x.npz")]) == 1
    assert "missing.npz" in capsys.readouterr().err
    out = str(tmp_path / "x.npz")
    assert main(["train-tri", str(data), "--mono", str(tri), "-o", out, "--mixtures", "2,0"]) == 2
    assert "positive integers" in capsys.readouterr().err
    assert main(["train-tri", str(data), "--mono", str(tri), "-o", out, "--mixtures", "2,1"]) == 1
    assert "non-decreasing" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()
