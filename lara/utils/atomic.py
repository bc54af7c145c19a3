"""Atomic file writes: a temp file in the same folder, fsync, then rename.

A reader (or a resumed run) sees either the old file or the complete new one, never a torn one.
A writer killed before its rename leaves a `.NAME.tmp-<PID>` behind: `remove_stale_temps` clears
those of dead processes on the next run.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` via a temp file + rename in the same folder (no torn files)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


_TMP_PID = re.compile(r"\.tmp-(\d+)")


def pid_alive(pid: int) -> bool:
    """True when process `pid` exists (or belongs to another user); False when it is gone."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _size_mb(path: Path) -> float:
    files = [path] if path.is_file() else (p for p in path.rglob("*") if p.is_file())
    return sum(p.stat().st_size for p in files) / 2**20


def remove_stale_temps(folder: str | Path, prefix: str) -> list[Path]:
    """Delete the temp files/folders `folder/<prefix>*` named `*.tmp-<PID>*` whose writer process is gone.

    Atomic writers here build `.NAME.tmp-<PID>` next to the destination and rename it at the end; a
    process killed before the rename leaves it behind (as large as the dataset). The next run of
    the same command calls this before writing, and says what it removed. Temps of live processes
    (a concurrent run) are left alone."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in sorted(folder.glob(f"{glob.escape(prefix)}*")):
        match = _TMP_PID.search(path.name)
        if match is None or pid_alive(int(match.group(1))):
            continue
        size = _size_mb(path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        logger.info(
            "removed %s (%.1f MB), left by process %s that no longer runs (a killed run)",
            path,
            size,
            match.group(1),
        )
        removed.append(path)
    return removed
