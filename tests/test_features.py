"""MFCC front end: filterbank, framing, cepstra, deltas, CMVN, config, pipeline, feature files."""

from __future__ import annotations

import importlib
import json
import logging
import tomllib

import numpy as np
import pytest
from conftest import has_empty_mel_filter, write_packed_npz
import scipy.fft
import soundfile as sf

from gmmhmm.errors import (
    AudioError,
    InvalidInputError,
    InvalidParameterError,
    ModelFileError,
    NonFiniteInputError,
)
from gmmhmm.features import (
    FeatureConfig,
    add_deltas,
    cmvn,
    cmvn_per_speaker,
    deltas,
    extract_features,
    extract_many,
    frame_signal,
    hz_to_mel,
    load_audio,
    load_features,
    log_mel_spectrogram,
    mel_band_edges_hz,
    mel_filterbank,
    mel_to_hz,
    mfcc,
    save_features,
    window_function,
)

RNG = np.random.default_rng(1234)


def _noise(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=0.1, size=n)


# --- filterbank -------------------------------------------------------------

def test_mel_scale_round_trip_and_htk_anchor():
    f = np.array([0.0, 100.0, 1000.0, 7999.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(f)), f, atol=1e-9)
    assert abs(hz_to_mel(700.0) - 1127.0 * np.log(2.0)) < 1e-9


def test_band_edges_match_librosa_htk_mel_frequencies():
    import librosa

    ours = mel_band_edges_hz(23, 20.0, 4000.0)
    np.testing.assert_allclose(ours, librosa.mel_frequencies(25, fmin=20.0, fmax=4000.0, htk=True), rtol=1e-6)


def test_filterbank_respects_band_edges():
    fb = mel_filterbank(16000, 512, 20, low_freq_hz=300.0, high_freq_hz=3400.0)
    freqs = np.arange(257) * 16000 / 512
    assert fb.shape == (20, 257)
    assert np.all(fb[:, (freqs < 300.0) | (freqs > 3400.0)] == 0)
    assert np.all(fb >= 0) and np.all(fb <= 1)
    # every filter is non-empty and peaks near its centre
    edges = mel_band_edges_hz(20, 300.0, 3400.0)
    peaks = freqs[fb.argmax(axis=1)]
    assert np.all(np.abs(peaks - edges[1:-1]) <= 16000 / 512)


@pytest.mark.parametrize("rate, n_fft, n_mels, warp", [
    (8000, 256, 128, 1.0), (8000, 256, 96, 1.0), (16000, 512, 128, 1.0), (8000, 256, 80, 1.2),
    (8000, 256, 80, 1.0), (8000, 256, 23, 0.8), (16000, 512, 80, 1.0)])
def test_filters_that_cover_no_fft_bin_are_refused_like_kaldi(rate, n_fft, n_mels, warp):
    """Bug: a filter falling between two FFT bins was all zero, so its log output was the floor on
    every frame (a constant column). Kaldi's MelBanks refuses it ('--num-mel-bins too large');
    a filterbank is refused exactly when one of its rows would be all zero."""
    high = rate / 2
    args = (rate, n_fft, n_mels, 20.0, high, warp, 100.0, high - 500.0)
    if has_empty_mel_filter(*args):
        with pytest.raises(InvalidParameterError, match=rf"n_mels={n_mels}.*{rate} Hz.*{n_fft}-point FFT"):
            mel_filterbank(*args)
        # refused with the settings, before any audio is read
        with pytest.raises(InvalidParameterError, match=rf"n_mels={n_mels}.*{rate} Hz.*{n_fft}-point FFT"):
            FeatureConfig(sample_rate_hz=rate, n_mels=n_mels, vtln_warp=warp)
    else:
        assert (mel_filterbank(*args) > 0).any(axis=1).all()
        FeatureConfig(sample_rate_hz=rate, n_mels=n_mels, vtln_warp=warp)


def test_the_known_empty_filter_cases_are_what_the_reference_says():
    """The parametrised cases above include both outcomes (else they would test nothing)."""
    assert has_empty_mel_filter(8000, 256, 128, 20.0, 4000.0, 1.0, 100.0, 3500.0)
    assert has_empty_mel_filter(8000, 256, 80, 20.0, 4000.0, 1.2, 100.0, 3500.0)
    assert not has_empty_mel_filter(8000, 256, 80, 20.0, 4000.0, 1.0, 100.0, 3500.0)


