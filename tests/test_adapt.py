"""Speaker adaptation of phone models: fMLLR through graphs, SAT, unsupervised two-pass decoding, MAP."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest

from gmmhmm.adapt import (accumulate_fmllr_stats, adaptation_stats, apply_fmllr, apply_speaker_transforms, estimate_speaker_transforms,
                          identity_transform, log_det, map_adapt, speaker_fmllr_stats, train_sat, transcript_graph)
from gmmhmm.decoding import decode_adapted, decoding_graph
from gmmhmm.errors import InvalidInputError, InvalidParameterError
from gmmhmm.graphs import EmbeddedTrainer, Lexicon, kernels
from gmmhmm.mixture import GaussianParams, GaussianStats, GaussianUpdateOptions, update_gaussians
from gmmhmm.scoring import error_rates
from gmmhmm.search import SearchOptions

from test_embedded import LEXICON, synthetic_corpus

D = 3


def distortion(seed: int, scale: float = 0.35, shift: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """A speaker's affine distortion x = C y + d of the models' feature space."""
    rng = np.random.default_rng(seed)
    return np.eye(D) + scale * rng.normal(size=(D, D)), shift * rng.normal(size=D)


def distort(feats, C, d):
    return [X @ C.T + d for X in feats]


@pytest.fixture(scope="module")
def si_trainer():
    """Speaker-independent models trained on the undistorted synthetic speaker."""
    feats, texts, _, _ = synthetic_corpus(n_utts=40, seed=0)
    tr = EmbeddedTrainer(LEXICON)
    tr.fit(feats, texts, mixtures=(1, 2), n_iter=(5, 3))
    return tr


def test_adaptation_stats_posteriors_are_the_trainers(si_trainer):
    """Gaussian statistics from adaptation_stats equal embedded training's E-step on the same utterance."""
    model = si_trainer.model
    feats, texts, _, _ = synthetic_corpus(n_utts=3, seed=5)
    for X, words in zip(feats, texts):
        st = adaptation_stats(model, X, transcript_graph(model, words), gaussian=True)
        ref = si_trainer.accumulate([X], [words])
        np.testing.assert_allclose(st.gaussian.n, ref.gaussian.n, atol=1e-9)
        np.testing.assert_allclose(st.gaussian.s1, ref.gaussian.s1, atol=1e-8)
        assert st.log_likelihood == pytest.approx(ref.log_likelihood, rel=1e-10)
        assert st.fmllr.beta == pytest.approx(len(X))  # posteriors sum to one per frame
        # fMLLR statistics over the visited pdfs' Gaussians equal those over all Gaussians
        g = transcript_graph(model, words)
        em = model.emission()
        ll, cache = em.log_likelihood(X)
        _, occ, _, _ = kernels.forward_backward(ll, g.state_pdf, g.arc_src, g.arc_dst,
                                                *g.log_probs(*model.transition_log_probs()), model.n_pdfs)
        full = accumulate_fmllr_stats(X, em.component_posteriors(occ, cache), model.means_, model.covars_)
        np.testing.assert_allclose(st.fmllr.G, full.G, rtol=1e-10)
        np.testing.assert_allclose(st.fmllr.K, full.K, rtol=1e-10, atol=1e-10)
        # and under a transform: posteriors of A x + b, log-likelihood with the Jacobian
        W = np.hstack([np.diag([1.1, 0.9, 1.2]), np.array([[0.1], [-0.2], [0.3]])])
        st = adaptation_stats(model, X, transcript_graph(model, words), W, gaussian=True)
        ref = si_trainer.accumulate([apply_fmllr(W, X)], [words])
        np.testing.assert_allclose(st.gaussian.s1, ref.gaussian.s1, atol=1e-8)
        assert st.log_likelihood == pytest.approx(ref.log_likelihood + len(X) * np.log(1.1 * 0.9 * 1.2), rel=1e-10)


