"""HTK parameter files and MLFs, Kaldi archives: bytes written by hand from the
format specifications, and round trips."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest

from gmmhmm.data import htk, kaldi_io
from gmmhmm.errors import InvalidParameterError, ModelFileError, TranscriptError


# ----------------------------------------------------------------------------- HTK parameter files

def test_parm_kind_codes_from_the_htk_book():
    # MFCC = 6, _E = 0o100, _D = 0o400, _A = 0o1000, _Z = 0o4000
    assert htk.parse_parm_kind("MFCC_E_D_A_Z") == 6 + 0o100 + 0o400 + 0o1000 + 0o4000
    assert htk.format_parm_kind(6 + 0o100 + 0o400 + 0o1000 + 0o4000) == "MFCC_E_D_A_Z"
    assert htk.parse_parm_kind("USER") == 9
    assert htk.format_parm_kind(htk.parse_parm_kind("PLP_0_D")) == "PLP_D_0"
    with pytest.raises(InvalidParameterError, match="qualifier _Q"):
        htk.parse_parm_kind("MFCC_Q")


def test_read_hand_written_htk_file(tmp_path):
    frames = np.array([[1.0, -2.5], [0.25, 4.0], [8.0, 0.0]], dtype=">f4")
    kind = 6 | 0o100  # MFCC_E
    raw = struct.pack(">iihh", 3, 100000, 8, kind) + frames.tobytes()
    (tmp_path / "a.mfc").write_bytes(raw)
    p = htk.read_htk(tmp_path / "a.mfc")
    np.testing.assert_array_equal(p.data, frames.astype(np.float32))
    assert p.shift_s == pytest.approx(0.01)
    assert p.parm_kind == "MFCC_E"


def test_read_hand_written_compressed_htk_file(tmp_path):
    # _C: A and B vectors (float32) first, counted as 4 frames of int16 pairs; x = (c + B) / A
    A = np.array([2.0, 4.0], dtype=">f4")
    B = np.array([1.0, -2.0], dtype=">f4")
    c = np.array([[3, 6], [-1, 2]], dtype=">i2")
    kind = 6 | 0o2000
    raw = struct.pack(">iihh", 2 + 4, 100000, 4, kind) + A.tobytes() + B.tobytes() + c.tobytes()
    (tmp_path / "c.mfc").write_bytes(raw)
    p = htk.read_htk(tmp_path / "c.mfc")
    np.testing.assert_allclose(p.data, [[(3 + 1) / 2, (6 - 2) / 4], [(-1 + 1) / 2, (2 - 2) / 4]])
    assert p.parm_kind == "MFCC_C"


@pytest.mark.parametrize("compressed", [False, True])
def test_little_endian_htk_files_read_as_big_endian_ones(tmp_path, compressed):
    # HTK with NATURALWRITEORDER (and other tools) write the same layout little-endian
    kind = 6 | 0o100 | (0o2000 if compressed else 0)
    if compressed:
        fields = [np.array([2.0, 4.0], "f4"), np.array([1.0, -2.0], "f4"), np.array([[3, 6], [-1, 2]], "i2")]
        head, want = (2 + 4, 100000, 4, kind), [[2.0, 1.0], [0.0, 0.0]]
    else:
        fields = [np.array([[1.0, -2.5], [0.25, 4.0], [8.0, 0.0]], "f4")]
        head, want = (3, 100000, 8, kind), fields[0]
    for order in "><":
        raw = struct.pack(order + "iihh", *head) + b"".join(f.astype(f.dtype.newbyteorder(order)).tobytes()
                                                           for f in fields)
        (tmp_path / f"{order == '<'}.mfc").write_bytes(raw)
        p = htk.read_htk(tmp_path / f"{order == '<'}.mfc")
        np.testing.assert_allclose(p.data, want)
        assert p.shift_s == pytest.approx(0.01) and p.parm_kind == ("MFCC_E_C" if compressed else "MFCC_E")


def test_htk_round_trip_and_bytes(tmp_path):
    X = np.random.default_rng(0).normal(size=(7, 39)).astype(np.float32)
    htk.write_htk(tmp_path / "x.htk", X, shift_s=0.01, parm_kind="MFCC_E_D_A_Z")
    raw = (tmp_path / "x.htk").read_bytes()
    assert struct.unpack(">iihh", raw[:12]) == (7, 100000, 156, htk.parse_parm_kind("MFCC_E_D_A_Z"))
    assert len(raw) == 12 + 7 * 39 * 4
    back = htk.read_htk(tmp_path / "x.htk")
    np.testing.assert_array_equal(back.data, X)
    assert back.parm_kind == "MFCC_E_D_A_Z"


def test_htk_frames_without_features_are_refused_not_written_unreadable(tmp_path):
    # sampSize 0 is no HTK file (read_htk refuses it): nothing is written
    with pytest.raises(InvalidParameterError, match="0 features"):
        htk.write_htk(tmp_path / "x.htk", np.zeros((5, 0)))
    assert not (tmp_path / "x.htk").exists()
    htk.write_htk(tmp_path / "y.htk", np.zeros((0, 3)))  # no frames is a file
    assert htk.read_htk(tmp_path / "y.htk").data.shape == (0, 3)


def test_htk_truncated_and_foreign_files(tmp_path):
    X = np.ones((4, 3), dtype=np.float32)
    htk.write_htk(tmp_path / "x.htk", X)
    (tmp_path / "t.htk").write_bytes((tmp_path / "x.htk").read_bytes()[:-5])
    with pytest.raises(ModelFileError, match="truncated"):
        htk.read_htk(tmp_path / "t.htk")
    (tmp_path / "short").write_bytes(b"abc")
    with pytest.raises(ModelFileError, match="12-byte header"):
        htk.read_htk(tmp_path / "short")
    with pytest.raises(InvalidParameterError, match="NaN"):
        htk.write_htk(tmp_path / "n.htk", np.full((2, 2), np.nan))


# ----------------------------------------------------------------------------- MLF

MLF = """#!MLF!#
"*/cen1-fash-b.lab"
0 1200000 sil
1200000 4500000 one -12.5
4500000 5000000 sil
.
"/data/x/an251-fash-b.rec"
yes
no
.
"""


def test_read_hand_written_mlf(tmp_path):
    (tmp_path / "a.mlf").write_text(MLF)
    m = htk.read_mlf(tmp_path / "a.mlf")
    assert list(m) == ["cen1-fash-b", "an251-fash-b"]
    one = m["cen1-fash-b"][1]
    assert (one.name, one.start_s, one.end_s, one.score) == ("one", 0.12, 0.45, -12.5)
    assert [lab.name for lab in m["an251-fash-b"]] == ["yes", "no"]
    assert m["an251-fash-b"][0].start_s is None


def test_mlf_round_trip(tmp_path):
    entries = {"u1": [htk.Label("sil", 0.0, 0.12), htk.Label("one", 0.12, 0.45, -3.25)],
               "u2": [htk.Label("yes")]}
    htk.write_mlf(tmp_path / "o.mlf", entries)
    assert htk.read_mlf(tmp_path / "o.mlf") == entries
    assert (tmp_path / "o.mlf").read_text().splitlines()[:3] == ["#!MLF!#", '"*/u1.lab"', "0 1200000 sil"]


def test_mlf_writer_refuses_labels_that_would_read_back_differently(tmp_path):
    fine = {"u": [htk.Label("5"), htk.Label("5", 0.0, 0.1, -2.0), htk.Label("7", 0.1)]}
    htk.write_mlf(tmp_path / "ok.mlf", fine)
    assert htk.read_mlf(tmp_path / "ok.mlf") == fine
    for bad in (htk.Label("."), htk.Label("///"), htk.Label("5", score=-2.0), htk.Label("5", 0.1, score=-2.0)):
        with pytest.raises(InvalidParameterError, match="unambiguously"):
            htk.write_mlf(tmp_path / "bad.mlf", {"u": [bad]})
    assert not (tmp_path / "bad.mlf").exists()


def test_mlf_with_auxiliary_levels_keeps_the_first(tmp_path):
    # HTK Book 6.2.1: "[start [end]] name [score] {auxname [auxscore]}"; HVite -f writes state-level
    # alignments with the model (and word) as auxiliary labels; alternatives follow "///"
    (tmp_path / "a.mlf").write_text('#!MLF!#\n"*/u1.rec"\n0 100000 s2 -50.5 sil -300.25\n'
                                    "100000 200000 s3 -20.0\n200000 300000 ay ice\n"
                                    "///\n0 300000 eyes\n.\n")
    labels = htk.read_mlf(tmp_path / "a.mlf")["u1"]
    assert [(lab.name, lab.score) for lab in labels] == [("s2", -50.5), ("s3", -20.0), ("ay", None)]
    assert (labels[2].start_s, labels[2].end_s) == (0.02, 0.03)
    # HTK reads times as numbers: "1200000.0" is a time too, not a label with a score
    (tmp_path / "b.mlf").write_text('#!MLF!#\n"*/u2.lab"\n0.0 1200000.0 sil -3.5 SIL\n.\n')
    (lab,) = htk.read_mlf(tmp_path / "b.mlf")["u2"]
    assert (lab.name, lab.start_s, lab.end_s, lab.score) == ("sil", 0.0, 0.12, -3.5)


@pytest.mark.parametrize("text, match", [
    ("garbage\n", "#!MLF!#"),
    ('#!MLF!#\n"*/a.lab"\nsil\n', "not ended"),
    ("#!MLF!#\nsil\n.\n", "quoted file name"),
])
def test_bad_mlf(tmp_path, text, match):
    (tmp_path / "b.mlf").write_text(text)
    with pytest.raises(TranscriptError, match=match):
        htk.read_mlf(tmp_path / "b.mlf")


# ----------------------------------------------------------------------------- Kaldi archives

def _binary_fm(key: bytes, m: np.ndarray) -> bytes:
    return (key + b" \0BFM \x04" + struct.pack("<i", m.shape[0]) + b"\x04" + struct.pack("<i", m.shape[1])
            + m.astype("<f4").tobytes())


def test_read_hand_written_binary_ark(tmp_path):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([[0.5]], dtype=np.float32)
    (tmp_path / "f.ark").write_bytes(_binary_fm(b"utt1", a) + _binary_fm(b"utt2", b))
    got = dict(kaldi_io.read_ark(tmp_path / "f.ark"))
    assert list(got) == ["utt1", "utt2"]
    np.testing.assert_array_equal(got["utt1"], a)
    np.testing.assert_array_equal(got["utt2"], b)


def test_read_hand_written_text_ark(tmp_path):
    (tmp_path / "t.ark").write_text("utt1  [\n  1 2 3\n  4 5 6 ]\nutt2  [ 7.5 8 ]\n")
    got = dict(kaldi_io.read_ark(tmp_path / "t.ark"))
    np.testing.assert_array_equal(got["utt1"], [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(got["utt2"], [[7.5, 8]])


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("double", [True, False])
def test_ark_scp_round_trip(tmp_path, binary, double):
    rng = np.random.default_rng(1)
    mats = {"a": rng.normal(size=(5, 3)), "b-2": rng.normal(size=(1, 3)), "c": np.zeros((0, 3))}
    kaldi_io.write_ark(tmp_path / "x.ark", mats, binary=binary, double=double, scp=tmp_path / "x.scp")
    tol = 0 if (double or not binary) else 1e-6
    for got in (dict(kaldi_io.read_ark(tmp_path / "x.ark")), kaldi_io.read_scp(tmp_path / "x.scp")):
        assert list(got) == list(mats)
        for k in mats:
            np.testing.assert_allclose(got[k].reshape(mats[k].shape), mats[k], rtol=tol, atol=tol)


def test_binary_ark_bytes(tmp_path):
    kaldi_io.write_ark(tmp_path / "x.ark", {"u": np.array([[1.0, 2.0]])})
    assert (tmp_path / "x.ark").read_bytes() == _binary_fm(b"u", np.array([[1.0, 2.0]]))


def test_bad_archives(tmp_path):
    (tmp_path / "t.ark").write_bytes(_binary_fm(b"u", np.ones((3, 3)))[:-4])
    with pytest.raises(ModelFileError, match="truncated"):
        dict(kaldi_io.read_ark(tmp_path / "t.ark"))
    (tmp_path / "cm.ark").write_bytes(b"u \0BCM4 " + b"\0" * 20)
    with pytest.raises(ModelFileError, match="CM4"):
        dict(kaldi_io.read_ark(tmp_path / "cm.ark"))
    with pytest.raises(InvalidParameterError, match="white space"):
        kaldi_io.write_ark(tmp_path / "k.ark", {"a b": np.ones((1, 1))})


def _compressed(key: bytes, token: bytes, min_value: float, value_range: float, rows: int, cols: int,
                body: bytes) -> bytes:
    """A binary archive entry of a Kaldi CompressedMatrix: token, then the global header without its
    format field (float min, float range, int32 rows, int32 cols, no size markers), then the data."""
    return key + b" \0B" + token + b" " + struct.pack("<ffii", min_value, value_range, rows, cols) + body


def test_read_hand_written_compressed_matrices(tmp_path):
    """Kaldi's three CompressedMatrix formats (compressed-matrix.cc, ``copy-feats --compress``),
    decoded by hand from the format's definition."""
    # CM2 (kTwoByte): row-major uint16, value = min + q * range / 65535
    cm2 = np.array([[0, 65535, 32768], [1, 65534, 16384]], dtype="<u2")
    want2 = np.float32(-1.0) + cm2.astype(np.float32) * np.float32(2.0 / 65535)
    # CM3 (kOneByte): row-major uint8, value = min + q * range / 255
    cm3 = np.array([[0, 255], [51, 102], [204, 153]], dtype=np.uint8)
    want3 = np.float32(10.0) + cm3.astype(np.float32) * np.float32(5.0 / 255)
    # CM (kOneByteWithColHeaders): per column four uint16 percentiles on the global [min, min + range]
    # scale, then the column's bytes (column-major), piecewise linear: 0..64 -> p0..p25,
    # 64..192 -> p25..p75, 192..255 -> p75..p100
    pct = np.array([[0, 16384, 49152, 65535], [0, 1000, 2000, 65535]], dtype="<u2")
    q = np.array([[0, 0], [64, 64], [128, 96], [192, 192], [255, 255], [32, 224]], dtype=np.uint8)  # rows x cols
    p = -10.0 + 20.0 * pct / 65535
    want = np.empty(q.shape)
    for j in range(2):
        p0, p25, p75, p100 = p[j]
        for i, v in enumerate(q[:, j].astype(float)):
            want[i, j] = (p0 + (p25 - p0) * v / 64 if v <= 64 else p25 + (p75 - p25) * (v - 64) / 128
                          if v <= 192 else p75 + (p100 - p75) * (v - 192) / 63)
    assert want[2, 0] == pytest.approx(0.0, abs=1e-3) and want[4, 1] == pytest.approx(10.0)  # spot checks
    ark = (_compressed(b"a", b"CM2", -1.0, 2.0, 2, 3, cm2.tobytes())
           + _compressed(b"b", b"CM3", 10.0, 5.0, 3, 2, cm3.tobytes())
           + _compressed(b"c", b"CM", -10.0, 20.0, 6, 2, pct.tobytes() + q.T.tobytes())
           + _binary_fm(b"d", np.ones((1, 2))))
    (tmp_path / "c.ark").write_bytes(ark)
    got = dict(kaldi_io.read_ark(tmp_path / "c.ark"))
    assert list(got) == ["a", "b", "c", "d"]
    np.testing.assert_allclose(got["a"], want2, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got["b"], want3, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got["c"], want, rtol=0, atol=1e-5)
    assert all(m.dtype == np.float32 for m in got.values())  # Kaldi's BaseFloat
    # scp offsets point at compressed objects as at plain ones
    offset = len(_compressed(b"a", b"CM2", -1.0, 2.0, 2, 3, cm2.tobytes())) + len(b"b ")
    (tmp_path / "c.scp").write_text(f"b {tmp_path / 'c.ark'}:{offset}\n")
    np.testing.assert_array_equal(kaldi_io.read_scp(tmp_path / "c.scp")["b"], got["b"])


