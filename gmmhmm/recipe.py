"""What every recipe script shares: the Kaldi-style command line (``--stage``,
``--stop-stage``, ``--out``, ``--set``), TOML configs with overrides, stage timing,
features of a data dir, decoding that scores an unpruned-away utterance as deleted,
Kaldi-style score lines, and one line, no traceback, for the errors a user causes."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import GmmhmmError, InvalidParameterError, SequenceTooShortError

if TYPE_CHECKING:
    import numpy as np

    from .data import DataDir, Lexicon
    from .graphs import PhoneModelSet
    from .lm import NGramModel
    from .scoring import ErrorRates
    from .search import DecodeResult, DecodingGraph, SearchOptions

logger = logging.getLogger(__name__)


def argument_parser(description: str, default_config: str | os.PathLike, n_stages: int | None = None,
                    stage_names: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The options every staged recipe takes: ``--config --stage --stop-stage --out --set --report -v``.

    ``n_stages`` None: the stages depend on the config, ``--stop-stage`` defaults to None (the last).
    """
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--config", default=str(default_config))
    ap.add_argument("--stage", type=int, default=0,
                    help=f"first stage: {dict(enumerate(stage_names))}" if stage_names else "first stage")
    ap.add_argument("--stop-stage", type=int, default=None if n_stages is None else n_stages - 1,
                    help="last stage (default: the last)")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: [output] dir)")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override a config setting (TOML value), e.g. --set 'training.mixtures=[1, 2]'")
    ap.add_argument("--report", type=Path, default=None, help="also write the run's report (times, memory) as JSON")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap


def setup(args: argparse.Namespace, repo: Path,
          stage_names: Sequence[str] | Callable[[dict], Sequence[str]] | None = None) -> tuple[dict, Path]:
    """Logging (INFO with ``-v``), the config with its ``--set`` overrides, and the output
    folder (``--out``, else ``[output] dir`` relative to ``repo``), created. With ``stage_names``
    (or a function of the config giving them), ``--stage`` .. ``--stop-stage`` must name stages,
    first to last, or nothing is created and the run stops."""
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(message)s")
    cfg = apply_overrides(load_config(args.config), args.set)
    if stage_names is not None:
        names = list(stage_names(cfg) if callable(stage_names) else stage_names)
        last = len(names) - 1 if args.stop_stage is None else args.stop_stage
        if not 0 <= args.stage <= last <= len(names) - 1:
            given = f"--stage {args.stage}" + (f" --stop-stage {args.stop_stage}" if args.stop_stage is not None
                                                 and args.stop_stage != len(names) - 1 else "")
            raise InvalidParameterError(f"{given}: the stages are 0 ({names[0]}) to {len(names) - 1} "
                                        f"({names[-1]}), the first no later than the last")
    out = args.out or repo / cfg["output"]["dir"]
    from .cli import check_output

    check_output(out, "output folder", folder=True)  # named as an output, not as unreadable config or data
    out.mkdir(parents=True, exist_ok=True)
    return cfg, out


class Stages:
    """Runs the stages from ``first`` to ``last`` (indices into ``names``) and times them."""

    def __init__(self, names: Sequence[str], first: int, last: int) -> None:
        self.names, self.first, self.last = list(names), first, last
        self.timings: dict[str, float] = {}

    def __call__(self, stage: int | str, fn: Callable[[], Any]) -> Any:
        """``fn()`` if the stage is selected (printing its number and name), else None."""
        i = stage if isinstance(stage, int) else self.names.index(stage)
        if not self.first <= i <= self.last:
            return None
        print(f"stage {i}: {self.names[i]}", flush=True)
        t0 = time.perf_counter()
        result = fn()
        self.timings[self.names[i]] = time.perf_counter() - t0
        return result

    def summary(self) -> str:
        """``timings: name 1.2 s, ...`` of the stages run."""
        return "timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items())


