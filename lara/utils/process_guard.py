"""Worker processes that never outlive their parent.

`multiprocessing` workers are not told when the parent is killed (SIGKILL, or SIGTERM without a
handler): they keep running a simulator or a model for nobody. `exit_with_parent()` starts a daemon
thread in the worker that ends the process once its parent is gone (re-parented to init).

Workers that exit normally (a `ProcessPoolExecutor` at shutdown) and still hold a simulator print
EGL "Exception ignored" tracebacks: robosuite's atexit hook terminates the EGL display before the
interpreter frees the render contexts. `worker_init(cleanup)` runs `cleanup` (close the cached env)
when the worker's task loop ends, before any atexit hook.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from multiprocessing import util


def exit_with_parent(poll_s: float = 1.0) -> None:
    parent = os.getppid()

    def _watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=_watch, name="exit-with-parent", daemon=True).start()


def worker_init(cleanup: Callable[[], None] | None = None) -> None:
    """Pool initializer: `exit_with_parent()`, and `cleanup()` when the worker process finishes."""
    exit_with_parent()
    if cleanup is not None:
        # runs in multiprocessing's exit function, right after the worker loop, before atexit
        util.Finalize(None, cleanup, exitpriority=100)
