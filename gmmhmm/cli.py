"""The ``gmmhmm`` command.

Subcommands::

    gmmhmm features INPUT... -o feats.npz [--config C]   audio -> feature file (.ark: Kaldi archive + .scp)
    gmmhmm vtln INPUT... -o spk2warp [--train INPUT...]   per-speaker VTLN warps (then --vtln-map spk2warp)
    gmmhmm train DATA -o model.npz [--config C]          word models -> model file
    gmmhmm train-phones DATA_DIR --lexicon L --config C -o phones.npz   monophones from a data dir
    gmmhmm train-tri DATA_DIR --mono phones.npz -o tri.npz [--num-leaves N]  tied triphones from monophones
    gmmhmm decode MODEL INPUT... [-o hyp.txt]            audio -> "key<TAB>label(s)<TAB>loglik"
           [--lexicon L --lm lm.arpa --beam B --max-active N --lm-scale S --insertion-penalty P --n-best N]
    gmmhmm align MODEL [TRANSCRIPTS] INPUT... -o DIR     phone models: TextGrid + CTM alignments
    gmmhmm score HYP (--ref REF | --ref-from-fsdd-names) accuracy / error rates
    gmmhmm info MODEL                                    describe a model file
    gmmhmm lm TEXT -o lm.arpa [--order 2|3]              n-gram language model -> ARPA file

INPUT is Kaldi data directories, wav.scp files (any *.scp), audio files
(WAV, FLAC, NIST SPHERE, ...) and/or folders (their audio files at any depth, sorted);
see :mod:`gmmhmm.data.inputs` for the utterance ids each gives. Exit codes:
0 success, 1 some input failed (each failure is reported on stderr; the
rest is still processed), 2 usage error.

Recipe configs (``configs/*.toml``) are read by :func:`read_config`, shared
with ``recipes/``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._textio import read_text_input, split_fields, split_lines
from ._threads import set_num_threads
from ._validation import resolve_n_jobs
from .data.inputs import AUDIO_SUFFIXES, Utterances, audio_files_below, is_data_dir, list_utterances  # noqa: F401
from .data.datadir import check_speed_factors, speed_copies, speed_prefix
from .errors import GmmhmmError, InvalidInputError, InvalidParameterError, TranscriptError
from .mixture.mixup import mix_schedule

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2


# ---------------------------------------------------------------------------
# Recipe configs
# ---------------------------------------------------------------------------
@dataclass
class RecipeConfig:
    """A parsed recipe TOML: ``[features]``, ``[model]``, ``[data]``, ``[output]``."""

    path: Path | None = None
    features: Any = None  # FeatureConfig
    model: dict[str, Any] = field(default_factory=dict)
    fsdd_dir: Path | None = None
    split: str = "official"
    feature_jobs: int = 1
    out_dir: Path = Path("exp/fsdd_digits")


_SECTIONS = {"features", "model", "data", "output"}
_DATA_KEYS = {"fsdd_dir", "split", "n_jobs"}
_OUTPUT_KEYS = {"dir"}


def _read_toml(path: Path) -> dict[str, Any]:
    """A TOML config through the guarded text reader (regular files and pipes, size cap, UTF-8)."""
    if not path.exists():
        raise InvalidParameterError(f"config file {path} does not exist")
    text = read_text_input(path, "config file", InvalidParameterError)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidParameterError(f"{path}: not a readable TOML config ({exc})") from exc


def read_config(path: str | os.PathLike) -> RecipeConfig:
    """Read and validate a recipe config; every error names the file and key.

    ``[features]`` holds :class:`~gmmhmm.features.FeatureConfig` fields,
    ``[model]`` :class:`~gmmhmm.classifier.HMMClassifier` parameters,
    ``[data]`` ``fsdd_dir`` (empty: the default), ``split`` and ``n_jobs``
    (feature extraction processes), ``[output]`` ``dir``.
    """
    from .classifier import HMMClassifier
    from .features import FeatureConfig

    path = Path(path)
    raw = _read_toml(path)
    unknown = sorted(set(raw) - _SECTIONS)
    if unknown:
        raise InvalidParameterError(f"{path}: unknown section(s) {unknown}; expected {sorted(_SECTIONS)}")
    try:
        features = FeatureConfig.from_dict(raw.get("features", {}))
    except InvalidParameterError as exc:
        raise InvalidParameterError(f"{path} [features]: {exc}") from exc
    model = dict(raw.get("model", {}))
    valid = HMMClassifier._get_param_names()
    bad = sorted(set(model) - set(valid))
    if bad:
        raise InvalidParameterError(f"{path} [model]: unknown key(s) {bad}; valid: {valid}")
    model = {k: tuple(v) if isinstance(v, list) else v for k, v in model.items()}
    try:
        HMMClassifier(**model)._schedule()
    except InvalidParameterError as exc:
        raise InvalidParameterError(f"{path} [model]: {exc}") from exc
    data, output = raw.get("data", {}), raw.get("output", {})
    for name, section, keys in (("data", data, _DATA_KEYS), ("output", output, _OUTPUT_KEYS)):
        bad = sorted(set(section) - keys)
        if bad:
            raise InvalidParameterError(f"{path} [{name}]: unknown key(s) {bad}; valid: {sorted(keys)}")
    split = data.get("split", "official")
    if split not in ("official", "loso"):
        raise InvalidParameterError(f"{path} [data]: split must be 'official' or 'loso', got {split!r}")
    jobs = data.get("n_jobs", 1)
    resolve_n_jobs(jobs, 1, name=f"{path} [data]: n_jobs")
    for name, section, key in (("data", data, "fsdd_dir"), ("output", output, "dir")):
        if not isinstance(section.get(key, ""), str):
            raise InvalidParameterError(f"{path} [{name}]: {key} must be a path string, got {section[key]!r}")
    return RecipeConfig(
        path=path, features=features, model=model,
        fsdd_dir=Path(data["fsdd_dir"]) if data.get("fsdd_dir") else None,
        split=split, feature_jobs=jobs, out_dir=Path(output.get("dir", "exp/fsdd_digits")),
    )


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------
def _feature_config(args: argparse.Namespace):
    """[features] of ``--config``: a word-model recipe config, or a phone-model one (with [training])."""
    from .features import FeatureConfig

    if not args.config:
        return FeatureConfig()
    if "training" in _read_toml(Path(args.config)):
        return read_phone_config(args.config)[0]
    return read_config(args.config).features


def _show_progress(args: argparse.Namespace) -> bool:
    return bool(args.progress) or sys.stderr.isatty()


def _report_failures(failures: list[tuple[str, str]]) -> None:
    """One line per skipped file, naming it once (messages often start with the path already)."""
    for path, error in failures:
        error = error[len(path) + 2:] if error.startswith(f"{path}: ") else error
        print(_printable(f"gmmhmm: skipped {path}: {error}"), file=sys.stderr)


def _nothing_done(n_done: int, what: str) -> bool:
    """Whether a batch produced nothing (said on stderr): its outputs are then left as they were, since a
    run in which every input failed must not replace a user's earlier results with empty files."""
    if not n_done:
        print(f"gmmhmm: no {what}; no output written", file=sys.stderr)
    return not n_done


def _printable(text: str) -> str:
    """``text`` with the undecodable bytes of non-UTF-8 file names shown as ``\\xNN``."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class _NotSkips(logging.Filter):
    """The command reports skipped files itself (:func:`_report_failures`): drop the library's warnings."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.WARNING and str(record.msg).startswith("skipping "))


def read_table(path: str | os.PathLike, what: str, empty_values: bool = False,
               words: bool = False) -> dict[str, str]:
    """``key<TAB>value...`` (or ``key value...``) lines -> {key: value}.

    With tabs, the second column is the value (later columns, such as a
    score, are ignored); without, everything after the first space is.
    With ``words`` (Kaldi text: ``utt-id word...``, fields split on spaces and
    tabs alike) the value is every field after the key, joined by one space.
    A line without a value is an error, unless ``empty_values`` (transcripts:
    in Kaldi text an utterance with no words is its id alone) makes it ``""``.
    """
    table: dict[str, str] = {}
    lines = split_lines(read_text_input(path, f"{what} file", TranscriptError))
    for n, line in enumerate(lines, 1):
        if not split_fields(line) or line.startswith("#"):
            continue
        if words:
            parts = split_fields(line)
            parts = [parts[0], " ".join(parts[1:])]
        else:
            parts = line.split("\t") if "\t" in line else split_fields(line, 1)
        value = parts[1].strip(" \t") if len(parts) > 1 else ""
        if not value and not empty_values:
            raise TranscriptError(f"{path}:{n}: expected 'key<TAB>label', got {line!r}")
        key = parts[0].strip(" \t")
        if key in table:
            raise TranscriptError(f"{path}:{n}: key {key!r} appears twice")
        table[key] = value
    if not table:
        raise TranscriptError(f"{what} file {path} is empty")
    return table


