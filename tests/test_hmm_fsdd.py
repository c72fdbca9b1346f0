"""Integration: left-to-right word HMMs on real FSDD recordings."""

from __future__ import annotations

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


def test_left_to_right_digit_models_classify_held_out_takes(fsdd_path):
    train, test = official_split([u for u in list_fsdd(fsdd_path) if u.speaker in SPEAKERS
                                  and u.digit in DIGITS])
    train = [u for u in train if u.index < 20]  # keep the test fast: 15 takes per speaker
    models = {}
    for digit in DIGITS:
        seqs = _features([u for u in train if u.digit == digit])
        X, lengths = np.concatenate(seqs), [len(s) for s in seqs]
        model = GaussianHMM(N_STATES, covariance_type="diag", n_iter=8, init_params="mc",
                            implementation="scaling", random_state=0, covars_floor_fraction=0.01)
        model.startprob_, model.transmat_ = topology.left_to_right(N_STATES)
        model.endprob_ = np.eye(N_STATES)[-1]  # a word ends in its last state
        model.fit(X, lengths)
        assert np.all(model.transmat_[np.tril_indices(N_STATES, -1)] == 0)
        assert model.startprob_[0] == 1.0
        history = list(model.monitor_.history)
        assert history[-1] >= history[0]
        models[digit] = model
    test_feats = _features(test)
    predicted = [max(DIGITS, key=lambda d: models[d].score(x)) for x in test_feats]
    accuracy = np.mean([p == u.digit for p, u in zip(predicted, test)])
    assert len(test) == len(DIGITS) * len(SPEAKERS) * 5
    assert accuracy >= 0.9, accuracy
