"""Property-based fuzzing of the public API.

Every call either returns a result that satisfies the invariants (finite
parameters, posteriors summing to 1, ...) or raises a
:class:`gmmhmm.errors.GmmhmmError`; any other exception type is a bug.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import tempfile
import tomllib
import warnings
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from conftest import has_empty_mel_filter

from gmmhmm import GMMHMM, GaussianHMM, GaussianMixture, modelfile
from gmmhmm import scoring as S
from gmmhmm._validation import check_lengths
from gmmhmm.errors import GmmhmmError, InvalidParameterError, ModelFileError
from gmmhmm.features import FeatureConfig, add_deltas, cmvn, deltas, extract_features, load_features, mfcc

FUZZ = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@contextmanager
def _either_result_or_gmmhmm_error():
    """Let a GmmhmmError through silently; anything else fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        except GmmhmmError:
            pass


@st.composite
def feature_matrices(draw, max_rows: int = 40, max_cols: int = 4, allow_bad: bool = True):
    """Random (n, d) arrays: random dtype, scale, duplicates and NaN/inf positions."""
    n = draw(st.integers(0 if allow_bad else 1, max_rows))
    d = draw(st.integers(0 if allow_bad else 1, max_cols))
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int32] + ([np.bool_] if allow_bad else [])))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([1e-150, 1e-6, 1.0, 1e3, 1e150]))
    X = rng.normal(0, scale, (n, d))
    if n > 1 and draw(st.booleans()):  # duplicate rows
        X[: n // 2] = X[0]
    with np.errstate(over="ignore", invalid="ignore"):  # 1e150 -> float32 inf / int32: intended
        X = X.astype(dtype)
    if allow_bad and X.size and X.dtype.kind == "f" and draw(st.integers(0, 4)) == 0:
        i = draw(st.integers(0, X.size - 1))
        X.flat[i] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return X


@st.composite
def lengths_for(draw, n: int):
    """Valid lengths most of the time; otherwise wrong sums, zeros, negatives, floats."""
    kind = draw(st.sampled_from(["none", "valid", "valid", "wrong_sum", "zero", "negative", "float", "empty"]))
    if kind == "none" or n == 0:
        return None
    if kind in ("valid", "float"):
        cuts = sorted(set(draw(st.lists(st.integers(1, max(n - 1, 1)), max_size=3))) - {n})
        out = np.diff([0, *cuts, n])
        return out.astype(float) + (0.5 if kind == "float" else 0.0)
    if kind == "wrong_sum":
        return [n + draw(st.sampled_from([-1, 1, 7]))]
    if kind == "zero":
        return [n, 0]
    if kind == "negative":
        return [n + 3, -3]
    return []


def _check_gmm(gm: GaussianMixture, X: np.ndarray) -> None:
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert np.isfinite(getattr(gm, name)).all(), name
    np.testing.assert_allclose(gm.weights_.sum(), 1.0, rtol=1e-6)
    proba = gm.predict_proba(X)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert not np.isnan(gm.score_samples(X)).any()


@FUZZ
@given(X=feature_matrices(), k=st.integers(1, 4), ctype=st.sampled_from(["full", "tied", "diag", "spherical"]),
       dtype=st.sampled_from(["float64", "float32"]))
def test_gaussian_mixture(X, k, ctype, dtype):
    with _either_result_or_gmmhmm_error():
        gm = GaussianMixture(k, covariance_type=ctype, max_iter=5, random_state=0, dtype=dtype).fit(X)
        _check_gmm(gm, X)


def _check_hmm(model, X, lengths) -> None:
    for name in ("startprob_", "transmat_", "means_", "covars_"):
        assert np.isfinite(getattr(model, name)).all(), name
    np.testing.assert_allclose(model.transmat_.sum(axis=1), 1.0, rtol=1e-6)
    logprob, post = model.score_samples(X, lengths)
    assert np.isfinite(logprob)
    np.testing.assert_allclose(post.sum(axis=1), 1.0, rtol=1e-6)
    _, states = model.decode(X, lengths)
    assert states.shape == (len(X),) and states.min() >= 0 and states.max() < model.n_components


@FUZZ
@given(data=st.data(), n_states=st.integers(1, 3), ctype=st.sampled_from(["full", "tied", "diag", "spherical"]))
def test_gaussian_hmm(data, n_states, ctype):
    X = data.draw(feature_matrices())
    lengths = data.draw(lengths_for(len(X)))
    with _either_result_or_gmmhmm_error():
        model = GaussianHMM(n_states, covariance_type=ctype, n_iter=3, random_state=0).fit(X, lengths)
        _check_hmm(model, X, lengths)


@FUZZ
@given(data=st.data(), n_states=st.integers(1, 3), n_mix=st.integers(1, 2),
       ctype=st.sampled_from(["full", "tied", "diag", "spherical"]))
def test_gmm_hmm(data, n_states, n_mix, ctype):
    X = data.draw(feature_matrices())
    lengths = data.draw(lengths_for(len(X)))
    with _either_result_or_gmmhmm_error():
        model = GMMHMM(n_states, n_mix=n_mix, covariance_type=ctype, n_iter=3, random_state=0).fit(X, lengths)
        _check_hmm(model, X, lengths)
        np.testing.assert_allclose(model.weights_.sum(axis=1), 1.0, rtol=1e-6)


@pytest.fixture(scope="module")
def fitted_hmm():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (30, 2)), rng.normal(4, 1, (30, 2))])
    return GaussianHMM(2, n_iter=5, random_state=0).fit(X, [30, 30])


