"""Run the benchmarks and print one table: our time, the peer's time, the ratio.

Runs every script in ``BENCHMARKS``: all but ``long_input.py``, which is
slow (a 1,000,000-frame sequence, against hmmlearn too) and is run
separately, on its own or with ``--only long_input``; ``an4.py`` runs its
``--slice`` smoke run (stage times and decoding real-time factor; the full
recipe's figures come from ``python benchmarks/an4.py`` alone).

Each script runs in its own process, one after another (running them
together would skew the timings), and ends by printing one JSON line; this
runner parses the last line of its stdout. Timings whose key names
``gmmhmm`` are paired with the same key naming a peer (scikit-learn,
hmmlearn, librosa), so every ratio compares figures measured in the same
run. A missing, failing or timed-out benchmark is shown as failed. The
1 -> N process speed-up and the GEMM fraction of the GMM E-step come from
``parallel_scaling.py``, the memory figures from ``corpus_memory.py``.
Last line: JSON of every benchmark's result.

Every benchmark runs twice: first in the environment run_all was started in
(a user's default: nothing pinned, multi-threaded BLAS), which gives the
main columns; then again, in a subprocess whose environment sets
``OPENBLAS_NUM_THREADS=1`` (and the MKL / BLIS / vecLib equivalents), which
gives the last column, labelled ``BLAS=1 peer/ours``: both libraries with a
single-threaded BLAS. ``--no-pinned`` skips the second run.

    python benchmarks/run_all.py [--only gmm_em,hmm_bw] [--timeout 1800] [--args 'gmm_em=--repeats 1']
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ("gmm_em", "hmm_bw", "recipe_fsdd", "features", "parallel_scaling", "corpus_memory", "an4")
#: Default arguments: the AN4 recipe as its smoke slice (about a minute); run an4.py alone for the full recipe.
DEFAULT_ARGS = {"an4": ["--slice"]}
#: No peer to compare with: not run a second time with BLAS pinned.
NO_PINNED_RUN = {"corpus_memory", "an4"}
PEERS = ("sklearn", "hmmlearn", "librosa", "htk", "kaldi")
#: The environment of the BLAS-pinned run (numba and gmmhmm's own threads are left alone).
PINNED_ENV = {"OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "BLIS_NUM_THREADS": "1",
              "VECLIB_MAXIMUM_THREADS": "1"}


def run(name: str, timeout: float, extra: list[str] | None = None, env: dict | None = None) -> dict:
    """Run ``benchmarks/<name>.py [extra args]`` (with ``env`` added to the environment);
    return ``{"status", "seconds", "result", "error"}``."""
    script = HERE / f"{name}.py"
    if not script.is_file():
        return {"status": "missing", "seconds": 0.0, "result": None, "error": f"{script.name} not found"}
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, str(script), *(extra or [])], capture_output=True, text=True,
                              timeout=timeout, cwd=HERE.parent, env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "seconds": timeout, "result": None, "error": f"no result in {timeout:.0f} s"}
    seconds = time.perf_counter() - start
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    try:
        result = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        result = None
    if proc.returncode != 0 or not isinstance(result, dict):
        tail = (proc.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        why = f"exit code {proc.returncode}" if proc.returncode else "last stdout line is not a JSON object"
        return {"status": "failed", "seconds": seconds, "result": result, "error": f"{why}: {tail[:200]}"}
    return {"status": "ok", "seconds": seconds, "result": result, "error": None}


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def timing_rows(name: str, result: dict) -> list[tuple]:
    """(benchmark, measure, ours, peer name, peer, peer/ours) for each gmmhmm/peer timing pair.

    A peer's key (``hmmlearn_decode_seconds``) pairs with the same key naming
    gmmhmm (``gmmhmm_decode_seconds``) or with no library (``decode_seconds``).
    """
    flat = flatten(result)
    rows, seen = [], set()
    for key, theirs in flat.items():
        for peer in PEERS:
            if peer not in key or not _num(theirs):
                continue
            for ours_key in (key.replace(peer, "gmmhmm"), key.replace(peer + "_", "").replace("_" + peer, "")):
                ours = flat.get(ours_key)
                if ours_key != key and _num(ours) and ours > 0 and (ours_key, peer) not in seen:
                    seen.add((ours_key, peer))
                    measure = ours_key.replace("gmmhmm_", "").replace("_gmmhmm", "")
                    rows.append((name, measure, float(ours), peer, float(theirs), float(theirs) / float(ours)))
    return rows


def memory_rows(result: dict) -> list[tuple]:
    budget = result.get("budget_mb")
    return [("corpus_memory", f"{what} MB vs budget MB", float(result[key]), "budget", float(budget),
             float(budget) / float(result[key]))
            for what, key in (("traced peak", "tracemalloc_peak_fit_mb"), ("RSS growth", "max_rss_growth_mb"))
            if _num(result.get(key)) and result[key] > 0 and _num(budget)]


def scaling_rows(result: dict) -> list[tuple]:
    n = result.get("n_jobs", 2)
    rows = []
    for what in ("embedded", "gmm"):
        one, many = result.get(f"{what}_1proc_seconds"), result.get(f"{what}_nproc_seconds")
        if isinstance(one, (int, float)) and isinstance(many, (int, float)) and many > 0:
            # the ratio is the median of paired repeats, not the ratio of the two best times
            ratio = result.get(f"{what}_speedup")
            rows.append(("parallel_scaling", f"{what} E-step, {n} procs vs 1", float(many), "1 process",
                         float(one), float(ratio) if _num(ratio) else float(one) / float(many)))
    return rows


def an4_rows(result: dict) -> list[tuple]:
    """Wall seconds of each AN4 recipe stage and the decoding real-time factor (no peer)."""
    what = "slice" if result.get("slice") else "full"
    rows = [("an4", f"{what}: stage {stage} s", float(t), "", None, None)
            for stage, t in result.get("stages_s", {}).items() if _num(t)]
    if _num(result.get("real_time_factor")):
        rows.append(("an4", f"{what}: decoding real-time factor", float(result["real_time_factor"]), "", None, None))
    if _num(result.get("decode_peak_memory_mb")):
        rows.append(("an4", f"{what}: decoding peak memory MB", float(result["decode_peak_memory_mb"]), "", None, None))
    if _num(result.get("total_process_s")):
        rows.append(("an4", f"{what}: whole recipe s (budget {result.get('budget_s', 1200)} s)",
                     float(result["total_process_s"]), "", None, None))
    return rows


def table_rows(results: dict) -> list[tuple]:
    rows: list[tuple] = []
    for name, r in results.items():
        if r["status"] == "ok":
            special = {"parallel_scaling": scaling_rows, "corpus_memory": memory_rows, "an4": an4_rows}.get(name)
            found = special(r["result"]) if special else timing_rows(name, r["result"])
            rows += found or [(name, "(no gmmhmm/peer timing pair)", None, "", None, None)]
        else:
            rows.append((name, r["status"].upper(), None, "", None, None))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=None, help="comma-separated benchmark names")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per benchmark")
    ap.add_argument("--args", action="append", default=[], metavar="NAME=ARGS",
                    help="extra arguments for one benchmark, e.g. --args 'gmm_em=--repeats 1'")
    ap.add_argument("--no-pinned", action="store_true", help="skip the second, BLAS-pinned run")
    ap.add_argument("--from-log", default=None, help="re-print the table of an earlier run's output")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    extra = dict(DEFAULT_ARGS)
    for item in args.args:
        name, _, rest = item.partition("=")
        extra[name.strip()] = shlex.split(rest)

    results, pinned = {}, {}
    load_before = os.getloadavg()
    if args.from_log:
        last = json.loads(Path(args.from_log).read_text().strip().splitlines()[-1])
        results, pinned = last["results"], last.get("pinned", {})
        names = []
    for name in names:
        for label, env, store in (("default environment", None, results),
                                  ("OPENBLAS_NUM_THREADS=1", PINNED_ENV, pinned)):
            if env is not None and (args.no_pinned or name in NO_PINNED_RUN):
                continue
            print(f"running {name} ({label}) ...", flush=True)
            store[name] = run(name, args.timeout, extra.get(name), env)
            r = store[name]
            print(f"  {r['status']} in {r['seconds']:.1f} s" + (f": {r['error']}" if r["error"] else ""), flush=True)

    rows = table_rows(results)
    pinned_ratio = {(b, m, p): ratio for b, m, _, p, _, ratio in table_rows(pinned)}

    def num(v, fmt="{:.4g}"):
        return "-" if v is None else fmt.format(v)

    print()
    print(f"{'benchmark':<18}{'measure':<34}{'ours':>11}  {'peer':<10}{'peer':>11}{'peer/ours':>11}"
          f"{'BLAS=1 peer/ours':>18}")
    for bench, measure, ours, peer, theirs, ratio in rows:
        print(f"{bench:<18}{measure[:33]:<34}{num(ours):>11}  {peer:<10}{num(theirs):>11}"
              f"{num(ratio, '{:.2f}x'):>11}{num(pinned_ratio.get((bench, measure, peer)), '{:.2f}x'):>18}")
    print("(default environment, nothing pinned; last column: the same benchmark run again with "
          "OPENBLAS_NUM_THREADS=1; times in the units of each benchmark, seconds unless named; "
          "peer/ours > 1: gmmhmm is faster)")
    ge = results.get("gmm_em", {})
    if ge.get("status") == "ok":
        g = ge["result"]
        d = g.get("diag", {})
        print(f"GMM diag: float32 x{d.get('float32_speedup')} float64 (predictions agree on "
              f"{d.get('float32_prediction_agreement')}); E+M at {g.get('diag_gemm_fraction')} of the "
              f"{g.get('gemm_gflops')} GFLOP/s float64 GEMM rate measured in the same run "
              f"({g.get('blas_threads')} BLAS threads, {g.get('gmmhmm_threads')} gmmhmm threads)")
    ps = results.get("parallel_scaling", {})
    if ps.get("status") == "ok":
        p = ps["result"]
        print(f"1 -> {p.get('n_jobs')} processes: embedded training x{p.get('embedded_speedup')} wall, "
              f"x{p.get('embedded_cpu_path_speedup')} CPU critical path; GMM E-step x{p.get('gmm_speedup')} wall, "
              f"x{p.get('gmm_cpu_path_speedup')} CPU critical path (target x{p.get('speedup_target')}); "
              f"GEMM fraction of the diag GMM E-step {p.get('gemm_fraction')} of {p.get('gemm_gflops')} "
              f"GFLOP/s (target {p.get('gemm_fraction_target')}); load average {p.get('load_average_1min')}")
    cm = results.get("corpus_memory", {})
    if cm.get("status") == "ok":
        c = cm["result"]
        print(f"corpus training: {c.get('corpus_mb')} MB corpus, budget {c.get('budget_mb')} MB, "
              f"tracemalloc peak {c.get('tracemalloc_peak_fit_mb')} MB, max RSS growth "
              f"{c.get('max_rss_growth_mb')} MB, within budget: {c.get('within_budget')}")
    load_after = os.getloadavg()
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} on {os.cpu_count()} CPUs")

    def brief(d: dict) -> dict:
        return {k: {"status": v["status"], "seconds": round(v["seconds"], 1), "error": v["error"],
                    "result": v["result"]} for k, v in d.items()}

    print(json.dumps({"benchmark": "run_all", "load_average_1min": round(load_after[0], 2),
                      "load_average_before": round(load_before[0], 2),
                      "results": brief(results), "pinned": brief(pinned)}))


if __name__ == "__main__":
    main()
