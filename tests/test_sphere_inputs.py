"""NIST SPHERE audio and the command-line inputs (data dirs, wav.scp, files, folders) -> utterances."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gmmhmm.data.inputs import audio_files_below, list_utterances
from gmmhmm.errors import AudioError, DataDirError, InvalidInputError
from gmmhmm.features import extract_features, load_audio


def write_sphere(path: Path, samples, rate_hz: int = 8000, byte_format: str = "01",
                 sample_count: int | None = None) -> Path:
    """A NIST_1A file written from the spec: a 1024-byte ASCII header, then 16-bit PCM."""
    samples = np.asarray(samples, dtype="<i2" if byte_format == "01" else ">i2")
    header = (f"NIST_1A\n   1024\nsample_count -i {len(samples) if sample_count is None else sample_count}\n"
              f"sample_rate -i {rate_hz}\nchannel_count -i 1\nsample_n_bytes -i 2\n"
              f"sample_byte_format -s2 {byte_format}\nsample_coding -s3 pcm\nend_head\n").encode()
    path.write_bytes(header.ljust(1024, b" ") + samples.tobytes())
    return path


SIGNAL = (8000 * np.sin(2 * np.pi * 440 * np.arange(4000) / 8000)).astype(np.int16)


@pytest.mark.parametrize("byte_format", ["01", "10"])
def test_hand_written_sphere_reads_exactly(tmp_path, byte_format):
    path = write_sphere(tmp_path / "a.sph", SIGNAL, byte_format=byte_format)
    x, rate = load_audio(path)
    assert rate == 8000
    np.testing.assert_array_equal(x, SIGNAL / 32768.0)
    assert extract_features(path).shape[1] == 39


def test_truncated_sphere_is_refused(tmp_path):
    path = write_sphere(tmp_path / "cut.sph", SIGNAL, sample_count=2 * len(SIGNAL))
    with pytest.raises(AudioError, match="cut.sph: truncated"):
        load_audio(path)
    # no sample_n_bytes: libsndfile reads 16-bit samples, and so does the length check
    path.write_bytes(path.read_bytes().replace(b"sample_n_bytes -i 2\n", b""))
    with pytest.raises(AudioError, match="cut.sph: truncated"):
        load_audio(path)


@pytest.mark.parametrize("subtype", ["ULAW", "ALAW", "PCM_S8"])
def test_one_byte_sphere_is_not_called_truncated(tmp_path, subtype):
    # libsndfile writes these with "sample_n_bytes -s1 1" (a string field), not "-i 1"
    import soundfile as sf

    x = SIGNAL / 32768.0
    sf.write(tmp_path / "a.sph", x, 8000, format="NIST", subtype=subtype)
    y, rate = load_audio(tmp_path / "a.sph")
    assert rate == 8000 and len(y) == len(x) and np.abs(y - x).max() < 0.02
    cut = tmp_path / "cut.sph"
    cut.write_bytes((tmp_path / "a.sph").read_bytes()[:-100])
    with pytest.raises(AudioError, match="cut.sph: truncated"):
        load_audio(cut)


def test_shorten_compressed_sphere_is_named(tmp_path):
    header = (b"NIST_1A\n   1024\nsample_count -i 8000\nsample_rate -i 8000\nchannel_count -i 1\n"
              b"sample_n_bytes -i 2\nsample_byte_format -s2 01\n"
              b"sample_coding -s26 pcm,embedded-shorten-v2.00\nend_head\n")
    path = tmp_path / "s.sph"
    path.write_bytes(header.ljust(1024, b" ") + b"ajkg\x02" + bytes(500))
    with pytest.raises(AudioError, match=r"s\.sph: .*shorten.*sph2pipe"):
        load_audio(path)


def test_an4_sphere_file(an4_path):
    path = an4_path / "wav" / "an4_clstk" / "fash" / "an251-fash-b.sph"
    x, rate = load_audio(path)
    assert rate == 16000 and len(x) == 16000  # sample_count and sample_rate of its header
    raw = np.frombuffer(path.read_bytes()[1024:], dtype="<i2")
    np.testing.assert_array_equal(x, raw / 32768.0)
    assert int(raw.astype(np.int64).sum()) % 65536 == 9508  # the header's sample_checksum
    assert raw.min() == -1060  # its sample_min


def test_folder_scans_find_sphere_at_any_depth(tmp_path):
    for rel in ("spk1/u1.sph", "spk2/u1.sph", "spk2/deeper/u2.SPH", "top.wav"):
        (tmp_path / "corpus" / rel).parent.mkdir(parents=True, exist_ok=True)
        write_sphere(tmp_path / "corpus" / rel, SIGNAL)
    (tmp_path / "corpus" / "notes.txt").write_text("not audio")
    files = audio_files_below(tmp_path / "corpus")
    assert [f.relative_to(tmp_path / "corpus").as_posix() for f in files] == [
        "spk1/u1.sph", "spk2/deeper/u2.SPH", "spk2/u1.sph", "top.wav"]
    utts = list_utterances([tmp_path / "corpus"])
    # same-named files in different folders keep distinct ids
    assert utts.ids == ["spk1/u1", "spk2/deeper/u2", "spk2/u1", "top"]
    assert utts.key["spk1/u1"] == str(tmp_path / "corpus" / "spk1" / "u1.sph")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(InvalidInputError, match="holds no audio files .* at any depth"):
        audio_files_below(tmp_path / "empty")


def test_inputs_of_every_kind(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = write_sphere(tmp_path / "a" / "x.sph", SIGNAL), write_sphere(tmp_path / "b" / "x.sph", SIGNAL)
    # two files named directly with the same stem: a clear error, never an overwrite
    with pytest.raises(InvalidInputError, match="utterance id 'x' .* also"):
        list_utterances([a, b])
    scp = tmp_path / "wav.scp"
    scp.write_text(f"first {a}\nsecond {b}\n")
    utts = list_utterances([scp])
    assert utts.ids == ["first", "second"] and utts.path["second"] == str(b) and utts.key["first"] == "first"
    assert utts.speaker == {} and utts.text == {}
    d = tmp_path / "data"
    d.mkdir()
    (d / "wav.scp").write_text(f"spk1-u1 {a}\nspk2-u1 {b}\n")
    (d / "utt2spk").write_text("spk1-u1 spk1\nspk2-u1 spk2\n")
    (d / "text").write_text("spk1-u1 hello\nspk2-u1 hello world\n")
    utts = list_utterances([d, tmp_path / "b" / "x.sph"])
    assert utts.ids == ["spk1-u1", "spk2-u1", "x"]
    assert utts.speaker == {"spk1-u1": "spk1", "spk2-u1": "spk2"}
    assert utts.text["spk2-u1"] == ["hello", "world"]
    assert utts.utterances_of()[str(b)] == ["spk2-u1", "x"]
    assert utts.subset(["x"]).ids == ["x"]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "wav.scp").write_text("u1 cat x.sph | sox -t wav - -t wav - reverb |\n")
    with pytest.raises(DataDirError, match=r"wav.scp:1: sox effect 'reverb' is not understood"):
        list_utterances([bad])
    # with segments, utterances are stretches of the recordings (several may share one)
    (d / "segments").write_text("seg-a spk1-u1 0 0.5\nseg-b spk1-u1 0.5 1\n")
    (d / "utt2spk").write_text("seg-a spk1\nseg-b spk1\n")
    (d / "text").write_text("seg-a hello\nseg-b world\n")
    utts = list_utterances([d])
    assert utts.ids == ["seg-a", "seg-b"] and utts.path["seg-b"] == str(a)
    assert utts.segment == {"seg-a": (0.0, 0.5), "seg-b": (0.5, 1.0)}
    assert utts.source("seg-b").name == f"{a}[0.500-1.000]" == utts.audio_name("seg-b")
    assert utts.utterances_of() == {f"{a}[0.000-0.500]": ["seg-a"], f"{a}[0.500-1.000]": ["seg-b"]}
    assert utts.subset(["seg-b"]).segment == {"seg-b": (0.5, 1.0)}
    with pytest.raises(InvalidInputError, match="no input files"):
        list_utterances([])
