"""Task functions for tests/envs/test_workers.py: importable by spawned workers (top level)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from lara.utils.errors import LaraUserError


def square(unit: tuple[str, int]) -> int:
    """Records each attempt as a file, then squares."""
    folder, x = unit
    attempts = sorted(Path(folder).glob(f"{x}.*"))
    (Path(folder) / f"{x}.{len(attempts)}").touch()
    return x * x


def killed_once(unit: tuple[str, int, int]) -> int:
    """The first attempt at `victim` is SIGKILLed mid-unit (as the OOM killer would); then squares."""
    folder, x, victim = unit
    first = not any(Path(folder).glob(f"{x}.*"))
    result = square((folder, x))
    if x == victim and first:
        os.kill(os.getpid(), signal.SIGKILL)
    return result


def always_killed(unit: int) -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return unit


def refuses_three(unit: int) -> int:
    if unit == 3:
        raise LaraUserError("unit 3 is bad input")
    return unit


class KilledOnceNoop:
    """A picklable `policy_builder` for the evaluator: a no-op policy whose worker is SIGKILLed at
    the first action taken anywhere (a marker file says it happened), as the OOM killer would."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def __call__(self, env):
        return _KilledOnceNoopPolicy(Path(self.folder) / "killed")


class _KilledOnceNoopPolicy:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def reset(self) -> None:
        pass

    def select_action(self, obs):
        from envs.protocol import NOOP_ACTION

        if not self.marker.exists():
            self.marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return list(NOOP_ACTION)
