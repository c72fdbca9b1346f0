"""Integration: phone models from word transcripts on a slice of FSDD."""

from __future__ import annotations

import numpy as np
import pytest

from gmmhmm.datasets import list_fsdd, official_split
from gmmhmm.features import FeatureConfig, extract_many, load_audio
from gmmhmm.graphs import DIGIT_WORDS, EmbeddedTrainer, Lexicon, decode_files, force_align, make_graph, viterbi_path

pytestmark = pytest.mark.integration

DIGITS = ("1", "2", "5", "6")  # W AH N, T UW, F AY V, S IH K S: 9 phones + sil


@pytest.fixture(scope="module")
def setup(fsdd_path):
    utts = [u for u in list_fsdd(fsdd_path) if u.digit in DIGITS and u.speaker in ("jackson", "george")]
    train, test = official_split(utts)
    train = [u for u in train if u.index < 25]
    config = FeatureConfig.fsdd()
    feats, failures = extract_many([u.path for u in train + test], config)
    assert not failures
    lex = Lexicon({DIGIT_WORDS[int(d)]: Lexicon.digits().pronunciations[DIGIT_WORDS[int(d)]] for d in DIGITS})
    tr = EmbeddedTrainer(lex, feature_config=config.to_dict())
    history = tr.fit([feats[str(u.path)] for u in train], [[DIGIT_WORDS[int(u.digit)]] for u in train],
                     mixtures=(1, 2), n_iter=(3, 2))
    return tr.model, feats, test, history


def test_isolated_word_accuracy_well_above_chance(setup):
    model, feats, test, history = setup
    assert all(b >= a - 1e-6 for a, b in zip(history[:3], history[1:3]))
    g = make_graph(model, "words")
    hyps = [viterbi_path(model, feats[str(u.path)], g).tokens() for u in test]
    acc = np.mean([h == [DIGIT_WORDS[int(u.digit)]] for h, u in zip(hyps, test)])
    assert acc >= 0.85  # chance is 0.25


def test_alignment_of_test_takes(setup):
    model, feats, test, _ = setup
    for u in test[:10]:
        X = feats[str(u.path)]
        word = DIGIT_WORDS[int(u.digit)]
        path = force_align(model, X, [word], 0.01, len(X) * 0.01 + 0.015)
        spoken = [s for s in path.words if s.label != "sil"]
        assert [s.label for s in spoken] == [word]
        assert 0.0 <= spoken[0].start_s < spoken[0].end_s <= len(X) * 0.01 + 0.015


def test_decode_files_from_model_file(setup, tmp_path):
    from gmmhmm import save

    model, _, test, _ = setup
    save(model, tmp_path / "phones.npz")
    paths = [u.path for u in test[:6]]
    results = decode_files(tmp_path / "phones.npz", paths, graph="words")
    assert [r[0] for r in results] == [str(p) for p in paths]
    for (_, tokens, score), u in zip(results, test[:6]):
        assert len(tokens) == 1 and np.isfinite(score)
        label, start, end = tokens[0]
        assert label in {DIGIT_WORDS[int(d)] for d in DIGITS} and 0.0 <= start < end
    hits = sum(r[1][0][0] == DIGIT_WORDS[int(u.digit)] for r, u in zip(results, test[:6]))
    assert hits >= 4


def test_cli_graph_decode_and_align(setup, tmp_path, capsys):
    """`gmmhmm decode` on a phone-model file decodes graphs; `gmmhmm align` writes CTM + TextGrid."""
    from gmmhmm import save
    from gmmhmm.cli import main

    model, _, test, _ = setup
    save(model, tmp_path / "phones.npz")
    paths = [str(u.path) for u in test[:4]]
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    rc = main(["decode", str(tmp_path / "phones.npz"), *paths, str(bad), "--graph", "words",
               "-o", str(tmp_path / "hyp.txt"), "--ctm", str(tmp_path / "hyp.ctm")])
    assert rc == 1  # the bad file is reported, the rest decoded
    assert "bad.wav" in capsys.readouterr().err
    lines = [line.split("\t") for line in (tmp_path / "hyp.txt").read_text().splitlines()]
    assert [line[0] for line in lines] == paths
    assert all(len(line[1].split()) == 1 and np.isfinite(float(line[2])) for line in lines)
    assert len((tmp_path / "hyp.ctm").read_text().splitlines()) == len(paths)

    (tmp_path / "text").write_text("".join(f"{u.path.stem} {DIGIT_WORDS[int(u.digit)]}\n" for u in test[:4]))
    rc = main(["align", str(tmp_path / "phones.npz"), str(tmp_path / "text"), *paths, "-o", str(tmp_path / "ali")])
    assert rc == 0
    words = [line.split() for line in (tmp_path / "ali" / "words.ctm").read_text().splitlines()]
    spoken = [w for w in words if w[4] != "sil"]
    assert [(w[0], w[4]) for w in spoken] == [(u.path.stem, DIGIT_WORDS[int(u.digit)]) for u in test[:4]]
    assert all((tmp_path / "ali" / f"{u.path.stem}.TextGrid").is_file() for u in test[:4])


def test_connected_digits_builder(fsdd_path):
    from data_scripts.connected_digits import make_connected_digits
    from gmmhmm.datasets import parse_name

    _, test = official_split([u for u in list_fsdd(fsdd_path) if u.speaker in ("theo", "lucas")])
    a = make_connected_digits(test, 6, seed=3, min_digits=3, max_digits=5)
    b = make_connected_digits(test, 6, seed=3, min_digits=3, max_digits=5)
    for x, y in zip(a, b):
        assert x.words == y.words and np.array_equal(x.signal, y.signal)
    for c in a:
        assert 3 <= len(c.words) <= 5 and c.sample_rate_hz == 8000
        takes = [parse_name(p) for p in c.sources]
        assert len({t.speaker for t in takes}) == 1 and c.utt_id.startswith(takes[0].speaker)
        assert c.words == [DIGIT_WORDS[int(t.digit)] for t in takes]
        # the takes plus at least 50 ms of gap before, between and after each
        n_takes = sum(len(load_audio(p, 8000)[0]) for p in c.sources)
        assert len(c.signal) >= n_takes + (len(takes) + 1) * 400
