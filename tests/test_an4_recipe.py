"""The AN4 recipe end to end on a small slice of AN4 (a few speakers, short schedule).

Fails loudly (never skips) when ../shared/data/an4 is missing.
"""

from __future__ import annotations

import copy as copy_module
import json
import re
from pathlib import Path

import numpy as np
import pytest

from gmmhmm.errors import InvalidParameterError
from gmmhmm.scoring import error_rates

from conftest import REPO_ROOT, load_script, tune_without_test_data

an4 = load_script("recipes/an4.py")

TRAIN = ["fash", "fbbh", "mblb", "mcen"]
DEV = ["fbbh"]
TEST = ["fcaw"]

WER_LINE = re.compile(r"^%WER (\d+\.\d\d) \[ (\d+) / (\d+), (\d+) ins, (\d+) del, (\d+) sub \]")
SER_LINE = re.compile(r"^%SER (\d+\.\d\d) \[ (\d+) / (\d+) \]")


def slice_settings(an4_path: Path) -> list[str]:
    """--set options cutting configs/an4.toml down to 4 training speakers (1 dev), 1 test speaker, 2 Gaussians."""
    settings = {"data.an4_dir": json.dumps(str(an4_path)), "data.train_speakers": json.dumps(TRAIN),
                "data.test_speakers": json.dumps(TEST), "dev.speakers": json.dumps(DEV), "data.n_jobs": "1",
                "training.mixtures": "[1, 2]", "training.n_iter": "[2, 1]", "tuning.lm_scales": "[6.0, 10.0]",
                "tuning.word_insertion_penalties": "[-10.0, 0.0]", "systems.run": '["mono"]'}
    return [arg for k, v in settings.items() for arg in ("--set", f"{k}={v}")]


@pytest.fixture(scope="module")
def small_run(an4_path, tmp_path_factory):
    """(--set options, output folder, report) of the whole recipe on the slice."""
    out = tmp_path_factory.mktemp("an4") / "exp"
    args = slice_settings(an4_path)
    report = an4.main(args + ["--out", str(out), "--report", str(out / "report.json")])
    return args, out, report


def test_recipe_end_to_end_on_a_slice(small_run):
    args, out, report = small_run
    cfg = an4.apply_overrides(an4.load_config(REPO_ROOT / "configs" / "an4.toml"), args[1::2])
    assert list(report["timings_s"]) == an4.stages(cfg)
    assert json.loads((out / "report.json").read_text())["test"] == report["test"]
    report = {**report, "test": report["test"]["mono"]}
    lines = (out / "RESULTS").read_text().splitlines()
    assert len(lines) == 2
    wer, ser = WER_LINE.match(lines[0]), SER_LINE.match(lines[1])
    assert wer and ser, lines
    errors = report["test"]["errors"]
    test_utts = sorted(p.name for p in (an4.default_an4_dir() / "wav" / "an4test_clstk" / "fcaw").glob("*.sph"))
    assert [int(x) for x in wer.groups()[1:]] == [errors["n_errors"], errors["n_ref"], errors["n_insertions"],
                                                  errors["n_deletions"], errors["n_substitutions"]]
    assert int(ser.group(3)) == len(test_utts) == report["test"]["n_utterances"]
    # the printed counts are those of the written hypotheses against the references
    hyps = dict((ln.split(" ", 1) + [""])[:2] for ln in (out / "mono" / "decode_test" / "hyp.txt").read_text().splitlines())
    refs = an4.DataDir.read(out / "data" / "test").subset([Path(u).stem for u in test_utts]).text
    assert sorted(hyps) == sorted(refs)
    rescored = error_rates([refs[u] for u in sorted(refs)], [hyps[u].split() for u in sorted(refs)])
    assert rescored.n_errors == errors["n_errors"]
    # even two Gaussians and two iterations recognise most words of a seen vocabulary
    assert rescored.error_rate < 0.8
    # CTM lines are keyed by test utterance ids, words in decoding order
    ctm = [ln.split() for ln in (out / "mono" / "decode_test" / "ctm").read_text().splitlines()]
    assert {c[0] for c in ctm} <= set(refs) and all(len(c) == 5 and float(c[3]) > 0 for c in ctm)
    assert [c[4] for c in ctm if c[0] == sorted(refs)[0]] == hyps[sorted(refs)[0]].split()


