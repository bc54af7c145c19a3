"""Whether the user asked to see everything (`lara --verbose`, or `LARA_LOG_LEVEL=DEBUG`).

An environment variable rather than a flag passed down, so that spawned worker processes (the
evaluator's and the collector's simulators) inherit the choice without every layer forwarding it.
Quiet mode hides third-party output a user cannot act on (LIBERO's "[info] using task orders").
"""

from __future__ import annotations

import os

VERBOSE_ENV = "LARA_VERBOSE"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0") or os.environ.get("LARA_LOG_LEVEL") == "DEBUG"


def set_verbose() -> None:
    """This process and the workers it spawns from now on are verbose."""
    os.environ[VERBOSE_ENV] = "1"
