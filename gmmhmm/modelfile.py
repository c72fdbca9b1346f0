"""Model files: one ``.npz`` holding arrays plus a JSON header, never pickle.

Layout of a file written by :func:`save`::

    __header__          uint8 array: UTF-8 JSON (see below)
    <path>/<to>/<array> one entry per ndarray in the model tree

The header is ``{"format": "gmmhmm-model", "version": 1, "model": NODE,
"metadata": VALUE}`` where a NODE is ``{"class": name, "params": {...},
"attributes": {...}}`` and every VALUE is tagged JSON:

* ``{"t": "json", "v": ...}`` for None, bool, int, float, str;
* ``{"t": "array", "key": ...}`` for ndarrays and ``{"t": "scalar", "key": ...}``
  for numpy scalars (stored as 0-d arrays, so dtypes survive bit for bit);
* ``{"t": "object_array", "shape": [...], "items": [...]}`` for object arrays
  of plain str/int/float/bool/None (such as mixed-type ``classes_``);
* ``{"t": "list" | "tuple", "items": [VALUE, ...]}``;
* ``{"t": "dict", "items": [[key, VALUE], ...]}`` (keys: str, int, float, bool, None);
* ``{"t": "model", "node": NODE}`` for a nested model.

Classes are found by name in an explicit registry filled by
:func:`register_model_class`; a file can never make us import or build any
other class. Models list what to store in ``_saved_attributes`` and provide
``get_params()``; loading calls ``cls(**params)``, sets the attributes and,
if the class defines ``_check_loaded()``, calls it so that a tampered file
fails at load (as a :class:`ModelFileError`) rather than at first use.
"""

from __future__ import annotations

import errno
import importlib
import json
import logging
import math
import os
import stat
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import numpy as np

from .errors import InvalidInputError, InvalidParameterError, ModelFileError

logger = logging.getLogger(__name__)

FORMAT = "gmmhmm-model"
FORMAT_VERSION = 1
HEADER_KEY = "__header__"

# Modules whose import registers gmmhmm's own model classes. A fixed list:
# what a file names is only ever looked up, never imported.
_BUILTIN_MODEL_MODULES = (
    "gmmhmm.mixture", "gmmhmm.hmm", "gmmhmm.graphs", "gmmhmm.graphs.models", "gmmhmm.classifier",
    "gmmhmm.features.transforms",
)
_IMPORT_FAILURES: dict[str, str] = {}

_REGISTRY: dict[str, type] = {}

# Bounds on what a file may make us do before its contents are trusted. gmmhmm
# writes uncompressed (stored) members, so their total size is at most the file
# size; a foreign deflated member may inflate to twice the file size plus this.
MAX_INFLATE_SLACK_BYTES = 64 * 2**20
# Deepest nesting of values in a header (gmmhmm's own files stay below 10).
MAX_HEADER_DEPTH = 64

# np.savez(file, ..., allow_pickle=..., **arrays) would take these as its own arguments.
_RESERVED_KEYS = frozenset({HEADER_KEY, "file", "allow_pickle"})

T = TypeVar("T", bound=type)


def register_model_class(cls: T) -> T:
    """Class decorator: allow :func:`load` to rebuild instances of ``cls`` by name."""
    if not isinstance(cls, type):
        raise InvalidParameterError(f"register_model_class expects a class, got {cls!r}")
    name = cls.__name__
    old = _REGISTRY.get(name)
    if old is not None and old is not cls and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
        raise InvalidParameterError(
            f"a different model class named {name!r} is already registered ({old.__module__}.{old.__qualname__})"
        )
    _REGISTRY[name] = cls
    return cls


def registered_classes() -> dict[str, type]:
    """Copy of the registry (name -> class)."""
    _import_builtin_models()
    return dict(_REGISTRY)


def _import_builtin_models() -> None:
    for module in _BUILTIN_MODEL_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # an absent layer is fine; a missing dependency is not
                _IMPORT_FAILURES[module] = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a broken or absent layer must not stop loading the others' models
            _IMPORT_FAILURES[module] = f"{type(exc).__name__}: {exc}"
            logger.debug("could not import %s: %s", module, exc)
        else:
            _IMPORT_FAILURES.pop(module, None)


