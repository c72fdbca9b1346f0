"""Piped wav.scp lines: Kaldi's ``sph2pipe ... |`` read as the SPHERE file (nothing run), other
commands run through the shell as Kaldi runs them, both under segments and sox speed steps."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from gmmhmm.data import AudioSpan, DataDir, PerturbedAudio, PipedAudio, perturb_speed
from gmmhmm.data.inputs import list_utterances
from gmmhmm.errors import AudioError, DataDirError, GmmhmmError, InvalidParameterError
from gmmhmm.features import FeatureConfig, extract_features, extract_many, load_audio, load_source, speed_perturb

RATE = 8000
LEFT = (8000 * np.sin(2 * np.pi * 440 * np.arange(4000) / RATE)).astype(np.int16)
RIGHT = (6000 * np.sin(2 * np.pi * 700 * np.arange(4000) / RATE)).astype(np.int16)
CONFIG = FeatureConfig(sample_rate_hz=RATE, delta_order=0, cmvn="none")


def write_sphere(path: Path, *channels: np.ndarray) -> Path:
    """A NIST_1A file from the spec: 1024-byte header, interleaved little-endian 16-bit PCM."""
    samples = np.stack(channels, axis=1).astype("<i2")
    header = (f"NIST_1A\n   1024\nsample_count -i {len(samples)}\nsample_rate -i {RATE}\n"
              f"channel_count -i {len(channels)}\nsample_n_bytes -i 2\nsample_byte_format -s2 01\n"
              "sample_coding -s3 pcm\nend_head\n").encode()
    path.write_bytes(header.ljust(1024, b" ") + samples.tobytes())
    return path


def write_dir(path: Path, wav_scp: str, segments: str | None = None) -> Path:
    """A data directory of ``wav_scp`` (or ``segments``) as given; each utterance its own speaker."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "wav.scp").write_text(wav_scp)
    utts = [line.split()[0] for line in (segments or wav_scp).splitlines() if line.strip()]
    (path / "text").write_text("".join(f"{u} A\n" for u in utts))
    (path / "utt2spk").write_text("".join(f"{u} {u}\n" for u in utts))
    if segments is not None:
        (path / "segments").write_text(segments)
    return path


@pytest.fixture
def nothing_runs(monkeypatch):
    """Fail any attempt to start a process: sph2pipe lines are read, not run."""
    import subprocess

    def refuse(*args, **kwargs):
        raise AssertionError(f"a process was started: {args}")

    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)


def test_kaldis_sph2pipe_lines_read_the_sphere_file(tmp_path, nothing_runs):
    """egs/an4, wsj, timit, rm write ``sph2pipe -f wav [-p] [-c 1] FILE |`` (the binary by any path):
    each reads as the .sph itself, without running sph2pipe."""
    sph = write_sphere(tmp_path / "a.sph", LEFT)
    lines = {"u1": f"sph2pipe -f wav {sph} |",
             "u2": f"/opt/kaldi/tools/sph2pipe_v2.5/sph2pipe -f wav -p -c 1 {sph} |",
             "u3": f"sph2pipe -f rif -p {sph}|",
             "u4": f"sph2pipe  -p  -f wav  '{sph}' |"}
    d = DataDir.read(write_dir(tmp_path / "d", "".join(f"{u} {v}\n" for u, v in lines.items())))
    assert d.wav == {u: PipedAudio(v) for u, v in lines.items()}
    want, rate = load_audio(sph)
    for u in lines:
        assert d.source(u) == PipedAudio(lines[u])
        got, got_rate = load_source(d.source(u))
        assert got_rate == rate == RATE
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(extract_features(d.source("u2"), CONFIG), extract_features(sph, CONFIG))


