"""data_scripts/prepare_fsdd.py: lists from a folder, archive extraction, offline download."""

from __future__ import annotations

import urllib.error
import zipfile
from pathlib import Path

import pytest
from conftest import load_script

from gmmhmm.data import DataDir



@pytest.fixture(scope="module")
def prep():
    return load_script("data_scripts/prepare_fsdd.py")


def make_release_zip(path: Path) -> Path:
    top = "free-spoken-digit-dataset-1.0.9"
    with zipfile.ZipFile(path, "w") as zf:
        for spk in ("anna", "bob"):
            for d in (3, 7):
                for i in range(6):
                    zf.writestr(f"{top}/recordings/{d}_{spk}_{i}.wav", f"{d}{spk}{i}")
        zf.writestr(f"{top}/README.md", "readme")
        zf.writestr(f"{top}/recordings/notes.txt", "not a recording")
        zf.writestr(f"{top}/recordings/../../evil_1_2.wav", "escape attempt")
        zf.writestr(f"{top}/acquire_data/7_x_1.wav", "wrong folder")
    return path


def test_extract_and_prepare(prep, tmp_path):
    archive = make_release_zip(tmp_path / "fsdd.zip")
    fsdd = tmp_path / "fsdd"
    assert prep.extract_recordings(archive, fsdd) == 24
    names = sorted(p.name for p in (fsdd / "recordings").iterdir())
    assert len(names) == 24 and "notes.txt" not in names
    assert (fsdd / "recordings" / "7_bob_3.wav").read_text() == "7bob3"
    assert not (tmp_path / "evil_1_2.wav").exists()

    out = tmp_path / "lists"
    assert prep.main(["--fsdd-dir", str(fsdd), "--out", str(out)]) == 0
    text = dict(line.split(" ", 1) for line in (out / "test" / "text").read_text().splitlines())
    assert len(text) == 2 * 2 * 5 and text["anna_7_0"] == "seven"
    scp = (out / "train" / "wav.scp").read_text().splitlines()
    assert len(scp) == 4 and scp[0].split()[0] == "anna_3_5"
    assert Path(scp[0].split(" ", 1)[1]) == (fsdd / "recordings" / "3_anna_5.wav").resolve()
    spk = (out / "all" / "utt2spk").read_text().splitlines()
    assert len(spk) == 24 and "bob_7_5 bob" in spk
    data = DataDir.read(out / "all")  # a valid Kaldi data directory, spk2utt included
    assert data.spk2utt["anna"][0] == "anna_3_0" and len(data.spk2utt["bob"]) == 12
    assert (out / "all" / "spk2utt").read_text().startswith("anna anna_3_0 anna_3_1")

    # --archive runs extraction then preparation
    assert prep.main(["--archive", str(archive), "--fsdd-dir", str(tmp_path / "f2"),
                      "--out", str(tmp_path / "l2")]) == 0


def test_download_offline_is_a_clear_error(prep, tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(prep.urllib.request, "urlopen", offline)
    rc = prep.main(["--download", "--fsdd-dir", str(tmp_path / "f"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 1 and "cannot download" in err and "offline" in err


def test_bad_archive_and_missing_folder(prep, tmp_path, capsys):
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(prep.DownloadError, match="not a zip"):
        prep.extract_recordings(tmp_path / "bad.zip", tmp_path / "x")
    with zipfile.ZipFile(tmp_path / "empty.zip", "w") as zf:
        zf.writestr("top/README.md", "x")
    with pytest.raises(prep.DownloadError, match="no FSDD recordings"):
        prep.extract_recordings(tmp_path / "empty.zip", tmp_path / "y")
    assert prep.main(["--fsdd-dir", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 1
    assert "does not exist" in capsys.readouterr().err
