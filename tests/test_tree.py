"""Decision-tree state tying: tree statistics, questions, likelihood-gain splits, the tree context,
cross-word triphone training graphs, tied models in model files and their training."""

from __future__ import annotations

import io
import itertools
import json
import zipfile

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import norm

from gmmhmm import load, save
from gmmhmm.errors import InvalidParameterError, ModelFileError, TranscriptError
from gmmhmm.graphs import EmbeddedTrainer, Lexicon, PhoneModelSet, build_graph, kernels, utterance_graph
from gmmhmm.graphs.context import ContextDependency, MonophoneContext
from gmmhmm.graphs.questions import class_questions, cluster_questions, read_phone_classes
from gmmhmm.graphs.tree import TreeContext
from gmmhmm.graphs.tree_build import build_tree, gaussian_log_likelihood
from gmmhmm.graphs.tree_stats import TreeStats, accumulate_tree_stats, path_contexts
from gmmhmm.graphs.triphones import init_tied_model, train_triphones
from gmmhmm.mixture.stats import GaussianStats

from conftest import REPO_ROOT

LEXICON = Lexicon({"ab": ["A", "B"], "ca": ["C", "A"], "b": ["B"], "bc": ["B", "C"], "cab": ["C", "A", "B"]})
PHONES = LEXICON.phones  # A B C sil


def stats_of(frames: dict) -> TreeStats:
    """TreeStats from ``{(left, phone, right, state): (N, D) frames}``."""
    keys = list(frames)
    D = np.atleast_2d(next(iter(frames.values()))).shape[1]
    g = GaussianStats.zeros(len(keys), D, "diag")
    for i, k in enumerate(keys):
        X = np.atleast_2d(frames[k])
        g.n[i], g.s1[i], g.s2[i] = len(X), X.sum(0), (X * X).sum(0)
    return TreeStats(keys, g)


def ml_log_likelihood(X: np.ndarray) -> float:
    """Sum of log N(x; ML mean, ML variance) over the rows, dimension by dimension."""
    X = np.atleast_2d(X)
    return float(norm.logpdf(X, X.mean(0), X.std(0)).sum())


# --------------------------------------------------------------------------- likelihood and gains
def test_gaussian_log_likelihood_is_the_closed_form():
    rng = np.random.default_rng(0)
    X = rng.normal(2.0, 3.0, size=(50, 4))
    n, s1, s2 = len(X), X.sum(0), (X * X).sum(0)
    assert gaussian_log_likelihood(n, s1, s2) == pytest.approx(ml_log_likelihood(X), rel=1e-10)
    # a floor above the ML variance: the data under N(mean, floor)
    floor = 2 * X.var(0)
    expect = norm.logpdf(X, X.mean(0), np.sqrt(floor)).sum()
    assert gaussian_log_likelihood(n, s1, s2, floor) == pytest.approx(expect, rel=1e-10)
    assert gaussian_log_likelihood(0.0, np.zeros(4), np.zeros(4)) == 0.0


def test_split_by_hand():
    """1-D: after B the phone is at 0 +- 1, after C at 10 +- 1; the gain is the closed form by hand."""
    a = np.array([[-1.0], [1.0]])
    frames = {("B", "A", "sil", 0): a, ("C", "A", "sil", 0): a + 10}
    stats = stats_of(frames)
    tree = build_tree(stats, [{"B"}, {"sil"}], PHONES, 1, "sil", min_occupancy=1)
    # parent: 4 points, mean 5, variance (1 + 1 + 1 + 1 + 4 * 25) / 4 = 26; children: variance 1
    gain = 2 * -1 * (np.log(2 * np.pi * 1) + 1) + 4 * 0.5 * (np.log(2 * np.pi * 26) + 1)  # -n/2 (log 2 pi v + 1)
    assert gain == pytest.approx(2 * np.log(26))
    left = frames[("B", "A", "sil", 0)]
    assert ml_log_likelihood(left) * 2 - ml_log_likelihood(np.concatenate(list(frames.values()))) == pytest.approx(gain)
    assert tree.n_pdfs == 4 + 1  # A splits once; B, C, sil keep one leaf
    assert tree.pdfs("B", "A", "sil") != tree.pdfs("C", "A", "sil")
    assert tree.nodes[tree.roots[0][0]][:2] == (0, tree.questions.index(frozenset({"B"})))
    # a gain threshold above the gain stops it
    assert build_tree(stats, [{"B"}], PHONES, 1, "sil", min_occupancy=1, gain_threshold=gain + 1e-6).n_pdfs == 4
    # max_leaves counts the roots (Kaldi --max-leaves): at or below their number nothing splits
    assert build_tree(stats, [{"B"}], PHONES, 1, "sil", min_occupancy=1, max_leaves=2).n_pdfs == 4
    for bad in (0, -3, 2.5, float("nan"), True):
        with pytest.raises(InvalidParameterError, match="max_leaves"):
            build_tree(stats, [{"B"}], PHONES, 1, "sil", min_occupancy=1, max_leaves=bad)


