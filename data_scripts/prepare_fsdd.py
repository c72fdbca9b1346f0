#!/usr/bin/env python
"""Prepare the Free Spoken Digit Dataset as Kaldi-style lists.

From a local FSDD folder (default ``../shared/data/fsdd`` or
``$GMMHMM_FSDD_DIR``) write, for ``all`` and for each official split
(``train``: takes 5-49, ``test``: takes 0-4)::

    OUT/<set>/wav.scp   utt_id /abs/path/to/file.wav
    OUT/<set>/text      utt_id word          (zero .. nine)
    OUT/<set>/utt2spk   utt_id speaker       (from the name {digit}_{speaker}_{index}.wav)
    OUT/<set>/spk2utt   speaker utt_id ...

a Kaldi data directory each (:class:`gmmhmm.data.DataDir`; utterance ids
``{speaker}_{digit}_{index}`` start with the speaker, as Kaldi wants).

``--download`` first fetches the public v1.0.9 release archive and extracts
its recordings into ``--fsdd-dir`` (needs network access; fails with a clear
message otherwise).

Usage::

    python data_scripts/prepare_fsdd.py [--fsdd-dir DIR] [--out data/fsdd] [--download]
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from gmmhmm.data import DataDir  # noqa: E402
from gmmhmm.datasets import FSDD_NAME, Utterance, default_fsdd_dir, list_fsdd, official_split  # noqa: E402
from gmmhmm.errors import GmmhmmError  # noqa: E402
from gmmhmm.data import DIGIT_WORDS  # noqa: E402

logger = logging.getLogger("prepare_fsdd")

RELEASE = "v1.0.9"
RELEASE_URL = f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/{RELEASE}.zip"
# Members we take from the archive: <top>/recordings/<digit>_<speaker>_<index>.wav, nothing else.
_MEMBER = re.compile(r"^[^/]+/recordings/(?P<name>[^/]+)$")


class DownloadError(GmmhmmError):
    """The release archive could not be fetched or is not an FSDD archive."""


def download(url: str, dest: Path, timeout_s: float = 30.0) -> Path:
    """Fetch ``url`` to the file ``dest``; DownloadError when offline or refused."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r, open(dest, "wb") as f:
            shutil.copyfileobj(r, f)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DownloadError(
            f"cannot download {url} ({exc}); this machine may be offline. Download the "
            "archive elsewhere and pass it with --archive, or point --fsdd-dir at a copy"
        ) from exc
    return dest


def extract_recordings(archive: Path, fsdd_dir: Path) -> int:
    """Copy the recordings of an FSDD release zip into ``fsdd_dir/recordings``.

    Only ``*/recordings/{digit}_{speaker}_{index}.wav`` members are written,
    under their base name, so a hostile archive cannot write elsewhere.
    Returns the number of files extracted.
    """
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DownloadError(f"{archive}: not a zip archive ({exc})") from exc
    out = fsdd_dir / "recordings"
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    with zf:
        for info in zf.infolist():
            m = _MEMBER.match(info.filename)
            if info.is_dir() or m is None or not FSDD_NAME.match(m["name"]):
                continue
            with zf.open(info) as src, open(out / m["name"], "wb") as dst:
                shutil.copyfileobj(src, dst)
            n += 1
    if n == 0:
        raise DownloadError(f"{archive}: holds no FSDD recordings (*/recordings/<digit>_<speaker>_<n>.wav)")
    return n


def write_lists(utts: list[Utterance], folder: Path) -> None:
    """The data directory of ``utts`` (wav.scp, text, utt2spk, spk2utt, sorted by utterance id)."""
    DataDir({u.utt_id: str(u.path.resolve()) for u in utts},
            {u.utt_id: [DIGIT_WORDS[int(u.digit)]] for u in utts},
            {u.utt_id: u.speaker for u in utts}).write(folder)


def prepare(fsdd_dir: Path, out: Path) -> dict[str, int]:
    """Write the lists of every set; returns the number of utterances per set."""
    utts = list_fsdd(fsdd_dir)
    train, test = official_split(utts)
    sets = {"all": utts, "train": train, "test": test}
    for name, us in sets.items():
        write_lists(us, out / name)
    return {name: len(us) for name, us in sets.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fsdd-dir", type=Path, default=None,
                   help="FSDD folder (default: $GMMHMM_FSDD_DIR or ../shared/data/fsdd)")
    p.add_argument("--out", type=Path, default=Path("data/fsdd"), help="where to write the lists")
    p.add_argument("--download", action="store_true",
                   help=f"fetch the {RELEASE} release into --fsdd-dir first (needs network)")
    p.add_argument("--archive", type=Path, default=None,
                   help="use this local release zip instead of downloading")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    fsdd_dir = args.fsdd_dir or default_fsdd_dir()
    try:
        if args.download or args.archive:
            with tempfile.TemporaryDirectory() as tmp:
                archive = args.archive or download(RELEASE_URL, Path(tmp) / f"fsdd-{RELEASE}.zip")
                n = extract_recordings(archive, fsdd_dir)
            logger.info("extracted %d recordings into %s", n, fsdd_dir / "recordings")
        counts = prepare(fsdd_dir, args.out)
    except GmmhmmError as exc:
        print(f"prepare_fsdd: error: {exc}", file=sys.stderr)
        return 1
    print(" ".join(f"{k}={v}" for k, v in counts.items()), f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
