"""Feature files: many utterances' features in one ``.npz`` with a JSON header.

All utterances are concatenated into one ``features`` array (one zip entry
instead of thousands) with their ``lengths``; the header holds the
utterance names, in order, and the caller's metadata (e.g. the feature
config). Written atomically, read without pickle.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import InvalidInputError, ModelFileError
from ..modelfile import FORMAT_VERSION, HEADER_KEY, atomic_savez, read_npz

FORMAT = "gmmhmm-features"


def save_features(
    path: str | os.PathLike, features: Mapping[str, np.ndarray], metadata: Mapping[str, Any] | None = None
) -> None:
    """Write ``{name: (n_frames, D) array}`` and JSON-able ``metadata`` to ``path``.

    All arrays must share D and dtype; they are stored exactly (bitwise).
    """
    names = [str(k) for k in features]
    arrays = [np.asarray(features[k]) for k in features]
    for name, a in zip(names, arrays):
        if a.ndim != 2 or a.dtype.kind not in "fiu":
            raise InvalidInputError(f"features[{name!r}] must be a 2-D numeric array, got {a.shape} {a.dtype}")
    if len({(a.shape[1], a.dtype) for a in arrays}) > 1:
        raise InvalidInputError("all feature arrays must have the same dimension and dtype")
    try:
        header = json.dumps({"format": FORMAT, "version": FORMAT_VERSION, "names": names,
                             "metadata": dict(metadata or {})})
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"metadata must be JSON-serialisable: {exc}") from exc
    data = np.concatenate(arrays) if arrays else np.zeros((0, 0))
    atomic_savez(path, {
        HEADER_KEY: np.frombuffer(header.encode("utf-8"), dtype=np.uint8),
        "features": data,
        "lengths": np.array([a.shape[0] for a in arrays], dtype=np.int64),
    })


def load_features(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a file written by :func:`save_features`: ``(features dict, metadata)``."""
    name = os.fspath(path)
    header, arrays = read_npz(name, FORMAT)
    data, lengths, names = arrays.get("features"), arrays.get("lengths"), header.get("names")
    if (data is None or lengths is None or not isinstance(names, list) or lengths.ndim != 1
            or len(names) != lengths.shape[0] or lengths.dtype.kind != "i" or np.any(lengths < 0)
            or int(lengths.sum()) != data.shape[0]):
        raise ModelFileError(f"{name}: corrupt feature file (names, lengths and data disagree)")
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    feats = {n: data[bounds[i]:bounds[i + 1]] for i, n in enumerate(names)}
    return feats, header.get("metadata") or {}