def test_tuning_is_on_dev_speakers_from_the_grid(small_run):
    _, out, _ = small_run
    best = json.loads((out / "mono_nodev" / "decode_dev" / "best.json").read_text())
    assert best["dev_speakers"] == DEV
    assert best["lm_scale"] in (6.0, 10.0) and best["word_insertion_penalty"] in (-10.0, 0.0)
    assert len((out / "mono_nodev" / "decode_dev" / "tuning.txt").read_text().splitlines()) == 4
    # the dev LM never saw the dev transcripts: a dev-only sentence is missing from it
    assert (out / "lm" / "bigram_nodev.arpa").stat().st_size < (out / "lm" / "bigram.arpa").stat().st_size


def test_tuning_never_reads_the_test_set(small_run, tmp_path):
    """Tuning (stage 4) runs with the test features and the final models gone."""
    args, out, _ = small_run
    report = tune_without_test_data(an4, args, out, tmp_path / "exp", 4)  # stage 6 needs them; tuning must not
    assert report["tuned"]["mono"] == json.loads((out / "mono_nodev" / "decode_dev" / "best.json").read_text())


def test_test_utterance_without_features_counts_as_deleted(small_run, tmp_path):
    """An utterance whose audio failed is scored (all words deleted), never dropped from the WER."""
    import shutil

    from gmmhmm.features.store import load_features, save_features

    args, out, report = small_run
    copy = tmp_path / "exp"
    shutil.copytree(out, copy)
    feats, meta = load_features(copy / "feats" / "test.npz")
    lost = sorted(feats)[0]
    # as the features stage records an utterance whose audio failed
    save_features(copy / "feats" / "test.npz", {u: x for u, x in feats.items() if u != lost},
                  {**meta, "failed": [*meta["failed"], lost]})
    again = an4.main(args + ["--out", str(copy), "--stage", "6", "--stop-stage", "6"])["test"]["mono"]
    report = {**report, "test": report["test"]["mono"]}
    n_lost = len(an4.DataDir.read(out / "data" / "test").text[lost])
    assert again["n_utterances"] == report["test"]["n_utterances"] == again["n_decoded"] + 1
    assert again["errors"]["n_ref"] == report["test"]["errors"]["n_ref"]
    assert again["errors"]["n_correct"] <= report["test"]["errors"]["n_correct"]
    assert again["errors"]["n_deletions"] >= n_lost
    assert lost + " \n" in (copy / "mono" / "decode_test" / "hyp.txt").read_text()


def test_kaldi_lines_hand_computed():
    er = error_rates([["A", "B", "C"], ["D"]], [["A", "X"], ["D", "E"]])  # 1 sub, 1 del, 1 ins; 2/2 wrong
    assert an4.kaldi_lines(er) == "%WER 75.00 [ 3 / 4, 1 ins, 1 del, 1 sub ]\n%SER 100.00 [ 2 / 2 ]"


def test_dev_speakers_must_be_training_speakers(small_run):
    args, out, _ = small_run
    cfg = an4.apply_overrides(an4.load_config(REPO_ROOT / "configs" / "an4.toml"), args[1::2])
    train, _ = an4.data_sets(cfg, out)
    with pytest.raises(InvalidParameterError, match="dev"):
        an4.dev_split(train, {**cfg, "dev": {"speakers": ["fcaw"]}})  # a test speaker
    with pytest.raises(InvalidParameterError, match="dev"):
        an4.dev_split(train, {**cfg, "dev": {"speakers": TRAIN}})  # nothing left to train on


#: --set options of a very short triphone / LDA+MLLT / SAT chain on top of the slice's monophones
CHAIN = {"systems.run": '["mono", "tri1", "tri2", "tri3"]', "tri1.max_leaves": "60", "tri1.mixtures": "[1]",
         "tri1.n_iter": "[1]", "tri2.n_iter": "1", "tri2.mllt_iters": "[0]", "tri3.n_iter": "1",
         "tri3.fmllr_iters": "[0]", "tri3.n_passes": "1"}


