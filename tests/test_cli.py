"""The gmmhmm command: features -> train -> decode -> score -> info on real FSDD files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from gmmhmm.cli import main, read_config
from gmmhmm.errors import InvalidParameterError
from gmmhmm.features import load_features

REPO = Path(__file__).resolve().parents[1]

TINY_CONFIG = """
[features]
sample_rate_hz = 8000
n_mels = 23
n_ceps = 13
delta_order = 2

[model]
n_states = 4
mix_schedule = [1, 2]
n_iter = [3, 2]
n_jobs = 1

[data]
n_jobs = 1
"""


def link_files(src: Path, dst: Path, names: list[str]) -> Path:
    dst.mkdir()
    for n in names:
        (dst / n).symlink_to(src / n)
    return dst


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, fsdd_path):
    tmp = tmp_path_factory.mktemp("cli")
    rec = fsdd_path / "recordings"
    link_files(rec, tmp / "train", [f"{d}_jackson_{i}.wav" for d in (0, 1, 6) for i in range(5, 17)])
    link_files(rec, tmp / "test", [f"{d}_jackson_{i}.wav" for d in (0, 1, 6) for i in range(3)])
    (tmp / "tiny.toml").write_text(TINY_CONFIG)
    return tmp


def test_round_trip(workdir, capsys):
    cfg = str(workdir / "tiny.toml")
    feats = workdir / "feats.npz"
    assert main(["features", str(workdir / "train"), "-o", str(feats), "--config", cfg]) == 0
    data, meta = load_features(feats)
    assert len(data) == 36 and meta["feature_config"]["n_ceps"] == 13
    assert next(iter(data.values())).shape[1] == 39

    model = workdir / "model.npz"
    assert main(["train", str(feats), "-o", str(model), "--config", cfg]) == 0

    bad = workdir / "broken.wav"
    bad.write_bytes(b"RIFF not really a wav file")
    short = workdir / "short.wav"  # 3 frames: shorter than every 4-state word model
    sf.write(short, 0.01 * np.random.default_rng(0).standard_normal(400), 8000)
    hyp = workdir / "hyp.txt"
    capsys.readouterr()
    rc = main(["decode", str(model), str(workdir / "test"), str(bad), str(short), "-o", str(hyp)])
    err = capsys.readouterr().err
    assert rc == 1 and "broken.wav" in err  # bad file reported and skipped
    assert "short.wav" in err and "too short for every word model" in err  # reported, not guessed
    lines = [line.split("\t") for line in hyp.read_text().splitlines()]
    assert len(lines) == 9
    assert all(lab in {"0", "1", "6"} and float(ll) < 0 for _, lab, ll in lines)

    assert main(["score", str(hyp), "--ref-from-fsdd-names", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 9 and result["accuracy"] >= 6 / 9  # chance is 1/3
    # an explicit reference file, keyed by file name, gives the same figure
    ref = workdir / "ref.txt"
    ref.write_text("".join(f"{Path(p).name}\t{Path(p).name[0]}\n" for p, _, _ in lines))
    png = workdir / "cm.png"
    assert main(["score", str(hyp), "--ref", str(ref), "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert f"accuracy: {100 * result['accuracy']:.2f}%" in out and "ref \\ hyp" in out
    assert png.read_bytes()[:4] == b"\x89PNG"

    assert main(["info", str(model)]) == 0
    out = capsys.readouterr().out
    assert "HMMClassifier" in out and "model 2: GMMHMM" in out and "feature_config" in out
    assert main(["info", str(model), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["class"] == "HMMClassifier"


def test_train_from_folder_official_split(workdir, fsdd_path, capsys):
    folder = link_files(fsdd_path / "recordings", workdir / "mixed",
                        [f"{d}_theo_{i}.wav" for d in (2, 3) for i in range(8)])
    model = workdir / "m2.npz"
    assert main(["train", str(folder), "-o", str(model), "--config", str(workdir / "tiny.toml"),
                 "--split", "official"]) == 0
    assert "on 6 utterance(s)" in capsys.readouterr().err  # takes 5-7 of two digits


def test_exit_codes_and_errors(workdir, capsys):
    assert main(["--help"]) == 0
    assert main(["decode", "--help"]) == 0
    assert main([]) == 2
    assert main(["decode"]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["info", str(workdir / "missing.npz")]) == 1
    assert "no such file" in capsys.readouterr().err
    assert main(["features", str(workdir / "empty_dir_missing"), "-o", str(workdir / "x.npz")]) == 1


def test_score_error_rates(tmp_path, capsys):
    (tmp_path / "ref").write_text("u1 the cat sat\nu2 on the mat\n")
    (tmp_path / "hyp").write_text("u1 the cat sat down\nu2 on mat\nu3 extra\n")
    rc = main(["score", str(tmp_path / "hyp"), "--ref", str(tmp_path / "ref"), "--json"])
    captured = capsys.readouterr()
    assert rc == 1 and "no reference for u3" in captured.err  # unmatched hypothesis
    r = json.loads(captured.out)
    assert (r["n_ref"], r["n_insertions"], r["n_deletions"], r["n_substitutions"]) == (6, 1, 1, 0)
    assert r["error_rate"] == pytest.approx(2 / 6)
    assert main(["score", str(tmp_path / "hyp"), "--ref", str(tmp_path / "ref"), "--per-utt"]) == 1
    out = capsys.readouterr().out
    assert "u1: 1 error(s) / 3" in out and "HYP: the cat sat down" in out
    assert "H=5, D=1, S=0, I=1, N=6" in out and "OPS:    D" in out


def test_score_kaldi_lines_with_empty_transcripts(tmp_path, capsys):
    # Kaldi text: an utterance with no words is the id alone (an empty reference, or a decoder that
    # recognised nothing); it is scored (all insertions / all deletions), not a reason to abort.
    (tmp_path / "ref").write_text("u1 a b c\nu2\nu3 d\n")
    (tmp_path / "hyp").write_text("u1 a b\nu2 x\nu3 \r\n")
    assert main(["score", str(tmp_path / "hyp"), "--ref", str(tmp_path / "ref"), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert (r["n_ref"], r["n_deletions"], r["n_insertions"], r["n_substitutions"]) == (4, 2, 1, 0)
    assert r["n_sentences"] == 3


def test_score_reports_references_without_a_hypothesis(tmp_path, capsys):
    # a reference the hypotheses never name (an utterance the decoder failed on) is left out of the
    # error rate: that must be said, not silent (it makes the WER look better)
    (tmp_path / "ref").write_text("u1 a b\nu2 c\nu3 d e\n")
    (tmp_path / "hyp").write_text("u1 a b\n")
    assert main(["score", str(tmp_path / "hyp"), "--ref", str(tmp_path / "ref"), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["n_ref"] == 2
    assert "2 reference(s) have no hypothesis and are not scored: u2, u3" in captured.err


def test_tables_refuse_empty_values_where_one_is_needed(tmp_path, capsys):
    # a VTLN map or utt2spk line without its value is named, not an IndexError or an empty speaker
    (tmp_path / "map").write_text("spk1\t\n")
    (tmp_path / "a.wav").write_bytes(b"")
    rc = main(["features", str(tmp_path / "a.wav"), "-o", str(tmp_path / "f.npz"),
               "--vtln-map", str(tmp_path / "map")])
    assert rc == 1 and "map:1" in capsys.readouterr().err


def test_read_config(tmp_path):
    cfg = read_config(REPO / "configs" / "fsdd_digits.toml")
    assert cfg.features.sample_rate_hz == 8000 and cfg.split == "official"
    assert isinstance(cfg.model["mix_schedule"], tuple)
    for text, msg in [("[modle]\n", "unknown section"), ("[model]\nn_mix = 3\n", "unknown key"),
                      ("[data]\nsplit = 'random'\n", "split must be"),
                      ("[features]\nn_ceps = 0\n", r"\[features\]"),
                      ("[model]\nmix_schedule = [4, 2]\n", "non-decreasing"), ("x = ", "TOML"),
                      # named at read time, not a ValueError from float() in the middle of training
                      ("[model]\ntol = 'abc'\n", r"\[model\]: tol"), ("[model]\ntol = true\n", r"\[model\]: tol"),
                      ("[model]\nmin_covar = true\n", r"\[model\]: min_covar"),
                      ("[model]\nrandom_state = 'x'\n", r"\[model\]: random_state"),
                      # named at read time, not after the corpus is featurised, without file or section
                      ("[model]\nn_jobs = 0\n", r"\[model\]: n_jobs"), ("[model]\nn_jobs = '2'\n", r"\[model\]: n_jobs")]:
        p = tmp_path / "c.toml"
        p.write_text(text)
        with pytest.raises(InvalidParameterError, match=msg):
            read_config(p)
    with pytest.raises(InvalidParameterError, match="does not exist"):
        read_config(tmp_path / "nope.toml")


def test_speaker_cmvn_features_do_not_depend_on_the_batch_or_folders(workdir, fsdd_path, capsys):
    """Bug: `decode model a.wav` and `decode model a.wav b.wav` differed, and x/rec/a, y/rec/b were one speaker."""
    rec = fsdd_path / "recordings"
    x = link_files(rec, workdir / "x", ["0_jackson_3.wav"]) / "0_jackson_3.wav"
    y = link_files(rec, workdir / "y", ["1_jackson_4.wav", "6_theo_4.wav"])
    cfg = workdir / "speaker.toml"
    cfg.write_text(TINY_CONFIG.replace("delta_order = 2", 'delta_order = 2\ncmvn = "speaker"'))

    def features(*inputs, extra=()):
        out = workdir / "spk_feats.npz"
        assert main(["features", *map(str, inputs), "-o", str(out), "--config", str(cfg), *extra]) == 0
        return load_features(out)[0]

    alone = features(x)[str(x)]
    for batch in ([x, y / "1_jackson_4.wav"], [y, x]):
        assert (features(*batch)[str(x)] == alone).all()
    # an explicit utt2spk pools: jackson's two takes share statistics, theo's is alone
    (workdir / "utt2spk").write_text("0_jackson_3 jackson\n1_jackson_4 jackson\n6_theo_4 theo\n")
    pooled = features(x, y, extra=["--utt2spk", str(workdir / "utt2spk")])
    assert not (pooled[str(x)] == alone).all()
    assert (pooled[str(y / "6_theo_4.wav")] == features(y / "6_theo_4.wav")[str(y / "6_theo_4.wav")]).all()

    model = workdir / "spk_model.npz"
    assert main(["train", str(workdir / "train"), "-o", str(model), "--config", str(cfg)]) == 0
    capsys.readouterr()
    assert main(["decode", str(model), str(x)]) == 0
    one = capsys.readouterr().out
    assert main(["decode", str(model), str(x), *map(str, sorted(y.iterdir()))]) == 0
    assert capsys.readouterr().out.splitlines()[0] == one.strip()


def test_features_to_a_kaldi_archive(tmp_path, capsys):
    """`features -o X.ark` writes a Kaldi archive and its scp (copy-feats ark,scp:X.ark,X.scp), keyed
    as the .npz output is, holding the same features (float32, as Kaldi stores them)."""
    import soundfile as sf

    from conftest import tone
    from gmmhmm.data import kaldi_io

    d = tmp_path / "data"
    d.mkdir()
    for i, f in enumerate((300, 500)):
        sf.write(d / f"u{i}.wav", tone(f), 8000, subtype="PCM_16")
    (d / "wav.scp").write_text(f"utt0 {d / 'u0.wav'}\nutt1 {d / 'u1.wav'}\n")
    (d / "utt2spk").write_text("utt0 s\nutt1 s\n")
    assert main(["features", str(d), "-o", str(tmp_path / "f.npz")]) == 0
    assert main(["features", str(d), "-o", str(tmp_path / "f.ark")]) == 0
    want = load_features(tmp_path / "f.npz")[0]
    got = dict(kaldi_io.read_ark(tmp_path / "f.ark"))
    assert list(got) == list(want) == ["utt0", "utt1"]
    for u in want:
        np.testing.assert_array_equal(got[u], want[u].astype(np.float32))
    by_scp = kaldi_io.read_scp(tmp_path / "f.scp")
    assert list(by_scp) == ["utt0", "utt1"] and all((by_scp[u] == got[u]).all() for u in got)
    # a file whose key (its path) has a space cannot be a Kaldi key: it is reported, the rest written
    (tmp_path / "sp ace").mkdir()
    sf.write(tmp_path / "sp ace" / "b.wav", tone(400), 8000, subtype="PCM_16")
    capsys.readouterr()
    assert main(["features", str(d / "u0.wav"), str(tmp_path / "sp ace" / "b.wav"), "-o", str(tmp_path / "g.ark")]) == 1
    assert "sp ace" in capsys.readouterr().err and list(kaldi_io.read_ark(tmp_path / "g.ark"))[0][0].endswith("u0.wav")
    assert len(list(kaldi_io.read_ark(tmp_path / "g.ark"))) == 1
    # the scp is an output too: it may not name an input, and an unwritable one fails before the work
    capsys.readouterr()
    (tmp_path / "f.scp").unlink()
    (tmp_path / "f.scp").mkdir()
    assert main(["features", str(d), "-o", str(tmp_path / "f.ark")]) != 0
    assert "f.scp" in capsys.readouterr().err


def test_features_archive_and_index_replace_both_or_neither(tmp_path, capsys, monkeypatch):
    """`features -o X.ark` failing while it writes X.scp (disk full) leaves the user's X.ark and X.scp
    as they were and no temporary file (before, the new archive was already in place)."""
    import soundfile as sf

    from conftest import no_room_for, tone

    sf.write(tmp_path / "a.wav", tone(300), 8000, subtype="PCM_16")
    sf.write(tmp_path / "b.wav", tone(500), 8000, subtype="PCM_16")
    assert main(["features", str(tmp_path / "a.wav"), "-o", str(tmp_path / "f.ark")]) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    no_room_for(monkeypatch, "f.scp")  # the index cannot be written (disk full)
    assert main(["features", str(tmp_path / "b.wav"), "-o", str(tmp_path / "f.ark")]) != 0
    assert "No space left" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_no_option_file_is_overwritten_by_the_output(tmp_path, capsys):
    """Every input a command reads through an option (--vtln-map, --utt2spk, --config, ...) is
    protected like its positional inputs: `features -o map --vtln-map map` replaced the user's map."""
    import soundfile as sf

    from conftest import tone

    sf.write(tmp_path / "a.wav", tone(300), 8000, subtype="PCM_16")
    (tmp_path / "map").write_text("a 1.0\n")
    (tmp_path / "u2s").write_text("a a\n")
    for option, path in (("--vtln-map", "map"), ("--utt2spk", "u2s")):
        before = (tmp_path / path).read_bytes()
        extra = ["--utt2spk", str(tmp_path / "u2s")] if option == "--vtln-map" else []
        assert main(["features", str(tmp_path / "a.wav"), "-o", str(tmp_path / path), option,
                     str(tmp_path / path), *extra]) == 1
        assert "is also an input" in capsys.readouterr().err
        assert (tmp_path / path).read_bytes() == before


