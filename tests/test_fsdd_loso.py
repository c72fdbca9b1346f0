"""The FSDD leave-one-speaker-out recipe (phone models on FSDD + AN4) on a small slice.

Two FSDD speakers (takes 0-3), two AN4 training speakers (one of them dev)
and one AN4 test speaker, two Gaussians, one adaptation pass. Fails loudly (never skips) when
../shared/data/fsdd or ../shared/data/an4 is missing.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from gmmhmm.data import Lexicon
from gmmhmm.errors import InvalidParameterError, TranscriptError
from gmmhmm.features import energy_vad, extract_features, frame_log_energy_db, load_features

from conftest import load_script

loso = load_script("recipes/fsdd_loso.py")

FSDD_SPEAKERS = ["george", "jackson"]
AN4_TRAIN = ["fash", "fbbh"]
AN4_DEV = ["fbbh"]
AN4_TEST = ["fcaw"]
TAKES = 4
#: decoding systems, least to most adapted (tri3 is trained with SAT, so decoded only with fMLLR)
SYSTEMS = ["mono", "tri1", "tri2", "mono+fmllr", "mono+fmllr+map", "tri3+fmllr", "tri3+fmllr+map"]
CHAIN = ["mono", "tri1", "tri2", "tri3"]
#: stage 5's candidates under the slice's [nested] grid (taus 10 and 5, passes 1 and 2)
GRID = [f"[tau={t},n={n}]" for n in (1, 2) for t in (10, 5)]
CANDIDATES = (SYSTEMS[:4] + ["mono+fmllr+map" + g for g in GRID] + ["tri3+fmllr"]
              + ["tri3+fmllr+map" + g for g in GRID])

ACC_LINE = re.compile(r"^%ACC (\d+\.\d\d) \[ (\d+) / (\d+) \] fsdd_heldout_(\w+) (\S+) ")
WER_LINE = re.compile(r"^%WER (\d+\.\d\d) \[ (\d+) / (\d+), \d+ ins, \d+ del, \d+ sub \] an4_test_digits "
                      r"model_without_(\w+) (\S+) ")


def slice_settings(fsdd_dir, an4_path) -> list[str]:
    """SECTION.KEY=VALUE overrides cutting configs/fsdd_loso.toml down to the slice."""
    settings = {"data.fsdd_dir": json.dumps(str(fsdd_dir)), "data.an4_dir": json.dumps(str(an4_path)),
                "data.an4_train_speakers": json.dumps(AN4_TRAIN), "data.an4_test_speakers": json.dumps(AN4_TEST),
                "dev.speakers": json.dumps(AN4_DEV), "data.n_jobs": "1", "training.mixtures": "[1, 2]",
                "training.n_iter": "[3, 2]", "tuning.word_insertion_penalties": "[-20.0, 0.0]",
                "fmllr.n_passes": "1", "fmllr.fmllr_n_iters": "3", "tuning.map_n_iters": "[1]",
                "tri1.mixtures": "[1, 2]", "tri1.n_iter": "[2, 1]", "tri1.min_occupancy": "20.0",
                "tri1.max_leaves": "60", "tri2.lda_dim": "20", "tri2.splice": "2", "tri2.n_iter": "2",
                "tri2.mllt_iters": "[0, 1]", "tri3.n_iter": "2", "tri3.fmllr_iters": "[0]",
                "vtln.n_components": "4", "vtln.n_iter": "1", "vtln.min_warp": "0.9", "vtln.max_warp": "1.1",
                "vtln.step": "0.05", "nested.map_taus": "[5.0, 10.0]", "nested.map_n_iters": "[2, 1]"}
    return [f"{k}={v}" for k, v in settings.items()]


def slice_args(fsdd_dir, an4_path, out) -> list[str]:
    return [a for kv in slice_settings(fsdd_dir, an4_path) for a in ("--set", kv)] + ["--out", str(out)]


@pytest.fixture(scope="module")
def small_run(fsdd_path, an4_path, tmp_path_factory):
    """(output folder, report, {held-out speaker: utterance ids trained on}) of the recipe on the slice."""
    root = tmp_path_factory.mktemp("loso")
    subset = root / "fsdd" / "recordings"
    subset.mkdir(parents=True)
    for wav in (fsdd_path / "recordings").glob("*.wav"):
        digit, speaker, take = wav.stem.split("_")
        if speaker in FSDD_SPEAKERS and int(take) < TAKES:
            (subset / wav.name).symlink_to(wav)
    trained_on = []
    original = loso.train

    def spy(cfg, lexicon, data, utts, system, previous):
        trained_on.append((system, list(utts)))
        return original(cfg, lexicon, data, utts, system, previous)

    loso.train = spy
    try:
        out = root / "exp"
        report = loso.main(slice_args(root / "fsdd", an4_path, out))
    finally:
        loso.train = original
    return out, report, trained_on


def test_every_speaker_held_out_once_with_kaldi_lines(small_run):
    out, report, _ = small_run
    folds = report["loso"]["folds"]
    assert [f["speaker"] for f in folds] == FSDD_SPEAKERS
    assert list(report["loso"]["systems"]) == SYSTEMS
    lines = (out / "RESULTS").read_text().splitlines()
    for system, summary in report["loso"]["systems"].items():
        results = [f["systems"][system] for f in folds]
        for r in results:
            assert r["n_test"] == 10 * TAKES
            assert r["accuracy"] >= 0.3  # chance is 0.1; a tiny model (2 Gaussians, 3 speakers) is well above it
        assert summary["mean_accuracy"] == pytest.approx(np.mean([r["accuracy"] for r in results]))
        acc = [m for m in map(ACC_LINE.match, lines) if m and m.group(5) == system]
        assert [m.group(4) for m in acc] == FSDD_SPEAKERS
        for m, r in zip(acc, results):
            assert int(m.group(2)) == r["n_correct"] == round(r["accuracy"] * r["n_test"])
            assert int(m.group(3)) == r["n_test"]
        mean = [ln for ln in lines if ln.startswith(f"%ACC {100 * summary['mean_accuracy']:.2f} mean over "
                                                   f"{len(FSDD_SPEAKERS)} held-out FSDD speakers {system} ")]
        assert len(mean) == 1 and mean[0].endswith("(the most adapted system)") == \
            (system == SYSTEMS[-1]) == (report["loso"]["best_stage"] == system)
        wer = [m for m in map(WER_LINE.match, lines) if m and m.group(5) == system]
        assert [m.group(4) for m in wer] == FSDD_SPEAKERS
        assert all(int(m.group(3)) == results[0]["an4_test_digits"]["n_ref"] > 0 for m in wer)


def test_a_second_run_reads_the_folds_back(small_run, an4_path, monkeypatch):
    out, report, _ = small_run

    def no_training(*args):
        raise AssertionError("a fold was trained again")

    monkeypatch.setattr(loso, "train", no_training)
    again = loso.main(["--stage", "3"] + slice_args(out.parent / "fsdd", an4_path, out))
    assert set(again["trained"]) == set(FSDD_SPEAKERS)
    assert again["loso"]["systems"] == report["loso"]["systems"]


def test_a_changed_setting_trains_and_decodes_again(small_run, an4_path, tmp_path, monkeypatch):
    """A model or fold result read back must come from the same settings: a changed tri2 setting
    trains tri2 and tri3 again (never mono or tri1), a changed beam decodes again without training.
    (``--set`` options: the last of a key wins.)"""
    import shutil

    out, report, _ = small_run
    copy = tmp_path / "exp"
    shutil.copytree(out, copy)
    trained = []
    original = loso.train

    def spy(cfg, lexicon, data, utts, system, previous):
        trained.append(system)
        return original(cfg, lexicon, data, utts, system, previous)

    monkeypatch.setattr(loso, "train", spy)
    args = slice_args(out.parent / "fsdd", an4_path, copy)
    loso.main(["--stage", "3", "--stop-stage", "3", "--held-out", FSDD_SPEAKERS[0]] + args + ["--set", "tri2.n_iter=3"])
    assert trained == ["tri2", "tri3"]
    loso.main(["--stage", "3", "--stop-stage", "3", "--held-out", FSDD_SPEAKERS[0]] + args + ["--set", "tri2.n_iter=3"])
    assert trained == ["tri2", "tri3"]  # the same settings again: read back
    fold = copy / "folds" / f"{FSDD_SPEAKERS[1]}.json"
    before = json.loads(fold.read_text())
    again = loso.main(["--stage", "4", "--held-out", FSDD_SPEAKERS[1]] + args + ["--set", "decoding.beam=150.0"])
    assert trained == ["tri2", "tri3"]
    after = json.loads(fold.read_text())
    assert after["decoding_key"] != before["decoding_key"]
    assert set(after["systems"]) == set(SYSTEMS)
    assert again["loso"]["folds"][0]["speaker"] == FSDD_SPEAKERS[1]
    assert set(again["nested"]) == {"chosen"}  # fold 0 not decoded with the new beam: no figures, no training


def test_held_out_speaker_never_trained_on_and_dev_reads_no_test_speaker(small_run):
    out, report, trained_on = small_run
    assert [system for system, _ in trained_on] == CHAIN * (2 + len(FSDD_SPEAKERS))  # dev, folds, one pair
    dev_utts = trained_on[0][1]
    assert all(utts == dev_utts for _, utts in trained_on[:len(CHAIN)])
    for k, speaker in enumerate(FSDD_SPEAKERS):
        fold = trained_on[len(CHAIN) * (k + 1):len(CHAIN) * (k + 2)]
        utts = fold[0][1]
        assert all(u == utts for _, u in fold)  # every system of a fold on the same data
        assert not [u for u in utts if u.startswith(f"{speaker}_")]
        assert {u.split("_")[0] for u in utts if "_" in u} == set(FSDD_SPEAKERS) - {speaker}
        assert {u.split("-")[1] for u in utts if "-" in u} == set(AN4_TRAIN)  # AN4 ids: name-speaker-b
    pair = trained_on[-len(CHAIN):]
    assert all(u == pair[0][1] for _, u in pair)
    assert sorted(pair[0][1]) == sorted(u for u in trained_on[len(CHAIN)][1] if "_" not in u)  # AN4 only
    assert not {u.split("-")[1] for u in dev_utts if "-" in u} & set(AN4_DEV)
    tuned = json.loads((out / "dev" / "best.json").read_text())
    assert tuned["dev_speakers"] == AN4_DEV and tuned["word_insertion_penalty"] in (-20.0, 0.0)
    assert tuned["map_n_iter"] == {"mono+fmllr+map": 1, "tri3+fmllr+map": 1}  # the only one of the slice's grid
    assert set(tuned["dev_systems"]) == {s + (" map_n_iter=1" if s.endswith("+map") else "") for s in SYSTEMS}
    assert report["tuned"] == tuned


def test_sat_systems_decode_only_with_fmllr():
    cfg = loso.load_config(loso.REPO / "configs" / "fsdd_loso.toml")
    cfg["fmllr"]["systems"] = ["mono"]
    with pytest.raises(InvalidParameterError, match="tri3"):
        loso.systems(cfg, {})
    cfg["fmllr"]["systems"] = ["mono", "tri4"]
    with pytest.raises(InvalidParameterError, match="tri4"):
        loso.systems(cfg, {})
    cfg["fmllr"]["systems"] = ["tri3"]
    first_pass = {n: s["adapt"]["si"] for n, s in loso.systems(cfg, {}).items() if s["adapt"]}
    assert first_pass == {"tri3+fmllr": "tri2", "tri3+fmllr+map": "tri2"}


def test_cmvn_per_speaker_from_its_own_speech_frames(small_run, an4_path):
    """Each speaker's frames within [cmvn] vad_margin_db of their utterance's peak have mean 0 and std 1."""
    out, report, _ = small_run
    cfg = loso.apply_overrides(loso.load_config(report["config"]), slice_settings(out.parent / "fsdd", an4_path))
    assert cfg["cmvn"]["frames"] == "speech"
    data = loso.Corpora(cfg, out)  # features read back from the stage 1 cache
    raw, _ = load_features(out / "feats" / "fsdd.vtln.npz")
    fc = loso.raw_config(cfg)
    n_left_out = 0
    for speaker in FSDD_SPEAKERS:
        ids = data.fsdd_ids(only=speaker)
        masks = [energy_vad(frame_log_energy_db(raw[u], fc), cfg["cmvn"]["vad_margin_db"]) for u in ids]
        n_left_out += sum(int((~m).sum()) for m in masks)
        x = np.concatenate([data.feats[u][m] for u, m in zip(ids, masks)])
        assert np.allclose(x.mean(0), 0.0, atol=1e-8) and np.allclose(x.std(0), 1.0, atol=1e-6)
    assert n_left_out > 0  # some silence was left out of the statistics
    cfg["cmvn"]["frames"] = "all"  # every frame: the old statistics
    data = loso.Corpora(cfg, out)
    x = np.concatenate([data.feats[u] for u in data.fsdd_ids(only=FSDD_SPEAKERS[0])])
    assert np.allclose(x.mean(0), 0.0, atol=1e-8) and np.allclose(x.std(0), 1.0, atol=1e-6)
    cfg["cmvn"]["frames"] = "loud"
    with pytest.raises(InvalidParameterError, match="frames"):
        loso.Corpora(cfg, out)


def test_vtln_warps_every_speaker_from_its_own_audio(small_run, an4_path, monkeypatch):
    """One warp per speaker of both corpora, on the grid; the warp GMM is trained on AN4 training
    speakers but the dev ones only; each utterance's features are those of its speaker's warp;
    and labels play no part (scrambled transcripts give the same warps)."""
    out, report, _ = small_run
    cfg = loso.apply_overrides(loso.load_config(report["config"]), slice_settings(out.parent / "fsdd", an4_path))
    data = loso.Corpora(cfg, out)  # (warps of this config: another test may have left other ones)
    found = json.loads((out / "feats" / "vtln_warps.json").read_text())
    assert data.warps == found["warps"]
    assert set(found["warps"]) == set(data.utt2spk.values()) == set(FSDD_SPEAKERS + AN4_TRAIN + AN4_TEST)
    grid = [0.9, 0.95, 1.0, 1.05, 1.1]
    assert found["grid"] == pytest.approx(grid) and all(w in grid for w in found["warps"].values())
    for speaker, scores in found["scores"].items():  # each factor was scored on features warped by it
        assert np.ptp(scores) > 1e-3, speaker
    raw, meta = load_features(out / "feats" / "fsdd.vtln.npz")
    fc = loso.raw_config(cfg)
    u = data.fsdd_ids(only="george")[0]
    want = extract_features(str(next(x.path for x in data.fsdd if x.utt_id == u)),
                            fc.replace(vtln_warp=found["warps"]["george"]))
    np.testing.assert_array_equal(raw[u], want)
    assert meta["vtln_warps"][u] == found["warps"]["george"]
    path = str(next(x.path for x in data.fsdd if x.utt_id == u))
    np.testing.assert_array_equal(loso.extract({u: path}, fc.replace(vtln_warp=0.9), 1)[u],
                                  extract_features(path, fc.replace(vtln_warp=0.9)))

    assert found["model_speakers"] == sorted(set(AN4_TRAIN) - set(AN4_DEV))
    monkeypatch.setattr(loso, "FSDD_WORDS", {d: "ONE" for d in loso.FSDD_WORDS})  # every label wrong
    fresh = tmp_out = out.parent / "vtln_again"
    (tmp_out / "data").mkdir(parents=True, exist_ok=True)
    for name in ("train", "test", "lexicon.txt"):
        link = tmp_out / "data" / name
        if not link.exists():
            link.symlink_to(out / "data" / name)
    assert not (fresh / "feats" / "vtln_warps.json").exists()
    searches = []
    real = loso.vtln_warps
    monkeypatch.setattr(loso, "vtln_warps", lambda *a, **k: searches.append(1) or real(*a, **k))
    again = loso.Corpora(cfg, fresh)
    assert searches == [1]  # searched again under the scrambled labels, not read back
    assert again.warps == found["warps"]


def test_pronunciations_must_agree_between_corpora():
    digits = Lexicon.digits()
    lines = [f"{w.upper()} {' '.join(p)}\n" for w in digits.words for p, _ in digits.prons(w)]
    loso.check_pronunciations(Lexicon.from_text("".join(lines) + "ZERO Z IY R OW\nOH OW\n"))  # alternates are fine
    other = Lexicon.from_text("ZERO Z IY R OW\n" + "".join(lines[1:]))
    with pytest.raises(TranscriptError, match="zero"):
        loso.check_pronunciations(other)
    with pytest.raises(TranscriptError, match="NINE"):
        loso.check_pronunciations(Lexicon.from_text("ZERO Z IH R OW\n"))


def test_unknown_held_out_speaker_is_refused(small_run, an4_path):
    out, _, _ = small_run
    with pytest.raises(InvalidParameterError, match="nobody"):
        loso.main(["--stage", "3", "--held-out", "nobody"] + slice_args(out.parent / "fsdd", an4_path, out))


def test_an_utterance_without_a_path_gets_no_words_and_the_batch_finishes(small_run, an4_path):
    """A take too short for any word (2 frames) beside good ones: every system, the adapted ones
    too, returns no words for it and decodes the rest."""
    out, report, _ = small_run
    cfg = loso.apply_overrides(loso.load_config(report["config"]), slice_settings(out.parent / "fsdd", an4_path))
    data = loso.Corpora(cfg, out)
    lexicon = Lexicon.read(out / "data" / "lexicon.txt")
    models = {s: loso.load(out / "dev" / f"{s}.model.npz") for s in CHAIN}
    good = data.fsdd_ids(only=FSDD_SPEAKERS[0])[:4]
    data.feats["short"] = data.feats[good[0]][:2]
    utts = good + ["short"]
    for name, system in loso.systems(cfg, report["tuned"]).items():
        (hyps,) = loso.recognise(cfg, models, system, lexicon, data, utts, "words",
                                 tuple(loso.FSDD_WORDS.values()), [loso.options(cfg)],
                                 {u: FSDD_SPEAKERS[0] for u in utts})
        assert hyps[-1] == [], name
        assert all(len(h) == 1 for h in hyps[:-1]), name


def test_nested_choice_counts_pooled_inner_takes_and_ties_go_to_the_more_adapted():
    """Hand-computed: fold a is scored on b and c (never a), pooled over takes, not averaged."""
    def r(c, n=10):
        return {"n_correct": c, "n_test": n}
    inner = {"a": {"b": {"x": r(9), "y": r(5, 20)}, "c": {"x": r(1), "y": r(10, 20)}},  # x 10/20, y 15/40
             "b": {"a": {"x": r(7), "y": r(7)}, "c": {"x": r(3), "y": r(3)}}}             # a tie
    got = loso.nested_choice(inner, ["x", "y"])
    assert got["a"] == {"system": "x", "inner_accuracy": {"x": 0.5, "y": 0.375}}
    assert got["b"]["system"] == "y"


def test_nested_stage_chooses_each_fold_from_the_other_speakers_models(small_run):
    """Stage 5 trained the pair's chain without both speakers; fold f's choice is nested_choice of
    the other speaker's takes under that model, and its figure is fold f's own held-out result."""
    out, report, _ = small_run
    a, b = FSDD_SPEAKERS
    res = json.loads((out / "nested" / f"{a}+{b}.json").read_text())
    assert set(res["speakers"]) == {a, b} and all(set(v) == set(CANDIDATES) for v in res["speakers"].values())
    assert report["nested"]["chosen"] == loso.nested_choice({a: {b: res["speakers"][b]}, b: {a: res["speakers"][a]}},
                                                            CANDIDATES)
    for s, c in report["nested"]["chosen"].items():  # a grid candidate decoded the held-out speaker once chosen
        fold = json.loads((out / "folds" / f"{s}.json").read_text())
        assert report["nested"]["accuracy"][s] == fold["systems"][c["system"]]["accuracy"]
        assert set(fold["systems"]) == set(SYSTEMS) | {c["system"]}
    lines = (out / "RESULTS").read_text().splitlines()
    mean = [ln for ln in lines if "by nested leave-one-speaker-out (best stage)" in ln]
    assert mean and mean[-1].startswith(f"%ACC {100 * report['nested']['mean_accuracy']:.2f} mean over 2 ")


def test_a_decoded_pair_needs_no_models_again(small_run, an4_path, monkeypatch):
    """A pair whose takes were all decoded under the same key is read back without its models (they may
    be gone, e.g. on another machine): nothing is trained, and the choice and figures are the same."""
    out, report, _ = small_run
    a, b = FSDD_SPEAKERS
    models = out / "nested" / f"{a}+{b}"
    kept = models.parent / "kept-models"
    models.rename(kept)

    def no_training(*args):
        raise AssertionError("a pair was trained again")

    monkeypatch.setattr(loso, "train", no_training)
    try:
        again = loso.main(["--stage", "5"] + slice_args(out.parent / "fsdd", an4_path, out))
    finally:
        if models.exists():
            shutil.rmtree(models)
        kept.rename(models)
    assert again["nested"] == report["nested"]


def test_unknown_pair_is_refused(small_run, an4_path):
    out, _, _ = small_run
    for pair in ("george+nobody", "george+george", "george"):
        with pytest.raises(InvalidParameterError, match="--pair"):
            loso.main(["--stage", "5", "--pair", pair] + slice_args(out.parent / "fsdd", an4_path, out))


def test_nested_stage_with_one_fsdd_speaker_says_so_and_does_nothing(caplog):
    from types import SimpleNamespace

    data = SimpleNamespace(fsdd=[SimpleNamespace(speaker="george")])
    with caplog.at_level("WARNING"):
        assert loso.stage_nested({}, None, data, {}, None) is None
    assert "at least two FSDD speakers" in caplog.text


def test_candidates_replace_each_map_system_by_its_grid_least_to_most_adapted():
    cfg = loso.apply_overrides(loso.load_config(loso.REPO / "configs" / "fsdd_loso.toml"),
                               ["nested.map_taus=[5.0, 10.0]", "nested.map_n_iters=[2, 1]"])
    tuned = {"map_n_iter": {"mono+fmllr+map": 1, "tri3+fmllr+map": 1}}
    got = loso.candidates(cfg, tuned)
    assert list(got) == CANDIDATES
    assert got["tri3+fmllr+map[tau=5,n=2]"]["adapt"]["map_tau"] == 5.0
    assert got["tri3+fmllr+map[tau=5,n=2]"]["adapt"]["map_n_iter"] == 2
    assert got["tri3+fmllr+map[tau=5,n=2]"]["adapt"]["si"] == "tri2"
    no_grid = {**cfg, "nested": {"map_taus": [], "map_n_iters": []}}
    assert loso.candidates(no_grid, tuned) == loso.systems(no_grid, tuned)
    for bad in ({"map_taus": [], "map_n_iters": [1]}, {"map_taus": [0.0], "map_n_iters": [1]},
                {"map_taus": [5.0], "map_n_iters": [0]}, {"map_taus": [5.0], "map_n_iters": [1.5]}):
        with pytest.raises(InvalidParameterError, match=r"\[nested\]"):
            loso.candidates({**cfg, "nested": bad}, tuned)


def test_the_nested_grid_does_not_change_what_stage_4_decoded(small_run, an4_path, monkeypatch):
    """Folds decoded under one [nested] grid are read back under another (its candidates are named by
    their settings); a grid candidate with the dev-chosen settings gives the MAP system's result."""
    out, report, _ = small_run
    decoded = []
    monkeypatch.setattr(loso, "evaluate", lambda *a, **k: decoded.append(a[3]) or {})
    monkeypatch.setattr(loso, "train", lambda *a, **k: pytest.fail("trained again"))
    loso.main(["--stage", "4", "--stop-stage", "4"] + slice_args(out.parent / "fsdd", an4_path, out)
              + ["--set", "nested.map_taus=[20.0]", "--set", "nested.map_n_iters=[3]"])
    assert decoded == []
    monkeypatch.undo()
    cfg = loso.apply_overrides(loso.load_config(loso.REPO / "configs" / "fsdd_loso.toml"),
                               slice_settings(out.parent / "fsdd", an4_path))
    tuned = json.loads((out / "dev" / "best.json").read_text())
    assert tuned["map_n_iter"]["mono+fmllr+map"] == 1 and cfg["map"]["tau"] == 10.0
    lexicon = Lexicon.read(out / "data" / "lexicon.txt")
    data = loso.Corpora(cfg, out)
    speaker = FSDD_SPEAKERS[0]
    models, _ = loso.fold_models(cfg, lexicon, data, speaker, out)
    loso._FMLLR_PASSES.clear()
    twice = [loso.evaluate(cfg, models, loso.candidates(cfg, tuned)[name], lexicon, data, speaker, tuned,
                           an4_test=False) for name in ("mono+fmllr+map[tau=10,n=2]", "mono+fmllr+map[tau=10,n=1]")]
    fold = json.loads((out / "folds" / f"{speaker}.json").read_text())
    for k in ("n_correct", "errors"):
        assert twice[1][k] == fold["systems"]["mono+fmllr+map"][k]  # pass 1 kept while pass 2 was computed
    loso._FMLLR_PASSES.clear()
    fresh = loso.evaluate(cfg, models, loso.candidates(cfg, tuned)["mono+fmllr+map[tau=10,n=2]"], lexicon, data,
                          speaker, tuned, an4_test=False)
    assert fresh["errors"] == twice[0]["errors"]