def test_silence_weight_scales_silence_posteriors(si_trainer):
    model = si_trainer.model
    feats, texts, _, _ = synthetic_corpus(n_utts=1, seed=6)
    g = transcript_graph(model, texts[0])
    full = adaptation_stats(model, feats[0], g, gaussian=True)
    none = adaptation_stats(model, feats[0], g, silence_weight=0.0, gaussian=True)
    sil = slice((len(model.phones) - 1) * model.n_states * model.n_mix, None)  # the last phone's Gaussians
    assert full.gaussian.n[sil].sum() > 1.0
    np.testing.assert_allclose(none.gaussian.n[sil], 0.0)
    np.testing.assert_allclose(none.gaussian.n[:sil.start], full.gaussian.n[:sil.start], atol=1e-9)


def test_supervised_fmllr_undoes_a_speaker_distortion(si_trainer):
    model = si_trainer.model
    feats, texts, _, _ = synthetic_corpus(n_utts=30, seed=7)
    C, d = distortion(1)
    X = distort(feats, C, d)
    graphs = [transcript_graph(model, w) for w in texts]
    spk = ["s"] * len(X)
    before = speaker_fmllr_stats(model, X, graphs, spk)["s"]
    transforms = {}
    for _ in range(3):  # re-estimate with the posteriors of the adapted features
        transforms = estimate_speaker_transforms(speaker_fmllr_stats(model, X, graphs, spk, transforms), transforms)
    after = speaker_fmllr_stats(model, X, graphs, spk, transforms)["s"]
    assert after.log_likelihood / after.n_frames > before.log_likelihood / before.n_frames + 1.0
    C_inv = np.linalg.inv(C)
    W = transforms["s"]
    # the synthetic models are fitted to finite data: close to, not exactly, the inverse map
    assert np.abs(W[:, :-1] - C_inv).max() < 0.1 * np.abs(np.eye(D) - C_inv).max() + 0.05
    assert np.abs(W[:, -1] + C_inv @ d).max() < 0.3


def test_sat_objective_never_decreases_and_beats_speaker_independent(si_trainer):
    feats, texts, _, _ = synthetic_corpus(n_utts=40, seed=8)
    spk = ["a" if i % 2 else "b" for i in range(len(feats))]
    X = [x @ distortion(1 if s == "a" else 2)[0].T + distortion(1 if s == "a" else 2)[1]
         for x, s in zip(feats, spk)]
    tr = copy.deepcopy(si_trainer)
    si = tr.accumulate(X, texts)
    result = train_sat(tr, X, texts, spk, n_iter=5, fmllr_iters=(0, 1, 3))
    h = result.history
    assert all(b >= a - 1e-6 for a, b in zip(h, h[1:])), h
    assert h[-1] > si.log_likelihood / si.n_frames + 1.0
    assert sorted(result.transforms) == ["a", "b"]
    # the SAT models fit the adapted features of each speaker
    adapted = apply_speaker_transforms(X, spk, result.transforms)
    jac = sum(len(x) * log_det(result.transforms[s]) for x, s in zip(X, spk))
    st = tr.accumulate(adapted, texts)
    assert (st.log_likelihood + jac) / st.n_frames >= h[-1] - 1e-6


def test_unsupervised_two_pass_decoding_improves_likelihood_and_words(si_trainer):
    model = si_trainer.model
    feats, texts, _, _ = synthetic_corpus(n_utts=24, seed=9)
    spk = {f"u{i}": ("a" if i % 2 else "b") for i in range(len(feats))}
    feats = {u: x @ distortion(3 if spk[u] == "a" else 4)[0].T + distortion(3 if spk[u] == "a" else 4)[1]
             for u, x in zip(spk, feats)}
    graph = decoding_graph(model, "word-loop")
    opts = SearchOptions(beam=1e9, max_active=100000)
    out = decode_adapted(model, graph, feats, spk, opts, silence_weight=0.5, n_passes=2)
    assert sorted(out.transforms) == ["a", "b"]
    refs = dict(zip(spk, texts))
    first = error_rates([refs[u] for u in spk], [out.first[u].words for u in spk]).n_errors
    second = error_rates([refs[u] for u in spk], [out.adapted[u].words for u in spk]).n_errors
    assert first > 0 and second < first
    # per-frame likelihood of the references (Jacobian included) is higher after adaptation
    graphs = [transcript_graph(model, refs[u]) for u in spk]
    X, s = list(feats.values()), list(spk.values())
    si = sum(speaker_fmllr_stats(model, X, graphs, s).values())
    ad = sum(speaker_fmllr_stats(model, X, graphs, s, out.transforms).values())
    assert ad.log_likelihood / ad.n_frames > si.log_likelihood / si.n_frames + 0.5