@pytest.mark.parametrize("seed", range(4))
def test_root_split_is_the_largest_gain_by_brute_force(seed):
    rng = np.random.default_rng(seed)
    ctx = ["A", "B", "C", "sil"]
    frames = {}
    for left in ctx:
        for right in ctx:
            if rng.random() < 0.8:
                frames[(left, "A", right, 0)] = rng.normal(rng.normal(0, 2, 2), 1.0, size=(rng.integers(3, 9), 2))
    questions = [{"A"}, {"B", "C"}, {"A", "sil"}, {"C"}, {"B"}]
    stats = stats_of(frames)
    tree = build_tree(stats, questions, PHONES, 1, "sil", min_occupancy=3, max_leaves=len(PHONES) + 1)
    everything = np.concatenate(list(frames.values()))
    best = None
    for pos, q in itertools.product((0, 1), range(len(questions))):
        yes = [X for k, X in frames.items() if (k[0], k[2])[pos] in questions[q]]
        no = [X for k, X in frames.items() if (k[0], k[2])[pos] not in questions[q]]
        if sum(map(len, yes)) < 3 or sum(map(len, no)) < 3:
            continue
        gain = ml_log_likelihood(np.concatenate(yes)) + ml_log_likelihood(np.concatenate(no)) - ml_log_likelihood(everything)
        if best is None or gain > best[0] + 1e-9:
            best = (gain, pos, frozenset(questions[q]))
    pos, q = tree.nodes[tree.roots[0][0]][:2]
    assert (pos, tree.questions[q]) == best[1:]
    assert tree.n_pdfs == len(PHONES) + 1


def test_no_allowed_split_gives_the_monophone_layout():
    rng = np.random.default_rng(1)
    frames = {(l, p, r, j): rng.normal(size=(5, 2)) for l, p, r in itertools.product(PHONES, repeat=3)
              for j in range(3) if p != "sil" or (l, r) == ("sil", "sil")}
    tree = build_tree(stats_of(frames), [{"A"}, {"B", "C"}], PHONES, 3, "sil", min_occupancy=1e9)
    mono = MonophoneContext(PHONES, 3, "sil")
    assert tree.n_pdfs == mono.n_pdfs
    for l, p, r in itertools.product(PHONES, repeat=3):
        assert tree.pdfs(l, p, r) == mono.pdfs(l, p, r)
    for words in (["ab", "b", "ca"], ["b"], ["bc", "bc"]):
        _assert_same_graph(utterance_graph(LEXICON, words, 0.3, 3, context=tree), utterance_graph(LEXICON, words, 0.3))


def test_silence_is_context_independent_and_unseen_triphones_get_pdfs():
    rng = np.random.default_rng(2)
    frames = {(l, p, r, 0): rng.normal(rng.normal(0, 5), 1, size=(20, 1)) for l, p, r in itertools.product(PHONES, repeat=3)}
    tree = build_tree(stats_of(frames), [{"A"}, {"B"}, {"C"}, {"sil"}], PHONES, 1, "sil", min_occupancy=1)
    assert len({tree.pdfs(l, "sil", r) for l, r in itertools.product(PHONES, repeat=2)}) == 1
    assert tree.n_pdfs > len(PHONES)
    seen_a = {k for k in frames if k[1] == "A" and k[0] != "C"}
    part = build_tree(stats_of({k: frames[k] for k in seen_a}), [{"A"}, {"B"}, {"C"}, {"sil"}], PHONES, 1, "sil",
                      min_occupancy=1)
    assert 0 <= part.pdfs("C", "A", "C")[0] < part.n_pdfs  # never seen: synthesised by the tree
    with pytest.raises(TranscriptError, match="'Q'"):
        part.pdfs("Q", "A", "B")


