"""Integration: phone models from word transcripts on a slice of FSDD."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import REPO_ROOT, load_script

from gmmhmm.datasets import list_fsdd, official_split
from gmmhmm.errors import InvalidParameterError
from gmmhmm.features import FeatureConfig, extract_many, load_audio
from gmmhmm.decoding import decode_files, decoding_graph
from gmmhmm.graphs import DIGIT_WORDS, EmbeddedTrainer, Lexicon, force_align
from gmmhmm.search import SearchOptions, decode

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
    g = decoding_graph(model, "words")
    hyps = [decode(g, model.state_log_likelihood(feats[str(u.path)])).words for u in test]
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
    assert rc == 1  # the bad file is reported with its own error, the rest decoded
    assert f"skipped {bad}: unreadable audio file" in capsys.readouterr().err
    lines = [line.split("\t") for line in (tmp_path / "hyp.txt").read_text().splitlines()]
    assert [line[0] for line in lines] == paths
    assert all(len(line[1].split()) == 1 and np.isfinite(float(line[2])) for line in lines)
    ctm = [line.split() for line in (tmp_path / "hyp.ctm").read_text().splitlines()]
    assert [(c[0], c[1], c[4]) for c in ctm] == [(u.path.stem, "1", line[1]) for u, line in zip(test[:4], lines)]

    (tmp_path / "text").write_text("# utt word\n" + "".join(f"{u.path.stem} {DIGIT_WORDS[int(u.digit)]}\n"
                                                            for u in test[:4]))
    rc = main(["align", str(tmp_path / "phones.npz"), str(tmp_path / "text"), *paths, "-o", str(tmp_path / "ali"),
               "--png"])
    assert rc == 0
    assert all((tmp_path / "ali" / f"{u.path.stem}.png").read_bytes()[:4] == b"\x89PNG" for u in test[:4])
    words = [line.split() for line in (tmp_path / "ali" / "words.ctm").read_text().splitlines()]
    spoken = [w for w in words if w[4] != "sil"]
    assert [(w[0], w[4]) for w in spoken] == [(u.path.stem, DIGIT_WORDS[int(u.digit)]) for u in test[:4]]
    assert all((tmp_path / "ali" / f"{u.path.stem}.TextGrid").is_file() for u in test[:4])

    # an unreadable file with a transcript: its own error, the rest aligned
    (tmp_path / "text2").write_text((tmp_path / "text").read_text() + f"{bad.stem} one\n")
    assert main(["align", str(tmp_path / "phones.npz"), str(tmp_path / "text2"), *paths, str(bad),
                 "-o", str(tmp_path / "ali2")]) == 1
    err = capsys.readouterr().err
    assert f"skipped {bad}: unreadable audio file" in err and "aligned 4 of 5" in err
    assert sorted(p.stem for p in (tmp_path / "ali2").glob("*.TextGrid")) == sorted(u.path.stem for u in test[:4])
    (tmp_path / "text3").write_text("a one\na two\n")
    assert main(["align", str(tmp_path / "phones.npz"), str(tmp_path / "text3"), *paths,
                 "-o", str(tmp_path / "a3")]) == 1
    assert "text3:2: duplicate utterance id 'a'" in capsys.readouterr().err


def test_cli_phone_models_extract_with_jobs_progress_and_speakers(setup, tmp_path, monkeypatch):
    """-j, --progress and per-speaker grouping reach feature extraction for phone models too."""
    import gmmhmm.features
    from gmmhmm import save
    from gmmhmm.cli import main

    model, _, test, _ = setup
    save(model, tmp_path / "phones.npz")
    paths = [str(u.path) for u in test[:3]]
    (tmp_path / "text").write_text("".join(f"{u.path.stem} {DIGIT_WORDS[int(u.digit)]}\n" for u in test[:3]))
    seen, real = [], gmmhmm.features.extract_many
    monkeypatch.setattr(gmmhmm.features, "extract_many",
                        lambda paths, config, **kw: seen.append(kw) or real(paths, config, **kw))
    assert main(["decode", str(tmp_path / "phones.npz"), *paths, "-j", "2", "--progress",
                 "-o", str(tmp_path / "hyp.txt")]) == 0
    assert main(["align", str(tmp_path / "phones.npz"), str(tmp_path / "text"), *paths, "-j", "2", "--progress",
                 "-o", str(tmp_path / "ali")]) == 0
    assert seen == [{"n_jobs": 2, "progress": True, "utt2spk": None, "vtln_warps": None}] * 2  # decode, align
    # --vtln-map reaches decode's and align's extraction (a file without a speaker: by its name)
    (tmp_path / "spk2warp").write_text("".join(f"{p} 0.9\n" for p in paths))
    seen.clear()
    assert main(["decode", str(tmp_path / "phones.npz"), *paths, "--vtln-map", str(tmp_path / "spk2warp"),
                 "-o", str(tmp_path / "hyp.txt")]) == 0
    assert main(["align", str(tmp_path / "phones.npz"), str(tmp_path / "text"), *paths, "--vtln-map",
                 str(tmp_path / "spk2warp"), "-o", str(tmp_path / "ali")]) == 0
    assert [kw["vtln_warps"] for kw in seen] == [dict.fromkeys(paths, 0.9)] * 2
    assert len((tmp_path / "hyp.txt").read_text().splitlines()) == 3


def test_speaker_cmvn_is_applied_when_decoding_and_aligning(setup, tmp_path):
    """A model trained with cmvn='speaker' decodes and aligns per-speaker normalised features:
    each file alone by default, pooled as an explicit utt2spk map says."""
    import copy

    import soundfile

    from gmmhmm import save
    from gmmhmm.cli import main
    from gmmhmm.datasets import utt2spk
    from gmmhmm.graphs import to_ctm

    model, _, test, _ = setup
    m = copy.deepcopy(model)
    m.feature_config = {**model.feature_config, "cmvn": "speaker"}
    config = m.get_feature_config()
    assert config.cmvn == "speaker" and model.get_feature_config() == FeatureConfig.fsdd()
    takes = test[:3] + test[-3:]
    assert len({u.speaker for u in takes}) == 2
    paths = [u.path for u in takes]
    g = decoding_graph(m, "words")
    alone, _ = extract_many(paths, config)
    want = [decode(g, m.state_log_likelihood(alone[str(p)])).score for p in paths]
    assert [score for _, _, score in decode_files(m, paths, graph="words")] == pytest.approx(want, rel=1e-9)
    spk = utt2spk(takes)
    feats, _ = extract_many(paths, config, utt2spk=spk)
    want = [decode(g, m.state_log_likelihood(feats[str(p)])).score for p in paths]
    assert [score for _, _, score in decode_files(m, paths, graph="words", utt2spk=spk)] == pytest.approx(
        want, rel=1e-9)

    save(m, tmp_path / "spk.npz")
    (tmp_path / "text").write_text("".join(f"{u.path.stem} {DIGIT_WORDS[int(u.digit)]}\n" for u in takes))
    (tmp_path / "utt2spk").write_text("".join(f"{u.path.stem} {u.speaker}\n" for u in takes))
    assert main(["align", str(tmp_path / "spk.npz"), str(tmp_path / "text"), *map(str, paths),
                 "--utt2spk", str(tmp_path / "utt2spk"), "-o", str(tmp_path / "ali")]) == 0
    expected = ""
    for u in takes:
        info = soundfile.info(str(u.path))
        path = force_align(m, feats[str(u.path)], [DIGIT_WORDS[int(u.digit)]], config.shift_ms / 1000.0,
                           info.frames / info.samplerate)
        expected += to_ctm(u.path.stem, path.phones)
    assert (tmp_path / "ali" / "phones.ctm").read_text() == expected


def test_decode_files_skips_a_file_too_short_for_the_graph(setup, tmp_path, caplog):
    import soundfile

    from gmmhmm.errors import SequenceTooShortError

    model, _, test, _ = setup
    short = tmp_path / "short.wav"
    soundfile.write(short, np.random.default_rng(0).normal(0.0, 0.1, 400), 8000)  # 3 frames; a word needs 6
    paths = [test[0].path, short]
    with caplog.at_level("WARNING", logger="gmmhmm"):
        results = decode_files(model, paths, graph="words")
    assert [r[0] for r in results] == [str(test[0].path)]
    assert f"skipping {short}: no complete path" in caplog.text
    with pytest.raises(SequenceTooShortError, match="needs at least 6"):
        decode_files(model, paths, graph="words", skip_errors=False)


def test_recipe_decodes_many_utterances_with_one_graph(setup, recipe):
    model, feats, test, _ = setup
    g = decoding_graph(model, "word-loop")
    opts = SearchOptions(beam=300.0, word_insertion_penalty=-20.0)
    lls = model.state_log_likelihood_many([feats[str(u.path)] for u in test[:5]])
    assert recipe.decode(model, g, lls, opts) == [decode(g, ll, opts).words for ll in lls]


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


SMOKE_CONFIG = """
[features]
sample_rate_hz = 8000
n_mels = 23
n_ceps = 13
delta_order = 2
cmvn = "utterance"