def test_the_system_chain_on_the_slice(small_run, tmp_path):
    """tri1 -> tri2 -> tri3 from the slice's monophones: each system is tuned on dev, decodes the test
    speaker and writes its RESULTS lines; tri1 is a tree model, tri2 adds an LDA+MLLT transform, tri3
    is decoded with per-speaker fMLLR."""
    import shutil

    args, out, _ = small_run
    copy = tmp_path / "exp"
    shutil.copytree(out, copy)
    chain = [a for k, v in CHAIN.items() for a in ("--set", f"{k}={v}")]
    report = an4.main(args + chain + ["--out", str(copy), "--stage", "7"])
    assert set(report["test"]) == {"tri1", "tri2", "tri3"} and set(report["tuned"]) == {"tri1", "tri2", "tri3"}
    lines = (copy / "RESULTS").read_text().splitlines()
    assert [ln.split()[0] for ln in lines] == ["%WER", "%SER"] * 4
    assert [ln.split("decode_test ")[1].split()[0] for ln in lines] == [s for s in ("mono", "tri1", "tri2", "tri3")
                                                                        for _ in range(2)]
    tri1, tri2, tri3 = (an4.load(copy / s / "model.npz") for s in ("tri1", "tri2", "tri3"))
    assert tri1.context.context_width == 3 and tri1.feature_transform_ is None
    assert tri2.feature_transform_ is not None and tri2.n_pdfs == tri1.n_pdfs
    assert tri3.n_pdfs == tri2.n_pdfs
    for s in ("tri1", "tri2", "tri3"):
        assert report["test"][s]["n_utterances"] == report["test"]["tri1"]["n_utterances"] > 0
        assert report["test"][s]["errors"]["error_rate"] < 1.0

    # a system's trainer leaves the model it starts from as it was (callers keep using it: the
    # FSDD recipe decodes tri2 after training tri3 from it, and tri3's first pass is tri2)
    cfg = an4.apply_overrides(an4.load_config(REPO_ROOT / "configs" / "an4.toml"), (args + chain)[1::2])
    lexicon = an4.Lexicon.read(copy / "data" / "lexicon.txt")
    train, _ = an4.data_sets(cfg, copy)
    feats = an4.read_features(copy, "train", train, cfg, an4.dev_split(train, cfg)[0].speakers)
    for previous, system in (("mono", "tri1"), ("tri1", "tri2"), ("tri2", "tri3")):
        start = an4.load(copy / previous / "model.npz")
        before = copy_module.deepcopy(start)
        trained = an4.TRAINERS[system](cfg, lexicon, train, feats, start)
        assert trained is not start
        for name in ("means_", "covars_", "weights_", "self_loop_"):
            assert np.array_equal(getattr(start, name), getattr(before, name)), (system, name)
        assert (start.feature_transform_ is None) == (before.feature_transform_ is None)


def test_stage_list_follows_the_system_chain():
    cfg = an4.load_config(REPO_ROOT / "configs" / "an4.toml")
    names = an4.stages({**cfg, "systems": {"run": ["mono"]}})
    assert names == ["data", "features", "lm", "mono-train-dev", "mono-tune", "mono-train", "mono-decode"]
    with pytest.raises(InvalidParameterError, match="systems"):
        an4.stages({**cfg, "systems": {"run": ["nosuch"]}})


@pytest.mark.parametrize("setting", ["training.mixtures", "nosuch.key=1", "training.nosuch=1",
                                     "training.mixtures=[1, 2", "tuning.lm_scales=8.0", "training.mixtures=[1.5, 2]",
                                     "data.n_jobs=true", "vtln.enabled=1", "dev.speakers=[1]", "features.cmvn=1",
                                     "training.n_states=3.0", 'data.an4_dir=["x"]'])
def test_bad_override_is_named(setting):
    """An unknown key, a value that is not TOML or one of another type than the config's own value
    (a float for an int, a scalar for a list, ...) is named, never left to fail deep in a stage."""
    cfg = an4.load_config(REPO_ROOT / "configs" / "an4.toml")
    with pytest.raises(InvalidParameterError, match="--set"):
        an4.apply_overrides(cfg, [setting])


@pytest.mark.parametrize("setting", ["name.a=1", "name.e=1", "sizes.x=1"])
def test_override_of_a_key_under_a_value_that_is_no_section_is_named(setting):
    """A top-level value is no section: ``name.a`` must not look for "a" inside the string "name"."""
    with pytest.raises(InvalidParameterError, match="--set"):
        an4.apply_overrides({"name": "an4 test", "sizes": [1, 2], "data": {"n_jobs": 2}}, [setting])