# --- wav.scp files of any name -----------------------------------------------------------------------
def _tones(tmp_path, n=2):
    from conftest import tone

    audio = tmp_path / "audio"
    audio.mkdir()
    for i in range(n):
        sf.write(audio / f"u{i}.wav", tone(300 + 200 * i), 8000, subtype="PCM_16")
    return audio


@pytest.mark.parametrize("name", ["train_wav.scp", "wav_sp.scp", "data/x.scp"])
def test_any_scp_file_is_read_as_a_wav_scp(tmp_path, capsys, name):
    """Kaldi users name scp files anything: a file ending in .scp is a wav.scp (its ids are the
    utterance ids), not an audio file that fails to decode; audio files and data dirs as before."""
    audio = _tones(tmp_path)
    scp = tmp_path / name
    scp.parent.mkdir(exist_ok=True)
    scp.write_text(f"rec-a {audio / 'u0.wav'}\nrec-b {audio / 'u1.wav'}\n")
    assert main(["features", str(scp), "-o", str(tmp_path / "f.npz")]) == 0
    got = load_features(tmp_path / "f.npz")[0]
    assert list(got) == ["rec-a", "rec-b"]
    # the same audio named directly (key: its path) gives the same features
    assert main(["features", str(audio / "u0.wav"), "-o", str(tmp_path / "g.npz")]) == 0
    np.testing.assert_array_equal(load_features(tmp_path / "g.npz")[0][str(audio / "u0.wav")], got["rec-a"])