@FUZZ
@given(data=st.data())
def test_scoring_a_fitted_hmm_on_random_input(fitted_hmm, data):
    X = data.draw(feature_matrices(max_cols=3))
    lengths = data.draw(lengths_for(len(X)))
    with _either_result_or_gmmhmm_error():
        logprob, post = fitted_hmm.score_samples(X, lengths)
        assert X.shape[1] == 2 and np.isfinite(logprob)
        np.testing.assert_allclose(post.sum(axis=1), 1.0, rtol=1e-6)


@FUZZ
@given(lengths=st.one_of(st.none(), st.lists(st.integers(-3, 10), max_size=4),
                         st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=3),
                         st.integers(-2, 12), st.text(max_size=3)),
       n=st.integers(1, 12))  # callers validate X (at least one row) first
def test_check_lengths(lengths, n):
    with _either_result_or_gmmhmm_error():
        out = check_lengths(lengths, n)
        assert out.dtype == np.int64 and (out > 0).all() and out.sum() == n


# ---------------------------------------------------------------------------
# Front end
# ---------------------------------------------------------------------------
@FUZZ
@given(n=st.integers(0, 3000), rate=st.sampled_from([8000, 16000, 11025, 0, -1, 44100]),
       kind=st.sampled_from(["noise", "silence", "huge", "tiny", "nan", "int16", "2d"]), seed=st.integers(0, 2**16))
def test_mfcc_deltas_cmvn_on_random_signals(n, rate, kind, seed):
    rng = np.random.default_rng(seed)
    x = {"noise": rng.normal(size=n), "silence": np.zeros(n), "huge": rng.normal(size=n) * 1e30,
         "tiny": rng.normal(size=n) * 1e-30, "nan": np.where(rng.random(n) < 0.01, np.nan, 0.0),
         "int16": (rng.normal(size=n) * 1000).astype(np.int16), "2d": rng.normal(size=(n, 2))}[kind]
    with _either_result_or_gmmhmm_error():
        config = FeatureConfig(sample_rate_hz=rate)
        C = mfcc(x, rate, config)
        assert C.shape[1] == config.n_ceps and np.isfinite(C).all()
        D = add_deltas(C, 2)
        assert D.shape == (len(C), 3 * config.n_ceps) and np.isfinite(D).all()
        N = cmvn(D)
        assert np.isfinite(N).all() and np.allclose(N.mean(axis=0), 0, atol=1e-6 * max(1.0, np.abs(D).max()))
        F = extract_features(x, config, sample_rate_hz=rate)
        assert np.isfinite(F).all() and F.shape[1] == config.n_features


@FUZZ
@given(X=feature_matrices(max_rows=10), window=st.integers(-1, 4))
def test_deltas_on_random_matrices(X, window):
    with _either_result_or_gmmhmm_error():
        out = deltas(X, window)
        assert out.shape == X.shape and np.isfinite(out).all()


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------
def _real_model_file():
    """A real saved GaussianMixture: (model, the file's arrays, its parsed header)."""
    rng = np.random.default_rng(0)
    gm = GaussianMixture(2, random_state=0).fit(rng.normal(size=(30, 2)))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.npz"
        gm.save(path, metadata=_REAL_METADATA)
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    return gm, arrays, json.loads(arrays["__header__"].tobytes())


