"""AN4 as Kaldi data directories, and the command line on them (train-phones, decode, align).

Uses a small slice of ../shared/data/an4 (fails loudly when it is missing).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import load_script

from gmmhmm import load
from gmmhmm.cli import main, read_phone_config
from gmmhmm.data import DataDir, Lexicon, PipedAudio
from gmmhmm.errors import DataDirError, InvalidParameterError, TranscriptError
from gmmhmm.graphs import PhoneModelSet

TINY = """
[features]
sample_rate_hz = 16000
delta_order = 2
cmvn = "utterance"

[training]
mixtures = [1, 2]
n_iter = [3, 1]
"""


@pytest.fixture(scope="module")
def prep():
    return load_script("data_scripts/prepare_an4.py")


@pytest.fixture(scope="module")
def an4_data(tmp_path_factory, an4_path, prep):
    out = tmp_path_factory.mktemp("an4")
    assert prep.prepare(an4_path, out) == {"train": 948, "test": 130}
    return out


def test_prepare_an4(an4_data, an4_path):
    train, test = DataDir.read(an4_data / "train"), DataDir.read(an4_data / "test")
    assert (len(train), len(train.speakers), len(test), len(test.speakers)) == (948, 74, 130, 10)
    assert sum(len(w) for w in test.text.values()) == 773  # the published test word count
    assert not set(train.speakers) & set(test.speakers)
    assert train.text["an251-fash-b"] == ["YES"] and test.utt2spk["cen7-mjwl-b"] == "mjwl"
    assert test.text["an406-fcaw-b"] == "RUBOUT G M E F THREE NINE".split()
    assert test.wav["an406-fcaw-b"] == str((an4_path / "wav/an4test_clstk/fcaw/an406-fcaw-b.sph").resolve())
    assert not any(w.startswith("<") for words in train.text.values() for w in words)
    for name in ("wav.scp", "text", "utt2spk", "spk2utt"):
        lines = (an4_data / "train" / name).read_text().splitlines()
        assert lines == sorted(lines)
    lex = Lexicon.read(an4_data / "lexicon.txt")
    assert lex == Lexicon.read(an4_path / "etc" / "an4.dic") and lex.n_prons == 130


def test_prepare_an4_errors(tmp_path, prep):
    etc = tmp_path / "an4" / "etc"
    (tmp_path / "an4" / "wav" / "x" / "spk").mkdir(parents=True)
    etc.mkdir()
    (etc / "an4.dic").write_text("YES Y EH S\nNO N OW\n")
    (tmp_path / "an4" / "wav" / "x" / "spk" / "u1-spk-b.sph").write_bytes(b"")
    for name in ("an4_train", "an4_test"):
        (etc / f"{name}.fileids").write_text("x/spk/u1-spk-b\n")
        (etc / f"{name}.transcription").write_text("<s> YES NO </s> (u1-spk-b)\n")
    assert prep.prepare(tmp_path / "an4", tmp_path / "out") == {"train": 1, "test": 1}
    (etc / "an4_test.transcription").write_text("<s> YES </s> (u1-spk-b)\nYES NO\n")
    with pytest.raises(DataDirError, match=r"an4_test.transcription:2: expected '<s> WORDS </s> \(utt_id\)'"):
        prep.prepare(tmp_path / "an4", tmp_path / "out")
    (etc / "an4_test.transcription").write_text("<s> MAYBE YES PERHAPS </s> (u1-spk-b)\n")
    with pytest.raises(TranscriptError, match=r"an4_test.transcription: word\(s\) not in the lexicon: MAYBE, PERHAPS"):
        prep.prepare(tmp_path / "an4", tmp_path / "out")
    (etc / "an4_test.transcription").write_text("<s> YES </s> (u1-spk-b)\n")
    (etc / "an4_test.fileids").write_text("x/spk/u2-spk-b\n")
    with pytest.raises(DataDirError, match=r"an4_test.fileids:1: audio file .*u2-spk-b.sph does not exist"):
        prep.prepare(tmp_path / "an4", tmp_path / "out")
    assert prep.main([str(tmp_path / "out"), "--an4-dir", str(tmp_path / "nope")]) == 1


@pytest.fixture(scope="module")
def slice_dir(an4_data, tmp_path_factory):
    """Six training utterances of two speakers as a data directory, plus the tiny config."""
    tmp = tmp_path_factory.mktemp("an4slice")
    train = DataDir.read(an4_data / "train")
    utts = [u for spk in ("fash", "mblw") for u in train.spk2utt[spk][:3]]
    train.subset(utts).write(tmp / "data")
    (tmp / "tiny.toml").write_text(TINY)
    return tmp


@pytest.fixture(scope="module")
def phones(slice_dir, an4_data):
    model = slice_dir / "phones.npz"
    assert main(["train-phones", str(slice_dir / "data"), "--lexicon", str(an4_data / "lexicon.txt"),
                 "--config", str(slice_dir / "tiny.toml"), "-o", str(model)]) == 0
    return model


def test_train_phones_on_a_data_dir(phones, an4_data):
    model = load(phones)
    assert isinstance(model, PhoneModelSet) and model.n_mix == 2
    assert model.lexicon == Lexicon.read(an4_data / "lexicon.txt")  # alternates kept in the model file
    assert model.get_feature_config().sample_rate_hz == 16000


def test_decode_and_align_a_data_dir_by_utterance_id(phones, slice_dir, capsys):
    data = DataDir.read(slice_dir / "data")
    hyp, ctm = slice_dir / "hyp.txt", slice_dir / "hyp.ctm"
    assert main(["decode", str(phones), str(slice_dir / "data"), "-o", str(hyp), "--ctm", str(ctm)]) == 0
    lines = [line.split("\t") for line in hyp.read_text().splitlines()]
    assert [k for k, _, _ in lines] == data.utterances
    assert {line.split()[0] for line in ctm.read_text().splitlines()} <= set(data.utterances)
    capsys.readouterr()
    assert main(["score", str(hyp), "--ref", str(slice_dir / "data" / "text"), "--wer", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_ref"] == sum(len(w) for w in data.text.values())
    ali = slice_dir / "ali"
    assert main(["align", str(phones), str(slice_dir / "data"), "-o", str(ali)]) == 0
    assert sorted(p.stem for p in ali.glob("*.TextGrid")) == data.utterances
    words = [line.split() for line in (ali / "words.ctm").read_text().splitlines()]
    for u in data.utterances:  # the aligned words spell the transcript
        assert [w[4] for w in words if w[0] == u and w[4] != "sil"] == data.text[u]


def test_decode_and_align_kaldi_piped_lines_as_the_files(phones, slice_dir, tmp_path):
    """egs/an4's wav.scp (``sph2pipe -f wav -p -c 1 x.sph |``) and a command run through the shell
    decode and align exactly as the same recordings given by path, TextGrids and plots included."""
    data = DataDir.read(slice_dir / "data")
    first, *rest = data.utterances
    wav = tmp_path / "first.wav"
    import soundfile as sf
    from gmmhmm.features import load_audio

    sf.write(wav, load_audio(data.wav[first], 16000)[0], 16000, subtype="FLOAT")
    piped = DataDir({first: PipedAudio(f"cat {wav} |"),
                     **{u: PipedAudio(f"sph2pipe -f wav -p -c 1 {data.wav[u]} |") for u in rest}},
                    data.text, data.utt2spk)
    piped.write(tmp_path / "piped")
    for name, d in (("plain", slice_dir / "data"), ("piped", tmp_path / "piped")):
        assert main(["decode", str(phones), str(d), "-o", str(tmp_path / f"{name}.txt")]) == 0
        assert main(["align", str(phones), str(d), "-o", str(tmp_path / f"ali-{name}"), "--png"]) == 0
    assert (tmp_path / "piped.txt").read_text() == (tmp_path / "plain.txt").read_text()
    for name in ("words.ctm", "phones.ctm", *(f"{u}.TextGrid" for u in data.utterances)):
        assert (tmp_path / "ali-piped" / name).read_text() == (tmp_path / "ali-plain" / name).read_text()
    assert sorted(p.stem for p in (tmp_path / "ali-piped").glob("*.png")) == data.utterances


def test_utt2spk_groups_speaker_cmvn(slice_dir, an4_data, monkeypatch, tmp_path):
    """With cmvn='speaker' the data dir's utt2spk, not folders or names, groups the statistics."""
    import gmmhmm.features

    cfg = tmp_path / "spk.toml"
    cfg.write_text(TINY.replace('cmvn = "utterance"', 'cmvn = "speaker"').replace("[1, 2]", "[1]")
                   .replace("[3, 1]", "[1]"))
    # one speaker id over both speakers' folders: grouping by folder would give two groups
    orig = DataDir.read(slice_dir / "data")
    data = DataDir(orig.wav, orig.text, {u: "one" for u in orig.utt2spk})
    data.write(tmp_path / "data")
    seen, real = [], gmmhmm.features.extract_many
    monkeypatch.setattr(gmmhmm.features, "extract_many",
                        lambda paths, config, **kw: seen.append((list(paths), kw)) or real(paths, config, **kw))
    assert main(["train-phones", str(tmp_path / "data"), "--lexicon", str(an4_data / "lexicon.txt"),
                 "--config", str(cfg), "-o", str(tmp_path / "m.npz")]) == 0
    paths, kw = seen[0]
    groups = {}
    for p in paths:
        groups.setdefault(kw["utt2spk"][p], []).append(p)
    by_spk = {}
    for u in data.utterances:
        by_spk.setdefault(data.utt2spk[u], []).append(data.wav[u])
    assert sorted(map(sorted, groups.values())) == sorted(map(sorted, by_spk.values()))
    assert len(groups) == 1