# --------------------------------------------------------------------------- statistics and questions
def test_tree_stats_add_up():
    rng = np.random.default_rng(3)
    a = stats_of({("sil", "A", "B", 0): rng.normal(size=(3, 2)), ("A", "B", "sil", 1): rng.normal(size=(2, 2))})
    b = stats_of({("A", "B", "sil", 1): rng.normal(size=(4, 2)), ("sil", "C", "sil", 0): rng.normal(size=(1, 2))})
    total = sum([a, b])
    assert total.keys == [("sil", "A", "B", 0), ("A", "B", "sil", 1), ("sil", "C", "sil", 0)]
    np.testing.assert_allclose(total.gaussian.n, [3, 6, 1])
    np.testing.assert_allclose(total.gaussian.s1[1], a.gaussian.s1[1] + b.gaussian.s1[0])
    np.testing.assert_allclose(total.gaussian.s2[2], b.gaussian.s2[1])


def test_path_contexts_cross_words_and_silence():
    """sil | ab | ca (no silence between) | sil, one frame per state except the loops below."""
    g = utterance_graph(LEXICON, ["ab", "ca"], 0.5, 2)
    # states: 0-1 sil, 2-5 ab, 6-7 sil, 8-11 ca, 12-13 sil; path: ab (A A B B) ca (C A A) -- leading sil skipped
    states = np.array([2, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13])
    arcs = np.array([-1] + [_arc(g, s, d) for s, d in zip(states, states[1:])])
    ctx = path_contexts(g, PHONES, states, arcs, "sil")
    assert ctx == [("sil", "A", "B", 0)] * 2 + [("sil", "A", "B", 1), ("A", "B", "C", 0), ("A", "B", "C", 1),
                                                ("B", "C", "A", 0), ("B", "C", "A", 1), ("C", "A", "sil", 0),
                                                ("C", "A", "sil", 1), ("A", "sil", "sil", 0), ("A", "sil", "sil", 1)]


def _arc(g, src, dst):
    return int(np.flatnonzero((g.arc_src == src) & (g.arc_dst == dst))[0])


def test_read_phone_classes(tmp_path):
    classes = read_phone_classes(REPO_ROOT.parent / "shared" / "data" / "cmudict" / "cmudict.phones")
    assert {"AA", "IY", "UW"} <= set(classes["vowel"]) and "B" in classes["stop"]
    assert class_questions({"x": ["A", "Z"], "y": ["Q"], "z": ["A"]}, PHONES) == [frozenset({"A"})]
    (tmp_path / "bad").write_text("AA\tvowel\nB stop extra\n")
    with pytest.raises(Exception, match="bad:2"):
        read_phone_classes(tmp_path / "bad")
    # read as every other text input: a byte-order mark is dropped, a missing file is named
    (tmp_path / "bom").write_bytes("\ufeffAA\tvowel\n".encode())
    assert read_phone_classes(tmp_path / "bom") == {"vowel": ["AA"]}
    from gmmhmm.errors import InvalidInputError
    with pytest.raises(InvalidInputError, match="cannot read phone classes .*nope"):
        read_phone_classes(tmp_path / "nope")


def test_clustering_merges_the_closest_phones_first():
    rng = np.random.default_rng(4)
    centre = {"A": 0.0, "B": 0.3, "C": 8.0, "sil": -9.0}
    stats = stats_of({("sil", p, "sil", 0): rng.normal(centre[p], 1.0, size=(200, 1)) for p in PHONES})
    qs = cluster_questions(stats, PHONES, 1)
    assert qs[:4] == [frozenset({p}) for p in PHONES]  # singletons, then the merges
    assert qs[4] == frozenset({"A", "B"})
    assert len(qs) == 2 * len(PHONES) - 2  # every cluster formed but the root


# --------------------------------------------------------------------------- the tree as a context
def _simple_tree() -> TreeContext:
    # A state 0 asks "left in {B}": pdf 0 / 1; every other phone state one leaf
    nodes = [[0, 0, 1, 2], [-1, 0, -1, -1], [-1, 1, -1, -1]] + [[-1, k, -1, -1] for k in range(2, 5)]
    return TreeContext(PHONES, 1, "sil", [["B"]], [[0], [3], [4], [5]], nodes)