def check_output(path: str | os.PathLike | None, what: str = "output file", folder: bool = False) -> None:
    """Fail now, not after the work, if ``path`` cannot be written.

    A file's folder must exist and accept a new file (probed by creating and
    removing one); ``path`` itself must not be a directory. A ``folder`` must
    not be a file, and its nearest existing ancestor must accept new files.
    Devices such as ``/dev/null`` are fine: they are written into.
    """
    if path is None:
        return
    import tempfile

    p = Path(path)
    if folder:  # created with its parents when missing: the nearest existing one must take it
        if p.exists() and not p.is_dir():
            raise InvalidInputError(f"{what} {p} exists and is not a folder")
        parent = p
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise InvalidInputError(f"cannot create {what} {p}: {parent} is not a folder")
    else:
        if p.is_dir():
            raise InvalidInputError(f"{what} {p} is a folder; name a file")
        if p.exists() and not p.is_file():
            return  # a device, FIFO or terminal: written into, never replaced
        parent = p.parent
    parent = parent if str(parent) else Path(".")
    if not parent.is_dir():
        raise InvalidInputError(f"cannot write {what} {p}: folder {parent} does not exist")
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=".gmmhmm-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InvalidInputError(f"cannot write {what} {p}: {exc.strerror or exc}") from exc


#: the options that name files a command writes (every other file-naming option is read)
_OUTPUT_OPTIONS = ("output", "ctm", "n_best_output", "png")


def _inputs_are_not_outputs(inputs: Sequence[str | os.PathLike | None], outputs: Sequence[str | None]) -> None:
    """Refuse an output that names one of the inputs: writing it would destroy the input."""
    named = {}
    for item in inputs:
        if item is not None and os.path.exists(item):
            st = os.stat(item)
            named[(st.st_dev, st.st_ino)] = item
    for out in outputs:
        if out is not None and os.path.isfile(out):
            st = os.stat(out)
            if (st.st_dev, st.st_ino) in named:
                raise InvalidInputError(f"output {out} is also an input ({named[(st.st_dev, st.st_ino)]}); "
                                        "refusing to overwrite it")


def fsdd_label(path: str | os.PathLike) -> str | None:
    """The digit of an FSDD-named file, else None."""
    from .datasets import parse_name

    u = parse_name(path)
    return None if u is None else u.digit


# ---------------------------------------------------------------------------
# Subcommands
# ---------------------------------------------------------------------------
def cmd_features(args: argparse.Namespace) -> int:
    from .features import save_features

    # X.ark: a Kaldi archive and its index X.scp (copy-feats ark,scp:X.ark,X.scp); else a .npz
    scp = Path(args.output).with_suffix(".scp") if Path(args.output).suffix == ".ark" else None
    check_output(args.output, "feature file")
    check_output(scp, "scp index")
    config = _feature_config(args)
    utts = _speed_perturbed(list_utterances(args.inputs), args)
    _inputs_are_not_outputs([*utts.audio_files(), args.config], [args.output, scp])
    feats, failures = _utterance_features(utts, config, args)
    feats = {utts.key[u]: X for u, X in feats.items()}
    if scp is not None:  # a Kaldi key is one token: such an utterance is reported, the rest written
        spaced = [k for k in feats if not k or any(c.isspace() for c in k)]
        failures += [(k, "a Kaldi archive key cannot hold white space (give the file an id in a wav.scp)")
                     for k in spaced]
        feats = {k: X for k, X in feats.items() if k not in spaced}
    _report_failures(failures)
    if _nothing_done(len(feats), "file could be featurised"):
        return EXIT_FAILURES
    if scp is not None:
        from .data.kaldi_io import write_ark

        write_ark(args.output, feats, scp=scp)
    else:
        save_features(args.output, feats, metadata={"feature_config": config.to_dict()})
    print(f"wrote {len(feats)} utterance(s), {config.n_features} dims, to {args.output}", file=sys.stderr)
    return EXIT_FAILURES if failures else EXIT_OK


def _training_data(args: argparse.Namespace, config) -> tuple[dict[str, np.ndarray], dict[str, str], Any, int]:
    """Features by key (from a feature file, or extracted from a folder with ``--speed-perturb``'s copies),
    the key each is labelled by (a copy: its original's), their config and the number of failed files."""
    from .datasets import OFFICIAL_TEST_TAKES, parse_name
    from .features import FeatureConfig, load_features

    if getattr(args, "vtln_map", None):
        raise InvalidParameterError("--vtln-map: word-model training does not warp per speaker; extract the "
                                    "features with `gmmhmm features --vtln-map` and train on that feature file")
    data = Path(args.data)
    if data.is_file():
        if args.speed_perturb:  # refused before the file is read
            raise InvalidParameterError(f"--speed-perturb: {data} is a feature file, not audio; extract the "
                                        "features with `gmmhmm features --speed-perturb` and train on that file")
        feats, meta = load_features(data)
        if "feature_config" not in meta:
            raise InvalidInputError(f"{data}: feature file has no feature_config metadata")
        return feats, {k: k for k in feats}, FeatureConfig.from_dict(meta["feature_config"]), 0
    utts = list_utterances([data])
    if args.split == "official":  # test takes stay out of the training CMVN statistics too
        utts = utts.subset(u for u in utts.ids
                           if (name := parse_name(utts.key[u])) is None or name.index >= OFFICIAL_TEST_TAKES)
    # a copy's id is its factor's prefix + its original's (Utterances.perturb_speed)
    original = {p + u: utts.key[u] for _, p in speed_copies(args.speed_perturb or [1.0]) for u in utts.ids}
    utts = _speed_perturbed(utts, args)
    args.jobs = args.jobs if args.jobs != 1 else config.feature_jobs  # -j overrides [data] n_jobs
    feats, failures = _utterance_features(utts, config.features, args)
    _report_failures(failures)
    return ({utts.key[u]: X for u, X in feats.items()}, {utts.key[u]: original[u] for u in feats},
            config.features, len(failures))


def cmd_train(args: argparse.Namespace) -> int:
    from .classifier import HMMClassifier
    from .datasets import OFFICIAL_TEST_TAKES, parse_name

    check_output(args.output, "model file")
    check_output(args.checkpoint_dir, "checkpoint folder", folder=True)
    _inputs_are_not_outputs([args.data, args.config, args.labels], [args.output])
    config = read_config(args.config)
    feats, original, feature_config, n_failed = _training_data(args, config)
    labels = read_table(args.labels, "labels") if args.labels else None
    keys, y = [], []
    for key, name in original.items():  # a speed-perturbed copy is named, labelled and split as its original
        if labels is not None:
            label = labels.get(name, labels.get(Path(name).name, labels.get(Path(name).stem)))
        else:
            label = fsdd_label(name)
        if label is None:
            raise TranscriptError(f"no label for {key}: name it {{digit}}_{{speaker}}_{{n}}.wav or pass --labels")
        if args.split == "official":
            u = parse_name(name)
            if u is None:
                raise InvalidInputError(f"--split official needs FSDD file names, got {name}")
            if u.index < OFFICIAL_TEST_TAKES:
                continue
        keys.append(key)
        y.append(label)
    if not keys:
        raise InvalidInputError("no training utterances left")
    clf = HMMClassifier(**config.model).fit([feats[k] for k in keys], y, resume=args.resume,
                                            checkpoint_dir=args.checkpoint_dir or (
                                                Path(args.output).parent / "checkpoints" if args.resume else None))
    clf.save(args.output, metadata={"feature_config": feature_config.to_dict(),
                                    "n_train": len(keys), "config": str(args.config), **_speed_metadata(args)})
    print(f"trained {len(clf.classes_)} model(s) on {len(keys)} utterance(s) -> {args.output}",
          file=sys.stderr)
    return EXIT_FAILURES if n_failed else EXIT_OK