def test_sph2pipe_channel_and_range_selection(tmp_path, nothing_runs):
    """-c 1 / -c 2 pick a channel of a 2-channel file (none: the channels' mean, as the file reads);
    -t b:e seconds and -s b:e samples cut as sph2pipe does (start truncated to a sample, empty = edge)."""
    sph = write_sphere(tmp_path / "st.sph", LEFT, RIGHT)
    read = lambda opts: load_source(PipedAudio(f"sph2pipe -f wav {opts} {sph} |"))[0]  # noqa: E731
    np.testing.assert_array_equal(read("-c 1"), LEFT / 32768.0)
    np.testing.assert_array_equal(read("-p -c 2"), RIGHT / 32768.0)
    np.testing.assert_array_equal(read(""), load_audio(sph)[0])
    np.testing.assert_allclose(read(""), (LEFT / 32768.0 + RIGHT / 32768.0) / 2)
    np.testing.assert_array_equal(read("-c 2 -t 0.1:0.30005"), RIGHT[800:2400] / 32768.0)
    np.testing.assert_array_equal(read("-c 1 -t 0.2:"), LEFT[1600:] / 32768.0)
    np.testing.assert_array_equal(read("-c 1 -t :0.1"), LEFT[:800] / 32768.0)
    np.testing.assert_array_equal(read("-c 1 -s 100:900"), LEFT[100:900] / 32768.0)
    np.testing.assert_array_equal(read("-c 1 -t 0.1:9"), LEFT[800:] / 32768.0)  # an end past the file: its end
    mono = write_sphere(tmp_path / "m.sph", LEFT)  # sph2pipe ignores -c on a 1-channel file
    np.testing.assert_array_equal(load_source(PipedAudio(f"sph2pipe -f wav -c 2 {mono} |"))[0], LEFT / 32768.0)
    with pytest.raises(AudioError, match="start point .* after the end"):
        read("-t 0.6:")


def test_sph2pipe_then_sox_speed_and_segments(tmp_path, nothing_runs):
    """Kaldi's perturb_data_dir_speed.sh appends ``sox -t wav - -t wav - speed F |`` to a piped line:
    read as PerturbedAudio of the PipedAudio; segments cut the pipe's output; a perturbed copy of a
    piped directory is written that way and reads back."""
    sph = write_sphere(tmp_path / "a.sph", LEFT)
    pipe = f"sph2pipe -f wav -p {sph} |"
    d = DataDir.read(write_dir(tmp_path / "d", f"sp0.9-r {pipe} sox -t wav - -t wav - speed 0.9 |\nr {pipe}\n",
                               "sp0.9-u sp0.9-r 0.1 0.3\nu r 0.1 0.3\n"))
    assert d.wav == {"sp0.9-r": PipedAudio(pipe), "r": PipedAudio(pipe)} and d.speed == {"sp0.9-r": 0.9}
    assert d.source("u") == AudioSpan(PipedAudio(pipe), 0.1, 0.3)
    assert d.source("sp0.9-u") == PerturbedAudio(AudioSpan(PipedAudio(pipe), 0.1 * 0.9, 0.3 * 0.9), 0.9)
    np.testing.assert_array_equal(load_source(d.source("u"))[0], load_audio(sph, None, 0.1, 0.3)[0])
    np.testing.assert_allclose(load_source(d.source("sp0.9-u"))[0],
                               speed_perturb(load_audio(sph, None, 0.09, 0.27)[0], 0.9), rtol=0, atol=1e-12)
    plain = DataDir.read(write_dir(tmp_path / "p", f"r {pipe}\n"))
    perturb_speed(plain, [0.9, 1.0]).write(tmp_path / "sp")
    assert (tmp_path / "sp" / "wav.scp").read_text() == (
        f"r {pipe}\nsp0.9-r {pipe} sox -t wav - -t wav - speed 0.9 |\n")
    again = DataDir.read(tmp_path / "sp")
    assert (again.wav, again.speed) == ({"r": PipedAudio(pipe), "sp0.9-r": PipedAudio(pipe)}, {"sp0.9-r": 0.9})


def test_other_commands_run_through_the_shell_as_kaldi_does(tmp_path):
    """``cat x.wav |`` and a python one-liner printing a WAV give the file's features; a segment of a
    piped recording is that stretch of the file; a wav.scp input reads pipes alike."""
    wav = tmp_path / "a.wav"
    sf.write(wav, LEFT / 32768.0, RATE, subtype="PCM_16")
    py = f"import sys; sys.stdout.buffer.write(open({str(wav)!r}, 'rb').read())"
    lines = {"cat": f"cat {wav} |", "py": f"{shlex.quote(sys.executable)} -c {shlex.quote(py)} |"}
    d = DataDir.read(write_dir(tmp_path / "d", "".join(f"{u} {v}\n" for u, v in lines.items())))
    want = extract_features(wav, CONFIG)
    feats, failures = extract_many([d.source(u) for u in d.utterances], CONFIG)
    assert failures == [] and sorted(feats) == sorted(lines.values())
    for X in feats.values():
        np.testing.assert_array_equal(X, want)
    seg = DataDir.read(write_dir(tmp_path / "s", f"r cat {wav} |\n", "u r 0.1 0.4\n"))
    np.testing.assert_array_equal(extract_features(seg.source("u"), CONFIG),
                                  extract_features(AudioSpan(str(wav), 0.1, 0.4), CONFIG))
    listed = list_utterances([tmp_path / "d" / "wav.scp"])
    assert {u: listed.source(u) for u in listed.ids} == {u: PipedAudio(v) for u, v in lines.items()}


