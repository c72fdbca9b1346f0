"""Size of context-dependent decoding graphs: an n-gram LM (the AN4 bigram) and a phone loop.

Compiles the LM x lexicon graph and the free phone loop with monophones,
with untied triphones (every triphone its own pdfs: the largest graph cross-word
contexts can give) and with triphones tied by phone classes (state 0 by the
class of the left phone, the last state by the class of the right phone, the
others by both: a stand-in for a decision tree with ``--classes`` answers per
side). Reports null and emitting nodes, arcs, megabytes and the ratio to the
monophone graph. Last line: JSON.

The LM and lexicon are the AN4 recipe's (``python recipes/an4.py --stop-stage 2``
writes them)::

    python benchmarks/context_graph.py [--arpa exp/an4/lm/bigram.arpa] [--lexicon exp/an4/data/lexicon.txt]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gmmhmm.graphs import Lexicon  # noqa: E402
from gmmhmm.graphs.context import ContextDependency, MonophoneContext  # noqa: E402
from gmmhmm.lm import read_arpa  # noqa: E402
from gmmhmm.search import compile_graph, ngram_grammar, word_loop  # noqa: E402

N_STATES = 3


class ClassTriphones(ContextDependency):
    """Triphones tied by phone classes (each phone its own class: untied); silence context independent."""

    context_width = 3

    def __init__(self, phones: Sequence[str], silence: str, n_classes: int | None = None, seed: int = 0) -> None:
        self.phones, self.n_states, self.silence = list(phones), N_STATES, silence
        self._index = {p: i for i, p in enumerate(self.phones)}
        self.k = len(self.phones) if n_classes is None else n_classes
        order = np.random.default_rng(seed).permutation(len(self.phones))
        self._class = {self.phones[i]: r % self.k for r, i in enumerate(order)}

    @property
    def n_pdfs(self) -> int:
        return len(self.phones) * self.n_states * self.k * self.k

    def pdfs(self, left: str, phone: str, right: str) -> tuple[int, ...]:
        if phone == self.silence:
            left = right = phone
        cl, cr, k, n = self._class[left], self._class[right], self.k, self.n_states
        sides = [(cl, cr if j else 0) if j < n - 1 else (0, cr) for j in range(n)]
        return tuple(((self._index[phone] * n + j) * k + a) * k + b for j, (a, b) in enumerate(sides))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arpa", type=Path, default=REPO / "exp" / "an4" / "lm" / "bigram.arpa")
    ap.add_argument("--lexicon", type=Path, default=REPO / "exp" / "an4" / "data" / "lexicon.txt")
    ap.add_argument("--classes", type=int, default=6, help="phone classes per side of the tied triphones")
    args = ap.parse_args(argv)
    for path in (args.arpa, args.lexicon):
        if not path.exists():
            sys.exit(f"{path} is missing: run `python recipes/an4.py --stop-stage 2` first (or pass --arpa/--lexicon)")
    lexicon = Lexicon.read(args.lexicon)
    phones = lexicon.phones
    phone_lexicon = Lexicon.from_text("".join(f"{p} {p}\n" for p in phones), "phones", silence=lexicon.silence)
    graphs = {"lm": (ngram_grammar(read_arpa(args.arpa)), lexicon),
              "phone-loop": (word_loop(phones, silence=False), phone_lexicon)}
    contexts = {"monophone": MonophoneContext(phones, N_STATES, lexicon.silence),
                "untied-triphone": ClassTriphones(phones, lexicon.silence),
                f"triphone-{args.classes}-classes": ClassTriphones(phones, lexicon.silence, args.classes)}
    report: dict = {"phones": len(phones), "words": len(lexicon.words)}
    for gname, (grammar, lex) in graphs.items():
        base = None
        for cname, ctx in contexts.items():
            half = np.full(ctx.n_pdfs, np.log(0.5))
            t0 = time.perf_counter()
            g = compile_graph(grammar, lex, (half, half), N_STATES, phones, context=ctx)
            row = {"null": g.n_null, "emitting": g.n_nodes - g.n_null, "arcs": g.n_arcs,
                   "mb": round(g.nbytes() / 2**20, 2), "build_s": round(time.perf_counter() - t0, 2)}
            base = base or row
            row["x_nodes"] = round(g.n_nodes / (base["null"] + base["emitting"]), 2)
            row["x_arcs"] = round(g.n_arcs / base["arcs"], 2)
            report[f"{gname}/{cname}"] = row
            print(f"{gname:10s} {cname:22s} {row['null']:7d} null {row['emitting']:8d} emitting {row['arcs']:8d} arcs "
                  f"{row['mb']:6.1f} MB  x{row['x_nodes']:.1f} nodes x{row['x_arcs']:.1f} arcs  ({row['build_s']} s)")
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
