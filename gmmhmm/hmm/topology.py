"""HMM topologies: initial (startprob, transmat) pairs with structural zeros.

Baum-Welch updates are multiplicative, so a transition that starts at
exactly zero stays exactly zero (and the models' M-step additionally keeps
zeros zero whatever the Dirichlet priors say). To train from a topology,
set the parameters yourself and keep ``'s'``/``'t'`` out of ``init_params``::

    model = GaussianHMM(n_components=5, init_params="mc")
    model.startprob_, model.transmat_ = left_to_right(5)
    model.fit(X, lengths)
"""

from __future__ import annotations

import numpy as np

from .._validation import check_positive_int


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


def left_to_right(n_states: int, max_jump: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Bakis (left-to-right) topology.

    The model starts in state 0; from state ``i`` it may stay or move to
    ``i + 1 ... i + max_jump`` (uniformly); the last state is absorbing.
    A sequence must therefore be at least ``ceil((n_states - 1) / max_jump) + 1``
    frames long to reach it; scoring a shorter one raises
    :class:`gmmhmm.errors.SequenceTooShortError` only when the model also
    forbids ending early, which this topology does not (any state may end).

    Returns
    -------
    startprob : ndarray of shape (n_states,)
    transmat : ndarray of shape (n_states, n_states), upper triangular band
    """
    n_states = check_positive_int(n_states, "n_states")
    max_jump = check_positive_int(max_jump, "max_jump")
    startprob = np.zeros(n_states)
    startprob[0] = 1.0
    transmat = np.zeros((n_states, n_states))
    for i in range(n_states):
        stop = min(n_states, i + max_jump + 1)
        transmat[i, i:stop] = 1.0 / (stop - i)
    return startprob, transmat