def test_a_failing_or_unreadable_command_names_line_and_stderr_and_the_batch_goes_on(tmp_path):
    wav = tmp_path / "a.wav"
    sf.write(wav, LEFT / 32768.0, RATE, subtype="PCM_16")
    scp = (f"good cat {wav} |\n"
           "fails sh -c 'echo flac: cannot open x.flac >&2; exit 3' |\n"
           "text echo not audio |\n")
    d = DataDir.read(write_dir(tmp_path / "d", scp))
    feats, failures = extract_many([d.source(u) for u in d.utterances], CONFIG)
    assert list(feats) == [f"cat {wav} |"]
    why = dict(failures)
    assert len(why) == 2
    assert why["sh -c 'echo flac: cannot open x.flac >&2; exit 3' |"] == (
        f"{tmp_path / 'd' / 'wav.scp'}:2: command \"sh -c 'echo flac: cannot open x.flac >&2; exit 3' |\" "
        "failed (exit status 3): flac: cannot open x.flac")
    assert why["echo not audio |"].startswith(f"{tmp_path / 'd' / 'wav.scp'}:3: output of 'echo not audio |' "
                                              "is not readable audio")
    with pytest.raises(AudioError, match=r"wav.scp:2: command .* failed \(exit status 3\): flac: cannot open"):
        load_source(d.source("fails"))


def test_piped_lines_round_trip_verbatim(tmp_path):
    """write -> read gives back every piped value as written (spacing inside a command kept); a piped
    command that would read back as something else is refused before anything is written."""
    sph = write_sphere(tmp_path / "a.sph", LEFT, RIGHT)
    scp = (f"a sph2pipe -f wav -p -c 2 {sph} |\n"
           f"b flac  -c -d -s {tmp_path / 'x.flac'} |\n"
           f"c {sph}\n"
           f"sp1.1-a sph2pipe -f wav -p -c 2 {sph} | sox -t wav - -t wav - speed 1.1 |\n")
    d = DataDir.read(write_dir(tmp_path / "d", scp))
    d.write(tmp_path / "copy")
    assert (tmp_path / "copy" / "wav.scp").read_text() == scp
    again = DataDir.read(tmp_path / "copy")
    assert (again.wav, again.speed) == (d.wav, d.speed)
    for value, speed in ((f"sox -t wav {sph} -t wav - speed 0.9 |", {}),
                         (f"cat {sph} | sox -t wav - -t wav - speed 0.9 |", {"u": 1.1})):
        bad = DataDir({"u": PipedAudio(value)}, {"u": ["A"]}, {"u": "s"}, speed=speed)
        with pytest.raises(DataDirError, match="reads back as another thing"):
            bad.write(tmp_path / "bad")
        assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("quoted", ["sh -c 'cat {a} | sox -t wav - -t wav - speed 0.9' |",
                                    'sh -c "cat {a} | sox -t wav - -t wav - speed 0.9" |',
                                    "sh -c cat\\ {a}\\ \\|\\ sox\\ -t\\ wav\\ -\\ -t\\ wav\\ -\\ speed\\ 0.9 |"])
def test_a_bar_inside_quotes_is_part_of_the_command(tmp_path, quoted):
    """The shell, not gmmhmm, splits a quoted or escaped ``|``: the line is one command run as written,
    at speed 1, and a real sox step after it is still read."""
    sph = write_sphere(tmp_path / "a.sph", LEFT)
    command = quoted.format(a=sph)
    d = DataDir.read(write_dir(tmp_path / "d", f"u {command}\nsp1.1-u {command} sox -t wav - -t wav - speed 1.1 |\n"))
    assert d.source("u") == PipedAudio(command)
    assert d.source("sp1.1-u") == PerturbedAudio(PipedAudio(command), 1.1)


@pytest.mark.parametrize("command", ["cat x.wav", "|", " |", "a |\nb |", 3])
def test_a_piped_audio_is_a_command_ending_in_a_bar(command):
    with pytest.raises(InvalidParameterError, match="PipedAudio"):
        PipedAudio(command)


