"""Sequence layer: compiled forward-backward / Viterbi, topologies, GaussianHMM, GMMHMM."""

from . import kernels, topology
from .base import BaseHMM, HMMStats
from .gaussian_hmm import GaussianHMM
from .gmm_hmm import GMMHMM
from .monitor import ConvergenceMonitor

__all__ = ["BaseHMM", "ConvergenceMonitor", "GMMHMM", "GaussianHMM", "HMMStats", "kernels",
           "topology"]