def test_pure_tone_energy_lands_in_its_mel_band():
    for rate, n_mels in ((8000, 23), (16000, 26)):
        cfg = FeatureConfig(sample_rate_hz=rate, n_mels=n_mels, preemphasis=0.0)
        centres = mel_band_edges_hz(n_mels, cfg.low_freq_hz, cfg.high_freq_effective_hz)[1:-1]
        t = np.arange(rate // 2) / rate
        for band in (3, 8, 12, 17, n_mels - 3):
            tone = 0.5 * np.sin(2 * np.pi * centres[band] * t)
            logmel = log_mel_spectrogram(tone, rate, cfg)
            assert logmel.shape[1] == n_mels
            assert np.all(logmel.argmax(axis=1) == band), (rate, band)


def test_silence_is_floored_not_minus_infinity():
    cfg = FeatureConfig(sample_rate_hz=8000, n_mels=23, energy="log_energy")
    assert np.isfinite(log_mel_spectrogram(np.zeros(4000), 8000, cfg)).all()
    assert np.isfinite(mfcc(np.zeros(4000), 8000, cfg)).all()


# --- framing and windows ------------------------------------------------------

@pytest.mark.parametrize("n", [200, 201, 279, 280, 1000])
def test_snip_edges_frame_count_and_content(n):
    x = np.arange(n, dtype=float)
    frames = frame_signal(x, 200, 80, snip_edges=True)
    assert frames.shape == (1 + (n - 200) // 80, 200)
    for t in range(frames.shape[0]):
        np.testing.assert_array_equal(frames[t], x[t * 80 : t * 80 + 200])


def test_no_snip_edges_reflects_around_the_signal():
    x = np.arange(10, dtype=float)
    frames = frame_signal(x, 6, 4, snip_edges=False)
    assert frames.shape[0] == (10 + 2) // 4
    # frame t starts at 4 t + 2 - 3; index -1 mirrors to 0, index 10 to 9.
    np.testing.assert_array_equal(frames[0], [0, 0, 1, 2, 3, 4])
    np.testing.assert_array_equal(frames[2], [7, 8, 9, 9, 8, 7])


def test_windows():
    ham, hann, povey = (window_function(w, 5) for w in ("hamming", "hann", "povey"))
    np.testing.assert_allclose(ham, [0.08, 0.54, 1.0, 0.54, 0.08])
    np.testing.assert_allclose(hann, [0.0, 0.5, 1.0, 0.5, 0.0])
    np.testing.assert_allclose(povey, hann**0.85)


# --- cepstra -------------------------------------------------------------------

def test_log_mel_matches_a_per_frame_reference():
    # Straight per-frame transcription of the HTK/Kaldi recipe, no shared helpers.
    x = _noise(3000, seed=3) + 0.05
    cfg = FeatureConfig(sample_rate_hz=8000, n_mels=23, window="povey")
    fb = mel_filterbank(8000, 256, 23, 20.0, 4000.0)
    n = np.arange(200)
    win = (0.5 - 0.5 * np.cos(2 * np.pi * n / 199)) ** 0.85
    rows = []
    for start in range(0, 3000 - 200 + 1, 80):
        frame = x[start : start + 200].copy()
        frame -= frame.mean()
        frame[1:] -= 0.97 * frame[:-1].copy()
        frame[0] -= 0.97 * frame[0]
        spectrum = np.abs(np.fft.rfft(np.concatenate([frame * win, np.zeros(56)]))) ** 2
        rows.append(np.log(fb @ spectrum))
    np.testing.assert_allclose(log_mel_spectrogram(x, 8000, cfg), np.array(rows), rtol=1e-10, atol=1e-10)


def test_mfcc_is_lifted_orthonormal_dct_of_log_mel():
    cfg = FeatureConfig(sample_rate_hz=16000)
    x = _noise(8000)
    logmel = log_mel_spectrogram(x, 16000, cfg)
    lifter = 1 + 11 * np.sin(np.pi * np.arange(13) / 22)
    expected = scipy.fft.dct(logmel, type=2, norm="ortho", axis=1)[:, :13] * lifter
    np.testing.assert_allclose(mfcc(x, 16000, cfg), expected, rtol=1e-10, atol=1e-10)
    assert mfcc(x, 16000, cfg).shape == (1 + (8000 - 400) // 160, 13)


def test_gain_only_moves_c0_and_log_energy():
    # log-mel shifts by 2 ln g in every band; the orthonormal DCT maps a constant
    # shift c to c * sqrt(n_mels) in c0 and to nothing elsewhere.
    x, g = _noise(4000), 3.7
    cfg = FeatureConfig(sample_rate_hz=8000, n_mels=23)
    diff = mfcc(g * x, 8000, cfg) - mfcc(x, 8000, cfg)
    np.testing.assert_allclose(diff[:, 0], 2 * np.log(g) * np.sqrt(23), rtol=1e-9)
    np.testing.assert_allclose(diff[:, 1:], 0, atol=1e-9)
    cfg_e = cfg.replace(energy="log_energy")
    diff_e = mfcc(g * x, 8000, cfg_e) - mfcc(x, 8000, cfg_e)
    np.testing.assert_allclose(diff_e[:, 0], 2 * np.log(g), rtol=1e-9)


def test_energy_options():
    x = _noise(4000) + 0.3  # a DC offset the energy must ignore
    base = FeatureConfig(sample_rate_hz=8000, n_mels=23)
    c0 = mfcc(x, 8000, base)
    e = mfcc(x, 8000, base.replace(energy="log_energy"))
    frames = frame_signal(x, 200, 80)
    frames = frames - frames.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(e[:, 0], np.log((frames**2).sum(axis=1)), rtol=1e-12)
    np.testing.assert_array_equal(e[:, 1:], c0[:, 1:])
    none = mfcc(x, 8000, base.replace(energy="none", cep_lifter=0.0))
    plain = mfcc(x, 8000, base.replace(n_ceps=14, cep_lifter=0.0))
    np.testing.assert_allclose(none, plain[:, 1:], rtol=1e-12)


def test_frame_energy_is_computed_only_for_log_energy(monkeypatch):
    calls = []
    einsum = np.einsum
    monkeypatch.setattr(np, "einsum", lambda *a, **k: calls.append(a[0]) or einsum(*a, **k))
    x = _noise(8000 * 60)  # several blocks of frames
    base = FeatureConfig(sample_rate_hz=8000, n_mels=23)
    for energy in ("c0", "none"):
        mfcc(x, 8000, base.replace(energy=energy))
    log_mel_spectrogram(x, 8000, base.replace(energy="log_energy"))
    assert calls == []
    mfcc(x, 8000, base.replace(energy="log_energy"))
    assert len(calls) > 1


def test_dither_is_seeded_and_reproducible():
    x = _noise(4000)
    cfg = FeatureConfig(sample_rate_hz=8000, n_mels=23, dither=1e-3, dither_seed=7)
    a, b = mfcc(x, 8000, cfg), mfcc(x, 8000, cfg)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, mfcc(x, 8000, cfg.replace(dither_seed=8)))
    assert not np.array_equal(a, mfcc(x, 8000, cfg.replace(dither=0.0)))
    assert np.isfinite(mfcc(x, 8000, cfg.replace(dither_seed=-5))).all()  # any integer seeds


def test_dither_takes_no_copy_of_the_signal():
    """Bug: seeding the dither hashed ``x.tobytes()``, a copy of the whole signal (1.3 GB for 3 hours at 16 kHz)."""
    import tracemalloc

    x = _noise(4_000_000)  # 32 MB
    cfg = FeatureConfig(sample_rate_hz=8000, n_mels=23)
    peaks = []
    for dither in (0.0, 1e-4):
        tracemalloc.start()
        mfcc(x, 8000, cfg.replace(dither=dither))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < peaks[0] + x.nbytes / 4, peaks


def test_too_short_is_said_before_the_analysis_tables_are_built():
    """Bug: a short signal under a huge window built a huge filterbank (~1.7 GB transient for
    window_ms=250000) before saying 'too short'. The longest window allowed (1 s) at the highest
    rate allowed (1 MHz) would still build ~100 MB of tables."""
    import tracemalloc

    cfg = FeatureConfig(sample_rate_hz=1_000_000, window_ms=1000.0)
    for analysis in (mfcc, log_mel_spectrogram):
        tracemalloc.start()
        with pytest.raises(AudioError, match="too short for one 1000 ms frame"):
            analysis(_noise(16000), 1_000_000, cfg)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 16 * 2**20, peak


def test_long_windows_are_analysed_in_blocks_of_bounded_size(monkeypatch):
    """Bug: 2048 frames were analysed at once whatever their length: with a 1 s window at 16 kHz
    that is ~270 MB of frames and as much of spectra; blocks now hold a fixed number of samples.
    The features do not depend on the block size beyond rounding (dither included)."""
    import tracemalloc

    mfcc_module = importlib.import_module("gmmhmm.features.mfcc")  # (the package exports a function of that name)

    cfg = FeatureConfig(window_ms=1000.0, dither=1e-3)
    x = _noise(16000 * 5)
    mfcc(x[:16000], 16000, cfg)  # tables built outside the measurement
    tracemalloc.start()
    feats = mfcc(x, 16000, cfg)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert feats.shape[0] == 401 and peak < 64 * 2**20, peak
    monkeypatch.setattr(mfcc_module, "_BLOCK_SAMPLES", 3 * cfg.n_fft)  # three frames a block
    np.testing.assert_allclose(mfcc(x, 16000, cfg), feats, rtol=1e-12, atol=1e-12)  # BLAS rounds by block


def test_windows_and_shifts_over_one_second_are_refused_with_the_settings():
    """Bug: window_ms=250000.0 (HTK's WINDOWSIZE, in 100 ns units, taken for ms) was accepted, and
    frames of 4M samples were met only when audio arrived. An analysis frame is tens of ms (Kaldi
    and HTK use 25); over 1 s is a units mistake, refused before any audio is read."""
    for field in ("window_ms", "shift_ms"):
        with pytest.raises(InvalidParameterError, match=rf"{field}=250000 .*at most 1000 ms.*100 ns"):
            FeatureConfig(**{field: 250000.0})
        with pytest.raises(InvalidParameterError, match=rf"{field}=1000.5"):
            FeatureConfig(**{field: 1000.5})
    assert FeatureConfig(window_ms=1000.0, shift_ms=1000.0).frame_length == 16000


@pytest.mark.parametrize("snip_edges", [True, False])
def test_a_shift_longer_than_the_window_skips_samples_as_in_kaldi(snip_edges):
    """Kaldi allows --frame-shift over --frame-length (frames then leave gaps); frame t still
    starts at t S (snip_edges) or is centred on t S + S / 2, and the count is Kaldi's."""
    cfg = FeatureConfig(sample_rate_hz=8000, n_mels=23, window_ms=20.0, shift_ms=50.0,
                        snip_edges=snip_edges)
    L, S, n = 160, 400, 8123
    x = _noise(n)
    feats = mfcc(x, 8000, cfg)
    assert feats.shape[0] == (1 + (n - L) // S if snip_edges else (n + S // 2) // S)
    if snip_edges:
        for t in (0, 1, feats.shape[0] - 1):
            np.testing.assert_allclose(feats[t], mfcc(x[t * S:t * S + L], 8000, cfg)[0], rtol=1e-10)


def test_dither_draws_fresh_noise_per_file(tmp_path):
    """Bug: every file of a length got the same noise (one seed for all)."""
    cfg = FeatureConfig(sample_rate_hz=8000, n_mels=23, dither=1e-3, dither_seed=7)
    x = np.zeros(4000)
    y = x.copy()
    y[-1] = 0.5  # past the last frame (47 * 80 + 200 = 3960): the frames of x and y are equal
    plain = cfg.replace(dither=0.0)
    np.testing.assert_array_equal(mfcc(x, 8000, plain), mfcc(y, 8000, plain))
    assert not np.allclose(mfcc(x, 8000, cfg), mfcc(y, 8000, cfg))
    # reproducible per file, whatever shares the batch
    paths = [_write(tmp_path / f"{i}.wav", seed=i) for i in range(3)]
    full = cfg.replace(delta_order=2)
    alone, _ = extract_many(paths[2:], full)
    batch, _ = extract_many(paths[::-1], full, n_jobs=2)
    np.testing.assert_array_equal(alone[str(paths[2])], batch[str(paths[2])])
    np.testing.assert_array_equal(alone[str(paths[2])], extract_features(paths[2], full))


def test_mfcc_input_errors():
    cfg = FeatureConfig(sample_rate_hz=8000, n_mels=23)
    with pytest.raises(InvalidParameterError, match="8000"):
        mfcc(_noise(4000), 16000, cfg)
    with pytest.raises(InvalidInputError, match="1-D"):
        mfcc(np.zeros((2, 4000)), 8000, cfg)
    bad = _noise(4000)
    bad[3] = np.nan
    with pytest.raises(NonFiniteInputError):
        mfcc(bad, 8000, cfg)
    with pytest.raises(AudioError, match="too short"):
        mfcc(np.zeros(199), 8000, cfg)
    assert mfcc(np.zeros(200), 8000, cfg).shape == (1, 13)


# --- deltas --------------------------------------------------------------------

def test_delta_of_linear_ramp_is_its_slope():
    t = np.arange(30, dtype=float)[:, None]
    x = np.hstack([3.0 * t - 5, -0.5 * t, np.full_like(t, 2.0)])
    for w in (1, 2, 3):
        d = deltas(x, window=w)
        np.testing.assert_allclose(d[w:-w], np.tile([3.0, -0.5, 0.0], (30 - 2 * w, 1)), atol=1e-12)
        np.testing.assert_allclose(d[:, 2], 0.0)
    # edge replication: the first frame sees c_{-1} = c_{-2} = c_0
    np.testing.assert_allclose(deltas(x, 2)[0, 0], (1 * 3 + 2 * 6) / 10)


def test_acceleration_of_a_parabola():
    t = np.arange(40, dtype=float)[:, None]
    full = add_deltas(t**2, order=2, window=2)
    assert full.shape == (40, 3)
    np.testing.assert_array_equal(full[:, :1], t**2)
    np.testing.assert_allclose(full[2:-2, 1], 2 * t[2:-2, 0])  # d/dt t^2 = 2t
    np.testing.assert_allclose(full[4:-4, 2], 2.0)
    assert add_deltas(t, order=0).shape == (40, 1)


# --- CMVN ----------------------------------------------------------------------

def test_cmvn_zero_mean_unit_variance_and_constant_columns():
    x = RNG.normal(loc=[5, -3, 0], scale=[2, 0.1, 1], size=(200, 3))
    x[:, 2] = 4.0
    y = cmvn(x)
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(y.std(axis=0), [1, 1, 0], atol=1e-12)
    assert np.isfinite(y).all()
    z = cmvn(x, variance=False)
    np.testing.assert_allclose(z, x - x.mean(axis=0))


def test_cmvn_ignores_per_column_affine_changes():
    x = RNG.normal(size=(100, 4))
    scale, shift = np.array([0.5, 2.0, 10.0, 1e-3]), np.array([-3.0, 0.0, 7.0, 1e6])
    np.testing.assert_allclose(cmvn(x * scale + shift), cmvn(x), atol=1e-6)


def test_cmvn_per_speaker_pools_each_speakers_utterances():
    utts = [RNG.normal(loc=m, size=(n, 4)) for m, n in ((1, 50), (9, 30), (1, 70), (-4, 20))]
    spk = ["a", "b", "a", "c"]
    out = cmvn_per_speaker(utts, spk)
    pooled_a = np.concatenate([out[0], out[2]])
    np.testing.assert_allclose(pooled_a.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(pooled_a.std(axis=0), 1, atol=1e-12)
    assert abs(out[0].mean()) > 1e-6  # each utterance alone is not centred
    np.testing.assert_allclose(out[1], cmvn(utts[1]))
    np.testing.assert_allclose(out[3], cmvn(utts[3]))
    with pytest.raises(InvalidInputError, match="speaker ids"):
        cmvn_per_speaker(utts, spk[:3])


# --- config --------------------------------------------------------------------

def test_config_round_trips_through_dict_json_and_toml():
    cfg = FeatureConfig(sample_rate_hz=8000, n_mels=23, high_freq_hz=-200.0, window="povey")
    assert FeatureConfig.from_dict(cfg.to_dict()) == cfg
    assert FeatureConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    toml = "\n".join(f"{k} = {json.dumps(v)}" for k, v in FeatureConfig.fsdd().to_dict().items())
    assert FeatureConfig.from_dict(tomllib.loads(toml)) == FeatureConfig.fsdd()
    assert cfg.high_freq_effective_hz == 3800.0
    assert (cfg.frame_length, cfg.frame_shift, cfg.n_fft, cfg.n_features) == (200, 80, 256, 39)
    assert FeatureConfig.from_dict(FeatureConfig.htk().to_dict()) == FeatureConfig.htk()
    with pytest.raises(AttributeError):
        cfg.n_mels = 40  # frozen


def test_config_rejects_unknown_keys_and_bad_values():
    with pytest.raises(InvalidParameterError, match=r"unknown feature setting.*'n_mel'"):
        FeatureConfig.from_dict({"n_mel": 23})
    bad = [
        {"window": "kaiser"}, {"energy": "both"}, {"cmvn": "global"}, {"window_ms": 0},
        {"sample_rate_hz": 8000.5}, {"high_freq_hz": 9000.0}, {"low_freq_hz": 8000.0},
        {"n_ceps": 30}, {"preemphasis": 1.5}, {"dither": -1.0}, {"delta_window": 0},
        {"remove_dc": "yes"}, {"preemphasis": float("nan")}, {"spectrum": "energy"}, {"dct_norm": "ortho"},
    ]
    for kwargs in bad:
        with pytest.raises(InvalidParameterError):
            FeatureConfig(**kwargs)


def test_sample_rate_rule_is_the_same_everywhere(tmp_path):
    """FeatureConfig, load_audio and extract_features share one rate check (and message)."""
    path = tmp_path / "a.wav"
    sf.write(path, _noise(800), 8000)
    calls = [lambda r: FeatureConfig(sample_rate_hz=r), lambda r: load_audio(path, r),
             lambda r: extract_features(_noise(800), FeatureConfig.fsdd(), sample_rate_hz=r)]
    for rate in (0, -8000, 10**12, 8000.5, True, "8000"):
        for call in calls:
            with pytest.raises(InvalidParameterError,
                               match=r"sample_rate_hz must be an integer >= 1 and at most 1000000"):
                call(rate)
    assert load_audio(path, np.int64(8000))[1] == 8000  # numpy integers are rates too ...
    assert extract_features(_noise(800), FeatureConfig.fsdd(), sample_rate_hz=np.int32(8000)).shape[0] == 8
    with pytest.raises(InvalidParameterError, match="sample_rate_hz must be a plain int, got int64"):
        FeatureConfig(sample_rate_hz=np.int64(8000))  # ... but a config holds plain ints (JSON / TOML)


# --- pipeline ------------------------------------------------------------------

def _write(path, seconds=0.5, rate=8000, seed=0):
    sf.write(path, _noise(int(rate * seconds), seed), rate, subtype="PCM_16")
    return path


def test_extract_features_pipeline_matches_its_parts(tmp_path):
    cfg = FeatureConfig.fsdd()
    path = _write(tmp_path / "a.wav")
    feats = extract_features(path, cfg)
    signal = sf.read(path, dtype="float64")[0]
    expected = cmvn(add_deltas(mfcc(signal, 8000, cfg), 2, 2))
    np.testing.assert_array_equal(feats, expected)  # bit for bit
    assert feats.shape == (1 + (4000 - 200) // 80, 39)
    np.testing.assert_array_equal(extract_features(signal, cfg, sample_rate_hz=8000), feats)
    raw = extract_features(path, cfg.replace(cmvn="none", delta_order=0))
    np.testing.assert_array_equal(raw, mfcc(signal, 8000, cfg))
    with pytest.raises(InvalidParameterError, match="sample_rate_hz"):
        extract_features(signal, cfg)
    with pytest.raises(InvalidInputError, match="1-D"):
        extract_features(np.stack([signal, signal]), cfg, sample_rate_hz=8000)
    with pytest.raises(NonFiniteInputError):
        extract_features(np.full(4000, np.inf), cfg, sample_rate_hz=8000)
    assert extract_features(np.repeat(signal, 2), cfg, sample_rate_hz=16000).shape == feats.shape


def test_extract_features_checks_its_input_once(tmp_path, monkeypatch):
    # import_module: gmmhmm.features.cmvn etc. are also the names of functions
    cmvn_mod, deltas_mod, mfcc_mod, pipeline_mod = (importlib.import_module(f"gmmhmm.features.{m}")
                                                    for m in ("cmvn", "deltas", "mfcc", "pipeline"))

    cfg = FeatureConfig.fsdd()
    path = _write(tmp_path / "a.wav")
    signal = sf.read(path, dtype="float64")[0]
    want = {"file": extract_features(path, cfg), "signal": extract_features(signal, cfg, sample_rate_hz=8000)}

    def unexpected(*args, **kwargs):
        raise AssertionError("inner step re-validated its input")

    checked = []
    as_signal = pipeline_mod._as_signal
    for module in (cmvn_mod, deltas_mod):
        monkeypatch.setattr(module, "check_array", unexpected)
    monkeypatch.setattr(mfcc_mod, "_as_signal", unexpected)
    monkeypatch.setattr(mfcc_mod, "_check_signal", unexpected)
    monkeypatch.setattr(pipeline_mod, "_as_signal", lambda x: checked.append(1) or as_signal(x))
    np.testing.assert_array_equal(extract_features(path, cfg), want["file"])
    assert checked == []  # load_audio's checks suffice
    np.testing.assert_array_equal(extract_features(signal, cfg, sample_rate_hz=8000), want["signal"])
    assert checked == [1]


def test_extract_many_reports_bad_files_and_goes_on(tmp_path, caplog):
    paths = [_write(tmp_path / f"{i}.wav", seed=i) for i in range(4)]
    (tmp_path / "bad.wav").write_text("not audio")
    paths.insert(2, tmp_path / "bad.wav")
    cfg = FeatureConfig.fsdd()
    with caplog.at_level(logging.WARNING, logger="gmmhmm"):
        feats, failures = extract_many(paths, cfg, progress=True)
    assert list(feats) == [str(p) for p in paths if p.name != "bad.wav"]
    assert len(failures) == 1 and failures[0][0] == str(tmp_path / "bad.wav")
    assert "unreadable" in failures[0][1] and "bad.wav" in caplog.text
    np.testing.assert_array_equal(feats[str(paths[0])], extract_features(paths[0], cfg))
    feats2, failures2 = extract_many(paths, cfg, n_jobs=2)
    assert failures2 == failures
    for k in feats:
        np.testing.assert_array_equal(feats2[k], feats[k])


def test_extract_many_speaker_cmvn(tmp_path):
    """Without a utt2spk map each file is its own speaker; with one, statistics pool per speaker."""
    paths = [_write(tmp_path / f"{spk}_{i}.wav", seed=i) for spk in "ab" for i in range(2)]
    cfg = FeatureConfig.fsdd().replace(cmvn="speaker")
    own, _ = extract_many(paths, cfg)
    for p in paths:
        np.testing.assert_array_equal(own[str(p)], extract_features(p, cfg.replace(cmvn="utterance")))
    feats, _ = extract_many(paths, cfg, utt2spk=lambda p: p.rsplit("/", 1)[-1][0])
    pooled = np.concatenate([feats[str(p)] for p in paths[:2]])
    np.testing.assert_allclose(pooled.mean(axis=0), 0, atol=1e-10)
    np.testing.assert_allclose(pooled.std(axis=0), 1, atol=1e-10)


# --- feature files -------------------------------------------------------------

def test_feature_file_round_trip_is_exact(tmp_path):
    feats = {f"utt{i}": RNG.normal(size=(n, 39)) for i, n in enumerate((5, 1, 17))}
    meta = {"config": FeatureConfig.fsdd().to_dict(), "note": "ok"}
    path = tmp_path / "feats.npz"
    save_features(path, feats, meta)
    back, meta2 = load_features(path)
    assert list(back) == list(feats) and meta2 == meta
    for k in feats:
        assert back[k].tobytes() == feats[k].tobytes()
    assert FeatureConfig.from_dict(meta2["config"]) == FeatureConfig.fsdd()


def test_feature_file_of_no_utterances_and_of_empty_ones(tmp_path):
    save_features(tmp_path / "none.npz", {})
    assert load_features(tmp_path / "none.npz") == ({}, {})
    save_features(tmp_path / "empty.npz", {"a": np.zeros((0, 3)), "b": np.ones((2, 3))})
    back, _ = load_features(tmp_path / "empty.npz")
    assert back["a"].shape == (0, 3) and back["b"].shape == (2, 3)


def test_feature_file_in_the_documented_layout_loads(tmp_path):
    X = np.arange(12.0).reshape(4, 3)
    path = write_packed_npz(tmp_path / "f.npz", {"format": "gmmhmm-features", "version": 1, "names": ["a", "b"],
                                             "metadata": {"k": 1}}, X, [1, 3])
    back, meta = load_features(path)
    assert meta == {"k": 1} and list(back) == ["a", "b"]
    np.testing.assert_array_equal(back["b"], X[1:])


@pytest.mark.parametrize("names, lengths, features", [
    (["a", "b"], [1, 2], np.zeros((4, 3))),   # lengths do not cover the frames
    (["a"], [1, 3], np.zeros((4, 3))),        # fewer names than utterances
    (["a", "b"], [-1, 5], np.zeros((4, 3))),  # negative length
    (["a", "b"], [1, 3], np.zeros(4)),        # frames not 2-D
    ("ab", [1, 3], np.zeros((4, 3))),         # names not a list
    (["a", "a"], [1, 3], np.zeros((4, 3))),   # a name twice: one utterance would be dropped unsaid
    ([["a"], "b"], [1, 3], np.zeros((4, 3))), # a name that is not a string (a TypeError)
    ([1, 2], [1, 3], np.zeros((4, 3))),       # nor are numbers names
])
def test_feature_file_whose_parts_disagree_is_corrupt(tmp_path, names, lengths, features):
    path = write_packed_npz(tmp_path / "f.npz", {"format": "gmmhmm-features", "version": 1, "names": names,
                                             "metadata": {}}, features, lengths)
    with pytest.raises(ModelFileError, match=r"corrupt feature file \(names, lengths and data disagree\)"):
        load_features(path)


def test_feature_file_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="same dimension"):
        save_features(tmp_path / "x.npz", {"a": np.zeros((2, 3)), "b": np.zeros((2, 4))}, {})
    with pytest.raises(InvalidInputError, match="JSON"):
        save_features(tmp_path / "x.npz", {"a": np.zeros((2, 3))}, {"bad": object()})
    assert not (tmp_path / "x.npz").exists()
    np.savez(tmp_path / "plain.npz", features=np.zeros((2, 2)))
    with pytest.raises(ModelFileError, match="not a gmmhmm file"):
        load_features(tmp_path / "plain.npz")
    path = tmp_path / "f.npz"
    save_features(path, {"a": np.ones((3, 2))}, {})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError):
        load_features(path)


# --- real recordings -------------------------------------------------------------

@pytest.mark.integration
def test_fsdd_recordings(fsdd_path):
    paths = sorted((fsdd_path / "recordings").glob("*_jackson_*.wav"))[:5]
    cfg = FeatureConfig.fsdd()
    feats, failures = extract_many(paths, cfg)
    assert failures == [] and len(feats) == 5
    for p in paths:
        x = feats[str(p)]
        n = sf.info(p).frames
        assert x.shape == (1 + (n - 200) // 80, 39)
        assert np.isfinite(x).all()
        np.testing.assert_allclose(x.mean(axis=0), 0, atol=1e-8)


# --- frame sizes, HTK ----------------------------------------------------------

def test_frame_length_and_shift_truncate_like_kaldi():
    """Kaldi: ``static_cast<int32>(samp_freq * 0.001 * ms)``; rounding gave 410 and 138 here."""
    cfg = FeatureConfig(sample_rate_hz=16000, window_ms=25.6, shift_ms=10.0)
    assert (cfg.frame_length, cfg.frame_shift) == (409, 160)
    cfg = FeatureConfig(sample_rate_hz=11025, window_ms=25.0, shift_ms=12.5)
    assert (cfg.frame_length, cfg.frame_shift) == (275, 137)  # 275.625 and 137.8125
    assert cfg.frame_shift_s == 137 / 11025
    # (one filter: more would cover no bin of the 4-point FFT)
    assert FeatureConfig(sample_rate_hz=10000, window_ms=0.3, shift_ms=0.2, n_mels=1,
                         n_ceps=1).frame_length == 3  # not 2.999...
    x = _noise(11025)
    assert mfcc(x, 11025, cfg).shape[0] == 1 + (11025 - 275) // 137


def _hcopy_mfcc_0(samples_int16: np.ndarray, rate: int, n_chans: int = 26, n_ceps: int = 12,
                  lifter: int = 22, preemph: float = 0.97) -> np.ndarray:
    """HTK HCopy's MFCC_0 by hand, after HSigP.c: HTK's own filter weights (loChan / loWt), rows
    ``c1..c12, C0`` as HCopy writes them, in int16 sample units."""
    size, shift = int(rate * 0.025), int(rate * 0.010)
    fft_n = 2
    while size > fft_n:
        fft_n *= 2
    n_by_2 = fft_n // 2
    fres = rate / (fft_n * 700.0)
    mel = lambda k: 1127 * np.log(1 + (k - 1) * fres)  # noqa: E731  (HTK's Mel(k, fres), k from 1)
    mlo, mhi = 0.0, 1127 * np.log(1 + (rate / 2) / 700.0)
    cf = [mlo + (c / (n_chans + 1)) * (mhi - mlo) for c in range(1, n_chans + 2)]  # cf[0] is channel 1
    klo, khi = 2, n_by_2
    lo_chan, lo_wt = {}, {}
    for k in range(klo, khi + 1):
        melk, chan = mel(k), 0
        while chan < n_chans + 1 and cf[chan] < melk:
            chan += 1
        lo_chan[k] = chan  # HTK loChan: the channel below melk (0: none)
        lo_wt[k] = ((cf[chan] - melk) / (cf[chan] - (cf[chan - 1] if chan > 0 else mlo))) if chan <= n_chans else 0.0
    ham = 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(size) / (size - 1))
    rows = []
    for start in range(0, len(samples_int16) - size + 1, shift):
        s = samples_int16[start:start + size].astype(float)
        s[1:] = s[1:] - preemph * s[:-1]
        s[0] *= 1 - preemph
        spec = np.fft.fft(np.concatenate([s * ham, np.zeros(fft_n - size)]))
        fbank = np.zeros(n_chans + 1)  # index 1..n_chans
        for k in range(klo, khi + 1):
            ek = abs(spec[k - 1])
            bin_ = lo_chan[k]  # HTK: t1 = loWt*ek to channel bin, the rest to bin + 1
            t1 = lo_wt[k] * ek
            if bin_ > 0:
                fbank[bin_] += t1
            if bin_ < n_chans:
                fbank[bin_ + 1] += ek - t1
        logf = np.log(np.maximum(fbank[1:], 1.0))
        norm = np.sqrt(2.0 / n_chans)
        c = [norm * sum(logf[k - 1] * np.cos(np.pi * j / n_chans * (k - 0.5)) for k in range(1, n_chans + 1))
             for j in range(1, n_ceps + 1)]
        c = [cj * (1 + lifter / 2 * np.sin(np.pi * j / lifter)) for j, cj in enumerate(c, 1)]
        rows.append(c + [norm * logf.sum()])
    return np.array(rows)


def test_htk_preset_matches_hcopy_by_hand():
    rate = 8000
    samples = np.round(np.random.default_rng(5).normal(scale=3000, size=2400)).astype(np.int16)
    want = _hcopy_mfcc_0(samples, rate)
    cfg = FeatureConfig.htk(sample_rate_hz=rate)
    assert (cfg.remove_dc, cfg.spectrum, cfg.dct_norm, cfg.preemphasis, cfg.cep_lifter, cfg.n_mels) == (
        False, "magnitude", "htk", 0.97, 22.0, 26)
    got = mfcc(samples / 32768.0, rate, cfg)
    assert got.shape == (want.shape[0], 13)
    np.testing.assert_allclose(got[:, 1:], want[:, :12], rtol=1e-9, atol=1e-9)  # c1..c12
    # C0: gmmhmm's samples are int16 / 32768, a constant in every log filter output
    np.testing.assert_allclose(got[:, 0], want[:, 12] - np.sqrt(2 * 26) * np.log(32768), rtol=1e-9)
    # what each HTK setting changes: the orthonormal c0 is 1/sqrt(2) of HTK's
    ortho = mfcc(samples / 32768.0, rate, cfg.replace(dct_norm="orthonormal"))
    np.testing.assert_allclose(ortho[:, 0], got[:, 0] / np.sqrt(2), rtol=1e-12)
    np.testing.assert_array_equal(ortho[:, 1:], got[:, 1:])


def test_integer_samples_are_refused_not_taken_as_full_scale():
    """Signals are in full-scale units (what soundfile.read gives); int16 samples taken as they are
    gave features 20.8 nats of log energy away from the same audio read from a file. As librosa,
    integer arrays are refused with the conversion named."""
    samples = np.round(np.random.default_rng(5).normal(scale=3000, size=2400)).astype(np.int16)
    for signal in (samples, samples.astype(np.int32), list(map(int, samples))):
        with pytest.raises(InvalidInputError, match="floating-point.*32768"):
            mfcc(signal, 8000)
        with pytest.raises(InvalidInputError, match="floating-point"):
            extract_features(signal, FeatureConfig(sample_rate_hz=8000), sample_rate_hz=8000)
    assert np.isfinite(mfcc(samples / 32768.0, 8000)).all()
