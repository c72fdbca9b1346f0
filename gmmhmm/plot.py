"""Pictures people look at: a decoded HMM over its data, and a forced alignment.

matplotlib is optional (``pip install 'gmmhmm[plot]'``); without it these
functions raise :class:`~gmmhmm.errors.MissingDependencyError`. They draw on
the axes given (or a new figure) and return the figure, leaving display and
saving to the caller; :func:`save_figure` writes a PNG atomically.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import InvalidInputError, MissingDependencyError
from .modelfile import atomic_write


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError(
            "plotting needs matplotlib, which is not installed: pip install 'gmmhmm[plot]'") from None
    return plt


def _axes(ax, n_rows: int, figsize: tuple[float, float]):
    if ax is not None:
        axes = list(np.atleast_1d(ax))
        if len(axes) != n_rows:
            raise InvalidInputError(f"this plot needs {n_rows} axes, got {len(axes)}")
        return axes[0].figure, axes
    fig, axes = _pyplot().subplots(n_rows, 1, figsize=figsize, sharex=True, squeeze=False)
    return fig, list(axes[:, 0])


def plot_hmm(model: Any, X: Any, lengths: Any = None, *, feature: int = 0, ax: Any = None):
    """Decoded state sequence over the data, with the decoded states' means.

    Top: feature ``feature`` of ``X`` over frames, coloured by the Viterbi state,
    and the mean of that state drawn as a step line (for a GMM-HMM, the
    weighted mean of the state's mixture). Bottom: the state index over frames.
    Sequence boundaries (``lengths``) are drawn as dashed lines.

    Parameters
    ----------
    model : fitted GaussianHMM or GMMHMM (anything with ``decode`` and ``means_``)
    X : (n_samples, n_features) array
    lengths : sequence lengths, as for ``model.decode``
    feature : which feature column to draw
    ax : two matplotlib axes to draw on, or None for a new figure

    Returns
    -------
    matplotlib.figure.Figure
    """
    X = np.asarray(X, dtype=np.float64)
    _, states = model.decode(X, lengths)
    if not 0 <= feature < X.shape[1]:
        raise InvalidInputError(f"feature must be in [0, {X.shape[1]}), got {feature}")
    means = np.asarray(model.means_)
    if means.ndim == 3:  # GMMHMM (S, M, D): each state's mixture mean
        means = np.einsum("sm,smd->sd", np.asarray(model.weights_), means)
    fig, (top, bottom) = _axes(ax, 2, (10, 5))
    t = np.arange(len(X))
    cmap = _pyplot().get_cmap("tab10")
    top.scatter(t, X[:, feature], c=[cmap(s % 10) for s in states], s=6, lw=0)
    top.step(t, means[states, feature], where="mid", color="black", lw=1, label="state mean")
    top.set_ylabel(f"feature {feature}")
    top.legend(loc="upper right", fontsize=8)
    bottom.step(t, states, where="mid", color="black", lw=1)
    bottom.set_ylabel("state")
    bottom.set_yticks(range(model.n_components))
    bottom.set_xlabel("frame")
    if lengths is not None:
        for edge in np.cumsum(np.asarray(lengths))[:-1]:
            for a in (top, bottom):
                a.axvline(edge - 0.5, color="grey", ls="--", lw=0.8)
    return fig


def plot_alignment(signal: Any, sample_rate_hz: int, words: Sequence[Any], phones: Sequence[Any] = (),
                   *, title: str = "", ax: Any = None):
    """Waveform (top) and spectrogram (bottom) with word and phone boundaries.

    ``words`` and ``phones`` are segments with ``label``, ``start_s`` and
    ``end_s`` (as :func:`gmmhmm.graphs.force_align` returns in ``Path.words``
    and ``Path.phones``).
    """
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise InvalidInputError(f"signal must be a non-empty 1-D array, got shape {x.shape}")
    fig, (wave, spec) = _axes(ax, 2, (10, 5))
    t = np.arange(x.size) / sample_rate_hz
    wave.plot(t, x, color="0.3", lw=0.5)
    nfft = min(512, 1 << int(np.log2(max(x.size, 2))))
    spec.specgram(x, NFFT=nfft, Fs=sample_rate_hz, noverlap=nfft // 2, cmap="Greys")
    spec.set_ylabel("Hz")
    spec.set_xlabel("seconds")
    for segs, a, colour in ((words, wave, "tab:blue"), (phones, spec, "tab:red")):
        top = a.get_ylim()[1]
        for seg in segs:
            a.axvline(seg.start_s, color=colour, lw=0.8)
            a.text((seg.start_s + seg.end_s) / 2, top, seg.label, ha="center", va="bottom",
                   fontsize=8, color=colour, clip_on=False)
    if title:
        fig.suptitle(title)
    return fig


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 100) -> None:
    """Write ``fig`` as a PNG atomically, then close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    _pyplot().close(fig)
    atomic_write(path, lambda f: f.write(buf.getvalue()))
