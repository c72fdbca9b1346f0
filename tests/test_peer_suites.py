"""The peers' own test suites, run against gmmhmm.

hmmlearn's installed tests for GaussianHMM and GMMHMM and scikit-learn's
installed ``sklearn/mixture/tests`` run in subprocesses (one per module, with
fixed seeds) with gmmhmm's classes swapped in by :mod:`tests.peers.swap`.
Their JUnit results are compared with ``tests/peers/ledger.toml``: every
failure must be listed there with its reason, every listed test must still
fail (no stale entries), and at least 95% of the in-scope tests (all but the
ledger's ``out-of-scope`` ones and the peers' own skips/xfails) must pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("hmmlearn")
pytest.importorskip("sklearn")

ROOT = Path(__file__).resolve().parents[1]
LEDGER = Path(__file__).with_name("peers") / "ledger.toml"
SUITES = (
    "hmmlearn.tests.test_gaussian_hmm",
    "hmmlearn.tests.test_gmm_hmm",
    "hmmlearn.tests.test_gmm_hmm_new",
    "hmmlearn.tests.test_gmm_hmm_multisequence",
    "sklearn.mixture.tests.test_gaussian_mixture",
    "sklearn.mixture.tests.test_mixture",
)
SEEDS = {"HMMLEARN_SEED": "0", "SKLEARN_TESTS_GLOBAL_RANDOM_SEED": "42",
         "SKLEARN_RUN_FLOAT32_TESTS": "1", "PYTHONHASHSEED": "0"}
MIN_PASS_FRACTION = 0.95
TIMEOUT_S = 1200


def _outcomes(junit: Path) -> dict[str, str]:
    """``{'Class::test[param]': 'passed' | 'failed' | 'skipped'}`` from a JUnit file."""
    out = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        cls = case.get("classname", "").rsplit(".", 1)[-1]
        key = f"{cls}::{case.get('name')}" if cls else case.get("name")
        tags = {child.tag for child in case}
        out[key] = ("failed" if tags & {"failure", "error"}
                    else "skipped" if "skipped" in tags else "passed")
    return out


def _run(module: str, tmp: Path) -> tuple[dict[str, str], str]:
    junit = tmp / f"{module}.xml"
    env = dict(os.environ, **SEEDS, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "tests.peers.swap",
         "-W", "ignore", f"--junitxml={junit}", "--pyargs", module],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    if proc.returncode not in (0, 1) or not junit.exists():
        raise AssertionError(f"{module}: pytest exited with {proc.returncode}\n{proc.stdout[-3000:]}"
                             f"\n{proc.stderr[-3000:]}")
    return _outcomes(junit), proc.stdout


def _compare(outcomes: dict[str, str], listed: set[str]) -> tuple[list[str], list[str]]:
    """(failures the ledger does not list, ledger entries that no longer fail)."""
    failed = {test for test, outcome in outcomes.items() if outcome == "failed"}
    return sorted(failed - listed), sorted(test for test in listed if outcomes.get(test) != "failed")


def test_compare_catches_unexpected_failures_and_stale_entries(tmp_path):
    junit = tmp_path / "j.xml"
    junit.write_text(
        '<testsuites><testsuite>'
        '<testcase classname=".TestA" name="test_ok[log]"/>'
        '<testcase classname=".TestA" name="test_new_bug"><failure message="x"/></testcase>'
        '<testcase classname="" name="test_fixed"/>'
        '<testcase classname="" name="test_known"><error message="y"/></testcase>'
        '<testcase classname="" name="test_xfail"><skipped type="pytest.xfail"/></testcase>'
        '</testsuite></testsuites>')
    outcomes = _outcomes(junit)
    assert outcomes == {"TestA::test_ok[log]": "passed", "TestA::test_new_bug": "failed",
                        "test_fixed": "passed", "test_known": "failed", "test_xfail": "skipped"}
    assert _compare(outcomes, {"test_fixed", "test_known"}) == (["TestA::test_new_bug"], ["test_fixed"])


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("peers")
    with ThreadPoolExecutor(max_workers=2) as pool:  # one pytest process per module
        runs = dict(zip(SUITES, pool.map(lambda m: _run(m, tmp), SUITES)))
    return runs


@pytest.fixture(scope="module")
def ledger():
    entries = tomllib.loads(LEDGER.read_text())["expected"]
    for e in entries:
        assert e["suite"] in SUITES and e["kind"] in ("deliberate", "out-of-scope") and e["reason"].strip(), e
    return {(e["suite"], e["test"]): e for e in entries}


@pytest.mark.parametrize("suite", SUITES)
def test_suite_matches_ledger(results, ledger, suite):
    outcomes, stdout = results[suite]
    assert "gmmhmm swapped in" in stdout, "the swap plugin did not run: the peer's own classes were tested"
    assert len(outcomes) >= 4, f"{suite}: only {len(outcomes)} tests collected"
    unexpected, stale = _compare(outcomes, {test for (s, test) in ledger if s == suite})
    assert not unexpected, f"{suite}: failures not in tests/peers/ledger.toml: {unexpected}"
    assert not stale, f"{suite}: ledger entries that no longer fail (remove them): {stale}"


@pytest.mark.parametrize("peer", ["hmmlearn", "sklearn"])
def test_at_least_95_percent_of_in_scope_tests_pass(results, ledger, peer):
    passed = in_scope = 0
    for suite, (outcomes, _) in results.items():
        if not suite.startswith(peer):
            continue
        for test, outcome in outcomes.items():
            entry = ledger.get((suite, test))
            if outcome == "skipped" or (entry and entry["kind"] == "out-of-scope"):
                continue
            in_scope += 1
            passed += outcome == "passed"
    n_ledger = sum(1 for (suite, _) in ledger if suite.startswith(peer))
    print(f"\n{peer}: {passed} of {in_scope} in-scope tests pass ({n_ledger} ledger entries)")
    assert in_scope and passed / in_scope >= MIN_PASS_FRACTION, (peer, passed, in_scope)
