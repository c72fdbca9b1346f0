"""Phone models trained from word transcripts, forced alignment and graph decoding.

* :mod:`.lexicon`   pronunciation lexicon and transcripts (``Lexicon.digits()`` ships)
* :mod:`.graph`     unit networks -> emitting-state graphs (utterance HMMs)
* :mod:`.kernels`   compiled sparse forward-backward and token-passing Viterbi
* :mod:`.models`    :class:`PhoneModelSet`, 3-state phone HMMs with diagonal GMMs
* :mod:`.training`  embedded Baum-Welch: ``accumulate`` / ``update`` / mixture splitting
* :mod:`.alignment` forced alignment (exact Viterbi) to CTM and TextGrid

Decoding with grammars and language models is :mod:`gmmhmm.search`.
"""

from .alignment import Path, Segment, force_align, to_ctm, to_textgrid, viterbi_path, write_alignment
from .graph import Graph, build_graph, utterance_graph
from .lexicon import DIGIT_WORDS, Lexicon, parse_transcripts, read_transcripts
from .models import PhoneModelSet
from .training import EmbeddedStats, EmbeddedTrainer

__all__ = [
    "DIGIT_WORDS", "EmbeddedStats", "EmbeddedTrainer", "Graph", "Lexicon", "Path", "PhoneModelSet", "Segment",
    "build_graph", "force_align", "parse_transcripts", "read_transcripts", "to_ctm", "to_textgrid", "utterance_graph",
    "viterbi_path", "write_alignment",
]
