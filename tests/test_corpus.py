"""Corpus shards and index: round trips, incremental writing, every refusal."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import write_packed_npz

from gmmhmm.corpus import INDEX_NAME, Corpus, load_shard
from gmmhmm.errors import (DimensionMismatchError, InvalidInputError, ModelFileError,
                           NonFiniteInputError)


def _utterances(n=23, dim=4, seed=0, labels=True, dtype=np.float32):
    rng = np.random.RandomState(seed)
    out = []
    for i in range(n):
        X = rng.randn(rng.randint(5, 40), dim).astype(dtype)
        label = [i % 3, f"w{i}", ["one", "two"]][i % 3] if labels else None
        out.append((f"utt{i:03d}", X, label) if labels else (f"utt{i:03d}", X))
    return out


def test_round_trip_whole_utterances_in_order(tmp_path):
    utts = _utterances()
    corpus = Corpus.create(tmp_path / "c", iter(utts), frames_per_shard=100,
                           feature_config={"n_mfcc": 13})
    assert len(corpus) > 3
    assert corpus.n_utterances == len(utts)
    assert corpus.n_frames == sum(len(u[1]) for u in utts)
    assert corpus.n_features == 4 and corpus.dtype == np.float32 and corpus.has_labels
    got = []
    for path, info in zip(corpus.shards, corpus.shard_info):
        X, lengths, ids, labels = load_shard(path)
        assert X.dtype == np.float32 and X.shape[0] == info.n_frames == lengths.sum()
        # a shard closes as soon as it reaches the target, so only its last utterance crosses it
        assert lengths[:-1].sum() < 100
        got += [(i, x, lab) for i, x, lab in zip(ids, np.split(X, np.cumsum(lengths)[:-1]), labels)]
    assert [g[0] for g in got] == [u[0] for u in utts]
    assert [g[2] for g in got] == [u[2] for u in utts]
    for g, u in zip(got, utts):
        np.testing.assert_array_equal(g[1], u[1])
    reopened = Corpus.open(tmp_path / "c")  # the folder works as well as the index file
    assert reopened.shards == corpus.shards and reopened.feature_config == {"n_mfcc": 13}
    assert sum(len(X) for X, *_ in reopened) == corpus.n_frames
    assert not [p for p in os.listdir(tmp_path / "c") if ".tmp" in p]


def test_shard_paths_are_relative_so_the_corpus_can_move(tmp_path):
    Corpus.create(tmp_path / "a", _utterances(labels=False), frames_per_shard=200)
    os.rename(tmp_path / "a", tmp_path / "b")
    corpus = Corpus.open(tmp_path / "b" / INDEX_NAME)
    X, lengths, ids, labels = corpus.load_shard(0)
    assert labels is None and len(ids) == len(lengths)


def test_shards_are_written_while_the_input_is_consumed(tmp_path):
    out = tmp_path / "c"

    def gen():
        for k, u in enumerate(_utterances(n=40, labels=False)):
            if k == 30:  # by now, > 300 frames were produced: earlier shards must be on disk
                assert (out / "shard-00000.npz").is_file()
            yield u
    Corpus.create(out, gen(), frames_per_shard=100)


def _contents(corpus):
    return [(ids, X.tolist(), labels) for X, _, ids, labels in corpus]


def test_a_failed_create_leaves_the_corpus_it_would_replace_intact(tmp_path):
    old = _contents(Corpus.create(tmp_path, _utterances(n=10), frames_per_shard=50))
    files = sorted(os.listdir(tmp_path))

    def gen():  # enough for new shards to be written, then a bad utterance
        yield from _utterances(n=12, seed=1)
        yield ("bad", np.zeros((3, 7)), 0)
    with pytest.raises(DimensionMismatchError):
        Corpus.create(tmp_path, gen(), frames_per_shard=50)
    assert _contents(Corpus.open(tmp_path)) == old
    assert sorted(os.listdir(tmp_path)) == files  # nothing of the failed corpus is left


def test_a_corpus_written_over_another_replaces_it_whole(tmp_path):
    Corpus.create(tmp_path, _utterances(n=20), frames_per_shard=50)
    new = Corpus.create(tmp_path, _utterances(n=4, seed=1, labels=False), frames_per_shard=50)
    assert _contents(Corpus.open(tmp_path)) == _contents(new)
    assert new.n_utterances == 4 and not new.has_labels
    # the old shards go with the old index
    assert sorted(os.listdir(tmp_path)) == sorted([INDEX_NAME] + [os.path.basename(p) for p in new.shards])


def test_numpy_labels_become_json(tmp_path):
    utts = [("a", np.zeros((2, 2)), np.int64(3)), ("b", np.ones((2, 2)), [np.str_("x"), np.float32(0.5)]),
            ("c", np.ones((1, 2)), np.array([1, 2]))]
    _, _, _, labels = Corpus.create(tmp_path, utts).load_shard(0)
    assert labels == [3, ["x", 0.5], [1, 2]]


def test_feature_config_object_and_integer_features(tmp_path):
    from gmmhmm.features.config import FeatureConfig

    cfg = FeatureConfig.fsdd()
    utts = [("a", np.arange(12).reshape(4, 3)), ("b", np.ones((2, 3), dtype=np.int32))]
    corpus = Corpus.create(tmp_path, utts, feature_config=cfg)
    assert FeatureConfig.from_dict(corpus.feature_config) == cfg
    X, *_ = corpus.load_shard(0)
    assert X.dtype == np.float64
    np.testing.assert_array_equal(X[:4], np.arange(12).reshape(4, 3))


@pytest.mark.parametrize("utts, error, match", [
    ([("a", np.zeros((3, 2))), ("b", np.zeros((3, 5)))], DimensionMismatchError, "5 features"),
    ([("a", np.array([[0.0, np.nan]]))], NonFiniteInputError, "NaN"),
    ([("a", np.zeros(3))], InvalidInputError, "2-D"),
    ([("a", np.zeros((2, 2))), ("a", np.zeros((2, 2)))], InvalidInputError, "duplicate"),
    ([("a", np.zeros((2, 2)), 1), ("b", np.zeros((2, 2)))], InvalidInputError, "label"),
    ([("a",)], InvalidInputError, "utt_id"),
    ([], InvalidInputError, "at least one"),
    ([("a", np.zeros((2, 2)), object())], InvalidInputError, "JSON"),
])
def test_bad_utterances_are_refused(tmp_path, utts, error, match):
    with pytest.raises(error, match=match):
        Corpus.create(tmp_path, utts)


def test_missing_shard_is_reported(tmp_path):
    corpus = Corpus.create(tmp_path, _utterances(), frames_per_shard=100)
    os.remove(corpus.shards[1])
    with pytest.raises(ModelFileError, match="missing"):
        corpus.load_shard(1)
    with pytest.raises(ModelFileError, match="missing"):
        Corpus.open(tmp_path)


def test_shard_that_disagrees_with_the_index(tmp_path):
    corpus = Corpus.create(tmp_path, _utterances(), frames_per_shard=100)
    a, b = corpus.shards[0], corpus.shards[1]
    os.replace(b, a)  # shard 0 now holds shard 1's frames
    with pytest.raises(ModelFileError, match="index says"):
        corpus.load_shard(0)


def test_shard_with_other_dimension(tmp_path):
    c1 = Corpus.create(tmp_path / "one", _utterances(dim=4), frames_per_shard=100)
    c2 = Corpus.create(tmp_path / "two", _utterances(dim=3), frames_per_shard=100)
    with pytest.raises(DimensionMismatchError, match="3 features"):
        c1.load_shard(c2.shards[0])


@pytest.mark.parametrize("text", [
    "{not json",
    json.dumps({"format": "something-else"}),
    json.dumps({"format": "gmmhmm-corpus", "version": 99}),
    json.dumps({"format": "gmmhmm-corpus", "version": 1, "n_features": 3}),
    json.dumps({"format": "gmmhmm-corpus", "version": 1, "n_features": 3, "dtype": "<f8",
                "has_labels": False, "shards": []}),
])
def test_corrupt_index(tmp_path, text):
    (tmp_path / INDEX_NAME).write_text(text)
    with pytest.raises(ModelFileError):
        Corpus.open(tmp_path)


def test_corrupt_or_foreign_shard(tmp_path):
    corpus = Corpus.create(tmp_path, _utterances(), frames_per_shard=100)
    with open(corpus.shards[0], "r+b") as f:
        f.truncate(100)
    with pytest.raises(ModelFileError):
        corpus.load_shard(0)
    np.save(tmp_path / "x.npy", np.zeros(3))
    with pytest.raises(ModelFileError):
        load_shard(tmp_path / "x.npy")
    with pytest.raises(ModelFileError, match="no corpus index"):
        Corpus.open(tmp_path / "nowhere")


def test_dtype_of_the_first_utterance_is_kept(tmp_path):
    utts = [("a", np.ones((2, 3), dtype=np.float32)), ("b", np.full((2, 3), 1 / 3))]
    X, *_ = Corpus.create(tmp_path, utts).load_shard(0)
    assert X.dtype == np.float32
    np.testing.assert_array_equal(X[2:], np.float32(1 / 3))


def test_index_documents_and_holds_the_totals(tmp_path):
    import gmmhmm.corpus

    corpus = Corpus.create(tmp_path, _utterances(), frames_per_shard=100)
    index = json.loads((tmp_path / INDEX_NAME).read_text())
    assert (index["n_frames"], index["n_utterances"]) == (corpus.n_frames, corpus.n_utterances)
    assert "``n_frames``" in gmmhmm.corpus.__doc__ and "``n_utterances``" in gmmhmm.corpus.__doc__


def test_shards_written_by_hand_in_the_documented_layout_load(tmp_path):
    X = np.arange(10.0).reshape(5, 2)
    path = write_packed_npz(tmp_path / "s.npz", {"format": "gmmhmm-corpus-shard", "version": 1, "ids": ["a", "b"],
                                        "labels": [1, ["x"]]}, X, [2, 3])
    X2, lengths, ids, labels = load_shard(path)
    np.testing.assert_array_equal(X2, X)
    assert lengths.tolist() == [2, 3] and ids == ["a", "b"] and labels == [1, ["x"]]


@pytest.mark.parametrize("header, lengths", [
    ({"ids": ["a", "b"], "labels": None}, [2, 2]),        # lengths do not cover the frames
    ({"ids": ["a"], "labels": None}, [2, 3]),             # fewer ids than utterances
    ({"ids": ["a", "b"], "labels": None}, [0, 5]),        # an empty utterance
    ({"ids": ["a", "b"], "labels": [1]}, [2, 3]),         # fewer labels than utterances
    ({"ids": ["a", "b"], "labels": "ab"}, [2, 3]),        # labels not a list
    ({"ids": ["a", "a"], "labels": None}, [2, 3]),        # an id twice
    ({"ids": [{"a": 1}, "b"], "labels": None}, [2, 3]),   # an id that is not a string
])
def test_shard_whose_parts_disagree_is_corrupt(tmp_path, header, lengths):
    path = write_packed_npz(tmp_path / "s.npz", {"format": "gmmhmm-corpus-shard", "version": 1, **header},
                   np.zeros((5, 2)), lengths)
    with pytest.raises(ModelFileError, match="corrupt corpus shard"):
        load_shard(path)


def test_packed_layout_is_shared_with_feature_files_but_formats_differ(tmp_path):
    from gmmhmm.features import load_features, save_features
    from gmmhmm.modelfile import read_packed

    corpus = Corpus.create(tmp_path / "c", _utterances(n=3, labels=False))
    save_features(tmp_path / "f.npz", {"a": np.zeros((2, 4))})
    header, X, lengths = read_packed(corpus.shards[0], "gmmhmm-corpus-shard", "ids", "shard")
    assert X.shape[1] == 4 and len(header["ids"]) == len(lengths) == 3
    header, X, lengths = read_packed(tmp_path / "f.npz", "gmmhmm-features", "names", "feature file")
    assert header["names"] == ["a"] and lengths.tolist() == [2]
    with pytest.raises(ModelFileError, match="'gmmhmm-features' file, expected 'gmmhmm-corpus-shard'"):
        load_shard(tmp_path / "f.npz")
    with pytest.raises(ModelFileError, match="'gmmhmm-corpus-shard' file, expected 'gmmhmm-features'"):
        load_features(corpus.shards[0])


@pytest.mark.integration
def test_corpus_from_audio_in_chunks(fsdd_path, tmp_path):
    from gmmhmm.corpus import audio_utterances
    from gmmhmm.errors import InvalidParameterError
    from gmmhmm.features import FeatureConfig, extract_features

    wavs = sorted((fsdd_path / "recordings").glob("*.wav"))[:7]
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF not really")
    paths = wavs[:3] + [bad] + wavs[3:]
    labels = [p.stem.split("_")[0] for p in paths]
    cfg = FeatureConfig.fsdd()
    corpus = Corpus.create(tmp_path / "c", audio_utterances(paths, cfg, labels=labels, chunk_files=3),
                           frames_per_shard=50, feature_config=cfg)
    assert corpus.n_utterances == 7  # the broken file is skipped
    got = {i: (x, lab) for X, lengths, ids, labs in corpus
           for i, x, lab in zip(ids, np.split(X, np.cumsum(lengths)[:-1]), labs)}
    assert list(got) == [p.stem for p in wavs]
    for p in wavs:
        np.testing.assert_array_equal(got[p.stem][0], extract_features(p, cfg))
        assert got[p.stem][1] == p.stem.split("_")[0]
    with pytest.raises(InvalidParameterError, match="speaker"):
        next(audio_utterances(wavs, cfg.replace(cmvn="speaker")))
    with pytest.raises(InvalidInputError, match="labels"):
        next(audio_utterances(wavs, cfg, labels=["x"]))
