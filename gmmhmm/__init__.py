"""gmmhmm: Gaussian mixture models and GMM-emission HMMs for speech.

Layers, bottom to top::

    data      (Kaldi data directories, lexicons)
    features  (audio -> MFCC)
    mixture   (Gaussian densities, additive sufficient statistics, GaussianMixture)
    hmm       (compiled forward-backward / Viterbi, GaussianHMM, GMMHMM)
    graphs    (composite HMMs, embedded training, forced alignment)
    search    (log-likelihoods + decoding graph -> words: grammars, n-gram LMs, token passing, n-best)
    decoding, cli, recipes   (audio I/O around the search)

Public names are imported lazily so that ``import gmmhmm`` stays cheap and a
failure in one layer does not hide the others.
"""

from __future__ import annotations

import importlib
import logging

__version__ = "0.1.0"

# Library use is quiet by default; applications configure logging themselves.
logging.getLogger(__name__).addHandler(logging.NullHandler())

_LAZY = {
    "GaussianMixture": "gmmhmm.mixture",
    "GaussianHMM": "gmmhmm.hmm",
    "GMMHMM": "gmmhmm.hmm",
    "topology": "gmmhmm.hmm.topology",
    "save": "gmmhmm.modelfile",
    "load": "gmmhmm.modelfile",
    "errors": "gmmhmm.errors",
    "set_num_threads": "gmmhmm._threads",
    "get_num_threads": "gmmhmm._threads",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'gmmhmm' has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name])
    value = module if module.__name__.endswith("." + name) else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
