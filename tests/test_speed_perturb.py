"""Kaldi-style speed perturbation: sox ``speed`` on signals, perturbed items in feature extraction,
and perturbed copies of data directories (``utils/data/perturb_data_dir_speed.sh``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from gmmhmm.data import AudioSpan, DataDir, PerturbedAudio, Segment, perturb_speed
from gmmhmm.errors import AudioError, DataDirError, GmmhmmError, InvalidInputError, InvalidParameterError
from gmmhmm.features import FeatureConfig, extract_features, extract_many, load_source, mfcc, speed_perturb

RATE = 16000


def peak_hz(x: np.ndarray, rate_hz: int) -> float:
    """Frequency of the largest bin of a zero-padded Hann-windowed spectrum (0.5 Hz bins)."""
    n_fft = 2 * rate_hz
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), n_fft))
    return float(np.argmax(spectrum)) * rate_hz / n_fft


@pytest.mark.parametrize("factor", [0.9, 1.1, 0.5, 2.0, 0.95])
def test_speed_moves_a_sine_by_the_factor_and_scales_its_length(factor):
    n, f_hz = 16000, 1000.0
    x = np.sin(2 * np.pi * f_hz * np.arange(n) / RATE)
    y = speed_perturb(x, factor)
    assert abs(len(y) - n / factor) <= 1
    assert peak_hz(y, RATE) == pytest.approx(factor * f_hz, abs=1.0)
    assert np.max(np.abs(y)) == pytest.approx(1.0, abs=0.02)  # no gain change


def test_speed_one_is_the_signal_itself():
    x = np.random.default_rng(0).standard_normal(1001)
    np.testing.assert_array_equal(speed_perturb(x, 1.0), x)
    np.testing.assert_array_equal(speed_perturb(x.astype(np.float32), 1), x.astype(np.float32))


@pytest.mark.parametrize("factor", [0.0, -0.9, 0.49, 2.01, float("nan"), float("inf"), True, "0.9", None])
def test_bad_speed_factors_are_refused(factor):
    with pytest.raises(InvalidParameterError, match="speed factor"):
        speed_perturb(np.zeros(100), factor)
    with pytest.raises(InvalidParameterError, match="speed factor"):
        PerturbedAudio("a.wav", factor)


def test_bad_signals_are_refused():
    with pytest.raises(InvalidInputError):
        speed_perturb(np.zeros((2, 100)), 0.9)
    with pytest.raises(InvalidInputError):
        speed_perturb(np.array([0.0, np.nan]), 0.9)
    with pytest.raises(InvalidParameterError, match="path .* or an AudioSpan"):
        PerturbedAudio(np.zeros(3), 0.9)


@pytest.fixture
def wavs(tmp_path):
    """Two 16 kHz and one 8 kHz noisy-tone files."""
    rng = np.random.default_rng(1)
    out = {}
    for name, rate, f in (("a", RATE, 300.0), ("b", RATE, 500.0), ("c", 8000, 400.0)):
        t = np.arange(int(0.6 * rate)) / rate
        out[name] = str(tmp_path / f"{name}.wav")
        sf.write(out[name], 0.3 * np.sin(2 * np.pi * f * t) + 0.01 * rng.standard_normal(len(t)), rate,
                 subtype="FLOAT")
    return out


def test_perturbed_items_are_named_after_their_source(wavs):
    span = AudioSpan(wavs["a"], 0.1, 0.4)
    assert PerturbedAudio(wavs["a"], 0.9).name == f"sp0.9-{wavs['a']}"
    assert PerturbedAudio(span, 1.1).name == f"sp1.1-{span.name}"
    assert PerturbedAudio(Path(wavs["a"]), 0.9) == PerturbedAudio(wavs["a"], 0.9)
    assert PerturbedAudio(wavs["a"], 1).speed == 1.0 and isinstance(PerturbedAudio(wavs["a"], 1).speed, float)


def test_features_of_a_perturbed_item_are_mfcc_of_the_perturbed_signal(wavs):
    """extract_features / extract_many (workers too) of PerturbedAudio = the front end run by hand
    on speed_perturb of the loaded signal; at another file rate, one resampling does both."""
    config = FeatureConfig(sample_rate_hz=RATE, delta_order=0, cmvn="none")
    signal, _ = sf.read(wavs["a"])
    want = mfcc(speed_perturb(signal, 0.9), RATE, config)
    item = PerturbedAudio(wavs["a"], 0.9)
    np.testing.assert_allclose(extract_features(item, config), want, rtol=0, atol=1e-9)
    for n_jobs in (1, 2):
        feats, failures = extract_many([wavs["a"], item, wavs["b"]], config, n_jobs=n_jobs)
        assert failures == [] and list(feats) == [wavs["a"], item.name, wavs["b"]]
        np.testing.assert_allclose(feats[item.name], want, rtol=0, atol=1e-9)
        assert len(feats[item.name]) > len(feats[wavs["a"]])  # 1/0.9 times longer
    # a span is cut from the file first, then perturbed
    span = AudioSpan(wavs["a"], 0.1, 0.4)
    cut = signal[int(0.1 * RATE):int(0.4 * RATE)]
    np.testing.assert_allclose(extract_features(PerturbedAudio(span, 1.1), config),
                               mfcc(speed_perturb(cut, 1.1), RATE, config), rtol=0, atol=1e-9)
    # 8 kHz file at 1.1: 8800 Hz samples resampled to 16 kHz in one step
    low, rate = load_source(PerturbedAudio(wavs["c"], 1.1), RATE)
    assert rate == RATE and abs(len(low) - 0.6 * RATE / 1.1) <= 1
    assert peak_hz(low, RATE) == pytest.approx(440.0, abs=1.0)


def test_a_perturbed_bad_file_fails_like_the_plain_one(wavs, tmp_path):
    missing, text = str(tmp_path / "missing.wav"), tmp_path / "text.wav"
    text.write_text("not audio")
    config = FeatureConfig(sample_rate_hz=RATE)
    items = [PerturbedAudio(missing, 0.9), PerturbedAudio(str(text), 1.1), PerturbedAudio(wavs["a"], 0.9),
             PerturbedAudio(AudioSpan(wavs["a"], 5.0, 6.0), 0.9)]
    plain, plain_failures = extract_many([missing, str(text), wavs["a"], AudioSpan(wavs["a"], 5.0, 6.0)], config)
    for n_jobs in (1, 2):
        feats, failures = extract_many(items, config, n_jobs=n_jobs)
        assert list(feats) == [items[2].name]
        assert [k for k, _ in failures] == [items[0].name, items[1].name, items[3].name]
        assert [m for _, m in failures] == [m for _, m in plain_failures]
    with pytest.raises(AudioError, match="no such audio file"):
        extract_features(items[0], config)


# ------------------------------------------------------------------ data directories


def tiny_dir(wavs, segments: bool = False) -> DataDir:
    if segments:
        return DataDir(wav={"recA": wavs["a"]}, text={"s1-u1": ["HELLO"], "s2-u1": ["WORLD", "AGAIN"]},
                       utt2spk={"s1-u1": "s1", "s2-u1": "s2"},
                       segments={"s1-u1": Segment("recA", 0.0, 0.27), "s2-u1": Segment("recA", 0.27, 0.54)})
    return DataDir(wav={"s1-u1": wavs["a"], "s2-u1": wavs["b"]}, text={"s1-u1": ["HELLO"], "s2-u1": ["WORLD"]},
                   utt2spk={"s1-u1": "s1", "s2-u1": "s2"})


def test_perturbed_dir_has_kaldis_ids_speakers_and_text(wavs):
    """What perturb_data_dir_speed_3way.sh gives: sp0.9- / sp1.1- copies (utterance, recording and
    speaker ids prefixed), the originals unchanged, the same transcripts; audio carries the factor."""
    d = perturb_speed(tiny_dir(wavs), [0.9, 1.0, 1.1])
    assert d.utterances == ["s1-u1", "s2-u1", "sp0.9-s1-u1", "sp0.9-s2-u1", "sp1.1-s1-u1", "sp1.1-s2-u1"]
    assert d.utt2spk == {"s1-u1": "s1", "s2-u1": "s2", "sp0.9-s1-u1": "sp0.9-s1", "sp0.9-s2-u1": "sp0.9-s2",
                         "sp1.1-s1-u1": "sp1.1-s1", "sp1.1-s2-u1": "sp1.1-s2"}
    assert d.spk2utt["sp0.9-s1"] == ["sp0.9-s1-u1"] and len(d.speakers) == 6
    assert d.text["sp0.9-s2-u1"] == ["WORLD"] and d.text["s2-u1"] == ["WORLD"]
    assert d.wav["sp1.1-s2-u1"] == wavs["b"]
    assert d.speed == {"sp0.9-s1-u1": 0.9, "sp0.9-s2-u1": 0.9, "sp1.1-s1-u1": 1.1, "sp1.1-s2-u1": 1.1}
    assert d.source("s1-u1") == wavs["a"]
    assert d.source("sp0.9-s1-u1") == PerturbedAudio(wavs["a"], 0.9)
    # a subset keeps the factors of the recordings it keeps
    sub = d.subset(["sp1.1-s2-u1", "s1-u1"])
    assert sub.speed == {"sp1.1-s2-u1": 1.1} and sub.source("sp1.1-s2-u1") == PerturbedAudio(wavs["b"], 1.1)
    # without 1.0 only the perturbed copies (perturb_data_dir_speed.sh with one factor)
    assert perturb_speed(tiny_dir(wavs), [0.9]).utterances == ["sp0.9-s1-u1", "sp0.9-s2-u1"]


def test_perturbed_segments_are_scaled_and_read_back_from_the_file(wavs):
    """segments times divided by the factor (the perturbed recording's seconds), as Kaldi's script;
    the item read is the original stretch of the file, perturbed."""
    d = perturb_speed(tiny_dir(wavs, segments=True), [0.9, 1.0])
    assert d.wav == {"recA": wavs["a"], "sp0.9-recA": wavs["a"]} and d.speed == {"sp0.9-recA": 0.9}
    seg = d.segments["sp0.9-s2-u1"]
    assert seg.recording == "sp0.9-recA"
    assert (seg.start_s, seg.end_s) == pytest.approx((0.3, 0.6))
    src = d.source("sp0.9-s2-u1")
    assert isinstance(src, PerturbedAudio) and src.speed == 0.9
    assert (src.source.start_s, src.source.end_s) == pytest.approx((0.27, 0.54))
    assert d.source("s2-u1") == AudioSpan(wavs["a"], 0.27, 0.54)


def test_bad_perturbations_are_refused(wavs, tmp_path):
    d = tiny_dir(wavs)
    for factors in ([], [0.9, 0.9], [1.0, 1]):
        with pytest.raises(InvalidParameterError, match="distinct factors"):
            perturb_speed(d, factors)
    with pytest.raises(InvalidParameterError, match="speed factor"):
        perturb_speed(d, [0.9, 3.0])
    clash = DataDir(wav={"u": wavs["a"], "sp0.9-u": wavs["b"]}, text={"u": ["A"], "sp0.9-u": ["B"]},
                    utt2spk={"u": "s", "sp0.9-u": "s"})
    with pytest.raises(DataDirError, match="'sp0.9-u' is also that of another copy"):
        perturb_speed(clash, [1.0, 0.9])
    # a directory whose factors are out of range is refused before anything is written
    bad = perturb_speed(d, [0.9])
    bad.speed["sp0.9-s1-u1"] = 3.0
    with pytest.raises(DataDirError, match="'sp0.9-s1-u1': speed factor must be"):
        bad.write(tmp_path / "sp")
    assert not (tmp_path / "sp").exists()
    perturb_speed(d, [1.0]).write(tmp_path / "same")  # factor 1.0 alone is the directory itself
    assert DataDir.read(tmp_path / "same").utt2spk == d.utt2spk
    assert issubclass(DataDirError, GmmhmmError)


def test_cli_features_of_speed_perturbed_copies(wavs, tmp_path, capsys):
    """`gmmhmm features DATA --speed-perturb 0.9,1.0` writes the originals and the sp0.9- copies, each
    copy's features those of its perturbed audio with its own speaker's CMVN statistics."""
    from gmmhmm.cli import main
    from gmmhmm.features import load_features

    data = tmp_path / "data"
    tiny_dir(wavs).write(data)
    out = tmp_path / "f.npz"
    assert main(["features", str(data), "-o", str(out), "--speed-perturb", "0.9,1.0"]) == 0
    feats, _ = load_features(out)
    assert sorted(feats) == ["s1-u1", "s2-u1", "sp0.9-s1-u1", "sp0.9-s2-u1"]
    config = FeatureConfig()
    want, _ = extract_many([PerturbedAudio(wavs["a"], 0.9)], config)
    np.testing.assert_allclose(feats["sp0.9-s1-u1"], want[PerturbedAudio(wavs["a"], 0.9).name], atol=1e-5)
    # one speaker per utterance here: with --utt2spk by file name, a copy's speaker is the copy of the file's
    (tmp_path / "utt2spk").write_text("a.wav spkA\nb.wav spkA\n")
    (tmp_path / "speaker.toml").write_text('[features]\ncmvn = "speaker"\n')
    assert main(["features", wavs["a"], wavs["b"], "-o", str(out), "--speed-perturb", "1.0,1.1",
                 "--utt2spk", str(tmp_path / "utt2spk"), "--config", str(tmp_path / "speaker.toml")]) == 0
    feats, _ = load_features(out)
    assert sorted(feats) == sorted([wavs["a"], wavs["b"]] + [f"sp1.1-{w}" for w in (wavs["a"], wavs["b"])])
    config = FeatureConfig(cmvn="speaker")
    for items, speaker in (([PerturbedAudio(wavs[k], 1.1) for k in "ab"], "sp1.1-spkA"), ([wavs["a"], wavs["b"]], "spkA")):
        names = [getattr(i, "name", i) for i in items]
        want, _ = extract_many(items, config, utt2spk=dict.fromkeys(names, speaker))  # the copies' own statistics
        for name in names:
            np.testing.assert_allclose(feats[name], want[name], atol=1e-5)
    capsys.readouterr()
    for bad, why in (("0.9,0.9", "distinct factors"), ("0.9,x", "not numbers"), ("3", "speed factor must be")):
        assert main(["features", wavs["a"], "-o", str(out), "--speed-perturb", bad]) == 2
        assert why in capsys.readouterr().err


# ------------------------------------------------------------------ Kaldi's wav.scp sox lines


def write_dir(path: Path, wav_scp: str, utts: list[str], segments: str | None = None) -> Path:
    """A data directory of ``wav_scp`` as given; each utterance its own speaker, transcript ``A``."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "wav.scp").write_text(wav_scp)
    (path / "text").write_text("".join(f"{u} A\n" for u in utts))
    (path / "utt2spk").write_text("".join(f"{u} {u}\n" for u in utts))
    if segments is not None:
        (path / "segments").write_text(segments)
    return path


def test_kaldis_sox_speed_lines_read_as_perturbed_audio(wavs, tmp_path):
    """The three wav.scp lines utils/data/perturb_data_dir_speed.sh writes for a file (``sox -t wav
    FILE -t wav - speed F |``), for an earlier perturbation's pipe (``<pipe> sox -t wav - -t wav -
    speed F |``, factors multiply) and the original path, read without running sox."""
    a, b = wavs["a"], wavs["b"]
    scp = (f"s1-u1 {a}\n"
           f"sp0.9-s1-u1 sox -t wav {a} -t wav - speed 0.9 |\n"
           f"sp1.1-s2-u1 sox  -t wav {b}  -t wav - speed 1.1|\n"  # spacing as a hand edit may leave it
           f"sp1.1-sp0.9-s1-u1 sox -t wav {a} -t wav - speed 0.9 | sox -t wav - -t wav - speed 1.1 |\n")
    utts = ["s1-u1", "sp0.9-s1-u1", "sp1.1-s2-u1", "sp1.1-sp0.9-s1-u1"]
    d = DataDir.read(write_dir(tmp_path / "d", scp, utts))
    assert d.wav == {"s1-u1": a, "sp0.9-s1-u1": a, "sp1.1-s2-u1": b, "sp1.1-sp0.9-s1-u1": a}
    assert d.speed == {"sp0.9-s1-u1": 0.9, "sp1.1-s2-u1": 1.1, "sp1.1-sp0.9-s1-u1": 0.9 * 1.1}
    assert d.source("s1-u1") == a and d.source("sp0.9-s1-u1") == PerturbedAudio(a, 0.9)
    # a wav.scp named alone reads the same lines alike
    from gmmhmm.data.inputs import list_utterances

    for given in (tmp_path / "d", tmp_path / "d" / "wav.scp"):
        listed = list_utterances([given])
        assert {u: listed.source(u) for u in listed.ids} == {u: d.source(u) for u in utts}
    # with segments: times are the perturbed recording's, the file is read at times x factor
    seg = write_dir(tmp_path / "s", f"sp0.9-recA sox -t wav {a} -t wav - speed 0.9 |\n", ["sp0.9-u"],
                    "sp0.9-u sp0.9-recA 0.30 0.60\n")
    d = DataDir.read(seg)
    assert d.speed == {"sp0.9-recA": 0.9}
    want = PerturbedAudio(AudioSpan(a, 0.3 * 0.9, 0.6 * 0.9), 0.9)
    assert d.source("sp0.9-u") == want
    listed = list_utterances([seg])
    assert listed.source("sp0.9-u") == want


def test_a_written_perturbed_dir_is_kaldis_and_reads_back(wavs, tmp_path):
    """write() of a perturbed directory writes perturb_data_dir_speed.sh's wav.scp lines; read()
    gives back the same ids, speeds, segments and transcripts."""
    a, b = wavs["a"], wavs["b"]
    d = perturb_speed(tiny_dir(wavs), [0.9, 1.0, 1.1])
    d.write(tmp_path / "sp")
    assert (tmp_path / "sp" / "wav.scp").read_text() == (
        f"s1-u1 {a}\ns2-u1 {b}\n"
        f"sp0.9-s1-u1 sox -t wav {a} -t wav - speed 0.9 |\nsp0.9-s2-u1 sox -t wav {b} -t wav - speed 0.9 |\n"
        f"sp1.1-s1-u1 sox -t wav {a} -t wav - speed 1.1 |\nsp1.1-s2-u1 sox -t wav {b} -t wav - speed 1.1 |\n")
    again = DataDir.read(tmp_path / "sp")
    assert (again.wav, again.speed, again.text, again.utt2spk, again.segments) == (
        d.wav, d.speed, d.text, d.utt2spk, d.segments)
    # segments (times divided by the factor) and a perturbed copy of a perturbed copy (factors multiply)
    d = perturb_speed(perturb_speed(tiny_dir(wavs, segments=True), [0.9, 1.0]), [1.0, 1.1])
    assert d.speed["sp1.1-sp0.9-recA"] == 0.9 * 1.1
    again = DataDir.read(d.write(tmp_path / "seg"))
    assert (again.wav, again.speed, again.text, again.utt2spk, again.segments) == (
        d.wav, d.speed, d.text, d.utt2spk, d.segments)
    assert {u: again.source(u) for u in again.utterances} == {u: d.source(u) for u in d.utterances}
    assert f"sp1.1-sp0.9-recA sox -t wav {a} -t wav - speed {0.9 * 1.1!r} |\n" in (
        tmp_path / "seg" / "wav.scp").read_text()
    # a path that would read back as something else is refused before anything is written
    for path, speed in (("a|b.wav", {"u": 0.9}), ("cat x.wav |", {}), ("x -t wav - y.wav", {"u": 1.1})):
        bad = DataDir({"u": path}, {"u": ["A"]}, {"u": "s"}, speed=speed)
        with pytest.raises(DataDirError, match="reads back as another thing"):
            bad.write(tmp_path / "bad")
        assert not (tmp_path / "bad").exists()


def test_features_of_a_read_back_perturbed_utterance(wavs, tmp_path):
    """An sp0.9 utterance read back from disk is featurised as speed_perturb(signal, 0.9), and
    `gmmhmm features` of the written directory equals `--speed-perturb` of the original."""
    from gmmhmm.cli import main
    from gmmhmm.features import load_features

    config = FeatureConfig(sample_rate_hz=RATE, delta_order=0, cmvn="none")
    perturb_speed(tiny_dir(wavs), [0.9, 1.0]).write(tmp_path / "sp")
    d = DataDir.read(tmp_path / "sp")
    signal, _ = sf.read(wavs["a"])
    np.testing.assert_allclose(extract_features(d.source("sp0.9-s1-u1"), config),
                               mfcc(speed_perturb(signal, 0.9), RATE, config), rtol=0, atol=1e-9)
    tiny_dir(wavs).write(tmp_path / "orig")
    assert main(["features", str(tmp_path / "sp"), "-o", str(tmp_path / "read.npz")]) == 0
    assert main(["features", str(tmp_path / "orig"), "-o", str(tmp_path / "made.npz"),
                 "--speed-perturb", "0.9,1.0"]) == 0
    read, made = load_features(tmp_path / "read.npz")[0], load_features(tmp_path / "made.npz")[0]
    assert sorted(read) == sorted(made) == ["s1-u1", "s2-u1", "sp0.9-s1-u1", "sp0.9-s2-u1"]
    for key in read:
        np.testing.assert_array_equal(read[key], made[key])


@pytest.mark.parametrize("line, match", [
    ("sox -t wav {a} -t wav - speed |", r"sox speed needs a factor"),
    ("sox -t wav {a} -t wav - speed 3 |", r"speed factor must be a finite number from 0.5 to 2.0, got 3.0"),
    ("sox -t wav {a} -t wav - speed 0.9 | sox -t wav - -t wav - speed 0.5 |", r"speed factor must be .* got 0.45"),
    ("sox -t wav {a} -t wav - speed x |", r"sox speed factor 'x' is not a number"),
    ("sox -t wav {a} -t wav - tempo 0.9 |", r"sox effect 'tempo' is not understood \(only speed\)"),
    ("sox -t wav {a} -t wav - speed 0.9 rate 8000 |", r"sox effect 'rate' is not understood"),
    ("sox -t wav {a} -t wav - |", r"sox command without a speed effect"),
    ("sox -t wav {a} out.wav speed 0.9 |", r"cannot read sox command"),
    ("sox -t wav - -t wav - speed 0.9 |", r"reads a pipe that nothing writes"),
    ("sox -t wav {a} -t wav - speed 0.9 | sox -t wav {a} -t wav - speed 1.1 |", r"sox .* reads a file inside a pipe"),
    ("sph2pipe -f wav {a} | sox -t wav - -t wav - speed 0.9 | cat |", r"only sox speed steps may follow sox"),
    ("wav-copy f.ark:12 - | sox -t wav - -t wav - speed 3 |", r"speed factor must be a finite number"),
    ("sox -t wav /no/such.wav -t wav - speed 0.9 |", r"audio file of 'u2' does not exist: /no/such.wav"),
])
def test_bad_sox_lines_name_file_and_line(wavs, tmp_path, line, match):
    from gmmhmm.data.inputs import list_utterances

    line = line.format(a=wavs["a"])
    d = write_dir(tmp_path / "d", f"u1 {wavs['a']}\nu2 {line}\n", ["u1", "u2"])
    reads = [lambda: DataDir.read(d)]
    if "/no/such" not in line:  # a wav.scp input leaves missing files to feature extraction
        reads.append(lambda: list_utterances([d / "wav.scp"]))
    for read in reads:
        with pytest.raises(DataDirError, match=r"wav.scp:2: .*" + match) as err:
            read()
        assert issubclass(err.type, GmmhmmError)
        if "does not exist" not in match:
            assert repr(line) in str(err.value)  # the line itself is named


# ------------------------------------------------------------------ training commands


@pytest.fixture
def digits_dir(tmp_path):
    """A data directory of four 16 kHz noisy-tone utterances of two speakers saying one or two words,
    its lexicon and a one-pass monophone config."""
    from gmmhmm.data import Lexicon

    rng = np.random.default_rng(2)
    wav, text, utt2spk = {}, {}, {}
    for i, (spk, words, f) in enumerate((("s1", ["one"], 300.0), ("s1", ["two"], 600.0),
                                         ("s2", ["one", "two"], 330.0), ("s2", ["two"], 640.0))):
        t = np.arange(int(0.8 * RATE)) / RATE
        path = tmp_path / f"u{i}.wav"
        sf.write(path, 0.3 * np.sin(2 * np.pi * f * t) + 0.01 * rng.standard_normal(len(t)), RATE, subtype="FLOAT")
        wav[f"{spk}-u{i}"], text[f"{spk}-u{i}"], utt2spk[f"{spk}-u{i}"] = str(path), words, spk
    DataDir(wav, text, utt2spk).write(tmp_path / "data")
    (tmp_path / "lexicon").write_text(Lexicon.digits().to_text())
    (tmp_path / "phones.toml").write_text('[features]\nsample_rate_hz = 16000\ncmvn = "speaker"\n'
                                          "[training]\nmixtures = [1]\nn_iter = 1\n")
    return tmp_path


def test_cli_training_commands_train_on_speed_perturbed_copies(digits_dir, capsys):
    """train-phones and train-tri --speed-perturb F,... train on what they would read from the
    directory perturb_data_dir_speed.sh writes (perturb_speed + write): one code path, the same models."""
    from gmmhmm import modelfile
    from gmmhmm.cli import main

    t = digits_dir
    perturb_speed(DataDir.read(t / "data"), [1.0, 0.9]).write(t / "data_sp")
    phones = ["--lexicon", str(t / "lexicon"), "--config", str(t / "phones.toml")]
    assert main(["train-phones", str(t / "data"), *phones, "-o", str(t / "mono.npz"),
                 "--speed-perturb", "1.0,0.9"]) == 0
    assert main(["train-phones", str(t / "data_sp"), *phones, "-o", str(t / "mono_sp.npz")]) == 0
    mono, meta = modelfile.load(t / "mono.npz", with_metadata=True)
    mono_sp, meta_sp = modelfile.load(t / "mono_sp.npz", with_metadata=True)
    assert meta["n_train"] == meta_sp["n_train"] == 8 and meta["speed_perturb"] == [1.0, 0.9]
    assert "speed_perturb" not in meta_sp  # the directory's own perturbation is in its ids
    np.testing.assert_allclose(mono.means_, mono_sp.means_, rtol=1e-6, atol=1e-9)
    tri = ["--mono", str(t / "mono.npz"), "--num-leaves", "4", "--min-occupancy", "5", "--mixtures", "1",
           "--n-iter", "1"]
    assert main(["train-tri", str(t / "data"), *tri, "-o", str(t / "tri.npz"), "--speed-perturb", "1.0,0.9"]) == 0
    assert main(["train-tri", str(t / "data_sp"), *tri, "-o", str(t / "tri_sp.npz")]) == 0
    tri_model, meta = modelfile.load(t / "tri.npz", with_metadata=True)
    tri_sp, meta_sp = modelfile.load(t / "tri_sp.npz", with_metadata=True)
    assert meta["n_train"] == meta_sp["n_train"] == 8 and meta["speed_perturb"] == [1.0, 0.9]
    np.testing.assert_allclose(tri_model.means_, tri_sp.means_, rtol=1e-6, atol=1e-9)
    # without the option nothing is perturbed
    assert main(["train-phones", str(t / "data"), *phones, "-o", str(t / "plain.npz")]) == 0
    assert modelfile.load(t / "plain.npz", with_metadata=True)[1]["n_train"] == 4


def test_cli_vtln_perturbs_only_the_gmms_training_audio(digits_dir, capsys, monkeypatch):
    """vtln --speed-perturb trains the warp GMM on the perturbed copies of its training audio (as
    --train of the written perturbed directory would), and writes warps of the INPUTs' speakers only."""
    import gmmhmm.adapt
    from gmmhmm.cli import main

    t = digits_dir
    perturb_speed(DataDir.read(t / "data"), [0.9, 1.0]).write(t / "data_sp")
    grid = ["--n-components", "2", "--iters", "1", "--min-warp", "0.9", "--max-warp", "1.1", "--step", "0.1"]
    seen, train_vtln = [], gmmhmm.adapt.train_vtln
    monkeypatch.setattr(gmmhmm.adapt, "train_vtln",
                        lambda f, utt2spk, model, **kw: seen.append((dict(utt2spk), list(model))) or
                        train_vtln(f, utt2spk, model, **kw))
    assert main(["vtln", str(t / "data"), "-o", str(t / "warps"), "--speed-perturb", "0.9,1.0", *grid]) == 0
    utt2spk, model = seen[0]
    assert len(model) == 8 and sum(m.startswith("sp0.9-") for m in model) == 4
    assert sorted(set(utt2spk.values())) == ["s1", "s2", "sp0.9-s1", "sp0.9-s2"]
    assert main(["vtln", str(t / "data"), "-o", str(t / "warps_sp"), "--train", str(t / "data_sp"), *grid]) == 0
    warps = (t / "warps").read_text()
    assert [ln.split()[0] for ln in warps.splitlines()] == ["s1", "s2"]  # no sp0.9- speaker
    assert warps == (t / "warps_sp").read_text()


@pytest.mark.parametrize("command", ["features", "vtln", "train", "train-phones", "train-tri"])
def test_cli_bad_speed_factors_are_usage_errors(digits_dir, capsys, command):
    from gmmhmm.cli import main

    t = digits_dir
    extra = {"features": [], "vtln": [], "train": ["--config", str(t / "phones.toml")],
             "train-phones": ["--lexicon", str(t / "lexicon"), "--config", str(t / "phones.toml")],
             "train-tri": ["--mono", str(t / "mono.npz")]}[command]
    for bad, why in (("0.9,0.9", "distinct factors"), ("0.9,x", "not numbers"), ("3", "speed factor must be"),
                     ("", "not numbers")):
        assert main([command, str(t / "data"), "-o", str(t / "out"), *extra, "--speed-perturb", bad]) == 2
        err = capsys.readouterr().err
        assert "--speed-perturb" in err and why in err
        assert not (t / "out").exists()


# ------------------------------------------------------------------ word-model training


@pytest.fixture
def digit_takes(tmp_path):
    """A folder of FSDD-named 8 kHz noisy tones, digits 1 and 2, takes 3 (an official test take), 5 and 6,
    and a one-pass word-model config."""
    rng = np.random.default_rng(4)
    folder = tmp_path / "takes"
    folder.mkdir()
    t = np.arange(int(0.5 * 8000)) / 8000
    for digit, f in ((1, 440.0), (2, 880.0)):
        for take in (3, 5, 6):
            x = 0.3 * np.sin(2 * np.pi * f * (1 + 0.02 * take) * t) + 0.01 * rng.standard_normal(len(t))
            sf.write(folder / f"{digit}_synth_{take}.wav", x, 8000, subtype="FLOAT")
    (tmp_path / "words.toml").write_text("[features]\nsample_rate_hz = 8000\n[model]\nn_states = 2\n"
                                         "mix_schedule = [1]\nn_iter = [1]\nn_jobs = 1\n")
    return tmp_path


def _fits(monkeypatch) -> list[tuple[list[np.ndarray], list[str]]]:
    """``(X_list, y)`` of every HMMClassifier.fit from now on (the fit still runs)."""
    from gmmhmm.classifier import HMMClassifier

    seen, fit = [], HMMClassifier.fit
    monkeypatch.setattr(HMMClassifier, "fit", lambda self, X, y, **kw: seen.append((list(X), list(y))) or
                        fit(self, X, y, **kw))
    return seen


def test_cli_train_on_speed_perturbed_copies(digit_takes, capsys, monkeypatch):
    """`train FOLDER --speed-perturb 1.0` is `train FOLDER`; at 0.9,1.0,1.1 it trains on the features
    `features FOLDER --speed-perturb` writes (a copy's speaker is sp<f>- its original's), each labelled
    as its original (--labels by stem)."""
    from gmmhmm import modelfile
    from gmmhmm.cli import main
    from gmmhmm.features import load_features

    t = digit_takes
    train = ["train", str(t / "takes"), "--config", str(t / "words.toml")]
    assert main([*train, "-o", str(t / "plain.npz")]) == 0
    assert main([*train, "-o", str(t / "one.npz"), "--speed-perturb", "1.0"]) == 0
    plain, meta = modelfile.load(t / "plain.npz", with_metadata=True)
    one, meta_one = modelfile.load(t / "one.npz", with_metadata=True)
    assert "speed_perturb" not in meta and meta_one["speed_perturb"] == [1.0]
    assert meta["n_train"] == meta_one["n_train"] == 6
    for a, b in zip(plain.models_, one.models_):
        np.testing.assert_array_equal(a.means_, b.means_)

    (t / "labels").write_text("".join(f"{d}_synth_{k}\t{name}\n" for d, name in ((1, "one"), (2, "two"))
                                      for k in (3, 5, 6)))
    (t / "utt2spk").write_text("".join(f"{d}_synth_{k}.wav synth\n" for d in (1, 2) for k in (3, 5, 6)))
    (t / "speaker.toml").write_text((t / "words.toml").read_text().replace("8000\n", '8000\ncmvn = "speaker"\n', 1))
    common = ["--utt2spk", str(t / "utt2spk"), "--config", str(t / "speaker.toml"), "--speed-perturb", "0.9,1.0,1.1"]
    assert main(["features", str(t / "takes"), "-o", str(t / "f.npz"), *common]) == 0
    want, _ = load_features(t / "f.npz")
    fits = _fits(monkeypatch)
    assert main(["train", str(t / "takes"), "-o", str(t / "sp.npz"), "--labels", str(t / "labels"), *common]) == 0
    assert "on 18 utterance(s)" in capsys.readouterr().err
    model, meta = modelfile.load(t / "sp.npz", with_metadata=True)
    assert meta["n_train"] == 18 and meta["speed_perturb"] == [0.9, 1.0, 1.1]
    assert sorted(model.classes_.tolist()) == ["one", "two"]
    (X, y), = fits
    assert len(X) == len(want) == 18
    for key, x, label in zip(want, X, y):  # same features, in the same order; a copy's label is its original's
        np.testing.assert_array_equal(x, want[key])
        assert label == {"1": "one", "2": "two"}[Path(key).name[0]]
    assert sum(k.startswith("sp0.9-") for k in want) == sum(k.startswith("sp1.1-") for k in want) == 6


def test_cli_train_official_split_keeps_perturbed_test_takes_out(digit_takes, capsys, monkeypatch):
    """--split official drops the test takes (0-4) before extraction, their copies with them."""
    import gmmhmm.features
    from gmmhmm import modelfile
    from gmmhmm.cli import main

    t = digit_takes
    read, extract_many = [], gmmhmm.features.extract_many
    monkeypatch.setattr(gmmhmm.features, "extract_many",
                        lambda paths, *a, **kw: read.extend(paths) or extract_many(paths, *a, **kw))
    fits = _fits(monkeypatch)
    assert main(["train", str(t / "takes"), "-o", str(t / "m.npz"), "--config", str(t / "words.toml"),
                 "--split", "official", "--speed-perturb", "0.9,1.0"]) == 0
    names = [getattr(p, "name", str(p)) for p in read]
    assert len(names) == 8 and sum(n.startswith("sp0.9-") for n in names) == 4
    assert not any(n.endswith("_3.wav") for n in names)
    assert sorted(fits[0][1]) == ["1"] * 4 + ["2"] * 4  # FSDD names label the copies too
    assert modelfile.load(t / "m.npz", with_metadata=True)[1]["n_train"] == 8


def test_cli_train_refuses_to_perturb_a_feature_file(digit_takes, capsys, monkeypatch):
    """A feature file has no audio to perturb: a usage error naming the option, before it is read."""
    import gmmhmm.features
    from gmmhmm.cli import main

    t = digit_takes
    assert main(["features", str(t / "takes"), "-o", str(t / "f.npz"), "--config", str(t / "words.toml")]) == 0
    monkeypatch.setattr(gmmhmm.features, "load_features", lambda *a, **kw: pytest.fail("feature file read"))
    capsys.readouterr()
    assert main(["train", str(t / "f.npz"), "-o", str(t / "m.npz"), "--config", str(t / "words.toml"),
                 "--speed-perturb", "0.9,1.0,1.1"]) == 1
    err = capsys.readouterr().err
    assert "--speed-perturb" in err and "feature file" in err and "Traceback" not in err
    assert not (t / "m.npz").exists()