@pytest.mark.parametrize("line, match", [
    ("sph2pipe -f wav /no/such.sph |", r"audio file of 'u2' does not exist: /no/such.sph"),
    ("cat {a} | sox -t wav - -t wav - speed 3 |", r"speed factor must be a finite number from 0.5 to 2.0"),
    ("sox -t wav {a} -t wav - speed 0.9 | cat |", r"only sox speed steps may follow sox"),
])
def test_bad_piped_lines_name_file_and_line(tmp_path, line, match):
    sph = write_sphere(tmp_path / "a.sph", LEFT)
    d = write_dir(tmp_path / "d", f"u1 {sph}\nu2 {line.format(a=sph)}\n")
    with pytest.raises(DataDirError, match=r"wav.scp:2: .*" + match) as err:
        DataDir.read(d)
    assert issubclass(err.type, GmmhmmError)


def test_cli_features_of_a_piped_data_dir(tmp_path):
    """``gmmhmm features`` of a data directory of sph2pipe and cat lines: the files' features."""
    from gmmhmm.cli import main
    from gmmhmm.features import load_features

    sph = write_sphere(tmp_path / "a.sph", LEFT)
    wav = tmp_path / "b.wav"
    sf.write(wav, RIGHT / 32768.0, RATE, subtype="PCM_16")
    piped = write_dir(tmp_path / "d", f"a sph2pipe -f wav -p {sph} |\nb cat {wav} |\n")
    plain = write_dir(tmp_path / "p", f"a {sph}\nb {wav}\n")
    for d in (piped, plain):
        assert main(["features", str(d), "-o", str(tmp_path / f"{d.name}.npz")]) == 0
    got, want = load_features(tmp_path / "d.npz")[0], load_features(tmp_path / "p.npz")[0]
    assert sorted(got) == sorted(want) == ["a", "b"]
    for key in want:
        np.testing.assert_array_equal(got[key], want[key])


def test_sph2pipe_on_a_shorten_compressed_file_is_run(tmp_path, monkeypatch):
    """WSJ's .wv1 files are shorten-compressed, which libsndfile cannot read: sph2pipe itself
    decompresses them, so that line is run (here a stand-in sph2pipe on PATH writes the WAV)."""
    header = (b"NIST_1A\n   1024\nsample_count -i 4000\nsample_rate -i 8000\nchannel_count -i 1\n"
              b"sample_n_bytes -i 2\nsample_byte_format -s2 01\nsample_coding -s26 pcm,embedded-shorten-v2.00\n"
              b"end_head\n")
    shn = tmp_path / "s.wv1"
    shn.write_bytes(header.ljust(1024, b" ") + b"ajkg\x02" + bytes(500))
    wav = tmp_path / "decoded.wav"
    sf.write(wav, LEFT / 32768.0, RATE, subtype="PCM_16")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sph2pipe").write_text(f"#!/bin/sh\ncat {shlex.quote(str(wav))}\n")
    (bin_dir / "sph2pipe").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    np.testing.assert_array_equal(load_source(PipedAudio(f"sph2pipe -f wav -p {shn} |"))[0], LEFT / 32768.0)


def test_utterances_name_piped_audio_by_the_file_it_reads(tmp_path, nothing_runs):
    """Tables given beside the inputs (transcripts, --utt2spk) find a sph2pipe line by its file's path,
    name or stem, another command by the command; align measures a piped recording's length."""
    from gmmhmm.cli import _recording_s

    sph = write_sphere(tmp_path / "a.sph", LEFT)
    d = write_dir(tmp_path / "d", f"a sph2pipe -f wav {sph} |\nb cat {tmp_path / 'x.wav'} |\n")
    utts = list_utterances([d])
    assert utts.audio_files() == {str(sph)}
    assert utts.lookup_keys("a") == ("a", str(sph), "a.sph", "a")
    assert utts.lookup_keys("b") == ("b", f"cat {tmp_path / 'x.wav'} |")
    assert _recording_s(utts.path["a"]) == len(LEFT) / RATE


def test_an4_sph2pipe_line_is_the_sphere_file(an4_path, tmp_path, nothing_runs):
    """egs/an4's wav.scp line for a real AN4 recording reads as the file itself."""
    sph = an4_path / "wav" / "an4_clstk" / "fash" / "an251-fash-b.sph"
    d = DataDir.read(write_dir(tmp_path / "d", f"fash-an251-b sph2pipe -f wav -p -c 1 {sph} |\n"))
    np.testing.assert_array_equal(load_source(d.source("fash-an251-b"))[0], load_audio(sph)[0])
