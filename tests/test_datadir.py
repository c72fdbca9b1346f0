"""Kaldi data directories: read, validate, write (gmmhmm.data.DataDir)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gmmhmm.data import DataDir, Segment, read_table
from gmmhmm.errors import DataDirError, GmmhmmError


def make_dir(root: Path, n: int = 3, **override: str) -> Path:
    """A data dir of ``n`` utterances (two speakers) whose audio files exist (empty files)."""
    d = root / "data"
    d.mkdir(exist_ok=True)
    utts = [f"{'spkA' if i % 2 else 'spkB'}-u{i}" for i in range(n)]
    for u in utts:
        (root / f"{u}.wav").write_bytes(b"")
    tables = {
        "wav.scp": "".join(f"{u} {root / (u + '.wav')}\n" for u in utts),
        "text": "".join(f"{u} hello world {i}\n" for i, u in enumerate(utts)),
        "utt2spk": "".join(f"{u} {u.split('-')[0]}\n" for u in utts),
    }
    tables.update(override)
    for name, text in tables.items():
        if text is not None:
            (d / name).write_text(text)
    return d


def test_read_basic(tmp_path):
    d = make_dir(tmp_path)
    data = DataDir.read(d)
    assert data.utterances == ["spkA-u1", "spkB-u0", "spkB-u2"]
    assert data.text["spkB-u2"] == ["hello", "world", "2"]
    assert data.utt2spk["spkA-u1"] == "spkA"
    assert data.spk2utt == {"spkA": ["spkA-u1"], "spkB": ["spkB-u0", "spkB-u2"]}
    assert data.wav["spkB-u0"] == str(tmp_path / "spkB-u0.wav")
    assert data.audio("spkB-u0") == (str(tmp_path / "spkB-u0.wav"), 0.0, None)
    assert data.segments is None and len(data) == 3


def test_write_round_trip_sorted_with_spk2utt(tmp_path):
    data = DataDir.read(make_dir(tmp_path))
    out = data.write(tmp_path / "copy")
    assert (out / "spk2utt").read_text() == "spkA spkA-u1\nspkB spkB-u0 spkB-u2\n"
    lines = (out / "wav.scp").read_text().splitlines()
    assert lines == sorted(lines)
    again = DataDir.read(out)  # spk2utt now present and checked
    assert (again.wav, again.text, again.utt2spk) == (data.wav, data.text, data.utt2spk)


def test_segments(tmp_path):
    d = make_dir(tmp_path, 1)
    rec = "spkB-u0"
    (d / "segments").write_text(f"{rec}-a {rec} 0.0 1.5\n{rec}-b {rec} 1.5 3\n")
    (d / "text").write_text(f"{rec}-a one\n{rec}-b two\n")
    (d / "utt2spk").write_text(f"{rec}-a spkB\n{rec}-b spkB\n")
    data = DataDir.read(d)
    assert data.utterances == [f"{rec}-a", f"{rec}-b"]
    assert data.segments[f"{rec}-b"] == Segment(rec, 1.5, 3.0)
    assert data.audio(f"{rec}-b") == (str(tmp_path / f"{rec}.wav"), 1.5, 3.0)
    again = DataDir.read(data.write(tmp_path / "copy"))
    assert again.segments == data.segments
    # writing a directory without segments over it removes the stale segments file
    DataDir(again.wav, {rec: ["x"]}, {rec: "spkB"}).write(tmp_path / "copy")
    assert not (tmp_path / "copy" / "segments").exists()


def test_writing_a_directory_without_text_over_one_with_text_removes_the_stale_text(tmp_path):
    # the old transcripts would be read back as those of the new recordings of the same ids
    DataDir({"u1": "/a.wav"}, {"u1": ["old", "words"]}, {"u1": "s"}).write(tmp_path / "d")
    DataDir({"u1": "/other.wav"}, {}, {"u1": "t"}).write(tmp_path / "d")
    assert not (tmp_path / "d" / "text").exists()
    assert DataDir.read(tmp_path / "d", require_text=False, check_audio=False).text == {}


def test_segment_times_are_written_exactly(tmp_path):
    # sub-millisecond times (16 kHz samples are 62.5 us) survive a write and read; rounding to
    # 3 decimals changed them, and made a short segment 0.0001-0.0004 unreadable (start == end)
    segments = {"u1": Segment("r", 0.0001, 0.0004), "u2": Segment("r", 1.23456, 2.5), "u3": Segment("r", 3, 4)}
    data = DataDir({"r": "/audio/r.wav"}, {u: ["w"] for u in segments}, {u: "s" for u in segments}, segments)
    again = DataDir.read(data.write(tmp_path / "d"), check_audio=False)
    assert again.segments == segments


def test_wav_scp_paths_keep_their_white_space(tmp_path):
    # a wav.scp value is the rest of the line (as Kaldi reads it): runs of spaces or tabs inside a
    # path are part of it, not collapsed to one space
    from gmmhmm.data.inputs import list_utterances

    audio = tmp_path / "take  1\tb.wav"
    audio.write_bytes(b"")
    d = make_dir(tmp_path, 1, **{"wav.scp": f"spkB-u0 {audio}  \n"})
    assert DataDir.read(d).wav["spkB-u0"] == str(audio)
    assert list_utterances([d / "wav.scp"]).path["spkB-u0"] == str(audio)
    assert DataDir.read(DataDir.read(d).write(tmp_path / "copy")).wav["spkB-u0"] == str(audio)


def test_empty_transcripts_round_trip_and_a_failed_write_changes_nothing(tmp_path):
    # Kaldi text spells an utterance without words as its id alone; read without require_text,
    # such a directory writes back (it raised after wav.scp was already replaced)
    d = make_dir(tmp_path, 2, text="spkA-u1\nspkB-u0 hello\n")
    data = DataDir.read(d, require_text=False)
    assert data.text == {"spkA-u1": [], "spkB-u0": ["hello"]}
    assert DataDir.read(d).text == data.text  # transcripts required: a line each, words or none
    again = DataDir.read(data.write(tmp_path / "copy"), require_text=False)
    assert again.text == data.text
    # a table that cannot be written is found before any file of the folder is replaced
    before = {f.name: f.read_text() for f in (tmp_path / "copy").iterdir()}
    bad = DataDir(dict(data.wav), dict(data.text), {"spkA-u1": "s", "spkB-u0": "two words"})
    with pytest.raises(DataDirError, match="utt2spk"):
        bad.write(tmp_path / "copy")
    assert {f.name: f.read_text() for f in (tmp_path / "copy").iterdir()} == before
    # a path with a line break inside would write a wav.scp that reads back broken
    broken = DataDir({**data.wav, "spkA-u1": "/a\nb.wav"}, dict(data.text), dict(data.utt2spk))
    with pytest.raises(DataDirError, match="line break"):
        broken.write(tmp_path / "copy")
    assert {f.name: f.read_text() for f in (tmp_path / "copy").iterdir()} == before


def test_a_write_that_fails_midway_leaves_every_table_as_it_was(tmp_path):
    # the tables are one set: a folder holding the new wav.scp beside the old utt2spk and text would
    # pair recordings with the wrong speakers and transcripts, or not read at all
    data = DataDir.read(make_dir(tmp_path))
    out = data.write(tmp_path / "copy")
    (out / "spk2utt").unlink()
    (out / "spk2utt").mkdir()  # the last table cannot be written (an OSError, as on a full disk)
    before = {f.name: f.read_text() for f in out.iterdir() if f.is_file()}
    other = data.subset(["spkA-u1", "spkB-u2"])
    other.text["spkB-u2"] = ["changed"]
    with pytest.raises(IsADirectoryError):
        other.write(out)
    assert {f.name: f.read_text() for f in out.iterdir() if f.is_file()} == before
    assert not [f for f in out.iterdir() if ".tmp" in f.name]


@pytest.mark.parametrize("override, match", [
    ({"utt2spk": "spkB-u0 spkB extra\n"}, r"utt2spk:1: expected 2 fields, got 3"),
    ({"utt2spk": "spkB-u0\n"}, r"utt2spk:1: expected 2 fields, got 1"),
    ({"text": "spkB-u0 a\nspkA-u1 b\nspkB-u0 c\n"}, r"text:3: 'spkB-u0' appears twice \(first on line 1\)"),
    ({"utt2spk": "spkB-u0 spkB\n"}, r"wav.scp:2: utterance 'spkA-u1' has no speaker in .*utt2spk"),
    ({"text": "spkB-u0 a\nspkA-u1 b\n"}, r"wav.scp:3: utterance 'spkB-u2' has no transcript in .*text"),
    ({"text": "spkB-u0 a\nspkA-u1 b\nspkB-u2 c\nzz d\n"}, r"text: utterance 'zz' is not in .*wav.scp"),
    ({"wav.scp": "spkB-u0 sph2pipe -f wav x.sph |\n"}, r"wav.scp:1: audio file of 'spkB-u0' does not exist: x.sph"),
    ({"wav.scp": "spkB-u0 /no/such/file.wav\n"}, r"wav.scp:1: audio file of 'spkB-u0' does not exist"),
    ({"wav.scp": ""}, r"wav.scp: no utterances"),
    ({"spk2utt": "spkA spkA-u1\nspkB spkB-u0\n"}, r"spk2utt: utterance 'spkB-u2' of utt2spk is missing"),
    ({"spk2utt": "spkA spkA-u1 spkB-u0\nspkB spkB-u2\n"}, r"spk2utt:1: utterance 'spkB-u0' of speaker 'spkA'"),
    ({"segments": "s1 nope 0 1\n"}, r"segments:1: recording 'nope' of 's1' is not in wav.scp"),
    ({"segments": "s1 spkB-u0 2 1\n"}, r"segments:1: need 0 <= start < end"),
    ({"segments": "s1 spkB-u0 a b\n"}, r"segments:1: start and end must be seconds"),
    ({"segments": "s1 spkB-u0 0\n"}, r"segments:1: expected 4 fields, got 3"),
])
def test_bad_data_dirs_name_file_and_line(tmp_path, override, match):
    d = make_dir(tmp_path, **override)
    with pytest.raises(DataDirError, match=match):
        DataDir.read(d)


def test_missing_files_and_folders(tmp_path):
    assert issubclass(DataDirError, GmmhmmError)
    with pytest.raises(DataDirError, match="no such folder"):
        DataDir.read(tmp_path / "nope")
    with pytest.raises(DataDirError, match="no wav.scp"):
        DataDir.read(tmp_path)
    d = make_dir(tmp_path)
    (d / "utt2spk").unlink()
    with pytest.raises(DataDirError, match=r"utt2spk: no such file"):
        DataDir.read(d)
    d = make_dir(tmp_path)
    (d / "text").unlink()
    with pytest.raises(DataDirError, match="no text file"):
        DataDir.read(d)
    assert DataDir.read(d, require_text=False).text == {}


def test_subset_and_validate(tmp_path):
    data = DataDir.read(make_dir(tmp_path))
    sub = data.subset(["spkB-u2"])
    assert sub.utterances == ["spkB-u2"] and list(sub.wav) == ["spkB-u2"] and sub.spk2utt == {"spkB": ["spkB-u2"]}
    with pytest.raises(DataDirError, match="unknown utterance"):
        data.subset(["zz"])
    bad = DataDir(dict(data.wav), dict(data.text), {"spkB-u0": "s"})
    with pytest.raises(DataDirError, match="utt2spk disagrees"):
        bad.write(tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_read_table_keeps_line_numbers(tmp_path):
    p = tmp_path / "t"
    p.write_text("\na x y\n\nb z\n")
    assert read_table(p) == {"a": (["x", "y"], 2), "b": (["z"], 4)}


@pytest.mark.parametrize("wav_scp, match", [
    ("u1 cat x.wav | sox -t wav - -t wav - tempo 0.9 |\n", r"wav.scp:1: sox effect 'tempo' is not understood"),
    ("", r"wav.scp: no utterances"),
    ("u1 a.wav\nu1 b.wav\n", r"wav.scp:2: 'u1' appears twice"),
    ("u1\n", r"wav.scp:1: expected at least 2 fields"),
    ("u1 a.wav\nu2 /exp/raw_mfcc.1.ark:14\n", r"wav.scp:2: '/exp/raw_mfcc.1.ark:14' is an archive offset: "
                                               r"this looks like a feature scp"),
    ("u1 feats.ark:123[0:9]\n", r"wav.scp:1: .* looks like a feature scp"),
])
def test_a_wav_scp_reads_alike_as_an_input_and_in_a_data_dir(tmp_path, wav_scp, match):
    """One wav.scp parser: a wav.scp named as an input (beside other inputs) is refused exactly as
    the same file in a data directory is."""
    from gmmhmm.data.inputs import list_utterances

    d = make_dir(tmp_path, **{"wav.scp": wav_scp})
    (tmp_path / "other").mkdir()
    good = make_dir(tmp_path / "other")
    for read in (lambda: DataDir.read(d), lambda: list_utterances([good, d]),
                 lambda: list_utterances([good, d / "wav.scp"])):
        with pytest.raises(DataDirError, match=match):
            read()


def test_any_scp_name_is_a_wav_scp_and_colons_in_audio_paths_are_kept(tmp_path):
    """A ``*.scp`` input is a wav.scp whatever its name; an audio path holding a colon that is no
    archive offset (``take:2.wav``, ``C:/x.wav``) is still audio."""
    from gmmhmm.data.inputs import list_utterances

    scp = tmp_path / "train_wav.SCP"
    scp.write_text("u1 /a/take:2.wav\nu2 C:/x.wav\nu3 /a/x:1.flac\n")
    assert list_utterances([scp]).path == {"u1": "/a/take:2.wav", "u2": "C:/x.wav", "u3": "/a/x:1.flac"}


def test_read_table_splits_on_spaces_and_tabs_only(tmp_path):
    """Kaldi tables (text, utt2spk, ...) split fields on spaces and tabs: U+00A0 / U+3000 are part
    of a field; \\r\\n and \\r end lines, U+2028 does not."""
    p = tmp_path / "text"
    p.write_bytes("u1\tnew\u00a0york  \u6771\u4eac\u3000\u99c5 \r\nu2 a\u2028b\ru3\n".encode())
    assert read_table(p, 1) == {"u1": (["new\u00a0york", "\u6771\u4eac\u3000\u99c5"], 1),
                                "u2": (["a\u2028b"], 2), "u3": ([], 3)}