def test_overrides_of_the_configs_types_are_applied():
    cfg = an4.apply_overrides(an4.load_config(REPO_ROOT / "configs" / "an4.toml"),
                              ["tuning.lm_scales=[8, 9.5]", "vtln.min_warp=1", "data.train_speakers=[\"fash\"]",
                               "training.mixtures=[1]", "vtln.enabled=false", 'data.an4_dir="/x"'])
    assert cfg["tuning"]["lm_scales"] == [8, 9.5] and cfg["vtln"]["min_warp"] == 1
    assert cfg["data"]["train_speakers"] == ["fash"] and cfg["training"]["mixtures"] == [1]
    assert cfg["vtln"]["enabled"] is False and cfg["data"]["an4_dir"] == "/x"


def test_best_on_dev_takes_fewest_errors_then_sentences_then_first():
    from gmmhmm.recipe import best_on_dev

    ref = [["A", "B"], ["C"]]
    rates = [error_rates(ref, [["A", "X"], ["C"]]),       # 1 error, 1 sentence wrong
             error_rates(ref, [["A", "B"], ["X"]]),       # 1 error, 1 sentence wrong (tie: first wins)
             error_rates(ref, [["X", "Y"], ["C"]]),       # 2 errors
             error_rates(ref, [["A"], ["C", "D"]])]       # 2 errors, 2 sentences
    assert best_on_dev(rates) == 0
    assert best_on_dev(rates[2:]) == 0 and best_on_dev(rates[::-1]) == 2


def test_vtln_features_stage(small_run, tmp_path):
    """With [vtln] enabled the features stage warps every speaker (training, dev and test alike, no
    labels) under a GMM of the training speakers minus dev, and each speaker's features are those
    of its warp with per-speaker CMVN."""
    import shutil

    from gmmhmm.features import FeatureConfig, extract_many, load_features

    args, out, _ = small_run
    copy = tmp_path / "exp"
    shutil.copytree(out / "data", copy / "data")
    vtln = {"vtln.enabled": "true", "vtln.min_warp": "0.9", "vtln.max_warp": "1.1", "vtln.step": "0.05",
            "vtln.n_components": "4", "vtln.n_iter": "1", "vtln.random_state": "0"}
    settings = args + [a for k, v in vtln.items() for a in ("--set", f"{k}={v}")]
    an4.main(settings + ["--out", str(copy), "--stage", "1", "--stop-stage", "1"])
    found = json.loads((copy / "feats" / "vtln_warps.json").read_text())
    assert set(found["warps"]) == set(TRAIN + TEST) and found["model_speakers"] == sorted(set(TRAIN) - set(DEV))
    assert all(w in (0.9, 0.95, 1.0, 1.05, 1.1) for w in found["warps"].values())
    assert not list((copy / "feats").glob(".vtln-features-*"))  # the per-warp feature cache is removed
    cfg = an4.apply_overrides(an4.load_config(REPO_ROOT / "configs" / "an4.toml"), settings[1::2])
    _, test = an4.data_sets(cfg, copy)
    feats, meta = load_features(copy / "feats" / "test.npz")
    assert meta["vtln_warps"] == found["warps"]
    fc = FeatureConfig.from_dict(cfg["features"]).replace(vtln_warp=found["warps"][TEST[0]])
    paths = [test.wav[u] for u in test.utterances]
    want, _ = extract_many(paths, fc, utt2spk=dict.fromkeys(paths, TEST[0]))
    for u in test.utterances:
        np.testing.assert_array_equal(feats[u], want[test.wav[u]])


