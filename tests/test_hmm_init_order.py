"""Initialisation does not depend on the order of the sequences (hmmlearn issue 410)."""

from __future__ import annotations

import numpy as np
import pytest

from gmmhmm import GaussianHMM, GMMHMM


def _sequences():
    rng = np.random.RandomState(4)
    return [np.concatenate([rng.normal(0, 1, (n, 2)), rng.normal(5, 1, (n // 2, 2))]) for n in (30, 45, 60, 20)]


@pytest.mark.parametrize("make", [
    lambda: GaussianHMM(3, covariance_type="diag", n_iter=0, random_state=7),
    lambda: GMMHMM(2, n_mix=2, covariance_type="tied", n_iter=0, random_state=7),
    lambda: GMMHMM(2, n_mix=3, covariance_type="spherical", n_iter=0, random_state=7),
])
def test_initial_model_is_the_same_for_every_order_of_the_sequences(make):
    seqs = _sequences()
    models = []
    for order in ([0, 1, 2, 3], [3, 1, 0, 2], [2, 3, 1, 0]):
        X = np.concatenate([seqs[i] for i in order])
        models.append(make().fit(X, [len(seqs[i]) for i in order]))
    names = ["means_", "covars_"] + (["weights_"] if hasattr(models[0], "weights_") else [])
    for other in models[1:]:
        for name in names:
            np.testing.assert_allclose(getattr(other, name), getattr(models[0], name), rtol=1e-10,
                                       err_msg=name)
