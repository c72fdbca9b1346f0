"""Search options (Kaldi's ``LatticeFasterDecoderConfig``, HVite's -t -u -p -s -n)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import InvalidParameterError


@dataclass(frozen=True)
class SearchOptions:
    """Pruning and grammar weighting of :func:`gmmhmm.search.decode`.

    Parameters
    ----------
    beam : float
        Tokens more than ``beam`` below the best of their frame are dropped
        (log-likelihood units; ``inf``: no beam pruning). Acoustic
        log-likelihoods are not scaled, so useful beams are in the hundreds.
    max_active : int
        Histogram pruning: at most this many tokens are expanded per frame
        (0: no limit).
    word_insertion_penalty : float
        Log weight added for each word entered (not for silence).
    lm_scale : float
        Multiplies grammar log probabilities (LM, backoff and pronunciation weights).
    n_best : int
        Distinct word sequences to return (HVite ``-n``); above 1 the search
        keeps a word lattice.
    lattice_beam : float
        With ``n_best > 1``: alternative word ends more than this below the
        best one arriving at the same grammar node and frame are not kept.
    allow_partial : bool
        When the beam has pruned every path that reaches a final node, return
        the best path ending anywhere (its words so far and the word it is
        in), marked ``stats["partial"]``, instead of raising (Kaldi's
        ``--allow-partial``). Input shorter than any complete path still raises.
    """

    beam: float = 200.0
    max_active: int = 10000
    word_insertion_penalty: float = 0.0
    lm_scale: float = 1.0
    n_best: int = 1
    lattice_beam: float = 50.0
    allow_partial: bool = False

    def __post_init__(self) -> None:
        for name in ("beam", "lattice_beam"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or math.isnan(v) or v <= 0:
                raise InvalidParameterError(f"{name} must be a positive number (inf: no pruning), got {v!r}")
        for name in ("word_insertion_penalty", "lm_scale"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise InvalidParameterError(f"{name} must be a finite number, got {v!r}")
        if self.lm_scale < 0:
            raise InvalidParameterError(f"lm_scale must be >= 0, got {self.lm_scale}")
        if not isinstance(self.max_active, int) or isinstance(self.max_active, bool) or self.max_active < 0:
            raise InvalidParameterError(f"max_active must be an integer >= 0 (0: no limit), got {self.max_active!r}")
        if not isinstance(self.n_best, int) or isinstance(self.n_best, bool) or self.n_best < 1:
            raise InvalidParameterError(f"n_best must be an integer >= 1, got {self.n_best!r}")