def test_a_feature_scp_given_for_audio_is_named_as_one(tmp_path, capsys):
    """`feats.scp` (``utt file.ark:offset`` lines) where audio is wanted: one clear error naming
    the file and line and saying it looks like a feature scp, before any work; not one "cannot read
    audio" failure per line."""
    audio = _tones(tmp_path)
    assert main(["features", str(audio), "-o", str(tmp_path / "f.ark")]) == 0
    feats_scp = tmp_path / "f.scp"
    assert ".ark:" in feats_scp.read_text()
    capsys.readouterr()
    assert main(["features", str(feats_scp), "-o", str(tmp_path / "g.npz")]) == 1
    err = capsys.readouterr().err
    assert f"{feats_scp}:1" in err and "feature scp" in err
    assert not (tmp_path / "g.npz").exists()
    # the same in a data directory's wav.scp
    d = tmp_path / "data"
    d.mkdir()
    (d / "wav.scp").write_text("utt1 raw_mfcc.1.ark:14\n")
    (d / "utt2spk").write_text("utt1 s\n")
    assert main(["features", str(d), "-o", str(tmp_path / "h.npz")]) == 1
    err = capsys.readouterr().err
    assert f"{d / 'wav.scp'}:1" in err and "feature scp" in err


def test_a_missing_scp_is_named(tmp_path, capsys):
    assert main(["features", str(tmp_path / "nowhere.scp"), "-o", str(tmp_path / "f.npz")]) == 1
    err = capsys.readouterr().err
    assert "nowhere.scp" in err and "no such" in err.lower()


def test_verbose_is_honoured_by_every_call_and_logging_is_left_as_found(tmp_path, capsys):
    """``main`` configured logging with ``basicConfig``, a no-op once the root logger has a handler
    (a first call, an embedding program, pytest): ``-v`` of a later call printed nothing, and the first
    call's handler stayed behind writing to the stream of that call."""
    import logging

    text = tmp_path / "text"
    text.write_text("a b c\n")
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    for verbose in ([], ["-v"], []):
        assert main([*verbose, "lm", str(text), "-o", str(tmp_path / "lm.arpa"), "--no-ids"]) == 0
        err = capsys.readouterr().err
        assert ("INFO gmmhmm.lm" in err) == bool(verbose), err
        assert root.handlers == handlers and root.level == level
