"""Interrupted training: checkpoints after every EM iteration and exact resumption."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from gmmhmm import GMMHMM, GaussianHMM, GaussianMixture, checkpoint, modelfile
from gmmhmm.classifier import HMMClassifier
from gmmhmm.errors import InvalidInputError, InvalidParameterError, ModelFileError

REPO = Path(__file__).resolve().parents[1]


def _data(seed: int = 0) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(0, 1, (150, 3)), rng.normal(4, 1, (150, 3)), rng.normal(-3, 0.5, (100, 3))])
    return X, [120, 180, 100]


def _assert_same(a, b) -> None:
    assert type(a) is type(b)
    for name in type(a)._saved_attributes:
        va, vb = getattr(a, name, None), getattr(b, name, None)
        if isinstance(va, np.ndarray):
            np.testing.assert_array_equal(va, vb, err_msg=name)
        else:
            assert va == vb, name


MODELS = {
    "gmm": (lambda: GaussianMixture(3, covariance_type="full", random_state=3, max_iter=25, tol=1e-9), False),
    "ghmm": (lambda: GaussianHMM(3, random_state=3, n_iter=12, tol=1e-9), True),
    "gmmhmm": (lambda: GMMHMM(2, n_mix=2, random_state=3, n_iter=12, tol=1e-9), True),
}


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_checkpointed_fit_equals_models_own_fit(kind, tmp_path):
    make, takes_lengths = MODELS[kind]
    X, lengths = _data()
    ref = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref.fit(X, lengths) if takes_lengths else ref.fit(X)
    ours = checkpoint.fit(make(), X, lengths if takes_lengths else None, checkpoint_dir=tmp_path)
    _assert_same(ref, ours)
    if hasattr(ref, "n_iter_"):
        assert (ours.n_iter_, ours.converged_, ours.lower_bound_) == (ref.n_iter_, ref.converged_, ref.lower_bound_)
    else:
        assert ours.monitor_.iter == ref.monitor_.iter and list(ours.monitor_.history) == list(ref.monitor_.history)
    # the last checkpoint holds the final model
    saved, state = checkpoint.load_checkpoint(checkpoint.checkpoint_path(tmp_path))
    _assert_same(saved, ours)
    assert state["iteration"] == len(state["history"])


class _Stop(Exception):
    pass


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("stop_after", [0, 1, 4])
def test_resume_after_exception_equals_uninterrupted(kind, stop_after, tmp_path):
    make, takes_lengths = MODELS[kind]
    X, lengths = _data(1)
    L = lengths if takes_lengths else None
    full = checkpoint.fit(make(), X, L, checkpoint_dir=tmp_path / "full")

    def stop(iteration, _value):
        if iteration >= stop_after:
            raise _Stop

    if stop_after == 0:  # killed right after initialisation: only iteration 0 is on disk
        with pytest.raises(_Stop):
            checkpoint.fit(make(), X, L, checkpoint_dir=tmp_path / "cut", callback=stop, n_iter=1)
    else:
        with pytest.raises(_Stop):
            checkpoint.fit(make(), X, L, checkpoint_dir=tmp_path / "cut", callback=stop)
    resumed = checkpoint.resume(make(), X, L, checkpoint_dir=tmp_path / "cut")
    _assert_same(full, resumed)


def test_resume_refuses_other_data_or_parameters(tmp_path):
    X, lengths = _data()
    checkpoint.fit(GaussianHMM(2, random_state=0, n_iter=2), X, lengths, checkpoint_dir=tmp_path)
    with pytest.raises(InvalidParameterError, match="different data"):
        checkpoint.resume(GaussianHMM(2, random_state=0, n_iter=2), X + 1, lengths, checkpoint_dir=tmp_path)
    with pytest.raises(InvalidParameterError, match="other parameters"):
        checkpoint.resume(GaussianHMM(2, covariance_type="full", random_state=0), X, lengths,
                          checkpoint_dir=tmp_path)
    with pytest.raises(InvalidParameterError, match="not a GaussianMixture"):
        checkpoint.resume(GaussianMixture(2), X, checkpoint_dir=tmp_path)
    with pytest.raises(InvalidParameterError, match="no checkpoint"):
        checkpoint.resume(GaussianHMM(2), X, lengths, checkpoint_dir=tmp_path / "none")
    # raising the iteration limit on resume is allowed and continues the run
    more = checkpoint.resume(GaussianHMM(2, random_state=0, n_iter=5, tol=0.0), X, lengths, checkpoint_dir=tmp_path)
    full = checkpoint.fit(GaussianHMM(2, random_state=0, n_iter=5, tol=0.0), X, lengths,
                          checkpoint_dir=tmp_path / "full")
    assert more.monitor_.iter == full.monitor_.iter > 2
    assert list(more.monitor_.history) == list(full.monitor_.history)
    _assert_same(full, more)


def test_bad_arguments(tmp_path):
    X, lengths = _data()
    with pytest.raises(InvalidParameterError, match="takes no lengths"):
        checkpoint.fit(GaussianMixture(2), X, lengths, checkpoint_dir=tmp_path)
    with pytest.raises(InvalidParameterError, match="n_init"):
        checkpoint.fit(GaussianMixture(2, n_init=3), X, checkpoint_dir=tmp_path)
    with pytest.raises(InvalidInputError, match="sample_weight"):
        checkpoint.fit(GaussianMixture(2), X, checkpoint_dir=tmp_path, sample_weight=-np.ones(len(X)))
    with pytest.raises(InvalidParameterError, match="no accumulate"):
        checkpoint.fit(object(), X, checkpoint_dir=tmp_path)
    with pytest.raises(InvalidParameterError, match="tol"):
        checkpoint.fit(GaussianMixture(2), X, checkpoint_dir=tmp_path, tol=float("nan"))
    # a plain model file is not a checkpoint
    model = GaussianMixture(2, random_state=0).fit(X)
    modelfile.save(model, tmp_path / "checkpoint.npz")
    with pytest.raises(ModelFileError, match="not a training checkpoint"):
        checkpoint.fit(GaussianMixture(2), X, checkpoint_dir=tmp_path, resume=True)


_TRAINER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from gmmhmm import GMMHMM, checkpoint
    data = np.load(sys.argv[1])
    model = GMMHMM(2, n_mix=2, random_state=3, n_iter=12, tol=1e-9)
    checkpoint.fit(model, data["X"], data["lengths"], checkpoint_dir=sys.argv[2],
                   callback=lambda it, value: time.sleep(0.25))
    print("finished")
""")


