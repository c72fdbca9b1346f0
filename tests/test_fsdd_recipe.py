"""Integration: the FSDD digits recipe on a subset of the real recordings."""

from __future__ import annotations

import json
import math

import pytest
from conftest import load_script

from gmmhmm.classifier import HMMClassifier
from gmmhmm.modelfile import load


SMALL_CONFIG = """
[features]
sample_rate_hz = 8000
n_mels = 23
n_ceps = 13
delta_order = 2
cmvn = "utterance"

[model]
n_states = 5
mix_schedule = [1, 2]
n_iter = [4, 3]
n_jobs = 2

[data]
split = "official"
n_jobs = 2
"""


@pytest.fixture(scope="module")
def recipe():
    return load_script("recipes/fsdd_digits.py")


@pytest.mark.integration
def test_recipe_on_fsdd_subset(recipe, fsdd_path, tmp_path):
    # takes 0-2 (test) and 5-14 (train) of every digit and speaker: 180 + 600 files
    subset = tmp_path / "fsdd" / "recordings"
    subset.mkdir(parents=True)
    for wav in (fsdd_path / "recordings").glob("*.wav"):
        take = int(wav.stem.rsplit("_", 1)[1])
        if take < 3 or 5 <= take < 15:
            (subset / wav.name).symlink_to(wav)
    config = tmp_path / "small.toml"
    config.write_text(SMALL_CONFIG)
    out = tmp_path / "exp"
    assert recipe.main(["--config", str(config), "--fsdd-dir", str(tmp_path / "fsdd"), "--out", str(out)]) == 0

    report = json.loads((out / "report.json").read_text())
    (fold,) = report["folds"]
    assert (fold["n_train"], fold["n_test"]) == (600, 180)
    assert fold["accuracy"] >= 0.85  # chance is 0.10
    assert sum(map(sum, fold["confusion"])) == 180
    assert sum(fold["confusion"][i][i] for i in range(10)) == round(180 * fold["accuracy"])
    assert math.isfinite(fold["decode_rtf"]) and fold["decode_rtf"] > 0  # its speed: benchmarks/recipe_fsdd.py
    assert (out / "report.txt").read_text().startswith("FSDD digits, official split")
    assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG"

    model, meta = load(out / "model.npz", with_metadata=True)
    assert isinstance(model, HMMClassifier) and list(model.classes_) == [str(d) for d in range(10)]
    assert meta["feature_config"]["n_ceps"] == 13