def test_a_restarted_stage_refuses_features_of_other_settings(tmp_path):
    """--stage N after the features stage reads feats/*.npz: features made with other [features] or
    [vtln] settings, or lacking utterances of the configured sets (another speaker selection), are
    refused with a pointer to the features stage, never silently mixed with this config."""
    import soundfile as sf

    from gmmhmm.data import DataDir
    from gmmhmm.recipe import load_config, read_features, stage_features

    rng = np.random.default_rng(0)
    wav = {}
    for u in ("spk1-a", "spk1-b", "spk2-a"):
        wav[u] = str(tmp_path / f"{u}.wav")
        sf.write(wav[u], 0.1 * rng.standard_normal(4000), 16000)
    ds = DataDir(wav={u: wav[u] for u in ("spk1-a", "spk2-a")}, text={"spk1-a": ["A"], "spk2-a": ["B"]},
                 utt2spk={"spk1-a": "spk1", "spk2-a": "spk2"})
    cfg = load_config(REPO_ROOT / "configs" / "an4.toml")
    cfg["vtln"]["enabled"] = False
    out = tmp_path / "exp"
    stage_features(cfg["features"], 1, out, {"train": ds}, by_speaker=True, vtln=cfg["vtln"])
    feats = read_features(out, "train", ds, cfg)
    assert sorted(feats) == ["spk1-a", "spk2-a"] and feats["spk1-a"].shape[1] == 39

    other = copy_module.deepcopy(cfg)
    other["features"]["cep_lifter"] = 0.0  # same dimension, other features
    with pytest.raises(InvalidParameterError, match=r"feats/train.npz.*other \[features\].*stage"):
        read_features(out, "train", ds, other)
    other = copy_module.deepcopy(cfg)
    other["vtln"]["enabled"] = True
    with pytest.raises(InvalidParameterError, match=r"feats/train.npz.*\[vtln\].*stage"):
        read_features(out, "train", ds, other)
    # speed-perturbed copies (their ids prefixed sp0.9-) of features made without them
    from gmmhmm.data import perturb_speed

    with pytest.raises(InvalidParameterError, match=r"feats/train.npz.*speed 0.9.*speed_perturb.*stage"):
        read_features(out, "train", perturb_speed(ds, [0.9, 1.0]), cfg)
    more = DataDir(wav=dict(wav), text={u: ["A"] for u in wav}, utt2spk={u: u[:4] for u in wav})
    with pytest.raises(InvalidParameterError, match=r"feats/train.npz.*spk1-b.*stage"):
        read_features(out, "train", more, cfg)
    # warps from a GMM of other speakers (e.g. other [dev] speakers) are other features too
    warped = copy_module.deepcopy(cfg)
    warped["vtln"].update(enabled=True, min_warp=0.9, max_warp=1.1, step=0.1, n_components=2, n_iter=0)
    stage_features(cfg["features"], 1, out, {"train": ds}, by_speaker=True, vtln=warped["vtln"],
                   vtln_model_speakers=["spk1"])
    assert sorted(read_features(out, "train", ds, warped, vtln_model_speakers=["spk1"])) == ["spk1-a", "spk2-a"]
    with pytest.raises(InvalidParameterError, match=r"feats/train.npz.*\[vtln\].*stage"):
        read_features(out, "train", ds, warped, vtln_model_speakers=["spk2"])


def test_a_restarted_stage_refuses_models_and_tuning_of_other_settings(small_run, tmp_path):
    """--stage N reads the models and dev-tuned settings of earlier stages: ones made under other
    settings than this run's are refused, naming the stage to run again; the same settings are fine."""
    import shutil

    args, out, report = small_run
    copy = tmp_path / "exp"
    shutil.copytree(out, copy)
    with pytest.raises(InvalidParameterError, match=r"mono_nodev/model.npz.*mono-train-dev"):
        an4.main(args + ["--out", str(copy), "--stage", "4", "--stop-stage", "4",
                         "--set", "training.var_floor_frac=0.02"])
    with pytest.raises(InvalidParameterError, match=r"best.json.*mono-tune"):
        an4.main(args + ["--out", str(copy), "--stage", "6", "--stop-stage", "6", "--set", "tuning.lm_scales=[7.0]"])
    again = an4.main(args + ["--out", str(copy), "--stage", "6", "--stop-stage", "6"])["test"]["mono"]
    assert again["errors"] == report["test"]["mono"]["errors"]


def test_a_restarted_stage_refuses_a_language_model_of_other_settings(small_run, tmp_path):
    """The tuning and decoding stages read lm/*.arpa of the lm stage: one estimated with another
    [lm] order (or from other transcripts) was used as it was, while the tuning was recorded
    under this run's settings."""
    import shutil

    args, out, _ = small_run
    copy = tmp_path / "exp"
    shutil.copytree(out, copy)
    with pytest.raises(InvalidParameterError, match=r"lm/bigram_nodev.arpa.*the lm stage"):
        an4.main(args + ["--out", str(copy), "--stage", "4", "--stop-stage", "4", "--set", "lm.order=3"])
    an4.main(args + ["--out", str(copy), "--stage", "4", "--stop-stage", "4"])  # the same settings: fine