def test_train_phones_errors(slice_dir, an4_data, tmp_path, capsys):
    bad = tmp_path / "data"
    DataDir.read(slice_dir / "data").write(bad)
    text = (bad / "text").read_text().splitlines()
    text[1] += " FOO"
    text[4] += " BAR FOO"
    (bad / "text").write_text("\n".join(text) + "\n")
    argv = ["train-phones", str(bad), "--lexicon", str(an4_data / "lexicon.txt"), "--config",
            str(slice_dir / "tiny.toml"), "-o", str(tmp_path / "m.npz")]
    assert main(argv) == 1
    assert "word(s) not in the lexicon: BAR, FOO" in capsys.readouterr().err
    (bad / "utt2spk").write_text("\n".join((bad / "utt2spk").read_text().splitlines()[1:]) + "\n")
    assert main(argv) == 1
    assert "wav.scp:1: utterance" in capsys.readouterr().err
    assert main(argv[:4] + ["--config", str(slice_dir / "tiny.toml"), "-o", str(tmp_path / "m.npz")]) == 1
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("text, match", [
    ("[training]\nmixtures = [2, 1]\n", "non-decreasing"),
    ("[training]\nmixtures = [1, 2]\nn_iter = [1]\n", "n_iter has 1 entries but mixtures has 2 stages"),
    ("[training]\nsil_prob = 'x'\n", "sil_prob must be float"),
    ("[training]\nmixes = [1]\n", "unknown key"),
    ("[features]\nn_ceps = 0\n", r"\[features\]"),
])
def test_read_phone_config_errors(tmp_path, text, match):
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(InvalidParameterError, match=match):
        read_phone_config(p)