_REAL_METADATA = {"note": "real", "n": 3, "labels": ["a", "b"]}
_REAL_GM, _REAL_ARRAYS, _REAL_HEADER = _real_model_file()
_READERS = {"load": modelfile.load, "describe": modelfile.describe, "load_metadata": modelfile.load_metadata,
            "load_features": load_features}


def _assert_is_the_real_model(path: Path) -> None:
    """``path`` holds _REAL_GM: every reader agrees with the saved model."""
    model = modelfile.load(path)
    assert type(model) is GaussianMixture and model.get_params() == _REAL_GM.get_params()
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_array_equal(getattr(model, name), getattr(_REAL_GM, name))
    X = np.random.default_rng(1).normal(size=(10, 2))
    np.testing.assert_array_equal(model.score_samples(X), _REAL_GM.score_samples(X))
    info = modelfile.describe(path)
    assert info["class"] == "GaussianMixture" and info["metadata"] == _REAL_METADATA
    assert info["attributes"]["means_"] == {"shape": [2, 2], "dtype": "float64"}
    assert modelfile.load_metadata(path) == _REAL_METADATA
    with pytest.raises(ModelFileError, match="'gmmhmm-model' file, expected 'gmmhmm-features'"):
        load_features(path)


def _read_all(path: Path) -> dict:
    """Run every reader: each returns or raises ModelFileError (nothing else). Returns the successes."""
    out = {}
    for name, reader in _READERS.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                out[name] = reader(path)
            except ModelFileError as exc:
                assert str(path) in str(exc)  # every message names the file
    if "load" in out and "describe" in out:
        assert out["describe"]["class"] == type(out["load"]).__name__
    if "load_features" in out:
        feats, meta = out["load_features"]
        assert all(isinstance(v, np.ndarray) and v.ndim == 2 for v in feats.values())
    return out


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("fuzz") / "m.npz"
    _REAL_GM.save(path, metadata=_REAL_METADATA)
    _assert_is_the_real_model(path)
    return path.read_bytes()


@FUZZ
@given(data=st.data())
def test_load_random_or_mutated_bytes(model_bytes, data, tmp_path_factory):
    kind = data.draw(st.sampled_from(["random", "flip", "cut", "zip_prefix"]))
    if kind == "random":
        blob = data.draw(st.binary(max_size=300))
    elif kind == "flip":
        blob = bytearray(model_bytes)
        for i in data.draw(st.lists(st.integers(0, len(blob) - 1), min_size=1, max_size=8)):
            blob[i] ^= data.draw(st.integers(1, 255))
        blob = bytes(blob)
    elif kind == "cut":
        blob = model_bytes[: data.draw(st.integers(0, len(model_bytes) - 1))]
    else:
        blob = b"PK\x03\x04" + data.draw(st.binary(max_size=200))
    path = tmp_path_factory.mktemp("blob") / "x.npz"
    path.write_bytes(blob)
    got = _read_all(path)
    if kind in ("random", "cut", "zip_prefix"):  # never a whole model file
        assert not got


def _write_npz(path: Path, arrays: dict) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, arr in arrays.items():
            member = io.BytesIO()
            np.save(member, arr)
            z.writestr(name + ".npy", member.getvalue())
    path.write_bytes(buf.getvalue())


@FUZZ
@example(arrays=_REAL_ARRAYS, must_load=True)  # a real model file, rebuilt member by member
@given(arrays=st.dictionaries(st.sampled_from(["__header__", "features", "lengths", "m", "a/b", "file"]), hnp.arrays(
    dtype=st.sampled_from([np.float64, np.int64, np.uint8, np.bool_, np.complex64]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=3)), max_size=4), must_load=st.just(False))
def test_load_foreign_npz_files(arrays, must_load, tmp_path_factory):
    path = tmp_path_factory.mktemp("npz") / "x.npz"
    _write_npz(path, arrays)
    got = _read_all(path)
    if must_load:
        assert set(got) == {"load", "describe", "load_metadata"}
        _assert_is_the_real_model(path)
    elif "__header__" not in arrays:
        assert not got  # no header, no gmmhmm file