def test_speed_perturbed_training_on_a_slice(small_run, tmp_path, monkeypatch):
    """With [data] speed_perturb = [0.9, 1.0] both trainings see the sp0.9- copies of their training
    speakers (new speakers: own CMVN and VTLN warp) beside the originals; the dev speaker's copies
    only in the final training (there it is a training speaker), never in tuning; the test speaker
    is never perturbed, and the VTLN GMM is still that of the unperturbed training speakers."""
    import shutil

    args, out, _ = small_run
    copy = tmp_path / "exp"
    shutil.copytree(out / "data", copy / "data")
    train = ["fash", "fbbh", "mblb"]
    extra = {"data.train_speakers": json.dumps(train), "data.speed_perturb": "[0.9, 1.0]", "vtln.min_warp": "0.9",
             "vtln.max_warp": "1.1", "vtln.step": "0.1", "vtln.n_components": "4", "vtln.n_iter": "1"}
    settings = args + [a for k, v in extra.items() for a in ("--set", f"{k}={v}")]
    seen: dict[str, list] = {"train": [], "tune": [], "decode": []}
    real_mono, real_tune, real_decode = an4.TRAINERS["mono"], an4.stage_tune, an4.stage_decode

    def mono(cfg, lexicon, ds, feats, previous):
        seen["train"].append((ds, feats))
        return real_mono(cfg, lexicon, ds, feats, previous)

    def tune(cfg, system, model, lexicon, lm, dev, feats, *rest):
        seen["tune"].append(sorted(set(dev.utterances) | set(feats)))
        return real_tune(cfg, system, model, lexicon, lm, dev, feats, *rest)

    def decode(cfg, system, model, lexicon, lm, test, feats, *rest):
        seen["decode"].append(sorted(set(test.utterances) | set(feats)))
        return real_decode(cfg, system, model, lexicon, lm, test, feats, *rest)

    monkeypatch.setitem(an4.TRAINERS, "mono", mono)
    monkeypatch.setattr(an4, "stage_tune", tune)
    monkeypatch.setattr(an4, "stage_decode", decode)
    an4.main(settings + ["--out", str(copy), "--stage", "1"])

    (nodev, nodev_feats), (full, full_feats) = seen["train"]
    for ds, feats, speakers in ((nodev, nodev_feats, ["fash", "mblb"]), (full, full_feats, train)):
        assert ds.speakers == sorted(speakers + [f"sp0.9-{s}" for s in speakers])
        originals = [u for u in ds.utterances if not u.startswith("sp")]
        assert ds.utterances == sorted(originals + [f"sp0.9-{u}" for u in originals])
        assert sorted(feats) == ds.utterances
        for u in originals:
            assert ds.utt2spk[f"sp0.9-{u}"] == f"sp0.9-{ds.utt2spk[u]}" and ds.text[f"sp0.9-{u}"] == ds.text[u]
            assert abs(len(feats[f"sp0.9-{u}"]) - len(feats[u]) / 0.9) <= 2  # 1/0.9 times the frames
        # each perturbed speaker is normalised by its own CMVN statistics
        own = np.concatenate([feats[u] for u in ds.spk2utt["sp0.9-fash"]])
        np.testing.assert_allclose(own.mean(axis=0), 0.0, atol=1e-6)
    assert not any(s.startswith("sp0.9-fbbh") for s in nodev.speakers)
    assert seen["tune"] and all(not u.startswith("sp") and f"-{DEV[0]}-" in u for u in seen["tune"][0])
    assert seen["decode"] and all(not u.startswith("sp") and f"-{TEST[0]}-" in u for u in seen["decode"][0])
    warps = json.loads((copy / "feats" / "vtln_warps.json").read_text())
    assert set(warps["warps"]) == set(train + TEST + [f"sp0.9-{s}" for s in train])
    assert warps["model_speakers"] == ["fash", "mblb"]
    from gmmhmm.features import load_features

    assert load_features(copy / "feats" / "train.npz")[1]["speed_perturb"] == [0.9]
    assert "speed=0.9,1" in (copy / "RESULTS").read_text()


def test_speed_perturbation_setting_keeps_todays_model_keys():
    """speed_perturb = [] (the default) leaves the model keys of models trained before the setting
    existed; set, it changes them (models of unperturbed data are refused)."""
    cfg = an4.load_config(REPO_ROOT / "configs" / "an4.toml")
    assert cfg["data"]["speed_perturb"] == []
    old = copy_module.deepcopy(cfg)
    del old["data"]["speed_perturb"]
    assert an4.model_key(cfg, "mono", "") == an4.model_key(old, "mono", "")
    cfg["data"]["speed_perturb"] = [0.9, 1.0, 1.1]
    assert an4.model_key(cfg, "mono", "") != an4.model_key(old, "mono", "")
    cfg["data"]["speed_perturb"] = 0.9
    with pytest.raises(InvalidParameterError, match="speed_perturb must be a list"):
        an4.model_key(cfg, "mono", "")
