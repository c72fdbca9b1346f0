"""HTK MMF import/export: a hand-written file from the HTK Book's format, round trips, refusals."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from gmmhmm import GaussianHMM, GMMHMM
from gmmhmm.data.htk_mmf import format_mmf, parse_mmf
from gmmhmm.errors import InvalidParameterError, ModelFileError
from gmmhmm.hmm import topology
from gmmhmm.modelfile import load_htk_mmf, save_htk_mmf

# Written by hand after the HTK Book (ch. 7): 4 HTK states = entry, 2 emitting, exit.
# State 2 has two mixtures, state 3 one (so gmmhmm pads it with a zero-weight component);
# a shared transition macro and HERest's variance floor macro as HTK writes them.
HAND_MMF = """~o
<STREAMINFO> 1 2
<VECSIZE> 2<NULLD><MFCC_E><DIAGC>
~v "varFloor1"
<VARIANCE> 2
 1.0e-02 1.0e-02
~t "T4"
<TRANSP> 4
 0.0 0.8 0.2 0.0
 0.0 0.6 0.3 0.1
 0.0 0.0 0.7 0.3
 0.0 0.0 0.0 0.0
~h "yes"
<BEGINHMM>
<NUMSTATES> 4
<STATE> 2
<NUMMIXES> 2
<MIXTURE> 1 0.25
<MEAN> 2
 0.0 1.0
<VARIANCE> 2
 1.0 2.0
<GCONST> 4.369447e+00
<MIXTURE> 2 0.75
<MEAN> 2
 3.0 -1.0
<VARIANCE> 2
 0.5 0.5
<GCONST> 2.289699e+00
<STATE> 3
<MEAN> 2
 -2.0 0.5
<VARIANCE> 2
 4.0 1.0
