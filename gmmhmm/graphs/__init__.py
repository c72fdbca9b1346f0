"""Phone models trained from word transcripts, forced alignment and graph decoding.

* :mod:`.lexicon`   pronunciation lexicon and transcripts (``Lexicon.digits()`` ships)
* :mod:`.graph`     unit networks -> emitting-state graphs (utterance HMMs, grammars)
* :mod:`.kernels`   compiled sparse forward-backward and token-passing Viterbi
* :mod:`.models`    :class:`PhoneModelSet`, 3-state phone HMMs with diagonal GMMs
* :mod:`.training`  embedded Baum-Welch: ``accumulate`` / ``update`` / mixture splitting
* :mod:`.alignment` forced alignment to CTM and TextGrid
* :mod:`.decoder`   Viterbi decoding with phone-loop / word-loop / word-list grammars
"""

from .alignment import force_align, to_ctm, to_textgrid, write_alignment
from .decoder import Path, Segment, decode_files, make_graph, viterbi_path, viterbi_paths
from .graph import Graph, build_graph, phone_loop_graph, utterance_graph, word_list_graph, word_loop_graph
from .lexicon import DIGIT_WORDS, Lexicon, parse_transcripts, read_transcripts
from .models import PhoneModelSet
from .training import EmbeddedStats, EmbeddedTrainer

__all__ = [
    "DIGIT_WORDS", "EmbeddedStats", "EmbeddedTrainer", "Graph", "Lexicon", "Path", "PhoneModelSet", "Segment",
    "build_graph", "decode_files", "force_align", "make_graph", "parse_transcripts", "phone_loop_graph",
    "read_transcripts", "to_ctm", "to_textgrid", "utterance_graph", "viterbi_path", "viterbi_paths", "word_list_graph",
    "word_loop_graph", "write_alignment",
]
