"""Growing phonetic decision trees by likelihood gain (HTK ``TB``, Kaldi ``build-tree``).

Each phone state's contexts start in one root. A node's data is modelled by
one diagonal Gaussian at its maximum-likelihood mean and variance; the
log-likelihood of its frames under that Gaussian depends only on the
node's summed statistics (:func:`gaussian_log_likelihood`). Splitting a
node by a question (is the left / right phone in this set?) gains
``L(yes) + L(no) - L(node)``. The best split of all trees is made first
(Kaldi's global greedy order) while it gains more than ``gain_threshold``,
both children keep ``min_occupancy`` frames and there are fewer than
``max_leaves`` leaves. Context-independent phones keep one leaf per state.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidParameterError
from .._validation import check_positive_int
from .tree import LEAF, LEFT, RIGHT, TreeContext
from .tree_stats import TreeStats

logger = logging.getLogger(__name__)

_LOG_2PI = float(np.log(2 * np.pi))


def gaussian_log_likelihood(n: np.ndarray, s1: np.ndarray, s2: np.ndarray,
                            var_floor: float | np.ndarray = 0.0) -> np.ndarray:
    """Log-likelihood of the frames behind diagonal statistics under their ML Gaussian.

    For ``n`` frames with sums ``s1`` and sums of squares ``s2`` (last axis
    the features), the ML variance is ``v = s2 / n - (s1 / n)**2`` (floored
    at ``var_floor``) and the total log-likelihood is
    ``-n / 2 * sum_d (log(2 pi v_d) + 1)`` (exact when no floor applies);
    zero where ``n`` is 0.
    """
    n = np.asarray(n, dtype=np.float64)
    safe = np.where(n > 0, n, 1.0)[..., None]
    mean = s1 / safe
    var = np.maximum(s2 / safe - mean**2, np.maximum(var_floor, 1e-300))
    # with a floor above the ML variance, sum (x - m)^2 / v = n * v_ml / v, not n
    v_ml = np.maximum(s2 / safe - mean**2, 0.0)
    ll = -0.5 * n * (np.log(var) + _LOG_2PI + v_ml / var).sum(axis=-1)
    return np.where(n > 0, ll, 0.0)


@dataclass
class _Node:
    tree: int  # index of the (phone, state) root it grows in
    entries: np.ndarray  # indices into the root's contexts
    n: float
    s1: np.ndarray
    s2: np.ndarray
    split: tuple[float, int, int] | None = None  # (gain, position, question)
    children: tuple[int, int] | None = None


def _best_split(node: _Node, member: np.ndarray, ctx: np.ndarray, n: np.ndarray, s1: np.ndarray, s2: np.ndarray,
                min_occupancy: float, var_floor) -> tuple[float, int, int] | None:
    """(gain, position, question) of the best allowed split of ``node``, or None."""
    e = node.entries
    parent = float(gaussian_log_likelihood(node.n, node.s1, node.s2, var_floor))
    best = None
    for pos in (LEFT, RIGHT):
        A = member[:, ctx[e, pos]].astype(np.float64)  # (Q, E) does the context answer yes
        yn, y1, y2 = A @ n[e], A @ s1[e], A @ s2[e]
        B = 1.0 - A
        nn, n1, n2 = B @ n[e], B @ s1[e], B @ s2[e]
        gain = (gaussian_log_likelihood(yn, y1, y2, var_floor) + gaussian_log_likelihood(nn, n1, n2, var_floor)
                - parent)
        gain[(yn < min_occupancy) | (nn < min_occupancy) | (yn <= 0) | (nn <= 0)] = -np.inf
        q = int(np.argmax(gain))
        if np.isfinite(gain[q]) and (best is None or gain[q] > best[0]):
            best = (float(gain[q]), pos, q)
    return best


def build_tree(stats: TreeStats, questions: Iterable[Iterable[str]], phones: Sequence[str], n_states: int,
               silence: str, *, ci_phones: Iterable[str] = (), min_occupancy: float = 100.0,
               gain_threshold: float = 0.0, max_leaves: int | None = None,
               var_floor: float | np.ndarray = 1e-3) -> TreeContext:
    """Grow one tree per phone state from ``stats``; leaves become pdfs.

    Parameters
    ----------
    stats : TreeStats
    questions : sets of phones, each asked of the left and of the right context
    phones, n_states, silence : the phone set of the models (silence is context independent)
    ci_phones : further context-independent phones
    min_occupancy : float
        Fewest frames in each child of a split (HTK ``RO``, Kaldi ``--min-count``).
    gain_threshold : float
        Smallest log-likelihood gain of a split (HTK ``TB`` threshold, Kaldi ``--thresh``).
    max_leaves : int, optional
        Most pdfs in all (Kaldi ``--max-leaves``); the roots count.
    var_floor : float or (D,) array
        Variance floor of the node Gaussians (keeps a split isolating a
        handful of identical frames from an infinite gain).

    Returns
    -------
    TreeContext
        pdfs numbered phone by phone, state by state, leaves in depth-first order.
    """
    if min_occupancy < 0 or not np.isfinite(min_occupancy):
        raise InvalidParameterError(f"min_occupancy must be finite and >= 0, got {min_occupancy}")
    if max_leaves is not None:
        max_leaves = check_positive_int(max_leaves, "max_leaves")
    phones = list(phones)
    index = {p: i for i, p in enumerate(phones)}
    if silence not in index:
        raise InvalidParameterError(f"silence phone {silence!r} is not one of the phones")
    qs = list(dict.fromkeys(frozenset(q) for q in questions))
    for q in qs:  # before dropping the questions that cannot split: a typo'd one must not vanish quietly
        if not q <= set(index):
            raise InvalidParameterError(f"question names unknown phones {sorted(q - set(index))[:5]}")
    qs = [q for q in qs if 0 < len(q) < len(index)]
    keys = stats.key_indices(phones, n_states)
    member = np.zeros((len(qs), len(phones)), dtype=bool)
    for k, q in enumerate(qs):
        member[k, [index[p] for p in q]] = True
    ci = {index[silence]} | {index[p] for p in ci_phones}
    g = stats.gaussian
    ctx = keys[:, [0, 2]]  # (left, right) per context
    nodes: list[_Node] = []
    heap: list[tuple[float, int]] = []
    roots = []
    for p in range(len(phones)):
        for j in range(n_states):
            e = np.flatnonzero((keys[:, 1] == p) & (keys[:, 3] == j))
            node = _Node(len(roots), e, float(g.n[e].sum()), g.s1[e].sum(0), g.s2[e].sum(0))
            roots.append(len(nodes))
            nodes.append(node)
            if p not in ci and len(qs):
                node.split = _best_split(node, member, ctx, g.n, g.s1, g.s2, min_occupancy, var_floor)
                if node.split is not None:
                    heapq.heappush(heap, (-node.split[0], roots[-1]))
    n_leaves, total_gain = len(roots), 0.0
    while heap and (max_leaves is None or n_leaves < max_leaves):
        neg_gain, k = heapq.heappop(heap)
        if -neg_gain <= gain_threshold:
            break
        node = nodes[k]
        _, pos, q = node.split
        yes = member[q, ctx[node.entries, pos]]
        kids = []
        for part in (node.entries[yes], node.entries[~yes]):
            child = _Node(node.tree, part, float(g.n[part].sum()), g.s1[part].sum(0), g.s2[part].sum(0))
            child.split = _best_split(child, member, ctx, g.n, g.s1, g.s2, min_occupancy, var_floor)
            kids.append(len(nodes))
            nodes.append(child)
            if child.split is not None:
                heapq.heappush(heap, (-child.split[0], kids[-1]))
        node.children = (kids[0], kids[1])
        n_leaves += 1
        total_gain -= neg_gain
    logger.info("decision trees: %d leaves from %d roots, log-likelihood gain %.1f over %.0f frames",
                n_leaves, len(roots), total_gain, float(g.n.sum()))
    return _to_context(nodes, roots, qs, phones, n_states, silence)


def _to_context(nodes: list[_Node], roots: list[int], questions: list[frozenset[str]], phones: list[str],
                n_states: int, silence: str) -> TreeContext:
    """Renumber the grown nodes depth-first and their leaves as pdfs 0, 1, ..."""
    flat: list[list[int]] = []
    n_pdfs = 0

    def emit(k: int) -> int:
        nonlocal n_pdfs
        out = len(flat)
        flat.append([LEAF, 0, -1, -1])
        stack = [(k, out)]
        while stack:  # iterative: trees may be deeper than Python's recursion limit
            k, slot = stack.pop()
            node = nodes[k]
            if node.children is None:
                flat[slot] = [LEAF, n_pdfs, -1, -1]
                n_pdfs += 1
                continue
            _, pos, q = node.split
            yes, no = len(flat), len(flat) + 1
            flat.extend([[LEAF, 0, -1, -1], [LEAF, 0, -1, -1]])
            flat[slot] = [pos, q, yes, no]
            stack += [(node.children[1], no), (node.children[0], yes)]  # yes first
        return out

    root_ids = [[emit(roots[p * n_states + j]) for j in range(n_states)] for p in range(len(phones))]
    return TreeContext(phones, n_states, silence, [sorted(q) for q in questions], root_ids, flat)