# ----------------------------------------------------------------------------
# Atomic npz writing and safe npz reading, shared with gmmhmm.corpus and
# gmmhmm.features.store
# ----------------------------------------------------------------------------

def _header_array(header: Mapping[str, Any], what: str = "header") -> np.ndarray:
    """``header`` as UTF-8 JSON in a uint8 array: the ``__header__`` entry of every gmmhmm npz.

    Raises
    ------
    InvalidInputError
        ``header`` is not JSON-serialisable (``what`` names the culprit).
    """
    try:
        text = json.dumps(header)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what} must be JSON-serialisable: {exc}") from exc
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Write a file atomically: ``write(f)`` fills a temporary file that replaces ``path``.

    The data goes to a temporary file in the same directory, is fsync'ed
    and renamed over ``path``, so ``path`` is either the old file or the
    complete new one, even if the process dies mid-write. Only a regular file
    (or a missing one) is ever replaced: an existing device, FIFO or terminal
    (``/dev/null``, ``/dev/stdout``) is written into directly, a symbolic link
    to a regular file keeps pointing at its (replaced) target, and a directory
    is refused.

    Raises
    ------
    OSError
        The folder is missing or read-only, ``path`` is a directory, the
        disk is full, ...; ``path`` is then unchanged.
    """
    atomic_write_files([(path, write)])


def atomic_write_files(files: Sequence[tuple[str | os.PathLike, Callable[[BinaryIO], None]]]) -> None:
    """Write several files as one set, each as :func:`atomic_write` does (e.g. an archive and its index).

    Every file is filled and fsync'ed in a temporary beside it before any is renamed into place, and
    the renames follow the order given: if anything fails before them, every file is unchanged and
    no temporary is left; a reader of the later files (an index) never sees them before the earlier
    ones (what it points into).
    """
    staged: list[tuple[str, Path]] = []  # (temporary, target)
    try:
        for path, write in files:
            target = _atomic_target(Path(path))
            if target is None:  # a device: written into directly
                with open(path, "wb") as f:
                    write(f)
                continue
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".tmp")
            staged.append((tmp, target))
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            # mkstemp makes the file private (0600): a replaced file keeps its permissions, a new
            # one gets those open() would give it
            os.chmod(tmp, os.stat(target).st_mode & 0o777 if target.exists() else 0o666 & ~_umask())
        for tmp, target in staged:
            os.replace(tmp, target)
    except BaseException:
        for tmp, _ in staged:
            try:
                os.unlink(tmp)
            except OSError:  # already renamed into place
                pass
        raise
    for directory in {target.parent for _, target in staged}:
        try:  # persist the renames themselves; not possible on every platform
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError:
            pass


def _umask() -> int:
    """The process's umask: from /proc where the kernel lists it (no other thread sees a change),
    else by setting it and setting it back at once (the only portable way to read it)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_target(path: Path) -> Path | None:
    """The regular file a write to ``path`` replaces (symbolic links followed), None for a device."""
    try:
        st = os.stat(path)  # follows symbolic links
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a file name", os.fspath(path))
    if st is not None and not stat.S_ISREG(st.st_mode):
        return None  # renaming over a device would replace the device node with a file
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_texts({path: text})


def atomic_write_texts(texts: Mapping[str | os.PathLike, str]) -> None:
    """Write ``{path: text}`` (UTF-8) as one set, as :func:`atomic_write_files` does."""
    # surrogateescape: file names that are not UTF-8 are written back as the bytes they were
    atomic_write_files([(path, lambda f, data=text.encode("utf-8", "surrogateescape"): f.write(data))
                        for path, text in texts.items()])


