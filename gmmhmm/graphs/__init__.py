"""Phone models trained from word transcripts, forced alignment and graph decoding.

* :mod:`.lexicon`   pronunciation lexicon and transcripts (``Lexicon.digits()`` ships)
* :mod:`.graph`     unit networks -> emitting-state graphs (utterance HMMs, grammars)
* :mod:`.kernels`   compiled sparse forward-backward and token-passing Viterbi
* :mod:`.models`    :class:`PhoneModelSet`, 3-state phone HMMs with diagonal GMMs
* :mod:`.training`  embedded Baum-Welch: ``accumulate`` / ``update`` / mixture splitting
* :mod:`.alignment` forced alignment to CTM and TextGrid
* :mod:`.decoder`   Viterbi decoding with phone-loop / word-loop / word-list grammars

Who owns what: graphs are the sequence layer for models built from shared
units (phones). A :class:`Graph` owns topology only (states, arcs, start and
final weights); :class:`PhoneModelSet` owns the parameters, its emissions are
the package's one :class:`gmmhmm.hmm.emissions.GMMEmission` layout;
:mod:`.kernels` run on a ``(T, n_pdf)`` log-likelihood matrix and a graph and
know nothing of features or files. End semantics are those of the dense
models (:mod:`gmmhmm.hmm.base`): a unit is left only through its last state,
with its re-estimated leave probability as the exit; ``Graph.dense`` gives the
equivalent dense ``(startprob, transmat, endprob)``, and the tests check that
both stacks give the same likelihoods, Viterbi paths and re-estimates.
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
