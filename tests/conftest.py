"""Shared fixtures.

Integration tests use the real recordings in ../shared/data/fsdd (or
$GMMHMM_FSDD_DIR), ../shared/data/an4 (or $GMMHMM_AN4_DIR) and
../shared/data/cathy with ../shared/data/cmudict (or $GMMHMM_CATHY_DIR and
$GMMHMM_CMUDICT). They fail, never skip, when the data is missing: CI and
every developer machine have it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def fsdd_dir() -> Path:
    path = Path(os.environ.get("GMMHMM_FSDD_DIR", REPO_ROOT.parent / "shared" / "data" / "fsdd"))
    return path


@pytest.fixture(scope="session")
def fsdd_path() -> Path:
    """Folder of the Free Spoken Digit Dataset; fails loudly when absent."""
    path = fsdd_dir()
    recordings = path / "recordings"
    if not recordings.is_dir() or not any(recordings.glob("*.wav")):
        pytest.fail(
            f"FSDD recordings not found at {recordings}. Integration tests need "
            "../shared/data/fsdd (or set GMMHMM_FSDD_DIR)."
        )
    return path


def an4_dir() -> Path:
    return Path(os.environ.get("GMMHMM_AN4_DIR", REPO_ROOT.parent / "shared" / "data" / "an4"))


@pytest.fixture(scope="session")
def an4_path() -> Path:
    """Folder of CMU AN4 (SPHERE audio, transcripts, dictionary); fails loudly when absent."""
    path = an4_dir()
    if not (path / "etc" / "an4.dic").is_file() or not (path / "wav" / "an4test_clstk").is_dir():
        pytest.fail(f"AN4 not found at {path}. Integration tests need ../shared/data/an4 (or set GMMHMM_AN4_DIR).")
    return path


@pytest.fixture(scope="session")
def cathy_paths() -> tuple[Path, Path]:
    """(Cathy corpus folder, cmudict.dict); fails loudly when either is absent."""
    corpus = Path(os.environ.get("GMMHMM_CATHY_DIR", REPO_ROOT.parent / "shared" / "data" / "cathy"))
    cmudict = Path(os.environ.get("GMMHMM_CMUDICT", REPO_ROOT.parent / "shared" / "data" / "cmudict" / "cmudict.dict"))
    if not (corpus / "data").is_dir() or not any((corpus / "data").glob("arctic_*.flac")):
        pytest.fail(f"Cathy not found at {corpus}. Integration tests need ../shared/data/cathy "
                    "(or set GMMHMM_CATHY_DIR).")
    if not cmudict.is_file():
        pytest.fail(f"cmudict not found at {cmudict}. Integration tests need ../shared/data/cmudict "
                    "(or set GMMHMM_CMUDICT).")
    return corpus, cmudict


def load_script(relative_path: str) -> ModuleType:
    """Import a repository script (recipes/, data_scripts/) as a module."""
    path = REPO_ROOT / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def start_numba_threads() -> None:
    """Start numba's thread pool in this process (OpenMP on Linux), after which
    a forked child would abort: worker processes must be spawned."""
    import numpy as np

    from gmmhmm.hmm.kernels import forward_backward_multi
    from gmmhmm.mixture._kernels import fill_design

    fill_design(np.ones((64, 2)), np.zeros(2), np.empty((64, 5)), False)
    S, n = 8, 1 << 13
    flp = np.random.default_rng(0).normal(size=(n, S))
    forward_backward_multi(np.full(S, 1 / S), np.full((S, S), 1 / S), np.ones(S), flp,
                           np.arange(0, n + 1, 512), use_log=False, parallel=True)


def write_packed_npz(path, header: dict, features, lengths):
    """An npz in the packed-utterance layout of feature files and corpus shards,
    built by hand as an older gmmhmm wrote it."""
    import json

    import numpy as np

    np.savez(path, __header__=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
             features=features, lengths=np.asarray(lengths, dtype=np.int64))
    return path


def tone(freq_hz: float, seconds: float = 0.5, rate_hz: int = 8000):
    """A sine tone: the synthetic 'audio' the bad-input and hostile-input tests feed the CLI."""
    import numpy as np

    t = np.arange(int(seconds * rate_hz)) / rate_hz
    return 0.3 * np.sin(2 * np.pi * freq_hz * t)


def tune_without_test_data(recipe: ModuleType, args: list[str], out: Path, copy: Path, stage: int) -> dict:
    """Run a recipe's tuning ``stage`` on a copy of its output ``out`` from which the test features,
    the final (all-speaker) monophones and the dev choice are removed: tuning must need none of them.
    Returns the stage's report."""
    import shutil

    shutil.copytree(out, copy)
    (copy / "feats" / "test.npz").unlink()
    shutil.rmtree(copy / "mono")
    (copy / "mono_nodev" / "decode_dev" / "best.json").unlink()
    return recipe.main(args + ["--out", str(copy), "--stage", str(stage), "--stop-stage", str(stage)])


def no_room_for(monkeypatch, name: str) -> None:
    """Atomic writes of the file ``name`` fail as on a full disk, when they make its temporary."""
    from gmmhmm import modelfile

    real_mkstemp = modelfile.tempfile.mkstemp

    def mkstemp(*args, prefix="", **kwargs):
        if prefix.startswith(name + ".tmp"):
            raise OSError(28, "No space left on device")
        return real_mkstemp(*args, prefix=prefix, **kwargs)

    monkeypatch.setattr(modelfile.tempfile, "mkstemp", mkstemp)


def has_empty_mel_filter(rate, n_fft, n_mels, low, high, warp=1.0, vtln_low=100.0, vtln_high=None) -> bool:
    """Kaldi's MelBanks loop, brute force: does a mel filter have no FFT bin whose mel is strictly
    between its edges?"""
    import numpy as np

    from gmmhmm.features import hz_to_mel, mel_band_edges_hz, vtln_warp_freq

    edges = mel_band_edges_hz(n_mels, low, high)
    if warp != 1.0:
        edges = vtln_warp_freq(edges, warp, vtln_low, high - 500.0 if vtln_high is None else vtln_high, low, high)
    edges = hz_to_mel(edges)
    bins = hz_to_mel(np.arange(n_fft // 2 + 1) * rate / n_fft)
    return any(not any(edges[m] < b < edges[m + 2] for b in bins) for m in range(n_mels))