@pytest.mark.parametrize("change, match", [
    (lambda d: d["nodes"].__setitem__(0, [0, 0, 0, 2]), "reached twice"),
    (lambda d: d["nodes"].__setitem__(2, [-1, 0, -1, -1]), "numbered"),
    (lambda d: d["nodes"].__setitem__(5, [-1, 0, -1, -1]), "shared by two phone states"),
    (lambda d: d["nodes"].__setitem__(0, [2, 0, 1, 2]), "bad position"),
    (lambda d: d["nodes"].__setitem__(0, [0, 7, 1, 2]), "question"),
    (lambda d: d["questions"].__setitem__(0, ["Q"]), "unknown phones"),
    (lambda d: d["roots"].pop(), "roots"),
    (lambda d: d["nodes"].append([-1, 5, -1, -1]), "belong to no tree"),
    (lambda d: d.pop("nodes"), "malformed"),
])
def test_bad_trees_are_refused(change, match):
    d = _simple_tree().to_dict()
    ContextDependency.from_dict(json.loads(json.dumps(d)))
    change(d)
    with pytest.raises(InvalidParameterError, match=match):
        ContextDependency.from_dict(d)


class FunctionContext(ContextDependency):
    """Test context: pdfs given by a function of (left, phone, right) over a fixed pdf count."""

    context_width = 3

    def __init__(self, fn, n_pdfs, n_states):
        self.phones, self.n_states, self.silence, self.fn, self._n = PHONES, n_states, "sil", fn, n_pdfs

    @property
    def n_pdfs(self):
        return self._n

    def pdfs(self, left, phone, right):
        return self.fn(left, phone, right)


def full_triphones(n_states):
    """Untied triphones: every (left, phone, right) its own pdfs; silence context independent."""
    triples = [t for t in itertools.product(PHONES, repeat=3) if t[1] != "sil"] + [("sil", "sil", "sil")]
    index = {t: i for i, t in enumerate(triples)}

    def fn(l, p, r):
        k = index[("sil", "sil", "sil") if p == "sil" else (l, p, r)]
        return tuple(range(k * n_states, (k + 1) * n_states))

    return FunctionContext(fn, len(triples) * n_states, n_states)


def same_neighbours(n_states):
    """Tied so that (left, right) sharing pdfs is not a product: B between equal neighbours vs not."""
    def fn(l, p, r):
        k = PHONES.index(p) * 2 + (p == "B" and l == r)
        return tuple(range(k * n_states, (k + 1) * n_states))

    return FunctionContext(fn, len(PHONES) * 2 * n_states, n_states)


def brute_force_log_z(lexicon, words, context, ll, log_self, log_leave, sil_prob):
    """Sum over silence choices and pronunciations of a left-to-right chain's likelihood."""
    S = context.n_states
    total = []
    prons = [lexicon.prons(w) for w in words]
    for sils in itertools.product((False, True), repeat=len(words) + 1):
        for choice in itertools.product(*prons):
            seq, weight = [], 0.0
            for i, (phones, w) in enumerate(choice):
                seq += ["sil"] * sils[i] + list(phones)
                weight += w
            seq += ["sil"] * sils[-1]
            weight += sum(np.log(sil_prob) if s else np.log1p(-sil_prob) for s in sils)
            ctx = ["sil", *seq, "sil"]
            pdfs = [q for k in range(len(seq)) for q in context.pdfs(ctx[k], ctx[k + 1], ctx[k + 2])]
            alpha = np.full(len(pdfs), -np.inf)
            alpha[0] = ll[0, pdfs[0]]
            for t in range(1, len(ll)):
                stay = alpha + log_self[pdfs]
                move = np.concatenate([[-np.inf], alpha[:-1] + log_leave[pdfs[:-1]]])
                alpha = np.logaddexp(stay, move) + ll[t, pdfs]
            total.append(weight + alpha[-1] + log_leave[pdfs[-1]])
    assert S >= 1
    return logsumexp(total)


@pytest.mark.parametrize("make", [full_triphones, same_neighbours])
@pytest.mark.parametrize("words", [["ab", "ca"], ["b", "b"], ["ca", "b", "bc"], ["b"], ["cab", "cab", "b"]])
def test_triphone_graph_equals_brute_force(make, words):
    rng = np.random.default_rng(len(words))
    context = make(2)
    ll = rng.normal(0, 2, size=(14, context.n_pdfs))
    loops = rng.uniform(0.2, 0.8, context.n_pdfs)
    log_self, log_leave = np.log(loops), np.log1p(-loops)
    g = utterance_graph(LEXICON, words, 0.4, 2, context=context)
    log_z = kernels.forward_backward(ll, g.state_pdf, g.arc_src, g.arc_dst, *g.log_probs(log_self, log_leave),
                                     context.n_pdfs)[0]
    assert log_z == pytest.approx(brute_force_log_z(LEXICON, words, context, ll, log_self, log_leave, 0.4), rel=1e-9)
    # the graph's states use each pdf of their phone only
    assert np.all(g.state_phone >= 0)


