"""HMMClassifier on synthetic left-to-right sequences."""

from __future__ import annotations

import numpy as np
import pytest

from gmmhmm.classifier import (
    HMMClassifier,
    flat_start,
    sequence_scores,
    split_mixtures,
    train_word_model,
    uniform_segmentation,
)
from gmmhmm.errors import InvalidParameterError, SequenceTooShortError
from gmmhmm.modelfile import describe, load

from conftest import start_numba_threads

# Each label walks through its own sequence of 2-D means, one per state.
PATHS = {
    "up": [(0, 0), (3, 0), (6, 0)],
    "down": [(6, 0), (3, 0), (0, 0)],
    "side": [(0, 0), (0, 3), (0, 6)],
}


def make_sequences(n_per_label: int, seed: int) -> tuple[list[np.ndarray], list[str]]:
    rng = np.random.default_rng(seed)
    X, y = [], []
    for label, means in PATHS.items():
        for _ in range(n_per_label):
            parts = [m + 0.6 * rng.standard_normal((rng.integers(3, 9), 2)) for m in np.array(means, float)]
            X.append(np.concatenate(parts))
            y.append(label)
    return X, y


@pytest.fixture(scope="module")
def data():
    return make_sequences(12, seed=0), make_sequences(8, seed=1)


@pytest.fixture(scope="module")
def clf(data):
    (X, y), _ = data
    return HMMClassifier(n_states=3, mix_schedule=(1, 2), n_iter=(4, 3), random_state=0).fit(X, y)


def test_uniform_segmentation():
    np.testing.assert_array_equal(uniform_segmentation(np.array([6, 3, 2]), 3),
                                  [0, 0, 1, 1, 2, 2, 0, 1, 2, 0, 1])


def test_flat_start_means_are_segment_means():
    X = np.concatenate([np.full((4, 1), 1.0), np.full((4, 1), 5.0)])
    X = X + np.array([[0.1], [-0.1]] * 4)
    m = flat_start(X, np.array([8]), 2, 1, "diag", 1e-3, 1, 1e-3, 0)
    np.testing.assert_allclose(m.means_[:, 0, 0], [1.0, 5.0])
    np.testing.assert_allclose(m.covars_[:, 0, 0], [0.01 + 1e-3] * 2)
    np.testing.assert_allclose(m.transmat_, [[0.5, 0.5], [0.0, 0.5]])
    np.testing.assert_allclose(m.endprob_, [0.0, 0.5])  # left only through the final state
    np.testing.assert_allclose(m.startprob_, [1.0, 0.0])


@pytest.mark.parametrize("covariance_type", ["diag", "full", "spherical", "tied"])
def test_split_mixtures(covariance_type):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 2)) * [1.0, 2.0]
    m = flat_start(X, np.array([30, 30]), 2, 1, covariance_type, 1e-3, 1, 1e-3, 0)
    new = split_mixtures(m, 3, 1, 1e-3, 0)
    assert new.n_mix == 3 and new.covariance_type == covariance_type
    np.testing.assert_allclose(new.weights_.sum(axis=1), 1.0)
    np.testing.assert_allclose(new.weights_[0], [0.25, 0.5, 0.25])  # heaviest split first
    # one split: the two halves sit at the original mean +-0.2 sd
    two = split_mixtures(m, 2, 1, 1e-3, 0)
    mu = m.means_[0, 0]
    states = uniform_segmentation(np.array([30, 30]), 2)
    var = X[states == 0].var(axis=0) + 1e-3
    sd = {"diag": np.sqrt(var), "spherical": np.full(2, np.sqrt(var.mean()))}.get(
        covariance_type, np.sqrt(np.diag(np.cov(X[states == 0].T, bias=True)) + 1e-3))
    np.testing.assert_allclose(two.means_[0, 0] - mu, 0.2 * sd)
    np.testing.assert_allclose(two.means_[0, 1] - mu, -0.2 * sd)
    np.testing.assert_allclose(two.weights_, 0.5)
    np.testing.assert_allclose(new.transmat_, m.transmat_)
    with pytest.raises(InvalidParameterError, match="down to"):
        split_mixtures(new, 2, 1, 1e-3, 0)