def stage_features(feature_cfg: dict, n_jobs: int, out: Path, sets: Mapping[str, "DataDir"],
                   by_speaker: bool = False, vtln: Mapping | None = None,
                   vtln_model_speakers: Sequence[str] = ()) -> None:
    """Features of every utterance of each data dir (``feature_cfg``: FeatureConfig fields):
    ``out/feats/<name>.npz`` keyed by utterance. ``by_speaker`` gives the front end each
    dir's ``utt2spk`` (for ``cmvn='speaker'``). A file that fails is logged and left out. A dir
    with speed-perturbed copies (:func:`gmmhmm.data.perturb_speed`) has them featurised as its
    other utterances (each perturbed speaker its own CMVN and warp); the speeds are recorded.

    With ``vtln`` (a ``[vtln]`` section with ``enabled = true``: ``min_warp``, ``max_warp``,
    ``step``, ``n_components``, ``n_iter``, ``random_state``) every speaker's audio is analysed
    at its own warp factor, chosen without labels by :func:`gmmhmm.adapt.train_vtln` with a GMM
    of ``vtln_model_speakers``' audio; the warps go to ``out/feats/vtln_warps.json``."""
    from .data.datadir import audio_source_name
    from .features import FeatureConfig, extract_many
    from .features.store import save_features

    fc = FeatureConfig.from_dict(feature_cfg)
    (out / "feats").mkdir(parents=True, exist_ok=True)
    source, utt2spk = {}, {}
    for name, ds in sets.items():
        source[name] = {audio_source_name(ds.source(u)): ds.source(u) for u in ds.utterances}
        utt2spk |= {audio_source_name(ds.source(u)): ds.utt2spk[u] for u in ds.utterances}
    warps: dict[str, float] = {}
    if vtln and vtln.get("enabled", False):
        warps = _vtln_warps(fc, n_jobs, {k: v for s in source.values() for k, v in s.items()}, utt2spk, vtln,
                            set(vtln_model_speakers), out / "feats" / "vtln_warps.json")
    for name, ds in sets.items():
        feats, failures = extract_many(list(source[name].values()), fc, n_jobs=n_jobs,
                                       utt2spk=utt2spk if by_speaker else None,
                                       vtln_warps={k: warps[utt2spk[k]] for k in source[name] if utt2spk[k] in warps})
        for path, msg in failures:
            logger.warning("%s: %s left out: %s", name, path, msg)
        key = {u: audio_source_name(ds.source(u)) for u in ds.utterances}
        by_utt = {u: feats[key[u]] for u in ds.utterances if key[u] in feats}
        speeds = sorted(set(ds.speed.values()))
        meta = (_features_settings(feature_cfg, vtln, vtln_model_speakers)
                | {"failed": sorted(set(ds.utterances) - set(by_utt))} | ({"speed_perturb": speeds} if speeds else {}))
        save_features(out / "feats" / f"{name}.npz", by_utt, meta | ({"vtln_warps": warps} if warps else {}))


def _features_settings(feature_cfg: Mapping, vtln: Mapping | None, vtln_model_speakers: Sequence[str]) -> dict:
    """What the features of :func:`stage_features` depend on besides the audio: stored with them and
    checked by :func:`read_features` (a restarted stage must not read features of other settings).
    With VTLN the warps also depend on the speakers of the warp GMM."""
    from .features import FeatureConfig

    enabled = bool(vtln and vtln.get("enabled", False))
    return {"feature_config": FeatureConfig.from_dict(feature_cfg).to_dict(),
            "vtln": dict(vtln) | {"model_speakers": sorted(vtln_model_speakers)} if enabled else None}


def _vtln_warps(fc, n_jobs: int, source: Mapping, utt2spk: Mapping[str, str], vtln: Mapping,
                model_speakers: set, path: Path) -> dict[str, float]:
    """Each speaker's VTLN warp (:func:`vtln_warps`) from per-speaker normalised audio (CMVN with
    variance, whatever the config's own CMVN)."""
    from .features import extract_many

    from .adapt import check_vtln_grid, vtln_warp_grid

    search = fc.replace(cmvn="speaker", cmvn_variance=True)
    check_vtln_grid(search, vtln_warp_grid(vtln["min_warp"], vtln["max_warp"], vtln["step"]))
    return vtln_warps(lambda warp: extract_many(list(source.values()), search.replace(vtln_warp=warp),
                                                n_jobs=n_jobs, utt2spk=utt2spk)[0],
                      utt2spk, [k for k in source if utt2spk[k] in model_speakers], vtln, path)