def test_read_phone_config_of_the_fsdd_recipe():
    features, training = read_phone_config(Path(__file__).resolve().parents[1] / "configs" / "fsdd_phones.toml")
    assert features.sample_rate_hz == 8000 and training["mixtures"] == [1, 2, 4, 8, 16]
    assert training["n_iter"] == [4, 3, 3, 3, 3]


def test_features_of_a_data_dir_are_keyed_by_utterance_id(slice_dir, tmp_path):
    from gmmhmm.features import load_features

    out = tmp_path / "feats.npz"
    assert main(["features", str(slice_dir / "data"), "-o", str(out), "--config", str(slice_dir / "tiny.toml")]) == 0
    feats, _ = load_features(out)
    assert sorted(feats) == DataDir.read(slice_dir / "data").utterances


@pytest.fixture(scope="module")
def segments_dir(slice_dir, tmp_path_factory):
    """The slice as a Kaldi data dir with ``segments``: each speaker's three utterances in one
    recording (16-bit WAV, samples unchanged), one segment per utterance, in reverse time order."""
    import numpy as np
    import soundfile

    from gmmhmm.data import Segment

    tmp = tmp_path_factory.mktemp("an4segments")
    data = DataDir.read(slice_dir / "data")
    wav, segments = {}, {}
    for spk, utts in data.spk2utt.items():
        signals = [soundfile.read(data.wav[u], dtype="int16")[0] for u in utts]
        rec = tmp / f"{spk}.wav"
        soundfile.write(rec, np.concatenate(signals), 16000, subtype="PCM_16")
        wav[spk] = str(rec)
        start = 0
        for u, signal in zip(utts, signals):
            segments[u] = Segment(spk, start / 16000, (start + len(signal)) / 16000)
            start += len(signal)
    DataDir(wav, data.text, data.utt2spk, segments).write(tmp / "data")
    return tmp


