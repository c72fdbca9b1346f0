"""Speaker CMVN: additive statistics, explicit utt2spk maps, stored statistics, batch independence."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from gmmhmm.errors import InvalidInputError, InvalidParameterError, ModelFileError
from gmmhmm.features import (
    CmvnStats,
    FeatureConfig,
    apply_cmvn,
    cmvn,
    compute_cmvn_stats,
    extract_features,
    extract_many,
    load_cmvn_stats,
    save_cmvn_stats,
)

RNG = np.random.default_rng(99)


def _write(path, seed, seconds=0.5, rate=8000):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.random.default_rng(seed).normal(scale=0.1, size=int(rate * seconds)), rate,
             subtype="PCM_16")
    return path


# --- statistics ------------------------------------------------------------------

def test_stats_add_like_pooled_frames_and_give_kaldi_sums():
    parts = [RNG.normal(loc=m, scale=s, size=(n, 3)) for m, s, n in ((5, 2, 40), (-1, 0.5, 25), (0, 1, 1))]
    total = CmvnStats.from_features(parts[0]) + CmvnStats.from_features(parts[1]) + CmvnStats.from_features(parts[2])
    x = np.concatenate(parts)
    assert total.count == 66
    np.testing.assert_allclose(total.mean, x.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(total.std, x.std(axis=0), rtol=1e-12)
    np.testing.assert_allclose(total.sum, x.sum(axis=0), rtol=1e-13)
    np.testing.assert_allclose(total.sum_squares, (x**2).sum(axis=0), rtol=1e-13)
    # order does not matter
    other = CmvnStats.from_features(parts[2]) + (CmvnStats.from_features(parts[1]) + CmvnStats.from_features(parts[0]))
    np.testing.assert_allclose(other.mean, total.mean, rtol=1e-13)
    np.testing.assert_allclose(other.scatter, total.scatter, rtol=1e-12)
    with pytest.raises(InvalidInputError, match="dimension"):
        total + CmvnStats.from_features(np.zeros((3, 2)))


def test_stats_keep_a_small_variance_under_a_large_offset():
    # Raw sums of squares would lose it: 1e12 per frame against a variance of 1e-6.
    a, b = RNG.normal(1e6, 1e-3, size=(500, 1)), RNG.normal(1e6, 1e-3, size=(300, 1))
    s = CmvnStats.from_features(a) + CmvnStats.from_features(b)
    x = np.concatenate([a, b])
    np.testing.assert_allclose(s.std, x.std(axis=0), rtol=1e-6)
    np.testing.assert_allclose(s.apply(x), cmvn(x), atol=1e-6)


def test_apply_by_hand_and_constant_columns():
    x = np.array([[1.0, 4.0], [3.0, 4.0], [5.0, 4.0]])
    s = CmvnStats.from_features(x)
    std = np.sqrt(8 / 3)
    np.testing.assert_allclose(s.apply(x), [[-2 / std, 0], [0, 0], [2 / std, 0]])
    np.testing.assert_allclose(s.apply(x, variance=False), [[-2, 0], [0, 0], [2, 0]])
    np.testing.assert_array_equal(cmvn(x), s.apply(x))
    with pytest.raises(InvalidInputError, match="dimensions"):
        s.apply(np.zeros((2, 3)))


def test_compute_and_apply_follow_utt2spk_and_default_to_one_speaker_per_utterance():
    feats = {"a1": RNG.normal(1, size=(50, 4)), "b1": RNG.normal(9, size=(30, 4)), "a2": RNG.normal(2, size=(70, 4))}
    own = compute_cmvn_stats(feats)
    assert list(own) == ["a1", "b1", "a2"]
    out = apply_cmvn(feats, own)
    for k in feats:
        np.testing.assert_allclose(out[k], cmvn(feats[k]), atol=1e-12)

    utt2spk = {"a1": "A", "a2": "A", "b1": "B"}
    stats = compute_cmvn_stats(feats, utt2spk)
    assert sorted(stats) == ["A", "B"] and stats["A"].count == 120
    pooled = np.concatenate([feats["a1"], feats["a2"]])
    for form in (utt2spk, utt2spk.__getitem__):  # a mapping or a function
        out = apply_cmvn(feats, stats, form)
        np.testing.assert_allclose(out["a1"], (feats["a1"] - pooled.mean(0)) / pooled.std(0), atol=1e-12)
        np.testing.assert_allclose(out["b1"], cmvn(feats["b1"]), atol=1e-12)
    with pytest.raises(InvalidInputError, match="'c1' is not in utt2spk"):
        compute_cmvn_stats({**feats, "c1": feats["a1"]}, utt2spk)
    with pytest.raises(InvalidInputError, match="no CMVN statistics for speaker 'B'"):
        apply_cmvn(feats, {"A": stats["A"]}, utt2spk)


def test_stats_round_trip_through_a_file(tmp_path):
    feats = {"a1": RNG.normal(size=(20, 3)), "a2": RNG.normal(size=(10, 3)), "b1": RNG.normal(size=(5, 3))}
    stats = compute_cmvn_stats(feats, {"a1": "anna", "a2": "anna", "b1": "bob"})
    save_cmvn_stats(tmp_path / "cmvn.npz", stats)
    back = load_cmvn_stats(tmp_path / "cmvn.npz")
    assert list(back) == ["anna", "bob"]
    for spk in stats:
        assert back[spk].count == stats[spk].count
        np.testing.assert_array_equal(back[spk].mean, stats[spk].mean)
        np.testing.assert_array_equal(back[spk].scatter, stats[spk].scatter)
    with pytest.raises(InvalidInputError, match="speaker names"):
        save_cmvn_stats(tmp_path / "bad.npz", {1: stats["anna"]})
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ModelFileError):
        load_cmvn_stats(tmp_path / "junk.npz")
    with pytest.raises(ModelFileError):
        load_cmvn_stats(tmp_path / "missing.npz")
    # a speaker twice kept only the last one's statistics, silently
    from conftest import write_packed_npz

    twice = write_packed_npz(tmp_path / "twice.npz", {"format": "gmmhmm-cmvn", "version": 1,
                                                      "speakers": ["s", "s"], "counts": [3, 4]}, np.ones((4, 2)), [2, 2])
    with pytest.raises(ModelFileError, match="corrupt CMVN statistics file"):
        load_cmvn_stats(twice)


# --- the front end -----------------------------------------------------------------

SPEAKER = FeatureConfig.fsdd().replace(cmvn="speaker")


def test_a_file_has_the_same_features_alone_and_in_any_batch(tmp_path):
    """Bug: features of a.wav changed with the files sharing the call, and folders named speakers."""
    a = _write(tmp_path / "x" / "rec" / "a.wav", 0)
    b = _write(tmp_path / "y" / "rec" / "b.wav", 1)  # same folder name, another person
    c = _write(tmp_path / "x" / "rec" / "c.wav", 2)
    alone, _ = extract_many([a], SPEAKER)
    for batch in ([a, b], [b, a, c], [c, a]):
        feats, failures = extract_many(batch, SPEAKER, n_jobs=1)
        assert not failures
        np.testing.assert_array_equal(feats[str(a)], alone[str(a)])
    np.testing.assert_array_equal(alone[str(a)], extract_features(a, SPEAKER))
    np.testing.assert_array_equal(alone[str(a)], extract_features(a, SPEAKER.replace(cmvn="utterance")))


def test_extract_many_pools_only_what_utt2spk_says(tmp_path):
    paths = [_write(tmp_path / f"{i}.wav", i) for i in range(4)]
    keys = [str(p) for p in paths]
    utt2spk = {keys[0]: "s", keys[1]: "s", keys[2]: "t", keys[3]: "t"}
    feats, failures = extract_many(paths, SPEAKER, utt2spk=utt2spk)
    assert not failures and list(feats) == keys
    raw, _ = extract_many(paths, SPEAKER.replace(cmvn="none"))
    pooled = np.concatenate([raw[keys[0]], raw[keys[1]]])
    np.testing.assert_allclose(feats[keys[0]], (raw[keys[0]] - pooled.mean(0)) / pooled.std(0), atol=1e-10)
    np.testing.assert_allclose(np.concatenate([feats[keys[0]], feats[keys[1]]]).std(0), 1, atol=1e-10)
    # another speaker's files do not change s's features
    only_s, _ = extract_many(paths[:2], SPEAKER, utt2spk=utt2spk)
    np.testing.assert_array_equal(only_s[keys[0]], feats[keys[0]])
    # a function works as well; a file the map misses fails alone
    by_fn, failures = extract_many(paths, SPEAKER, utt2spk=lambda k: utt2spk.get(k) or ({}[k]), n_jobs=2)
    np.testing.assert_array_equal(by_fn[keys[3]], feats[keys[3]])
    partial, failures = extract_many(paths, SPEAKER, utt2spk={k: v for k, v in utt2spk.items() if k != keys[1]})
    assert list(partial) == [keys[0], keys[2], keys[3]]
    assert failures == [(keys[1], f"utterance {keys[1]!r} is not in utt2spk")]
    # a function that misses a file (KeyError) fails that file alone too, not the batch
    missing = {k: v for k, v in utt2spk.items() if k != keys[1]}
    by_fn, failures = extract_many(paths, SPEAKER, utt2spk=missing.__getitem__)
    assert list(by_fn) == list(partial) and failures == [(keys[1], f"utterance {keys[1]!r} is not in utt2spk")]
    with pytest.raises(InvalidInputError, match="is not in utt2spk"):
        compute_cmvn_stats(raw, missing.__getitem__)


def test_stored_training_statistics_apply_to_new_files(tmp_path):
    train = [_write(tmp_path / f"train{i}.wav", i) for i in range(3)]
    test = _write(tmp_path / "test.wav", 7)
    raw, _ = extract_many([*train, test], SPEAKER.replace(cmvn="none"))
    stats = compute_cmvn_stats({str(p): raw[str(p)] for p in train}, lambda k: "spk")
    save_cmvn_stats(tmp_path / "cmvn.npz", stats)
    stored = load_cmvn_stats(tmp_path / "cmvn.npz")
    feats, failures = extract_many([test], SPEAKER, utt2spk={str(test): "spk"}, cmvn_stats=stored)
    pooled = np.concatenate([raw[str(p)] for p in train])
    np.testing.assert_allclose(feats[str(test)], (raw[str(test)] - pooled.mean(0)) / pooled.std(0), atol=1e-10)
    np.testing.assert_array_equal(extract_features(test, SPEAKER, cmvn_stats=stored["spk"]), feats[str(test)])
    _, failures = extract_many([test], SPEAKER, utt2spk={str(test): "other"}, cmvn_stats=stored)
    assert failures == [(str(test), "no CMVN statistics for speaker 'other'")]
    with pytest.raises(InvalidParameterError, match="cmvn='speaker'"):
        extract_many([test], FeatureConfig.fsdd(), cmvn_stats=stored)


def test_folder_names_are_not_speakers():
    import gmmhmm.datasets as datasets

    assert not hasattr(datasets, "speaker_of")
    utts = [datasets.parse_name("/a/rec/7_jackson_3.wav"), datasets.parse_name("/b/rec/1_theo_9.wav")]
    assert datasets.utt2spk(utts) == {"/a/rec/7_jackson_3.wav": "jackson", "/b/rec/1_theo_9.wav": "theo"}
    assert datasets.utt2spk(utts[:1], "test/") == {"/a/rec/7_jackson_3.wav": "test/jackson"}


def test_extract_features_refuses_misused_statistics(tmp_path):
    a = _write(tmp_path / "a.wav", 0)
    stats = CmvnStats.from_features(extract_features(a, SPEAKER))
    with pytest.raises(InvalidParameterError, match="cmvn_stats"):
        extract_features(a, SPEAKER.replace(cmvn="utterance"), cmvn_stats=stats)
    with pytest.raises(InvalidParameterError, match="cmvn_stats"):
        extract_features(a, SPEAKER, cmvn_stats={"a": stats})
    with pytest.raises(InvalidInputError, match="dimensions"):
        extract_features(a, SPEAKER.replace(delta_order=0), cmvn_stats=stats)


def test_stats_from_selected_frames_only():
    """``frames`` masks leave the other frames out of the statistics (Kaldi compute-cmvn-stats --weights)."""
    feats = {"a1": RNG.normal(1, size=(50, 4)), "a2": RNG.normal(5, size=(30, 4)), "b1": RNG.normal(size=(20, 4))}
    frames = {"a1": np.arange(50) % 3 == 0, "a2": np.arange(30) < 10, "b1": np.ones(20, dtype=bool)}
    utt2spk = {"a1": "A", "a2": "A", "b1": "B"}
    stats = compute_cmvn_stats(feats, utt2spk, frames=frames)
    kept = np.concatenate([feats["a1"][frames["a1"]], feats["a2"][frames["a2"]]])
    assert stats["A"].count == len(kept) == 27
    np.testing.assert_allclose(stats["A"].mean, kept.mean(0), atol=1e-12)
    np.testing.assert_allclose(stats["A"].std, kept.std(0), atol=1e-12)
    np.testing.assert_allclose(stats["B"].std, feats["b1"].std(0), atol=1e-12)
    # an utterance with no selected frame adds nothing; a speaker with none at all is an error
    none = {**frames, "a2": np.zeros(30, dtype=bool)}
    assert compute_cmvn_stats(feats, utt2spk, frames=none)["A"].count == 17
    with pytest.raises(InvalidInputError, match="speaker 'B' has no selected frame"):
        compute_cmvn_stats(feats, utt2spk, frames={**frames, "b1": np.zeros(20, dtype=bool)})
    with pytest.raises(InvalidInputError, match="frames\\['a1'\\] has 49 entries but the utterance 50 frames"):
        compute_cmvn_stats(feats, utt2spk, frames={**frames, "a1": np.ones(49, dtype=bool)})
    with pytest.raises(InvalidInputError, match="no frames mask for utterance 'b1'"):
        compute_cmvn_stats(feats, utt2spk, frames={"a1": frames["a1"], "a2": frames["a2"]})
