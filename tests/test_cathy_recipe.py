"""The Cathy phone recipe end to end on a small slice (a few prompts, one Gaussian), and its data preparation.

Fails loudly (never skips) when ../shared/data/cathy or ../shared/data/cmudict is missing.
"""

from __future__ import annotations

import json
import re

import pytest
import soundfile as sf

from gmmhmm.data import DataDir, Lexicon
from gmmhmm.errors import DataDirError, InvalidParameterError
from gmmhmm.recipe import apply_overrides, load_config
from gmmhmm.scoring import error_rates

from conftest import REPO_ROOT, load_script, tune_without_test_data

cathy = load_script("recipes/cathy_phones.py")
prep = load_script("data_scripts/prepare_cathy.py")

SYSTEMS = ("mono", "tri1")


def result_line(unit: str, folder: str) -> re.Pattern:
    """A Kaldi ``%PER`` (counts: errors, ref, ins, del, sub) or ``%SER`` (wrong, sentences) line of RESULTS."""
    counts = r"(\d+) / (\d+), (\d+) ins, (\d+) del, (\d+) sub" if unit == "PER" else r"(\d+) / (\d+)"
    return re.compile(rf"^%{unit} (\d+\.\d\d) \[ {counts} \] {folder} ")


def slice_settings(corpus, cmudict) -> list[str]:
    """--set options cutting configs/cathy_phones.toml down to 12 training prompts (3 dev), 2 test prompts."""
    settings = {"data.cathy_dir": json.dumps(str(corpus)), "data.cmudict": json.dumps(str(cmudict)),
                "data.n_train_prompts": "12", "data.n_test_prompts": "2", "data.n_jobs": "1",
                "dev.every": "4", "dev.offset": "1", "mono.mixtures": "[1]", "mono.n_iter": "[3]",
                "tri1.mixtures": "[1]", "tri1.n_iter": "[1]", "tri1.min_occupancy": "20.0",
                "tuning.lm_scales": "[4.0]", "tuning.phone_insertion_penalties": "[-10.0, 0.0]", "align.n_files": "2"}
    return [arg for k, v in settings.items() for arg in ("--set", f"{k}={v}")]


def read_table(path) -> dict[str, list[str]]:
    return {ln.split(" ", 1)[0]: ln.split()[1:] for ln in path.read_text().splitlines()}


@pytest.fixture(scope="module")
def small_run(cathy_paths, tmp_path_factory):
    """(--set options, output folder, report) of the whole recipe on the slice."""
    out = tmp_path_factory.mktemp("cathy") / "exp"
    args = slice_settings(*cathy_paths)
    report = cathy.main(args + ["--out", str(out), "--report", str(out / "report.json")])
    return args, out, report


def test_recipe_end_to_end_on_a_slice(small_run):
    _, out, report = small_run
    assert set(report["timings_s"]) == set(cathy.STAGES)
    assert json.loads((out / "report.json").read_text())["mono_test"] == report["mono_test"]
    lines = (out / "RESULTS").read_text().splitlines()
    # per system in training order: its dev %PER / %SER at the tuned settings, then test
    assert len(lines) == 4 * len(SYSTEMS)
    test = DataDir.read(out / "data" / "test")
    test_utts = [u for u in test.utterances if prep.prompt_of(u) in sorted({prep.prompt_of(v) for v in test.utterances})[:2]]
    phones = set(Lexicon.read(out / "data" / "lexicon.txt").phones) - {"sil"}
    assert len(phones) == 39
    for k, name in enumerate(SYSTEMS):
        dev_per, dev_ser, per, ser = (result_line(unit, folder).match(ln) for unit, folder, ln in zip(
            ("PER", "SER") * 2, [f"{name}_nodev/decode_dev"] * 2 + [f"{name}/decode_test"] * 2, lines[4 * k:4 * k + 4]))
        assert dev_per and dev_ser and per and ser, lines
        tuned = json.loads((out / f"{name}_nodev" / "decode_dev" / "best.json").read_text())
        for match, errors in ((dev_per, tuned["dev_errors"]), (per, report[f"{name}_test"]["errors"])):
            assert [int(x) for x in match.groups()[1:]] == [errors["n_errors"], errors["n_ref"], errors["n_insertions"],
                                                            errors["n_deletions"], errors["n_substitutions"]]
        assert f"lm_scale={tuned['lm_scale']:g} pip={tuned['phone_insertion_penalty']:g}" in lines[4 * k + 2]
        assert int(dev_ser.group(3)) == tuned["n_dev_utterances"]
        # the printed counts are those of the written hypotheses against the written references
        hyps, refs = (read_table(out / name / "decode_test" / f"{n}.txt") for n in ("hyp", "ref"))
        assert sorted(hyps) == sorted(refs) == test_utts and report[f"{name}_test"]["n_utterances"] == len(test_utts)
        assert int(ser.group(3)) == len(test_utts)
        rescored = error_rates([refs[u] for u in test_utts], [hyps[u] for u in test_utts])
        errors = report[f"{name}_test"]["errors"]
        assert rescored.n_errors == errors["n_errors"] and rescored.n_ref == errors["n_ref"]
        # hypotheses are phones of the model, silence left out
        assert {p for h in hyps.values() for p in h} <= phones
        # one Gaussian per state and 12 prompts already recognise far more than nothing (PER 100%)
        assert rescored.error_rate < 0.8, name
    # tri1: tied cross-word triphones grown from the mono alignments, fewer leaves than triphone states
    tri1 = cathy.load(out / "tri1" / "model.npz")
    assert tri1.context.context_width == 3
    assert cathy.load(out / "mono" / "model.npz").n_pdfs < tri1.n_pdfs <= 300
    assert f"tri1 {tri1.n_pdfs} pdfs 1g " in lines[-1]


