"""load_audio: formats, channel mixing, resampling and every AudioError case."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from gmmhmm.errors import AudioError, InvalidParameterError
from gmmhmm.features import FeatureConfig, extract_features, load_audio, mfcc


def _tones(rate_hz: int, seconds: float, freqs_hz=(300.0, 1100.0, 2500.0)) -> np.ndarray:
    t = np.arange(int(rate_hz * seconds)) / rate_hz
    return sum(0.2 * np.sin(2 * np.pi * f * t + i) for i, f in enumerate(freqs_hz))


def test_int16_wav_is_scaled_to_full_scale(tmp_path):
    ints = np.array([0, 16384, -32768, 32767, -1], dtype=np.int16)
    sf.write(tmp_path / "a.wav", ints, 8000, subtype="PCM_16")
    x, rate = load_audio(tmp_path / "a.wav")
    assert rate == 8000 and x.dtype == np.float64
    np.testing.assert_array_equal(x, ints / 32768.0)


def test_stereo_is_mixed_to_mono(tmp_path):
    rng = np.random.default_rng(0)
    left, right = rng.uniform(-0.5, 0.5, (2, 1000))
    sf.write(tmp_path / "s.wav", np.stack([left, right], axis=1), 16000, subtype="DOUBLE")
    x, _ = load_audio(tmp_path / "s.wav")
    np.testing.assert_allclose(x, (left + right) / 2, rtol=0, atol=1e-15)


def test_int16_and_float_wav_give_the_same_features(tmp_path):
    x = np.round(_tones(8000, 0.5) * 32767) / 32768.0  # exactly representable in int16
    sf.write(tmp_path / "i.wav", x, 8000, subtype="PCM_16")
    sf.write(tmp_path / "f.wav", x, 8000, subtype="FLOAT")
    sf.write(tmp_path / "f.flac", x, 8000, subtype="PCM_16")
    cfg = FeatureConfig.fsdd()
    a = extract_features(tmp_path / "i.wav", cfg)
    np.testing.assert_allclose(extract_features(tmp_path / "f.wav", cfg), a, atol=1e-6)
    np.testing.assert_array_equal(extract_features(tmp_path / "f.flac", cfg), a)


def test_resampling_48k_to_8k_gives_close_features(tmp_path):
    # Same band-limited signal sampled at 48 kHz and at 8 kHz.
    sf.write(tmp_path / "hi.wav", _tones(48000, 1.0), 48000, subtype="FLOAT")
    sf.write(tmp_path / "lo.wav", _tones(8000, 1.0), 8000, subtype="FLOAT")
    x, rate = load_audio(tmp_path / "hi.wav", sample_rate_hz=8000)
    assert rate == 8000 and x.shape == (8000,)
    cfg = FeatureConfig.fsdd()
    hi = mfcc(x, 8000, cfg)[1:-1]  # skip the resampling filter's edge transients
    lo = mfcc(load_audio(tmp_path / "lo.wav")[0], 8000, cfg)[1:-1]
    # A 100 Hz shift of one tone changes these cepstra by ~25; resampling error is ~1e-5.
    np.testing.assert_allclose(hi, lo, atol=1e-3)


def test_odd_rate_is_resampled_to_requested_length(tmp_path):
    sf.write(tmp_path / "o.wav", _tones(11025, 0.5), 11025, subtype="PCM_16")
    x, rate = load_audio(tmp_path / "o.wav", sample_rate_hz=8000)
    assert rate == 8000 and abs(x.shape[0] - 4000) <= 1


def _valid_wav_bytes(tmp_path) -> bytes:
    sf.write(tmp_path / "ok.wav", _tones(8000, 0.2), 8000, subtype="PCM_16")
    return (tmp_path / "ok.wav").read_bytes()


def _broken_files(tmp_path):
    good = _valid_wav_bytes(tmp_path)
    files = {
        "empty.wav": b"",
        "text.wav": b"this is not audio, just text renamed to .wav\n" * 10,
        "header.wav": good[:20],
        "truncated.wav": good[: len(good) // 2],
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    sf.write(tmp_path / "zero.wav", np.zeros(0), 8000, subtype="PCM_16")
    nan = _tones(8000, 0.2)
    nan[100] = np.nan
    sf.write(tmp_path / "nan.wav", nan, 8000, subtype="FLOAT")
    inf = _tones(8000, 0.2)
    inf[5] = np.inf
    sf.write(tmp_path / "inf.wav", inf, 8000, subtype="DOUBLE")
    return {
        "empty.wav": "unreadable",
        "text.wav": "unreadable",
        "header.wav": "unreadable",
        "truncated.wav": "truncated",
        "zero.wav": "no samples",
        "nan.wav": "NaN",
        "inf.wav": "NaN or infinity",
        "missing.wav": "no such",
    }


def test_every_broken_file_raises_audio_error_naming_it(tmp_path):
    for name, words in _broken_files(tmp_path).items():
        with pytest.raises(AudioError) as info:
            load_audio(tmp_path / name)
        assert name in str(info.value) and words in str(info.value), str(info.value)


@pytest.mark.parametrize("cut_bytes", [1, 1000])
@pytest.mark.parametrize("fmt", ["RF64", "AIFF", "W64"])
def test_truncated_rf64_aiff_and_w64_are_refused(tmp_path, fmt, cut_bytes):
    """RF64 (WAV past 4 GiB) keeps the data length in its ds64 chunk, AIFF in its big-endian SSND
    chunk, Sony Wave64 in 64-bit sizes after 16-byte GUIDs; libsndfile reads a cut-off one as a
    shorter recording."""
    ext = fmt.lower()
    sf.write(tmp_path / f"ok.{ext}", _tones(8000, 0.2), 8000, format=fmt, subtype="PCM_16")
    assert len(load_audio(tmp_path / f"ok.{ext}")[0]) == 1600
    assert len(load_audio(tmp_path / f"ok.{ext}", start_s=0.1, end_s=0.2)[0]) == 800
    (tmp_path / f"cut.{ext}").write_bytes((tmp_path / f"ok.{ext}").read_bytes()[:-cut_bytes])
    with pytest.raises(AudioError, match=rf"cut\.{ext}: truncated"):
        load_audio(tmp_path / f"cut.{ext}")
    with pytest.raises(AudioError, match=rf"cut\.{ext}: truncated"):
        load_audio(tmp_path / f"cut.{ext}", start_s=0.0, end_s=0.05)  # a stretch the cut did not reach


def test_a_bytes_path_reads_like_its_str(tmp_path):
    """extract_features took bytes for a path, then load_audio failed on it with a TypeError
    (which extract_many does not catch, so one such path ended the batch)."""
    from gmmhmm.features import extract_many

    sf.write(tmp_path / "a.wav", _tones(8000, 0.2), 8000, subtype="PCM_16")
    path = str(tmp_path / "a.wav")
    np.testing.assert_array_equal(load_audio(path.encode())[0], load_audio(path)[0])
    cfg = FeatureConfig.fsdd()
    np.testing.assert_array_equal(extract_features(path.encode(), cfg), extract_features(path, cfg))
    feats, failures = extract_many([path.encode()], cfg)
    assert not failures and list(feats) == [path]


def test_audio_too_short_for_one_frame(tmp_path):
    sf.write(tmp_path / "short.wav", _tones(8000, 0.02), 8000, subtype="PCM_16")  # 160 < 200 samples
    load_audio(tmp_path / "short.wav")  # readable on its own
    with pytest.raises(AudioError, match=r"short\.wav.*too short for one 25 ms frame"):
        extract_features(tmp_path / "short.wav", FeatureConfig.fsdd())


def test_bad_sample_rate_argument(tmp_path):
    sf.write(tmp_path / "a.wav", _tones(8000, 0.1), 8000)
    with pytest.raises(InvalidParameterError, match="sample_rate_hz"):
        load_audio(tmp_path / "a.wav", sample_rate_hz=0)


def test_a_stretch_is_the_slice_of_the_whole_file(tmp_path):
    """load_audio(start_s, end_s) reads samples round(start*rate) .. round(end*rate) of the file."""
    from gmmhmm.data import AudioSpan
    from gmmhmm.features import extract_many

    ints = np.arange(-4000, 4000, dtype=np.int16)  # 1 s at 8 kHz, every sample distinct
    sf.write(tmp_path / "r.wav", ints, 8000, subtype="PCM_16")
    whole, _ = load_audio(tmp_path / "r.wav")
    part, rate = load_audio(tmp_path / "r.wav", None, 0.25, 0.5)
    assert rate == 8000
    np.testing.assert_array_equal(part, whole[2000:4000])
    np.testing.assert_array_equal(load_audio(tmp_path / "r.wav", None, 0.5)[0], whole[4000:])
    # an end up to 0.5 s after the recording is cut at its end (Kaldi extract-segments)
    np.testing.assert_array_equal(load_audio(tmp_path / "r.wav", None, 0.75, 1.4)[0], whole[6000:])
    # features of a span == features of the same samples written as their own file
    x = np.round(_tones(8000, 1.0) * 32767).astype(np.int16)
    sf.write(tmp_path / "t.wav", x, 8000, subtype="PCM_16")
    sf.write(tmp_path / "cut.wav", x[1600:6400], 8000, subtype="PCM_16")
    span = AudioSpan(str(tmp_path / "t.wav"), 0.2, 0.8)
    feats, failures = extract_many([span, tmp_path / "cut.wav"], FeatureConfig.fsdd())
    assert not failures and list(feats) == [span.name, str(tmp_path / "cut.wav")]
    np.testing.assert_array_equal(feats[span.name], feats[str(tmp_path / "cut.wav")])


@pytest.mark.parametrize("start_s, end_s, match", [
    (1.2, 1.6, r"ends after the recording \(1.000 s long\)"),
    (1.2, 1.4, r"holds no samples of the recording"),
    (1.0, 1.3, r"holds no samples of the recording"),
    (0.5, 0.5, r"0 <= start_s < end_s"),
    (-0.1, 0.5, r"0 <= start_s < end_s"),
    (float("nan"), 0.5, r"0 <= start_s < end_s"),
])
def test_a_stretch_outside_the_recording_is_an_audio_error(tmp_path, start_s, end_s, match):
    sf.write(tmp_path / "r.wav", np.zeros(8000, dtype=np.int16) + 5, 8000, subtype="PCM_16")
    with pytest.raises(AudioError, match=match):
        load_audio(tmp_path / "r.wav", None, start_s, end_s)


def test_a_span_needs_finite_ordered_seconds():
    from gmmhmm.data import AudioSpan

    for start_s, end_s in ((2.0, 1.0), (0.0, float("inf")), ("0", 1.0)):
        with pytest.raises(AudioError, match="segment"):
            AudioSpan("x.wav", start_s, end_s)