def test_segments_give_the_features_of_the_cut_files(slice_dir, segments_dir, tmp_path):
    """A data dir with segments featurises each segment exactly as the separate file it was cut from,
    with per-speaker CMVN pooled over the speaker's segments."""
    from gmmhmm.features import load_features

    cfg = tmp_path / "spk.toml"
    cfg.write_text(TINY.replace('cmvn = "utterance"', 'cmvn = "speaker"'))
    for name in ("data", "segs"):
        src = slice_dir / "data" if name == "data" else segments_dir / "data"
        assert main(["features", str(src), "--config", str(cfg), "-o", str(tmp_path / f"{name}.npz")]) == 0
    whole, _ = load_features(tmp_path / "data.npz")
    cut, _ = load_features(tmp_path / "segs.npz")
    assert sorted(cut) == sorted(whole) == DataDir.read(slice_dir / "data").utterances
    for u in whole:
        np.testing.assert_allclose(cut[u], whole[u], rtol=0, atol=1e-9)


def test_decode_and_align_a_data_dir_with_segments(phones, slice_dir, segments_dir):
    """Decoding and aligning segments gives the results of the separate files; TextGrids end at the
    segment's duration."""
    out = {}
    for name, d in (("files", slice_dir / "data"), ("segs", segments_dir / "data")):
        hyp = segments_dir / f"{name}.txt"
        assert main(["decode", str(phones), str(d), "-o", str(hyp)]) == 0
        assert main(["align", str(phones), str(d), "-o", str(segments_dir / f"ali-{name}")]) == 0
        out[name] = hyp.read_text()
    assert out["segs"] == out["files"]
    assert (segments_dir / "ali-segs" / "words.ctm").read_text() == (segments_dir / "ali-files" / "words.ctm").read_text()
    segs = DataDir.read(segments_dir / "data").segments
    for u, seg in segs.items():
        grid = (segments_dir / "ali-segs" / f"{u}.TextGrid").read_text()
        assert f"xmax = {seg.end_s - seg.start_s!r}" in grid


def test_a_segment_past_its_recording_is_reported_and_the_rest_finish(segments_dir, tmp_path, capsys):
    from gmmhmm.features import load_features

    data = DataDir.read(segments_dir / "data")
    bad = data.utterances[0]
    seg = data.segments[bad]
    rec_s = max(s.end_s for s in data.segments.values() if s.recording == seg.recording)
    segs = dict(data.segments)
    segs[bad] = type(seg)(seg.recording, rec_s + 1.0, rec_s + 2.0)
    DataDir(data.wav, data.text, data.utt2spk, segs).write(tmp_path / "data")
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    capsys.readouterr()
    rc = main(["features", str(tmp_path / "data"), "--config", str(cfg), "-o", str(tmp_path / "f.npz")])
    err = capsys.readouterr().err
    assert rc != 0 and bad in err and "ends after the recording" in err
    feats, _ = load_features(tmp_path / "f.npz")
    assert sorted(feats) == sorted(u for u in data.utterances if u != bad)
