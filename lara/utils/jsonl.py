"""Append-only JSON-lines logs that survive a kill mid-write.

Why this module: a process killed while appending leaves a torn last line. A reader that merely
skips it is not enough: the next run appends after the fragment, and its first record is glued to
it and lost. So every writer of an append-only log in this project follows one rule: on (re)open,
`repair_jsonl` truncates the file to its last complete valid line (and says how many lines it
dropped); each record is then written by `append_jsonl` as one complete line in one write, flushed
and fsynced, so a kill leaves at most the one record in flight torn.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)


def _parse(line: bytes) -> dict | None:
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


def read_jsonl(path: str | Path) -> tuple[list[dict], int]:
    """(records, number of torn or invalid lines dropped); a missing file is ([], 0).

    A line counts only when it is complete (ends with a newline) and holds one JSON object."""
    path = Path(path)
    if not path.is_file():
        return [], 0
    records, dropped = [], 0
    for line in path.read_bytes().splitlines(keepends=True):
        if not line.strip():
            continue
        record = _parse(line) if line.endswith(b"\n") else None
        if record is None:
            dropped += 1
        else:
            records.append(record)
    return records, dropped


def repair_jsonl(path: str | Path) -> int:
    """Truncate `path` to its last complete valid line; returns the number of lines dropped.

    Everything after the last good line goes (a torn tail, or garbage a crash left); invalid lines
    before it stay in the file (readers skip them) because rewriting the middle of a log could lose
    more than it saves. Logs a warning naming the file and the count when anything was dropped."""
    path = Path(path)
    if not path.is_file():
        return 0
    data = path.read_bytes()
    keep, dropped = 0, 0
    offset = 0
    for line in data.splitlines(keepends=True):
        offset += len(line)
        if not line.strip():
            if dropped == 0:
                keep = offset
            continue
        if line.endswith(b"\n") and _parse(line) is not None:
            keep, dropped = offset, 0
        else:
            dropped += 1
    if keep < len(data):
        with open(path, "r+b") as fh:
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())
    if dropped:
        logger.warning(
            "%s: dropped %d torn/invalid line(s) at the end (a run killed mid-write); "
            "those records are redone",
            path,
            dropped,
        )
    return dropped


def append_jsonl(path: str | Path, record: dict) -> None:
    """Append `record` as one complete line in one write, then flush and fsync."""
    line = (json.dumps(record) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, line)
        if written != len(line):  # a short write (disk full): cut it off so the log stays valid
            os.ftruncate(fd, os.lseek(fd, 0, os.SEEK_END) - written)
            raise OSError(f"{path}: short write ({written} of {len(line)} bytes)")
        os.fsync(fd)
    finally:
        os.close(fd)
