"""What every recipe script shares: one line, no traceback, for the errors a user causes."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
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
