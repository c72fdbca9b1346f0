"""Property-based fuzzing of the public API.

Every call either returns a result that satisfies the invariants (finite
parameters, posteriors summing to 1, ...) or raises a
:class:`gmmhmm.errors.GmmhmmError`; any other exception type is a bug.
"""

from __future__ import annotations

import io
import warnings
import zipfile
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gmmhmm import GMMHMM, GaussianHMM, GaussianMixture, modelfile
from gmmhmm import scoring as S
from gmmhmm._validation import check_lengths
from gmmhmm.errors import GmmhmmError
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
@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("fuzz") / "m.npz"
    rng = np.random.default_rng(0)
    GaussianMixture(2, random_state=0).fit(rng.normal(size=(30, 2))).save(path)
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
    for reader in (modelfile.load, modelfile.describe, load_features):
        with _either_result_or_gmmhmm_error():
            reader(path)


@FUZZ
@given(arrays=st.dictionaries(st.sampled_from(["__header__", "features", "lengths", "m", "a/b", "file"]), hnp.arrays(
    dtype=st.sampled_from([np.float64, np.int64, np.uint8, np.bool_, np.complex64]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=3)), max_size=4))
def test_load_foreign_npz_files(arrays, tmp_path_factory):
    path = tmp_path_factory.mktemp("npz") / "x.npz"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, arr in arrays.items():
            member = io.BytesIO()
            np.save(member, arr)
            z.writestr(name + ".npy", member.getvalue())
    path.write_bytes(buf.getvalue())
    for reader in (modelfile.load, modelfile.describe, load_features):
        with _either_result_or_gmmhmm_error():
            reader(path)


_json = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=4),
                               st.sampled_from(["GaussianMixture", "GaussianHMM", "json", "array", "model", "dict",
                                                "list", "object_array", "scalar", "t", "v", "key", "class"])),
                     lambda inner: st.one_of(st.lists(inner, max_size=3),
                                             st.dictionaries(st.sampled_from(["t", "v", "key", "items", "shape", "class",
                                                                              "params", "attributes", "node", "n_components",
                                                                              "means_"]), inner, max_size=4)),
                     max_leaves=12)


@FUZZ
@given(model=_json, metadata=_json, version=st.sampled_from([1, 1, 2, 0, "1", None]))
def test_load_well_formed_files_with_random_headers(model, metadata, version, tmp_path_factory):
    """A valid gmmhmm container whose JSON model tree is arbitrary: a model or a ModelFileError."""
    import json

    header = json.dumps({"format": "gmmhmm-model", "version": version, "model": model, "metadata": metadata})
    path = tmp_path_factory.mktemp("hdr") / "m.npz"
    np.savez(path, __header__=np.frombuffer(header.encode(), dtype=np.uint8), key=np.zeros(3))
    for reader in (modelfile.load, modelfile.describe, modelfile.load_metadata):
        with _either_result_or_gmmhmm_error():
            reader(path)


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
_feature_keys = st.sampled_from(list(FeatureConfig().to_dict()) + ["bogus"])


@FUZZ
@given(d=st.dictionaries(_feature_keys, _scalars, max_size=4))
def test_feature_config_from_random_dict(d):
    with _either_result_or_gmmhmm_error():
        config = FeatureConfig.from_dict(d)
        assert config.n_features >= 1 and config.frame_length >= 2


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.encode("unicode_escape").decode("ascii").replace('"', '\\\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(map(str, v)) + "]"
    return repr(v) if not isinstance(v, float) else f"{v!r}".replace("inf", "1.0")


@FUZZ
@given(sections=st.dictionaries(st.sampled_from(["features", "model", "data", "output", "extra"]),
                                st.dictionaries(st.sampled_from(["n_states", "mix_schedule", "n_iter", "tol",
                                                                 "sample_rate_hz", "n_jobs", "split", "dir",
                                                                 "covariance_type", "window_ms", "bogus"]),
                                                _scalars, max_size=3), max_size=3),
       garbage=st.one_of(st.none(), st.binary(max_size=40)))
def test_read_config_on_random_toml(sections, garbage, tmp_path_factory):
    from gmmhmm.cli import read_config

    path = tmp_path_factory.mktemp("toml") / "c.toml"
    if garbage is not None:
        path.write_bytes(garbage)
    else:
        path.write_text("".join(f"[{name}]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in body.items())
                                for name, body in sections.items()))
    with _either_result_or_gmmhmm_error():
        config = read_config(path)
        assert isinstance(config.model, dict)


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
        assert all(words for words in out.values())
    path = tmp_path_factory.mktemp("table") / "t.txt"
    path.write_text(text)
    with _either_result_or_gmmhmm_error():
        assert read_table(path, "labels")
