"""Model files: exact round trips, nesting, atomic writes and every refusal."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

import gmmhmm
from gmmhmm import modelfile
from gmmhmm.errors import InvalidParameterError, ModelFileError
from gmmhmm.modelfile import ModelFileMixin, describe, load, register_model_class, save


@register_model_class
class _ToyEmission(ModelFileMixin):
    _saved_attributes = ("means_", "covars_", "weights_")

    def __init__(self, n_components=2, covariance_type="diag"):
        self.n_components = n_components
        self.covariance_type = covariance_type

    def get_params(self, deep=True):
        return {"n_components": self.n_components, "covariance_type": self.covariance_type}


@register_model_class
class _ToyModel(ModelFileMixin):
    _saved_attributes = ("startprob_", "transmat_", "emission_", "words_", "n_iter_",
                         "converged_", "lower_bound_", "labels_", "best_", "missing_",
                         "file", "allow_pickle")  # names np.savez itself uses

    def __init__(self, n_states=3, tol=1e-3, init_params="stmc", random_state=None, prior=None):
        self.n_states = n_states
        self.tol = tol
        self.init_params = init_params
        self.random_state = random_state
        self.prior = prior

    def get_params(self, deep=True):
        return {k: getattr(self, k) for k in ("n_states", "tol", "init_params", "random_state", "prior")}


class _Unregistered(ModelFileMixin):
    _saved_attributes = ()

    def get_params(self, deep=True):
        return {}


def _emission(seed):
    rng = np.random.default_rng(seed)
    e = _ToyEmission(n_components=3)
    e.means_ = rng.normal(size=(3, 4))
    e.covars_ = rng.uniform(0.1, 2, size=(3, 4)).astype(np.float32)
    e.weights_ = np.full(3, 1 / 3)
    return e


def _fitted(seed=0):
    rng = np.random.default_rng(seed)
    m = _ToyModel(n_states=4, tol=1e-300, random_state=np.int64(7), prior=np.array([[1.0, np.nan, -np.inf]]))
    m.startprob_ = rng.dirichlet(np.ones(4))
    m.transmat_ = rng.dirichlet(np.ones(4), size=4)
    m.emission_ = _emission(seed)
    m.words_ = {"zero": _emission(1), "one": _emission(2), 7: [_emission(3), None]}
    m.n_iter_ = 12
    m.converged_ = True
    m.lower_bound_ = float("-inf")
    m.labels_ = ("a", "b", "é")
    m.best_ = np.float32(0.1)
    m.missing_ = None
    m.file = np.arange(3)
    m.allow_pickle = np.ones(2, dtype=bool)
    return m


def _assert_same(a, b):
    assert type(a) is type(b)
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, ModelFileMixin):
        _assert_same(a.get_params(), b.get_params())
        names = [n for n in type(a)._saved_attributes if hasattr(a, n)]
        assert names == [n for n in type(b)._saved_attributes if hasattr(b, n)]
        for n in names:
            _assert_same(getattr(a, n), getattr(b, n))
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    else:
        assert a == b


def test_round_trip_is_exact_with_nested_models(tmp_path):
    m = _fitted()
    path = tmp_path / "model.npz"
    m.save(path, metadata={"features": {"n_mels": 23, "high_freq_hz": None}, "labels": ["zero", "one"],
                           "scale": np.arange(3, dtype=np.int16)})
    back, meta = load(path, with_metadata=True)
    _assert_same(m, back)
    assert meta["features"] == {"n_mels": 23, "high_freq_hz": None} and meta["labels"] == ["zero", "one"]
    _assert_same(meta["scale"], np.arange(3, dtype=np.int16))
    assert back.words_["zero"] is not back.words_["one"]
    assert path.stat().st_mode & 0o777 == 0o644
    assert modelfile.load_metadata(path)["labels"] == ["zero", "one"]


def test_object_arrays_of_plain_values_round_trip_without_pickle(tmp_path):
    m = _ToyModel()
    m.labels_ = np.array(["zero", 1, None, 2.5, True, "é"], dtype=object).reshape(2, 3)
    save(m, tmp_path / "m.npz")
    back = load(tmp_path / "m.npz").labels_
    assert back.dtype == object and back.shape == (2, 3)
    assert [type(x) for x in back.flat] == [type(x) for x in m.labels_.flat]
    assert back.tolist() == m.labels_.tolist()
    assert describe(tmp_path / "m.npz")["attributes"]["labels_"] == {"shape": [2, 3], "dtype": "object"}


def test_unfitted_model_and_class_load(tmp_path):
    m = _ToyModel(n_states=2)
    gmmhmm.save(m, tmp_path / "m.npz")  # the lazily wired top-level names
    back = _ToyModel.load(tmp_path / "m.npz")
    _assert_same(m, back)
    with pytest.raises(ModelFileError, match="holds a _ToyModel, not a _ToyEmission"):
        _ToyEmission.load(tmp_path / "m.npz")
    assert isinstance(gmmhmm.load(tmp_path / "m.npz"), _ToyModel)


def test_random_state_instance_is_stored_as_none(tmp_path, caplog):
    m = _ToyModel(random_state=np.random.RandomState(0))
    save(m, tmp_path / "m.npz")
    assert load(tmp_path / "m.npz").random_state is None
    assert "random_state" in caplog.text


def test_describe_without_building(tmp_path):
    path = tmp_path / "m.npz"
    save(_fitted(), path, metadata={"k": 1})
    info = describe(path)
    assert info["format"] == "gmmhmm-model" and info["version"] == modelfile.FORMAT_VERSION
    assert info["class"] == "_ToyModel" and info["params"]["n_states"] == 4
    assert info["attributes"]["transmat_"] == {"shape": [4, 4], "dtype": "float64"}
    assert info["attributes"]["words_"]["zero"]["class"] == "_ToyEmission"
    assert info["attributes"]["words_"]["zero"]["attributes"]["covars_"]["dtype"] == "float32"
    assert info["metadata"] == {"k": 1} and info["file_size_bytes"] == path.stat().st_size
    json.dumps(info)  # ready for the CLI


def test_unsaveable_models_are_refused(tmp_path):
    with pytest.raises(ModelFileError, match="not a registered model class"):
        save(_Unregistered(), tmp_path / "a.npz")
    m = _ToyModel()
    m.emission_ = _Unregistered()
    with pytest.raises(ModelFileError, match="emission_.*not a registered"):
        save(m, tmp_path / "a.npz")
    m.emission_ = np.array([{"a": 1}], dtype=object)
    with pytest.raises(ModelFileError, match="without pickle"):
        save(m, tmp_path / "a.npz")
    m.emission_ = {1, 2}
    with pytest.raises(ModelFileError, match="type set"):
        save(m, tmp_path / "a.npz")
    from gmmhmm.features import FeatureConfig

    with pytest.raises(ModelFileError, match=r"metadata/features: .*FeatureConfig; store its .to_dict"):
        save(_ToyModel(), tmp_path / "a.npz", metadata={"features": FeatureConfig()})
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_registry_refuses_a_second_class_with_the_same_name():
    class _ToyModel:  # noqa: F811 - deliberately clashing name
        pass

    with pytest.raises(InvalidParameterError, match="already registered"):
        register_model_class(_ToyModel)
    assert modelfile.registered_classes()["_ToyModel"] is globals()["_ToyModel"]


def test_failed_write_leaves_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    save(_ToyModel(n_states=5), path)
    before = path.read_bytes()

    def exploding_savez(f, **arrays):
        f.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(modelfile.np, "savez", exploding_savez)
    with pytest.raises(OSError, match="disk full"):
        save(_fitted(), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # temp file removed
    monkeypatch.undo()
    assert load(path).n_states == 5


def _rewrite_header(path, change):
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(arrays["__header__"].tobytes())
    change(header)
    arrays["__header__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


def test_bad_files_raise_model_file_error(tmp_path):
    good = tmp_path / "good.npz"
    model = _fitted()
    save(model, good)
    data = good.read_bytes()
    cases = {}

    def case(name, content, words):
        (tmp_path / name).write_bytes(content)
        cases[name] = words

    case("empty.npz", b"", "empty")
    case("random.npz", np.random.default_rng(0).bytes(2000), "not an .npz")
    case("pickle.npz", pickle.dumps({"a": 1}), "not an .npz")
    case("truncated.npz", data[: len(data) // 2], "corrupt or truncated")
    flipped = bytearray(data)
    pos = data.index(model.transmat_.tobytes()) + 20  # inside an array's data: a CRC error
    flipped[pos] ^= 0xFF
    case("flipped.npz", bytes(flipped), "corrupt or truncated")
    np.save(tmp_path / "bare.npy", np.zeros(3))
    cases["bare.npy"] = "bare .npy"
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    cases["plain.npz"] = "without a gmmhmm header"
    np.savez(tmp_path / "objects.npz", __header__=np.zeros(3, np.uint8), a=np.array([None, {}], dtype=object))
    cases["objects.npz"] = "needs pickle"
    np.savez(tmp_path / "badjson.npz", __header__=np.frombuffer(b"{not json", dtype=np.uint8))
    cases["badjson.npz"] = "corrupt header"
    for name, change, words in [
        ("newer.npz", lambda h: h.update(version=modelfile.FORMAT_VERSION + 1), "newer gmmhmm"),
        ("foreign.npz", lambda h: h.update(format="something-else"), "'something-else' file"),
        ("unknown.npz", lambda h: h["model"].update({"class": "os.system"}), "unknown model class 'os.system'"),
        ("noarray.npz", lambda h: h["model"]["attributes"]["startprob_"].update(key="nope"), "'nope' is missing"),
        ("badattr.npz", lambda h: h["model"]["attributes"].update(evil_={"t": "json", "v": 1}), "evil_"),
        ("badparam.npz", lambda h: h["model"]["params"].update(bogus={"t": "json", "v": 1}), "cannot build"),
        ("listkey.npz", lambda h: h["model"]["params"].update(
            bogus={"t": "dict", "items": [[[[[]]], {"t": "json", "v": 1}]]}), "bad dict item"),
    ]:
        (tmp_path / name).write_bytes(data)
        _rewrite_header(tmp_path / name, change)
        cases[name] = words
    cases["missing.npz"] = "no such file"
    for name, words in cases.items():
        with pytest.raises(ModelFileError) as info:
            load(tmp_path / name)
        assert name in str(info.value) and words in str(info.value), (name, str(info.value))
    with pytest.raises(ModelFileError, match="newer gmmhmm"):
        describe(tmp_path / "newer.npz")


def test_feature_file_is_not_a_model(tmp_path):
    from gmmhmm.features import save_features

    save_features(tmp_path / "f.npz", {"a": np.zeros((2, 2))}, {})
    with pytest.raises(ModelFileError, match="'gmmhmm-features' file, expected 'gmmhmm-model'"):
        load(tmp_path / "f.npz")


def _values():
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    arrays = hnp.arrays(
        dtype=st.sampled_from([np.float64, np.float32, np.int8, np.uint64, np.bool_, np.complex128, "<U3"]),
        shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3),
    )
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
    return st.recursive(
        scalars | arrays,
        lambda inner: st.lists(inner, max_size=3) | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=3) | st.integers(), inner, max_size=3),
        max_leaves=8,
    )


def test_any_storable_value_round_trips_exactly(tmp_path):
    from hypothesis import HealthCheck, example, given, settings

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(value=_values(), meta=_values())
    @example(value=None, meta={"\x00": np.array(0.0)})  # a zip member name cannot hold NUL
    @example(value={"é/\x00": np.arange(2), "é/_": np.ones(1)}, meta={"a b": np.zeros(1), "a_b": 1.5})
    def check(value, meta):
        m = _ToyModel(prior=value)
        m.labels_ = value
        save(m, tmp_path / "h.npz", metadata={"x": meta})
        back, back_meta = load(tmp_path / "h.npz", with_metadata=True)
        _assert_same(m, back)
        _assert_same({"x": meta}, back_meta)

    check()
