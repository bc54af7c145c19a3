"""Worker processes that never outlive their parent.

`multiprocessing` workers are not told when the parent is killed (SIGKILL, or SIGTERM without a
handler): they keep running a simulator or a model for nobody. `exit_with_parent()` starts a daemon
thread in the worker that ends the process once its parent is gone (re-parented to init).

Workers that exit normally and still hold a simulator print EGL "Exception ignored" tracebacks:
robosuite's atexit hook terminates the EGL display before the interpreter frees the render
contexts; `envs.workers.WorkerPool` runs its `finalizer` (close the cached env) first.
"""

from __future__ import annotations

import os
import threading
import time


def exit_with_parent(poll_s: float = 1.0) -> None:
    parent = os.getppid()

    def _watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=_watch, name="exit-with-parent", daemon=True).start()