def test_references_are_the_cmudict_pronunciations(small_run):
    """arctic_a0001: 'Author of the danger trail, Philip Steels, etc.' in first cmudict pronunciations."""
    _, out, _ = small_run
    lexicon = Lexicon.read(out / "data" / "lexicon.txt")
    test = DataDir.read(out / "data" / "test")  # the first prompt is a test prompt
    utt = next(u for u in test.utterances if u.startswith("arctic_a0001_"))
    assert test.text[utt] == "author of the danger trail philip steels etc".split()
    assert cathy.phone_strings(lexicon, test.subset([utt]))[utt] == (
        "AO TH ER AH V DH AH D EY N JH ER T R EY L F IH L AH P S T IY L Z EH T S EH T ER AH".split())
    assert lexicon.prons("the") == [(("DH", "AH"), 0.0), (("DH", "IY"), 0.0)]  # stress stripped, alternates kept


def test_prompts_never_cross_the_split(small_run, cathy_paths):
    """Test = every 10th distinct prompt with all its recordings; dev prompts are out of the dev system's training."""
    args, out, _ = small_run
    train, test = (DataDir.read(out / "data" / n) for n in ("train", "test"))
    train_prompts = {prep.prompt_of(u) for u in train.utterances}
    test_prompts = {prep.prompt_of(u) for u in test.utterances}
    assert not train_prompts & test_prompts
    # the split is over every prompt of the corpus (prompts whose recordings were all dropped included)
    corpus = cathy_paths[0] / "data"
    all_prompts = sorted({prep.prompt_of(p.stem) for p in corpus.glob("arctic_*.flac")})
    assert len(all_prompts) == 1132
    assert sorted(test_prompts) <= all_prompts[::10] and len(test_prompts) >= len(all_prompts[::10]) - 2
    # every recording of a test prompt is in the test set (none was dropped: their words are all in cmudict)
    p0 = sorted(test_prompts)[0]
    assert sorted(u for u in test.utterances if prep.prompt_of(u) == p0) == sorted(
        p.stem for p in corpus.glob(f"{p0}_*.flac"))
    cfg = apply_overrides(load_config(REPO_ROOT / "configs" / "cathy_phones.toml"), args[1::2])
    tr, te = cathy.data_sets(cfg, out)
    nodev, dev = cathy.dev_split(tr, cfg)
    assert cathy.n_prompts(tr) == 12 and cathy.n_prompts(te) == 2 and cathy.n_prompts(dev) == 3
    assert not {prep.prompt_of(u) for u in nodev.utterances} & {prep.prompt_of(u) for u in dev.utterances}
    assert sorted(nodev.utterances + dev.utterances) == tr.utterances
    best = json.loads((out / "mono_nodev" / "decode_dev" / "best.json").read_text())
    assert best["n_dev_prompts"] == 3 and best["phone_insertion_penalty"] in (-10.0, 0.0)
    # the dev LM never saw the dev prompts' phones
    assert (out / "lm" / "phone_bigram_nodev.arpa").read_text() != (out / "lm" / "phone_bigram.arpa").read_text()
    with pytest.raises(InvalidParameterError, match="dev"):
        cathy.dev_split(tr, {**cfg, "dev": {"every": 20, "offset": 15}})  # no dev prompt among 12


