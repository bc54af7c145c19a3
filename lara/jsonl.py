"""Append-only JSON-lines logs that survive a killed writer.

`append_jsonl` writes one complete line and fsyncs it; a process killed mid-write can leave a torn
last line, which `read_jsonl` skips (and counts) and `repair_jsonl` cuts off before appending again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def append_jsonl(path: str | Path, record: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: str | Path) -> tuple[list[dict], int]:
    """(records, n_dropped): every parseable line as a dict; unparseable ones are counted."""
    path = Path(path)
    if not path.is_file():
        return [], 0
    records, dropped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            dropped += 1
            continue
        if isinstance(rec, dict):
            records.append(rec)
        else:
            dropped += 1
    return records, dropped


def repair_jsonl(path: str | Path) -> int:
    """Cut a torn (unterminated) last line; returns the number of bytes removed."""
    path = Path(path)
    if not path.is_file():
        return 0
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    with open(path, "r+b") as fh:
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    return len(data) - keep
