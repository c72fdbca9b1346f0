"""What every recipe script shares: one line, no traceback, for the errors a user causes."""

from __future__ import annotations

import argparse
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import GmmhmmError


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


class Stages:
    """Kaldi-style ``--stage N`` / ``--stop-stage N``: run the named stages in range, timing each.

    ``stages(i, fn)`` prints ``stage i: name``, calls ``fn`` and records its
    wall time in :attr:`timings` when ``first <= i <= last``; otherwise it
    returns None without calling ``fn``.
    """

    def __init__(self, names: tuple[str, ...], first: int = 0, last: int | None = None) -> None:
        self.names, self.first = names, first
        self.last = len(names) - 1 if last is None else last
        self.timings: dict[str, float] = {}

    def __call__(self, i: int, fn: Callable[[], Any]) -> Any:
        if not self.first <= i <= self.last:
            return None
        print(f"stage {i}: {self.names[i]}", flush=True)
        t0 = time.perf_counter()
        result = fn()
        self.timings[self.names[i]] = time.perf_counter() - t0
        return result

    def summary(self) -> str:
        return "timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items())


def stage_parser(description: str, default_config: str, stages: tuple[str, ...]) -> argparse.ArgumentParser:
    """The options every staged recipe takes: ``--config``, ``--stage``, ``--stop-stage``, ``--out``,
    ``--set SECTION.KEY=VALUE`` (repeatable) and ``-v``; a recipe adds its own."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--config", default=default_config)
    ap.add_argument("--stage", type=int, default=0, help=f"first stage: {dict(enumerate(stages))}")
    ap.add_argument("--stop-stage", type=int, default=len(stages) - 1)
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: [output] dir)")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override a config setting (TOML value), e.g. --set 'training.mixtures=[1, 2]'")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap
