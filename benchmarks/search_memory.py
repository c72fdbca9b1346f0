"""Memory of token-passing search on a long input with a large vocabulary.

Builds a synthetic lexicon of ``--vocab`` words (3-7 phones drawn from
``--phones`` phones, 3 states each), a word loop over it (optional silence,
every word equally likely), and decodes ``--minutes`` of random
log-likelihoods at 100 frames per second, fed to
:class:`gmmhmm.search.TokenPassing` one minute at a time (the way a
recogniser reads a long recording). Reports the peak of Python/numpy
allocations during the search (tracemalloc; the graph is built before
tracing starts and reported separately), the growth of the process's max
RSS, what a dense frames x states back-pointer table would need (int32, as
the old Viterbi kernel kept), the peak number of active tokens and live
word-link records, and the real-time factor. Last line: JSON.

    python benchmarks/search_memory.py [--minutes 60] [--vocab 5000] [--beam 200] [--max-active 2000]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gmmhmm.graphs import Lexicon  # noqa: E402
from gmmhmm.search import SearchOptions, TokenPassing, compile_graph, word_loop  # noqa: E402

MB = 1024 * 1024
FRAMES_PER_MINUTE = 6000


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def synthetic_lexicon(n_words: int, n_phones: int, rng: np.random.Generator) -> Lexicon:
    phones = [f"p{i:02d}" for i in range(n_phones)]
    lines = (f"w{i:05d} {' '.join(rng.choice(phones, size=rng.integers(3, 8)))}\n" for i in range(n_words))
    return Lexicon.from_text("".join(lines), "synthetic")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--vocab", type=int, default=5000)
    ap.add_argument("--phones", type=int, default=40)
    ap.add_argument("--beam", type=float, default=200.0)
    ap.add_argument("--max-active", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    n_states = 3
    lexicon = synthetic_lexicon(args.vocab, args.phones, rng)
    n_pdf = len(lexicon.phones) * n_states
    self_loop = rng.uniform(0.5, 0.8, n_pdf)
    t0 = time.perf_counter()
    graph = compile_graph(word_loop(lexicon.words), lexicon, (np.log(self_loop), np.log1p(-self_loop)), n_states)
    build_s = time.perf_counter() - t0
    options = SearchOptions(beam=args.beam, max_active=args.max_active, word_insertion_penalty=-10.0)
    TokenPassing(graph, options).advance(rng.normal(size=(2, n_pdf)))  # compile the kernels first
    n_frames = int(round(args.minutes * FRAMES_PER_MINUTE))

    rss0 = max_rss_mb()
    tracemalloc.start()
    t0 = time.perf_counter()
    search = TokenPassing(graph, options)
    for start in range(0, n_frames, FRAMES_PER_MINUTE):
        n = min(FRAMES_PER_MINUTE, n_frames - start)
        # random frame scores, a little peaked so that paths compete as in speech
        search.advance(rng.normal(-60.0, 8.0, size=(n, n_pdf)))
    result = search.result()
    search_s = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    dense_bytes = n_frames * graph.n_nodes * 4
    report = {
        "minutes": args.minutes, "frames": n_frames, "vocab": args.vocab, "graph_nodes": graph.n_nodes,
        "graph_arcs": graph.n_arcs, "graph_mb": graph.nbytes() / MB, "graph_build_s": build_s,
        "beam": args.beam, "max_active": args.max_active,
        "peak_traced_mb": peak / MB, "rss_growth_mb": max_rss_mb() - rss0,
        "input_block_mb": min(n_frames, FRAMES_PER_MINUTE) * n_pdf * 8 / MB,
        "dense_backpointer_table_mb": dense_bytes / MB,
        "peak_active_tokens": result.stats["peak_active"], "peak_records_held": result.stats["peak_records"],
        "garbage_collections": result.stats["garbage_collections"], "words_decoded": len(result.words),
        "search_s": search_s, "real_time_factor": search_s / (args.minutes * 60.0),
    }
    print(f"{args.minutes:g} min ({n_frames} frames), {args.vocab}-word loop: {graph.n_nodes} nodes, "
          f"{graph.n_arcs} arcs ({report['graph_mb']:.1f} MB graph, built in {build_s:.1f} s)")
    print(f"search peak traced memory {report['peak_traced_mb']:.1f} MB (max RSS grew "
          f"{report['rss_growth_mb']:.1f} MB; input block {report['input_block_mb']:.1f} MB); "
          f"a dense T x S back-pointer table would need {report['dense_backpointer_table_mb']:.0f} MB")
    print(f"peak active tokens {report['peak_active_tokens']}, word-link records held at most "
          f"{report['peak_records_held']}, {report['garbage_collections']} collections, "
          f"{report['words_decoded']} words; {search_s:.1f} s, real-time factor {report['real_time_factor']:.4f}")
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