def test_compressed_matrices_empty_and_truncated(tmp_path):
    # Kaldi writes an empty CompressedMatrix as "CM" and a whole 20-byte header (format included)
    empty = b"u \0BCM " + struct.pack("<iffii", 0, 0.0, 0.0, 0, 0)
    (tmp_path / "e.ark").write_bytes(empty + _binary_fm(b"v", np.ones((1, 1))))
    got = dict(kaldi_io.read_ark(tmp_path / "e.ark"))
    assert got["u"].shape[0] == 0 and list(got) == ["u", "v"]
    for token, body in ((b"CM", b"\0" * 10), (b"CM2", b"\0" * 3), (b"CM3", b"")):
        (tmp_path / "t.ark").write_bytes(_compressed(b"u", token, 0.0, 1.0, 2, 2, body))
        with pytest.raises(ModelFileError, match="truncated"):
            dict(kaldi_io.read_ark(tmp_path / "t.ark"))
    (tmp_path / "h.ark").write_bytes(_compressed(b"u", b"CM", 0.0, 1.0, 2**30, 2**30, b""))
    with pytest.raises(ModelFileError, match="truncated"):
        dict(kaldi_io.read_ark(tmp_path / "h.ark"))
    (tmp_path / "n.ark").write_bytes(_compressed(b"u", b"CM2", 0.0, 1.0, -1, 2, b""))
    with pytest.raises(ModelFileError, match="negative"):
        dict(kaldi_io.read_ark(tmp_path / "n.ark"))