def vtln_warps(features_of_all: Callable[[float], Mapping[str, "np.ndarray"]], utt2spk: Mapping[str, str],
               model_utterances: Sequence[str], vtln: Mapping, path: Path, extra: Mapping | None = None
               ) -> dict[str, float]:
    """Every speaker's warp by :func:`gmmhmm.adapt.train_vtln` with the settings of a ``[vtln]``
    section, the GMM trained on ``model_utterances``; ``features_of_all(warp)`` gives every
    utterance's speaker-normalised features. Warps, grid, per-warp scores and ``extra`` are written
    to ``path`` (JSON)."""
    from .adapt import features_on_disk, train_vtln, vtln_warp_grid
    from .modelfile import atomic_write_text

    if not model_utterances:
        raise InvalidParameterError("[vtln]: no speakers to train the warp GMM on")
    t0 = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    # every warp's features on disk next to the output, not in memory (the grid is ~20 corpus copies)
    with features_on_disk(features_of_all, path.parent) as features_at:
        _, res = train_vtln(features_at, utt2spk, model_utterances,
                            n_components=vtln["n_components"], n_iter=vtln["n_iter"],
                            grid=vtln_warp_grid(vtln["min_warp"], vtln["max_warp"], vtln["step"]),
                            random_state=vtln.get("random_state", 0))
    seconds = time.perf_counter() - t0
    atomic_write_text(path, json.dumps({**(extra or {}), "warps": res.warps, "grid": res.grid.tolist(),
                                        "model_speakers": sorted({utt2spk[u] for u in model_utterances}),
                                        # null: a factor ruled out for the speaker (-inf; strict JSON has none)
                                        "scores": {s: [x if math.isfinite(x) else None for x in v.tolist()]
                                                   for s, v in res.scores.items()},
                                        "seconds": seconds}, indent=1))
    logger.info("VTLN warps of %d speakers in %.0f s", len(res.warps), seconds)
    return res.warps


def read_features(out: Path, name: str, ds: "DataDir", cfg: Mapping, vtln_model_speakers: Sequence[str] = ()
                  ) -> dict[str, "np.ndarray"]:
    """Features of ``ds``'s utterances from :func:`stage_features` (those whose audio failed are missing);
    ``vtln_model_speakers`` as given to :func:`stage_features`.

    Raises
    ------
    InvalidParameterError
        The file was made with other ``[features]`` or ``[vtln]`` settings than ``cfg``'s, or lacks
        utterances of ``ds`` (made for another selection of speakers): a stage restarted with
        ``--stage`` after the config changed; the features stage must run again.
    """
    from .features.store import load_features

    path = out / "feats" / f"{name}.npz"
    feats, meta = load_features(path)
    rerun = "run the features stage again (--stage with its number) or use another --out"
    want = _features_settings(cfg["features"], cfg.get("vtln"), vtln_model_speakers)
    # files of older versions record no [vtln] settings, only whether there were warps
    vtln_differs = (meta["vtln"] != want["vtln"] if "vtln" in meta
                    else ("vtln_warps" in meta) != (want["vtln"] is not None))
    for section, differs in (("features", meta.get("feature_config") != want["feature_config"]),
                             ("vtln", vtln_differs)):
        if differs:
            raise InvalidParameterError(f"{path} was made with other [{section}] settings than the config's; {rerun}")
    speeds = sorted(set(ds.speed.values()) - set(meta.get("speed_perturb", ())))
    if speeds:
        raise InvalidParameterError(f"{path} has no features of audio at speed {', '.join(f'{f:g}' for f in speeds)} "
                                    f"(made with other [data] speed_perturb settings); {rerun}")
    missing = [u for u in ds.utterances if u not in feats and u not in meta.get("failed", ())]
    if missing:
        raise InvalidParameterError(f"{path} has no features of {len(missing)} utterance(s) of the config's "
                                    f"data ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}): "
                                    f"made for another selection of speakers? {rerun}")
    return {u: feats[u] for u in ds.utterances if u in feats}


def train_monophones(training_cfg: dict, feature_cfg: dict, lexicon: "Lexicon", ds: "DataDir",
                     feats: Mapping[str, "np.ndarray"]) -> "PhoneModelSet":
    """Monophones from the word transcripts of ``ds`` (every pronunciation of ``lexicon``
    allowed): flat start, embedded Baum-Welch and mix-up on the schedule of a config
    section (``n_states``, ``sil_prob``, ``var_floor_frac``, ``mixtures``, ``n_iter``).
    Utterances without features are left out."""
    from .graphs import EmbeddedTrainer

    trainer = EmbeddedTrainer(lexicon, n_states=training_cfg["n_states"], sil_prob=training_cfg["sil_prob"],
                              var_floor_frac=training_cfg["var_floor_frac"], feature_config=feature_cfg)
    utts = [u for u in ds.utterances if u in feats]
    history = trainer.fit([feats[u] for u in utts], [ds.text[u] for u in utts], mixtures=training_cfg["mixtures"],
                          n_iter=training_cfg["n_iter"])
    logger.info("trained on %d utterances; log-lik/frame %s", len(utts), " ".join(f"{h:.3f}" for h in history))
    return trainer.model


