"""N-gram language models (data layer: knows nothing of acoustic models or search).

- :class:`NGramModel`: a back-off model as in an ARPA file, cheap to query at word ends.
- :func:`read_arpa`, :func:`write_arpa`: ARPA files of any order.
- :func:`estimate`: bigram/trigram models from training sentences (Witten-Bell or
  modified Kneser-Ney, interpolated, written as back-off models like SRILM's ``ngram-count``).
"""

from __future__ import annotations

from .arpa import read_arpa, write_arpa
from .estimate import METHODS, estimate
from .model import BOS, EOS, NGramModel, Perplexity, log10_to_ln

__all__ = ["BOS", "EOS", "METHODS", "NGramModel", "Perplexity", "estimate", "log10_to_ln", "read_arpa",
           "write_arpa"]
