"""VTLN: Kaldi's piecewise-linear warp, the warped filterbank, and the maximum-likelihood warp search."""

import numpy as np
import pytest

from gmmhmm import GaussianMixture
from gmmhmm.adapt import estimate_vtln_warps, train_vtln, vtln_warp_grid, warped_features
from gmmhmm.errors import InvalidInputError, InvalidParameterError
from gmmhmm.features import FeatureConfig, apply_cmvn, compute_cmvn_stats, extract_features, mel_filterbank
from gmmhmm.features import mel_band_edges_hz, vtln_warp_freq
from gmmhmm.features.mfcc import hz_to_mel


# --- the warp function -------------------------------------------------------------------------
def test_warp_by_hand():
    # Kaldi VtlnWarpFreq, warp 1.1: l = 100 * 1.1 = 110, h = 3500 * 1 = 3500, scale 1/1.1.
    args = dict(vtln_low_hz=100.0, vtln_high_hz=3500.0, low_freq_hz=0.0, high_freq_hz=4000.0)
    f = np.array([55.0, 1000.0, 3800.0, 4000.0, 0.0])
    got = vtln_warp_freq(f, 1.1, **args)
    low_end = 110 / 1.1 / 110 * 55          # 0 + (Fl - 0) / (l - 0) * 55, Fl = l / 1.1
    high_end = 4000 + (3500 / 1.1 - 4000) / (3500 - 4000) * (3800 - 4000)
    np.testing.assert_allclose(got, [low_end, 1000 / 1.1, high_end, 4000.0, 0.0])


@pytest.mark.parametrize("warp", [0.8, 0.93, 1.0, 1.07, 1.2])
def test_warp_is_continuous_increasing_and_keeps_the_band(warp):
    f = np.linspace(20.0, 7600.0, 20001)
    w = vtln_warp_freq(f, warp, 100.0, 7100.0, 20.0, 7600.0)
    assert w[0] == pytest.approx(20.0) and w[-1] == pytest.approx(7600.0)
    assert np.all(np.diff(w) > 0)
    for knee in (100.0 * max(1.0, warp), 7100.0 * min(1.0, warp)):  # no jump at either inflection point
        below, above = vtln_warp_freq([knee - 1e-6, knee + 1e-6], warp, 100.0, 7100.0, 20.0, 7600.0)
        assert above - below < 1e-4
    if warp == 1.0:
        np.testing.assert_allclose(w, f)
    mid = (f > 200) & (f < 5000)
    np.testing.assert_allclose(w[mid], f[mid] / warp)


def test_frequencies_outside_the_band_are_not_moved():
    np.testing.assert_allclose(vtln_warp_freq([10.0, 7900.0], 1.2, 100.0, 7100.0, 20.0, 7600.0), [10.0, 7900.0])


@pytest.mark.parametrize("bad", [dict(warp=0.0), dict(vtln_low_hz=10.0), dict(vtln_high_hz=7700.0),
                                 dict(vtln_low_hz=5000.0, vtln_high_hz=4000.0)])
def test_bad_warp_settings_are_refused(bad):
    args = dict(warp=1.1, vtln_low_hz=100.0, vtln_high_hz=7100.0, low_freq_hz=20.0, high_freq_hz=7600.0) | bad
    with pytest.raises(InvalidParameterError):
        vtln_warp_freq(1000.0, **args)