~t "T4"
<ENDHMM>
"""

START = np.array([0.8, 0.2])
TRANS = np.array([[0.6, 0.3], [0.0, 0.7]])
EXIT = np.array([0.1, 0.3])


def _state_logpdf(x):
    s2 = np.log(0.25 * multivariate_normal.pdf(x, [0, 1], np.diag([1, 2]))
                + 0.75 * multivariate_normal.pdf(x, [3, -1], np.diag([0.5, 0.5])))
    s3 = multivariate_normal.logpdf(x, [-2, 0.5], np.diag([4, 1]))
    return np.array([s2, s3])


def test_hand_written_mmf_is_read_as_htk_defines_it(tmp_path):
    (tmp_path / "hmmdefs").write_text(HAND_MMF)
    models, options = load_htk_mmf(tmp_path / "hmmdefs")
    assert list(models) == ["yes"]
    assert options == {"vecsize": 2, "parm_kind": "MFCC_E", "covariance": "DIAGC"}
    m = models["yes"]
    assert isinstance(m, GMMHMM) and m.n_components == 2 and m.n_mix == 2
    np.testing.assert_allclose(m.startprob_, START)
    np.testing.assert_allclose(m.transmat_, TRANS)
    np.testing.assert_allclose(m.endprob_, EXIT)
    np.testing.assert_allclose(m.weights_, [[0.25, 0.75], [1.0, 0.0]])
    np.testing.assert_allclose(m.means_[0], [[0, 1], [3, -1]])
    np.testing.assert_allclose(m.covars_[1, 0], [4, 1])
    # likelihood with HTK's entry and exit: enumerate every emitting-state path
    X = np.array([[0.5, 0.5], [2.0, -1.0], [-1.0, 0.0]])
    logs = np.array([_state_logpdf(x) for x in X])
    total = []
    for path in itertools.product(range(2), repeat=len(X)):
        lp = math.log(START[path[0]]) + logs[0, path[0]] + math.log(EXIT[path[-1]])
        for t in range(1, len(X)):
            p = TRANS[path[t - 1], path[t]]
            lp += (math.log(p) if p > 0 else -np.inf) + logs[t, path[t]]
        total.append(lp)
    assert m.score(X) == pytest.approx(np.logaddexp.reduce(total), rel=1e-10)


def test_gconst_written_as_htk_computes_it():
    models, _ = parse_mmf(HAND_MMF)
    text = format_mmf(models)
    gconsts = [float(line.split()[1]) for line in text.splitlines() if line.startswith("<GCONST>")]
    np.testing.assert_allclose(gconsts, [2 * math.log(2 * math.pi) + math.log(2.0),
                                         2 * math.log(2 * math.pi) + 2 * math.log(0.5),
                                         2 * math.log(2 * math.pi) + math.log(4.0)], rtol=1e-6)
    assert "<NUMMIXES> 1" in text  # the zero-weight padding is not exported


def test_round_trip_of_trained_models(tmp_path):
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.normal(0, 1, (40, 3)), rng.normal(4, 1, (40, 3))])
    start, trans, end = topology.left_to_right(3, exit_prob=0.2)
    gmm = GMMHMM(3, n_mix=2, covariance_type="diag", n_iter=3, random_state=0, init_params="mcw")
    gmm.startprob_, gmm.transmat_, gmm.endprob_ = start, trans, end
    gmm.fit(X, [40, 40])
    ghmm = GaussianHMM(3, covariance_type="diag", n_iter=3, random_state=0, init_params="mc")
    ghmm.startprob_, ghmm.transmat_, ghmm.endprob_ = start, trans, end
    ghmm.fit(X, [40, 40])
    path = tmp_path / "hmmdefs"
    save_htk_mmf(path, {"one": gmm, "two": ghmm}, parm_kind="MFCC")
    models, options = load_htk_mmf(path)
    assert list(models) == ["one", "two"] and options["parm_kind"] == "MFCC"
    for name, original in (("one", gmm), ("two", ghmm)):
        back = models[name]
        for attr in ("startprob_", "transmat_", "endprob_"):
            np.testing.assert_allclose(getattr(back, attr), getattr(original, attr), rtol=1e-6, atol=1e-12)
        assert back.score(X, [40, 40]) == pytest.approx(original.score(X, [40, 40]), rel=1e-6)
    np.testing.assert_allclose(models["one"].means_, gmm.means_, rtol=1e-6)
    np.testing.assert_allclose(models["two"].means_[:, 0], ghmm.means_, rtol=1e-6)
    # a second write of what was read gives the same file
    save_htk_mmf(tmp_path / "again", models, parm_kind="MFCC")
    assert (tmp_path / "again").read_text() == path.read_text()


@pytest.mark.parametrize("text, match", [
    ("\0\0binary", "binary"),
    (HAND_MMF.replace("<STATE> 3\n", "<STATE> 3\n~s \"s3\"\n"), "shared states"),
    (HAND_MMF.replace("<DIAGC>", "<FULLC>"), "FULLC"),
    (HAND_MMF.replace("<NUMSTATES> 4", "<NUMSTATES> 5"), "no definition for state"),
    (HAND_MMF.replace('~t "T4"\n<ENDHMM>', '~t "T9"\n<ENDHMM>'), "undefined transition macro"),
    (HAND_MMF.replace("<MEAN> 2\n -2.0 0.5", "<MEAN> 3\n -2.0 0.5 1.0"), "the model set has 2"),
    (HAND_MMF.rsplit("<ENDHMM>", 1)[0], "end of file, expected <ENDHMM>"),
    ("~o <VECSIZE> 2", "no HMM definitions"),
    (HAND_MMF.replace(" 0.0 0.8 0.2 0.0", " 0.0 0.6 0.2 0.2"), "tee model"),  # entry -> exit: HTK's sp
    # a state given twice: the second silently replaced the first
    (HAND_MMF.replace('~t "T4"\n<ENDHMM>', '<STATE> 3\n<MEAN> 2\n 9.0 9.0\n<VARIANCE> 2\n 1.0 1.0\n~t "T4"\n<ENDHMM>'),
     "state 3 is defined twice"),
    (HAND_MMF.replace('~h "yes"', '~t "T4"\n<TRANSP> 4\n' + " 0 1 0 0" * 4 + '\n~h "yes"'),
     "transition macro 'T4' is defined twice"),  # HTK refuses a macro name given twice
])
def test_bad_mmf_raises_model_file_error(text, match):
    with pytest.raises(ModelFileError, match=match):
        parse_mmf(text)


@pytest.mark.parametrize("old, new, match", [
    (" 0.0 0.6 0.3 0.1", " 0.0 0.6 0.3 0.5", "sum to 1"),
    ("<MIXTURE> 2 0.75", "<MIXTURE> 2 0.5", "weights_"),
    (" 1.0 2.0", " 1.0 -2.0", "covars_"),
])
def test_bad_probabilities_or_variances_raise_model_file_error(tmp_path, old, new, match):
    (tmp_path / "hmmdefs").write_text(HAND_MMF.replace(old, new))
    with pytest.raises(ModelFileError, match=match):
        load_htk_mmf(tmp_path / "hmmdefs")


def test_export_refuses_models_htk_cannot_hold(tmp_path):
    model = GaussianHMM(2, covariance_type="diag")
    model.startprob_, model.transmat_ = np.array([1.0, 0.0]), np.array([[0.5, 0.5], [0.0, 1.0]])
    model.means_, model.covars_, model.n_features = np.zeros((2, 1)), np.ones((2, 1)), 1
    with pytest.raises(InvalidParameterError, match="exit probabilities"):
        save_htk_mmf(tmp_path / "x", {"a": model})
    model.endprob_ = np.array([0.0, 0.1])
    model.transmat_ = np.array([[0.5, 0.5], [0.0, 0.9]])
    full = GaussianHMM(2, covariance_type="full")
    with pytest.raises(InvalidParameterError, match="covariance_type"):
        save_htk_mmf(tmp_path / "x", {"a": model, "b": full})
    assert not (tmp_path / "x").exists()
    save_htk_mmf(tmp_path / "x", {"a": model})
    assert (tmp_path / "x").read_text().startswith("~o\n<STREAMINFO> 1 1\n")


def test_non_ascii_model_names_round_trip(tmp_path):
    # HTK names are byte strings: IPA phone names (UTF-8) are fine in HTK and must read back.
    (tmp_path / "ascii").write_text(HAND_MMF)
    models, _ = load_htk_mmf(tmp_path / "ascii")
    save_htk_mmf(tmp_path / "ipa", {"ə": models["yes"], "ʃ": models["yes"]})
    back, _ = load_htk_mmf(tmp_path / "ipa")
    assert list(back) == ["ə", "ʃ"]
    np.testing.assert_array_equal(back["ə"].means_, models["yes"].means_)
    (tmp_path / "latin1").write_bytes(b"\xff\xfe~h \x00binary")
    with pytest.raises(ModelFileError, match="binary"):
        load_htk_mmf(tmp_path / "latin1")


def test_unreadable_paths_raise_model_file_error(tmp_path):
    for path in (tmp_path / "missing", tmp_path):
        with pytest.raises(ModelFileError, match=str(path)):
            load_htk_mmf(path)


def test_byte_order_mark_is_dropped(tmp_path):
    (tmp_path / "bom").write_text("\ufeff" + HAND_MMF, encoding="utf-8")
    models, options = load_htk_mmf(tmp_path / "bom")
    assert list(models) == ["yes"] and options["parm_kind"] == "MFCC_E"


def test_global_options_inside_the_hmm_definition():
    # HTK Book 7.10: hmmdef = [~h macro] <BeginHMM> [globalOpts] <NumStates> ...; HInit-style
    # prototypes carry their <VecSize> and parameter kind there instead of in a ~o macro
    inline = HAND_MMF.replace("~o\n<STREAMINFO> 1 2\n<VECSIZE> 2<NULLD><MFCC_E><DIAGC>\n", "").replace(
        "<BEGINHMM>\n", "<BEGINHMM>\n<VECSIZE> 2 <MFCC_E> <DIAGC> <NULLD>\n")
    models, options = parse_mmf(inline)
    reference, _ = parse_mmf(HAND_MMF)
    assert options == {"vecsize": 2, "parm_kind": "MFCC_E", "covariance": "DIAGC"}
    np.testing.assert_array_equal(models["yes"].means, reference["yes"].means)
    with pytest.raises(ModelFileError, match="FULLC"):
        parse_mmf(inline.replace("<DIAGC>", "<FULLC>"))


@pytest.mark.parametrize("kind", ["MFCC E", "", "MFCC>", "NOTAKIND"])
def test_export_refuses_parameter_kinds_htk_cannot_read(tmp_path, kind):
    (tmp_path / "hmmdefs").write_text(HAND_MMF)
    models, _ = load_htk_mmf(tmp_path / "hmmdefs")
    with pytest.raises(InvalidParameterError, match="parameter kind"):
        save_htk_mmf(tmp_path / "out", models, parm_kind=kind)
    assert not (tmp_path / "out").exists()
    save_htk_mmf(tmp_path / "out", models, parm_kind="mfcc_e_d_a_z")
    assert load_htk_mmf(tmp_path / "out")[1]["parm_kind"] == "MFCC_E_D_A_Z"


def test_mmf_is_read_as_every_text_input(tmp_path, monkeypatch):
    """read_mmf goes through the shared text reader: size cap, missing file named, binary named."""
    from gmmhmm import _textio

    (tmp_path / "m").write_text(HAND_MMF)
    monkeypatch.setattr(_textio, "MAX_TEXT_BYTES", 64)
    with pytest.raises(ModelFileError, match="limited to 64"):
        load_htk_mmf(tmp_path / "m")
    monkeypatch.undo()
    with pytest.raises(ModelFileError, match=r"MMF .*nope: it does not exist"):
        load_htk_mmf(tmp_path / "nope")
    (tmp_path / "b").write_bytes(b"\x80\x01binary")  # not UTF-8: still called a binary MMF
    with pytest.raises(ModelFileError, match="binary MMFs are not supported"):
        load_htk_mmf(tmp_path / "b")


def test_mmf_device_is_refused_unread():
    with pytest.raises(ModelFileError, match="device"):
        load_htk_mmf("/dev/zero")  # read whole, it would never end
