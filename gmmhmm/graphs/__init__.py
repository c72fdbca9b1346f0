"""Phone models trained from word transcripts, forced alignment and graph decoding.

* :mod:`.lexicon`   pronunciation lexicon and transcripts (``Lexicon.digits()`` ships)
* :mod:`.graph`     unit networks -> emitting-state graphs (utterance HMMs)
* :mod:`.kernels`   compiled sparse forward-backward and token-passing Viterbi
* :mod:`.models`    :class:`PhoneModelSet`, 3-state phone HMMs with diagonal GMMs
* :mod:`.training`  embedded Baum-Welch: ``accumulate`` / ``update`` / mixture splitting
* :mod:`.alignment` forced alignment (exact Viterbi) to CTM and TextGrid
* :mod:`.context`   which pdf a phone state in context uses (monophones: ``MonophoneContext``)
* :mod:`.tree`      ``TreeContext``: tied-state triphones, one decision tree per phone state
* :mod:`.tree_stats` per-triphone-state Gaussian statistics from alignments (additive)
* :mod:`.questions` phone sets asked of the contexts: phone classes and clustered phones
* :mod:`.tree_build` growing the trees by likelihood gain
* :mod:`.triphones` the tri1 step: monophones -> tree -> tied model -> Baum-Welch and mix-up

Decoding with grammars and language models is :mod:`gmmhmm.search`.

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

from .alignment import Path, Segment, force_align, to_ctm, to_textgrid, viterbi_path, write_alignment
from .context import ContextDependency, MonophoneContext
from .graph import Graph, build_graph, utterance_graph
from .lexicon import DIGIT_WORDS, Lexicon, parse_transcripts, read_transcripts
from .models import PhoneModelSet
from .training import EmbeddedStats, EmbeddedTrainer
from .tree import TreeContext
from .tree_build import build_tree
from .tree_stats import TreeStats, accumulate_tree_stats
from .triphones import init_tied_model, train_triphones

__all__ = [
    "DIGIT_WORDS", "ContextDependency", "EmbeddedStats", "EmbeddedTrainer", "Graph", "Lexicon", "MonophoneContext",
    "Path", "PhoneModelSet", "Segment", "TreeContext", "TreeStats", "accumulate_tree_stats", "build_graph",
    "build_tree", "force_align", "init_tied_model", "parse_transcripts", "read_transcripts", "to_ctm", "to_textgrid",
    "train_triphones", "utterance_graph", "viterbi_path", "write_alignment",
]