def test_decode_adapted_without_speakers_adapts_each_utterance(si_trainer):
    model = si_trainer.model
    feats, _, _, _ = synthetic_corpus(n_utts=2, seed=10)
    out = decode_adapted(model, decoding_graph(model, "word-loop"), {"x": feats[0], "y": feats[1]},
                         min_count=5.0)
    assert set(out.adapted) == {"x", "y"} and set(out.transforms) <= {"x", "y"}


def test_transcript_graph_with_a_subset_lexicon_uses_the_models_phones(si_trainer):
    model = si_trainer.model
    sub = Lexicon({"b": ["B"]})  # phones [B, sil]: indices differ from the model's [A, B, C, sil]
    g_sub, g_model = transcript_graph(model, ["b"], sub), transcript_graph(model, ["b"])
    np.testing.assert_array_equal(g_sub.state_pdf, g_model.state_pdf)
    with pytest.raises(InvalidInputError, match="not in the model"):
        transcript_graph(model, ["z"], Lexicon({"z": ["Z"]}))


# --------------------------------------------------------------------------
# MAP means (HERest MAP) through the one estimator
# --------------------------------------------------------------------------

def test_map_tau_closed_form():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 2)) + 3.0
    resp = rng.dirichlet([1.0, 1.0, 1.0], size=80)
    stats = GaussianStats.from_posteriors(X, resp, "diag")
    prev = GaussianParams("diag", rng.normal(size=(3, 2)), np.ones((3, 2)), np.full((1, 3), 1 / 3))
    for tau in (0.0, 5.0, 1e9):
        new, _ = update_gaussians(stats, "diag", GaussianUpdateOptions(map_tau=tau), prev, params="m")
        want = (tau * prev.means + resp.T @ X) / (tau + resp.sum(0))[:, None]
        np.testing.assert_allclose(new.means, want, rtol=1e-12)
        np.testing.assert_array_equal(new.covars, prev.covars)
    np.testing.assert_allclose(new.means, prev.means, atol=1e-6)  # tau -> inf: the prior
    with pytest.raises(InvalidInputError, match="previous"):
        update_gaussians(stats, "diag", GaussianUpdateOptions(map_tau=1.0))
    with pytest.raises(InvalidParameterError, match="not both"):
        GaussianUpdateOptions(map_tau=1.0, means_weight=2.0).validate()
    with pytest.raises(InvalidParameterError, match="map_tau"):
        GaussianUpdateOptions(map_tau=-1.0).validate()


def test_map_adapt_phone_models(si_trainer):
    model = si_trainer.model
    feats, texts, _, _ = synthetic_corpus(n_utts=10, seed=11)
    X = distort(feats, np.eye(D), np.array([0.8, -0.5, 0.3]))  # a shifted speaker
    graphs = [transcript_graph(model, w) for w in texts]
    st = sum(speaker_fmllr_stats(model, X, graphs, ["s"] * 10, gaussian=True).values())
    tau = 10.0
    adapted = map_adapt(model, st, tau)
    g = st.gaussian
    np.testing.assert_allclose(adapted.means_, (tau * model.means_ + g.s1) / (tau + g.n)[:, None], rtol=1e-12)
    np.testing.assert_array_equal(adapted.covars_, model.covars_)
    assert adapted is not model and not np.shares_memory(adapted.means_, model.means_)
    after = sum(speaker_fmllr_stats(adapted, X, graphs, ["s"] * 10).values())
    assert after.log_likelihood > st.log_likelihood
    with pytest.raises(InvalidInputError, match="gaussian=True"):
        map_adapt(model, sum(speaker_fmllr_stats(model, X, graphs, ["s"] * 10).values()))
    assert identity_transform(D).shape == (D, D + 1)


