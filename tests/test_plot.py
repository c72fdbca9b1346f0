"""gmmhmm.plot: what is drawn matches the model, and matplotlib stays optional."""

from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from gmmhmm import GaussianHMM, GMMHMM  # noqa: E402
from gmmhmm.errors import MissingDependencyError  # noqa: E402
from gmmhmm.graphs import Segment  # noqa: E402
from gmmhmm.plot import plot_alignment, plot_hmm, save_figure  # noqa: E402


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(m, 0.3, size=(40, 2)) for m in (-4, 0, 4, 0, -4)])
    return X, [100, 100]


@pytest.mark.parametrize("cls", [GaussianHMM, GMMHMM])
def test_plot_hmm_draws_the_decoded_states_and_their_means(cls, data):
    X, lengths = data
    model = cls(n_components=3, n_iter=10, random_state=0).fit(X, lengths)
    fig = plot_hmm(model, X, lengths, feature=1)
    top, bottom = fig.axes
    _, states = model.decode(X, lengths)
    means = model.means_ if model.means_.ndim == 2 else np.einsum("sm,smd->sd", model.weights_, model.means_)
    np.testing.assert_allclose(top.lines[0].get_ydata(), means[states, 1])
    np.testing.assert_array_equal(bottom.lines[0].get_ydata(), states)
    np.testing.assert_allclose(top.collections[0].get_offsets()[:, 1], X[:, 1])
    # one dashed boundary per sequence break, on both axes
    assert sum(line.get_linestyle() == "--" for line in top.lines) == 1


def test_plot_alignment_marks_every_boundary(tmp_path):
    sr = 8000
    signal = np.sin(np.arange(sr) / 5.0)
    words = [Segment("sil", 0, 30, 0.0, 0.3), Segment("one", 30, 100, 0.3, 1.0)]
    phones = [Segment("sil", 0, 30, 0.0, 0.3), Segment("w", 30, 50, 0.3, 0.5), Segment("ah", 50, 100, 0.5, 1.0)]
    fig = plot_alignment(signal, sr, words, phones, title="u1")
    wave, spec = fig.axes[:2]
    assert [t.get_text() for t in wave.texts] == ["sil", "one"]
    assert [t.get_text() for t in spec.texts] == ["sil", "w", "ah"]
    save_figure(fig, tmp_path / "a.png")
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_matplotlib_is_a_clear_error(monkeypatch, data):
    X, lengths = data
    model = GaussianHMM(n_components=2, n_iter=2, random_state=0).fit(X, lengths)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # import now fails
    with pytest.raises(MissingDependencyError, match=r"pip install 'gmmhmm\[plot\]'"):
        plot_hmm(model, X, lengths)
    with pytest.raises(ImportError):  # also an ImportError, for code that checks that
        plot_hmm(model, X, lengths)
