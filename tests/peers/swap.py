"""pytest plugin: run the peers' own test suites with gmmhmm's classes swapped in.

Loaded with ``-p tests.peers.swap`` by :mod:`tests.test_peer_suites`, in a
separate pytest process, so gmmhmm's own parity tests keep the real peers.
The classes are replaced before the peers' test modules are imported, so
``from sklearn.mixture import GaussianMixture`` there gets gmmhmm's.
"""

from __future__ import annotations


def pytest_configure(config):
    import hmmlearn.hmm
    import sklearn.mixture

    import gmmhmm

    hmmlearn.hmm.GaussianHMM = gmmhmm.GaussianHMM
    hmmlearn.hmm.GMMHMM = gmmhmm.GMMHMM
    sklearn.mixture.GaussianMixture = gmmhmm.GaussianMixture


def pytest_report_header(config):
    import hmmlearn.hmm
    import sklearn.mixture

    import gmmhmm

    assert hmmlearn.hmm.GaussianHMM is gmmhmm.GaussianHMM
    assert sklearn.mixture.GaussianMixture is gmmhmm.GaussianMixture
    return f"gmmhmm swapped in from {gmmhmm.__file__}"