def atomic_savez(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` as an uncompressed npz, atomically."""
    atomic_write(path, lambda f: np.savez(f, **arrays))


def read_npz(path: str | os.PathLike, expected_format: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a gmmhmm npz file fully: (header dict, arrays), refusing anything odd.

    Raises :class:`ModelFileError` for a missing, truncated, corrupt,
    pickle-bearing, foreign, other-format or newer-version file.
    """
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise ModelFileError(f"{name}: no such file")
    try:
        with open(name, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise ModelFileError(f"{name}: cannot read it ({exc.strerror or exc})") from exc
    if magic != b"PK\x03\x04":  # np.load would try to unpickle anything not zip or .npy
        what = "empty" if not magic else "a bare .npy array" if magic == b"\x93NUM" else "not an .npz archive"
        raise ModelFileError(f"{name}: not a gmmhmm file ({what})")
    _check_members(name)
    try:
        with np.load(name, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise ModelFileError(
                f"{name}: refusing a file that needs pickle (object arrays or pickled data); "
                "gmmhmm files never contain any"
            ) from exc
        raise ModelFileError(f"{name}: corrupt or not a gmmhmm file ({exc})") from exc
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
        raise ModelFileError(f"{name}: corrupt or truncated file ({type(exc).__name__}: {exc})") from exc
    except Exception as exc:  # zip/npy parsing can fail in many ways on garbage
        raise ModelFileError(f"{name}: unreadable file ({type(exc).__name__}: {exc})") from exc
    odd = sorted(k for k, v in arrays.items() if not isinstance(v, np.ndarray))
    if odd:  # NpzFile hands back raw bytes for members that are not .npy arrays
        raise ModelFileError(f"{name}: not a gmmhmm file (member(s) {odd[:3]} are not .npy arrays)")
    raw = arrays.pop(HEADER_KEY, None)
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise ModelFileError(f"{name}: not a gmmhmm file (an .npz without a gmmhmm header)")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except RecursionError:
        raise ModelFileError(f"{name}: corrupt header (nested too deeply)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{name}: corrupt header ({exc})") from exc
    if not isinstance(header, dict) or not isinstance(header.get("format"), str):
        raise ModelFileError(f"{name}: not a gmmhmm file (header has no format name)")
    if header["format"] != expected_format:
        raise ModelFileError(f"{name}: is a {header['format']!r} file, expected {expected_format!r}")
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"{name}: corrupt header (bad format version {version!r})")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{name}: written by a newer gmmhmm (format version {version}; this version reads up to "
            f"{FORMAT_VERSION}); upgrade gmmhmm"
        )
    return header, arrays


def _check_members(name: str) -> None:
    """Refuse, before inflating anything, members that would unpack to more than the file can hold.

    The sizes come from the zip central directory and each member's ``.npy``
    header; a "zip bomb" or a header claiming a huge array fails here.
    """
    file_size = os.path.getsize(name)
    try:
        with zipfile.ZipFile(name) as zf:
            infos = zf.infolist()
            inflated = sum(i.file_size for i in infos)
            if inflated > 2 * file_size + MAX_INFLATE_SLACK_BYTES:
                raise ModelFileError(
                    f"{name}: members would inflate to {inflated} bytes from a {file_size}-byte file; "
                    "refusing it (gmmhmm files are not compressed)")
            for info in infos:
                if not info.filename.endswith(".npy"):
                    continue  # reported by read_npz as "not .npy arrays"
                with zf.open(info) as member:
                    try:
                        version = np.lib.format.read_magic(member)
                    except ValueError:  # not an .npy array: reported by read_npz
                        continue
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read_header(member)
                    n_bytes = math.prod(shape) * dtype.itemsize
                    if n_bytes > info.file_size:
                        raise ModelFileError(f"{name}: member {info.filename!r} claims a {shape} array "
                                             f"({n_bytes} bytes) but holds {info.file_size} bytes")
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
        raise ModelFileError(f"{name}: corrupt or truncated file ({type(exc).__name__}: {exc})") from exc
    except Exception as exc:  # npy headers can fail in many ways on garbage
        raise ModelFileError(f"{name}: unreadable file ({type(exc).__name__}: {exc})") from exc


def write_packed(path: str | os.PathLike, format_name: str, X: np.ndarray, lengths: Any,
                 fields: Mapping[str, Any], what: str = "header") -> None:
    """Write utterances packed in one npz: the layout of corpus shards and feature files.

    Layout::

        __header__  uint8 UTF-8 JSON: {"format": format_name, "version": 1, **fields}
        features    (n_frames, D) every utterance's frames, concatenated
        lengths     (n_utterances,) int64 frames per utterance

    Parameters
    ----------
    path : path
        Written atomically.
    format_name : str
        Checked by :func:`read_packed`.
    X : ndarray of shape (n_frames, D)
    lengths : array-like of int
    fields : mapping
        Extra JSON-able header entries (e.g. utterance names and labels).
    what : str
        Names ``fields`` in the error raised if they are not JSON-serialisable.
    """
    header = _header_array({"format": format_name, "version": FORMAT_VERSION, **fields}, what)
    atomic_savez(path, {HEADER_KEY: header, "features": X, "lengths": np.asarray(lengths, dtype=np.int64)})


def read_packed(path: str | os.PathLike, format_name: str, names_key: str, what: str,
                min_length: int = 0) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Read a file written by :func:`write_packed`: ``(header, X, lengths)``, checked to agree.

    Parameters
    ----------
    path : path
    format_name : str
        The format the file must have.
    names_key : str
        Header entry listing one name per utterance: distinct strings (they key what is read).
    what : str
        Completes the error message ``"<path>: corrupt <what>"``.
    min_length : int
        Shortest utterance allowed.

    Raises
    ------
    ModelFileError
        Missing, unreadable or other-format file, or its names, lengths and
        frames disagree.
    """
    name = os.fspath(path)
    header, arrays = read_npz(name, format_name)
    X, lengths, names = arrays.get("features"), arrays.get("lengths"), header.get(names_key)
    if (X is None or lengths is None or X.ndim != 2 or lengths.ndim != 1 or lengths.dtype.kind != "i"
            or not _distinct_strings(names) or len(names) != lengths.shape[0]
            or np.any(lengths < min_length) or int(lengths.sum()) != X.shape[0]):
        raise ModelFileError(f"{name}: corrupt {what}")
    return header, X, lengths


def _distinct_strings(names: Any) -> bool:
    """A list of distinct strings: a name twice would drop an utterance from a dict without a word."""
    return isinstance(names, list) and all(isinstance(n, str) for n in names) and len(set(names)) == len(names)


# ----------------------------------------------------------------------------
# Encoding a model tree
# ----------------------------------------------------------------------------

def _get_params(model: Any) -> dict[str, Any]:
    getter = getattr(model, "get_params", None)
    if getter is None:
        raise ModelFileError(f"{type(model).__name__} has no get_params(); it cannot be saved")
    try:
        return dict(getter(deep=False))
    except TypeError:
        return dict(getter())


class _Encoder:
    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def _key(self, where: str) -> str:
        # Array names come from attribute names and user dict keys; zip member
        # names cannot hold every character (NUL ends them), so keep a safe subset.
        where = "".join(c if c.isascii() and (c.isalnum() or c in "_-./~") else "_" for c in where)
        key, i = where, 1
        while key in self.arrays or key in _RESERVED_KEYS:
            key, i = f"{where}~{i}", i + 1
        return key

    def model(self, model: Any, where: str) -> dict[str, Any]:
        cls = type(model)
        if _REGISTRY.get(cls.__name__) is not cls:
            raise ModelFileError(
                f"{cls.__module__}.{cls.__qualname__} at {where or 'top level'} is not a registered "
                "model class (decorate it with gmmhmm.modelfile.register_model_class)"
            )
        params = {}
        for name, value in _get_params(model).items():
            if isinstance(value, (np.random.RandomState, np.random.Generator)):
                logger.warning("%s: random_state %r cannot be stored; saved as None", cls.__name__, value)
                value = None
            params[name] = self.value(value, f"{where}params/{name}")
        attributes = {}
        for name in getattr(cls, "_saved_attributes", ()):
            if hasattr(model, name):  # an unfitted model simply lacks them
                attributes[name] = self.value(getattr(model, name), f"{where}{name}")
        return {"class": cls.__name__, "params": params, "attributes": attributes}

    def value(self, v: Any, where: str) -> dict[str, Any]:
        if v is None or isinstance(v, (bool, int, float, str)):
            return {"t": "json", "v": v}
        if isinstance(v, (np.ndarray, np.generic)):
            arr = np.asarray(v)
            if arr.dtype == object and all(x is None or isinstance(x, (bool, int, float, str)) for x in arr.flat):
                # e.g. classes_ of mixed labels: kept as JSON, rebuilt as an object array
                return {"t": "object_array", "shape": list(arr.shape), "items": arr.ravel().tolist()}
            if arr.dtype.hasobject or arr.dtype.kind == "V":
                raise ModelFileError(f"{where}: cannot store an array of dtype {arr.dtype} without pickle")
            key = self._key(where)
            self.arrays[key] = arr
            return {"t": "scalar" if isinstance(v, np.generic) else "array", "key": key}
        if isinstance(v, (list, tuple)):
            return {"t": type(v).__name__,
                    "items": [self.value(x, f"{where}/{i}") for i, x in enumerate(v)]}
        if isinstance(v, dict):
            items = []
            for k, x in v.items():
                if not (k is None or isinstance(k, (bool, int, float, str))):
                    raise ModelFileError(f"{where}: dict key {k!r} is not a str, int, float, bool or None")
                items.append([k, self.value(x, f"{where}/{k}")])
            return {"t": "dict", "items": items}
        if hasattr(v, "get_params"):
            return {"t": "model", "node": self.model(v, where + "/")}
        hint = "; store its .to_dict() instead" if hasattr(v, "to_dict") else ""
        raise ModelFileError(f"{where}: cannot store a value of type {type(v).__name__}{hint}")


# ----------------------------------------------------------------------------
# Decoding
# ----------------------------------------------------------------------------

class _Decoder:
    def __init__(self, name: str, arrays: Mapping[str, np.ndarray], build: bool,
                 problem: str = "corrupt model file") -> None:
        self.name, self.arrays, self.build, self.problem = name, arrays, build, problem
        self.depth = 0

    def fail(self, msg: str) -> ModelFileError:
        return ModelFileError(f"{self.name}: {self.problem} ({msg})")

    def value(self, spec: Any) -> Any:
        self.depth += 1
        try:
            if self.depth > MAX_HEADER_DEPTH:
                raise self.fail(f"values nested more than {MAX_HEADER_DEPTH} deep")
            return self._value(spec)
        finally:
            self.depth -= 1

    def metadata(self, spec: Any) -> dict:
        meta = self.value(spec if spec is not None else {"t": "json", "v": {}})
        if not isinstance(meta, dict):
            raise self.fail(f"metadata must be a dict, got {type(meta).__name__}")
        return meta

    def _value(self, spec: Any) -> Any:
        if not isinstance(spec, dict) or "t" not in spec:
            raise self.fail(f"bad value entry {spec!r:.80}")
        t = spec["t"]
        if not isinstance(t, str):
            raise self.fail(f"bad value type {t!r:.40}")
        if t == "json":
            return spec.get("v")
        if t in ("array", "scalar"):
            key = spec.get("key")
            if not isinstance(key, str) or key not in self.arrays:
                raise self.fail(f"array {key!r} is missing")
            arr = self.arrays[key]
            if t == "scalar" and arr.ndim != 0:
                raise self.fail(f"numpy scalar {key!r} has shape {arr.shape}")
            if not self.build:
                return {"shape": list(arr.shape), "dtype": str(arr.dtype)}
            return arr[()] if t == "scalar" else arr
        if t == "object_array":
            items, shape = self._seq(spec.get("items")), spec.get("shape")
            if not isinstance(shape, list) or int(np.prod(shape)) != len(items):
                raise self.fail("bad object array")
            if not self.build:
                return {"shape": shape, "dtype": "object"}
            arr = np.empty(len(items), dtype=object)
            arr[:] = items
            return arr.reshape(shape)
        if t in ("list", "tuple"):
            items = [self.value(x) for x in self._seq(spec.get("items"))]
            return tuple(items) if t == "tuple" and self.build else items
        if t == "dict":
            out = {}
            for pair in self._seq(spec.get("items")):
                if not isinstance(pair, list) or len(pair) != 2 or not (pair[0] is None or isinstance(pair[0], (str, int, float, bool))):
                    raise self.fail("bad dict item")
                out[pair[0]] = self.value(pair[1])
            return out
        if t == "model":
            return self.model(spec.get("node"))
        raise self.fail(f"unknown value type {t!r}")

    def _seq(self, items: Any) -> list:
        if not isinstance(items, list):
            raise self.fail("bad item list")
        return items

    def model(self, node: Any) -> Any:
        self.depth += 1
        try:
            if self.depth > MAX_HEADER_DEPTH:
                raise self.fail(f"models nested more than {MAX_HEADER_DEPTH} deep")
            return self._model(node)
        finally:
            self.depth -= 1

    def _model(self, node: Any) -> Any:
        if not isinstance(node, dict) or not isinstance(node.get("class"), str):
            raise self.fail("bad model entry")
        params, attrs = node.get("params"), node.get("attributes")
        if not isinstance(params, dict) or not isinstance(attrs, dict):
            raise self.fail("model entry lacks params or attributes")
        params = {k: self.value(v) for k, v in params.items()}
        attrs = {k: self.value(v) for k, v in attrs.items()}
        if not self.build:
            return {"class": node["class"], "params": params, "attributes": attrs}
        cls = _REGISTRY.get(node["class"])
        if cls is None:
            failed = "".join(f"; {m} failed to import ({e})" for m, e in _IMPORT_FAILURES.items())
            raise ModelFileError(
                f"{self.name}: unknown model class {node['class']!r}; known classes: {sorted(_REGISTRY)}{failed}"
            )
        try:
            model = cls(**params)
        except Exception as exc:
            raise ModelFileError(f"{self.name}: cannot build {cls.__name__} from the stored parameters ({exc})") from exc
        allowed = set(getattr(cls, "_saved_attributes", ()))
        for name, value in attrs.items():
            if name not in allowed:
                raise self.fail(f"{cls.__name__} does not save an attribute named {name!r}")
            try:
                setattr(model, name, value)
            except Exception as exc:  # e.g. a property setter that converts the value
                raise self.fail(f"invalid {cls.__name__}.{name} ({exc})") from exc
        check = getattr(model, "_check_loaded", None)
        if callable(check):  # a class's own consistency checks of its fitted parameters
            try:
                check()
            except Exception as exc:
                raise self.fail(f"invalid {cls.__name__} parameters: {exc}") from exc
        return model


# ----------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------

def save(model: Any, path: str | os.PathLike, *, metadata: Mapping[str, Any] | None = None) -> None:
    """Write ``model`` (and optional JSON-able ``metadata``) to ``path`` atomically.

    The file is written exactly at ``path`` (no suffix is added); ``.npz``
    is the conventional suffix. Arrays round-trip bit for bit.

    Raises
    ------
    ModelFileError
        The model is of an unregistered class or holds a value that cannot
        be stored without pickle.
    """
    enc = _Encoder()
    root = enc.model(model, "")
    meta = enc.value(dict(metadata) if metadata is not None else {}, "metadata")
    # Never write what load would refuse (say a NaN variance after a degenerate
    # fit): rebuild the model from exactly what would be written, with load's checks.
    _Decoder(os.fspath(path), enc.arrays, build=True,
             problem="not written: the model is invalid and could not be loaded back").model(root)
    header = {"format": FORMAT, "version": FORMAT_VERSION, "model": root, "metadata": meta}
    arrays = {HEADER_KEY: _header_array(header), **enc.arrays}
    atomic_savez(path, arrays)
    logger.info("saved %s to %s", type(model).__name__, os.fspath(path))


def load(path: str | os.PathLike, *, with_metadata: bool = False) -> Any:
    """Rebuild the model saved at ``path``; ``(model, metadata)`` if ``with_metadata``.

    Raises
    ------
    ModelFileError
        Missing, corrupt, truncated, foreign, pickle-bearing or newer-version
        file, or a class not in the registry.
    """
    _import_builtin_models()
    name = os.fspath(path)
    header, arrays = read_npz(name, FORMAT)
    dec = _Decoder(name, arrays, build=True)
    model = dec.model(header.get("model"))
    if with_metadata:
        return model, dec.metadata(header.get("metadata"))
    return model


def load_metadata(path: str | os.PathLike) -> Any:
    """The user metadata stored with a model, without building the model."""
    name = os.fspath(path)
    header, arrays = read_npz(name, FORMAT)
    return _Decoder(name, arrays, build=True).metadata(header.get("metadata"))


def describe(path: str | os.PathLike) -> dict[str, Any]:
    """Summary of a model file without building the model.

    Returns ``{"format", "version", "class", "params", "attributes",
    "metadata", "file_size_bytes"}``; arrays appear as ``{"shape", "dtype"}``
    and nested models as ``{"class", "params", "attributes"}``.
    """
    name = os.fspath(path)
    header, arrays = read_npz(name, FORMAT)
    dec = _Decoder(name, arrays, build=False)
    root = dec.model(header.get("model"))
    return {
        "format": header["format"],
        "version": header["version"],
        **root,
        "metadata": dec.metadata(header.get("metadata")),
        "file_size_bytes": os.path.getsize(name),
    }


M = TypeVar("M")


class ModelFileMixin:
    """Gives models ``model.save(path)`` and ``Class.load(path)``.

    The class lists what to store in ``_saved_attributes`` (no default here,
    so a base class's list is not shadowed when the mixin comes first).
    """

    def save(self, path: str | os.PathLike, metadata: Mapping[str, Any] | None = None) -> None:
        """Write this model to ``path`` (see :func:`gmmhmm.modelfile.save`)."""
        save(self, path, metadata=metadata)

    @classmethod
    def load(cls: type[M], path: str | os.PathLike) -> M:
        """Load a model file, checking that it holds an instance of this class."""
        model = load(path)
        if not isinstance(model, cls):
            raise ModelFileError(
                f"{os.fspath(path)} holds a {type(model).__name__}, not a {cls.__name__}"
            )
        return model


# ------------------------------------------------------------------ HTK MMF

def _to_htk(name: str, model: Any):
    from .data.htk_mmf import HTKHMM

    ctype = getattr(model, "covariance_type", None)
    if ctype not in ("diag", "spherical"):
        raise InvalidParameterError(f"model {name!r}: HTK MMF export needs covariance_type 'diag' or "
                                    f"'spherical', got {ctype!r}")
    if getattr(model, "endprob_", None) is None:
        raise InvalidParameterError(
            f"model {name!r} has no exit probabilities (endprob_); an HTK model is left through its exit "
            "state: build it with topology.left_to_right(n, exit_prob=...) or set endprob_")
    model._fitted_check()
    means = np.asarray(model.means_, dtype=np.float64)
    if means.ndim == 2:  # GaussianHMM: one component per state
        weights, means = np.ones((means.shape[0], 1)), means[:, None]
    else:
        weights = np.asarray(model.weights_, dtype=np.float64)
    # GaussianHMM's covars_ expands to full matrices as hmmlearn's does; _covars_ is (S, D)
    variances = np.asarray(getattr(model, "_covars_", model.covars_), dtype=np.float64)
    if ctype == "spherical":
        variances = np.broadcast_to(variances.reshape(means.shape[:2])[..., None], means.shape)
    return HTKHMM(model.startprob_, model.transmat_, model.endprob_, weights, means,
                  variances.reshape(means.shape))


def save_htk_mmf(path: str | os.PathLike, models: Mapping[str, Any], parm_kind: str = "USER") -> None:
    """Write ``{name: GaussianHMM or GMMHMM}`` (diagonal or spherical covariances, with
    ``endprob_``) as a text HTK MMF that HTK's tools load (HERest -H, HVite -H)."""
    from .data.htk_mmf import write_mmf

    write_mmf(path, {name: _to_htk(name, m) for name, m in models.items()}, parm_kind)


def load_htk_mmf(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a text HTK MMF as ``({name: GMMHMM}, options)``: diagonal GMM-HMMs whose
    ``startprob_``/``transmat_``/``endprob_`` come from HTK's entry row, emitting
    block and exit column (see :mod:`gmmhmm.data.htk_mmf`)."""
    from .data.htk_mmf import read_mmf
    from .hmm.gmm_hmm import GMMHMM

    parsed, options = read_mmf(path)
    models = {}
    for name, h in parsed.items():
        S, M, D = h.means.shape
        model = GMMHMM(n_components=S, n_mix=M, covariance_type="diag", init_params="", params="stmcw")
        model.n_features = D
        model.startprob_, model.transmat_, model.endprob_ = h.startprob, h.transmat, h.endprob
        model.weights_, model.means_, model.covars_ = h.weights, h.means, h.variances
        try:
            model._check()
        except InvalidParameterError as exc:
            raise ModelFileError(f"{path}: HMM {name!r}: {exc}") from exc
        models[name] = model
    return models, options