def test_classifier_separates_labels(clf, data):
    _, (Xt, yt) = data
    assert list(clf.classes_) == ["down", "side", "up"]
    assert [m.n_mix for m in clf.models_] == [2, 2, 2]
    assert clf.n_features_in_ == 2
    assert clf.score(Xt, yt) == 1.0
    ll = clf.predict_log_likelihoods(Xt)
    assert ll.shape == (len(Xt), 3) and np.isfinite(ll).all()
    np.testing.assert_array_equal(clf.predict(Xt), clf.classes_[ll.argmax(axis=1)])


def test_batched_scores_equal_per_sequence_decode_and_score(clf, data):
    _, (Xt, _) = data
    X, lengths = np.concatenate(Xt), np.array([len(x) for x in Xt])
    for model in clf.models_:
        vit = sequence_scores(model, X, lengths, "viterbi")
        fwd = sequence_scores(model, X, lengths, "forward")
        np.testing.assert_allclose(vit, [model.decode(x)[0] for x in Xt], rtol=1e-10)
        np.testing.assert_allclose(fwd, [model.score(x) for x in Xt], rtol=1e-10)
        assert np.all(fwd >= vit - 1e-9)  # the best path is one term of the total


def test_save_load_round_trip(clf, data, tmp_path):
    _, (Xt, _) = data
    path = tmp_path / "clf.npz"
    clf.save(path, metadata={"feature_config": {"n_ceps": 13}})
    back, meta = load(path, with_metadata=True)
    assert isinstance(back, HMMClassifier)
    assert meta == {"feature_config": {"n_ceps": 13}}
    np.testing.assert_array_equal(back.classes_, clf.classes_)
    np.testing.assert_array_equal(back.predict_log_likelihoods(Xt), clf.predict_log_likelihoods(Xt))
    info = describe(path)
    assert info["class"] == "HMMClassifier" and len(info["attributes"]["models_"]) == 3
    assert HMMClassifier.load(path).get_params() == clf.get_params()


def test_parallel_training_matches_serial(data):
    (X, y), (Xt, _) = data
    kw = dict(n_states=3, mix_schedule=(1,), n_iter=2, random_state=0)
    start_numba_threads()
    a = HMMClassifier(n_jobs=1, **kw).fit(X, y)
    b = HMMClassifier(n_jobs=2, **kw).fit(X, y)
    np.testing.assert_allclose(a.predict_log_likelihoods(Xt), b.predict_log_likelihoods(Xt))


def test_integer_labels_and_forward_scoring(data):
    (X, y), (Xt, yt) = data
    codes = {"up": 7, "down": 3, "side": 5}
    clf = HMMClassifier(n_states=3, mix_schedule=1, n_iter=3, scoring="forward")
    clf.fit(X, [codes[v] for v in y])
    assert clf.classes_.dtype.kind == "i"
    assert list(clf.predict(Xt)) == [codes[v] for v in yt]


def test_train_word_model_stage_schedule():
    X, _ = make_sequences(6, seed=3)
    m = train_word_model(X[:6], n_states=3, mix_schedule=[2, 4], n_iter=[2, 0])
    assert m.n_mix == 4 and m.means_.shape == (3, 4, 2)
    assert np.isfinite(m.score(X[0]))  # the last stage ran no EM: still a usable model


def test_impossible_sequence_scores_minus_inf(clf, data):
    _, (Xt, _) = data
    model = clf.models_[0]
    model = split_mixtures(model, model.n_mix, 1, 1e-3, 0)  # a copy
    assert model.endprob_[:2].tolist() == [0.0, 0.0]  # left only from its last state: >= 3 frames
    X = np.concatenate([Xt[0][:2], Xt[1]])
    scores = sequence_scores(model, X, np.array([2, len(Xt[1])]), "viterbi")
    assert scores[0] == -np.inf and np.isfinite(scores[1])