def test_corrupt_or_foreign_archives_raise_model_file_error(tmp_path):
    # a header promising far more than the file holds is "truncated", not a MemoryError/OverflowError
    for token, rows, cols in ((b"FM ", 10**6, 10**6), (b"DM ", 2**31 - 1, 2**31 - 1)):
        (tmp_path / "h.ark").write_bytes(b"u \0B" + token + b"\x04" + struct.pack("<i", rows) + b"\x04"
                                         + struct.pack("<i", cols) + b"\0" * 16)
        with pytest.raises(ModelFileError, match="truncated"):
            dict(kaldi_io.read_ark(tmp_path / "h.ark"))
        with pytest.raises(ModelFileError, match="truncated"):
            kaldi_io.read_mat(f"{tmp_path / 'h.ark'}:2")
    # a gzip'ed archive or a key that is not UTF-8: named, not a UnicodeDecodeError
    import gzip
    (tmp_path / "g.ark").write_bytes(gzip.compress(_binary_fm(b"u", np.ones((1, 1)))))
    (tmp_path / "l.ark").write_bytes(_binary_fm(b"caf\xe9", np.ones((1, 1))))
    for name in ("g.ark", "l.ark"):
        with pytest.raises(ModelFileError, match=name):
            dict(kaldi_io.read_ark(tmp_path / name))