def decode_grid(graph: "DecodingGraph", ll: Mapping[str, "np.ndarray"],
                options: Sequence["SearchOptions"]) -> list[dict[str, "DecodeResult | None"]]:
    """1-best results ``{utt: DecodeResult or None}`` of every utterance, once per set of ``options``.

    The graph is compiled once; only its weights change with the options. An
    utterance whose every path the beam prunes gets None and a warning (a
    recipe scores it as all deleted, never drops it).
    """
    from .search import decode

    out = []
    for opt in options:
        weights = graph.arc_weights(opt)
        results = {}
        for u, x in ll.items():
            try:
                results[u] = decode(graph, x, opt, weights)
            except SequenceTooShortError as exc:
                logger.warning("%s: no hypothesis: %s", u, exc)
                results[u] = None
        out.append(results)
        logger.info("decoded %d utterances (options %d of %d: %s)", len(results), len(out), len(options), opt)
    return out


def best_on_dev(rates: Sequence["ErrorRates"]) -> int:
    """Index of the best grid point: fewest errors, then fewest sentence errors, then first in the grid."""
    return min(range(len(rates)), key=lambda i: (rates[i].n_errors, rates[i].n_sentences_wrong, i))


def write_tuning(folder: Path, rows: Sequence[str], best: dict, key: str | None = None) -> None:
    """``tuning.txt`` (one row per grid point) and ``best.json`` of a dev grid search, atomically;
    ``key`` (:func:`settings_key` of what the search depends on) goes into ``best`` for :func:`read_tuning`."""
    from .modelfile import atomic_write_text

    if key is not None:
        best["config_key"] = key
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "tuning.txt", "\n".join(rows) + "\n")
    atomic_write_text(folder / "best.json", json.dumps(best, indent=1))


def settings_key(settings: Any) -> str:
    """Digest of the (JSON-able) config settings a stage's output depends on. Stored with the
    output, it lets a run restarted with ``--stage`` refuse outputs made under other settings."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def chain_settings(cfg: Mapping, chain: Sequence[str], system: str, shared: Sequence[str],
                   first_in_shared: bool = False) -> tuple[list[str], dict]:
    """``(systems, settings)`` a system's models depend on, for its stage's :func:`settings_key`.

    ``systems`` is ``chain`` up to and including ``system`` (each system is trained from the one
    before it); ``settings`` maps the ``shared`` config sections (front end, common training
    settings) and the section of each of those systems to the config's (``None`` if missing).
    With ``first_in_shared`` the chain's first system has no section of its own (its settings
    are one of ``shared``, e.g. AN4's monophones in ``[training]``).
    """
    systems = list(chain[:list(chain).index(system) + 1])
    return systems, {k: cfg.get(k) for k in (*shared, *systems[1 if first_in_shared else 0:])}


def _check_key(path: Path, stored: Any, key: str, stage: str) -> None:
    # outputs of older versions carry no key: taken as they are
    if stored is not None and stored != key:
        raise InvalidParameterError(f"{path} was made with other config settings than this run's; run the "
                                    f"{stage} stage again (--stage with its number) or use another --out")


def save_stage_model(path: Path, model: Any, key: str, metadata: Mapping | None = None) -> None:
    """Save a stage's model with the :func:`settings_key` of what it was trained with."""
    from .modelfile import save

    path.parent.mkdir(parents=True, exist_ok=True)
    save(model, path, metadata={**(metadata or {}), "config_key": key})


def load_stage_model(path: Path, key: str, stage: str) -> Any:
    """A model of :func:`save_stage_model`, refused (naming ``stage``) if trained under other settings than ``key``."""
    from .modelfile import load

    model, meta = load(path, with_metadata=True)
    _check_key(path, meta.get("config_key"), key, stage)
    return model


def _lm_key(sentences: Sequence[Sequence[str]], lm_cfg: Mapping) -> str:
    return settings_key({"lm": dict(lm_cfg), "sentences": [list(s) for s in sentences]})