# [training] keys of a phone-model config: EmbeddedTrainer / EmbeddedTrainer.fit settings, plus the
# lexicon to use when --lexicon is not given; the connected_* keys are recipes/fsdd_phones.py's own.
_PHONE_TRAINING = {"lexicon": str, "n_states": int, "sil_prob": float, "var_floor_frac": float,
                   "min_occupancy": float, "mixtures": list, "n_iter": (int, list)}
_PHONE_RECIPE_KEYS = {"connected_utterances", "connected_seed"}


def read_phone_config(path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """``(FeatureConfig, training settings)`` of a phone-model config (``configs/fsdd_phones.toml`` style).

    ``[features]`` holds :class:`~gmmhmm.features.FeatureConfig` fields and
    ``[training]`` the keys of :data:`_PHONE_TRAINING`; other sections belong
    to recipes and are not read here. Every error names the file and key.
    """
    from .features import FeatureConfig

    path = Path(path)
    raw = _read_toml(path)
    try:
        features = FeatureConfig.from_dict(raw.get("features", {}))
    except InvalidParameterError as exc:
        raise InvalidParameterError(f"{path} [features]: {exc}") from exc
    training = dict(raw.get("training", {}))
    bad = sorted(set(training) - set(_PHONE_TRAINING) - _PHONE_RECIPE_KEYS)
    if bad:
        raise InvalidParameterError(f"{path} [training]: unknown key(s) {bad}; valid: {sorted(_PHONE_TRAINING)}")
    for key, kind in _PHONE_TRAINING.items():
        value = training.get(key)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)
                                  and not (float in kinds and isinstance(value, int))):
            raise InvalidParameterError(f"{path} [training]: {key} must be {' or '.join(k.__name__ for k in kinds)}, "
                                        f"got {value!r}")
    try:
        mixtures, iters = mix_schedule(training.get("mixtures", [1, 2, 4, 8]), training.get("n_iter", 4), "mixtures")
    except InvalidParameterError as exc:
        raise InvalidParameterError(f"{path} [training]: {exc}") from exc
    training.update(mixtures=mixtures, n_iter=iters)
    return features, training


def _lda_mllt_options(args: argparse.Namespace, features):
    """``LdaMlltOptions`` of ``--lda-dim``, ``--splice`` and ``--lda-mllt-iters``, checked against the features."""
    from .graphs.lda_mllt import LdaMlltOptions

    options = LdaMlltOptions(lda_dim=args.lda_dim, splice=args.splice, n_iter=args.lda_mllt_iters,
                             mllt_iters=tuple(i for i in (0, 1, 3) if i < args.lda_mllt_iters)).validate()
    spliced = features.n_ceps * (2 * options.splice + 1)
    if options.lda_dim > spliced:
        raise InvalidParameterError(f"--lda-dim {options.lda_dim} exceeds the {spliced} dimensions of "
                                    f"{features.n_ceps} static features spliced +-{options.splice}")
    return options


def cmd_train_phones(args: argparse.Namespace) -> int:
    """Monophones from a data directory: flat start, embedded Baum-Welch, mixture splitting."""
    from .data import DataDir, Lexicon
    from .graphs import EmbeddedTrainer
    from .modelfile import save

    check_output(args.output, "model file")
    check_output(args.checkpoint_dir, "checkpoint folder", folder=True)
    features, training = read_phone_config(args.config)
    lexicon_path = args.lexicon or training.get("lexicon")
    if not lexicon_path:
        raise InvalidParameterError("no lexicon: pass --lexicon or set [training] lexicon in the config")
    _inputs_are_not_outputs([args.config, lexicon_path], [args.output])
    lda_options = _lda_mllt_options(args, features) if args.lda_mllt else None  # checked before any training
    lexicon = Lexicon.read(lexicon_path, format=args.lexicon_format, keep_stress=args.keep_stress)
    data = DataDir.read(args.data, require_text=True)
    # every word the transcripts use, missing ones listed in one error before any audio is read
    lexicon.check_words((w for u in data.utterances for w in data.text[u]), source=str(Path(args.data) / "text"))
    utts, failures = _with_words(list_utterances([args.data], require_text=True), args.data)
    utts = _speed_perturbed(utts, args)
    feats, bad = _utterance_features(utts, features, args)
    failures += bad
    _report_failures(failures)
    if not feats:
        raise InvalidInputError(f"{args.data}: no utterance could be featurised")
    ids = list(feats)
    texts = [utts.text[u] for u in ids]
    trainer = EmbeddedTrainer(lexicon, **{k: training[k] for k in ("n_states", "sil_prob", "var_floor_frac",
                                                                   "min_occupancy") if k in training},
                              feature_config=features.to_dict())
    checkpoint_dir = args.checkpoint_dir or (Path(args.output).parent / "checkpoints" if args.resume else None)
    history = trainer.fit([feats[u] for u in ids], texts, mixtures=training["mixtures"],
                          n_iter=training["n_iter"], checkpoint_dir=checkpoint_dir, resume=args.resume)
    kind = "phone model(s)"
    if args.lda_mllt:  # Kaldi tri2b: LDA on spliced static features, then MLLT inside re-estimation
        from .graphs.lda_mllt import static_features, train_lda_mllt

        history += train_lda_mllt(trainer, [feats[u] for u in ids], [static_features(feats[u], features) for u in ids],
                                  texts, lda_options, features.replace(delta_order=0).to_dict())
        kind = f"LDA+MLLT ({trainer.model.n_features} dims) phone model(s)"
    save(trainer.model, args.output, metadata={"n_train": len(ids), "config": str(args.config),
                                               "data_dir": str(args.data), "lexicon": str(lexicon_path),
                                               "history": history, **_speed_metadata(args)})
    print(f"trained {len(lexicon.phones)} {kind}, {trainer.model.n_mix} Gaussian(s) per state, on "
          f"{_n_trained(ids, failures)}: avg log-lik/frame {history[-1]:.3f} -> {args.output}", file=sys.stderr)
    return EXIT_FAILURES if failures else EXIT_OK


def _with_words(utts: Utterances, data: str) -> tuple[Utterances, list[tuple[str, str]]]:
    """The utterances whose transcript has words, and ``(key, error)`` of the others: a batch skips
    them; only when none is left is it an error."""
    empty = {u for u in utts.ids if not utts.text.get(u)}
    if len(empty) == len(utts.ids):
        raise InvalidInputError(f"{data}: no utterance has words to train on (every transcript is empty)")
    return (utts.subset(u for u in utts.ids if u not in empty),
            [(utts.key[u], "transcript has no words") for u in utts.ids if u in empty])


def _n_trained(ids: Sequence[str], failures: list) -> str:
    """``N utterance(s)``, or ``N of M utterance(s)`` when some were skipped, for a training command's summary."""
    return f"{len(ids)} of {len(ids) + len(failures)} utterance(s)" if failures else f"{len(ids)} utterance(s)"


def _int_list(text: str) -> list[int]:
    """argparse type: comma-separated positive integers (``1,2,4``)."""
    try:
        values = [int(x) for x in text.split(",")]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"must be comma-separated positive integers, got {text!r}")
    return values


def cmd_train_tri(args: argparse.Namespace) -> int:
    """Tied-state triphones from a monophone model (Kaldi tri1): align, grow the trees, re-estimate, mix up."""
    from .data import DataDir
    from .graphs import PhoneModelSet
    from .graphs.questions import read_phone_classes
    from .graphs.triphones import train_triphones
    from .modelfile import load, save

    check_output(args.output, "model file")
    _inputs_are_not_outputs([args.mono, args.phone_classes], [args.output])
    mono = load(args.mono)
    if not isinstance(mono, PhoneModelSet) or not hasattr(mono, "means_"):
        raise InvalidInputError(f"{args.mono} holds a {type(mono).__name__}, not trained phone models "
                                "(train them with `gmmhmm train-phones`)")
    _, iters = mix_schedule(args.mixtures, args.n_iter[0] if len(args.n_iter) == 1 else args.n_iter, "--mixtures")
    classes = read_phone_classes(args.phone_classes) if args.phone_classes else None
    lexicon = mono.lexicon
    data = DataDir.read(args.data, require_text=True)
    lexicon.check_words((w for u in data.utterances for w in data.text[u]), source=str(Path(args.data) / "text"))
    utts, failures = _with_words(list_utterances([args.data], require_text=True), args.data)
    utts = _speed_perturbed(utts, args)
    feats, bad = _utterance_features(utts, mono.get_feature_config(), args)
    failures += bad
    _report_failures(failures)
    if not feats:
        raise InvalidInputError(f"{args.data}: no utterance could be featurised")
    ids = list(feats)
    tri, history = train_triphones(mono, [feats[u] for u in ids], [utts.text[u] for u in ids],
                                   phone_classes=classes, min_occupancy=args.min_occupancy,
                                   gain_threshold=args.gain_threshold, max_leaves=args.num_leaves,
                                   mixtures=args.mixtures, n_iter=iters, sil_prob=args.sil_prob)
    save(tri, args.output, metadata={"n_train": len(ids), "mono": str(args.mono), "data_dir": str(args.data),
                                     "history": history, **_speed_metadata(args)})
    print(f"trained {tri.n_pdfs} tied states (from {mono.n_pdfs} monophone states), {tri.n_mix} Gaussian(s) "
          f"per state, on {_n_trained(ids, failures)}: avg log-lik/frame {history[-1]:.3f} -> {args.output}",
          file=sys.stderr)
    return EXIT_FAILURES if failures else EXIT_OK