def test_text_files_with_a_byte_order_mark(tmp_path):
    # a UTF-8 BOM (Windows editors) is dropped, as for every other text input
    (tmp_path / "a.mlf").write_text("\ufeff" + MLF, encoding="utf-8")
    assert list(htk.read_mlf(tmp_path / "a.mlf")) == ["cen1-fash-b", "an251-fash-b"]
    kaldi_io.write_ark(tmp_path / "x.ark", {"u": np.ones((1, 2))}, scp=tmp_path / "x.scp")
    (tmp_path / "b.scp").write_text("\ufeff" + (tmp_path / "x.scp").read_text(), encoding="utf-8")
    assert list(kaldi_io.read_scp(tmp_path / "b.scp")) == ["u"]


def test_cmvn_stats_layout_and_inverse():
    X = np.array([[1.0, 2.0], [3.0, 6.0]])
    s = kaldi_io.cmvn_stats_matrix(X)
    np.testing.assert_array_equal(s, [[4.0, 8.0, 2.0], [10.0, 40.0, 0.0]])
    mean, var = kaldi_io.cmvn_from_stats(s)
    np.testing.assert_allclose(mean, [2.0, 4.0])
    np.testing.assert_allclose(var, [1.0, 4.0])
    with pytest.raises(ModelFileError, match="frame count"):
        kaldi_io.cmvn_from_stats(np.zeros((2, 3)))