_json = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=4),
                               st.sampled_from(["GaussianMixture", "GaussianHMM", "json", "array", "model", "dict",
                                                "list", "object_array", "scalar", "t", "v", "key", "class",
                                                *_REAL_ARRAYS])),
                     lambda inner: st.one_of(st.lists(inner, max_size=3),
                                             st.dictionaries(st.sampled_from(["t", "v", "key", "items", "shape", "class",
                                                                              "params", "attributes", "node", "n_components",
                                                                              "means_"]), inner, max_size=4)),
                     max_leaves=12)


@FUZZ
@example(model=_REAL_HEADER["model"], metadata=_REAL_HEADER["metadata"], version=1, expect="load")
@example(model=_REAL_HEADER["model"], metadata=_REAL_HEADER["metadata"], version=2, expect="newer gmmhmm")
@example(model=_REAL_HEADER["model"], metadata=_REAL_HEADER["metadata"], version="1", expect="bad format version")
@example(model={**_REAL_HEADER["model"], "class": "Banana"}, metadata=_REAL_HEADER["metadata"], version=1,
         expect="unknown model class 'Banana'")
@example(model={**_REAL_HEADER["model"], "attributes": {"means_": {"t": "array", "key": "nowhere"}}},
         metadata=_REAL_HEADER["metadata"], version=1, expect="array 'nowhere' is missing")
@given(model=_json, metadata=_json, version=st.sampled_from([1, 1, 2, 0, "1", None]), expect=st.none())
def test_load_well_formed_files_with_random_headers(model, metadata, version, expect, tmp_path_factory):
    """A valid gmmhmm container (holding a real model's arrays) whose JSON model tree is arbitrary:
    a model or a ModelFileError."""
    header = json.dumps({"format": "gmmhmm-model", "version": version, "model": model, "metadata": metadata})
    path = tmp_path_factory.mktemp("hdr") / "m.npz"
    arrays = {k: v for k, v in _REAL_ARRAYS.items() if k != "__header__"}
    np.savez(path, __header__=np.frombuffer(header.encode(), dtype=np.uint8), key=np.zeros(3), **arrays)
    got = _read_all(path)
    assert "load_features" not in got
    if expect == "load":
        _assert_is_the_real_model(path)
    elif expect is not None:
        assert "load" not in got
        with pytest.raises(ModelFileError, match=expect):
            modelfile.load(path)
    if "load" in got:
        assert isinstance(model, dict) and type(got["load"]).__name__ == model["class"]


# ---------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------
tokens = st.lists(st.sampled_from(["a", "b", "c", 1, 2]), max_size=8)


@FUZZ
@given(ref=tokens, hyp=tokens)
def test_align_invariants(ref, hyp):
    a = S.align(ref, hyp)
    assert a.n_ref == len(ref)
    assert a.n_correct + a.n_substitutions + a.n_deletions == len(ref)
    assert a.n_correct + a.n_substitutions + a.n_insertions == len(hyp)
    assert abs(len(ref) - len(hyp)) <= a.n_errors <= max(len(ref), len(hyp))
    assert (a.n_errors == 0) == (list(ref) == list(hyp))


@FUZZ
@given(refs=st.lists(st.one_of(tokens, st.text(max_size=3), st.none()), max_size=4),
       hyps=st.lists(st.one_of(tokens, st.text(max_size=3), st.none()), max_size=4))
def test_error_rates_and_accuracy_on_random_input(refs, hyps):
    with _either_result_or_gmmhmm_error():
        rates = S.error_rates(refs, hyps)
        assert rates.n_errors >= 0 and np.isfinite(rates.error_rate) or rates.n_ref == 0
    flat_r = [r[0] if isinstance(r, list) and r else "x" for r in refs]
    flat_h = [h[0] if isinstance(h, list) and h else "x" for h in hyps]
    with _either_result_or_gmmhmm_error():
        acc = S.accuracy(flat_r, flat_h)
        assert 0.0 <= acc <= 1.0


# ---------------------------------------------------------------------------
# Text inputs: configs, lexicons, transcripts, tables
# ---------------------------------------------------------------------------
_scalars = st.one_of(st.integers(-3, 10**6), st.floats(allow_nan=False, allow_infinity=False, width=32),
                     st.booleans(), st.text(max_size=6), st.lists(st.integers(-1, 8), max_size=4))