[training]
lexicon = ""
n_states = 3
mixtures = [1, 2]
n_iter = [3, 2]
var_floor_frac = 0.01
sil_prob = 0.5
connected_utterances = 10
connected_seed = 1

[decoding]
beam = 300.0
lm_scale = 1.0
phone_insertion_penalty = -10.0
word_insertion_penalty = -20.0

[connected]
n_utterances = 10
seed = 0
min_digits = 2
max_digits = 4
gap_ms = [50.0, 250.0]
noise_level = 0.001

[data]
fsdd_dir = "FSDD_DIR"
n_jobs = 2

[output]
dir = "unused"
"""


@pytest.fixture(scope="module")
def recipe():
    return load_script("recipes/fsdd_phones.py")


def test_recipe_dev_output_folder(recipe, tmp_path):
    cfg = {"output": {"dir": "exp/fsdd_phones"}}
    assert recipe.output_dir(cfg, dev=False) == REPO_ROOT / "exp" / "fsdd_phones"
    assert recipe.output_dir(cfg, dev=True) == REPO_ROOT / "exp" / "fsdd_phones_dev"
    cfg["output"]["dev_dir"] = "exp/elsewhere"
    assert recipe.output_dir(cfg, dev=True) == REPO_ROOT / "exp" / "elsewhere"
    assert recipe.output_dir(cfg, dev=True, out=tmp_path) == tmp_path


def test_recipe_dev_split_never_reads_test_takes(recipe, fsdd_path, tmp_path):
    # two speakers, all digits: dev takes 5-9 and training takes 10-14 are real
    # recordings; the test takes 0-4 are unreadable, so reading one would count
    # as a feature failure
    subset = tmp_path / "fsdd" / "recordings"
    subset.mkdir(parents=True)
    dev_ids = set()
    for wav in (fsdd_path / "recordings").glob("*.wav"):
        digit, speaker, take = wav.stem.split("_")
        if speaker not in ("jackson", "george") or int(take) >= 15:
            continue
        if int(take) < 5:
            (subset / wav.name).write_text("test take: must not be read")
            continue
        (subset / wav.name).symlink_to(wav)
        if int(take) < 10:
            dev_ids.add(f"{speaker}_{digit}_{take}")
    config = tmp_path / "smoke.toml"
    config.write_text(SMOKE_CONFIG.replace("FSDD_DIR", str(tmp_path / "fsdd")))
    out = tmp_path / "exp"

    report = recipe.main(["--config", str(config), "--dev", "--out", str(out)])
    assert report["split"] == "dev" and report["n_feature_failures"] == 0
    assert (report["n_train"], report["n_eval"], report["n_connected"]) == (100, 100, 10)
    assert report["isolated_word_accuracy"] >= 0.6  # chance is 0.1
    assert 0.0 <= report["connected_wer"] < 1.0 and 0.0 <= report["per"] < 1.0
    assert {p.stem for p in (out / "align").glob("*.TextGrid")} == dev_ids
    assert json.loads((out / "report.json").read_text())["split"] == "dev"
    assert (out / "report.txt").read_text().startswith("FSDD phone models, dev split")

    # the dev model decodes again without training (other penalties) ...
    again = recipe.main(["--config", str(config), "--dev", "--out", str(tmp_path / "again"),
                         "--model", str(out / "model.npz")])
    assert "training_s" not in again["timings"]
    assert again["isolated_word_accuracy"] == report["isolated_word_accuracy"]
    assert again["connected_wer"] == report["connected_wer"]
    # ... but is refused on the official split, whose test takes are not held out from it
    with pytest.raises(InvalidParameterError, match="trained on the dev split"):
        recipe.main(["--config", str(config), "--out", str(tmp_path / "official"), "--model", str(out / "model.npz")])
    # ... and with a lexicon other than the one it was trained with
    lexicon = tmp_path / "other.lex"
    lexicon.write_text(Lexicon.digits().to_text().replace("Z IH R OW", "Z IY R OW"))
    other = tmp_path / "other.toml"
    other.write_text(config.read_text().replace('lexicon = ""', f'lexicon = "{lexicon}"'))
    with pytest.raises(InvalidParameterError, match="another lexicon"):
        recipe.main(["--config", str(other), "--dev", "--out", str(tmp_path / "lex"), "--model", str(out / "model.npz")])


def test_cli_decodes_with_an_arpa_lm_and_writes_n_best(setup, tmp_path, capsys):
    """`gmmhmm decode --lm`: a bigram LM over the four digits; n-best lists are distinct and sorted."""
    from gmmhmm import save
    from gmmhmm.cli import main
    from gmmhmm.lm import estimate, write_arpa

    model, _, test, _ = setup
    save(model, tmp_path / "phones.npz")
    words = [DIGIT_WORDS[int(d)] for d in DIGITS]
    write_arpa(estimate([[w] for w in words] + [words, words[::-1]], order=2), tmp_path / "lm.arpa")
    paths = [str(u.path) for u in test[:6]]
    hyp, nbest = tmp_path / "hyp.txt", tmp_path / "nbest.txt"
    assert main(["decode", str(tmp_path / "phones.npz"), *paths, "--lm", str(tmp_path / "lm.arpa"), "--lm-scale",
                 "2", "--insertion-penalty", "-10", "--beam", "400", "--max-active", "3000", "--n-best", "3",
                 "--n-best-output", str(nbest), "-o", str(hyp)]) == 0
    lines = [line.split("\t") for line in hyp.read_text().splitlines()]
    assert [line[0] for line in lines] == paths
    hits = sum(line[1] == DIGIT_WORDS[int(u.digit)] for line, u in zip(lines, test[:6]))
    assert hits >= 5
    rows = [line.split("\t") for line in nbest.read_text().splitlines()]
    for path, line in zip(paths, lines):
        mine = [r for r in rows if r[0] == path]
        assert [int(r[1]) for r in mine] == list(range(1, len(mine) + 1)) and len(mine) >= 2
        assert mine[0][2] == line[1] and len({r[2] for r in mine}) == len(mine)
        scores = [float(r[3]) for r in mine]
        assert scores == sorted(scores, reverse=True)
    assert main(["decode", str(tmp_path / "phones.npz"), paths[0], "--n-best", "3"]) == 1
    assert "--n-best above 1 needs --n-best-output" in capsys.readouterr().err