def _load_classifier(path: str | os.PathLike, loaded: tuple | None = None):
    """(classifier, feature config) of a word-model file; ``loaded`` is its ``load(..., with_metadata=True)``."""
    from .classifier import HMMClassifier
    from .features import FeatureConfig
    from .modelfile import load

    model, meta = loaded if loaded is not None else load(path, with_metadata=True)
    if not isinstance(model, HMMClassifier):
        raise InvalidInputError(f"{path} holds a {type(model).__name__}, not an HMMClassifier")
    if not isinstance(meta, dict) or "feature_config" not in meta:
        raise InvalidInputError(f"{path}: model file has no feature_config metadata; "
                                "train it with `gmmhmm train` or the recipe")
    return model, FeatureConfig.from_dict(meta["feature_config"])


def _decode_word(clf, feats: dict[str, np.ndarray]) -> tuple[list[tuple[str, str, float]], list[tuple[str, str]]]:
    """Isolated words: every label's model scores the utterance, the best wins.
    Returns (results, failures): an utterance no model can produce (shorter than
    every word model's state chain) is a failure, not a guess."""
    keys = list(feats)
    scores = clf.predict_log_likelihoods([feats[k] for k in keys])
    best = scores.argmax(axis=1)
    ok = np.isfinite(scores[np.arange(len(keys)), best])
    results = [(k, str(clf.classes_[b]), float(scores[i, b]))
               for i, (k, b) in enumerate(zip(keys, best)) if ok[i]]
    failures = [(k, f"{len(feats[k])} frame(s) is too short for every word model")
                for i, k in enumerate(keys) if not ok[i]]
    return results, failures


def _decode_graph(args: argparse.Namespace, model, utts: Utterances) -> int:
    """Phone models: token passing over a phone loop, word loop, word list or n-gram LM (``--lm``)."""
    from .decoding import decode_audio, decoding_graph
    from .search import SearchOptions, to_ctm

    if args.si_model and not args.fmllr:
        raise InvalidParameterError("--si-model is the first-pass model of --fmllr")
    if args.n_best > 1 and not args.n_best_output:
        raise InvalidParameterError("--n-best above 1 needs --n-best-output FILE")
    lexicon = None
    if args.lexicon:
        from .graphs import Lexicon

        lexicon = Lexicon.read(args.lexicon, silence=model.phones[-1], format=args.lexicon_format)
    lm = None
    if args.lm:
        from .lm import read_arpa

        lm = read_arpa(args.lm)
    options = SearchOptions(beam=args.beam, max_active=args.max_active, lm_scale=args.lm_scale,
                            word_insertion_penalty=args.insertion_penalty, n_best=args.n_best)
    graph = decoding_graph(model, args.graph, lexicon, lm)
    if args.fmllr and args.graph == "phone-loop" and lm is None:
        from .decoding import phone_lexicon

        lexicon = phone_lexicon(model.phones, getattr(model.context, "silence", None))
    by_path = utts.utterances_of()
    spk = _speaker_map(args, utts)
    warps, unwarped = _file_warps(args, list(by_path), spk)
    sources = [utts.source(us[0]) for name, us in by_path.items() if warps is None or name in warps]
    decoded, failures = decode_audio(model, sources, graph, options, n_jobs=args.jobs,
                                     progress=_show_progress(args), utt2spk=spk,
                                     fmllr=args.fmllr, lexicon=lexicon, silence_weight=args.fmllr_silence_weight,
                                     si_model=_load_phone_models(args.si_model) if args.si_model else None,
                                     fmllr_update_type=args.fmllr_update_type, vtln_warps=warps)
    failures = unwarped + failures
    _report_failures(_failures_by_key(utts, failures))
    results = [(u, r) for path, r in decoded for u in by_path[path]]
    if _nothing_done(len(results), "utterance could be decoded"):
        return EXIT_FAILURES
    silence = model.phones[-1]

    def text(words: list[str]) -> str:
        return " ".join(w for w in words if w != silence)

    _write_output(args.output, "".join(f"{utts.key[u]}\t{text(r.words)}\t{r.score:.4f}\n" for u, r in results))
    if args.ctm:
        shift_s = model.get_feature_config().frame_shift_s
        _write_output(args.ctm, "".join(to_ctm(u, r, shift_s) for u, r in results))
    if args.n_best_output:
        _write_output(args.n_best_output, "".join(f"{utts.key[u]}\t{rank}\t{text(h.words)}\t{h.score:.4f}\n"
                                                  for u, r in results for rank, h in enumerate(r.n_best, 1)))
    return EXIT_FAILURES if failures else EXIT_OK


def _load_phone_models(path: str | os.PathLike):
    from .graphs import PhoneModelSet
    from .modelfile import load

    model = load(path)
    if not isinstance(model, PhoneModelSet):
        raise InvalidInputError(f"{path} holds a {type(model).__name__}, not phone models")
    return model


def _write_output(path: str | None, text: str) -> None:
    """Write ``text`` to ``path`` atomically, or to stdout when ``path`` is None."""
    if path:
        from .modelfile import atomic_write_text

        atomic_write_text(path, text)
    elif hasattr(sys.stdout, "buffer"):  # bytes: non-UTF-8 file names are written back as they were
        sys.stdout.flush()
        sys.stdout.buffer.write(text.encode("utf-8", "surrogateescape"))
        sys.stdout.buffer.flush()
    else:
        sys.stdout.write(_printable(text))


def _speaker_map(args: argparse.Namespace, utts: Utterances) -> dict[str, str] | None:
    """Speaker of each audio name (:meth:`Utterances.audio_name`) for per-speaker CMVN: a data directory's
    utt2spk, else ``--utt2spk`` (by utterance id, path, name or stem); without either, every file is its own
    speaker."""
    table = read_table(args.utt2spk, "utt2spk") if getattr(args, "utt2spk", None) else {}
    spk = {}
    for u in utts.ids:
        found = utts.speaker.get(u)
        key = next((k for k in utts.lookup_keys(u) if k in table), None)
        if found is None and key is not None:  # a perturbed copy of a file is its speaker's perturbed copy
            found = table[key] if key == u or u not in utts.speed else speed_prefix(utts.speed[u]) + table[key]
        if found is not None:
            spk[utts.audio_name(u)] = found
    if not spk:
        return None
    for path in utts.utterances_of():  # the rest: each its own speaker
        spk.setdefault(path, "\0file:" + path)
    return spk


