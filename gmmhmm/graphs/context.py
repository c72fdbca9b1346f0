"""Context dependency: which pdf each state of a phone in context uses.

Kaldi's ``ContextDependency`` and HTK's tied-state triphone map in one
interface. Graphs ask it for the pdfs of a phone between a left and a right
neighbour; the answer decides whether the graphs are monophone or triphone,
and the graph code is otherwise the same. Transition parameters are kept per
pdf (a pdf belongs to one phone state, since trees are grown per phone
state), so a state's transition id is its pdf.

Conventions every implementation and every graph builder follow:

* contexts are phone names; at an utterance's ends the context is the
  silence phone (an utterance is silence on both sides of the speech);
* context-independent phones (silence) have the same pdfs in every context,
  but they still count as context for their neighbours;
* across a word boundary the context is the neighbouring word's phone
  (cross-word triphones), or the silence phone when an optional silence
  is taken between the two words.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InvalidParameterError, TranscriptError


class ContextDependency:
    """Base interface: ``pdfs(left, phone, right)`` and ``n_pdfs``.

    Attributes
    ----------
    phones : list of str
        Phone inventory (the acoustic model's phone order).
    n_states : int
        Emitting states per phone model.
    silence : str
        The silence phone: the context at utterance ends; context independent.
    context_width : int
        1 for monophones, 3 for triphones (Kaldi's ``N``).
    """

    phones: list[str]
    n_states: int
    silence: str
    context_width: int = 1

    @property
    def n_pdfs(self) -> int:
        raise NotImplementedError

    def pdfs(self, left: str, phone: str, right: str) -> tuple[int, ...]:
        """The ``n_states`` pdf ids of ``phone`` between ``left`` and ``right``."""
        raise NotImplementedError

    def sequence_pdfs(self, phones: Sequence[str], left: str | None = None,
                      right: str | None = None) -> list[tuple[int, ...]]:
        """Pdfs of every phone of a sequence (a pronunciation), its outer contexts given
        (default: the silence phone)."""
        seq = [self.silence if left is None else left, *phones, self.silence if right is None else right]
        return [self.pdfs(seq[k - 1], seq[k], seq[k + 1]) for k in range(1, len(seq) - 1)]

    def pdf_phone_states(self) -> list[tuple[int, int]]:
        """(phone index, state) of every pdf: each pdf belongs to one phone state."""
        raise NotImplementedError

    def to_dict(self) -> dict:
        """JSON-able description, stored in model files (never pickled)."""
        raise NotImplementedError

    @staticmethod
    def from_dict(d: dict) -> "ContextDependency":
        kind = d.get("kind") if isinstance(d, dict) else None
        if kind == "monophone":
            return MonophoneContext(d["phones"], int(d["n_states"]), d["silence"])
        if kind == "tree":
            from .tree import TreeContext  # the tree module builds on this one

            return TreeContext.from_dict(d)
        raise InvalidParameterError(f"unknown context dependency {kind!r}")


class MonophoneContext(ContextDependency):
    """Context-independent phones: pdf of state ``j`` of phone ``p`` is ``p * n_states + j``."""

    context_width = 1

    def __init__(self, phones: Sequence[str], n_states: int, silence: str) -> None:
        self.phones = list(phones)
        self.n_states = int(n_states)
        self.silence = silence
        self._index = {p: i for i, p in enumerate(self.phones)}
        if silence not in self._index:
            raise InvalidParameterError(f"silence phone {silence!r} is not one of the phones")

    @property
    def n_pdfs(self) -> int:
        return len(self.phones) * self.n_states

    def pdfs(self, left: str, phone: str, right: str) -> tuple[int, ...]:
        try:
            p = self._index[phone]
        except KeyError:
            raise TranscriptError(f"phone {phone!r} is not one of the model's phones") from None
        return tuple(range(p * self.n_states, (p + 1) * self.n_states))

    def pdf_phone_states(self) -> list[tuple[int, int]]:
        """(phone index, state) of every pdf."""
        return [(p, j) for p in range(len(self.phones)) for j in range(self.n_states)]

    def to_dict(self) -> dict:
        return {"kind": "monophone", "phones": list(self.phones), "n_states": self.n_states,
                "silence": self.silence}