def test_recipe_reports_missing_data(recipe, tmp_path, capsys):
    rc = recipe.main(["--fsdd-dir", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")])
    assert rc == 1 and "does not exist" in capsys.readouterr().err


def test_an_output_folder_that_cannot_be_made_is_reported_before_any_work(recipe, tmp_path, monkeypatch, capsys):
    """--out naming a file raised FileExistsError with a traceback, after every file was featurised."""
    fsdd = _tiny_fsdd(tmp_path / "fsdd")
    monkeypatch.setattr(recipe, "extract_many", lambda *a, **k: pytest.fail("featurised before the output was checked"))
    (tmp_path / "a_file").write_text("kept\n")
    rc = recipe.main(["--fsdd-dir", str(fsdd), "--out", str(tmp_path / "a_file")])
    err = capsys.readouterr().err
    assert rc == 1 and "a_file exists and is not a folder" in err and "Traceback" not in err, err
    assert (tmp_path / "a_file").read_text() == "kept\n"


def _tiny_fsdd(folder, rate=8000):
    """Tones named like FSDD recordings: takes 0 (test) and 5-6 (train) of each digit."""
    import numpy as np
    import soundfile as sf

    rec = folder / "recordings"
    rec.mkdir(parents=True)
    t = np.arange(int(0.3 * rate)) / rate
    rng = np.random.default_rng(0)
    for d in range(10):
        for take in (0, 5, 6):
            tone = 0.3 * np.sin(2 * np.pi * (300 + 150 * d) * t) + 0.01 * rng.standard_normal(t.size)
            sf.write(rec / f"{d}_synth_{take}.wav", tone, rate, subtype="PCM_16")
    return folder


def test_features_computed_once_serve_the_recipe(recipe, tmp_path, monkeypatch):
    from gmmhmm.cli import read_config

    fsdd = _tiny_fsdd(tmp_path / "fsdd")
    config_path = tmp_path / "tiny.toml"
    config_path.write_text(SMALL_CONFIG.replace("mix_schedule = [1, 2]", "mix_schedule = [1]")
                           .replace("n_iter = [4, 3]", "n_iter = [2]").replace("n_jobs = 2", "n_jobs = 1"))
    config = read_config(config_path)
    calls = []
    extract_many = recipe.extract_many
    monkeypatch.setattr(recipe, "extract_many", lambda *a, **k: calls.append(1) or extract_many(*a, **k))

    data = recipe.featurise(config, fsdd)
    assert len(calls) == 1 and len(data.utts) == len(data.feats) == 30 and not data.failures
    report = recipe.run(config, "official", fsdd, tmp_path / "a", featurised=data)
    assert len(calls) == 1  # nothing featurised again
    assert report["feature_seconds"] == data.seconds <= report["total_seconds"]
    assert report["n_files"] == 30 and report["folds"][0]["n_test"] == 10

    plain = recipe.run(config, "official", fsdd, tmp_path / "b")
    assert len(calls) == 2
    assert plain["folds"][0]["confusion"] == report["folds"][0]["confusion"]


def test_speaker_statistics_of_training_come_from_training_takes_only(recipe, tmp_path, monkeypatch):
    """Bug: each speaker's test takes were pooled into the CMVN statistics the models trained on."""
    import numpy as np
    import soundfile as sf

    from gmmhmm.cli import read_config
    from gmmhmm.features import load_cmvn_stats

    config_path = tmp_path / "tiny.toml"
    config_path.write_text(SMALL_CONFIG.replace('cmvn = "utterance"', 'cmvn = "speaker"')
                           .replace("mix_schedule = [1, 2]", "mix_schedule = [1]")
                           .replace("n_iter = [4, 3]", "n_iter = [1]").replace("n_jobs = 2", "n_jobs = 1"))
    config = read_config(config_path)
    seen = []
    fit = HMMClassifier.fit
    monkeypatch.setattr(recipe.HMMClassifier, "fit", lambda self, X, y, **kw: seen.append(X) or fit(self, X, y, **kw))
    fsdd = _tiny_fsdd(tmp_path / "a")
    recipe.run(config, "official", fsdd, tmp_path / "out_a")
    for wav in (fsdd / "recordings").glob("*_0.wav"):  # other test audio, same training audio
        x, rate = sf.read(wav)
        sf.write(wav, 3 * x + 0.05, rate, subtype="PCM_16")
    report = recipe.run(config, "official", fsdd, tmp_path / "out_b")
    assert len(seen) == 2 and len(seen[0]) == 20
    for a, b in zip(*seen):
        np.testing.assert_array_equal(a, b)
    assert report["folds"][0]["n_test"] == 10

    # by hand: a training take normalised with the statistics of its speaker's training takes
    data = recipe.featurise(config, fsdd)
    train = [u for u in data.utts if u.index >= 5]
    test = [u for u in data.utts if u.index < 5]
    normed, stats = recipe.speaker_cmvn(train, test, data.feats, config.features)
    assert sorted(stats) == ["test/synth", "train/synth"] and stats["train/synth"].count == sum(
        len(data.feats[str(u.path)]) for u in train)
    stored = load_cmvn_stats(tmp_path / "out_b" / "cmvn.npz")
    np.testing.assert_array_equal(stored["train/synth"].mean, stats["train/synth"].mean)
    pooled = np.concatenate([data.feats[str(u.path)] for u in train])
    u = train[0]
    np.testing.assert_allclose(normed[str(u.path)], (data.feats[str(u.path)] - pooled.mean(0)) / pooled.std(0),
                               atol=1e-10)
    test_pooled = np.concatenate([data.feats[str(t.path)] for t in test])
    np.testing.assert_allclose(normed[str(test[0].path)],
                               (data.feats[str(test[0].path)] - test_pooled.mean(0)) / test_pooled.std(0), atol=1e-10)