# Values each setting accepts on its own and together with any other valid setting (every rate is at
# least 8 kHz, so the filterbank edges stay below Nyquist, and n_ceps + 1 <= n_mels).
_VALID_FEATURES = {
    "sample_rate_hz": st.sampled_from([8000, 11025, 16000, 22050, 44100, 8000.0, 16000.0]),
    "preemphasis": st.floats(0.0, 1.0),
    "window_ms": st.floats(10.0, 50.0),
    "shift_ms": st.floats(2.0, 25.0),
    "window": st.sampled_from(["hamming", "povey", "hann"]),
    "snip_edges": st.booleans(),
    "n_mels": st.integers(13, 64) | st.integers(13, 64).map(float),
    "low_freq_hz": st.floats(0.0, 300.0),
    "high_freq_hz": st.none() | st.floats(-1000.0, 0.0) | st.floats(1000.0, 4000.0),
    "n_ceps": st.integers(1, 12),
    "energy": st.sampled_from(["c0", "log_energy", "none"]),
    "cep_lifter": st.floats(0.0, 40.0),
    "dither": st.floats(0.0, 1.0),
    "dither_seed": st.integers(-2**31, 2**31),
    "remove_dc": st.booleans(),
    "delta_order": st.integers(0, 3),
    "delta_window": st.integers(1, 4),
    "cmvn": st.sampled_from(["utterance", "speaker", "none"]),
    "cmvn_variance": st.booleans(),
    "spectrum": st.sampled_from(["power", "magnitude"]),
    "dct_norm": st.sampled_from(["orthonormal", "htk"]),
    "vtln_warp": st.just(1.0) | st.floats(0.5, 2.0),
    "vtln_low_hz": st.floats(301.0, 400.0),
    "vtln_high_hz": st.floats(-500.0, -200.0) | st.floats(500.0, 900.0),
}
_INT_FEATURES = {"sample_rate_hz", "n_mels", "n_ceps", "delta_order", "delta_window", "dither_seed"}


@st.composite
def _settings(draw, valid: dict, bogus: str = "bogus", max_size: int = 6):
    """A dict of settings drawn mostly from ``valid``; returns (dict, whether every entry is valid)."""
    keys = draw(st.lists(st.sampled_from(sorted(valid)), unique=True, max_size=max_size))
    out, clean = {}, True
    for key in keys:
        if draw(st.integers(0, 7)) == 0:  # now and then an arbitrary value
            out[key], clean = draw(_scalars), False
        else:
            out[key] = draw(valid[key])
    if draw(st.integers(0, 9)) == 0:
        out[bogus], clean = draw(_scalars), False
    return out, clean


def test_valid_feature_values_cover_every_setting():
    assert set(_VALID_FEATURES) == {f.name for f in dataclasses.fields(FeatureConfig)}


@FUZZ
@example(case=({}, True))
@example(case=(FeatureConfig.fsdd().to_dict(), True))
@example(case=({"sample_rate_hz": 8000.0, "n_mels": 23.0, "high_freq_hz": -200.0, "energy": "none", "n_ceps": 13,
                "window": "povey", "snip_edges": False, "delta_order": 0}, True))
@example(case=({"sample_rate_hz": 8000, "high_freq_hz": 6000.0}, False))  # above Nyquist
@example(case=({"n_ceps": 2.5}, False))
@given(case=_settings(_VALID_FEATURES))
def test_feature_config_from_random_dict(case):
    d, clean = case
    if clean and d.get("vtln_warp", 1.0) != 1.0:  # a warp needs low_freq < vtln_low < vtln_high < high_freq
        clean = d.get("low_freq_hz", 20.0) < d.get("vtln_low_hz", 100.0)  # (vtln_high's draws always fit)
    try:
        config = FeatureConfig.from_dict(d)
    except InvalidParameterError as exc:
        assert not clean or ("cover no FFT bin" in str(exc) and _has_empty_filter(d)), \
            f"valid settings {d} refused: {exc}"
        return
    assert not (clean and _has_empty_filter(d))
    default = FeatureConfig()
    for f in dataclasses.fields(FeatureConfig):  # passed keys are taken as given, the others keep their default
        value = getattr(config, f.name)
        assert value == d.get(f.name, getattr(default, f.name)), f.name
        if f.name in _INT_FEATURES:
            assert type(value) is int, f.name  # 8000.0 from a TOML file becomes 8000
    assert FeatureConfig.from_dict(config.to_dict()) == config
    assert FeatureConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.n_features == config.n_ceps * (config.delta_order + 1)
    assert config.frame_length == int(config.window_ms * config.sample_rate_hz / 1000 + 1e-9) >= 2
    assert config.low_freq_hz < config.high_freq_effective_hz <= config.sample_rate_hz / 2


