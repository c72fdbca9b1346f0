"""Phonetic decision trees: tied-state triphones (HTK's ``TB`` trees, Kaldi's ``ContextDependency``).

One binary tree per phone state (phone ``p``, state ``j``): each inner node
asks whether the left or the right neighbour of the phone is in a set of
phones (a *question*), each leaf names a pdf. The pdfs of a triphone
``left-phone+right`` are found by walking its phone's ``n_states`` trees, so
triphones never seen in training get pdfs too (HTK's synthesised
triphones). Context-independent phones (silence) have a single leaf per
state. Trees are grown by :func:`gmmhmm.graphs.tree_build.build_tree`.

Stored flat (no nesting, whatever the depth) in ``to_dict``::

    {"kind": "tree", "phones": [...], "n_states": 3, "silence": "sil",
     "questions": [[phone, ...], ...],
     "roots": [[node of state 0, node of state 1, ...] per phone],
     "nodes": [[position, question, yes, no] or [-1, pdf, -1, -1], ...]}

where ``position`` is 0 for the left context and 1 for the right one.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InvalidParameterError, TranscriptError
from .context import ContextDependency

LEFT, RIGHT, LEAF = 0, 1, -1


class TreeContext(ContextDependency):
    """Tied-state triphones: per phone state a binary tree over left / right context questions.

    Parameters
    ----------
    phones : list of str
    n_states : int
    silence : str
    questions : list of sets of phones
    roots : list (per phone) of lists (per state) of node indices
    nodes : list of (position, question, yes, no) for inner nodes, (-1, pdf, -1, -1) for leaves

    Raises
    ------
    InvalidParameterError
        The trees are not a forest over the given nodes, a question names an
        unknown phone, or the leaves' pdfs are not ``0 .. n_pdfs - 1`` with
        each pdf inside a single phone state.
    """

    context_width = 3

    def __init__(self, phones: Sequence[str], n_states: int, silence: str,
                 questions: Sequence[Sequence[str]], roots: Sequence[Sequence[int]],
                 nodes: Sequence[Sequence[int]]) -> None:
        self.phones = [str(p) for p in phones]
        self.n_states = int(n_states)
        self.silence = silence
        self._index = {p: i for i, p in enumerate(self.phones)}
        if silence not in self._index:
            raise InvalidParameterError(f"silence phone {silence!r} is not one of the phones")
        if len(self._index) != len(self.phones):
            raise InvalidParameterError("tree phones must be distinct")
        self.questions = [frozenset(q) for q in questions]
        for k, q in enumerate(self.questions):
            unknown = sorted(q - set(self._index))
            if unknown:
                raise InvalidParameterError(f"tree question {k} names unknown phones {unknown[:5]}")
        self.roots = [[int(r) for r in rs] for rs in roots]
        self.nodes = [tuple(int(x) for x in node) for node in nodes]
        self._n_pdfs = self._check_forest()
        self._cache: dict[tuple[str, str, str], tuple[int, ...]] = {}

    def _check_forest(self) -> int:
        """Validate the structure; returns the number of pdfs."""
        if len(self.roots) != len(self.phones) or any(len(rs) != self.n_states for rs in self.roots):
            raise InvalidParameterError(f"tree roots must be {len(self.phones)} phones x {self.n_states} states")
        n_nodes = len(self.nodes)
        seen = [False] * n_nodes
        owner: dict[int, tuple[int, int]] = {}  # pdf -> (phone, state)
        for p, rs in enumerate(self.roots):
            for j, root in enumerate(rs):
                stack = [root]
                while stack:
                    k = stack.pop()
                    if not 0 <= k < n_nodes or seen[k]:
                        raise InvalidParameterError(f"tree of phone {self.phones[p]!r} state {j}: node {k} is "
                                                    "out of range or reached twice (not a tree)")
                    seen[k] = True
                    node = self.nodes[k]
                    if len(node) != 4:
                        raise InvalidParameterError(f"tree node {k} must have 4 fields, got {node}")
                    pos, q, yes, no = node
                    if pos == LEAF:
                        if q < 0 or owner.setdefault(q, (p, j)) != (p, j):
                            raise InvalidParameterError(f"tree leaf {k}: pdf {q} is negative or shared by "
                                                        "two phone states")
                    elif pos in (LEFT, RIGHT) and 0 <= q < len(self.questions):
                        stack += [yes, no]
                    else:
                        raise InvalidParameterError(f"tree node {k}: bad position {pos} or question {q}")
        if not all(seen):
            raise InvalidParameterError(f"{seen.count(False)} tree node(s) belong to no tree")
        if sorted(owner) != list(range(len(owner))):
            raise InvalidParameterError("tree pdfs must be numbered 0 .. n_pdfs - 1 without gaps")
        return len(owner)

    @property
    def n_pdfs(self) -> int:
        return self._n_pdfs

    def phone_index(self, phone: str) -> int:
        try:
            return self._index[phone]
        except KeyError:
            raise TranscriptError(f"phone {phone!r} is not one of the model's phones") from None

    def leaf(self, root: int, left: str, right: str) -> int:
        """Node index of the leaf reached from node ``root`` for the context (``left``, ``right``)."""
        k = root
        context = (left, right)
        while True:
            pos, q, yes, no = self.nodes[k]
            if pos == LEAF:
                return k
            k = yes if context[pos] in self.questions[q] else no

    def pdfs(self, left: str, phone: str, right: str) -> tuple[int, ...]:
        key = (left, phone, right)
        found = self._cache.get(key)
        if found is None:
            for ctx in (left, right):
                self.phone_index(ctx)  # unknown context phones are an error, not "no" answers
            found = tuple(self.nodes[self.leaf(r, left, right)][1] for r in self.roots[self.phone_index(phone)])
            self._cache[key] = found
        return found

    def pdf_phone_states(self) -> list[tuple[int, int]]:
        """(phone index, state) of every pdf."""
        out: list[tuple[int, int]] = [(-1, -1)] * self.n_pdfs
        for p, rs in enumerate(self.roots):
            for j, root in enumerate(rs):
                stack = [root]
                while stack:
                    pos, q, yes, no = self.nodes[stack.pop()]
                    if pos == LEAF:
                        out[q] = (p, j)
                    else:
                        stack += [yes, no]
        return out

    def to_dict(self) -> dict:
        return {"kind": "tree", "phones": list(self.phones), "n_states": self.n_states, "silence": self.silence,
                "questions": [sorted(q) for q in self.questions], "roots": [list(rs) for rs in self.roots],
                "nodes": [list(n) for n in self.nodes]}

    @classmethod
    def from_dict(cls, d: dict) -> "TreeContext":
        try:
            return cls(d["phones"], d["n_states"], d["silence"], d["questions"], d["roots"], d["nodes"])
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, InvalidParameterError):
                raise
            raise InvalidParameterError(f"malformed tree context: {exc!r}") from None