def _failures_by_key(utts: Utterances, failures: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``(audio name, error)`` of failed audio -> ``(output key, error)`` of their utterances."""
    by_path = utts.utterances_of()
    return [(utts.key[u], msg) for path, msg in failures for u in by_path.get(path, [path])]


def _vtln_map(args: argparse.Namespace) -> dict[str, float] | None:
    """``--vtln-map``: speaker (or utterance) -> VTLN warp factor."""
    if not getattr(args, "vtln_map", None):
        return None
    warps = {}
    for key, value in read_table(args.vtln_map, "VTLN map").items():
        try:
            warps[key] = float(value.split()[0])
        except ValueError:
            raise TranscriptError(f"{args.vtln_map}: warp of {key!r} is not a number: {value!r}") from None
    return warps


def _file_warps(args: argparse.Namespace, names: Sequence[str], spk: dict[str, str] | None
                ) -> tuple[dict[str, float] | None, list[tuple[str, str]]]:
    """``--vtln-map`` as a warp per audio name (its speaker's; a file without a speaker is looked up
    by its name), and ``(name, error)`` of the files whose speaker has none (None, [] without it)."""
    table = _vtln_map(args)
    if table is None:
        return None, []
    warps, failures = {}, []
    for name in names:
        who = (spk or {}).get(name, name)
        found = table.get(who, table.get(name))
        if found is None:
            whose = (f"file {name!r} (no speaker)" if who.startswith("\0file:") or who == name
                     else f"speaker {who!r}")
            failures.append((name, f"no VTLN warp for {whose} in {args.vtln_map}"))
        else:
            warps[name] = found
    return warps, failures


def _utterance_features(utts: Utterances, config, args: argparse.Namespace) -> tuple[dict, list[tuple[str, str]]]:
    """Features of every utterance (by id, input order) and ``(key, error)`` of those that failed.

    With ``--vtln-map`` each file is analysed at its speaker's warp (Kaldi's ``--vtln-map`` with
    ``--utt2spk``; a file without a speaker is looked up by its name); a file whose speaker has no
    warp fails, the rest go on."""
    from .features import extract_many

    sources = {utts.audio_name(u): utts.source(u) for u in utts.ids}  # one extraction per file or segment
    spk = _speaker_map(args, utts)
    warps, failures = _file_warps(args, list(sources), spk)
    sources = {n: src for n, src in sources.items() if warps is None or n in warps}
    feats, bad = extract_many(list(sources.values()), config, n_jobs=args.jobs, progress=_show_progress(args),
                              utt2spk=spk, vtln_warps=warps)
    failures += bad
    names = {u: utts.audio_name(u) for u in utts.ids}
    return {u: feats[names[u]] for u in utts.ids if names[u] in feats}, _failures_by_key(utts, failures)


def cmd_vtln(args: argparse.Namespace) -> int:
    """Per-speaker VTLN warps (:func:`gmmhmm.adapt.train_vtln`) -> ``speaker warp`` lines for ``--vtln-map``."""
    from .adapt import check_vtln_grid, features_on_disk, train_vtln, vtln_warp_grid
    from .features import extract_many

    check_output(args.output, "VTLN map")
    if args.vtln_map:
        raise InvalidParameterError("--vtln-map: `gmmhmm vtln` estimates the warps; it reads none")
    config = _feature_config(args).replace(cmvn="speaker", cmvn_variance=True)  # the search needs both
    targets = list_utterances(args.inputs)
    trainers = _speed_perturbed(list_utterances(args.train) if args.train else targets, args)
    sources, spk = {}, {}
    for utts in (targets, trainers):
        _inputs_are_not_outputs([*utts.audio_files(), args.config], [args.output])
        sources |= {utts.audio_name(u): utts.source(u) for u in utts.ids}
        spk |= _speaker_map(args, utts) or {}
    name2spk = {n: n if spk.get(n, "\0file:").startswith("\0file:") else spk[n] for n in sources}
    estimated = {targets.audio_name(u) for u in targets.ids}
    model_names = list(dict.fromkeys(trainers.audio_name(u) for u in trainers.ids))
    failures: list[tuple[str, str]] = []

    def features_of_all(warp: float) -> dict:
        feats, bad = extract_many(list(sources.values()), config.replace(vtln_warp=warp), n_jobs=args.jobs,
                                  utt2spk=name2spk)
        if not failures:  # the same files fail at every warp
            failures.extend(bad)
        return feats

    grid = vtln_warp_grid(args.min_warp, args.max_warp, args.step)
    check_vtln_grid(config, grid)
    # every warp's features on disk next to the output, not in memory (the grid is ~20 corpus copies)
    with features_on_disk(features_of_all, Path(args.output).resolve().parent) as features_at:
        features_at(1.0, [])  # audio that cannot be read is reported and left out of the search
        failed = dict(failures)
        name2spk = {n: s for n, s in name2spk.items() if n not in failed}
        for name in failed:  # not read again at every other warp
            sources.pop(name, None)
        _, res = train_vtln(features_at, name2spk, [n for n in model_names if n not in failed],
                            n_components=args.n_components, n_iter=args.iters, grid=grid, random_state=args.seed)
    _report_failures(failures)
    wanted = sorted({name2spk[n] for n in estimated if n not in failed})
    _write_output(args.output, "".join(f"{s}\t{res.warps[s]:.4g}\n" for s in wanted if s in res.warps))
    print(f"VTLN warps of {len(wanted)} speaker(s) written to {args.output}", file=sys.stderr)
    return EXIT_FAILURES if failures else EXIT_OK


def cmd_decode(args: argparse.Namespace) -> int:
    from .graphs import PhoneModelSet
    from .modelfile import load

    check_output(args.output, "output file")
    check_output(args.ctm, "CTM file")
    check_output(args.n_best_output, "n-best file")
    utts = list_utterances(args.inputs)
    _inputs_are_not_outputs([args.model, args.si_model, *utts.audio_files()],
                            [args.output, args.ctm, args.n_best_output])
    loaded = load(args.model, with_metadata=True)
    if isinstance(loaded[0], PhoneModelSet):
        return _decode_graph(args, loaded[0], utts)
    clf, config = _load_classifier(args.model, loaded)
    # an option word models have no use for is refused, not ignored (no CTM written, an --lm never read)
    given = [name for name, default in args.phone_only.items() if getattr(args, name) != default]
    if given:
        raise InvalidParameterError(f"{', '.join('--' + n.replace('_', '-') for n in given)}: only for phone-model "
                                    f"files; {args.model} holds word models (isolated words, no search graph, "
                                    "no speaker adaptation)")
    feats, failures = _utterance_features(utts, config, args)
    results, too_short = _decode_word(clf, feats) if feats else ([], [])
    failures += [(utts.key[u], msg) for u, msg in too_short]
    _report_failures(failures)
    if _nothing_done(len(results), "utterance could be decoded"):
        return EXIT_FAILURES
    _write_output(args.output, "".join(f"{utts.key[u]}\t{hyp}\t{ll:.4f}\n" for u, hyp, ll in results))
    return EXIT_FAILURES if failures else EXIT_OK


def cmd_align(args: argparse.Namespace) -> int:
    """Forced alignment of utterances to their transcripts: TextGrids and CTM files.

    The transcripts come from data directories' ``text``, or from a
    transcripts file given first (``utt_id word ...``; utt_id is the
    utterance id, the file path, or the file name without suffix).
    """
    from .graphs import PhoneModelSet, force_align, read_transcripts, write_alignment
    from .modelfile import load

    check_output(args.output, "alignment folder", folder=True)
    model = load(args.model)
    if not isinstance(model, PhoneModelSet):
        raise InvalidInputError(f"{args.model} holds a {type(model).__name__}, not phone models "
                                "(train them with `gmmhmm train-phones` or recipes/fsdd_phones.py)")
    config = model.get_feature_config()
    inputs = list(args.inputs)
    transcripts = {}
    if not is_data_dir(inputs[0]):
        if len(inputs) < 2:
            raise InvalidInputError("align needs TRANSCRIPTS INPUT... or data directories")
        transcripts = read_transcripts(inputs.pop(0))
    utts = list_utterances(inputs, require_text=True)
    words_of, failures = {}, []
    for u in utts.ids:
        words = next((w for w in (utts.text.get(u), *map(transcripts.get, utts.lookup_keys(u))) if w is not None),
                     None)
        if words is None:
            failures.append((utts.key[u], "no transcript (keys are utterance ids, paths, file names or stems)"))
        elif not words:
            failures.append((utts.key[u], "transcript has no words"))
        else:
            words_of[u] = words
    feats, bad = _utterance_features(utts.subset(words_of), config, args)
    failures += bad
    aligned = {}
    model_feats = [model.transform_features(X) for X in feats.values()]  # the stored LDA+MLLT, if any
    for u, ll in zip(feats, model.state_log_likelihood_many(model_feats)):
        try:
            start_s, end_s = utts.segment.get(u, (0.0, math.inf))  # a segment may overshoot its recording
            duration_s = min(end_s, _recording_s(utts.path[u])) - start_s
            aligned[u] = force_align(model, None, words_of[u], config.frame_shift_s, duration_s,
                                     log_likelihood=ll)
        except GmmhmmError as exc:
            failures.append((utts.key[u], str(exc)))
    order = {utts.key[u]: k for k, u in enumerate(utts.ids)}
    _report_failures(sorted(failures, key=lambda f: order[f[0]]))
    if _nothing_done(len(aligned), "utterance could be aligned"):
        return EXIT_FAILURES
    write_alignment(args.output, aligned)
    if args.png:
        _plot_alignments(args.output, aligned, {u: utts.source(u) for u in aligned})
    print(f"aligned {len(aligned)} of {len(utts)} utterance(s) -> {args.output}", file=sys.stderr)
    return EXIT_FAILURES if failures else EXIT_OK


def _recording_s(audio) -> float:
    """Length in seconds of a recording: its file's header, or the output of a piped command."""
    import soundfile

    from .data import PipedAudio
    from .features import load_source

    if isinstance(audio, PipedAudio):
        signal, rate = load_source(audio)
        return len(signal) / rate
    info = soundfile.info(audio)
    return info.frames / info.samplerate