def test_resume_after_sigkill_of_a_real_run(tmp_path):
    """Kill a training process after its 3rd checkpoint; resuming gives the uninterrupted model."""
    X, lengths = _data(2)
    np.savez(tmp_path / "data.npz", X=X, lengths=np.asarray(lengths))
    script = tmp_path / "train.py"
    script.write_text(_TRAINER)
    ckdir = tmp_path / "ckpt"
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "data.npz"), str(ckdir)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    path = checkpoint.checkpoint_path(ckdir)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if path.is_file() and modelfile.load_metadata(path)["iteration"] >= 3:
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        else:
            pytest.fail("no 3rd checkpoint within 120 s")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    reached = modelfile.load_metadata(path)["iteration"]
    assert 3 <= reached < 12

    resumed = checkpoint.resume(GMMHMM(2, n_mix=2, random_state=3, n_iter=12, tol=1e-9), X, lengths,
                                checkpoint_dir=ckdir)
    full = checkpoint.fit(GMMHMM(2, n_mix=2, random_state=3, n_iter=12, tol=1e-9), X, lengths,
                          checkpoint_dir=tmp_path / "full")
    _assert_same(full, resumed)
    assert list(resumed.monitor_.history) == list(full.monitor_.history)
    assert sorted(p.name for p in ckdir.iterdir() if not p.name.startswith("checkpoint.npz.tmp")) == ["checkpoint.npz"]