def save_stage_lm(path: Path, sentences: Sequence[Sequence[str]], lm_cfg: Mapping) -> "NGramModel":
    """The ``[lm]`` (``order``, ``method``) n-gram of ``sentences``, written as ARPA to ``path`` with the
    :func:`settings_key` of both in ``<path>.key`` beside it (the pair replaced as one)."""
    from .lm import estimate
    from .lm.arpa import arpa_text
    from .modelfile import atomic_write_files

    lm = estimate(sentences, order=lm_cfg["order"], method=lm_cfg["method"])
    key = _lm_key(sentences, lm_cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_files([(path, lambda f: f.write(arpa_text(lm).encode("utf-8"))),
                        (path.with_name(path.name + ".key"), lambda f: f.write(key.encode()))])
    return lm


def load_stage_lm(path: Path, sentences: Sequence[Sequence[str]], lm_cfg: Mapping, stage: str = "lm") -> "NGramModel":
    """An LM of :func:`save_stage_lm`, refused (naming ``stage``) if estimated with other ``[lm]`` settings or
    from other sentences than this run's."""
    from .lm import read_arpa

    key_path = path.with_name(path.name + ".key")
    _check_key(path, key_path.read_text(encoding="utf-8").strip() if key_path.is_file() else None,
               _lm_key(sentences, lm_cfg), stage)
    return read_arpa(path)


def read_tuning(folder: Path, key: str, stage: str) -> dict:
    """``best.json`` of :func:`write_tuning`, refused (naming ``stage``) if tuned under other settings than ``key``."""
    path = folder / "best.json"
    best = json.loads(path.read_text(encoding="utf-8"))
    _check_key(path, best.get("config_key"), key, stage)
    return best


def load_config(path: str | os.PathLike) -> dict:
    """A recipe's TOML config, read as the command line reads one: a file that is missing, not
    UTF-8 or not TOML is an :class:`InvalidParameterError` naming it, never a traceback."""
    from .cli import _read_toml

    return _read_toml(Path(path))


def apply_overrides(cfg: dict, settings: list[str]) -> dict:
    """``section.key=value`` settings (TOML values) applied over ``cfg``; the key must exist and
    the value have the type of the config's own (an integer may replace a float; a list's items
    the type of its items).

    Raises
    ------
    InvalidParameterError
        Malformed setting, unknown section or key, a value that is not TOML or of another type.
    """
    for item in settings:
        name, sep, value = item.partition("=")
        section, dot, key = name.strip().partition(".")
        # a top-level value is no section (``key in "a string"`` would look inside the string)
        if not sep or not dot or not isinstance(cfg.get(section), dict) or key not in cfg[section]:
            raise InvalidParameterError(f"--set {item!r}: expected SECTION.KEY=VALUE with a key of the config")
        try:
            new = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError as exc:
            raise InvalidParameterError(f"--set {item!r}: the value is not TOML ({exc})") from None
        old = cfg[section][key]
        if not _same_type(old, new):
            raise InvalidParameterError(f"--set {item!r}: {section}.{key} takes a value of type "
                                        f"'{_type_name(old)}' (the config has {old!r}), got '{_type_name(new)}'")
        cfg[section][key] = new
    return cfg


def _same_type(old: Any, new: Any) -> bool:
    """Whether TOML value ``new`` may replace ``old``: the same type, an int for a float, a list
    whose items may replace the old list's (any list for an empty one)."""
    if isinstance(old, float) and not isinstance(new, bool):
        return isinstance(new, (int, float))
    if isinstance(old, list):
        return isinstance(new, list) and (not old or all(any(_same_type(o, x) for o in old) for x in new))
    return type(old) is type(new)


def _type_name(value: Any) -> str:
    if isinstance(value, list) and value:
        return f"list of {_type_name(value[0])}"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
            dict: "table"}.get(type(value), type(value).__name__)


def kaldi_lines(er: "ErrorRates", unit: str = "WER") -> str:
    """``%WER`` (``%PER`` with ``unit='PER'``) and ``%SER`` lines as Kaldi's compute-wer prints them."""
    return (f"%{unit} {100 * er.error_rate:.2f} [ {er.n_errors} / {er.n_ref}, {er.n_insertions} ins, "
            f"{er.n_deletions} del, {er.n_substitutions} sub ]\n"
            f"%SER {100 * er.sentence_error_rate:.2f} [ {er.n_sentences_wrong} / {er.n_sentences} ]")


def run(main: Callable[[], Any], name: str) -> Any:
    """Call a recipe's ``main``; bad data, config values or files exit 1 with ``name: error: ...``."""
    try:
        return main()
    except GmmhmmError as exc:
        raise SystemExit(f"{name}: error: {exc}") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SystemExit(f"{name}: error: cannot read the config or data: {exc}") from None
    except KeyError as exc:
        raise SystemExit(f"{name}: error: the config lacks the key {exc}") from None