def _plot_alignments(out_dir: str, aligned: dict, audio_of: dict) -> None:
    """``<utt>.png`` beside each TextGrid: waveform and spectrogram with the boundaries."""
    from .features import load_source
    from .plot import plot_alignment, save_figure

    for utt, path in aligned.items():
        signal, rate = load_source(audio_of[utt])
        fig = plot_alignment(signal, rate, path.words, path.phones, title=utt)
        save_figure(fig, Path(out_dir) / f"{utt}.png")


def _match_refs(hyps: dict[str, str], refs: dict[str, str]
                ) -> tuple[list[str], list[str], dict[str, str], list[str]]:
    """(matched keys, keys without reference, {key: reference}, references no key matched):
    exact key, else file name, else stem."""
    missing = []
    out = {}
    used = set()
    for key in hyps:
        for k in (key, Path(key).name, Path(key).stem):
            if k in refs:
                out[key] = refs[k]
                used.add(k)
                break
        else:
            missing.append(key)
    return list(out), missing, out, [k for k in refs if k not in used]


def cmd_score(args: argparse.Namespace) -> int:
    from .scoring import (accuracy, confusion_matrix, error_rates, format_confusion,
                          plot_confusion)

    check_output(args.png, "PNG file")
    _inputs_are_not_outputs([args.hyp, args.ref], [args.png])
    hyps = read_table(args.hyp, "hypothesis", empty_values=True)
    if args.ref:
        keys, missing, ref_of, unscored = _match_refs(hyps, read_table(args.ref, "reference", empty_values=True))
        if unscored:  # not an error (a subset may be scored on purpose), but never silent
            shown = ", ".join(unscored[:10]) + (", ..." if len(unscored) > 10 else "")
            print(f"gmmhmm: {len(unscored)} reference(s) have no hypothesis and are not scored: {shown}",
                  file=sys.stderr)
    else:
        ref_of = {k: fsdd_label(k) for k in hyps}
        missing = [k for k, v in ref_of.items() if v is None]
        ref_of = {k: v for k, v in ref_of.items() if v is not None}
        keys = list(ref_of)
    for key in missing:
        print(f"gmmhmm: no reference for {key}", file=sys.stderr)
    if not keys:
        print("gmmhmm: nothing to score", file=sys.stderr)
        return EXIT_FAILURES
    ref_tokens = [ref_of[k].split() for k in keys]
    hyp_tokens = [hyps[k].split() for k in keys]
    isolated = not args.wer and all(len(t) == 1 for t in ref_tokens + hyp_tokens)
    if isolated:
        refs, hyp = [t[0] for t in ref_tokens], [t[0] for t in hyp_tokens]
        labels, matrix = confusion_matrix(refs, hyp)
        result = {"n": len(keys), "accuracy": accuracy(refs, hyp), "labels": labels,
                  "confusion": matrix.tolist()}
        text = (f"accuracy: {100 * result['accuracy']:.2f}% ({int(np.trace(matrix))}/{len(keys)})\n\n"
                + format_confusion(labels, matrix))
        if args.png:
            if not plot_confusion(labels, matrix, args.png):
                print("gmmhmm: matplotlib is not installed; no PNG written", file=sys.stderr)
    else:
        if args.png:  # a confusion matrix pairs one reference label with one hypothesis label
            raise InvalidParameterError("--png: a confusion matrix needs isolated labels (one token in every "
                                        "reference and hypothesis, and no --wer); these are token sequences")
        rates = error_rates(ref_tokens, hyp_tokens, utt_ids=keys)
        result = rates.to_dict()
        text = rates.format(unit=args.unit)
        if args.per_utt:  # sclite-style alignments of every utterance with errors
            result["utterances"] = [
                {"utt_id": u.utt_id, "n_ref": u.n_ref, "n_substitutions": u.n_substitutions,
                 "n_deletions": u.n_deletions, "n_insertions": u.n_insertions}
                for u in rates.utterances]
            text = "\n\n".join(
                [f"{u.utt_id}: {u.n_errors} error(s) / {u.n_ref}\n{u.alignment.format()}"
                 for u in rates.utterances if u.n_errors] + [text])
    print(json.dumps(result) if args.json else text)
    return EXIT_FAILURES if missing else EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    from .modelfile import describe

    info = describe(args.model)
    if args.json:
        print(json.dumps(info, indent=1, default=str))
        return EXIT_OK
    print(f"{args.model}: {info['class']} ({info['file_size_bytes']} bytes, format v{info['version']})")
    for k, v in info["params"].items():
        print(f"  {k} = {v}")
    attrs = info["attributes"]
    classes = attrs.get("classes_")
    if isinstance(classes, dict):
        print(f"  labels: {classes['shape'][0] if classes['shape'] else 1} ({classes['dtype']})")
    models = attrs.get("models_")
    if isinstance(models, list):
        for i, m in enumerate(models):
            shapes = {k: v.get("shape") for k, v in m["attributes"].items() if isinstance(v, dict) and "shape" in v}
            print(f"  model {i}: {m['class']} {shapes}")
    transform = attrs.get("feature_transform_")
    if isinstance(transform, dict) and transform.get("class") == "FeatureTransform":
        p = transform["params"]
        print(f"  feature transform: {p['n_source_features']} features spliced -{p['left_context']}/"
              f"+{p['right_context']}, matrix {tuple(p['matrix']['shape'])}")
    for k, v in (info.get("metadata") or {}).items():
        print(f"  metadata.{k} = {json.dumps(v) if isinstance(v, (dict, list)) else v}")
    return EXIT_OK


def _lm_sentences(path: str, ids: bool) -> list[list[str]]:
    """Word lists of a Kaldi ``text`` file (``utt-id word...``) or, without ids, one sentence per line.

    ``<s>``/``</s>`` around a sentence are dropped (they are added again), and so is the
    ``(utt-id)`` after ``</s>`` of a CMU Sphinx transcription line.
    """
    if ids:
        lines = list(read_table(path, "text", empty_values=True, words=True).values())
    else:
        lines = split_lines(read_text_input(path, "text file", TranscriptError))
    sentences = []
    for line in lines:
        words = split_fields(line)
        if len(words) > 1 and words[-2] == "</s>" and words[-1].startswith("(") and words[-1].endswith(")"):
            words = words[:-1]
        if words and words[0] == "<s>":
            words = words[1:]
        if words and words[-1] == "</s>":
            words = words[:-1]
        sentences.append(words)
    return sentences


def cmd_lm(args: argparse.Namespace) -> int:
    from .lm import estimate, write_arpa

    check_output(args.output, "ARPA file")
    _inputs_are_not_outputs([args.text, args.vocab, *(args.ppl or ())], [args.output])
    vocab = None
    if args.vocab:  # first column: a word list or a lexicon
        from .data.lexicon import word_list

        vocab = set(word_list(read_text_input(args.vocab, "vocabulary file", TranscriptError))) - {"<s>", "</s>"}
    sentences = _lm_sentences(args.text, not args.no_ids)
    ppl_texts = [(path, _lm_sentences(path, not args.no_ids)) for path in args.ppl or ()]  # read before any write
    model = estimate(sentences, order=args.order, method=args.method, vocab=vocab)
    write_arpa(model, args.output)
    print(f"wrote {args.order}-gram {args.method} model {model.counts()} from {args.text} to {args.output}",
          file=sys.stderr)
    for path, ppl_sentences in ppl_texts:
        print(f"file {path}: " + model.perplexity(ppl_sentences).format())
    return EXIT_OK


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _speed_factors(text: str) -> list[float]:
    """argparse type: comma-separated distinct speed factors in [0.5, 2]."""
    try:
        return check_speed_factors(float(f) for f in text.split(","))
    except ValueError as exc:  # InvalidParameterError is a ValueError too
        raise argparse.ArgumentTypeError(str(exc) if isinstance(exc, GmmhmmError) else f"not numbers: {text!r}"
                                         ) from None