def test_alternate_pronunciations_in_context():
    lex = Lexicon.from_prons({"x": [(("A", "B"), np.log(0.7)), (("C",), np.log(0.3)), (("C", "A", "B"), np.log(0.1))],
                              "y": [(("B", "A"), 0.0)]})
    for context in (full_triphones(1), same_neighbours(1)):
        rng = np.random.default_rng(5)
        ll = rng.normal(0, 2, size=(9, context.n_pdfs))
        loops = rng.uniform(0.2, 0.8, context.n_pdfs)
        log_self, log_leave = np.log(loops), np.log1p(-loops)
        g = utterance_graph(lex, ["x", "y", "x"], 0.5, 1, context=context)
        log_z = kernels.forward_backward(ll, g.state_pdf, g.arc_src, g.arc_dst, *g.log_probs(log_self, log_leave),
                                         context.n_pdfs)[0]
        expect = brute_force_log_z(lex, ["x", "y", "x"], context, ll, log_self, log_leave, 0.5)
        assert log_z == pytest.approx(expect, rel=1e-9)


def reference_monophone_graph(lexicon, words, sil_prob, n_states):
    """utterance_graph as it was before context dependency (a copy of the old code)."""
    labels = list(words) + [lexicon.silence]
    sil_label, sil_phone = len(words), lexicon.phone_index(lexicon.silence)
    units, links = [(sil_label, [sil_phone])], []
    ls, ln = float(np.log(sil_prob)), float(np.log1p(-sil_prob))
    alts, sils = [], [0]
    for i, word in enumerate(words):
        alts.append([])
        for phones, weight in lexicon.prons(word):
            alts[i].append((len(units), weight))
            units.append((i, [lexicon.phone_index(p) for p in phones]))
        sils.append(len(units))
        units.append((sil_label, [sil_phone]))
    for i, prons in enumerate(alts):
        for u, _ in prons:
            links.append((u, sils[i + 1], ls))
            if i + 1 < len(alts):
                links += [(u, v, ln + w) for v, w in alts[i + 1]]
        if i > 0:
            links += [(sils[i], v, w) for v, w in prons]
    links += [(0, v, w) for v, w in alts[0]]
    starts = {0: ls, **{v: ln + w for v, w in alts[0]}}
    ends = {**{u: ln for u, _ in alts[-1]}, sils[-1]: 0.0}
    return build_graph(labels, units, links, starts, ends, n_states)


def _assert_same_graph(a, b):
    for name in a.__dataclass_fields__:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=name)
        else:
            assert x == y, name


@pytest.mark.parametrize("words", [["ab", "b", "ca"], ["b"], ["x", "y", "x"], ["cab", "ab"]])
def test_monophone_context_graph_is_todays_graph(words):
    lex = LEXICON if words[0] != "x" else Lexicon.from_prons(
        {"x": [(("A", "B"), np.log(0.7)), (("C",), np.log(0.3))], "y": [(("B", "A"), 0.0)]})
    ref = reference_monophone_graph(lex, words, 0.3, 3)
    _assert_same_graph(utterance_graph(lex, words, 0.3, 3), ref)
    _assert_same_graph(utterance_graph(lex, words, 0.3, 3, context=MonophoneContext(lex.phones, 3, "sil")), ref)


