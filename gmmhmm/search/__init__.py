"""Search: token passing over decoding graphs (HVite, Kaldi's lattice-faster-decoder).

Takes a (T, n_pdf) log-likelihood matrix and a graph; knows nothing of
files, datasets or the front end.

* :mod:`.grammar`        word-level grammars with null nodes: word loop, word list, ARPA n-gram (backoff arcs)
* :mod:`.graph`          grammar x lexicon x phone topology -> :class:`DecodingGraph`
* :mod:`.options`        :class:`SearchOptions` (beam, max_active, insertion penalty, LM scale, n-best)
* :mod:`.token_passing`  the search (:func:`decode`, or :class:`TokenPassing` block by block), word-link
  records, n-best, CTM

Example::

    g = compile_graph(ngram_grammar(read_arpa("lm.arpa")), lexicon, model.transition_log_probs(),
                      model.n_states, model.phones)
    result = decode(g, model.state_log_likelihood(X), SearchOptions(beam=250, word_insertion_penalty=-10))
    result.words, result.word_segments(), result.n_best
"""

from .grammar import Grammar, ngram_grammar, word_list, word_loop
from .graph import DecodingGraph, compile_graph
from .options import SearchOptions
from .token_passing import DecodeResult, Hypothesis, TokenPassing, WordSegment, decode, to_ctm

__all__ = ["DecodeResult", "DecodingGraph", "Grammar", "Hypothesis", "SearchOptions", "TokenPassing", "WordSegment",
           "compile_graph", "decode", "ngram_grammar", "to_ctm", "word_list", "word_loop"]