def test_labels_sharing_a_prefix_a_only_takes_are_not_explained_by_the_longer_word():
    """A model of "A B" must not score an "A"-only take through its first states: word
    models are left only through their final state (3 of 10 went to "AB" when any state
    could end the word)."""
    units = {"A": [(0, 0), (3, 0)], "B": [(0, 3), (3, 3)]}
    rng = np.random.default_rng(0)

    def takes(word, n):
        means = [m for u in word for m in units[u]]
        return [np.concatenate([np.array(m, float) + 0.7 * rng.standard_normal((rng.integers(3, 8), 2))
                                for m in means]) for _ in range(n)]

    X, y = takes("A", 12) + takes("AB", 12), ["A"] * 12 + ["AB"] * 12
    test_a, test_ab = takes("A", 20), takes("AB", 20)
    for scoring in ("viterbi", "forward"):
        clf = HMMClassifier(n_states=4, mix_schedule=(1,), n_iter=5, scoring=scoring).fit(X, y)
        for model in clf.models_:
            assert np.all(model.endprob_[:-1] == 0) and 0 < model.endprob_[-1] < 1
            np.testing.assert_allclose(model.transmat_.sum(axis=1) + model.endprob_, 1.0, atol=1e-12)
        assert list(clf.predict(test_a)) == ["A"] * 20, scoring
        assert list(clf.predict(test_ab)) == ["AB"] * 20, scoring


def test_training_sequences_too_short_for_the_word_model_are_skipped(caplog):
    X, y = make_sequences(4, seed=5)
    X = X + [np.zeros((2, 2))]  # shorter than a 3-state word model
    y = y + ["up"]
    with caplog.at_level("WARNING", logger="gmmhmm.classifier"):
        clf = HMMClassifier(n_states=3, mix_schedule=(1,), n_iter=2).fit(X, y)
    assert "skipping 1 training sequence(s) shorter than the 3 frames" in caplog.text
    assert np.isfinite(clf.models_[list(clf.classes_).index("up")].score(X[0]))
    with pytest.raises(SequenceTooShortError, match="every training sequence"):
        HMMClassifier(n_states=3, mix_schedule=(1,), n_iter=2).fit([np.zeros((2, 2))] * 2, ["a", "a"])


def test_a_take_too_short_for_every_word_model_is_refused_not_guessed(clf, data):
    _, (Xt, _) = data
    with pytest.raises(SequenceTooShortError, match=r"sequence\(s\) \[1\] \(\[2\] frames\).*at least 3 frames"):
        clf.predict([Xt[0], Xt[1][:2]])


def test_a_long_take_no_model_can_produce_is_not_called_too_short(clf, data):
    """A take of enough frames whose likelihood is zero under every model (a frame far outside the
    training data) was refused as a SequenceTooShortError 'needing at least 3 frames'."""
    from gmmhmm.errors import InvalidInputError

    _, (Xt, _) = data
    far = Xt[1].copy()
    far[3] = 1e160
    with pytest.raises(InvalidInputError, match=r"sequence\(s\) \[1\].*probability zero under every model") as info:
        clf.predict([Xt[0], far])
    assert not isinstance(info.value, SequenceTooShortError)


def test_predict_proba_is_the_label_posterior_under_equal_priors(clf, data):
    """scikit-learn's classifier API: ``predict_proba`` (columns in ``classes_`` order), what
    ``scoring='neg_log_loss'`` and soft voting call; it was missing."""
    from scipy.special import softmax
    from sklearn.model_selection import cross_val_score

    _, (Xt, _) = data
    proba = clf.predict_proba(Xt)
    assert proba.shape == (len(Xt), len(clf.classes_))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(proba, softmax(clf.predict_log_likelihoods(Xt), axis=1))
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], clf.predict(Xt))
    (X, y), _ = data
    losses = cross_val_score(HMMClassifier(n_states=3, mix_schedule=(1,), n_iter=2), X, y, cv=2,
                             scoring="neg_log_loss")
    assert np.isfinite(losses).all()
    with pytest.raises(SequenceTooShortError, match=r"sequence\(s\) \[1\]"):  # refused as predict does
        clf.predict_proba([Xt[0], Xt[1][:2]])


def test_a_too_short_take_among_a_generator_of_takes_is_named(clf, data):
    """Any iterable of sequences is scored; naming a refused one must not index the input (a
    generator has no ``[i]``: TypeError)."""
    _, (Xt, _) = data
    with pytest.raises(SequenceTooShortError, match=r"sequence\(s\) \[1\] \(\[2\] frames\)"):
        clf.predict(x for x in [Xt[0], Xt[1][:2]])