def test_scp_row_and_column_ranges(tmp_path):
    """Kaldi's range specifiers (util/kaldi-holder.cc ExtractObjectRange): ``[rows]`` or
    ``[rows,cols]`` after the rxfilename, each part ``first:last`` (inclusive) or ``:`` for all."""
    m = np.arange(40, dtype=np.float32).reshape(10, 4)
    kaldi_io.write_ark(tmp_path / "x.ark", {"u": m, "v": m[:3]}, scp=tmp_path / "x.scp")
    ark_u = (tmp_path / "x.scp").read_text().splitlines()[0].split()[1]
    (tmp_path / "r.scp").write_text(f"all {ark_u}[:]\nrows {ark_u}[2:5]\nboth {ark_u}[0:9,1:2]\n"
                                    f"cols {ark_u}[:,3:3]\none {ark_u}[9:9]\nplain {ark_u}\n")
    got = kaldi_io.read_scp(tmp_path / "r.scp")
    np.testing.assert_array_equal(got["all"], m)
    np.testing.assert_array_equal(got["rows"], m[2:6])
    np.testing.assert_array_equal(got["both"], m[:, 1:3])
    np.testing.assert_array_equal(got["cols"], m[:, 3:4])
    np.testing.assert_array_equal(got["one"], m[9:10])
    np.testing.assert_array_equal(got["plain"], m)
    assert got["rows"].base is None  # a copy: a short range does not keep the whole matrix alive
    np.testing.assert_array_equal(kaldi_io.read_mat(f"{ark_u}[1:2,0:1]"), m[1:3, 0:2])