def _has_empty_filter(d: dict) -> bool:
    """Whether valid settings ``d`` give a mel filter that covers no FFT bin (brute force)."""
    f = {x.name: x.default for x in dataclasses.fields(FeatureConfig)} | d
    rate = int(f["sample_rate_hz"])
    n_fft = 1 << (int(rate * f["window_ms"] / 1000 + 1e-9) - 1).bit_length()
    high = rate / 2 + (f["high_freq_hz"] or 0.0) if (f["high_freq_hz"] or 0.0) <= 0 else f["high_freq_hz"]
    vtln_high = high + f["vtln_high_hz"] if f["vtln_high_hz"] <= 0 else f["vtln_high_hz"]
    return has_empty_mel_filter(rate, n_fft, int(f["n_mels"]), f["low_freq_hz"], high, f["vtln_warp"],
                                f["vtln_low_hz"], vtln_high)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")  # a valid TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(map(str, v)) + "]"
    return repr(v) if not isinstance(v, float) else f"{v!r}".replace("inf", "1.0")


_path_text = st.text(alphabet="abc/_-", min_size=1, max_size=8)
_n_jobs = st.integers(1, 4) | st.just(-1)
_VALID_SECTIONS = {
    "features": {k: v for k, v in _VALID_FEATURES.items() if k != "high_freq_hz"}  # TOML has no None
    | {"high_freq_hz": st.floats(-1000.0, 0.0) | st.floats(1000.0, 4000.0)},
    "model": {"n_states": st.integers(1, 8), "mix_schedule": st.lists(st.integers(1, 4), min_size=1, max_size=3).map(sorted),
              "n_iter": st.integers(0, 10), "tol": st.floats(0.0, 1.0), "max_jump": st.integers(1, 3),
              "min_covar": st.floats(1e-6, 1.0), "covariance_type": st.sampled_from(["full", "tied", "diag", "spherical"]),
              "scoring": st.sampled_from(["viterbi", "forward"]), "n_jobs": _n_jobs},
    "data": {"fsdd_dir": _path_text, "split": st.sampled_from(["official", "loso"]), "n_jobs": _n_jobs},
    "output": {"dir": _path_text},
}


@st.composite
def _recipe_configs(draw):
    """({section: {key: value}}, whether all of it is valid); now and then an unknown section."""
    names = draw(st.lists(st.sampled_from([*_VALID_SECTIONS, "extra"]), unique=True, max_size=4))
    sections, clean = {}, "extra" not in names
    for name in names:
        body, ok = draw(_settings(_VALID_SECTIONS.get(name, _VALID_SECTIONS["output"]), max_size=4))
        sections[name], clean = body, clean and ok
    return sections, clean


def _write_toml(path: Path, sections: dict) -> None:
    path.write_text("".join(f"[{name}]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in body.items())
                            for name, body in sections.items()))


_GOOD_RECIPE = {"features": {"sample_rate_hz": 8000, "n_mels": 23, "window_ms": 25.0},
                "model": {"n_states": 4, "mix_schedule": [1, 2], "n_iter": [3, 2], "covariance_type": "diag"},
                "data": {"split": "loso", "n_jobs": 2, "fsdd_dir": "data/fsdd"}, "output": {"dir": "exp/x"}}


