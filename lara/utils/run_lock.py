"""One owner per output folder: a lock file that names its holder, refused to a second live process.

Why: two runs writing the same folder (two `lara eval --out X` started at once) both resume from
the same state and both append, so every episode is counted twice and the report's n is wrong.
`run_lock(folder, "lara eval")` is held for the whole run. Its file `folder/.lara.lock` says who
holds it (PID, host, command, start time) for the message a second run gets; whether the holder
still runs is the kernel's `flock` on that file, which dies with the process, so a run killed with
SIGKILL leaves a stale file that the next run takes over (with a message naming the dead process).
A lock written on another host is never taken over on a PID check alone (its PID means nothing
here): the message says to delete the file once that run is gone.

A process that already holds a folder's lock may take it again (nested commands): the lock counts.
A folder the lock created and that is still empty at release is removed, so a run refused or
failing at once leaves no empty folder behind.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from lara.utils.atomic import pid_alive
from lara.utils.errors import LaraUserError

logger = logging.getLogger(__name__)

LOCK_NAME = ".lara.lock"
_HELD: dict[Path, int] = {}  # lock file -> how many times this process holds it

try:
    import fcntl
except ImportError:  # not POSIX: fall back on the PID check alone
    fcntl = None  # type: ignore[assignment]


def _holder_text(holder: dict) -> str:
    since = holder.get("started")
    when = time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(since)) if since else ""
    who = f"PID {holder.get('pid', '?')} on {holder.get('host', '?')}"
    return f"{holder.get('command', 'a lara command')} ({who}{when})"


def _read_holder(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = b""
    while chunk := os.read(fd, 4096):
        raw += chunk
    try:
        holder = json.loads(raw.decode("utf-8"))
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _flock(fd: int) -> bool | None:
    """True: locked; False: another process holds it; None: the file system has no flock."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as err:
        if err.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            return None
        raise


def _refuse(folder: Path, path: Path, holder: dict, why: str = "") -> LaraUserError:
    return LaraUserError(
        f"{folder} is in use by {_holder_text(holder)}{why}: one run per folder; wait for it to finish, or "
        f"choose another output folder (delete {path} only if that run is gone)"
    )


def _open_locked(folder: Path, path: Path) -> tuple[int, dict]:
    """An fd of `path` holding its flock (retried when the file was replaced meanwhile), and the
    record it held before (empty for a new file)."""
    for _ in range(50):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            locked = _flock(fd)
            previous = _read_holder(fd)
            if locked is False:
                raise _refuse(folder, path, previous)
            try:
                same_file = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same_file = False
            if not same_file:  # the holder released (unlinked) it between our open and our flock
                os.close(fd)
                continue
            if locked is None and previous.get("pid") and previous.get("host") == socket.gethostname():
                if pid_alive(int(previous["pid"])) and int(previous["pid"]) != os.getpid():
                    raise _refuse(folder, path, previous)
            return fd, previous
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
    raise LaraUserError(f"{path}: could not take the run lock (the file keeps being replaced)")


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike, command: str) -> Iterator[Path]:
    """Hold `folder`'s run lock for the block (created with the folder when missing); a second live
    process gets one LaraUserError line naming the holder. Yields the lock file's path."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise LaraUserError(f"{folder} is a file, not a folder: choose another output folder")
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise LaraUserError(f"cannot create the output folder {folder}: {err.strerror or err}") from None
    path = (folder / LOCK_NAME).resolve()
    if path in _HELD:  # this process holds it already (a command run inside another)
        _HELD[path] += 1
        try:
            yield path
        finally:
            _HELD[path] -= 1
        return
    try:
        fd, previous = _open_locked(folder, path)
    except OSError as err:  # a read-only or immutable folder
        raise LaraUserError(f"cannot write to the output folder {folder}: {err.strerror or err}") from None
    try:
        if previous.get("pid") and previous.get("host") not in (None, socket.gethostname()):
            raise _refuse(folder, path, previous, " on another host, which this host cannot check")
        if previous.get("pid"):
            logger.warning(
                "%s: taking over the lock of %s, which no longer runs (a killed run)",
                folder,
                _holder_text(previous),
            )
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": command,
            "started": time.time(),
        }
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(record) + "\n").encode("utf-8"))
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        raise
    _HELD[path] = 1
    try:
        yield path
    finally:
        del _HELD[path]
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # before unlocking: a waiting process then sees a new file (see _open_locked)
        os.close(fd)
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: a run that wrote nothing leaves nothing
