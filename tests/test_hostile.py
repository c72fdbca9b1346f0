"""Hostile but realistic inputs and faults (issue 16): devices as outputs, models that
would not load, endless text inputs, absurd sample rates, dead workers, tampered files
and checkpoints, odd numbers and text. Simple table-shaped cases live in
tests/test_bad_input.py; the ones here need set-up, processes or signals."""

from __future__ import annotations

import copy
import json
import os
import stat
import threading
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import tone

from gmmhmm import GaussianMixture, errors, modelfile
from gmmhmm.classifier import HMMClassifier

E = errors


@pytest.fixture(scope="module")
def gm():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GaussianMixture(2, random_state=0).fit(np.random.default_rng(0).normal(size=(60, 3)))


def raw_save(model, path, metadata=None, edit=None, text_edit=None):
    """Write ``model`` as modelfile.save does but without its checks (a tampered file);
    ``edit(header, arrays)`` may change the header and arrays first, ``text_edit`` the JSON text."""
    enc = modelfile._Encoder()
    root = enc.model(model, "")
    header = {"format": modelfile.FORMAT, "version": modelfile.FORMAT_VERSION, "model": root,
              "metadata": enc.value(metadata if metadata is not None else {}, "metadata")}
    arrays = dict(enc.arrays)
    if edit is not None:
        edit(header, arrays)
    text = json.dumps(header) if text_edit is None else text_edit(json.dumps(header))
    np.savez(path, __header__=np.frombuffer(text.encode(), dtype=np.uint8), **arrays)
    return path


# ---------------------------------------------------------------------------
# 1. an output naming a device, FIFO or link is written into, never replaced
# ---------------------------------------------------------------------------
def test_saving_to_a_link_to_dev_null_keeps_the_link_and_the_device(tmp_path, gm):
    link = tmp_path / "null"
    link.symlink_to(os.devnull)
    gm.save(link)
    assert link.is_symlink() and os.readlink(link) == os.devnull
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_saving_to_a_device_node_keeps_the_device(tmp_path, gm):
    node = tmp_path / "n"
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a /dev/null
    gm.save(node)
    modelfile.atomic_write_text(node, "hypotheses\n")
    assert stat.S_ISCHR(os.lstat(node).st_mode)


def test_writing_to_a_fifo_feeds_its_reader(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    modelfile.atomic_write_text(fifo, "a.wav\t1\n")
    reader.join(10)
    assert got == [b"a.wav\t1\n"] and stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_link_to_a_regular_file_keeps_pointing_at_the_new_contents(tmp_path):
    target = tmp_path / "real.txt"
    target.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    modelfile.atomic_write_text(link, "new")
    assert link.is_symlink() and target.read_text() == "new"


def test_a_new_file_gets_the_permissions_open_would_give_it(tmp_path):
    # the umask decides, as for any file a program creates: 0600 under umask 077, not 0644
    old = os.umask(0o077)
    try:
        modelfile.atomic_write_text(tmp_path / "private.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "private.txt").stat().st_mode & 0o777 == 0o600
    (tmp_path / "shared.txt").write_text("old")
    (tmp_path / "shared.txt").chmod(0o664)
    modelfile.atomic_write_text(tmp_path / "shared.txt", "new")  # a replaced file keeps its own
    assert (tmp_path / "shared.txt").stat().st_mode & 0o777 == 0o664


def test_a_directory_as_output_is_refused_and_kept(tmp_path, gm):
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError):
        gm.save(tmp_path / "d")
    assert (tmp_path / "d").is_dir() and not list(tmp_path.glob("d.tmp*"))


# ---------------------------------------------------------------------------
# 2. a model is validated before it is saved
# ---------------------------------------------------------------------------
def test_save_refuses_a_model_its_loader_would_refuse_and_keeps_the_old_file(tmp_path, gm):
    path = tmp_path / "m.npz"
    gm.save(path)
    before = path.read_bytes()
    bad = copy.deepcopy(gm)
    bad.weights_ = np.array([-0.5, 1.5])
    with pytest.raises(E.ModelFileError, match="not written.*weights_"):
        bad.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


def test_save_refuses_a_classifier_holding_a_nan_model(tmp_path):
    rng = np.random.default_rng(1)
    clf = HMMClassifier(n_states=2, mix_schedule=(1,), n_iter=1).fit(
        [rng.normal(size=(20, 2)) for _ in range(4)], ["a", "a", "b", "b"])
    clf.models_[1].covars_ = np.full_like(clf.models_[1].covars_, np.nan)
    with pytest.raises(E.ModelFileError, match="not written.*NaN"):
        clf.save(tmp_path / "clf.npz")
    assert not (tmp_path / "clf.npz").exists()


# ---------------------------------------------------------------------------
# 6. every loadable class checks itself at load; decompression and nesting are bounded
# ---------------------------------------------------------------------------
def _npz_with_member(path: Path, name: str, npy_header: bytes, payload_chunks, compress: bool) -> Path:
    header = {"format": modelfile.FORMAT, "version": 1,
              "model": {"class": "GaussianMixture", "params": {}, "attributes": {}}}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as zf:
        with zf.open("__header__.npy", "w") as f:
            np.lib.format.write_array(f, np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))
        with zf.open(name, "w", force_zip64=True) as f:
            f.write(npy_header)
            for chunk in payload_chunks:
                f.write(chunk)
    return path


