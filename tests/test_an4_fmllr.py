"""Unsupervised fMLLR on an AN4 slice: the adapted second pass fits better than the first.

Monophones trained on four AN4 training speakers; a fifth training speaker
(one of the recipe's dev speakers, never a test speaker) is decoded with a
bigram LM, adapted from its first-pass hypotheses, and decoded again. Fails
loudly (never skips) when ../shared/data/an4 is missing.
"""

from __future__ import annotations

import pytest

from gmmhmm.adapt import speaker_fmllr_stats, transcript_graph
from gmmhmm.data import DataDir, Lexicon
from gmmhmm.decoding import decode_adapted, decoding_graph
from gmmhmm.features import FeatureConfig, extract_many
from gmmhmm.graphs import EmbeddedTrainer
from gmmhmm.lm import estimate
from gmmhmm.scoring import error_rates
from gmmhmm.search import SearchOptions

from conftest import REPO_ROOT, load_script

an4 = load_script("recipes/an4.py")
prepare_an4 = load_script("data_scripts/prepare_an4.py")

TRAIN = ["fash", "fbbh", "mblb", "mcen"]
ADAPT = "mblw"  # a dev speaker of configs/an4.toml: a training speaker


@pytest.fixture(scope="module")
def slice_models(an4_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("an4_fmllr")
    prepare_an4.prepare(an4_path, out)
    cfg = an4.load_config(REPO_ROOT / "configs" / "an4.toml")
    train = DataDir.read(out / "train")
    lexicon = Lexicon.read(out / "lexicon.txt")
    utts = [u for s in TRAIN + [ADAPT] for u in train.spk2utt[s]]
    fc = FeatureConfig.from_dict(cfg["features"])
    feats, failures = extract_many([train.wav[u] for u in utts], fc,
                                   utt2spk={train.wav[u]: train.utt2spk[u] for u in utts})
    assert not failures
    feats = {u: feats[train.wav[u]] for u in utts}
    fit = [u for u in utts if train.utt2spk[u] in TRAIN]
    trainer = EmbeddedTrainer(lexicon, n_states=3, sil_prob=0.5, var_floor_frac=0.01, feature_config=fc.to_dict())
    trainer.fit([feats[u] for u in fit], [train.text[u] for u in fit], mixtures=(1, 2, 4), n_iter=(3, 2, 2))
    lm = estimate([train.text[u] for u in fit], order=2, method="witten-bell")
    held = {u: feats[u] for u in train.spk2utt[ADAPT]}
    return trainer.model, lexicon, lm, held, train, out


def test_unsupervised_fmllr_raises_the_likelihood_on_an_unseen_speaker(slice_models):
    model, lexicon, lm, held, train, _ = slice_models
    graph = decoding_graph(model, "lm", lexicon, lm)
    opts = SearchOptions(beam=130.0, max_active=5000, lm_scale=8.0, word_insertion_penalty=-10.0)
    spk = {u: ADAPT for u in held}
    out = decode_adapted(model, graph, held, spk, opts, lexicon)
    assert list(out.transforms) == [ADAPT] and not out.errors
    utts = list(held)
    X, speakers = [held[u] for u in utts], [ADAPT] * len(utts)

    def per_frame(hyps, transforms):
        graphs = [transcript_graph(model, hyps[u], lexicon) for u in utts]
        st = speaker_fmllr_stats(model, X, graphs, speakers, transforms)[ADAPT]
        return st.log_likelihood / st.n_frames

    first = per_frame({u: out.first[u].words for u in utts}, None)
    second = per_frame({u: out.adapted[u].words for u in utts}, out.transforms)
    refs_si = per_frame({u: train.text[u] for u in utts}, None)
    refs_ad = per_frame({u: train.text[u] for u in utts}, out.transforms)
    # best paths of each pass, and the references, Jacobian included
    assert second > first + 0.5, (first, second)
    assert refs_ad > refs_si + 0.5, (refs_si, refs_ad)
    wer = [error_rates([train.text[u] for u in utts], [r[u].words for u in utts]).error_rate
           for r in (out.first, out.adapted)]
    print(f"{ADAPT}: log-lik/frame {first:.3f} -> {second:.3f}; %WER {100 * wer[0]:.1f} -> {100 * wer[1]:.1f}")
    assert wer[1] <= wer[0] + 0.05  # one speaker's dozen utterances: no worse beyond noise


def test_cli_decode_fmllr_is_decode_adapted(slice_models, tmp_path):
    """`gmmhmm decode --fmllr` on a data dir: speakers from its utt2spk, the library's two passes."""
    from gmmhmm import save
    from gmmhmm.cli import main
    from gmmhmm.lm import write_arpa

    model, lexicon, lm, held, train, _ = slice_models
    save(model, tmp_path / "m.npz")
    write_arpa(lm, tmp_path / "lm.arpa")
    train.subset(sorted(held)).write(tmp_path / "data")
    argv = ["decode", str(tmp_path / "m.npz"), str(tmp_path / "data"), "--lm", str(tmp_path / "lm.arpa"),
            "--beam", "130", "--max-active", "5000", "--lm-scale", "8", "--insertion-penalty", "-10"]
    assert main(argv + ["-o", str(tmp_path / "hyp"), "--fmllr"]) == 0
    assert main(argv + ["-o", str(tmp_path / "hyp_si")]) == 0
    graph = decoding_graph(model, "lm", lexicon, lm)
    opts = SearchOptions(beam=130.0, max_active=5000, lm_scale=8.0, word_insertion_penalty=-10.0)
    out = decode_adapted(model, graph, held, {u: ADAPT for u in held}, opts)
    assert main(argv + ["-o", str(tmp_path / "x"), "--si-model", str(tmp_path / "m.npz")]) == 1  # needs --fmllr
    assert not (tmp_path / "x").exists()
    for name, results in (("hyp", out.adapted), ("hyp_si", out.first)):
        got = {k: w.split() for k, w, _ in (ln.split("\t") for ln in (tmp_path / name).read_text().splitlines())}
        assert got == {u: r.words for u, r in results.items()}
