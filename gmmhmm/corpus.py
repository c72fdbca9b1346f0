"""A feature corpus on disk: a few ``.npz`` shards plus a JSON index.

Features are computed once and written as shards, each holding the frames of
whole utterances concatenated, their ``lengths``, utterance ids and optional
labels (integers, strings or word lists, stored as JSON text). The index
``corpus.json`` names the shards (paths relative to the index), their frame
and utterance counts, the feature dimension and dtype, whether there are
labels, the feature configuration, and the corpus totals ``n_frames`` and
``n_utterances`` (for people and tools reading the index; :meth:`Corpus.open`
recomputes them from the shard entries).

Training code never holds more than one shard (see :mod:`gmmhmm.parallel`)::

    corpus = Corpus.create("feats/", audio_utterances(wav_paths, cfg, labels=words),
                           feature_config=cfg)
    for path in corpus.shards:
        X, lengths, ids, labels = load_shard(path)

Every file is written atomically (temporary file, then ``os.replace``) and
read without pickle.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import _validation as V
from ._textio import read_text_input
from .errors import DimensionMismatchError, InvalidInputError, ModelFileError
from .modelfile import atomic_write_text, read_packed, write_packed

logger = logging.getLogger(__name__)

INDEX_FORMAT = "gmmhmm-corpus"
SHARD_FORMAT = "gmmhmm-corpus-shard"
VERSION = 1
INDEX_NAME = "corpus.json"


@dataclass(frozen=True)
class ShardInfo:
    """One shard as listed in the index."""

    path: str  # absolute
    n_frames: int
    n_utterances: int


def _plain(label: Any) -> Any:
    """Turn numpy scalars / arrays in a label into JSON-able Python values."""
    if isinstance(label, np.generic):
        return label.item()
    if isinstance(label, np.ndarray):
        return label.tolist()
    if isinstance(label, (list, tuple)):
        return [_plain(v) for v in label]
    return label


def _config_dict(feature_config: Any) -> dict[str, Any] | None:
    if feature_config is None or isinstance(feature_config, Mapping):
        return None if feature_config is None else dict(feature_config)
    to_dict = getattr(feature_config, "to_dict", None)
    if to_dict is None:
        raise InvalidInputError(
            f"feature_config must be a dict or have to_dict(), got {type(feature_config).__name__}")
    return dict(to_dict())


# What load_shard says of a shard whose parts disagree.
_CORRUPT_SHARD = "corpus shard (features, lengths, ids and labels disagree)"


def write_shard(path: str | os.PathLike, X: np.ndarray, lengths: np.ndarray,
                ids: list[str], labels: list[Any] | None) -> None:
    """Write one shard atomically (see :func:`load_shard` for the layout)."""
    write_packed(path, SHARD_FORMAT, X, lengths,
                 {"ids": list(ids), "labels": None if labels is None else [_plain(v) for v in labels]},
                 what="labels")


def load_shard(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, list[str], list[Any] | None]:
    """Read one shard: ``(X (n_frames, D), lengths (n_utts,), ids, labels or None)``.

    A shard is a :func:`gmmhmm.modelfile.write_packed` file of format
    ``gmmhmm-corpus-shard`` whose header holds ``ids`` and ``labels``.

    Raises
    ------
    ModelFileError
        If the shard is missing, truncated, not a shard, or its parts disagree.
    """
    header, X, lengths = read_packed(path, SHARD_FORMAT, "ids", _CORRUPT_SHARD, min_length=1)
    labels = header.get("labels")
    if labels is not None and (not isinstance(labels, list) or len(labels) != len(header["ids"])):
        raise ModelFileError(f"{os.fspath(path)}: corrupt {_CORRUPT_SHARD}")
    return X, lengths, header["ids"], labels


class Corpus:
    """An opened corpus index; shards are read lazily.

    Use :meth:`create` to write one and :meth:`open` to read one.

    Attributes
    ----------
    index_path : str
    shards : list of str
        Absolute shard paths, in corpus order.
    shard_info : list of ShardInfo
    n_features : int
    n_frames, n_utterances : int
        Totals over all shards.
    dtype : numpy dtype of the stored features
    has_labels : bool
    feature_config : dict or None
    """

    def __init__(self, index_path: str, shard_info: list[ShardInfo], n_features: int,
                 dtype: np.dtype, has_labels: bool, feature_config: dict | None) -> None:
        self.index_path = index_path
        self.shard_info = shard_info
        self.n_features = n_features
        self.dtype = dtype
        self.has_labels = has_labels
        self.feature_config = feature_config

    @property
    def shards(self) -> list[str]:
        return [s.path for s in self.shard_info]

    @property
    def n_frames(self) -> int:
        return sum(s.n_frames for s in self.shard_info)

    @property
    def n_utterances(self) -> int:
        return sum(s.n_utterances for s in self.shard_info)

    def __len__(self) -> int:
        return len(self.shard_info)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray, list[str], list[Any] | None]]:
        """Yield every shard's ``(X, lengths, ids, labels)``, one at a time."""
        for i in range(len(self)):
            yield self.load_shard(i)

    def __repr__(self) -> str:
        return (f"Corpus({self.index_path!r}, shards={len(self)}, utterances={self.n_utterances}, "
                f"frames={self.n_frames}, n_features={self.n_features})")

    def load_shard(self, shard: int | str | os.PathLike):
        """Read shard number ``shard`` (or a path) and check it against the index."""
        info = self.shard_info[shard] if isinstance(shard, (int, np.integer)) else None
        path = info.path if info is not None else os.fspath(shard)
        if not os.path.isfile(path):
            raise ModelFileError(f"{path}: corpus shard listed in {self.index_path} is missing")
        X, lengths, ids, labels = load_shard(path)
        if X.shape[1] != self.n_features:
            raise DimensionMismatchError(
                f"{path}: shard has {X.shape[1]} features but the corpus index says {self.n_features}")
        if info is not None and (X.shape[0] != info.n_frames or len(ids) != info.n_utterances):
            raise ModelFileError(
                f"{path}: shard holds {X.shape[0]} frames / {len(ids)} utterances but the index "
                f"says {info.n_frames} / {info.n_utterances}")
        return X, lengths, ids, labels

    # ------------------------------------------------------------------ I/O

    @classmethod
    def open(cls, index_path: str | os.PathLike) -> "Corpus":
        """Open ``corpus.json`` (or the folder holding it).

        Raises
        ------
        ModelFileError
            If the index is missing or corrupt, or a shard it lists is missing.
        """
        path = Path(index_path)
        if path.is_dir():
            path = path / INDEX_NAME
        if not path.is_file():
            raise ModelFileError(f"{path}: no corpus index")
        try:
            index = json.loads(read_text_input(path, "corpus index", ModelFileError))
        except (RecursionError, json.JSONDecodeError) as exc:
            raise ModelFileError(f"{path}: corrupt corpus index ({exc})") from exc
        if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT:
            raise ModelFileError(f"{path}: not a gmmhmm corpus index")
        version = index.get("version")
        if not isinstance(version, int) or version < 1 or version > VERSION:
            raise ModelFileError(f"{path}: unsupported corpus index version {version!r}")
        try:
            n_features = int(index["n_features"])
            dtype = np.dtype(index["dtype"])
            infos = [ShardInfo(str((path.parent / s["path"]).resolve()), int(s["n_frames"]),
                               int(s["n_utterances"])) for s in index["shards"]]
            has_labels = bool(index["has_labels"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{path}: corrupt corpus index ({type(exc).__name__}: {exc})") from exc
        if (n_features < 1 or dtype.kind != "f" or not infos
                or any(s.n_frames < 1 or s.n_utterances < 1 for s in infos)):
            raise ModelFileError(f"{path}: corrupt corpus index (empty or negative counts)")
        seen: set[tuple[int, int]] = set()
        for s in infos:
            if not os.path.isfile(s.path):
                raise ModelFileError(f"{s.path}: corpus shard listed in {path} is missing")
            st = os.stat(s.path)  # the same file under two names counts as a duplicate too
            if (st.st_dev, st.st_ino) in seen:
                raise ModelFileError(f"{path}: corrupt corpus index (shard {s.path} is listed twice)")
            seen.add((st.st_dev, st.st_ino))
        config = index.get("feature_config")
        return cls(str(path.resolve()), infos, n_features, dtype, has_labels,
                   config if isinstance(config, dict) else None)

    @classmethod
    def create(cls, out_dir: str | os.PathLike, utterances: Iterable[tuple], *,
               frames_per_shard: int = 1_000_000, feature_config: Any = None,
               dtype: Any = None) -> "Corpus":
        """Write a corpus from ``(utt_id, features[, label])`` tuples.

        Utterances are buffered until ``frames_per_shard`` frames are held,
        then written as one shard, so memory stays bounded by about one shard
        however long the iterable is. An utterance is never split.

        Parameters
        ----------
        out_dir : path
            Folder for the shards and ``corpus.json`` (created if needed). A corpus already
            there is replaced whole, or left as it was if writing the new one fails.
        utterances : iterable of tuples
            ``(utt_id, features (n_frames, n_features))`` or
            ``(utt_id, features, label)``; every item must have a label or none.
        frames_per_shard : int
            Target shard size in frames.
        feature_config : dict or object with ``to_dict()``, optional
            Stored in the index (e.g. a :class:`gmmhmm.features.FeatureConfig`).
        dtype : float dtype, optional
            Stored dtype (default: that of the first utterance; ints become float64).

        Returns
        -------
        Corpus
        """
        frames_per_shard = V.check_positive_int(frames_per_shard, "frames_per_shard")
        config = _config_dict(feature_config)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        # A corpus already there stays whole until the new index replaces its own: new shards take
        # names no file has, and its shards are removed only after that (or the new ones on failure).
        replaced = _shard_names(out / INDEX_NAME)
        writer = _ShardWriter(out, frames_per_shard, dtype)
        try:
            seen: set[str] = set()
            for item in utterances:
                if not isinstance(item, tuple) or len(item) not in (2, 3):
                    raise InvalidInputError(
                        f"each utterance must be (utt_id, features) or (utt_id, features, label), got {item!r:.80}")
                utt_id = str(item[0])
                if utt_id in seen:
                    raise InvalidInputError(f"duplicate utterance id {utt_id!r}")
                seen.add(utt_id)
                writer.add(utt_id, item[1], item[2] if len(item) == 3 else None, len(item) == 3)
            writer.flush()
            if not writer.infos:
                raise InvalidInputError("a corpus needs at least one utterance")
            index = {"format": INDEX_FORMAT, "version": VERSION, "n_features": writer.n_features,
                     "dtype": writer.dtype.str, "has_labels": bool(writer.labelled),
                     "n_frames": sum(s["n_frames"] for s in writer.infos),
                     "n_utterances": sum(s["n_utterances"] for s in writer.infos),
                     "feature_config": config, "shards": writer.infos}
            atomic_write_text(out / INDEX_NAME, json.dumps(index, indent=1))
        except BaseException:
            _remove(out, [s["path"] for s in writer.infos])
            raise
        _remove(out, replaced - {s["path"] for s in writer.infos})
        logger.info("wrote corpus %s: %d utterances, %d frames, %d shards", out,
                    index["n_utterances"], index["n_frames"], len(writer.infos))
        return cls.open(out / INDEX_NAME)


def _shard_names(index: Path) -> set[str]:
    """File names of the shards an existing index lists beside itself (none without a readable index)."""
    try:
        shards = json.loads(index.read_bytes())["shards"]
        return {s["path"] for s in shards if isinstance(s["path"], str) and os.path.basename(s["path"]) == s["path"]}
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return set()


def _remove(folder: Path, names: Iterable[str]) -> None:
    for name in names:
        try:
            (folder / name).unlink()
        except OSError:  # already gone, or not ours to remove: it only takes space
            pass


def audio_utterances(paths: Iterable[str | os.PathLike], config: Any = None, *,
                     labels: Iterable[Any] | None = None, utt_ids: Iterable[str] | None = None,
                     n_jobs: int = 1, chunk_files: int = 256) -> Iterator[tuple]:
    """Featurise audio files a chunk at a time, for :meth:`Corpus.create`.

    Yields ``(utt_id, features)`` or, with ``labels``, ``(utt_id, features,
    label)`` in input order; only ``chunk_files`` files' features are held at
    once. Unreadable files are skipped (and logged as warnings).

    Parameters
    ----------
    paths : iterable of audio paths
    config : gmmhmm.features.FeatureConfig, optional
        ``cmvn='speaker'`` is refused: it needs every file of a speaker at once.
    labels, utt_ids : iterables aligned with ``paths``, optional
        Default ids are the file names without extension.
    n_jobs : int
        Worker processes for feature extraction.
    chunk_files : int
        Files featurised per batch.
    """
    from .errors import InvalidParameterError  # noqa: PLC0415
    from .features import FeatureConfig, extract_many  # noqa: PLC0415

    config = FeatureConfig() if config is None else config
    if config.cmvn == "speaker":
        raise InvalidParameterError(
            "cmvn='speaker' needs all of a speaker's files at once; use extract_many and pass its "
            "features to Corpus.create, or cmvn='utterance'")
    chunk_files = V.check_positive_int(chunk_files, "chunk_files")
    paths = [os.fspath(p) for p in paths]
    ids = [Path(p).stem for p in paths] if utt_ids is None else [str(u) for u in utt_ids]
    labels = None if labels is None else list(labels)
    if len(ids) != len(paths) or (labels is not None and len(labels) != len(paths)):
        raise InvalidInputError(f"{len(paths)} paths but {len(ids)} ids / "
                                f"{'no' if labels is None else len(labels)} labels")
    for start in range(0, len(paths), chunk_files):
        feats, _ = extract_many(paths[start:start + chunk_files], config, n_jobs=n_jobs)
        for i in range(start, min(start + chunk_files, len(paths))):
            if paths[i] in feats:
                yield (ids[i], feats[paths[i]]) if labels is None else (ids[i], feats[paths[i]], labels[i])
        logger.info("featurised %d of %d files", min(start + chunk_files, len(paths)), len(paths))


class _ShardWriter:
    """Buffers utterances and writes a shard each time ``frames_per_shard`` is reached."""

    def __init__(self, out: Path, frames_per_shard: int, dtype: Any) -> None:
        self.out, self.frames_per_shard = out, frames_per_shard
        self.dtype = None if dtype is None else np.dtype(dtype)
        if self.dtype is not None and self.dtype.kind != "f":
            raise InvalidInputError(f"dtype must be a float dtype, got {self.dtype}")
        self.n_features: int | None = None
        self.labelled: bool | None = None
        self.infos: list[dict[str, Any]] = []
        self._arrays: list[np.ndarray] = []
        self._ids: list[str] = []
        self._labels: list[Any] = []
        self._frames = 0
        self._number = 0

    def add(self, utt_id: str, features: Any, label: Any, has_label: bool) -> None:
        if self.labelled is None:
            self.labelled = has_label
        elif self.labelled != has_label:
            raise InvalidInputError(f"utterance {utt_id!r}: either every utterance has a label or none does")
        given = getattr(features, "dtype", None)
        keep = self.dtype or (given if getattr(given, "kind", "") == "f" else np.dtype(np.float64))
        X = V.check_array(features, name=f"features of utterance {utt_id!r}", dtype=keep)
        if self.n_features is None:
            self.n_features, self.dtype = X.shape[1], np.dtype(keep)
        elif X.shape[1] != self.n_features:
            raise DimensionMismatchError(
                f"utterance {utt_id!r} has {X.shape[1]} features but earlier ones have {self.n_features}")
        self._arrays.append(X)
        self._ids.append(utt_id)
        self._labels.append(label)
        self._frames += X.shape[0]
        if self._frames >= self.frames_per_shard:
            self.flush()

    def _free_name(self) -> str:
        """The next ``shard-NNNNN.npz`` that names no file: never one a corpus being replaced still uses."""
        while (self.out / (name := f"shard-{self._number:05d}.npz")).exists():
            self._number += 1
        return name

    def flush(self) -> None:
        if not self._arrays:
            return
        name = self._free_name()
        lengths = np.array([a.shape[0] for a in self._arrays], dtype=np.int64)
        write_shard(self.out / name, np.concatenate(self._arrays), lengths, self._ids,
                    self._labels if self.labelled else None)
        self.infos.append({"path": name, "n_frames": int(lengths.sum()), "n_utterances": len(lengths)})
        logger.debug("wrote %s (%d utterances, %d frames)", name, len(lengths), int(lengths.sum()))
        self._arrays, self._ids, self._labels, self._frames = [], [], [], 0