def _npy_header(shape) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_a_zip_bomb_is_refused_before_it_is_inflated(tmp_path):
    n = 160 * 2**20  # inflates 1000-fold
    zeros = bytes(2**20)
    path = _npz_with_member(tmp_path / "bomb.npz", "x.npy", _npy_header((n // 8,)), (zeros for _ in range(160)),
                            compress=True)
    assert path.stat().st_size < 2**20
    import tracemalloc

    tracemalloc.start()
    with pytest.raises(E.ModelFileError, match="inflate"):
        modelfile.load(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 32 * 2**20


def test_an_array_header_claiming_more_than_its_member_holds_is_refused(tmp_path):
    path = _npz_with_member(tmp_path / "liar.npz", "x.npy", _npy_header((10**12,)), [bytes(80)], compress=False)
    with pytest.raises(E.ModelFileError, match="claims"):
        modelfile.load(path)


def test_a_header_nested_500_deep_is_an_error_not_a_recursion_error(tmp_path, gm):
    nested = '{"t": "list", "items": [' * 500 + '{"t": "json", "v": 1}' + "]}" * 500
    path = raw_save(gm, tmp_path / "deep.npz", metadata={"x": "DEEP"},
                    text_edit=lambda text: text.replace('{"t": "json", "v": "DEEP"}', nested))
    for call in (modelfile.load, modelfile.describe, modelfile.load_metadata):
        with pytest.raises(E.ModelFileError, match="nested"):
            call(path)


# ---------------------------------------------------------------------------
# CLI set-up shared by items 3, 4, 7 and 9
# ---------------------------------------------------------------------------
RATE = 8000
TOML = """
[features]
sample_rate_hz = 8000
[model]
n_states = 2
mix_schedule = [1]
n_iter = [2]
"""


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    import soundfile as sf

    from gmmhmm.features import FeatureConfig, extract_features

    d = tmp_path_factory.mktemp("hostile_cli")
    audio = d / "audio"
    audio.mkdir()
    for digit, freq in ((1, 440), (2, 880)):
        for take in range(3):
            sf.write(audio / f"{digit}_synth_{take}.wav", tone(freq * (1 + 0.02 * take)), RATE)
    (d / "tiny.toml").write_text(TOML)
    config = FeatureConfig(sample_rate_hz=RATE)
    feats = {p: extract_features(p, config) for p in sorted(audio.glob("*.wav"))}
    clf = HMMClassifier(n_states=2, mix_schedule=(1,), n_iter=2).fit(list(feats.values()), [p.name[0] for p in feats])
    clf.save(d / "clf.npz", metadata={"feature_config": config.to_dict()})
    return d


def run_cli(argv, capsys):
    from gmmhmm.cli import main

    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_train_never_exits_0_with_a_model_its_loader_refuses(cli_env, tmp_path, capsys, monkeypatch):
    """A degenerate fit (NaN variances, as mix_schedule = [1, 128] on 3 takes once gave) is an error."""
    real_fit = HMMClassifier.fit

    def degenerate_fit(self, *args, **kwargs):
        real_fit(self, *args, **kwargs)
        self.models_[0].covars_ = np.full_like(self.models_[0].covars_, np.nan)
        return self

    monkeypatch.setattr(HMMClassifier, "fit", degenerate_fit)
    out = tmp_path / "m.npz"
    code, err = run_cli(["train", cli_env / "audio", "-o", out, "--config", cli_env / "tiny.toml"], capsys)
    assert code == 1 and "not written" in err and "NaN" in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


# ---------------------------------------------------------------------------
# 3. endless or huge text inputs
# ---------------------------------------------------------------------------
def test_a_fifo_without_a_writer_times_out_with_a_clear_error(cli_env, tmp_path, capsys, monkeypatch):
    import time

    from gmmhmm import _textio

    monkeypatch.setattr(_textio, "PIPE_TIMEOUT_S", 0.3)
    fifo = tmp_path / "hyp.fifo"
    os.mkfifo(fifo)
    result = []
    worker = threading.Thread(target=lambda: result.append(run_cli(["score", fifo, "--ref-from-fsdd-names"], capsys)))
    worker.start()
    worker.join(10)
    if worker.is_alive():  # blocked in open(): release it, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(10)
        pytest.fail("reading a FIFO without a writer blocked")
    code, err = result[0]
    assert code == 1 and "nothing arrived through the pipe" in err


def test_a_fifo_with_a_writer_is_read(tmp_path, capsys):
    fifo = tmp_path / "hyp.fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text("1_a_0.wav\t1\n2_a_0.wav\t1\n"))
    writer.start()
    code, err = run_cli(["score", fifo, "--ref-from-fsdd-names", "--json"], capsys)
    writer.join(10)
    assert code == 0, err


def test_text_inputs_over_the_size_cap_are_refused_unread(tmp_path, monkeypatch, capsys):
    from gmmhmm import _textio

    monkeypatch.setattr(_textio, "MAX_TEXT_BYTES", 1000)
    big = tmp_path / "hyp.txt"
    big.write_text("1_a_0.wav\t1\n" * 200)
    code, err = run_cli(["score", big, "--ref-from-fsdd-names"], capsys)
    assert code == 1 and "text inputs are limited to 1000" in err


def test_a_small_text_input_allocates_about_its_size(tmp_path):
    """Reading is bounded by the cap without allocating the cap: a 1 KB file once cost
    a 256 MiB buffer (tracemalloc's peak of every corpus write and open)."""
    import tracemalloc

    from gmmhmm._textio import read_text_input

    small = tmp_path / "labels.txt"
    small.write_text("a\t1\n" * 200)
    tracemalloc.start()
    try:
        text = read_text_input(small, "labels file")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert text == "a\t1\n" * 200 and peak < 1 << 20


def test_a_utf8_bom_does_not_change_the_first_key(tmp_path, capsys):
    hyp = tmp_path / "hyp.txt"
    ref = tmp_path / "ref.txt"
    hyp.write_text("a.wav\t1\nb.wav\t2\n")
    ref.write_bytes("\ufeffa.wav\t1\nb.wav\t2\n".encode())
    code, err = run_cli(["score", hyp, "--ref", ref], capsys)
    assert code == 0 and "no reference" not in err


# ---------------------------------------------------------------------------
# 7. OS errors: one line, non-zero exit, output checked before the work
# ---------------------------------------------------------------------------
def test_disk_full_while_writing_is_one_line_and_keeps_the_old_output(cli_env, tmp_path, capsys, monkeypatch):
    import errno

    out = tmp_path / "feats.npz"
    out.write_bytes(b"old")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    code, err = run_cli(["features", cli_env / "audio", "-o", out, "--config", cli_env / "tiny.toml"], capsys)
    assert code == 1 and "No space left on device" in err and len(err.strip().splitlines()) == 1, err
    assert out.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["feats.npz"]


def test_a_read_only_output_folder_fails_before_training(cli_env, tmp_path, capsys, monkeypatch):
    import errno
    import tempfile

    import gmmhmm.features

    def never(*a, **k):
        raise AssertionError("the work started before the output was checked")

    def read_only(*a, **k):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(gmmhmm.features, "extract_many", never)
    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    code, err = run_cli(["train", cli_env / "audio", "-o", tmp_path / "m.npz", "--config", cli_env / "tiny.toml"],
                        capsys)
    assert code == 1 and "Read-only file system" in err, err


def test_an_unreadable_model_is_one_line(cli_env, capsys, monkeypatch):
    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(modelfile, "open", denied, raising=False)
    code, err = run_cli(["decode", cli_env / "clf.npz", cli_env / "audio"], capsys)
    assert code == 1 and "Permission denied" in err and len(err.strip().splitlines()) == 1, err


def test_any_os_error_in_a_command_is_one_line(cli_env, capsys, monkeypatch):
    import gmmhmm.cli

    def boom(args):
        raise OSError(5, "Input/output error", "/some/file")

    monkeypatch.setattr(gmmhmm.cli, "cmd_info", boom)
    parser = gmmhmm.cli.build_parser
    monkeypatch.setattr(gmmhmm.cli, "build_parser", lambda: _with_func(parser(), boom))
    code, err = run_cli(["info", cli_env / "clf.npz"], capsys)
    assert code == 1 and err.strip() == "gmmhmm info: error: /some/file: Input/output error"


def _with_func(parser, func):
    parser.set_defaults()
    for action in parser._subparsers._group_actions:
        action.choices["info"].set_defaults(func=func)
    return parser


# ---------------------------------------------------------------------------
# 4. absurd sample rates; every per-file failure stays per-file
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [1, 50, 999])
def test_an_implausibly_low_sample_rate_skips_that_file_only(cli_env, tmp_path, capsys, rate):
    import soundfile as sf

    bad = tmp_path / f"rate_{rate}.wav"
    sf.write(bad, tone(440, 0.5)[:4000], rate)
    good = cli_env / "audio" / "1_synth_0.wav"
    out = tmp_path / "hyp.txt"
    code, err = run_cli(["decode", cli_env / "clf.npz", bad, good, "-o", out], capsys)
    assert code == 1 and f"implausible sample rate {rate} Hz" in err
    assert [line.split("\t")[0] for line in out.read_text().splitlines()] == [str(good)]


def test_resampling_to_an_absurd_length_is_refused_before_allocating():
    from gmmhmm.features.audio import resample

    with pytest.raises(E.AudioError, match="split the recording"):
        resample(np.zeros(300_000), 1000, 1_000_000)


def test_a_memory_error_in_one_file_is_that_files_failure(cli_env, monkeypatch):
    from gmmhmm.features import FeatureConfig, extract_many, pipeline

    real = pipeline.extract_features

    def picky(path, config):
        if Path(path).name == "1_synth_0.wav":
            raise MemoryError
        return real(path, config)

    monkeypatch.setattr(pipeline, "extract_features", picky)
    files = sorted((cli_env / "audio").glob("*.wav"))
    feats, failures = extract_many(files, FeatureConfig(sample_rate_hz=RATE))
    assert [Path(p).name for p, _ in failures] == ["1_synth_0.wav"] and "out of memory" in failures[0][1]
    assert len(feats) == len(files) - 1


# ---------------------------------------------------------------------------
# 9. text: every skipped file reported once; non-UTF-8 names; stale alignments
# ---------------------------------------------------------------------------
def test_every_skipped_file_is_reported_once_with_its_path_once(cli_env, tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "broken.wav"
    bad.write_text("not audio\n")
    proc = subprocess.run([sys.executable, "-m", "gmmhmm.cli", "features", str(cli_env / "audio" / "1_synth_0.wav"),
                           str(bad), "-o", str(tmp_path / "f.npz"), "--config", str(cli_env / "tiny.toml")],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=300)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if "broken.wav" in line]
    assert len(lines) == 1 and lines[0].count(str(bad)) == 1, proc.stderr


def test_non_utf8_file_names_can_be_read_and_written(cli_env, tmp_path, capsys):
    raw = os.fsencode(tmp_path) + b"/caf\xe9_1_synth_0.wav"
    name = os.fsdecode(raw)  # what argv holds for such a name
    with open(raw, "wb") as f:
        f.write((cli_env / "audio" / "1_synth_0.wav").read_bytes())
    out = tmp_path / "hyp.txt"
    code, err = run_cli(["decode", cli_env / "clf.npz", name, "-o", out], capsys)
    assert code == 0, err
    code, err = run_cli(["features", name, "-o", tmp_path / "f.npz", "--config", cli_env / "tiny.toml"], capsys)
    assert code == 0, err
    from gmmhmm.features import load_features

    assert list(load_features(tmp_path / "f.npz")[0]) == [name]


# ---------------------------------------------------------------------------
# 5. a dead worker costs a retry, not the batch; workers die with their driver
# ---------------------------------------------------------------------------
def _die_on_negative(x):
    if x < 0:
        os.kill(os.getpid(), 9)
    return x * 2


def _die_once(args):
    x, flag = args
    if x == 3 and not os.path.exists(flag):
        Path(flag).touch()
        os.kill(os.getpid(), 9)
    return x * 2


def test_map_processes_retries_lost_items_and_reports_hopeless_ones(tmp_path):
    from gmmhmm._pool import WorkerDied, map_processes

    got = dict(map_processes(_die_once, [(x, str(tmp_path / "flag")) for x in range(6)], 2))
    assert got == {x: 2 * x for x in range(6)}
    got = dict(map_processes(_die_on_negative, [1, -1, 2, 3], 2, retries=1))
    assert {k: v for k, v in got.items() if k != 1} == {0: 2, 2: 4, 3: 6} and isinstance(got[1], WorkerDied)


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _pool_workers(driver: int) -> list[int]:
    """Worker processes of the driver's pool: children of its fork server, or spawned children."""
    workers = []
    for c in _children(driver):
        try:
            cmd = Path(f"/proc/{c}/cmdline").read_text()
            if "forkserver" in cmd:
                workers += _children(c)
            elif "spawn_main" in cmd:
                workers.append(c)
        except FileNotFoundError:
            continue
    return workers


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _start_features(cli_env, tmp_path, n_files=60, command="features", extra=("-j", "2")):
    import subprocess
    import sys
    import time

    many = tmp_path / "many"
    many.mkdir()
    src = sorted((cli_env / "audio").glob("*.wav"))
    for i in range(n_files):
        (many / f"{i % 2 + 1}_x_{i}.wav").write_bytes(src[i % len(src)].read_bytes())
    out = tmp_path / ("f.npz" if command == "features" else "m.npz")
    proc = subprocess.Popen([sys.executable, "-m", "gmmhmm.cli", command, str(many), *extra, "-o", str(out)],
                            cwd=Path(__file__).resolve().parents[1], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the pool's workers: children of the fork server (or spawned)
        workers = _pool_workers(proc.pid)
        if len(workers) >= 2:
            return proc, workers
        time.sleep(0.05)
    proc.kill()
    pytest.fail("no workers started")


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_killing_a_feature_worker_costs_a_retry_not_the_batch(cli_env, tmp_path):
    proc, workers = _start_features(cli_env, tmp_path, extra=("-j", "2", "--config", str(cli_env / "tiny.toml")))
    os.kill(workers[0], 9)
    _, err = proc.communicate(timeout=300)
    assert "Traceback" not in err and proc.returncode == 0, err
    from gmmhmm.features import load_features

    assert len(load_features(tmp_path / "f.npz")[0]) == 60


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_killing_a_training_worker_costs_a_retry_not_the_fit(cli_env, tmp_path):
    config = tmp_path / "jobs.toml"
    config.write_text(TOML.replace("n_iter = [2]", "n_iter = [8]") + "n_jobs = 2\n")
    proc, workers = _start_features(cli_env, tmp_path, n_files=40, command="train", extra=("--config", str(config)))
    os.kill(workers[0], 9)
    _, err = proc.communicate(timeout=300)
    assert "Traceback" not in err and proc.returncode == 0, err
    assert modelfile.load(tmp_path / "m.npz").classes_.tolist() == ["1", "2"]


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_workers_do_not_outlive_a_killed_driver(cli_env, tmp_path):
    import time

    proc, workers = _start_features(cli_env, tmp_path, extra=("-j", "2", "--config", str(cli_env / "tiny.toml")))
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [w for w in workers if _alive(w)]
    for w in left:
        os.kill(w, 9)
    assert not left, "workers outlived their driver"


# ---------------------------------------------------------------------------
# 8. checkpoints are bound to their run; corpus indexes list each shard once
# ---------------------------------------------------------------------------
@pytest.fixture()
def checkpointed(tmp_path):
    from gmmhmm import checkpoint

    X = np.random.default_rng(3).normal(size=(80, 2))
    checkpoint.fit(GaussianMixture(2, random_state=0, max_iter=3), X, checkpoint_dir=tmp_path)
    return X, tmp_path


def _rewrite(path, edit_meta=None, edit_model=None):
    """Re-save a checkpoint with edits: a well-formed file with valid CRCs."""
    model, meta = modelfile.load(path, with_metadata=True)
    if edit_meta:
        edit_meta(meta)
    if edit_model:
        edit_model(model)
    modelfile.save(model, path, metadata=meta)


@pytest.mark.parametrize("edit", ["iteration -5", "means", "history"])
def test_a_checkpoint_edited_after_writing_is_refused(checkpointed, edit):
    from gmmhmm import checkpoint

    X, d = checkpointed
    path = checkpoint.checkpoint_path(d)
    if edit == "iteration -5":
        _rewrite(path, edit_meta=lambda m: m.update(iteration=-5))
    elif edit == "means":
        _rewrite(path, edit_model=lambda g: setattr(g, "means_", g.means_ + 0.5))
    else:
        _rewrite(path, edit_meta=lambda m: m.update(history=[v + 1.0 for v in m["history"]]))
    with pytest.raises(E.ModelFileError, match="corrupt checkpoint|changed after it was written"):
        checkpoint.resume(GaussianMixture(2, random_state=0, max_iter=5), X, checkpoint_dir=d)


def test_resuming_a_gaussian_mixture_with_another_seed_is_refused(checkpointed):
    from gmmhmm import checkpoint

    X, d = checkpointed
    with pytest.raises(E.InvalidParameterError, match="random_state"):
        checkpoint.resume(GaussianMixture(2, random_state=1, max_iter=5), X, checkpoint_dir=d)
    checkpoint.resume(GaussianMixture(2, random_state=0, max_iter=5), X, checkpoint_dir=d)  # same seed: fine


def test_a_corpus_index_listing_a_shard_twice_is_refused(tmp_path):
    from gmmhmm.corpus import Corpus

    X = np.random.default_rng(0).normal(size=(60, 2))
    corpus = Corpus.create(tmp_path / "c", [("a", X[:30]), ("b", X[30:])], frames_per_shard=40)
    index_path = Path(corpus.index_path)
    index = json.loads(index_path.read_text())
    index["shards"] = index["shards"] + index["shards"][:1]
    index_path.write_text(json.dumps(index))
    with pytest.raises(E.ModelFileError, match="listed twice"):
        Corpus.open(index_path)


def test_stale_alignments_do_not_survive_a_rerun(cli_env, tmp_path, capsys):
    from gmmhmm.features import FeatureConfig, extract_features
    from gmmhmm.graphs import EmbeddedTrainer, Lexicon

    config = FeatureConfig(sample_rate_hz=RATE)
    files = [cli_env / "audio" / f"{d}_synth_0.wav" for d in (1, 2)]
    model = EmbeddedTrainer(Lexicon.digits(), feature_config=config.to_dict()).flat_start(
        [extract_features(f, config) for f in files])
    modelfile.save(model, tmp_path / "phones.npz")
    (tmp_path / "both.txt").write_text("1_synth_0 one\n2_synth_0 two\n")
    (tmp_path / "one.txt").write_text("1_synth_0 one\n")
    out = tmp_path / "ali"
    code, err = run_cli(["align", tmp_path / "phones.npz", tmp_path / "both.txt", *files, "-o", out], capsys)
    assert code == 0 and sorted(p.name for p in out.glob("*.TextGrid")) == ["1_synth_0.TextGrid", "2_synth_0.TextGrid"]
    code, err = run_cli(["align", tmp_path / "phones.npz", tmp_path / "one.txt", *files, "-o", out], capsys)
    assert code == 1 and sorted(p.name for p in out.glob("*.TextGrid")) == ["1_synth_0.TextGrid"]
    assert "2_synth_0" not in (out / "words.ctm").read_text()


def _always_die(x):
    os._exit(3)


def test_workers_that_never_finish_anything_fail_fast_with_a_hint():
    """Workers that die before finishing any item (e.g. a script without a __main__ guard,
    re-imported by spawned workers) end in one clear error, not 3 attempts per item."""
    import time

    from gmmhmm._pool import map_processes
    from gmmhmm.errors import WorkerFailedError

    start = time.monotonic()
    with pytest.raises(WorkerFailedError, match="__main__"):
        list(map_processes(_always_die, list(range(40)), 2))
    assert time.monotonic() - start < 60  # a few pools, not 40 x 3 of them
