#!/usr/bin/env python
"""Benchmark: the AN4 recipe stage by stage, each in its own process.

Runs ``recipes/an4.py --stage N --stop-stage N`` for every stage so that each
stage's wall time and peak resident memory are its own, then prints a table,
the test ``%WER`` / ``%SER``, the decoding real-time factor (acoustic scoring
+ search over the test audio) and peak memory, the whole recipe's time against
the 20-minute budget of issue 11, and the load average before and after (the
figures mean little on a busy machine). The stages are whatever the recipe's
``STAGES`` lists (training stages added to the recipe appear here as they
land); the results are read from the last stage that reports a test decode.
The last line is JSON.

``--slice`` runs a few speakers with a short schedule (a smoke run, seconds);
without it the full recipe runs (about as long as ``python recipes/an4.py``).

Usage::

    python benchmarks/an4.py [--config configs/an4.toml] [--out DIR] [--slice]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "an4.py"
#: Issue 11: the whole AN4 recipe (data to scored test decode) within 20 minutes.
BUDGET_S = 20 * 60


def recipe_stages(config: str, settings: list[str]) -> list[str]:
    spec = importlib.util.spec_from_file_location("an4", RECIPE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.stages(module.apply_overrides(module.load_config(config), settings[1::2]))


#: --set options of the smoke run: 4 training speakers (1 dev), 1 test speaker, 2 Gaussians.
SLICE = {"data.train_speakers": '["fash", "fbbh", "mblb", "mcen"]', "data.test_speakers": '["fcaw"]',
         "dev.speakers": '["fbbh"]', "training.mixtures": "[1, 2]", "training.n_iter": "[2, 1]",
         "tuning.lm_scales": "[6.0, 10.0]", "tuning.word_insertion_penalties": "[-10.0, 0.0]",
         "tri1.max_leaves": "100", "tri1.mixtures": "[1, 2]", "tri1.n_iter": "[2, 1]", "tri2.n_iter": "2",
         "tri2.mllt_iters": "[0]"}


def run_stage(stage: int, args: argparse.Namespace, out: Path, settings: list[str]) -> dict:
    """One stage in a fresh interpreter; its report (times, peak memory, results)."""
    report = out / f"benchmark_stage{stage}.json"
    cmd = [sys.executable, str(RECIPE), "--config", args.config, "--out", str(out), "--stage", str(stage),
           "--stop-stage", str(stage), "--report", str(report), *settings]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.PIPE if not args.verbose else None)
    result = json.loads(report.read_text())
    result["process_wall_s"] = time.perf_counter() - t0  # includes interpreter start and imports
    return result


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(REPO / "configs" / "an4.toml"))
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: a temporary folder)")
    ap.add_argument("--slice", action="store_true", help="a few speakers, short schedule (smoke run)")
    ap.add_argument("-v", "--verbose", action="store_true", help="show the recipe's own output")
    args = ap.parse_args(argv)
    settings = [a for k, v in SLICE.items() for a in ("--set", f"{k}={v}")] if args.slice else []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "an4"
        stages = recipe_stages(args.config, settings)
        reports = {name: run_stage(i, args, out, settings) for i, name in enumerate(stages)}
    load_after = os.getloadavg()
    print(f"{'stage':<18} {'wall s':>8} {'process s':>10} {'peak MB':>8}")
    for name, r in reports.items():
        print(f"{name:<18} {r['timings_s'][name]:8.1f} {r['process_wall_s']:10.1f} {r['peak_memory_mb']:8.0f}")
        for part, t in r["timings_s"].items():  # parts a stage times on its own (e.g. one model of several)
            if part != name:
                print(f"  {part:<16} {t:8.1f}")
    decodes = [n for n in reports if n.endswith("-decode")]
    for name in decodes:  # every system's test result, in chain order
        t = reports[name]["test"][name[:-len("-decode")]]
        e = t["errors"]
        print(f"%WER {100 * e['error_rate']:.2f} [ {e['n_errors']} / {e['n_ref']}, {e['n_insertions']} ins, "
              f"{e['n_deletions']} del, {e['n_substitutions']} sub ]  ({t['settings']})")
    decode = decodes[-1]
    test = reports[decode]["test"][decode[:-len("-decode")]]
    e = test["errors"]
    total = sum(r["timings_s"][n] for n, r in reports.items())
    total_process = sum(r["process_wall_s"] for r in reports.values())
    within = total_process <= BUDGET_S
    print(f"decoding {test['n_utterances']} utterances, {test['audio_s']:.1f} s of audio: real-time factor "
          f"{test['real_time_factor']:.4f} ({1 / test['real_time_factor']:.0f}x faster than real time; "
          f"scoring {test['scoring_s']:.2f} s + search {test['search_s']:.2f} s), "
          f"peak memory of the decoding process {reports[decode]['peak_memory_mb']:.0f} MB")
    print(f"all stages {total:.1f} s ({total_process:.1f} s with each stage's interpreter start and imports); "
          + ("smoke slice, not comparable with" if args.slice else "within" if within else "OVER")
          + f" the {BUDGET_S // 60}-minute budget of the whole recipe (issue 11); "
          f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    summary = {"stages_s": {k: t for r in reports.values() for k, t in r["timings_s"].items()},
               "peak_memory_mb": {n: r["peak_memory_mb"] for n, r in reports.items()},
               "wer": e["error_rate"], "ser": e["sentence_error_rate"], "real_time_factor": test["real_time_factor"],
               "decode_peak_memory_mb": reports[decode]["peak_memory_mb"],
               "total_s": total, "total_process_s": total_process, "budget_s": BUDGET_S,
               "within_budget": None if args.slice else within, "load_average": [load_before[0], load_after[0]], "slice": args.slice}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