def test_map_adapt_keeps_unseen_gaussians_quietly(si_trainer, caplog):
    """A speaker's few utterances leave most Gaussians without data: MAP keeps their prior means by
    definition, so that is no warning (one per speaker and pass flooded the FSDD recipe's log)."""
    model = si_trainer.model
    feats, texts, _, _ = synthetic_corpus(n_utts=1, seed=13)
    st = sum(speaker_fmllr_stats(model, feats, [transcript_graph(model, texts[0])], ["s"], gaussian=True).values())
    unseen = st.gaussian.n <= 1e-6
    assert unseen.any()
    with caplog.at_level(logging.WARNING):
        adapted = map_adapt(model, st, 10.0)
    assert not caplog.records
    np.testing.assert_array_equal(adapted.means_.reshape(len(unseen), -1)[unseen],
                                  model.means_.reshape(len(unseen), -1)[unseen])


def test_decode_adapted_first_pass_from_a_speaker_independent_model(si_trainer):
    """A SAT model adapts from the hypotheses of the speaker-independent one (Kaldi's alimdl)."""
    model = si_trainer.model
    feats, texts, _, _ = synthetic_corpus(n_utts=6, seed=12)
    feats = {f"u{i}": x for i, x in enumerate(feats)}
    graph = decoding_graph(model, "word-loop")
    own = decode_adapted(model, graph, feats, silence_weight=1.0, min_count=5.0)
    same = decode_adapted(model, graph, feats, silence_weight=1.0, min_count=5.0, si_model=copy.deepcopy(model))
    given = decode_adapted(model, graph, feats, silence_weight=1.0, min_count=5.0, first_pass=own.first)
    for out in (same, given):
        assert {u: r.words for u, r in out.adapted.items()} == {u: r.words for u, r in own.adapted.items()}
        assert all(np.array_equal(out.transforms[s], own.transforms[s]) for s in own.transforms)
    other = EmbeddedTrainer(Lexicon({"ab": ["A", "B"]}))
    other.flat_start(list(feats.values()))
    with pytest.raises(InvalidParameterError, match="first-pass model"):
        decode_adapted(model, graph, feats, si_model=other.model)


def test_decode_adapted_offset_only_transforms(si_trainer):
    model = si_trainer.model
    feats, _, _, _ = synthetic_corpus(n_utts=6, seed=13)
    feats = {f"u{i}": x + 0.7 for i, x in enumerate(feats)}  # a shifted speaker
    out = decode_adapted(model, decoding_graph(model, "word-loop"), feats, {u: "s" for u in feats},
                         silence_weight=1.0, update_type="offset")
    W = out.transforms["s"]
    np.testing.assert_array_equal(W[:, :-1], np.eye(D))
    np.testing.assert_allclose(W[:, -1], -0.7, atol=0.15)


def test_speaker_statistics_do_not_depend_on_the_thread_count(si_trainer):
    """Utterances run on threads but are summed in utterance order: 1 and 2 threads agree to the last bit."""
    import gmmhmm  # noqa: PLC0415

    model = si_trainer.model
    feats, texts, _, _ = synthetic_corpus(n_utts=12, seed=7)
    X = distort(feats, *distortion(1))
    graphs = [transcript_graph(model, w) for w in texts]
    spk = ["a", "b", "c"] * 4
    transforms = {"b": np.hstack([1.1 * np.eye(D), np.ones((D, 1))])}
    previous = gmmhmm.set_num_threads(1)
    try:
        results = []
        for n in (1, 2):
            gmmhmm.set_num_threads(n)
            results.append(speaker_fmllr_stats(model, X, graphs, spk, transforms, gaussian=True))
    finally:
        gmmhmm.set_num_threads(previous)
    one, two = results
    assert list(one) == list(two) == ["a", "b", "c"]
    for s in one:
        assert one[s].log_likelihood == two[s].log_likelihood and one[s].fmllr.beta == two[s].fmllr.beta
        for a, b in [(one[s].fmllr.K, two[s].fmllr.K), (one[s].fmllr.G, two[s].fmllr.G),
                     (one[s].gaussian.s2, two[s].gaussian.s2)]:
            np.testing.assert_array_equal(a, b)