def add_speed_perturb_option(sp: argparse.ArgumentParser, what: str) -> None:
    """``--speed-perturb F,F,...`` of every command that reads audio to train or featurise (``what``:
    which of its inputs are perturbed); :func:`_speed_perturbed` applies it."""
    sp.add_argument("--speed-perturb", type=_speed_factors, metavar="F,F,...",
                    help=f"{what}: also (or, without 1.0, only) speed-perturbed copies at these factors, e.g. "
                    "0.9,1.0,1.1 (Kaldi's perturb_data_dir_speed_3way.sh): ids and speakers prefixed sp0.9- etc.")


def _speed_perturbed(utts: Utterances, args: argparse.Namespace) -> Utterances:
    """``utts`` with the speed-perturbed copies ``--speed-perturb`` asks for (themselves without it)."""
    return utts.perturb_speed(args.speed_perturb) if args.speed_perturb else utts


def _speed_metadata(args: argparse.Namespace) -> dict[str, list[float]]:
    """A trained model's record of the ``--speed-perturb`` factors of its training data (none: {})."""
    return {"speed_perturb": list(args.speed_perturb)} if args.speed_perturb else {}


def _finite_float(text: str) -> float:
    """argparse type: a finite number (``nan`` and ``inf`` would silently ruin every score)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gmmhmm", description="GMM-HMM speech toolkit: features, "
                                "word-model training, decoding and scoring.")
    p.add_argument("-v", "--verbose", action="count", default=0, help="-v: progress log, -vv: debug")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="threads for training and decoding (default: all CPUs, capped by OMP_NUM_THREADS)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--progress", action="store_true", help="progress bars even when stderr is not a terminal")
        sp.add_argument("-j", "--jobs", type=int, default=1, help="feature extraction processes (-1: all CPUs)")
        sp.add_argument("--utt2spk", help="'utt speaker' lines (Kaldi utt2spk; utt: a file's path, name or stem) "
                        "pooling cmvn='speaker' statistics; default: each file is its own speaker")
        sp.add_argument("--vtln-map", help="'speaker warp' lines (Kaldi's --vtln-map, e.g. from `gmmhmm vtln`): "
                        "each speaker's audio analysed at its VTLN warp factor")

    def checkpoints(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--checkpoint-dir", help="checkpoint every EM iteration here (default with --resume: "
                        "'checkpoints' next to the output)")
        sp.add_argument("--resume", action="store_true", help="continue an interrupted training from its checkpoints")
        common(sp)

    sp = sub.add_parser("features", help="extract features of audio files into one feature file")
    sp.add_argument("inputs", nargs="+", help="data directories, wav.scp files (any *.scp), audio files and/or folders "
                    "(searched recursively); keyed by utterance id, or by path for files")
    sp.add_argument("-o", "--output", required=True, help="feature file to write: .npz, or .ark for a Kaldi "
                    "archive (float32) with its .scp index beside it")
    sp.add_argument("--config", help="recipe TOML whose [features] to use (default: FeatureConfig())")
    add_speed_perturb_option(sp, "the INPUTs (keys prefixed too)")
    common(sp)
    sp.set_defaults(func=cmd_features)

    sp = sub.add_parser("vtln", help="estimate each speaker's VTLN warp factor (for --vtln-map), without labels")
    sp.add_argument("inputs", nargs="+", help="data directories, wav.scp files (any *.scp), audio files and/or folders "
                    "whose speakers (utt2spk, --utt2spk; else each file) get a warp")
    sp.add_argument("-o", "--output", required=True, help="'speaker warp' lines to write")
    sp.add_argument("--config", help="recipe TOML whose [features] to use (CMVN is per speaker, with variance)")
    sp.add_argument("--train", nargs="+", help="inputs whose audio trains the warp GMM (default: the INPUTs)")
    sp.add_argument("--min-warp", type=float, default=0.80, help="smallest factor tried (default 0.80)")
    sp.add_argument("--max-warp", type=float, default=1.20, help="largest factor tried (default 1.20)")
    sp.add_argument("--step", type=float, default=0.02, help="grid step (default 0.02)")
    sp.add_argument("--n-components", type=int, default=128, help="Gaussians of the warp GMM (default 128)")
    sp.add_argument("--iters", type=int, default=2, help="VTLN training passes of the GMM (default 2)")
    sp.add_argument("--seed", type=int, default=0, help="random_state of the GMM")
    add_speed_perturb_option(sp, "the audio training the warp GMM (--train, else the INPUTs; warps are written "
                             "for the INPUTs' own speakers only)")
    common(sp)
    sp.set_defaults(func=cmd_vtln)

    sp = sub.add_parser("train", help="train one GMM-HMM per label into a model file")
    sp.add_argument("data", help="folder of audio files, or a feature file from `gmmhmm features`")
    sp.add_argument("-o", "--output", required=True, help="model file to write (.npz)")
    sp.add_argument("--config", required=True, help="recipe TOML ([features], [model], [data])")
    sp.add_argument("--labels", help="'key<TAB>label' lines (default: the digit of FSDD file names)")
    sp.add_argument("--split", choices=("all", "official"), default="all",
                    help="train on every file, or only FSDD's official training takes 5-49")
    add_speed_perturb_option(sp, "the audio files (not a feature file; a copy takes its original's label)")
    checkpoints(sp)
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser("train-phones", help="train monophone HMMs from a Kaldi data directory and a lexicon")
    sp.add_argument("data", help="data directory: wav.scp, text, utt2spk (spk2utt optional)")
    sp.add_argument("--lexicon", help="pronunciation lexicon (default: [training] lexicon of the config)")
    sp.add_argument("--lexicon-format", default="auto", choices=("auto", "htk", "kaldi", "kaldip", "sphinx", "cmudict"),
                    help="lexicon file format (auto: Sphinx/cmudict if words carry (2), else HTK/Kaldi)")
    sp.add_argument("--keep-stress", action="store_true", help="cmudict: keep the stress digits of vowels")
    sp.add_argument("--config", required=True, help="TOML with [features] and [training] (see configs/fsdd_phones.toml)")
    sp.add_argument("-o", "--output", required=True, help="phone-model file to write (.npz)")
    sp.add_argument("--lda-mllt", action="store_true",
                    help="then LDA + MLLT (Kaldi tri2b): splice the static features, LDA from the models' state "
                         "posteriors, single-pass retraining, MLLT re-estimated in training; stored in the model")
    sp.add_argument("--lda-dim", type=_positive_int, default=40, help="--lda-mllt: dimension after LDA (default 40)")
    sp.add_argument("--splice", type=int, default=4, help="--lda-mllt: frames spliced on each side (default 4)")
    sp.add_argument("--lda-mllt-iters", type=_positive_int, default=6,
                    help="--lda-mllt: re-estimation passes after LDA, MLLT before passes 1, 2 and 4 (default 6)")
    add_speed_perturb_option(sp, "the training data")
    checkpoints(sp)
    sp.set_defaults(func=cmd_train_phones)

    sp = sub.add_parser("train-tri", help="train tied-state triphones (decision trees) from monophones")
    sp.add_argument("data", help="data directory: wav.scp, text, utt2spk (spk2utt optional)")
    sp.add_argument("--mono", required=True, help="monophone model file from `gmmhmm train-phones` (its "
                    "features and lexicon are used)")
    sp.add_argument("-o", "--output", required=True, help="triphone model file to write (.npz)")
    sp.add_argument("--num-leaves", type=_positive_int, default=500, help="most tied states in all")
    sp.add_argument("--min-occupancy", type=_finite_float, default=100.0,
                    help="fewest frames in each leaf of a split")
    sp.add_argument("--gain-threshold", type=_finite_float, default=0.0,
                    help="smallest log-likelihood gain of a split")
    sp.add_argument("--phone-classes", help="'PHONE<TAB>class' file of question sets (e.g. cmudict.phones); "
                    "questions from clustering the phones are always added")
    sp.add_argument("--mixtures", type=_int_list, default=[1, 2, 4, 8], help="Gaussians per state after each "
                    "split, comma separated")
    sp.add_argument("--n-iter", type=_int_list, default=[4, 3, 3, 3],
                    help="re-estimation passes per mixture stage (one number for all, or one each)")
    sp.add_argument("--sil-prob", type=_finite_float, default=0.5, help="optional silence between words")
    add_speed_perturb_option(sp, "the training data")
    common(sp)
    sp.set_defaults(func=cmd_train_tri)

    sp = sub.add_parser("decode", help="recognise utterances with a model file")
    sp.add_argument("model", help="model file from `gmmhmm train`, `gmmhmm train-phones` or a recipe")
    sp.add_argument("inputs", nargs="+", help="data directories, wav.scp files (any *.scp), audio files and/or folders "
                    "(searched recursively)")
    sp.add_argument("-o", "--output", help="write 'key<TAB>label(s)<TAB>loglik' lines here (default: stdout); "
                    "key = utterance id for data directories and wav.scp files, else the file path")
    phone = sp.add_argument_group("phone-model files only (refused with word models)")
    phone.add_argument("--graph", choices=("phone-loop", "word-loop", "words"), default="word-loop",
                       help="phone-model files: phone recognition, connected words, or one isolated word")
    phone.add_argument("--lexicon", help="phone-model files: pronunciation lexicon (default: the model's)")
    phone.add_argument("--lm", help="phone-model files: ARPA n-gram language model (replaces --graph)")
    phone.add_argument("--insertion-penalty", type=_finite_float, default=0.0,
                       help="phone-model files: log weight added per word (per phone in a phone loop)")
    phone.add_argument("--lexicon-format", default="auto",
                       choices=("auto", "htk", "kaldi", "kaldip", "sphinx", "cmudict"),
                       help="--lexicon file format (auto: Sphinx/cmudict if words carry (2), else HTK/Kaldi)")
    phone.add_argument("--lm-scale", type=_finite_float, default=1.0, help="phone-model files: grammar / LM scale")
    phone.add_argument("--beam", type=float, default=300.0,
                       help="phone-model files: pruning beam in log-likelihood units (inf: none)")
    phone.add_argument("--max-active", type=int, default=10000,
                       help="phone-model files: most tokens expanded per frame (0: no limit)")
    phone.add_argument("--n-best", type=int, default=1, help="phone-model files: distinct word sequences per utterance")
    phone.add_argument("--n-best-output", help="phone-model files: write 'key<TAB>rank<TAB>words<TAB>score' here")
    phone.add_argument("--ctm", help="phone-model files: also write word timings as CTM (keyed by utterance id) here")
    phone.add_argument("--fmllr", action="store_true",
                       help="phone-model files: two passes, the second with a per-speaker fMLLR transform estimated "
                            "from the first pass's hypotheses (speakers from the data directory's utt2spk or "
                            "--utt2spk; without them each file is its own speaker)")
    phone.add_argument("--si-model", help="--fmllr: speaker-independent phone models for the first pass (when MODEL "
                                          "was trained with speaker-adaptive training)")
    phone.add_argument("--fmllr-update-type", choices=("full", "diag", "offset"), default="full",
                       help="--fmllr: full matrix, diagonal matrix or offset only (less data: fewer parameters)")
    phone.add_argument("--fmllr-silence-weight", type=_finite_float, default=0.01,
                       help="--fmllr: weight of silence frames in the transform's statistics (default 0.01)")
    sp.set_defaults(phone_only={a.dest: a.default for a in phone._group_actions})
    common(sp)
    sp.set_defaults(func=cmd_decode)

    sp = sub.add_parser("align", help="force-align utterances to their transcripts (phone models)")
    sp.add_argument("model", help="phone-model file from `gmmhmm train-phones` or recipes/fsdd_phones.py")
    sp.add_argument("inputs", nargs="+", metavar="[TRANSCRIPTS] INPUT",
                    help="data directories (transcripts from their text), or a transcripts file "
                    "('utt_id word ...'; utt_id = utterance id or the audio file's stem) followed by "
                    "wav.scp files (any *.scp), audio files and/or folders (searched recursively)")
    sp.add_argument("-o", "--output", required=True, help="folder for <utt>.TextGrid, words.ctm, phones.ctm")
    sp.add_argument("--png", action="store_true",
                    help="also draw <utt>.png: waveform and spectrogram with word and phone boundaries")
    common(sp)
    sp.set_defaults(func=cmd_align)

    sp = sub.add_parser("score", help="score hypotheses against references")
    sp.add_argument("hyp", help="hypotheses: 'key<TAB>label...' lines, e.g. `gmmhmm decode` output")
    ref = sp.add_mutually_exclusive_group(required=True)
    ref.add_argument("--ref", help="references: 'key<TAB>label...' or Kaldi text 'key word word...'")
    ref.add_argument("--ref-from-fsdd-names", action="store_true",
                     help="take each reference from the digit in the FSDD file name of the key")
    sp.add_argument("--wer", action="store_true",
                    help="always align token sequences and report error rates")
    sp.add_argument("--unit", default="WER", help="name of the error rate (WER, PER, ...)")
    sp.add_argument("--per-utt", action="store_true",
                    help="error rates: also each utterance's counts and alignment")
    sp.add_argument("--png", help="also write the confusion matrix as a PNG")
    sp.add_argument("--json", action="store_true", help="print JSON instead of text")
    sp.set_defaults(func=cmd_score)

    sp = sub.add_parser("info", help="describe a model file")
    sp.add_argument("model")
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp.set_defaults(func=cmd_info)

    sp = sub.add_parser("lm", help="estimate an n-gram language model from text, write ARPA")
    sp.add_argument("text", help="Kaldi text file 'utt-id word word ...' (with --no-ids: one sentence a line)")
    sp.add_argument("-o", "--output", required=True, help="ARPA file to write (.gz: gzip'ed)")
    sp.add_argument("--order", type=int, choices=(1, 2, 3, 4, 5), default=2, help="n-gram order (default 2)")
    sp.add_argument("--method", choices=("witten-bell", "kneser-ney"), default="witten-bell",
                    help="interpolated Witten-Bell (default) or modified Kneser-Ney smoothing")
    sp.add_argument("--no-ids", action="store_true", help="TEXT (and --ppl files) have no utterance ids: "
                    "one sentence a line, or a Sphinx transcription '<s> words </s> (utt-id)'")
    sp.add_argument("--vocab", help="give these words (first column: word list or lexicon) probability "
                    "even if the text lacks them")
    sp.add_argument("--ppl", action="append", metavar="TEXT",
                    help="print SRILM-style perplexity of this text (same format; repeatable)")
    sp.set_defaults(func=cmd_lm)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 failures, 2 usage)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) and usage errors (2)
        return int(exc.code or 0)
    # our own stderr handler for this call, removed at the end (basicConfig is a no-op once the
    # root logger has a handler: a later call's -v would be ignored, its output sent to a stale stream)
    root, handler = logging.getLogger(), logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_NotSkips())
    root_level = root.level
    root.addHandler(handler)
    root.setLevel([logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)])
    previous, restore = None, False
    try:
        if args.threads is not None:
            previous, restore = set_num_threads(args.threads), True
        # every option naming a file is an input, except the outputs: none may be overwritten
        _inputs_are_not_outputs([v for k, v in vars(args).items() if k not in _OUTPUT_OPTIONS and isinstance(v, str)],
                                [getattr(args, k, None) for k in _OUTPUT_OPTIONS])
        return args.func(args)
    except GmmhmmError as exc:
        print(_printable(f"gmmhmm {args.command}: error: {exc}"), file=sys.stderr)
        return EXIT_FAILURES
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # disk full, read-only folder, permissions...: one line, never a traceback
        if isinstance(exc, BrokenPipeError):  # output piped into e.g. `head`, which stopped reading
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
            return EXIT_FAILURES
        where = f"{exc.filename}: " if exc.filename else ""
        print(_printable(f"gmmhmm {args.command}: error: {where}{exc.strerror or exc}"), file=sys.stderr)
        return EXIT_FAILURES
    except MemoryError:
        print(f"gmmhmm {args.command}: error: out of memory", file=sys.stderr)
        return EXIT_FAILURES
    finally:
        root.removeHandler(handler)
        root.setLevel(root_level)
        if restore:
            set_num_threads(previous)


if __name__ == "__main__":
    raise SystemExit(main())