def test_checkpointed_fit_with_sample_weight_equals_fit(tmp_path):
    X, _ = _data(4)
    w = np.random.default_rng(0).uniform(0.1, 2.0, len(X))
    make = MODELS["gmm"][0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = make().fit(X, sample_weight=w)
    ours = checkpoint.fit(make(), X, checkpoint_dir=tmp_path, sample_weight=w)
    _assert_same(ref, ours)


def _crash_after(monkeypatch, n_saves: int) -> None:
    """Make the n-th checkpoint write the last one: the run dies right after it (as if killed)."""
    real, calls = checkpoint.save_checkpoint, {"n": 0}

    def save_then_maybe_die(*args, **kwargs):
        real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == n_saves:
            raise _Stop

    monkeypatch.setattr(checkpoint, "save_checkpoint", save_then_maybe_die)


def _sequences():
    rng = np.random.default_rng(5)
    seqs = [rng.normal(label * 2.0, 1.0, (int(rng.integers(15, 25)), 3)) for label in (0, 1) for _ in range(4)]
    return seqs, [0] * 4 + [1] * 4


@pytest.mark.parametrize("crash_at", [3, 9])
def test_classifier_resume_equals_uninterrupted(crash_at, tmp_path, monkeypatch):
    seqs, y = _sequences()
    kw = dict(n_states=3, mix_schedule=(1, 2), n_iter=(3, 3), tol=0.0, random_state=0)
    ref = HMMClassifier(**kw).fit(seqs, y)
    _crash_after(monkeypatch, crash_at)
    with pytest.raises(_Stop):
        HMMClassifier(**kw).fit(seqs, y, checkpoint_dir=tmp_path)
    monkeypatch.undo()
    resumed = HMMClassifier(**kw).fit(seqs, y, checkpoint_dir=tmp_path, resume=True)
    assert len(resumed.models_) == len(ref.models_) == 2
    for a, b in zip(ref.models_, resumed.models_):
        _assert_same(a, b)
    with pytest.raises(InvalidParameterError, match="checkpoint_dir"):
        HMMClassifier(**kw).fit(seqs, y, resume=True)


def test_cli_train_resume(tmp_path, monkeypatch):
    import soundfile as sf

    from gmmhmm.cli import main

    audio = tmp_path / "audio"
    audio.mkdir()
    rng = np.random.default_rng(0)
    t = np.arange(4000) / 8000
    for digit, freq in ((1, 440), (2, 880)):
        for take in range(3):
            sf.write(audio / f"{digit}_s_{take}.wav", 0.3 * np.sin(2 * np.pi * freq * t)
                     + 0.01 * rng.standard_normal(t.size), 8000)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[features]\nsample_rate_hz = 8000\n[model]\nn_states = 2\nmix_schedule = [1, 2]\n"
                   "n_iter = [2, 2]\ntol = 0.0\nn_jobs = 1\n[data]\nn_jobs = 1\n")
    base = ["train", str(audio), "--config", str(cfg)]
    assert main(base + ["-o", str(tmp_path / "plain.npz")]) == 0
    _crash_after(monkeypatch, 4)
    with pytest.raises(_Stop):
        main(base + ["-o", str(tmp_path / "resumed.npz"), "--checkpoint-dir", str(tmp_path / "ck")])
    monkeypatch.undo()
    assert not (tmp_path / "resumed.npz").exists()
    assert main(base + ["-o", str(tmp_path / "resumed.npz"), "--checkpoint-dir", str(tmp_path / "ck"),
                        "--resume"]) == 0
    plain, resumed = modelfile.load(tmp_path / "plain.npz"), modelfile.load(tmp_path / "resumed.npz")
    for a, b in zip(plain.models_, resumed.models_):
        _assert_same(a, b)


# ----------------------------------------------------------------------------
# Corpus training (gmmhmm.parallel.fit_corpus)
# ----------------------------------------------------------------------------

CORPUS_MODELS = {
    "gmm": lambda: GaussianMixture(3, covariance_type="diag", random_state=3, max_iter=1),
    "gmmhmm": lambda: GMMHMM(2, n_mix=2, random_state=3, n_iter=1),
}


def _corpus(tmp_path, seed=5, name="corpus"):
    from gmmhmm.corpus import Corpus

    X, _ = _data(seed)
    rows = [(f"u{i:02d}", x) for i, x in enumerate(np.split(X, range(40, len(X), 40)))]
    return Corpus.create(tmp_path / name, rows, frames_per_shard=120)


