"""Model files with the real gmmhmm models: fitted GaussianHMM / GMMHMM round trips."""

from __future__ import annotations

import numpy as np
import pytest

from gmmhmm import modelfile
from gmmhmm.hmm import GMMHMM, GaussianHMM
from gmmhmm.mixture import GaussianMixture

# Idempotent; GaussianMixture registers itself once the model layers are integrated.
modelfile.register_model_class(GaussianMixture)


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(240, 3))
    X[120:] += 3.0
    return X, [80, 80, 80]


def _assert_bitwise_same(a, b):
    assert type(a) is type(b)
    for name, value in a.get_params().items():
        other = b.get_params()[name]
        if isinstance(value, np.ndarray):
            assert value.tobytes() == other.tobytes()
        else:
            assert value == other, name
    for name in type(a)._saved_attributes:
        assert hasattr(a, name) == hasattr(b, name), name
        if hasattr(a, name):
            x, y = np.asarray(getattr(a, name)), np.asarray(getattr(b, name))
            assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), name


@pytest.mark.parametrize("cls, kwargs", [
    (GaussianHMM, {"covariance_type": "diag"}),
    (GaussianHMM, {"covariance_type": "tied"}),
    (GMMHMM, {"covariance_type": "diag", "n_mix": 2}),
    (GMMHMM, {"covariance_type": "full", "n_mix": 2}),
])
def test_fitted_hmm_round_trip(tmp_path, cls, kwargs):
    X, lengths = _data()
    model = cls(n_components=2, n_iter=3, random_state=0, **kwargs).fit(X, lengths)
    path = tmp_path / "hmm.npz"
    model.save(path, metadata={"labels": ["a", "b"]})
    back = cls.load(path)
    _assert_bitwise_same(model, back)
    assert back.score(X, lengths) == model.score(X, lengths)
    np.testing.assert_array_equal(back.predict(X, lengths), model.predict(X, lengths))
    info = modelfile.describe(path)
    assert info["class"] == cls.__name__ and info["metadata"] == {"labels": ["a", "b"]}
    assert info["attributes"]["means_"]["shape"] == list(np.shape(model.means_))



def test_exit_probabilities_round_trip(tmp_path):
    from gmmhmm.hmm import topology

    X, lengths = _data()
    model = GMMHMM(3, n_mix=2, n_iter=3, random_state=0, init_params="mcw")
    model.startprob_, model.transmat_, model.endprob_ = topology.left_to_right(3, exit_prob=0.5)
    model.fit(X, lengths)
    assert 0 < model.endprob_[-1] < 1 and model.endprob_[-1] != 0.5  # re-estimated
    model.save(tmp_path / "hmm.npz")
    back = GMMHMM.load(tmp_path / "hmm.npz")
    _assert_bitwise_same(model, back)
    assert back.score(X, lengths) == model.score(X, lengths)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical", "tied"])
def test_fitted_gaussian_mixture_round_trip(tmp_path, covariance_type, dtype):
    X, _ = _data()
    means_init = np.array([[0.0, 0.0, 0.0], [3.0, 3.0, 3.0]])
    gmm = GaussianMixture(2, covariance_type=covariance_type, means_init=means_init,
                          random_state=0, dtype=dtype).fit(X)
    assert gmm.means_.dtype == dtype
    path = tmp_path / "gmm.npz"
    modelfile.save(gmm, path)
    back = modelfile.load(path)
    _assert_bitwise_same(gmm, back)
    assert back.get_params()["dtype"] == dtype and back.means_.dtype == dtype
    assert back.lower_bounds_ == gmm.lower_bounds_
    assert back.precisions_.dtype == gmm.precisions_.dtype
    np.testing.assert_array_equal(back.precisions_, gmm.precisions_)
    np.testing.assert_array_equal(back.score_samples(X), gmm.score_samples(X))
    np.testing.assert_array_equal(back.predict_proba(X), gmm.predict_proba(X))
