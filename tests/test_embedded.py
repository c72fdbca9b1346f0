"""Embedded Baum-Welch on synthetic phone data with known segmentations."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from gmmhmm import load, save
from gmmhmm.errors import ConvergenceError, DimensionMismatchError, InvalidInputError
from gmmhmm.graphs import EmbeddedTrainer, Lexicon, PhoneModelSet

LEXICON = Lexicon({"ab": ["A", "B"], "ca": ["C", "A"], "b": ["B"]})


def synthetic_corpus(n_utts=40, seed=0, D=3, sil_prob=0.7):
    """Utterances sampled from 3-state phone models with well separated means.

    Returns features, transcripts, true word segments (label, start, end) and
    the true per-state means (phones x states, D).
    """
    P = len(LEXICON.phones)
    means = np.random.default_rng(1234).uniform(-6, 6, size=(P, 3, D))  # the same "speaker" for every seed
    rng = np.random.default_rng(seed)
    feats, texts, segs = [], [], []
    for _ in range(n_utts):
        words = list(rng.choice(LEXICON.words, size=rng.integers(1, 4)))
        units = []
        for w in words:
            if rng.random() < sil_prob:
                units.append(("sil", ["sil"]))
            units.append((w, LEXICON.pronunciations[w]))
        units.append(("sil", ["sil"]))
        rows, seg, t = [], [], 0
        for label, phones in units:
            start = t
            for ph in phones:
                p = LEXICON.phone_index(ph)
                for j in range(3):
                    d = int(rng.integers(2, 6))
                    rows.append(means[p, j] + 0.5 * rng.normal(size=(d, D)))
                    t += d
            seg.append((label, start, t))
        feats.append(np.concatenate(rows))
        texts.append(words)
        segs.append(seg)
    return feats, texts, segs, means


@pytest.fixture(scope="module")
def trained():
    feats, texts, segs, means = synthetic_corpus()
    tr = EmbeddedTrainer(LEXICON)
    history = tr.fit(feats, texts, mixtures=(1, 2), n_iter=(6, 3))
    return tr, history, (feats, texts, segs, means)


def test_log_likelihood_never_decreases(trained):
    _, history, _ = trained
    within = history[:6]  # mixture splitting may lower it; re-estimation never does
    assert all(b >= a - 1e-9 for a, b in zip(within, within[1:]))
    assert all(b >= a - 1e-9 for a, b in zip(history[6:], history[7:]))
    assert history[-1] > history[0] + 1.0


def test_recovers_generating_means(trained):
    tr, _, (_, _, _, means) = trained
    m = tr.model
    learnt = (m.weights_[:, :, None] * m.means_.reshape(m.n_pdfs, m.n_mix, -1)).sum(1)
    np.testing.assert_allclose(learnt, means.reshape(m.n_pdfs, -1), atol=0.5)
    assert np.all(m.covars_ >= m.var_floor_ - 1e-12)
    np.testing.assert_allclose(m.weights_.sum(1), 1.0)


def test_stats_are_additive(trained):
    tr, _, (feats, texts, _, _) = trained
    whole = tr.accumulate(feats, texts)
    parts = tr.accumulate(feats[:15], texts[:15]) + tr.accumulate(feats[15:], texts[15:])
    assert parts.log_likelihood == pytest.approx(whole.log_likelihood)
    for name in ("n", "s1", "s2"):
        np.testing.assert_allclose(getattr(parts.gaussian, name), getattr(whole.gaussian, name), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(parts.trans_self, whole.trans_self)
    np.testing.assert_allclose(parts.trans_leave, whole.trans_leave)
    # occupancy is one per frame; every frame but the last leaves or loops once per utterance
    assert whole.gaussian.n.sum() == pytest.approx(whole.n_frames)
    assert (whole.trans_self + whole.trans_leave).sum() == pytest.approx(whole.n_frames)


def test_short_utterances_are_skipped_and_empty_stats_refused(trained):
    tr, _, (feats, _, _, _) = trained
    stats = tr.accumulate([feats[0][:4]], [["ab"]])  # A B needs 6 frames
    assert stats.n_skipped == 1 and stats.skipped == [0] and stats.n_frames == 0
    with pytest.raises(ConvergenceError):
        tr.update(stats)
    with pytest.raises(DimensionMismatchError):
        tr.accumulate([np.zeros((20, 5))], [["ab"]])
    with pytest.raises(InvalidInputError):
        tr.accumulate(feats[:2], [["ab"]])


def test_an_utterance_with_no_path_does_not_poison_its_batch(trained):
    """A finite but huge feature value (1e160: its square overflows) leaves its utterance with no
    path, so it is skipped with zero occupancy, but it shares a scoring batch with good utterances:
    its inf design rows times zero posteriors made NaN second moments for every Gaussian of the
    batch, and the next update a NaN model. Frames of zero posterior now add nothing."""
    tr, _, (feats, texts, _, _) = trained
    bad = feats[0].copy()
    bad[5] = 1e160
    good = tr.accumulate(feats[:6], texts[:6])
    with np.errstate(invalid="raise", over="ignore"):
        mixed = tr.accumulate([feats[0], bad] + feats[1:6], [texts[0], texts[0]] + texts[1:6])
    assert mixed.skipped == [1] and mixed.n_utterances == good.n_utterances
    for name in ("n", "s1", "s2"):
        np.testing.assert_allclose(getattr(mixed.gaussian, name), getattr(good.gaussian, name), rtol=1e-9,
                                   atol=1e-9)
    assert mixed.log_likelihood == pytest.approx(good.log_likelihood)


def test_model_file_round_trip(trained, tmp_path):
    tr, _, (feats, _, _, _) = trained
    save(tr.model, tmp_path / "m.npz")
    m2 = load(tmp_path / "m.npz")
    assert isinstance(m2, PhoneModelSet) and m2.phones == tr.model.phones and m2.lexicon == LEXICON
    np.testing.assert_array_equal(m2.state_log_likelihood(feats[0]), tr.model.state_log_likelihood(feats[0]))


def test_split_mixtures_keeps_the_mean():
    feats, texts, _, _ = synthetic_corpus(n_utts=5)
    tr = EmbeddedTrainer(LEXICON)
    tr.flat_start(feats)
    before = tr.model.means_.copy()
    tr.model.split_mixtures(4)
    m = tr.model
    assert m.means_.shape == (m.n_pdfs * 4, before.shape[1]) and m.weights_.shape == (m.n_pdfs, 4)
    mix_mean = (m.weights_[:, :, None] * m.means_.reshape(m.n_pdfs, 4, -1)).sum(1)
    np.testing.assert_allclose(mix_mean, before)


def test_batched_scoring_matches_per_utterance(trained):
    tr, _, (feats, _, _, _) = trained
    many = tr.model.state_log_likelihood_many(feats[:7], max_rows=50)
    assert [len(x) for x in many] == [len(X) for X in feats[:7]]
    for X, ll in zip(feats, many):
        np.testing.assert_allclose(ll, tr.model.state_log_likelihood(X), rtol=1e-10, atol=1e-8)


def test_interrupted_training_resumes_to_the_uninterrupted_model(tmp_path):
    """Killed after iteration 4 of 7 (a split in between), resumed: the same model."""
    feats, texts, _, _ = synthetic_corpus(n_utts=20, seed=3)
    schedule = dict(mixtures=(1, 2), n_iter=(4, 3))
    whole = EmbeddedTrainer(LEXICON)
    expected = whole.fit(feats, texts, **schedule)

    class Interrupted(Exception):
        pass

    first = EmbeddedTrainer(LEXICON)
    calls = []
    original = first.update

    def update_then_die(stats):
        original(stats)
        calls.append(1)
        if len(calls) == 5:  # dies inside iteration 5, after checkpoint 4 was written
            raise Interrupted

    first.update = update_then_die
    with pytest.raises(Interrupted):
        first.fit(feats, texts, checkpoint_dir=tmp_path, **schedule)

    second = EmbeddedTrainer(LEXICON)
    estep = second.accumulate
    second.accumulate = lambda *a: calls.append(2) or estep(*a)
    history = second.fit(feats, texts, checkpoint_dir=tmp_path, resume=True, **schedule)
    assert history == expected
    assert calls.count(2) == 3  # only the iterations after the checkpoint ran again
    for name in ("weights_", "means_", "covars_", "self_loop_"):
        np.testing.assert_array_equal(getattr(second.model, name), getattr(whole.model, name))
    with pytest.raises(InvalidInputError, match="other training data"):
        EmbeddedTrainer(LEXICON).fit(feats[:-1], texts[:-1], checkpoint_dir=tmp_path, resume=True, **schedule)


def test_transition_counts_match_a_per_utterance_reference(trained, monkeypatch):
    """Arc weights once per distinct transcript, counts scattered once: the per-utterance sums."""
    from gmmhmm.graphs import Graph, kernels

    tr, _, (feats, texts, _, _) = trained
    m = tr.model
    ts, tl = np.zeros(m.n_pdfs), np.zeros(m.n_pdfs)
    for X, words in zip(feats, texts):
        g = tr.graph(words)
        _, _, arcs, finals = kernels.forward_backward(m.state_log_likelihood(X), g.state_pdf, g.arc_src, g.arc_dst,
                                                      *g.log_probs(*m.transition_log_probs()), m.n_pdfs)
        np.add.at(ts, g.arc_tid[g.arc_kind == 0], arcs[g.arc_kind == 0])
        np.add.at(tl, g.arc_tid[g.arc_kind == 1], arcs[g.arc_kind == 1])
        np.add.at(tl, g.final_tid[g.final_tid >= 0], finals[g.final_tid >= 0])
    calls = []
    log_probs = Graph.log_probs
    monkeypatch.setattr(Graph, "log_probs", lambda self, *a: calls.append(1) or log_probs(self, *a))
    stats = tr.accumulate(feats, texts)
    assert len(calls) == len({tuple(t) for t in texts}) < len(texts)
    np.testing.assert_allclose(stats.trans_self, ts, rtol=1e-12)
    np.testing.assert_allclose(stats.trans_leave, tl, rtol=1e-12)


def test_statistics_of_visited_states_equal_scoring_every_state(trained):
    """Each utterance scores only the pdfs its graph visits: the Gaussian statistics, occupancies and
    component posteriors equal a reference that scores every pdf of the model for every frame (the
    other pdfs get zero occupancy), and a pdf no transcript visits gathers nothing."""
    from gmmhmm.graphs import kernels
    from gmmhmm.mixture.stats import GaussianStats

    tr, _, (feats, texts, _, _) = trained
    m = tr.model
    only_b = [["b"]] * 6  # phone C and A never visited: their pdfs stay at zero
    for feats_, texts_ in ((feats, texts), (feats[:6], only_b)):
        emission, occs, posts, ref = m.emission(), [], [], GaussianStats.zeros(m.n_pdfs * m.n_mix, m.n_features, "diag")
        for X, words in zip(feats_, texts_):
            g = tr.graph(words)
            ll, cache = emission.log_likelihood(X)
            _, gamma, _, _ = kernels.forward_backward(ll, g.state_pdf, g.arc_src, g.arc_dst,
                                                      *g.log_probs(*m.transition_log_probs()), m.n_pdfs)
            occs.append(gamma)
            post = emission.component_posteriors(gamma, cache)
            posts.append(post.copy())
            ref += GaussianStats.from_posteriors(X, post, "diag")
        stats = tr.accumulate(feats_, texts_)
        np.testing.assert_allclose(stats.gaussian.n, ref.n, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(stats.gaussian.s1, ref.s1, rtol=1e-9, atol=1e-8)
        np.testing.assert_allclose(stats.gaussian.s2, ref.s2, rtol=1e-9, atol=1e-7)
        batches = list(tr.posteriors(feats_, texts_))
        np.testing.assert_allclose(np.concatenate([b.occupancy() for b in batches]), np.concatenate(occs),
                                   rtol=1e-9, atol=1e-12)
        dense = []
        for batch in tr.posteriors(feats_, texts_):
            dense.append(np.zeros((len(batch.X), m.n_pdfs * m.n_mix)))
            for a, b, components, post in batch.component_posteriors():
                dense[-1][a:b, components] = post
        np.testing.assert_allclose(np.concatenate(dense), np.concatenate(posts), rtol=1e-9, atol=1e-12)
    unvisited = np.setdiff1d(np.arange(m.n_pdfs), tr.graph(["b"]).state_pdf)
    assert len(unvisited) >= 6 and not stats.gaussian.n.reshape(m.n_pdfs, m.n_mix)[unvisited].any()


def test_a_short_utterance_is_reported_once_not_every_iteration(trained, caplog):
    """HERest repeats its warning every pass; the second and later passes log it at DEBUG. An
    utterance not seen before still warns."""
    tr, _, (feats, _, _, _) = trained
    short = [feats[0][:5]], [["ab"]]  # not one other tests give this module's trainer
    with caplog.at_level(logging.DEBUG, logger="gmmhmm.graphs.training"):
        for _ in range(3):
            assert tr.accumulate(*short).skipped == [0]
        tr.accumulate([feats[1][:1]], [["b"]])
    warned = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert [r.levelno for r in warned] == [logging.WARNING, logging.DEBUG, logging.DEBUG, logging.WARNING]
    assert "5 frames < 6 needed" in warned[0].getMessage()


def test_skip_count_follows_the_skipped_list(trained):
    tr, _, (feats, _, _, _) = trained
    stats = tr.accumulate([feats[0][:4], feats[1][:2]], [["ab"], ["b"]])  # 6 and 3 frames needed
    assert stats.skipped == [0, 1] and stats.n_skipped == 2
    assert (stats + stats).n_skipped == 4
    assert "min_frames" in vars(tr.graph(["ab"]))  # Graph caches it; the trainer keeps no copy


def test_feature_config_of_a_model():
    from gmmhmm.features import FeatureConfig

    assert PhoneModelSet(["A", "sil"]).get_feature_config() == FeatureConfig()
    stored = FeatureConfig(n_ceps=12, cmvn="speaker")
    assert PhoneModelSet(["A", "sil"], feature_config=stored.to_dict()).get_feature_config() == stored


def test_training_over_alternate_pronunciations(tmp_path):
    """Words 'ab' and 'ca' merged into one word 'z' with both pronunciations: the
    E-step picks each utterance's pronunciation and the generating means come back."""
    feats, texts, _, means = synthetic_corpus(n_utts=40, seed=2)
    alt = Lexicon.from_prons({"z": [(["A", "B"], np.log(0.5)), (["C", "A"], np.log(0.5))], "b": [(["B"], 0.0)]})
    assert alt.phones == LEXICON.phones
    merged = [["z" if w in ("ab", "ca") else w for w in words] for words in texts]
    tr = EmbeddedTrainer(alt)
    history = tr.fit(feats, merged, mixtures=(1,), n_iter=8)
    assert all(b >= a - 1e-9 for a, b in zip(history, history[1:]))
    m = tr.model
    np.testing.assert_allclose(m.means_.reshape(m.n_pdfs, -1), means.reshape(m.n_pdfs, -1), atol=0.5)
    # the model file keeps both pronunciations and their weights
    save(m, tmp_path / "alt.npz")
    loaded = load(tmp_path / "alt.npz").lexicon
    assert [p for p, _ in loaded.prons("z")] == [("A", "B"), ("C", "A")]
    assert [w for _, w in loaded.prons("z")] == pytest.approx([np.log(0.5)] * 2)