@FUZZ
@example(case=(_GOOD_RECIPE, True), garbage=None)
@example(case=({}, True), garbage=None)
@example(case=({"model": {"n_states": 3}}, True), garbage=None)
@example(case=({"model": {"mix_schedule": [4, 2]}}, False), garbage=None)
@example(case=({}, False), garbage=b"[model\nn_states = 3\n")
@given(case=_recipe_configs(), garbage=st.one_of(st.none(), st.none(), st.binary(max_size=40)))
def test_read_config_on_random_toml(case, garbage, tmp_path_factory):
    from gmmhmm.cli import RecipeConfig, read_config

    sections, clean = case
    path = tmp_path_factory.mktemp("toml") / "c.toml"
    if garbage is not None:
        path.write_bytes(garbage)
    else:
        _write_toml(path, sections)
    try:
        config = read_config(path)
    except InvalidParameterError as exc:
        assert str(path) in str(exc)  # every error names the file
        assert garbage is not None or not clean, f"valid config {sections} refused: {exc}"
        return
    assert isinstance(config, RecipeConfig) and config.path == path
    if garbage is not None:
        sections = tomllib.loads(garbage.decode("utf-8-sig"))  # whatever the bytes turned out to say
    features, model = sections.get("features", {}), sections.get("model", {})
    data, output = sections.get("data", {}), sections.get("output", {})
    default = FeatureConfig()
    for f in dataclasses.fields(FeatureConfig):
        assert getattr(config.features, f.name) == features.get(f.name, getattr(default, f.name)), f.name
    assert config.model == {k: tuple(v) if isinstance(v, list) else v for k, v in model.items()}
    assert config.split == data.get("split", "official")
    assert config.feature_jobs == data.get("n_jobs", 1)
    assert config.fsdd_dir == (Path(data["fsdd_dir"]) if data.get("fsdd_dir") else None)
    assert config.out_dir == Path(output.get("dir", "exp/fsdd_digits"))


@FUZZ
@given(text=st.text(alphabet=st.sampled_from("ab1 \t\n#-_"), max_size=60))
def test_lexicon_transcripts_and_tables_on_random_text(text, tmp_path_factory):
    from gmmhmm.cli import read_table
    from gmmhmm.graphs import Lexicon, parse_transcripts

    with _either_result_or_gmmhmm_error():
        lex = Lexicon.from_text(text)
        assert lex.phones[-1] == lex.silence and all(lex.pronunciations.values())
    with _either_result_or_gmmhmm_error():
        out = parse_transcripts(text)
        assert all(all(w.strip() == w != "" for w in words) for words in out.values())
    path = tmp_path_factory.mktemp("table") / "t.txt"
    path.write_text(text)
    with _either_result_or_gmmhmm_error():
        assert read_table(path, "labels")


# ---------------------------------------------------------------------------
# Hostile edits of real model files of every class, and hostile CLI options
# (issue 16): never an exception that is not a GmmhmmError
# ---------------------------------------------------------------------------
def _real_files_of_every_class() -> dict[str, tuple[dict, dict]]:
    from gmmhmm.classifier import HMMClassifier
    from gmmhmm.graphs import EmbeddedTrainer, Lexicon

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = {
            "gmm": GaussianMixture(2, random_state=0).fit(X),
            "ghmm": GaussianHMM(2, random_state=0, n_iter=2).fit(X, [30, 30]),
            "gmmhmm": GMMHMM(2, n_mix=2, random_state=0, n_iter=2).fit(X, [30, 30]),
            "clf": HMMClassifier(n_states=2, mix_schedule=(1,), n_iter=1).fit([X[:30], X[30:]], ["a", "b"]),
            "phones": EmbeddedTrainer(Lexicon.digits()).flat_start([X]),
        }
    out = {}
    with tempfile.TemporaryDirectory() as d:
        for name, model in models.items():
            path = Path(d) / f"{name}.npz"
            modelfile.save(model, path, metadata={"feature_config": {}, "n": 1})
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            out[name] = (json.loads(arrays.pop("__header__").tobytes()), arrays)
    return out


_EVERY_CLASS = _real_files_of_every_class()
_HOSTILE_JSON = st.one_of(_json, st.sampled_from([float("nan"), float("inf"), -1, 0, 1e308, -5, "", "x", [], {},
                                                  True, None, [[[[[]]]]], {"t": "json"}, {"t": "array"},
                                                  {"t": "model", "node": {}}]))


def _paths(tree, prefix=()):
    yield prefix
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _paths(v, prefix + (i,))


def _replace(tree, path, value):
    if not path:
        return value
    tree = copy.copy(tree)
    tree[path[0]] = _replace(tree[path[0]], path[1:], value)
    return tree


_HOSTILE_ARRAYS = hnp.arrays(st.sampled_from([np.float64, np.float32, np.int8, np.bool_, np.complex128, "U3",
                                              "datetime64[s]", np.uint64]),
                             hnp.array_shapes(min_dims=0, max_dims=3, max_side=4))


