"""Is this the same run? One check for every command that resumes into a folder it wrote before.

A run records what defines it (its identity: a flat dict of settings) when it starts; a later
command resuming into the same folder compares its own identity with the recorded one and is
refused, naming the keys that differ, when they are not the same run. Results of two different
runs must never be mixed in one folder (an evaluation, a collection, a training run).

    error = check_same_run(out / "run.json", recorded, cfg.identity(), "results of a different run")
    if error:
        raise LaraUserError(f"{error}; use another --out or delete it")
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

SHOWN = 6  # differing keys named in the message; the rest are counted


def differing_keys(
    expected: dict, actual: dict, keys: Iterable[str] | None = None
) -> dict[str, tuple[object, object]]:
    """{key: (recorded, now)} for each key whose values differ; `keys` (default: every key of either
    dict) limits the comparison, a key missing on one side counting as None."""
    names = sorted(set(expected) | set(actual)) if keys is None else list(keys)
    return {k: (expected.get(k), actual.get(k)) for k in names if expected.get(k) != actual.get(k)}


def check_same_run(
    path: str | Path, expected: dict, actual: dict, what: str, keys: Iterable[str] | None = None
) -> str | None:
    """None when the run recorded at `path` (its identity `expected`) is the one asked for now
    (`actual`); else one line, "<path> holds <what> (differing: key: A there vs B now; ...)", for the
    caller to end with its own fix and raise."""
    diff = differing_keys(expected, actual, keys)
    if not diff:
        return None
    shown = "; ".join(f"{k}: {old!r} there vs {new!r} now" for k, (old, new) in list(diff.items())[:SHOWN])
    more = f"; ... ({len(diff)} keys)" if len(diff) > SHOWN else ""
    return f"{path} holds {what} (differing: {shown}{more})"
