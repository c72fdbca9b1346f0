"""Connected-digit test utterances built from FSDD test takes.

Each utterance joins 3 to 7 takes of one speaker with short gaps of
low-level Gaussian noise (so silence detection cannot find the words by
energy alone). Generation is deterministic given the seed. Utterances are
returned in memory; the command line writes WAV files and a transcript
(``utt_id word word ...``) to an output folder, never into the repository::

    python data_scripts/connected_digits.py --out /tmp/connected --n 200
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gmmhmm.datasets import default_fsdd_dir, list_fsdd, official_split  # noqa: E402
from gmmhmm.errors import InvalidParameterError  # noqa: E402
from gmmhmm.features import load_audio  # noqa: E402
from gmmhmm.graphs import DIGIT_WORDS  # noqa: E402


@dataclass
class ConnectedUtterance:
    utt_id: str
    signal: np.ndarray
    sample_rate_hz: int
    words: list[str]
    sources: list[str]


def make_connected_digits(utts, n_utterances: int = 200, sample_rate_hz: int = 8000, seed: int = 0,
                          min_digits: int = 3, max_digits: int = 7, gap_ms: tuple[float, float] = (50.0, 250.0),
                          noise_level: float = 1e-3) -> list[ConnectedUtterance]:
    """Join randomly chosen takes of one speaker (``gmmhmm.datasets.Utterance`` list).

    Parameters
    ----------
    utts : FSDD utterances to draw from (typically the official test takes)
    n_utterances : how many connected utterances
    seed : seed of every random choice
    min_digits, max_digits : inclusive range of digits per utterance
    gap_ms : range of the noise gap put before, between and after the takes
    noise_level : standard deviation of the gap noise (full scale = 1)
    """
    if not 1 <= min_digits <= max_digits:
        raise InvalidParameterError(f"need 1 <= min_digits <= max_digits, got {min_digits}, {max_digits}")
    rng = np.random.default_rng(seed)
    by_speaker: dict[str, list] = {}
    for u in utts:
        by_speaker.setdefault(u.speaker, []).append(u)
    speakers = sorted(by_speaker)
    cache: dict[str, np.ndarray] = {}
    out = []
    for k in range(n_utterances):
        spk = speakers[rng.integers(len(speakers))]
        n = int(rng.integers(min_digits, max_digits + 1))
        takes = [by_speaker[spk][i] for i in rng.choice(len(by_speaker[spk]), size=n, replace=False)]
        parts = []
        for u in takes:
            key = str(u.path)
            if key not in cache:
                cache[key] = load_audio(u.path, sample_rate_hz)[0]
            gap = int(rng.uniform(*gap_ms) * sample_rate_hz / 1000)
            parts += [noise_level * rng.normal(size=gap), cache[key]]
        parts.append(noise_level * rng.normal(size=int(rng.uniform(*gap_ms) * sample_rate_hz / 1000)))
        words = [DIGIT_WORDS[int(u.digit)] for u in takes]
        out.append(ConnectedUtterance(f"{spk}_conn{k:04d}", np.concatenate(parts), sample_rate_hz, words,
                                      [str(u.path) for u in takes]))
    return out


def main(argv: list[str] | None = None) -> None:
    import soundfile

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fsdd", default=str(default_fsdd_dir()))
    ap.add_argument("--out", required=True, help="output folder (outside the repository)")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    _, test = official_split(list_fsdd(args.fsdd))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for u in make_connected_digits(test, args.n, seed=args.seed):
        soundfile.write(out / f"{u.utt_id}.wav", u.signal, u.sample_rate_hz, subtype="PCM_16")
        lines.append(f"{u.utt_id} {' '.join(u.words)}\n")
    (out / "text").write_text("".join(lines))
    print(f"wrote {len(lines)} utterances to {out}")


if __name__ == "__main__":
    main()
