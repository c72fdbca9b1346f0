"""LDA + MLLT training of phone models (gmmhmm.graphs.lda_mllt) on synthetic phone data."""

from __future__ import annotations

import numpy as np
import pytest
from test_embedded import LEXICON, synthetic_corpus

from gmmhmm import load, save
from gmmhmm.errors import DimensionMismatchError, InvalidInputError, InvalidParameterError
from gmmhmm.features.transforms import FeatureTransform
from gmmhmm.graphs import EmbeddedTrainer, force_align
from gmmhmm.graphs.lda_mllt import LdaMlltOptions, _pdf_weights, static_features, train_lda_mllt

OPTIONS = LdaMlltOptions(lda_dim=6, splice=2, n_iter=4, mllt_iters=(0, 1, 3), silence_weight=1.0)


@pytest.fixture(scope="module")
def corpus():
    return synthetic_corpus(n_utts=40, D=3)


@pytest.fixture(scope="module")
def mono(corpus):
    feats, texts, _, _ = corpus
    tr = EmbeddedTrainer(LEXICON, feature_config={"delta_order": 2, "n_ceps": 13})
    tr.fit(feats, texts, mixtures=(1, 2), n_iter=(4, 2))
    return tr


@pytest.fixture(scope="module")
def lda(corpus, mono):
    import copy

    feats, texts, _, _ = corpus
    tr = copy.deepcopy(mono)
    history = train_lda_mllt(tr, feats, feats, texts, OPTIONS)
    return tr, history


def test_two_model_pass_on_the_same_features_is_the_ordinary_pass(corpus, mono):
    feats, texts, _, _ = corpus
    plain = mono.accumulate(feats, texts)
    two = mono.accumulate(feats, texts, stats_features=feats)
    assert two.log_likelihood == pytest.approx(plain.log_likelihood)
    np.testing.assert_allclose(two.trans_self, plain.trans_self)
    for name in ("n", "s1", "s2"):
        np.testing.assert_allclose(getattr(two.gaussian, name), getattr(plain.gaussian, name), rtol=1e-8, atol=1e-8)
    # statistics of other features: same counts, other moments, additive over shards
    Y = [np.hstack([X, X[:, :1] ** 2]) for X in feats]
    other = mono.accumulate(feats, texts, stats_features=Y)
    np.testing.assert_allclose(other.gaussian.n, plain.gaussian.n)
    np.testing.assert_allclose(other.gaussian.s1[:, :3], plain.gaussian.s1, rtol=1e-8, atol=1e-8)
    parts = (mono.accumulate(feats[:10], texts[:10], stats_features=Y[:10])
             + mono.accumulate(feats[10:], texts[10:], stats_features=Y[10:]))
    np.testing.assert_allclose(parts.gaussian.s2, other.gaussian.s2, rtol=1e-9, atol=1e-9)


def test_two_model_pass_bad_input(corpus, mono):
    feats, texts, _, _ = corpus
    with pytest.raises(InvalidInputError, match="stats feature arrays"):
        mono.accumulate(feats, texts, stats_features=feats[:-1])
    with pytest.raises(InvalidInputError, match="frame counts"):
        mono.accumulate(feats, texts, stats_features=[X[1:] for X in feats])
    # one frame moved from utterance 1 to utterance 0: the batch totals agree, the frames do not
    moved = [np.vstack([feats[0], feats[1][:1]]), feats[1][1:], *feats[2:]]
    with pytest.raises(InvalidInputError, match="utterance 0: .* frame"):
        mono.accumulate(feats, texts, stats_features=moved)


def test_lda_mllt_models_and_likelihood(lda, corpus):
    tr, history = lda
    m = tr.model
    assert isinstance(m.feature_transform_, FeatureTransform)
    assert m.n_features == 6 and m.n_mix == 2
    t = m.feature_transform_
    assert (t.n_source_features, t.left_context, t.right_context, t.n_output_features) == (3, 2, 2, 6)
    assert m.feature_config["delta_order"] == 0  # the stored front end extracts the spliced statics
    # EM in the LDA space (MLLT passes counted with their log|det|) never lowers the likelihood
    in_lda = history[1:]
    assert len(in_lda) == OPTIONS.n_iter
    assert all(b >= a - 1e-6 for a, b in zip(in_lda, in_lda[1:])), in_lda
    assert all(isinstance(h, float) for h in history)
    assert np.all(m.covars_ >= m.var_floor_ - 1e-12)


def test_lda_mllt_models_align_like_the_truth(lda, mono, corpus):
    """Forced alignment through the stored transform finds the true word boundaries."""
    tr, _ = lda
    feats, texts, segs, _ = corpus
    for model in (mono.model, tr.model):
        errors = []
        for X, words, seg in zip(feats[:10], texts[:10], segs[:10]):
            path = force_align(model, model.transform_features(X), words, sil_prob=0.7)
            got = [(s.label, s.start_frame, s.end_frame) for s in path.words]
            truth = [s for s in seg]
            if [g[0] for g in got] == [s[0] for s in truth]:
                errors += [abs(a[1] - b[1]) for a, b in zip(got, truth)]
            else:
                errors.append(99)
        assert np.mean(errors) < 1.0


def test_model_file_round_trip(lda, corpus, tmp_path):
    tr, _ = lda
    feats, texts, _, _ = corpus
    save(tr.model, tmp_path / "tri2.npz")
    back = load(tmp_path / "tri2.npz")
    X = feats[0]
    np.testing.assert_array_equal(back.state_log_likelihood(back.transform_features(X)),
                                  tr.model.state_log_likelihood(tr.model.transform_features(X)))
    with pytest.raises(DimensionMismatchError, match="feature transform"):
        back.transform_features(np.hstack([X, X]))  # e.g. features with deltas


def test_silence_pdfs_get_the_silence_weight(mono):
    w = _pdf_weights(mono.model, 0.0)
    sil = mono.model.phones.index(mono.model.phones[-1])
    assert w.tolist() == [0.0 if p // 3 == sil else 1.0 for p in range(mono.model.n_pdfs)]


def test_static_features_are_the_leading_columns():
    from gmmhmm.features import FeatureConfig

    X = np.arange(39.0 * 4).reshape(4, 39)
    np.testing.assert_array_equal(static_features(X, FeatureConfig()), X[:, :13])


@pytest.mark.parametrize("bad, match", [
    (dict(mllt_iters=(4,)), "mllt_iters"), (dict(lda_dim=0), "lda_dim"), (dict(silence_weight=2.0), "silence"),
    (dict(lda_dim=16), "exceeds")])
def test_bad_options(corpus, mono, bad, match):
    import copy

    feats, texts, _, _ = corpus
    opts = LdaMlltOptions(**{**OPTIONS.__dict__, **bad})
    with pytest.raises(InvalidParameterError, match=match):
        train_lda_mllt(copy.deepcopy(mono), feats, feats, texts, opts)


def test_mismatched_source_features(corpus, mono):
    import copy

    feats, texts, _, _ = corpus
    with pytest.raises(InvalidInputError, match="source features"):
        train_lda_mllt(copy.deepcopy(mono), feats, [X[1:] for X in feats], texts, OPTIONS)
