"""Integration: left-to-right word HMMs on real FSDD recordings."""

from __future__ import annotations

import re

import numpy as np
import pytest

from gmmhmm.datasets import list_fsdd, official_split
from gmmhmm.features import FeatureConfig, extract_many
from gmmhmm.hmm import GaussianHMM, topology

pytestmark = pytest.mark.integration

DIGITS = ("0", "1", "6")
SPEAKERS = ("jackson", "george")
N_STATES = 5


def _features(utts):
    feats, failures = extract_many([u.path for u in utts], FeatureConfig.fsdd())
    assert not failures
    return [feats[str(u.path)] for u in utts]


def _em_log_likelihoods(stderr: str) -> list[float]:
    """Per-iteration log-likelihoods from the verbose (hmmlearn-style) lines: iteration, log-prob, delta."""
    rows = [line.split() for line in stderr.splitlines() if re.fullmatch(r"\s*\d+\s+\S+\s+\S+", line)]
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1)), stderr
    return [float(r[1]) for r in rows]


def test_left_to_right_digit_models_classify_held_out_takes(fsdd_path, capsys):
    train, test = official_split([u for u in list_fsdd(fsdd_path) if u.speaker in SPEAKERS
                                  and u.digit in DIGITS])
    train = [u for u in train if u.index < 20]  # keep the test fast: 15 takes per speaker
    models = {}
    for digit in DIGITS:
        seqs = _features([u for u in train if u.digit == digit])
        X, lengths = np.concatenate(seqs), [len(s) for s in seqs]
        model = GaussianHMM(N_STATES, covariance_type="diag", n_iter=8, init_params="mc",
                            implementation="scaling", random_state=0, covars_floor_fraction=0.01,
                            verbose=True)
        # a word is left only through its last state, with a re-estimated exit probability
        model.startprob_, model.transmat_, model.endprob_ = topology.left_to_right(N_STATES, exit_prob=0.5)
        capsys.readouterr()
        model.fit(X, lengths)
        history = _em_log_likelihoods(capsys.readouterr().err)
        assert np.all(model.transmat_[np.tril_indices(N_STATES, -1)] == 0)
        assert model.startprob_[0] == 1.0
        assert len(history) == model.monitor_.iter >= 2
        assert history[-1] == pytest.approx(model.monitor_.history[-1], abs=1e-7)
        # EM never lowers the likelihood: every iteration, up to rounding
        for before, after in zip(history, history[1:]):
            assert after >= before - 1e-9 * abs(before), (digit, history)
        models[digit] = model
    test_feats = _features(test)
    predicted = [max(DIGITS, key=lambda d: models[d].score(x)) for x in test_feats]
    accuracy = np.mean([p == u.digit for p, u in zip(predicted, test)])
    assert len(test) == len(DIGITS) * len(SPEAKERS) * 5
    assert accuracy >= 0.9, accuracy
