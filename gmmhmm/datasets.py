"""The Free Spoken Digit Dataset (FSDD): listing, parsing and splits.

Recordings are named ``{digit}_{speaker}_{index}.wav`` (e.g.
``7_jackson_32.wav``). The official split puts takes 0-4 of every digit and
speaker in the test set and takes 5-49 in the training set. The development
split divides that training set only: takes 5-9 are the dev set, takes 10-49
train the dev models, so settings can be chosen without the test takes;
leave-one-speaker-out (LOSO) folds test on one speaker and train on the rest.
The speaker of a recording is the one its name gives (:func:`utt2spk`).

Nothing here reads audio: these are plain functions over file names.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidParameterError

#: File name pattern of an FSDD recording.
FSDD_NAME = re.compile(r"^(?P<digit>[0-9])_(?P<speaker>[A-Za-z0-9-]+)_(?P<index>[0-9]+)\.wav$")

#: Takes with an index below this are the official test set.
OFFICIAL_TEST_TAKES = 5

#: The first this many official training takes (5-9) are the development set.
DEV_TAKES = 5

#: Environment variable naming the FSDD folder.
FSDD_ENV = "GMMHMM_FSDD_DIR"

_REPO_ROOT = Path(__file__).resolve().parents[1]


class DatasetError(InvalidParameterError):
    """The dataset folder is missing, empty or holds no recognisable files."""


@dataclass(frozen=True)
class Utterance:
    """One FSDD recording.

    Attributes
    ----------
    path : Path
        The WAV file.
    digit : str
        The spoken word's label, ``'0'`` .. ``'9'``.
    speaker : str
    index : int
        Take number of this digit by this speaker.
    """

    path: Path
    digit: str
    speaker: str
    index: int

    @property
    def utt_id(self) -> str:
        """Kaldi-style utterance id, speaker first so ids sort by speaker."""
        return f"{self.speaker}_{self.digit}_{self.index}"


def default_fsdd_dir() -> Path:
    """``$GMMHMM_FSDD_DIR``, else ``../shared/data/fsdd`` beside the repository."""
    env = os.environ.get(FSDD_ENV)
    return Path(env) if env else _REPO_ROOT.parent / "shared" / "data" / "fsdd"


def parse_name(path: str | os.PathLike) -> Utterance | None:
    """Parse an FSDD file name; None if it does not follow the pattern."""
    p = Path(path)
    m = FSDD_NAME.match(p.name)
    if m is None:
        return None
    return Utterance(p, m["digit"], m["speaker"], int(m["index"]))


def list_fsdd(fsdd_dir: str | os.PathLike | None = None) -> list[Utterance]:
    """Every recording of an FSDD folder, sorted by speaker, digit and take.

    Parameters
    ----------
    fsdd_dir : path, optional
        The dataset root (holding ``recordings/``) or the recordings folder
        itself. Defaults to :func:`default_fsdd_dir`.

    Raises
    ------
    DatasetError
        The folder does not exist or holds no ``{digit}_{speaker}_{index}.wav`` file.
    """
    root = Path(fsdd_dir) if fsdd_dir is not None else default_fsdd_dir()
    if not root.is_dir():
        raise DatasetError(
            f"FSDD folder {root} does not exist; pass its path, set ${FSDD_ENV}, "
            "or run data_scripts/prepare_fsdd.py --download"
        )
    folder = root / "recordings" if (root / "recordings").is_dir() else root
    utts = [u for u in map(parse_name, folder.iterdir()) if u is not None]
    if not utts:
        raise DatasetError(f"no FSDD recordings ({{digit}}_{{speaker}}_{{index}}.wav) in {folder}")
    return sorted(utts, key=lambda u: (u.speaker, u.digit, u.index))


def official_split(utts: list[Utterance]) -> tuple[list[Utterance], list[Utterance]]:
    """(train, test): takes 5-49 train, takes 0-4 test."""
    train = [u for u in utts if u.index >= OFFICIAL_TEST_TAKES]
    test = [u for u in utts if u.index < OFFICIAL_TEST_TAKES]
    return train, test


def dev_split(utts: list[Utterance]) -> tuple[list[Utterance], list[Utterance]]:
    """(train, dev) inside the official training set: takes 10-49 train, takes 5-9 dev.

    The official test takes (0-4) are in neither part, so hyperparameters
    tuned on ``dev`` never see the test set; ``train + dev`` is the official
    training set.

    Parameters
    ----------
    utts : list of Utterance
        Any FSDD listing (e.g. :func:`list_fsdd`); test takes are dropped.

    Returns
    -------
    train, dev : list of Utterance
        In the order of ``utts``.

    Raises
    ------
    DatasetError
        No take falls in 5-9 or none in 10-49 (e.g. a folder of test takes only).
    """
    official_train, _ = official_split(utts)
    first_train = OFFICIAL_TEST_TAKES + DEV_TAKES
    train = [u for u in official_train if u.index >= first_train]
    dev = [u for u in official_train if u.index < first_train]
    if not train or not dev:
        raise DatasetError(
            f"dev split needs takes {OFFICIAL_TEST_TAKES}-{first_train - 1} (dev) and "
            f"{first_train}-49 (train); got {len(dev)} dev and {len(train)} training file(s)"
        )
    return train, dev


def speakers(utts: list[Utterance]) -> list[str]:
    """Sorted distinct speakers."""
    return sorted({u.speaker for u in utts})


def loso_folds(utts: list[Utterance]) -> list[tuple[str, list[Utterance], list[Utterance]]]:
    """Leave-one-speaker-out folds: ``(held_out_speaker, train, test)`` per speaker.

    Raises
    ------
    DatasetError
        Fewer than two speakers (no fold would have training data).
    """
    spk = speakers(utts)
    if len(spk) < 2:
        raise DatasetError(f"leave-one-speaker-out needs at least two speakers, got {spk}")
    return [
        (s, [u for u in utts if u.speaker != s], [u for u in utts if u.speaker == s])
        for s in spk
    ]


def split(utts: list[Utterance], name: str) -> list[tuple[str, list[Utterance], list[Utterance]]]:
    """Folds ``(name, train, evaluation)`` of a named split: ``'official'`` or ``'dev'``
    (one fold each, see :func:`official_split` and :func:`dev_split`) or ``'loso'``."""
    if name == "dev":
        return [("dev", *dev_split(utts))]
    if name == "official":
        train, test = official_split(utts)
        if not train or not test:
            raise DatasetError(
                f"official split needs takes 0-4 and 5-49; got {len(train)} training "
                f"and {len(test)} test file(s)"
            )
        return [("official", train, test)]
    if name == "loso":
        return loso_folds(utts)
    raise InvalidParameterError(f"split must be 'official', 'dev' or 'loso', got {name!r}")


def utt2spk(utts: Iterable[Utterance], prefix: str = "") -> dict[str, str]:
    """FSDD's utt2spk map: ``str(path)`` -> ``prefix + speaker``, the speaker from the file name.

    The keys are those of :func:`gmmhmm.features.extract_many`'s result.
    ``prefix`` keeps the statistics of two parts of a split apart, as Kaldi
    keeps them per data dir: ``{**utt2spk(train, "train/"), **utt2spk(test, "test/")}``
    gives a test speaker statistics from its test takes only.
    """
    return {str(u.path): prefix + u.speaker for u in utts}
