"""Sequence layer: compiled forward-backward / Viterbi, topologies, GaussianHMM, GMMHMM.

Who owns what (each layer knows only those below it):

* :mod:`.emissions` - frames -> per-state log-likelihoods ``(N, S)`` and
  Gaussian statistics from per-state occupancies. One layout for every
  mixture model: ``GMMEmission`` stacks ``S x M`` Gaussians (``GMMHMM``
  and the phone models of :mod:`gmmhmm.graphs` both use it). Densities and
  statistics come from :mod:`gmmhmm.mixture`.
* :mod:`.kernels` - compiled dense forward-backward and Viterbi over
  ``(startprob, transmat, endprob, framelogprob)``; they know nothing of
  emissions or models. The sparse twin for graphs is
  :mod:`gmmhmm.graphs.kernels`.
* :mod:`.topology` - initial structures (ergodic, left-to-right with an
  optional final-state exit).
* :mod:`.base` - start / transition / exit parameters, their additive
  statistics (:class:`HMMStats`) and re-estimation, the EM loop, scoring
  and decoding; it never looks inside an emission. The end-of-sequence
  rule (exit probabilities, HTK style) is written down there and shared by
  the graph models.
* :mod:`.gaussian_hmm`, :mod:`.gmm_hmm` - hmmlearn-compatible models: the
  emission parameters and their M-step.
"""

from . import kernels, topology
from .base import BaseHMM, HMMStats
from .gaussian_hmm import GaussianHMM
from .gmm_hmm import GMMHMM
from .monitor import ConvergenceMonitor

__all__ = ["BaseHMM", "ConvergenceMonitor", "GMMHMM", "GaussianHMM", "HMMStats", "kernels",
           "topology"]