def test_tuning_never_reads_the_test_set(small_run, tmp_path):
    """Tuning runs with the test features and the final models gone."""
    args, out, _ = small_run
    report = tune_without_test_data(cathy, args, out, tmp_path / "exp", cathy.STAGES.index("mono-tune"))
    assert report["mono_tuned"] == json.loads((out / "mono_nodev" / "decode_dev" / "best.json").read_text())


@pytest.mark.parametrize("system", SYSTEMS)
def test_textgrids_of_test_files(small_run, system):
    _, out, _ = small_run
    test = DataDir.read(out / "data" / "test")
    lexicon = Lexicon.read(out / "data" / "lexicon.txt")
    grids = sorted((out / system / "align_test").glob("*.TextGrid"))
    assert [g.stem for g in grids] == test.utterances[:2]
    for g in grids:
        tg = g.read_text()
        words = re.findall(r'text = "([^"]*)"', tg.split('name = "phones"')[0])
        assert [w for w in words if w != "sil"] == test.text[g.stem]
        phones = re.findall(r'text = "([^"]*)"', tg.split('name = "phones"')[1])
        # one of each word's pronunciations, phone by phone
        n_phones = len([p for p in phones if p != "sil"])
        lengths = [[len(pron) for pron, _ in lexicon.prons(w)] for w in test.text[g.stem]]
        assert sum(map(min, lengths)) <= n_phones <= sum(map(max, lengths))
        times = re.findall(r"^ *(?:xmin|xmax) = (.*)$", tg, re.MULTILINE)
        assert all(re.fullmatch(r"[0-9.e+-]+", t) for t in times)
        assert float(times[1]) == pytest.approx(sf.info(test.wav[g.stem]).duration)
    ctm = (out / system / "align_test" / "phones.ctm").read_text().split("\n")
    assert {ln.split()[0] for ln in ctm if ln} == set(test.utterances[:2])


def test_words_missing_from_cmudict_drop_their_utterances(small_run):
    """'springy' is in no dictionary: its two recordings are listed and left out; possessives are pronounced."""
    _, out, report = small_run
    dropped = read_table(out / "data" / "dropped.txt")
    assert dropped["arctic_a0327_1592709407"] == ["springy"] and len(dropped) == report["data"]["dropped_utterances"]
    kept = set(DataDir.read(out / "data" / "train").utterances) | set(DataDir.read(out / "data" / "test").utterances)
    assert not kept & set(dropped)
    lexicon = Lexicon.read(out / "data" / "lexicon.txt")
    assert lexicon.pronunciations["kerfoot's"] == "K ER F UH T S".split()


def test_normalize_and_possessives_hand_computed():
    assert prep.normalize("If you mean to insinuate -- Brentwood began hotly.") == \
        "if you mean to insinuate brentwood began hotly".split()
    assert prep.normalize("O'Brien's twenty-five 'bout, 'quoted'") == ["o'brien's", "twenty", "five", "bout", "quoted"]
    lex = Lexicon({"pearce": "P IH R S".split(), "pascal": "P AE S K AE L".split(), "thorpe": "TH AO R P".split()})
    assert prep.possessive("pearce's", lex) == [(tuple("P IH R S IH Z".split()), 0.0)]
    assert prep.possessive("pascal's", lex) == [(tuple("P AE S K AE L Z".split()), 0.0)]
    assert prep.possessive("thorpe's", lex) == [(tuple("TH AO R P S".split()), 0.0)]
    assert prep.possessive("nobody's", lex) is None and prep.possessive("pearce", lex) is None


def test_bad_corpus_and_split_are_named(tmp_path, cathy_paths):
    with pytest.raises(DataDirError, match="Cathy not found"):
        prep.prepare(tmp_path, cathy_paths[1], tmp_path / "out")
    with pytest.raises(DataDirError, match="not a Cathy recording"):
        prep.prompt_of("a0001")
    with pytest.raises(InvalidParameterError, match="every"):
        prep.every_nth(["a", "b"], 10, 10)