def test_speed_perturbed_training_copies_only_training_speakers(small_run, an4_path, tmp_path, monkeypatch):
    """[data] speed_perturb: dev and fold training see sp0.9- copies of exactly their training
    utterances (each copy's speaker a new speaker, 1/0.9 times as many frames); the held-out and
    dev speakers are never perturbed; without the setting every key is as before."""
    import shutil

    out, _, trained_on = small_run
    copy = tmp_path / "exp"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("folds", "nested", "dev"))
    trained = []
    original = loso.train

    def spy(cfg, lexicon, data, utts, system, previous):
        trained.append(list(utts))
        return original(cfg, lexicon, data, utts, system, previous)

    monkeypatch.setattr(loso, "train", spy)
    held_out = FSDD_SPEAKERS[0]
    args = slice_args(out.parent / "fsdd", an4_path, copy) + ["--set", "data.speed_perturb=[0.9, 1.0]"]
    loso.main(["--stop-stage", "3", "--held-out", held_out] + args)
    dev, fold = trained[0], trained[len(CHAIN)]
    for got, plain in ((dev, trained_on[0][1]), (fold, trained_on[len(CHAIN)][1])):
        assert sorted(got) == sorted(plain + ["sp0.9-" + u for u in plain])
    assert not [u for u in fold if u.startswith((f"{held_out}_", f"sp0.9-{held_out}_"))]
    cfg = loso.apply_overrides(loso.load_config(loso.REPO / "configs" / "fsdd_loso.toml"),
                               slice_settings(out.parent / "fsdd", an4_path) + ["data.speed_perturb=[0.9, 1.0]"])
    data = loso.Corpora(cfg, copy)
    for u in (fold[0], next(u for u in fold if "_" in u)):  # an AN4 and an FSDD utterance
        c = "sp0.9-" + u
        assert data.utt2spk[c] == "sp0.9-" + data.utt2spk[u] and data.text[c] == data.text[u]
        assert abs(len(data.feats[c]) - len(data.feats[u]) / 0.9) <= 2
    assert set(data.warps) >= {"sp0.9-" + s for s in FSDD_SPEAKERS + AN4_TRAIN}
    plain = loso.apply_overrides(loso.load_config(loso.REPO / "configs" / "fsdd_loso.toml"),
                                 slice_settings(out.parent / "fsdd", an4_path))
    info = {s: {"training_key": "k"} for s in CHAIN}
    del plain["data"]["speed_perturb"]  # a config from before the setting
    assert loso.decoding_key(plain, {}, info) == loso.decoding_key(
        loso.apply_overrides(plain | {"data": {**plain["data"], "speed_perturb": []}}, []), {}, info)