def _fit_corpus(model, corpus, ckdir, **kw):
    from gmmhmm.parallel import fit_corpus

    return fit_corpus(model, corpus, n_iter=kw.pop("n_iter", 6), tol=kw.pop("tol", 0.0), init_frames=200,
                      checkpoint_dir=ckdir, **kw)


@pytest.mark.parametrize("kind", sorted(CORPUS_MODELS))
@pytest.mark.parametrize("crash_at", [1, 4])  # 1: only the initialisation is on disk
def test_fit_corpus_resume_equals_uninterrupted(kind, crash_at, tmp_path, monkeypatch):
    corpus = _corpus(tmp_path)
    make = CORPUS_MODELS[kind]
    plain = _fit_corpus(make(), corpus, None)
    full = _fit_corpus(make(), corpus, tmp_path / "full")
    _assert_same(plain, full)  # checkpointing does not change the fit
    _crash_after(monkeypatch, crash_at)
    with pytest.raises(_Stop):
        _fit_corpus(make(), corpus, tmp_path / "cut")
    monkeypatch.undo()
    assert modelfile.load_metadata(checkpoint.checkpoint_path(tmp_path / "cut"))["iteration"] == crash_at - 1
    resumed = _fit_corpus(make(), corpus, tmp_path / "cut", resume=True)
    _assert_same(full, resumed)
    assert resumed.corpus_log_likelihood_ == full.corpus_log_likelihood_
    assert len(full.corpus_log_likelihood_) == 6
    if hasattr(full, "lower_bound_"):
        assert (resumed.n_iter_, resumed.converged_, resumed.lower_bound_) == (
            full.n_iter_, full.converged_, full.lower_bound_)
    # resuming a finished run changes nothing; a higher limit carries on
    again = _fit_corpus(make(), corpus, tmp_path / "cut", resume=True)
    _assert_same(full, again)
    more = _fit_corpus(make(), corpus, tmp_path / "cut", resume=True, n_iter=8)
    assert more.corpus_log_likelihood_[:6] == full.corpus_log_likelihood_
    assert len(more.corpus_log_likelihood_) == 8


def test_fit_corpus_resume_refuses_other_corpus_model_or_settings(tmp_path):
    corpus = _corpus(tmp_path)
    _fit_corpus(GaussianMixture(3, random_state=0, max_iter=1), corpus, tmp_path / "ck", n_iter=2)
    with pytest.raises(InvalidParameterError, match="different data"):
        _fit_corpus(GaussianMixture(3, random_state=0, max_iter=1), _corpus(tmp_path, seed=6, name="other"),
                    tmp_path / "ck", resume=True)
    with pytest.raises(InvalidParameterError, match="other parameters"):
        _fit_corpus(GaussianMixture(4, random_state=0, max_iter=1), corpus, tmp_path / "ck", resume=True)
    with pytest.raises(InvalidParameterError, match="initialisation settings"):
        _fit_corpus(GaussianMixture(3, random_state=0, max_iter=1), corpus, tmp_path / "ck", resume=True,
                    init_iter=2)
    with pytest.raises(InvalidParameterError, match="checkpoint_dir"):
        _fit_corpus(GaussianMixture(3), corpus, None, resume=True)


def test_fit_corpus_resume_of_embedded_training(tmp_path, monkeypatch):
    from gmmhmm.corpus import Corpus
    from gmmhmm.graphs import EmbeddedTrainer

    from test_embedded import LEXICON, synthetic_corpus

    feats, texts, _, _ = synthetic_corpus(n_utts=24, seed=3)
    corpus = Corpus.create(tmp_path / "c", [(f"u{i}", x, t) for i, (x, t) in enumerate(zip(feats, texts))],
                           frames_per_shard=150)
    full = _fit_corpus(EmbeddedTrainer(LEXICON), corpus, tmp_path / "full", n_iter=4)
    _crash_after(monkeypatch, 3)
    with pytest.raises(_Stop):
        _fit_corpus(EmbeddedTrainer(LEXICON), corpus, tmp_path / "cut", n_iter=4)
    monkeypatch.undo()
    resumed = _fit_corpus(EmbeddedTrainer(LEXICON), corpus, tmp_path / "cut", n_iter=4, resume=True)
    _assert_same(full.model, resumed.model)
    assert resumed.corpus_log_likelihood_ == full.corpus_log_likelihood_
