"""HMM topologies: initial (startprob, transmat) pairs with structural zeros.

Baum-Welch updates are multiplicative, so a transition that starts at
exactly zero stays exactly zero (and the models' M-step additionally keeps
zeros zero whatever the Dirichlet priors say). To train from a topology,
set the parameters yourself and keep ``'s'``/``'t'`` out of ``init_params``::

    model = GaussianHMM(n_components=5, init_params="mc")
    model.startprob_, model.transmat_ = left_to_right(5)
    model.fit(X, lengths)

A word or phone model is left only through its final state, with an exit
probability that training re-estimates (see :mod:`gmmhmm.hmm.base`)::

    model.startprob_, model.transmat_, model.endprob_ = left_to_right(5, exit_prob=0.5)
"""

from __future__ import annotations

import numpy as np

from .._validation import check_positive_int
from ..errors import InvalidParameterError


def ergodic(n_states: int) -> tuple[np.ndarray, np.ndarray]:
    """Fully connected topology: uniform start and transition probabilities.

    Returns
    -------
    startprob : ndarray of shape (n_states,)
    transmat : ndarray of shape (n_states, n_states)
    """
    n_states = check_positive_int(n_states, "n_states")
    startprob = np.full(n_states, 1.0 / n_states)
    transmat = np.full((n_states, n_states), 1.0 / n_states)
    return startprob, transmat


def left_to_right(n_states: int, max_jump: int = 1, exit_prob: float | None = None
                  ) -> tuple[np.ndarray, ...]:
    """Bakis (left-to-right) topology.

    The model starts in state 0; from state ``i`` it may stay or move to
    ``i + 1 ... i + max_jump`` (uniformly).

    Without ``exit_prob`` (hmmlearn's semantics) the last state is absorbing
    and a sequence may end in any state. With ``exit_prob`` the model is a
    word or phone model as in HTK and Kaldi: it is left only through its last
    state, which stays with ``1 - exit_prob`` and exits with ``exit_prob``
    (re-estimated by Baum-Welch as ``endprob_``), so a sequence needs at
    least ``ceil((n_states - 1) / max_jump) + 1`` frames; a shorter one raises
    :class:`gmmhmm.errors.SequenceTooShortError`::

        model.startprob_, model.transmat_, model.endprob_ = left_to_right(5, exit_prob=0.5)

    Returns
    -------
    startprob : ndarray of shape (n_states,)
    transmat : ndarray of shape (n_states, n_states), upper triangular band
    endprob : ndarray of shape (n_states,)
        Only with ``exit_prob``: ``exit_prob`` at the last state, 0 elsewhere.
    """
    n_states = check_positive_int(n_states, "n_states")
    max_jump = check_positive_int(max_jump, "max_jump")
    startprob = np.zeros(n_states)
    startprob[0] = 1.0
    transmat = np.zeros((n_states, n_states))
    for i in range(n_states):
        stop = min(n_states, i + max_jump + 1)
        transmat[i, i:stop] = 1.0 / (stop - i)
    if exit_prob is None:
        return startprob, transmat
    if not (isinstance(exit_prob, (int, float, np.floating)) and 0.0 < exit_prob <= 1.0):
        raise InvalidParameterError(f"exit_prob must be a probability in (0, 1], got {exit_prob!r}")
    endprob = np.zeros(n_states)
    endprob[-1] = exit_prob
    transmat[-1, -1] = 1.0 - exit_prob
    return startprob, transmat, endprob