HOSTILE_FUZZ = settings(FUZZ, max_examples=150)  # about 20 s each; within a minute together


@HOSTILE_FUZZ
@given(which=st.sampled_from(sorted(_EVERY_CLASS)), data=st.data())
def test_hostile_edits_of_real_model_files_of_every_class(which, data, tmp_path_factory):
    header, arrays = _EVERY_CLASS[which]
    arrays = dict(arrays)
    for _ in range(data.draw(st.integers(1, 3))):
        if data.draw(st.booleans()):
            paths = list(_paths(header))
            header = _replace(header, data.draw(st.sampled_from(paths)), data.draw(_HOSTILE_JSON))
        else:
            key = data.draw(st.sampled_from(sorted(arrays)))
            arrays[key] = data.draw(_HOSTILE_ARRAYS)
    path = tmp_path_factory.mktemp("hostile") / "m.npz"
    np.savez(path, __header__=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **arrays)
    got = _read_all(path)
    if "load" in got:  # whatever loads is a usable model: saving it again works
        with _either_result_or_gmmhmm_error():
            modelfile.save(got["load"], path.with_name("again.npz"))


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory):
    import soundfile as sf

    from gmmhmm.classifier import HMMClassifier

    d = tmp_path_factory.mktemp("cli_fuzz")
    t = np.arange(4000) / 8000
    for digit, freq in ((1, 440), (2, 880)):
        sf.write(d / f"{digit}_f_0.wav", 0.3 * np.sin(2 * np.pi * freq * t), 8000)
    (d / "tiny.toml").write_text("[features]\nsample_rate_hz = 8000\n[model]\nn_states = 2\nmix_schedule = [1]\n"
                                 "n_iter = [1]\n")
    (d / "hyp.txt").write_text("1_f_0.wav\t1\n2_f_0.wav\t1\n")
    config = FeatureConfig(sample_rate_hz=8000)
    feats = [extract_features(d / f"{k}_f_0.wav", config) for k in (1, 2)]
    HMMClassifier(n_states=2, mix_schedule=(1,), n_iter=1).fit(feats, ["1", "2"]).save(
        d / "clf.npz", metadata={"feature_config": config.to_dict()})
    (d / "garbage.npz").write_bytes(b"PK\x03\x04garbage")
    return d


_CLI_VALUES = ["nan", "inf", "-1", "0", "1e308", "x", "", "/dev/zero", "/dev/null", "/nonexistent/f", "{d}",
               "{d}/hyp.txt", "{d}/clf.npz", "{d}/garbage.npz", "{d}/tiny.toml", "{d}/1_f_0.wav", "{d}/out/o.npz",
               "{d}/new.txt"]
_CLI_OPTIONS = {
    "features": ["-o", "--config", "-j"], "train": ["-o", "--config", "--labels", "--split", "--checkpoint-dir", "-j"],
    "decode": ["-o", "--graph", "--insertion-penalty", "--lm-scale", "--beam", "--ctm", "-j"],
    "align": ["-o", "-j"], "score": ["--ref", "--unit", "--png"], "info": [],
}


@HOSTILE_FUZZ
@given(command=st.sampled_from(sorted(_CLI_OPTIONS)), data=st.data())
def test_hostile_cli_options_end_in_an_exit_code(command, data, cli_files):
    from contextlib import redirect_stderr, redirect_stdout

    from gmmhmm.cli import main

    def value():
        return data.draw(st.sampled_from(_CLI_VALUES)).format(d=cli_files)

    argv = [command] + [value() for _ in range(data.draw(st.integers(1, 3)))]
    for option in data.draw(st.lists(st.sampled_from(_CLI_OPTIONS[command] or ["--json"]), max_size=4, unique=True)):
        argv += [option] if option == "--json" else [option, value()]
    if "-j" in argv:  # worker processes are tested elsewhere; keep the fuzz fast
        argv[argv.index("-j") + 1] = data.draw(st.sampled_from(["1", "0", "x", "-5"]))
    err = io.StringIO()
    with warnings.catch_warnings(), redirect_stderr(err), redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        code = main(argv)
    assert code in (0, 1, 2)
    assert "Traceback" not in err.getvalue()
    assert (cli_files / "hyp.txt").read_text() == "1_f_0.wav\t1\n2_f_0.wav\t1\n"  # inputs are never overwritten