# --------------------------------------------------------------------------- tied models: files and training
def context_corpus(n_utts=60, seed=0, D=2):
    """Utterances whose phones' first state depends on the left phone and last state on the right one."""
    P = len(PHONES)
    rng0 = np.random.default_rng(99)
    base = rng0.uniform(-8, 8, size=(P, 3, D))
    shift = rng0.uniform(-3, 3, size=(P, D))
    shift[PHONES.index("A")] = [4.0, -4.0]
    rng = np.random.default_rng(seed)
    feats, texts = [], []
    for _ in range(n_utts):
        words = list(rng.choice(LEXICON.words, size=rng.integers(1, 4)))
        seq = ["sil"]
        for w in words:
            seq += (["sil"] if rng.random() < 0.3 else []) + LEXICON.pronunciations[w]
        seq.append("sil")
        ctx = ["sil", *seq, "sil"]
        rows = []
        for k, ph in enumerate(seq):
            p = PHONES.index(ph)
            for j in range(3):
                mean = base[p, j] + (shift[PHONES.index(ctx[k])] if j == 0 and ph != "sil" else 0) \
                    + (shift[PHONES.index(ctx[k + 2])] if j == 2 and ph != "sil" else 0)
                rows.append(mean + 0.5 * rng.normal(size=(int(rng.integers(2, 5)), D)))
        feats.append(np.concatenate(rows))
        texts.append(words)
    return feats, texts


@pytest.fixture(scope="module")
def mono_and_tri():
    feats, texts = context_corpus()
    tr = EmbeddedTrainer(LEXICON)
    mono_history = tr.fit(feats, texts, mixtures=(1,), n_iter=(8,))
    classes = {"vowel": ["A"], "cons": ["B", "C"]}
    tri, history = train_triphones(tr.model, feats, texts, phone_classes=classes, min_occupancy=20,
                                   max_leaves=40, mixtures=(1, 2), n_iter=(4, 2))
    return tr.model, mono_history, tri, history, (feats, texts)


def test_tied_training_rises_above_the_monophones_and_em_never_lowers_it(mono_and_tri):
    mono, mono_history, tri, history, _ = mono_and_tri
    assert isinstance(tri.context, TreeContext) and tri.n_pdfs == 40
    within = history[1:5]  # single-Gaussian re-estimation passes
    assert all(b >= a - 1e-9 for a, b in zip(within, within[1:])), history
    assert history[-1] > mono_history[-1] + 0.1, (mono_history[-1], history)


def test_trees_ask_the_context_the_data_depend_on(mono_and_tri):
    tri = mono_and_tri[2]
    b = PHONES.index("B")
    first, last = (tri.context.nodes[tri.context.roots[b][j]] for j in (0, 2))
    assert first[0] == 0 and last[0] == 1  # state 0 asks the left phone, state 2 the right one
    assert tri.context.pdfs("A", "B", "C")[0] != tri.context.pdfs("B", "B", "C")[0]


def test_tied_model_file_round_trip(mono_and_tri, tmp_path):
    mono, _, tri, _, (feats, _) = mono_and_tri
    save(tri, tmp_path / "tri.npz")
    back = load(tmp_path / "tri.npz")
    assert back.context.to_dict() == tri.context.to_dict() and back.n_pdfs == tri.n_pdfs
    np.testing.assert_array_equal(back.state_log_likelihood(feats[0]), tri.state_log_likelihood(feats[0]))
    assert "context" not in mono.get_params()  # monophone files are written as before
    save(mono, tmp_path / "mono.npz")
    assert isinstance(load(tmp_path / "mono.npz").context, MonophoneContext)


def _rewrite_header(path, change):
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    header = json.loads(np.load(io.BytesIO(members["__header__.npy"])).tobytes().decode())
    change(header)
    buf = io.BytesIO()
    np.save(buf, np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))
    members["__header__.npy"] = buf.getvalue()
    with zipfile.ZipFile(path, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)


@pytest.mark.parametrize("tamper", ["cycle", "pdf_count", "phones"])
def test_tampered_tree_is_refused_at_load(mono_and_tri, tmp_path, tamper):
    tri = mono_and_tri[2]
    path = tmp_path / "tri.npz"
    save(tri, path)

    def change(header):
        item = dict(header["model"]["params"]["context"]["items"])  # tagged JSON: see gmmhmm.modelfile
        if tamper == "cycle":  # the first inner node points back at itself
            nodes = item["nodes"]["items"]
            inner = next(k for k, n in enumerate(nodes) if n["items"][0]["v"] >= 0)
            nodes[inner]["items"][2] = {"t": "json", "v": inner}
        elif tamper == "pdf_count":  # a leaf renumbered past the model's arrays
            nodes = item["nodes"]["items"]
            leaf = next(n for n in nodes if n["items"][0]["v"] == -1 and n["items"][1]["v"] == 0)
            leaf["items"][1] = {"t": "json", "v": tri.n_pdfs}
        else:  # the tree's phones differ from the model's
            item["phones"]["items"][0] = {"t": "json", "v": "Z"}

    _rewrite_header(path, change)
    with pytest.raises(ModelFileError):
        load(path)