def test_old_model_lexicon_text_still_loads():
    """Model files written before alternates kept one 'word phone ...' line per word."""
    m = PhoneModelSet(LEXICON.phones, lexicon_text="ab A B\nca C A\nb B\n")
    assert m.lexicon == LEXICON


def test_phone_models_and_gmmhmm_share_one_emission_layout(trained):
    """PhoneModelSet's (n_pdfs * n_mix, D) parameters are a GMMHMM's (S, M, D): one
    emission object scores both, and both equal the mixture densities computed directly."""
    from scipy.special import logsumexp
    from scipy.stats import norm

    from gmmhmm.hmm import GMMHMM

    tr, _, (feats, _, _, _) = trained
    m = tr.model
    P, M, D = m.n_pdfs, m.n_mix, m.n_features
    X = feats[0][:20]
    hmm = GMMHMM(P, n_mix=M, covariance_type="diag", init_params="")
    hmm.n_features = D
    hmm.startprob_, hmm.transmat_ = np.full(P, 1 / P), np.full((P, P), 1 / P)
    hmm.weights_, hmm.means_, hmm.covars_ = (m.weights_, m.means_.reshape(P, M, D), m.covars_.reshape(P, M, D))
    ref = logsumexp(np.log(m.weights_)[None] + norm.logpdf(X[:, None, None, :], hmm.means_[None],
                                                          np.sqrt(hmm.covars_)[None]).sum(-1), axis=2)
    np.testing.assert_allclose(m.state_log_likelihood(X), ref, rtol=1e-10)
    np.testing.assert_array_equal(m.state_log_likelihood(X), hmm._emission().log_likelihood(X, need_cache=False)[0])


def test_starved_gaussians_after_mix_up_are_reported_quietly(caplog):
    """Mixing up to more Gaussians than the data support starves some: HERest keeps them silently,
    so the trainer reports them at INFO, never as a WARNING on every iteration."""
    import logging

    feats, texts, _, _ = synthetic_corpus(n_utts=6)
    tr = EmbeddedTrainer(LEXICON, min_occupancy=5.0)
    with caplog.at_level(logging.INFO, logger="gmmhmm"):
        tr.fit(feats, texts, mixtures=(1, 16), n_iter=(2, 2))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("kept their parameters" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records)
