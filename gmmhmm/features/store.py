"""Feature files: many utterances' features in one ``.npz`` with a JSON header.

All utterances are concatenated into one ``features`` array (one zip entry
instead of thousands) with their ``lengths``; the header holds the
utterance names, in order, and the caller's metadata (e.g. the feature
config). The layout is that of a corpus shard (see
:func:`gmmhmm.modelfile.write_packed`) under the format name
``gmmhmm-features``. Written atomically, read without pickle.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..modelfile import read_packed, write_packed

FORMAT = "gmmhmm-features"


def save_features(
    path: str | os.PathLike, features: Mapping[str, np.ndarray], metadata: Mapping[str, Any] | None = None
) -> None:
    """Write ``{name: (n_frames, D) array}`` and JSON-able ``metadata`` to ``path``.

    All arrays must share D and dtype; they are stored exactly (bitwise).

    Raises
    ------
    InvalidInputError
        An array is not 2-D numeric, the arrays differ in D or dtype, two keys
        are the same name as strings, or
        ``metadata`` is not JSON-serialisable.
    """
    names = [str(k) for k in features]
    seen: set[str] = set()
    for n in names:  # keys such as 1 and "1": loading would keep only one of them
        if n in seen:
            raise InvalidInputError(f"features name the utterance {n!r} twice")
        seen.add(n)
    arrays = [np.asarray(features[k]) for k in features]
    for name, a in zip(names, arrays):
        if a.ndim != 2 or a.dtype.kind not in "fiu":
            raise InvalidInputError(f"features[{name!r}] must be a 2-D numeric array, got {a.shape} {a.dtype}")
    if len({(a.shape[1], a.dtype) for a in arrays}) > 1:
        raise InvalidInputError("all feature arrays must have the same dimension and dtype")
    data = np.concatenate(arrays) if arrays else np.zeros((0, 0))
    write_packed(path, FORMAT, data, [a.shape[0] for a in arrays],
                 {"names": names, "metadata": dict(metadata or {})}, what="metadata")


def load_features(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a file written by :func:`save_features`: ``(features dict, metadata)``.

    Raises
    ------
    ModelFileError
        Missing, corrupt or other-format file.
    """
    header, data, lengths = read_packed(path, FORMAT, "names",
                                        "feature file (names, lengths and data disagree)")
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    feats = {n: data[bounds[i]:bounds[i + 1]] for i, n in enumerate(header["names"])}
    return feats, header.get("metadata") or {}