def test_init_from_a_tree_that_cannot_split_is_the_monophone_estimate(mono_and_tri):
    mono, _, _, _, (feats, texts) = mono_and_tri
    stats = accumulate_tree_stats(mono, feats, texts)
    tree = build_tree(stats, [{"A"}, {"B"}], mono.phones, 3, "sil", min_occupancy=1e12)
    tied = init_tied_model(mono, tree, stats)
    # one leaf per phone state: the ML Gaussian of the frames Viterbi-aligned to it
    n = np.zeros(tied.n_pdfs)
    s1 = np.zeros((tied.n_pdfs, 2))
    for (l, p, r, j), c, x in zip(stats.keys, stats.gaussian.n, stats.gaussian.s1):
        k = mono.phones.index(p) * 3 + j
        n[k] += c
        s1[k] += x
    np.testing.assert_allclose(tied.means_, s1 / n[:, None])
    np.testing.assert_array_equal(tied.self_loop_, mono.self_loop_)
    # and re-estimating it is re-estimating the monophones (the same graphs and pdfs)
    tr_tied, tr_mono = EmbeddedTrainer(LEXICON), EmbeddedTrainer(LEXICON)
    tr_tied.model, tr_mono.model = tied, mono
    a, b = tr_tied.accumulate(feats, texts), tr_mono.accumulate(feats, texts)
    assert tied.n_pdfs == mono.n_pdfs and np.isfinite(a.log_likelihood)
    np.testing.assert_array_equal(tr_tied.graph(texts[0]).state_pdf, tr_mono.graph(texts[0]).state_pdf)
    assert b.log_likelihood != 0


def test_context_must_match_the_model():
    with pytest.raises(InvalidParameterError, match="does not match"):
        PhoneModelSet(["A", "sil"], 3, context=MonophoneContext(["A", "B", "sil"], 3, "sil"))._check_loaded()
    with pytest.raises(InvalidParameterError, match="context of 1 states"):
        utterance_graph(LEXICON, ["ab"], 0.5, 3, context=MonophoneContext(PHONES, 1, "sil"))


def test_triphones_can_be_rebuilt_from_triphone_alignments(mono_and_tri):
    """Kaldi's tri2 from tri1 alignments: a tied model aligns for the next tree."""
    _, _, tri, history, (feats, texts) = mono_and_tri
    tri2, history2 = train_triphones(tri, feats, texts, min_occupancy=20, max_leaves=30, mixtures=(1,), n_iter=(2,))
    assert isinstance(tri2.context, TreeContext) and tri2.n_pdfs == 30
    assert history2[2] >= history2[1] - 1e-9
    # an unsplittable tree from a tied aligner: each phone state's self-loop is its pdfs' mean
    stats = accumulate_tree_stats(tri, feats, texts)
    flat = init_tied_model(tri, build_tree(stats, [], PHONES, 3, "sil"), stats)
    owner = tri.context.pdf_phone_states()
    k = PHONES.index("A") * 3 + 1
    expect = np.mean([tri.self_loop_[q] for q, ps in enumerate(owner) if ps == (PHONES.index("A"), 1)])
    assert flat.self_loop_[k] == pytest.approx(expect)


@pytest.mark.parametrize("tamper", ["feature_config_string", "feature_config_unknown_key", "phones_repeated"])
def test_tampered_model_settings_are_refused_at_load(mono_and_tri, tmp_path, tamper):
    """The stored front-end settings (read by decoding to extract features) and the phone list are
    checked at load: a tampered file fails there, not in the first decoding or alignment."""
    mono = mono_and_tri[0]
    path = tmp_path / "mono.npz"
    save(mono, path)

    def change(header):
        params = header["model"]["params"]
        if tamper == "feature_config_string":
            params["feature_config"] = {"t": "json", "v": "mfcc"}
        elif tamper == "feature_config_unknown_key":
            params["feature_config"] = {"t": "dict", "items": [["n_cepstra", {"t": "json", "v": 13}]]}
        else:  # the first phone's name given to the second too
            params["phones"]["items"][1] = params["phones"]["items"][0]

    _rewrite_header(path, change)
    with pytest.raises(ModelFileError, match="feature_config|phones"):
        load(path)