@pytest.mark.parametrize("spec, what", [
    ("[0:10]", "beyond"), ("[3:2]", "invalid"), ("[0:3,4:4]", "beyond"), ("[]", "invalid"),
    ("[0:3,]", "invalid"), ("[,0:1]", "invalid"), ("[5]", "invalid"), ("[0:1:2]", "invalid"),
    ("[-1:3]", "invalid"), ("[a:b]", "invalid"), ("[0:1,0:1,0:1]", "invalid")])
def test_scp_bad_ranges_name_the_entry(tmp_path, spec, what):
    kaldi_io.write_ark(tmp_path / "x.ark", {"u": np.ones((10, 4))}, scp=tmp_path / "x.scp")
    ark_u = (tmp_path / "x.scp").read_text().split()[1]
    (tmp_path / "r.scp").write_text(f"ok {ark_u}\nbad {ark_u}{spec}\n")
    with pytest.raises(ModelFileError, match=what) as info:
        kaldi_io.read_scp(tmp_path / "r.scp")
    assert "line 2" in str(info.value) and "'bad'" in str(info.value) and "r.scp" in str(info.value)


def test_scp_naming_a_file_with_a_nul_byte_names_the_entry(tmp_path):
    # a corrupt scp line: open() raised a bare ValueError ("embedded null byte")
    (tmp_path / "r.scp").write_bytes(b"bad /tmp/x\0y.ark:12\n")
    with pytest.raises(ModelFileError, match=r"line 1 \(key 'bad'\).*null byte"):
        kaldi_io.read_scp(tmp_path / "r.scp")


def test_ark_and_scp_are_written_as_a_pair(tmp_path, monkeypatch):
    """`write_ark(..., scp=...)` replaces both files or neither, and the archive before its index (a
    reader never sees a new scp pointing into an old archive); no temporary file is left behind."""
    from conftest import no_room_for
    from gmmhmm import modelfile

    old = {"old": np.ones((2, 2))}
    kaldi_io.write_ark(tmp_path / "x.ark", old, scp=tmp_path / "x.scp")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    new = {"new": np.zeros((3, 2))}
    # the index cannot be written (its name is a folder): the archive is not replaced either
    with pytest.raises(IsADirectoryError):
        kaldi_io.write_ark(tmp_path / "x.ark", new, scp=tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    # a failure while the second file is written (disk full, ...): nothing replaced
    no_room_for(monkeypatch, "x.scp")  # the index cannot be written (disk full)
    with pytest.raises(OSError, match="No space"):
        kaldi_io.write_ark(tmp_path / "x.ark", new, scp=tmp_path / "x.scp")
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    # success: the archive is renamed into place before its index
    real_replace, renamed = os.replace, []
    monkeypatch.setattr(modelfile.os, "replace", lambda a, b: (renamed.append(os.path.basename(b)),
                                                                real_replace(a, b)))
    kaldi_io.write_ark(tmp_path / "x.ark", new, scp=tmp_path / "x.scp")
    assert renamed == ["x.ark", "x.scp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.ark", "x.scp"]
    assert list(kaldi_io.read_scp(tmp_path / "x.scp")) == ["new"]
