"""Forced alignment: segments, CTM and TextGrid output."""

from __future__ import annotations

import re

import numpy as np
import pytest

from gmmhmm.errors import InvalidInputError, SequenceTooShortError, TranscriptError
from gmmhmm.graphs import EmbeddedTrainer, force_align, to_ctm, to_textgrid, write_alignment
from test_embedded import LEXICON, synthetic_corpus


@pytest.fixture(scope="module")
def data():
    feats, texts, segs, _ = synthetic_corpus(n_utts=40, seed=1)
    tr = EmbeddedTrainer(LEXICON)
    tr.fit(feats, texts, mixtures=(1,), n_iter=6)
    return tr.model, feats, texts, segs


def test_segments_contiguous_and_recover_truth(data):
    model, feats, texts, segs = data
    for X, words, truth in zip(feats[:10], texts, segs):
        path = force_align(model, X, words, frame_shift_s=0.01, duration_s=len(X) * 0.01 + 0.015)
        for tier in (path.words, path.phones):
            assert tier[0].start_frame == 0 and tier[-1].end_frame == len(X)
            assert all(a.end_frame == b.start_frame for a, b in zip(tier, tier[1:]))
            assert all(s.end_frame > s.start_frame for s in tier)
            assert tier[-1].end_s == pytest.approx(len(X) * 0.01 + 0.015)
        assert [s.label for s in path.words if s.label != "sil"] == words
        # the data are well separated: boundaries land within a frame of the true ones
        assert [s.label for s in path.words] == [t[0] for t in truth]
        np.testing.assert_allclose([s.start_frame for s in path.words], [t[1] for t in truth], atol=1)
        assert sum(s.end_frame - s.start_frame for s in path.phones) == len(X)


def test_errors(data):
    model, feats, texts, _ = data
    with pytest.raises(SequenceTooShortError, match="at least 15"):
        force_align(model, feats[0][:10], ["ab", "ca", "b"])
    with pytest.raises(TranscriptError, match="zz"):
        force_align(model, feats[0], ["zz"])
    # a NaN or +inf log-likelihood is bad input, not "no complete path in 49 frames (needs at least 9)"
    ll = model.state_log_likelihood(feats[0])
    for bad in (np.nan, np.inf):
        broken = ll.copy()
        broken[3] = bad
        with pytest.raises(InvalidInputError, match=r"NaN or \+inf"):
            force_align(model, None, texts[0], log_likelihood=broken)
    with pytest.raises(InvalidInputError, match="log_likelihood must be"):
        force_align(model, None, texts[0], log_likelihood=ll[:, :-1])


def test_ctm_and_textgrid(data, tmp_path):
    model, feats, texts, _ = data
    path = force_align(model, feats[0], texts[0])
    ctm = to_ctm("utt1", path.words)
    lines = ctm.splitlines()
    assert len(lines) == len(path.words)
    t = 0.0
    for line, seg in zip(lines, path.words):
        utt, chan, start, dur, label = line.split()
        assert (utt, chan, label) == ("utt1", "1", seg.label)
        assert float(start) == pytest.approx(t, abs=1e-3) and float(dur) > 0
        t = float(start) + float(dur)
    tg = to_textgrid(path)
    assert tg.startswith('File type = "ooTextFile"\nObject class = "TextGrid"')
    sizes = [int(x) for x in re.findall(r"intervals: size = (\d+)", tg)]
    assert sizes == [len(path.words), len(path.phones)]
    texts_in = re.findall(r'text = "([^"]*)"', tg)
    assert texts_in == [s.label for s in path.words] + [s.label for s in path.phones]
    # every time is a plain number Praat reads (never a numpy repr such as np.float64(0.5))
    times = re.findall(r"^ *(?:xmin|xmax) = (.*)$", tg, re.MULTILINE)
    assert len(times) == 2 + 2 * (2 + len(path.words) + len(path.phones))
    assert all(re.fullmatch(r"[0-9.e+-]+", x) for x in times), [x for x in times if not x[0].isdigit()][:3]
    xs = [float(x) for x in re.findall(r"xmin = ([0-9.e-]+)", tg)]
    assert xs[0] == 0.0 and all(x >= 0 for x in xs)
    for _ in range(2):  # a re-run into the same folder replaces the files, not adds to them
        write_alignment(tmp_path, {"utt1": path, "utt2": path})
    assert (tmp_path / "utt1.TextGrid").read_text() == tg
    assert (tmp_path / "words.ctm").read_text() == to_ctm("utt1", path.words) + to_ctm("utt2", path.words)
    assert (tmp_path / "phones.ctm").read_text() == to_ctm("utt1", path.phones) + to_ctm("utt2", path.phones)
    # ids of a folder scan hold '/': a re-run that did not align one removes its TextGrid in the subfolder too
    write_alignment(tmp_path, {"spk1/a": path, "spk1/b": path})
    write_alignment(tmp_path, {"spk1/a": path})
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.TextGrid")) == ["spk1/a.TextGrid"]
