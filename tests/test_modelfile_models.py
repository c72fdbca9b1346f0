"""Model files with the real gmmhmm models: fitted GaussianHMM / GMMHMM round trips."""

from __future__ import annotations

import numpy as np
import pytest

from gmmhmm import modelfile
from gmmhmm.hmm import GMMHMM, GaussianHMM


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

