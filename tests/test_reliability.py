"""Reliability: degenerate training, crash-safe files, files that must not run code."""

from __future__ import annotations

import io
import logging
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from gmmhmm import GMMHMM, GaussianHMM, GaussianMixture, modelfile
from gmmhmm.classifier import HMMClassifier
from gmmhmm.errors import InvalidInputError, ModelFileError, SequenceTooShortError
from gmmhmm.features import load_features, save_features

REPO = Path(__file__).resolve().parents[1]
COVARIANCE_TYPES = ("diag", "full", "spherical", "tied")


def _finite(model, names) -> None:
    for name in names:
        value = np.asarray(getattr(model, name))
        assert np.isfinite(value).all(), f"{name} is not finite: {value}"


@pytest.fixture
def X() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(0, 1, (40, 3)), rng.normal(3, 1, (40, 3))])


# ---------------------------------------------------------------------------
# Degenerate training
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("ctype", COVARIANCE_TYPES)
def test_gmm_duplicate_points_give_floored_finite_model(ctype):
    X = np.ones((30, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = GaussianMixture(3, covariance_type=ctype, reg_covar=1e-4, random_state=0).fit(X)
    _finite(gm, ("weights_", "means_", "covariances_", "precisions_cholesky_"))
    used = gm.weights_ > 1e-6  # a component left without data keeps its old mean
    assert used.any() and np.allclose(gm.means_[used], 1.0)
    # every variance is at least the floor, never zero or negative
    cov = np.asarray(gm.covariances_)
    diag = np.diagonal(cov, axis1=-2, axis2=-1) if ctype in ("full", "tied") else cov
    assert (diag >= 1e-4 * 0.999).all()
    assert np.isfinite(gm.score_samples(X)).all()


@pytest.mark.parametrize("ctype", COVARIANCE_TYPES)
def test_gmm_component_far_from_data_keeps_its_parameters(ctype, X, caplog):
    means = np.array([[0.0, 0, 0], [3, 3, 3], [1e6, 1e6, 1e6]])
    gm = GaussianMixture(3, covariance_type=ctype, means_init=means, max_iter=5, random_state=0)
    with caplog.at_level(logging.WARNING, logger="gmmhmm"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(X)
    _finite(gm, ("weights_", "means_", "covariances_", "precisions_cholesky_"))
    assert gm.weights_[2] < 1e-10
    np.testing.assert_array_equal(gm.means_[2], means[2])
    assert "received no data" in caplog.text
    assert np.isfinite(gm.predict_proba(X)).all()
    np.testing.assert_allclose(gm.predict_proba(X).sum(axis=1), 1.0)


def _never_visited_ghmm(ctype: str) -> GaussianHMM:
    # state 2 cannot be reached: it starts with probability 0 and no state moves to it
    g = GaussianHMM(3, covariance_type=ctype, init_params="", params="stmc", n_iter=3)
    g.n_features = 3
    g.startprob_ = np.array([0.5, 0.5, 0.0])
    g.transmat_ = np.array([[0.9, 0.1, 0.0], [0.1, 0.9, 0.0], [0.0, 0.0, 1.0]])
    g.means_ = np.array([[0.0, 0, 0], [3, 3, 3], [-5, -5, -5]])
    g.covars_ = np.stack([np.eye(3)] * 3)
    return g


@pytest.mark.parametrize("ctype", COVARIANCE_TYPES)
def test_hmm_state_never_visited_keeps_its_parameters(ctype, X, caplog):
    g = _never_visited_ghmm(ctype)
    before_means = g.means_.copy()
    with caplog.at_level(logging.WARNING, logger="gmmhmm"):
        g.fit(X)
    _finite(g, ("startprob_", "transmat_", "means_", "covars_"))
    np.testing.assert_array_equal(g.means_[2], before_means[2])
    assert "received no data" in caplog.text
    post = g.predict_proba(X)
    np.testing.assert_allclose(post.sum(axis=1), 1.0)
    assert np.all(post[:, 2] == 0)


@pytest.mark.parametrize("ctype", COVARIANCE_TYPES)
def test_gmmhmm_state_and_component_never_visited(ctype, X, caplog):
    g = _never_visited_ghmm("diag")
    h = GMMHMM(3, n_mix=2, covariance_type=ctype, init_params="", params="stwmc", n_iter=3)
    h.n_features = 3
    h.startprob_, h.transmat_ = g.startprob_, g.transmat_
    h.weights_ = np.full((3, 2), 0.5)
    h.means_ = np.zeros((3, 2, 3))
    h.means_[0, 0], h.means_[1, 0] = 0.0, 3.0
    h.means_[:, 1] = 1e4  # component 1 of every state is far from every frame
    h.covars_ = {"diag": np.ones((3, 2, 3)), "full": np.tile(np.eye(3), (3, 2, 1, 1)),
                 "spherical": np.ones((3, 2)), "tied": np.tile(np.eye(3), (3, 1, 1))}[ctype]
    with caplog.at_level(logging.WARNING, logger="gmmhmm"):
        h.fit(X)
    _finite(h, ("startprob_", "transmat_", "weights_", "means_", "covars_"))
    np.testing.assert_allclose(h.weights_.sum(axis=1), 1.0)
    assert np.all(h.means_[:, 1] == 1e4)
    assert "received no data" in caplog.text
    assert np.isfinite(h.score(X))


def test_classifier_on_sequences_shorter_than_its_topology_is_refused_clearly(X):
    # 3-frame sequences, 6-state word models left only through their last state: no path
    with pytest.raises(SequenceTooShortError, match="every training sequence is shorter than the 6 frames"):
        HMMClassifier(n_states=6, mix_schedule=(1, 2), n_iter=2).fit([X[:3], X[40:43]], [0, 1])
    # 6 frames just reach the final state (one frame per state): finite models
    clf = HMMClassifier(n_states=6, mix_schedule=(1, 2), n_iter=2).fit([X[:6], X[40:46]], [0, 1])
    for m in clf.models_:
        _finite(m, ("startprob_", "transmat_", "endprob_", "weights_", "means_", "covars_"))
    scores = clf.predict_log_likelihoods([X[:6], X[40:46], X[:3]])
    assert np.isfinite(scores[:2]).all() and np.all(scores[2] == -np.inf)
    assert list(clf.predict([X[:6], X[40:46]])) == [0, 1]


# ---------------------------------------------------------------------------
# Atomic writes: SIGKILL a writer at several (fixed) moments
# ---------------------------------------------------------------------------
_WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from gmmhmm import GaussianMixture, modelfile
    from gmmhmm.features import save_features
    path, kind = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(0)
    version = 0
    while True:
        version += 1
        if kind == "model":
            gm = GaussianMixture(4, covariance_type="full")
            gm.weights_ = np.full(4, 0.25)
            gm.means_ = np.full((4, 300), float(version))   # about 3 MB per file with the covariances
            gm.covariances_ = np.tile(np.eye(300), (4, 1, 1))
            gm.precisions_cholesky_ = gm.covariances_
            modelfile.save(gm, path, metadata={"version": version})
        else:
            save_features(path, {"a": np.full((20000, 39), float(version)), "b": np.zeros((5, 39))},
                          metadata={"version": version})
        print(version, flush=True)
""")


# Kill moments after the writer's first complete file: early, mid-write and a few versions later.
_KILL_DELAYS_S = (0.0, 0.13, 0.37)


@pytest.mark.parametrize("kind", ["model", "features"])
def test_sigkill_during_writes_leaves_a_complete_file(kind, tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    path = tmp_path / f"{kind}.npz"
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for delay in _KILL_DELAYS_S:  # fixed, so that a failure can be replayed
        proc = subprocess.Popen([sys.executable, str(script), str(path), kind], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip(), proc.stderr.read()  # first version is on disk
            time.sleep(delay)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
        assert proc.returncode == -signal.SIGKILL, f"writer was not killed after {delay} s"
        if kind == "model":
            model, meta = modelfile.load(path, with_metadata=True)
            v = meta["version"]
            assert v >= 1 and np.all(model.means_ == v) and model.covariances_.shape == (4, 300, 300), delay
        else:
            feats, meta = load_features(path)
            v = meta["version"]
            assert v >= 1 and np.all(feats["a"] == v) and feats["b"].shape == (5, 39), delay
        leftovers = [p.name for p in tmp_path.iterdir() if p.name not in (path.name, script.name)]
        assert all(name.startswith(path.name + ".tmp") for name in leftovers), (delay, leftovers)
    # a leftover temporary file is ignored: the next write and load work
    model = GaussianMixture(2, random_state=0).fit(np.random.default_rng(1).normal(size=(20, 2)))
    modelfile.save(model, tmp_path / "model.npz")
    np.testing.assert_array_equal(modelfile.load(tmp_path / "model.npz").means_, model.means_)


def test_failed_save_keeps_the_previous_file_and_no_temp_file(tmp_path, X):
    path = tmp_path / "m.npz"
    good = GaussianMixture(2, random_state=0).fit(X)
    good.save(path)
    bad = GaussianMixture(2, random_state=0).fit(X)
    bad.means_ = np.array([object(), object()], dtype=object)  # not storable without pickle
    with pytest.raises(ModelFileError):
        bad.save(path)
    np.testing.assert_array_equal(GaussianMixture.load(path).means_, good.means_)
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


# ---------------------------------------------------------------------------
# Loading never runs code from the file
# ---------------------------------------------------------------------------
class _Marker:
    """Unpickling this writes the marker file: proof that code from the file ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.write_text, (Path(self.path), "pwned"))


def _npy_bytes(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def _pickle_bearing_files(tmp_path: Path, marker: Path) -> dict[str, Path]:
    payload = np.empty(1, dtype=object)
    payload[0] = _Marker(str(marker))
    header = modelfile._header_array({"format": "gmmhmm-model", "version": 1,
                                      "model": {"class": "GaussianMixture", "params": {},
                                                "attributes": {"means_": {"t": "array", "key": "m"}}},
                                      "metadata": {"t": "json", "v": {}}})
    files = {}
    files["npz_object_array"] = tmp_path / "evil.npz"
    np.savez(files["npz_object_array"], __header__=header, m=payload, allow_pickle=True)
    files["feature_npz"] = tmp_path / "evil_feats.npz"
    np.savez(files["feature_npz"], __header__=np.frombuffer(
        b'{"format": "gmmhmm-features", "version": 1, "names": ["a"], "metadata": {}}', dtype=np.uint8),
        features=payload, lengths=np.array([1]), allow_pickle=True)
    files["raw_pickle"] = tmp_path / "evil.pkl.npz"
    files["raw_pickle"].write_bytes(pickle.dumps(_Marker(str(marker))))
    files["npy"] = tmp_path / "evil.npy.npz"
    with open(files["npy"], "wb") as f:  # np.save(path, ...) would append ".npy" to the name
        np.save(f, payload, allow_pickle=True)
    files["zip_with_pickle_member"] = tmp_path / "evil_zip.npz"
    with zipfile.ZipFile(files["zip_with_pickle_member"], "w") as z:  # a valid header; m is a bare pickle
        z.writestr("__header__.npy", _npy_bytes(header))
        z.writestr("m.npy", pickle.dumps(_Marker(str(marker))))
    return files


# What each reader must say about each file: never merely "no such file".
_REFUSAL = {
    "npz_object_array": "refusing a file that needs pickle",
    "feature_npz": "refusing a file that needs pickle",
    "raw_pickle": r"not a gmmhmm file \(not an \.npz archive\)",
    "npy": r"not a gmmhmm file \(a bare \.npy array\)",
    "zip_with_pickle_member": r"not a gmmhmm file \(member\(s\) \['m'\] are not \.npy arrays\)",
}


def _unpickle_unsafely(kind: str, path: Path) -> None:
    """What a careless reader would do with the file: it runs the payload."""
    if kind in ("npz_object_array", "feature_npz"):
        with np.load(path, allow_pickle=True) as npz:
            [npz[k] for k in npz.files]
    elif kind == "npy":
        np.load(path, allow_pickle=True)
    elif kind == "raw_pickle":
        pickle.loads(path.read_bytes())
    else:
        with zipfile.ZipFile(path) as z:
            pickle.loads(z.read("m.npy"))


@pytest.mark.parametrize("kind", list(_REFUSAL))
@pytest.mark.parametrize("reader", ["load", "describe", "load_metadata", "load_features"])
def test_pickle_bearing_file_is_refused_and_runs_nothing(kind, reader, tmp_path):
    marker = tmp_path / "marker.txt"
    files = _pickle_bearing_files(tmp_path, marker)
    assert files[kind].is_file()
    fn = {"load": modelfile.load, "describe": modelfile.describe, "load_metadata": modelfile.load_metadata,
          "load_features": load_features}[reader]
    with pytest.raises(ModelFileError, match=_REFUSAL[kind]) as err:
        fn(files[kind])
    assert str(files[kind]) in str(err.value)
    assert not marker.exists()
    # the file's own payload is live: unpickling it on purpose does write the marker
    _unpickle_unsafely(kind, files[kind])
    assert marker.read_text() == "pwned"


def test_random_garbage_and_truncation_are_model_file_errors(tmp_path, X):
    path = tmp_path / "m.npz"
    GaussianMixture(2, random_state=0).fit(X).save(path)
    data = path.read_bytes()
    for cut in (0, 3, 10, len(data) // 2, len(data) - 1):
        (tmp_path / "cut.npz").write_bytes(data[:cut])
        with pytest.raises(ModelFileError):
            modelfile.load(tmp_path / "cut.npz")
    with pytest.raises(ModelFileError, match="no such file"):
        modelfile.load(tmp_path / "missing.npz")
    with pytest.raises(InvalidInputError):
        save_features(tmp_path / "f.npz", {"a": np.zeros(3)})


def _fitted_models(X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [GaussianMixture(2, covariance_type=c, random_state=0).fit(X) for c in COVARIANCE_TYPES] + [
            GaussianHMM(2, random_state=0, n_iter=2).fit(X), GMMHMM(2, n_mix=2, random_state=0, n_iter=2).fit(X)]


@pytest.mark.parametrize("tamper", ["string", "none", "wrong_shape", "nan"])
def test_tampered_parameters_fail_at_load_as_model_file_errors(tamper, tmp_path, X):
    """A parseable file with nonsense parameters is refused by load, not left to crash at first use."""
    import json

    for model in _fitted_models(X):
        path = tmp_path / "m.npz"
        model.save(path)
        npz = dict(np.load(path))
        header = json.loads(npz["__header__"].tobytes())
        for attr in [a for a in header["model"]["attributes"] if a in ("weights_", "means_", "startprob_", "covars_")]:
            h = json.loads(json.dumps(header))
            spec = h["model"]["attributes"][attr]
            arrays = dict(npz)
            if tamper == "string":
                h["model"]["attributes"][attr] = {"t": "json", "v": "oops"}
            elif tamper == "none":
                h["model"]["attributes"][attr] = {"t": "json", "v": None}
            elif tamper == "wrong_shape":
                arrays[spec["key"]] = np.zeros((7, 1, 1, 1))
            else:
                arrays[spec["key"]] = np.full_like(arrays[spec["key"]], np.nan)
            arrays["__header__"] = np.frombuffer(json.dumps(h).encode(), dtype=np.uint8)
            np.savez(path, **arrays)
            with pytest.raises(ModelFileError, match="invalid|corrupt"):
                modelfile.load(path)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("tamper", ["negated", "zero", "doubled", "nan_precisions", "precisions_doubled"])
def test_tampered_precisions_fail_at_load(covariance_type, tamper, tmp_path, X):
    """precisions_cholesky_ is what scoring uses. Both it and precisions_ are derived from
    covariances_: a factor that is not positive (or NaN precisions) is refused, never left to score
    NaN; any other disagreement is replaced by the arrays derived from covariances_ at load."""
    path = tmp_path / "m.npz"
    model = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    model.save(path)
    arrays = dict(np.load(path))
    name = "precisions_" if tamper.startswith("nan_") or tamper.startswith("precisions_") else "precisions_cholesky_"
    arrays[name] = {"negated": lambda a: -a, "zero": lambda a: 0 * a, "doubled": lambda a: 2 * a,
                    "nan_precisions": lambda a: np.full_like(a, np.nan),
                    "precisions_doubled": lambda a: 2 * a}[tamper](arrays[name])
    np.savez(path, **arrays)
    if "doubled" in tamper:
        loaded = modelfile.load(path)
        np.testing.assert_allclose(loaded.score_samples(X), model.score_samples(X), rtol=1e-10)
        np.testing.assert_allclose(loaded.precisions_, model.precisions_, rtol=1e-8)
        return
    with pytest.raises(ModelFileError, match=f"invalid GaussianMixture parameters: {name}"):
        modelfile.load(path)


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_float32_models_save_whatever_their_conditioning(covariance_type, tmp_path):
    """A float32 fit's factors and precisions differ from ones recomputed in float64 by about
    cond x eps32: saving (which loads the file back to check it) must not refuse them."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(2000, 13))
    X[:, 1] = X[:, 0] + 3e-3 * rng.normal(size=2000)  # condition number ~1e5
    for seed in range(6):
        model = GaussianMixture(4, covariance_type=covariance_type, max_iter=5, random_state=seed
                                ).fit(X.astype(np.float32))
        model.save(tmp_path / "m.npz")
        back = modelfile.load(tmp_path / "m.npz")
        # the same model up to float32 rounding of factors of condition ~1e5 (hundredths of a nat)
        np.testing.assert_allclose(back.score_samples(X[:50]), model.score_samples(X[:50]), rtol=1e-3, atol=0.05)


@pytest.mark.parametrize("value", [5, True, "3"])
def test_tampered_feature_count_of_a_mixture_fails_at_load(value, tmp_path, X):
    """n_features_in_ (scikit-learn's input check) must be the means' dimension."""
    import json

    path = tmp_path / "m.npz"
    GaussianMixture(2, random_state=0).fit(X).save(path)
    arrays = dict(np.load(path))
    header = json.loads(arrays["__header__"].tobytes())
    header["model"]["attributes"]["n_features_in_"] = {"t": "json", "v": value}
    arrays["__header__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(ModelFileError, match="n_features_in_"):
        modelfile.load(path)
