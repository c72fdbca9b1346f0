"""FSDD file listing, name parsing and splits."""

from __future__ import annotations

from pathlib import Path

import pytest

from gmmhmm.datasets import (
    DatasetError,
    default_fsdd_dir,
    dev_split,
    list_fsdd,
    loso_folds,
    official_split,
    parse_name,
    split,
)
from gmmhmm.errors import InvalidParameterError


def make_fake_fsdd(root: Path, speakers=("anna", "bob"), digits=range(3), takes=range(7)) -> Path:
    rec = root / "recordings"
    rec.mkdir(parents=True)
    for s in speakers:
        for d in digits:
            for t in takes:
                (rec / f"{d}_{s}_{t}.wav").write_bytes(b"")
    (rec / "README.txt").write_text("not a recording")
    (rec / "x_bob_1.wav").write_bytes(b"")
    return root


def test_parse_name():
    u = parse_name("/a/b/7_jackson_32.wav")
    assert (u.digit, u.speaker, u.index, u.utt_id) == ("7", "jackson", 32, "jackson_7_32")
    assert u.path == Path("/a/b/7_jackson_32.wav")
    assert parse_name("7_jackson.wav") is None
    assert parse_name("12_jackson_3.wav") is None
    assert parse_name("7_jackson_3.flac") is None


def test_list_and_official_split(tmp_path):
    make_fake_fsdd(tmp_path)
    utts = list_fsdd(tmp_path)
    assert len(utts) == 2 * 3 * 7
    assert utts == list_fsdd(tmp_path / "recordings")  # either folder works
    train, test = official_split(utts)
    assert {u.index for u in test} == set(range(5))
    assert {u.index for u in train} == {5, 6}
    assert len(train) + len(test) == len(utts)
    assert not {u.path for u in train} & {u.path for u in test}


def test_dev_split(tmp_path):
    make_fake_fsdd(tmp_path, speakers=("anna", "bob"), digits=range(3), takes=range(14))
    utts = list_fsdd(tmp_path)
    official_train, test = official_split(utts)
    train, dev = dev_split(utts)
    assert {u.index for u in dev} == set(range(5, 10))
    assert {u.index for u in train} == set(range(10, 14))
    assert not {u.path for u in dev + train} & {u.path for u in test}  # never a test take
    assert not {u.path for u in train} & {u.path for u in dev}
    assert sorted(train + dev, key=lambda u: u.path) == sorted(official_train, key=lambda u: u.path)
    cells = {(u.speaker, u.digit) for u in utts}
    assert {(u.speaker, u.digit) for u in dev} == cells == {(u.speaker, u.digit) for u in train}
    assert dev == [u for u in utts if 5 <= u.index < 10]  # listing order kept
    assert split(utts, "dev") == [("dev", train, dev)]


def test_dev_split_needs_dev_and_train_takes(tmp_path):
    make_fake_fsdd(tmp_path / "a", takes=range(10))  # takes 10-49 missing
    with pytest.raises(DatasetError, match="dev split needs .* got 30 dev and 0 training"):
        dev_split(list_fsdd(tmp_path / "a"))
    make_fake_fsdd(tmp_path / "b", takes=range(5))  # test takes only
    with pytest.raises(DatasetError, match="got 0 dev and 0 training"):
        dev_split(list_fsdd(tmp_path / "b"))


def test_loso_folds(tmp_path):
    make_fake_fsdd(tmp_path, speakers=("anna", "bob", "carl"))
    utts = list_fsdd(tmp_path)
    folds = loso_folds(utts)
    assert [f[0] for f in folds] == ["anna", "bob", "carl"]
    for spk, train, test in folds:
        assert {u.speaker for u in test} == {spk}
        assert spk not in {u.speaker for u in train}
        assert len(train) + len(test) == len(utts)
    assert split(utts, "loso") == folds
    assert split(utts, "official") == [("official", *official_split(utts))]
    with pytest.raises(InvalidParameterError, match="split must be"):
        split(utts, "random")


def test_missing_empty_and_single_speaker(tmp_path, monkeypatch):
    with pytest.raises(DatasetError, match="does not exist"):
        list_fsdd(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no FSDD recordings"):
        list_fsdd(tmp_path / "empty")
    make_fake_fsdd(tmp_path / "one", speakers=("anna",))
    with pytest.raises(DatasetError, match="two speakers"):
        loso_folds(list_fsdd(tmp_path / "one"))
    monkeypatch.setenv("GMMHMM_FSDD_DIR", str(tmp_path / "one"))
    assert default_fsdd_dir() == tmp_path / "one"
    assert len(list_fsdd()) == 21


def test_real_fsdd_official_split(fsdd_path):
    utts = list_fsdd(fsdd_path)
    assert len(utts) == 3000
    train, test = official_split(utts)
    assert (len(train), len(test)) == (2700, 300)
    dev_train, dev = dev_split(utts)
    assert (len(dev_train), len(dev)) == (2400, 300)
    assert {u.index for u in dev} == set(range(5, 10)) and {u.index for u in dev_train} == set(range(10, 50))
    cells = {(u.speaker, u.digit) for u in utts}
    assert len(cells) == 60 and {(u.speaker, u.digit) for u in dev} == cells
    assert {u.path for u in dev_train} | {u.path for u in dev} == {u.path for u in train}
    assert len(loso_folds(utts)) == 6