# --- the warped filterbank and front end ---------------------------------------------------------
def test_warped_filters_peak_at_the_warped_centres():
    sr, n_fft, n_mels = 16000, 4096, 23
    centres = mel_band_edges_hz(n_mels, 20.0, 8000.0)[1:-1]
    fb = mel_filterbank(sr, n_fft, n_mels, 20.0, 8000.0, vtln_warp=1.1, vtln_low_hz=100.0, vtln_high_hz=7500.0)
    peaks = np.argmax(fb, axis=1) * sr / n_fft
    want = vtln_warp_freq(centres, 1.1, 100.0, 7500.0, 20.0, 8000.0)
    np.testing.assert_allclose(peaks, want, atol=sr / n_fft)
    assert np.all(peaks[5:] < centres[5:])  # warp > 1 moves the filters down
    # still triangles in mel between the warped edges: peak 1, zero outside
    assert np.allclose(fb.max(axis=1), 1.0, atol=0.05)
    edges = vtln_warp_freq(mel_band_edges_hz(n_mels, 20.0, 8000.0), 1.1, 100.0, 7500.0, 20.0, 8000.0)
    bins = np.arange(n_fft // 2 + 1) * sr / n_fft
    outside = (bins[None, :] <= edges[:-2, None]) | (bins[None, :] >= edges[2:, None])
    assert np.all(fb[outside] == 0)
    mel = hz_to_mel(bins)
    k = 10
    rising = (mel > hz_to_mel(edges[k])) & (mel < hz_to_mel(edges[k + 1]))
    np.testing.assert_allclose(fb[k, rising], (mel[rising] - hz_to_mel(edges[k]))
                               / (hz_to_mel(edges[k + 1]) - hz_to_mel(edges[k])))


def test_no_warp_is_the_plain_filterbank_and_config():
    plain = mel_filterbank(8000, 256, 23, 20.0, 4000.0)
    np.testing.assert_array_equal(mel_filterbank(8000, 256, 23, 20.0, 4000.0, vtln_warp=1.0), plain)
    # files written before VTLN existed carry dicts without it: they still compare equal
    assert "vtln_warp" not in FeatureConfig.fsdd().to_dict()
    warped = FeatureConfig.fsdd().replace(vtln_warp=0.9)
    assert warped.to_dict()["vtln_warp"] == 0.9
    assert FeatureConfig.from_dict(warped.to_dict()) == warped


@pytest.mark.parametrize("bad", [dict(vtln_warp=0.3), dict(vtln_warp=float("nan")), dict(vtln_low_hz=10.0),
                                 dict(vtln_high_hz=4500.0), dict(vtln_high_hz=-4000.0), dict(vtln_low_hz="x")])
def test_feature_config_refuses_bad_vtln_settings(bad):
    with pytest.raises(InvalidParameterError, match="vtln"):
        FeatureConfig.fsdd().replace(vtln_warp=bad.pop("vtln_warp", 1.1), **bad)


def test_inflection_points_matter_only_with_a_warp():
    # as in Kaldi: a filterbank starting above vtln_low_hz is fine until something warps it
    config = FeatureConfig.fsdd().replace(low_freq_hz=150.0)
    with pytest.raises(InvalidParameterError, match="vtln_low_hz"):
        config.replace(vtln_warp=0.9)
    assert config.replace(vtln_warp=0.9, vtln_low_hz=200.0).vtln_warp == 0.9


# --- the warp search -----------------------------------------------------------------------------
def test_warp_grid():
    np.testing.assert_allclose(vtln_warp_grid(0.9, 1.1, 0.05), [0.9, 0.95, 1.0, 1.05, 1.1])
    assert len(vtln_warp_grid()) == 21
    with pytest.raises(InvalidParameterError):
        vtln_warp_grid(0.95, 1.1, 0.1)  # misses 1.0
    with pytest.raises(InvalidParameterError):
        vtln_warp_grid(1.05, 1.2)
    # a range that is not a whole number of steps stops at the last step inside it, never past max_warp
    np.testing.assert_allclose(vtln_warp_grid(0.8, 1.16, 0.1), [0.8, 0.9, 1.0, 1.1])
    np.testing.assert_allclose(vtln_warp_grid(0.9, 1.19, 0.1), [0.9, 1.0, 1.1])


def test_search_picks_the_factor_a_brute_force_likelihood_prefers():
    rng = np.random.default_rng(0)
    gmm = GaussianMixture(4, covariance_type="diag", random_state=0).fit(rng.standard_normal((2000, 3)))
    true = {"a": 0.9, "b": 1.06, "c": 1.0}
    base = {f"{s}{i}": rng.standard_normal((50, 3)) for s in true for i in range(3)}
    utt2spk = {u: u[0] for u in base}

    def features_at(warp, utts):  # features drift away from the GMM's data as the warp leaves the true one
        return {u: base[u] + 4.0 * (warp - true[utt2spk[u]]) for u in utts}

    grid = vtln_warp_grid(0.86, 1.1, 0.02)
    res = estimate_vtln_warps(gmm, features_at, utt2spk, grid)
    brute = {s: grid[np.argmax([sum(gmm.score_samples(x).sum() for u, x in features_at(w, list(base)).items()
                                    if utt2spk[u] == s) for w in grid])] for s in true}
    assert res.warps == pytest.approx(brute)
    assert res.warps == pytest.approx(true)
    assert set(res.scores) == set(true) and res.scores["a"].shape == grid.shape


class _CountingModel:
    """A GMM that records the largest number of frames it was asked to score at once."""

    def __init__(self, gmm):
        self.gmm, self.most = gmm, 0

    def score_samples(self, X):
        self.most = max(self.most, len(X))
        return self.gmm.score_samples(X)


def _many_frames(seed: int):
    """A GMM and the features of three speakers, utterances of uneven lengths, speakers interleaved."""
    rng = np.random.default_rng(seed)
    gmm = GaussianMixture(8, covariance_type="diag", random_state=0).fit(rng.standard_normal((3000, 4)))
    shift = {"a": 0.94, "b": 1.06, "c": 1.0}
    base = {f"{s}{i}": rng.standard_normal((int(rng.integers(1, 9000)), 4)) for i in range(6) for s in shift}
    utt2spk = {u: u[0] for u in base}

    def features_at(warp, utts):
        return {u: base[u] + 3.0 * (warp - shift[utt2spk[u]]) for u in utts}

    return gmm, features_at, utt2spk, base


def test_warp_scoring_holds_a_bounded_block_of_frames_whatever_the_audio():
    """Bug: every frame of every speaker was scored at once, an (n_frames, n_components) matrix
    that grew with the audio (~300 MB for an hour at 128 components)."""
    import gmmhmm.adapt.vtln as vtln

    gmm, features_at, utt2spk, base = _many_frames(3)
    assert sum(map(len, base.values())) > 4 * vtln._SCORE_FRAMES  # more audio than one block
    model = _CountingModel(gmm)
    estimate_vtln_warps(model, features_at, utt2spk, [0.96, 1.0, 1.04])
    assert 0 < model.most <= vtln._SCORE_FRAMES


def test_block_size_changes_neither_scores_nor_warps(monkeypatch):
    """Per-speaker sums of per-frame log-likelihoods are additive: scoring in blocks of any size
    (utterances cut across blocks, speakers sharing blocks) gives the one-shot scores up to
    rounding, and the same warps."""
    import gmmhmm.adapt.vtln as vtln

    gmm, features_at, utt2spk, base = _many_frames(4)
    grid = vtln_warp_grid(0.9, 1.1, 0.02)
    one_shot = {s: [gmm.score_samples(np.concatenate([x for u, x in features_at(w, list(base)).items()
                                                      if utt2spk[u] == s])).mean() for w in grid]
                for s in ("a", "b", "c")}  # each speaker's frames at each warp, all at once
    for block in (1000, 4097, 10**9):
        monkeypatch.setattr(vtln, "_SCORE_FRAMES", block)
        res = estimate_vtln_warps(gmm, features_at, utt2spk, grid)
        for s, scores in one_shot.items():
            np.testing.assert_allclose(res.scores[s], scores, rtol=1e-12)
        assert res.warps == pytest.approx({"a": 0.94, "b": 1.06, "c": 1.0})


def test_warp_scoring_reads_a_few_utterances_at_a_time(monkeypatch):
    """Bug: each warp's features were asked of ``features_at`` for every utterance at once, so with
    features kept on disk (:func:`features_on_disk`) one warp of the whole corpus was read into
    memory. Now a few utterances at a time, with the scores and warps of the one-shot reading."""
    import gmmhmm.adapt.vtln as vtln

    gmm, features_at, utt2spk, base = _many_frames(5)
    grid = vtln_warp_grid(0.9, 1.1, 0.02)
    monkeypatch.setattr(vtln, "_READ_UTTERANCES", 10**9, raising=False)
    whole = estimate_vtln_warps(gmm, features_at, utt2spk, grid)
    most = []

    def spy(warp, utts):
        most.append(len(utts))
        return features_at(warp, utts)

    monkeypatch.setattr(vtln, "_READ_UTTERANCES", 4, raising=False)
    res = estimate_vtln_warps(gmm, spy, utt2spk, grid)
    assert 0 < max(most) <= 4
    assert res.warps == whole.warps
    for s in whole.scores:
        np.testing.assert_allclose(res.scores[s], whole.scores[s], rtol=1e-12)

def test_a_flat_likelihood_keeps_no_warp():
    gmm = GaussianMixture(1, covariance_type="diag", random_state=0).fit(np.random.default_rng(1).normal(size=(100, 2)))
    X = np.ones((10, 2))
    res = estimate_vtln_warps(gmm, lambda w, utts: {u: X for u in utts}, {"u1": "s"})
    assert res.warps == {"s": 1.0}


def test_a_warp_without_features_never_wins():
    """A factor at which a speaker's audio gave no features, or fewer frames than at other factors,
    is not scored (it was log-likelihood 0, which beat every real score): factors compete on the
    same frames only."""
    rng = np.random.default_rng(2)
    gmm = GaussianMixture(1, covariance_type="diag", random_state=0).fit(rng.normal(size=(200, 2)))
    X = {1.0: np.zeros((10, 2)), 1.1: np.full((10, 2), 3.0)}

    def features_at(warp, utts):  # nothing at 0.9 (first of the grid), only u2 at 1.1
        if warp == 0.9:
            return {}
        return {u: X[warp] for u in utts if warp == 1.0 or u == "u2"}

    res = estimate_vtln_warps(gmm, features_at, {"u1": "s", "u2": "s"}, [0.9, 1.0, 1.1])
    assert res.warps == {"s": 1.0}
    assert np.isneginf(res.scores["s"][[0, 2]]).all()
    np.testing.assert_allclose(res.scores["s"][1], gmm.score_samples(X[1.0][:1])[0])


def test_a_speaker_without_frames_is_named():
    gmm = GaussianMixture(1, random_state=0).fit(np.random.default_rng(1).normal(size=(100, 2)))
    with pytest.raises(InvalidInputError, match="'quiet'"):
        estimate_vtln_warps(gmm, lambda w, utts: {u: np.zeros((0, 2)) for u in utts}, {"u1": "quiet"})


def test_warped_features_name_an_utterance_without_speaker():
    with pytest.raises(InvalidInputError, match="'v' has no speaker"):
        warped_features(lambda w, utts: {u: np.ones((5, 2)) for u in utts}, {"s": 0.9}, {"u": "s"}, ["u", "v"])


@pytest.mark.parametrize("grid", [[], [[0.9, 1.0]], [np.nan, 1.0], [0.0, 1.0]])
def test_a_bad_warp_grid_is_named(grid):
    """Not a numpy reduction error, a TypeError or a NaN / zero warp chosen."""
    gmm = GaussianMixture(1, random_state=0).fit(np.random.default_rng(1).normal(size=(100, 2)))
    with pytest.raises(InvalidParameterError, match="grid"):
        estimate_vtln_warps(gmm, lambda w, utts: {u: np.ones((5, 2)) for u in utts}, {"u1": "s"}, grid)


def _vowel(f_formants_hz, f0_hz, sr, seconds, rng, scale=1.0):
    """A vowel-like signal: a glottal pulse train through formant resonators, every frequency times ``scale``
    (a shorter vocal tract and a higher voice raise them all alike)."""
    from scipy.signal import lfilter

    n = int(sr * seconds)
    src = np.zeros(n)
    period = sr / (f0_hz * scale)
    src[(np.arange(0, n, period)).astype(int)] = 1.0
    y = src + 0.01 * rng.standard_normal(n)
    for f in f_formants_hz:
        r = np.exp(-np.pi * 80.0 * scale / sr)
        theta = 2 * np.pi * f * scale / sr
        y = lfilter([1.0], [1.0, -2 * r * np.cos(theta), r * r], y)
    return y / np.max(np.abs(y))


def test_a_speaker_with_every_frequency_raised_is_warped_back():
    """Speaker B is speaker A with every frequency times 1.1: the search finds the warp that moves the
    filters up by 1.1 (Kaldi's factor 1/1.1), under a GMM of A alone."""
    sr = 16000
    rng = np.random.default_rng(0)
    vowels = [(700, 1200, 2600), (300, 2300, 3000), (400, 800, 2400), (550, 1800, 2500), (350, 1000, 2300)]
    audio = {f"A{i}": _vowel(v, 120, sr, 0.5, rng) for i, v in enumerate(vowels)}
    audio |= {f"B{i}": _vowel(v, 120, sr, 0.5, rng, scale=1.1) for i, v in enumerate(vowels)}
    utt2spk = {u: u[0] for u in audio}
    fc = FeatureConfig(sample_rate_hz=sr, n_mels=26, delta_order=0, cmvn="none")

    def features_at(warp, utts):
        raw = {u: extract_features(audio[u], fc.replace(vtln_warp=warp), sample_rate_hz=sr) for u in utts}
        spk = {u: utt2spk[u] for u in utts}
        return apply_cmvn(raw, compute_cmvn_stats(raw, spk), spk, variance=True)

    grid = vtln_warp_grid(0.84, 1.16, 0.02)
    gmm = GaussianMixture(5, covariance_type="diag", random_state=0, reg_covar=1e-3).fit(
        np.concatenate(list(features_at(1.0, [u for u in audio if u[0] == "A"]).values())))
    res = estimate_vtln_warps(gmm, features_at, utt2spk, grid)
    assert res.warps["A"] == pytest.approx(1.0, abs=0.021)
    assert res.warps["B"] == pytest.approx(1 / 1.1, abs=0.021)
    assert res.scores["B"][np.argmin(abs(grid - res.warps["B"]))] > res.scores["B"][np.argmin(abs(grid - 1.0))]


def test_vtln_training_and_warped_features():
    rng = np.random.default_rng(2)
    shift = {"a": 0.92, "b": 1.0, "c": 1.08, "new": 0.96}
    base = {f"{s}{i}": rng.standard_normal((80, 2)) * 0.5 for s in shift for i in range(4)}
    utt2spk = {u: u[:-1] for u in base}
    calls = []

    def features_at(warp, utts):
        calls.append((warp, len(utts)))
        return {u: base[u] + 5.0 * (warp - shift[utt2spk[u]]) for u in utts}

    model_utts = [u for u in base if utt2spk[u] != "new"]
    gmm, res = train_vtln(features_at, utt2spk, model_utts, n_components=2, n_iter=2,
                          grid=vtln_warp_grid(0.88, 1.12, 0.04), random_state=0)
    # relative warps are recovered up to a common offset the GMM cannot see; every speaker is warped
    w = res.warps
    assert set(w) == set(shift)
    assert w["c"] - w["a"] == pytest.approx(0.16) and w["b"] - w["a"] == pytest.approx(0.08)
    assert w["new"] - w["a"] == pytest.approx(0.04)
    feats = warped_features(features_at, w, utt2spk)
    for u, x in feats.items():
        np.testing.assert_allclose(x, base[u] + 5.0 * (w[utt2spk[u]] - shift[utt2spk[u]]))
    assert list(feats) == list(base)


def _train_vtln_on_the_concatenation(features_at, utt2spk, model_utts, n_components, n_iter, grid, random_state):
    """train_vtln as it was: every model frame concatenated into one array for each GMM fit."""
    warps, gmm = {}, None
    for it in range(n_iter + 1):
        feats = warped_features(features_at, warps, utt2spk, model_utts)
        X = np.concatenate([f for f in feats.values() if len(f)])
        gmm = GaussianMixture(n_components, covariance_type="diag", random_state=random_state, max_iter=100,
                              reg_covar=1e-3).fit(X)
        if it < n_iter:
            warps = estimate_vtln_warps(gmm, features_at, utt2spk, grid, model_utts).warps
    return gmm, estimate_vtln_warps(gmm, features_at, utt2spk, grid)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_vtln_training_fits_the_gmm_the_concatenation_gives(monkeypatch, dtype):
    """The warp GMM is fitted block by block (bounded memory) yet equals, to rounding, the fit on
    the concatenation of every model frame: same initialisation (all frames, in utterance order,
    while they number at most the initialisation sample), same EM; hence the same warps and scores.
    Speakers interleaved, utterances of uneven lengths, one empty, blocks cutting utterances."""
    import gmmhmm.adapt.vtln as vtln

    monkeypatch.setattr(vtln, "_FIT_FRAMES", 1000, raising=False)
    rng = np.random.default_rng(11)
    shift = {"a": 0.92, "b": 1.0, "c": 1.08, "d": 0.96}
    base = {f"{s}{i}": (rng.standard_normal((int(rng.integers(0, 700)), 3)) * 0.5).astype(dtype)
            for i in range(5) for s in shift}
    base["b0"] = base["b0"][:0]
    utt2spk = {u: u[0] for u in base}

    def features_at(warp, utts):
        return {u: base[u] + dtype(4.0 * (warp - shift[utt2spk[u]])) for u in utts}

    model_utts = [u for u in base if utt2spk[u] != "d"]
    grid = vtln_warp_grid(0.88, 1.12, 0.04)
    args = dict(n_components=3, n_iter=2, grid=grid, random_state=4)
    want_gmm, want = _train_vtln_on_the_concatenation(features_at, utt2spk, model_utts, **args)
    gmm, got = train_vtln(features_at, utt2spk, model_utts, **args)
    rtol = 1e-4 if dtype == np.float32 else 1e-9
    for name in ("weights_", "means_", "covariances_"):
        want_value = getattr(want_gmm, name)
        np.testing.assert_allclose(getattr(gmm, name), want_value, rtol=rtol, atol=rtol * np.abs(want_value).max(),
                                   err_msg=name)
    assert gmm.n_iter_ == want_gmm.n_iter_
    assert got.warps == want.warps
    for s in want.scores:
        np.testing.assert_allclose(got.scores[s], want.scores[s], rtol=rtol)


def test_vtln_training_never_holds_every_model_frame_at_once(monkeypatch):
    """Bug: the warp GMM was fitted on one array of every model frame (plus k-means' and EM's
    temporaries the size of it), so memory grew with the corpus. Now EM runs over blocks of
    frames and the initialisation over a bounded sample (here 5000 frames of 300000)."""
    import tracemalloc

    import gmmhmm.adapt.vtln as vtln

    monkeypatch.setattr(vtln, "_INIT_FRAMES", 5000, raising=False)
    rng = np.random.default_rng(12)
    base = {f"s{i % 8}-{i}": rng.standard_normal((1000, 8)) + (i % 8) for i in range(300)}
    utt2spk = {u: u.split("-")[0] for u in base}
    corpus_bytes = sum(x.nbytes for x in base.values())

    def features_at(warp, utts):  # the stored arrays themselves: no allocation of the caller's
        return {u: base[u] for u in utts}

    args = dict(n_components=4, n_iter=0, grid=[1.0], random_state=0, max_iter=3)
    train_vtln(features_at, utt2spk, list(base)[:8], **args)  # compiles and imports outside the measure
    tracemalloc.start()
    try:
        gmm, res = train_vtln(features_at, utt2spk, list(base), **args)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert set(res.warps) == {f"s{i}" for i in range(8)}
    assert gmm.means_[:, 0].min() < 2 and gmm.means_[:, 0].max() > 5  # spread over the speakers
    assert peak < corpus_bytes / 4, f"peak {peak / 1e6:.1f} MB for a corpus of {corpus_bytes / 1e6:.1f} MB"

def test_vtln_training_without_model_frames_is_refused():
    """Model utterances that all lost their audio: a clear error (was numpy's ValueError from
    concatenating nothing)."""
    base = {"a1": np.zeros((0, 2)), "b1": np.zeros((0, 2)), "c1": np.ones((50, 2))}
    utt2spk = {u: u[0] for u in base}
    with pytest.raises(InvalidInputError, match="no rows"):
        train_vtln(lambda warp, utts: {u: base[u] for u in utts}, utt2spk, ["a1", "b1"], n_components=2,
                   n_iter=0, grid=[1.0])

# --- the command line ----------------------------------------------------------------------------
def test_cli_estimates_warps_and_features_use_them(tmp_path, capsys):
    """`gmmhmm vtln` gives the raised-frequency speaker the warp that undoes it; `gmmhmm features
    --vtln-map` analyses each speaker at its warp, and a speaker without one fails alone."""
    import soundfile as sf

    from gmmhmm.cli import main
    from gmmhmm.features import load_features

    sr = 16000
    rng = np.random.default_rng(0)
    vowels = [(700, 1200, 2600), (300, 2300, 3000), (400, 800, 2400), (550, 1800, 2500), (350, 1000, 2300)]
    lines = []
    for spk, scale in (("A", 1.0), ("B", 1.1), ("C", 1.0)):
        (tmp_path / spk).mkdir()
        for i, v in enumerate(vowels):
            path = tmp_path / spk / f"{spk}{i}.wav"
            sf.write(path, 0.5 * _vowel(v, 120, sr, 0.5, rng, scale=scale), sr, subtype="PCM_16")
            lines.append(f"{path.stem} {spk}\n")
    (tmp_path / "utt2spk").write_text("".join(lines))
    config = tmp_path / "c.toml"
    config.write_text("[features]\nsample_rate_hz = 16000\nn_mels = 26\ndelta_order = 0\ncmvn = \"speaker\"\n")
    common = ["--utt2spk", str(tmp_path / "utt2spk"), "--config", str(config)]
    rc = main(["vtln", str(tmp_path / "A"), str(tmp_path / "B"), "-o", str(tmp_path / "spk2warp"),
               "--train", str(tmp_path / "A"), "--n-components", "5", "--iters", "0",
               "--min-warp", "0.84", "--max-warp", "1.16", *common])
    assert rc == 0
    warps = {k: float(v) for k, v in (ln.split() for ln in (tmp_path / "spk2warp").read_text().splitlines())}
    assert set(warps) == {"A", "B"}  # C was not asked for
    assert warps["A"] == pytest.approx(1.0, abs=0.021) and warps["B"] == pytest.approx(1 / 1.1, abs=0.021)

    rc = main(["features", str(tmp_path / "A"), str(tmp_path / "B"), str(tmp_path / "C"), "-o",
               str(tmp_path / "f.npz"), "--vtln-map", str(tmp_path / "spk2warp"), *common])
    assert rc == 1 and "no VTLN warp for speaker 'C'" in capsys.readouterr().err
    feats, _ = load_features(tmp_path / "f.npz")
    assert len(feats) == 10
    b_files = sorted((tmp_path / "B").glob("*.wav"))
    fc = FeatureConfig(sample_rate_hz=sr, n_mels=26, delta_order=0, cmvn="speaker")
    raw = {str(p): extract_features(str(p), fc.replace(cmvn="none", vtln_warp=warps["B"])) for p in b_files}
    want = apply_cmvn(raw, compute_cmvn_stats(raw, dict.fromkeys(raw, "B")), dict.fromkeys(raw, "B"))
    key = next(k for k in feats if k.endswith("B0.wav") or k == "B0")
    np.testing.assert_allclose(feats[key], want[str(b_files[0])], atol=1e-10)
    # word-model training reads folders without speakers: it refuses the map rather than ignore it
    assert main(["train", str(tmp_path / "A"), "-o", str(tmp_path / "m.npz"), "--config", str(config),
                 "--vtln-map", str(tmp_path / "spk2warp")]) != 0
    assert "--vtln-map" in capsys.readouterr().err


def test_cli_vtln_skips_a_bad_file_and_refuses_a_map(tmp_path, capsys):
    import soundfile as sf

    from gmmhmm.cli import main

    sr = 16000
    rng = np.random.default_rng(3)
    lines = []
    for spk in ("A", "B"):
        for i, v in enumerate([(700, 1200, 2600), (300, 2300, 3000), (400, 800, 2400)]):
            path = tmp_path / f"{spk}{i}.wav"
            sf.write(path, 0.5 * _vowel(v, 120, sr, 0.4, rng), sr, subtype="PCM_16")
            lines.append(f"{path.stem} {spk}\n")
    (tmp_path / "C0.wav").write_bytes(b"not audio")  # speaker C has only a broken file
    lines.append("C0 C\n")
    (tmp_path / "utt2spk").write_text("".join(lines))
    args = ["vtln", str(tmp_path), "-o", str(tmp_path / "spk2warp"), "--utt2spk", str(tmp_path / "utt2spk"),
            "--n-components", "2", "--iters", "1", "--min-warp", "0.9", "--max-warp", "1.1", "--step", "0.05"]
    assert main(args) == 1
    assert "C0.wav" in capsys.readouterr().err
    assert not list(tmp_path.glob(".vtln-features-*"))  # the per-warp feature cache is removed
    assert sorted(ln.split()[0] for ln in (tmp_path / "spk2warp").read_text().splitlines()) == ["A", "B"]
    (tmp_path / "other_map").write_text((tmp_path / "spk2warp").read_text())
    assert main(args + ["--vtln-map", str(tmp_path / "other_map")]) != 0
    assert "reads none" in capsys.readouterr().err


def test_memoised_features_at_computes_each_warp_once():
    from gmmhmm.adapt import memoised_features_at

    calls = []

    def features_of_all(warp):
        calls.append(warp)
        return {"a": np.full((2, 1), warp), "b": np.zeros((1, 1))}

    f = memoised_features_at(features_of_all)
    assert list(f(0.9, ["b", "a", "missing"])) == ["b", "a"]
    np.testing.assert_array_equal(f(0.9, ["a"])["a"], [[0.9], [0.9]])
    f(1.0, ["a"])
    assert calls == [0.9, 1.0]


def test_extract_many_warps_each_file_by_the_map(tmp_path):
    import soundfile as sf

    from gmmhmm.features import extract_many

    rng = np.random.default_rng(4)
    paths = []
    for i, v in enumerate([(700, 1200, 2600), (300, 2300, 3000), (400, 800, 2400)]):
        paths.append(str(tmp_path / f"u{i}.wav"))
        sf.write(paths[-1], 0.5 * _vowel(v, 120, 16000, 0.3, rng), 16000, subtype="PCM_16")
    fc = FeatureConfig(cmvn="none")
    warps = {paths[0]: 0.9, paths[1]: 1.1}  # the third keeps the config's own warp
    got, failures = extract_many(paths, fc, vtln_warps=warps)
    assert not failures
    for p in paths:
        np.testing.assert_array_equal(got[p], extract_features(p, fc.replace(vtln_warp=warps.get(p, 1.0))))
    assert not np.allclose(got[paths[0]], extract_features(paths[0], fc))


def test_memoised_features_at_on_disk_gives_the_same_features_and_keeps_none_mapped(tmp_path):
    from gmmhmm.adapt import memoised_features_at

    rng = np.random.default_rng(0)
    table = {w: {"a": rng.normal(size=(3, 2)), "b": rng.normal(size=(0, 2)), "c": rng.normal(size=(5, 2))}
             for w in (0.9, 1.0)}
    calls = []

    def features_of_all(warp):
        calls.append(warp)
        return table[warp]

    f = memoised_features_at(features_of_all, directory=tmp_path)
    for warp in (0.9, 1.0, 0.9):
        got = f(warp, ["c", "b", "a", "missing"])
        assert list(got) == ["c", "b", "a"]
        for u, x in got.items():
            np.testing.assert_array_equal(x, table[warp][u])  # bit-identical
            assert x.base is None  # a copy: no file mapping (resident pages) outlives the call
    assert calls == [0.9, 1.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warp-0.npy", "warp-1.npy"]
    close = memoised_features_at(lambda w: {"a": np.full((1, 1), w)}, directory=tmp_path / "close")
    (tmp_path / "close").mkdir()
    assert close(1.0, ["a"])["a"][0, 0] == 1.0 and close(1.0 + 1e-9, ["a"])["a"][0, 0] == 1.0 + 1e-9
    assert close(1.0, ["a"])["a"][0, 0] == 1.0
    assert memoised_features_at(lambda w: {}, directory=tmp_path)(0.8, ["a"]) == {}


def test_a_file_without_speaker_or_warp_is_named_as_a_file(tmp_path):
    """The CLI's internal speaker of a file without one ('\\0file:...') never reaches a message."""
    import argparse

    from gmmhmm.cli import _file_warps

    (tmp_path / "map").write_text("A 0.9\n")
    args = argparse.Namespace(vtln_map=str(tmp_path / "map"))
    warps, failures = _file_warps(args, ["a.wav", "c.wav"], {"a.wav": "A", "c.wav": "\0file:c.wav"})
    assert warps == {"a.wav": 0.9}
    assert failures == [("c.wav", f"no VTLN warp for file 'c.wav' (no speaker) in {tmp_path / 'map'}")]


@pytest.mark.parametrize("setting, named", [("vtln_low_hz = 3900.0", "vtln_low_hz"),
                                             ("n_mels = 80", "n_mels=80 is too many mel filters")])
def test_cli_vtln_refuses_inflection_points_no_warp_fits_before_any_work(tmp_path, capsys, monkeypatch,
                                                                        setting, named):
    """A [features] vtln_low_hz that fits no warp of the grid is an error before extraction and GMM
    training (it surfaced only at the first warp other than 1, after both); so are mel filters that
    fit at warp 1 but leave a filter without an FFT bin at another warp (80 at 8 kHz, warp 1.2)."""
    import soundfile as sf

    import gmmhmm.features as features
    from gmmhmm.cli import main

    sf.write(tmp_path / "a.wav", 0.1 * np.random.default_rng(0).standard_normal(8000), 8000, subtype="PCM_16")
    (tmp_path / "c.toml").write_text(f"[features]\nsample_rate_hz = 8000\n{setting}\n")
    monkeypatch.setattr(features, "extract_many", lambda *a, **k: pytest.fail("extracted before refusing"))
    assert main(["vtln", str(tmp_path / "a.wav"), "-o", str(tmp_path / "map"), "--config", str(tmp_path / "c.toml")]) != 0
    assert named in capsys.readouterr().err


def test_features_on_disk_cleans_up_and_falls_back_to_the_temporary_folder(tmp_path):
    from gmmhmm.adapt import features_on_disk

    with features_on_disk(lambda w: {"a": np.full((2, 1), w)}, tmp_path) as f:
        assert f(0.9, ["a"])["a"][0, 0] == 0.9
        assert len(list(tmp_path.glob(".vtln-features-*"))) == 1
    assert not list(tmp_path.glob(".vtln-features-*"))
    with pytest.raises(RuntimeError):  # removed on failure too
        with features_on_disk(lambda w: {"a": np.ones((1, 1))}, tmp_path) as f:
            f(1.0, ["a"])
            raise RuntimeError
    assert not list(tmp_path.glob(".vtln-features-*"))
    with features_on_disk(lambda w: {"a": np.ones((1, 1))}, tmp_path / "missing") as f:  # e.g. -o /dev/stdout
        assert f(1.0, ["a"])["a"].shape == (1, 1)


def test_recipe_vtln_refuses_settings_some_warp_cannot_take_before_any_work(tmp_path, monkeypatch):
    """The recipe's warp search met mel filters without an FFT bin (80 at 8 kHz, warp 1.16) only at
    that warp, after extracting the others and training the warp GMM."""
    import gmmhmm.features as features
    from gmmhmm import recipe

    monkeypatch.setattr(features, "extract_many", lambda *a, **k: pytest.fail("extracted before refusing"))
    vtln = {"enabled": True, "min_warp": 0.8, "max_warp": 1.2, "step": 0.02, "n_components": 4, "n_iter": 1}
    with pytest.raises(InvalidParameterError, match="n_mels=80 is too many mel filters.*warp 1.16"):
        recipe._vtln_warps(FeatureConfig(sample_rate_hz=8000, n_mels=80), 1, {"a": str(tmp_path / "a.wav")},
                           {"a": "s"}, vtln, {"s"}, tmp_path / "warps.json")
