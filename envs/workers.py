"""Simulator worker processes that survive the death of one of them: `WorkerPool`.

Why not `multiprocessing.Pool` / `ProcessPoolExecutor`: a worker killed mid-task (SIGKILL, the
OOM killer, a segfault inside MuJoCo or Mesa) makes `Pool.imap` wait forever for a result that
never comes, and breaks a `ProcessPoolExecutor` whole, failing the units of every healthy worker
with it. Here each worker is a spawned process with its own pipe; when a worker dies before
answering, it is replaced by a fresh one and only its job is lost. Two ways to use a pool:

    with WorkerPool(run_episode, workers=2, initializer=init, initargs=(cfg,)) as pool:
        for unit, result in pool.imap_unordered(units):   # units handed out one at a time; a
            ...                                            # dead worker's unit runs again
    with WorkerPool(serve, workers=2, ...) as pool:        # talk to given workers (envs.driver):
        pool.start(2); pool.submit(0, job)                 # one job in flight per worker,
        for reply in pool.replies(): ...                   # `Reply.died` when its worker died

A unit (or whatever the caller re-runs) whose worker died `retries + 1` times is one error naming it
(`note_death`). `workers=1` runs everything in the calling process (no spawn, exceptions as
raised). An exception raised by the task function in a worker is re-raised in the driver (its class
and message kept; a `LaraUserError` stays one), and the other workers are stopped. Workers are
spawned (MuJoCo and GL contexts do not survive a fork) and exit with their parent
(`lara.utils.process_guard`); `finalizer` runs in each worker before it exits normally, e.g. to
close its simulator before robosuite's atexit hook tears down EGL.

The transport (how a worker is started, sent a job, waited for, stopped) is the four `_` methods
at the end; `envs.ray_workers.RayWorkerPool` replaces them with Ray actors and keeps the rest.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import pickle
import traceback
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from lara.utils.errors import LaraUserError
from lara.utils.process_guard import exit_with_parent

logger = logging.getLogger(__name__)


class WorkerDied(RuntimeError):
    """A unit whose worker died `retries + 1` times (each time on a fresh worker)."""


@dataclass
class Reply:
    worker: int  # which worker answered (0 .. workers - 1)
    value: Any = None  # the task function's result
    died: str | None = None  # the worker died before answering (why); a fresh one took its place


def _worker_main(conn: Connection, fn, initializer, initargs, finalizer) -> None:
    exit_with_parent()
    if initializer is not None:
        initializer(*initargs)
    try:
        while True:
            job = conn.recv()
            if job is None:  # the driver is done
                return
            try:
                conn.send((True, fn(job[0])))
            except BaseException as err:  # noqa: BLE001 - every failure goes to the driver, which decides
                described = (type(err).__name__, str(err), traceback.format_exc())
                try:
                    pickle.dumps(err)
                except Exception:  # noqa: BLE001 - an exception that cannot cross the pipe: its text does
                    err = None
                conn.send((False, (*described, err)))
    finally:
        if finalizer is not None:
            finalizer()


class _Process:
    def __init__(self, ctx, fn, initializer, initargs, finalizer) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(
            target=_worker_main, args=(child, fn, initializer, initargs, finalizer), daemon=True
        )
        self.process.start()
        child.close()


class WorkerPool:
    """Spawned worker processes (see module doc); the base of `RayWorkerPool`."""

    def __init__(
        self,
        fn: Callable[[Any], Any],
        workers: int,
        initializer: Callable[..., None] | None = None,
        initargs: tuple = (),
        finalizer: Callable[[], None] | None = None,
        retries: int = 2,
    ) -> None:
        if workers < 1:
            raise LaraUserError(f"workers must be >= 1, got {workers}")
        self.fn, self.workers, self.retries = fn, workers, retries
        self.initializer, self.initargs, self.finalizer = initializer, initargs, finalizer
        self.restarts = 0  # workers replaced after dying, over the pool's life
        self._handles: list[Any] = []
        self._busy: dict[int, Any] = {}  # worker -> the job it runs
        self._deaths: Counter = Counter()  # re-run key -> deaths of the workers that ran it
        self._inline = workers == 1 and type(self) is WorkerPool
        self._inline_ready = False
        self._inline_replies: list[Reply] = []

    # -- lifetime --------------------------------------------------------------------------------
    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close(graceful=exc[0] is None)

    def close(self, graceful: bool = True) -> None:
        for handle in self._handles:
            self._stop(handle, graceful)
        self._handles.clear()
        self._busy.clear()
        if self._inline_ready and self.finalizer is not None:
            self.finalizer()
        self._inline_ready = False

    def start(self, n: int) -> None:
        """At least `n` (at most `workers`) workers running."""
        if self._inline:
            if not self._inline_ready and self.initializer is not None:
                self.initializer(*self.initargs)
            self._inline_ready = True
            return
        while len(self._handles) < min(n, self.workers):
            self._handles.append(self._launch())

    # -- talking to given workers ----------------------------------------------------------------
    def submit(self, worker: int, job: Any) -> None:
        """Send `job` to `worker` (started, idle); its `Reply` comes from `replies()`."""
        if self._inline:
            self._inline_replies.append(Reply(worker, self.fn(job)))
            return
        assert worker not in self._busy, f"worker {worker} is busy"
        self._busy[worker] = job
        self._send(worker, job)

    def replies(self, timeout: float | None = None) -> list[Reply]:
        """The replies ready within `timeout` s (None: wait for one); a task's exception is raised."""
        if self._inline:
            out, self._inline_replies = self._inline_replies, []
            return out
        out = []
        for worker, kind, payload in self._wait(timeout):
            job = self._busy.pop(worker)
            if kind == "error":
                raise self._reraise(job, payload)
            if kind == "died":
                self._handles[worker] = self._launch()
                self.restarts += 1
                out.append(Reply(worker, died=payload))
            else:
                out.append(Reply(worker, payload))
        return out

    def note_death(self, key: Hashable, reply: Reply) -> None:
        """Count a death of the worker that ran `key` (a unit, an episode): past `retries`, one error."""
        self._deaths[key] += 1
        n = self._deaths[key]
        logger.warning(
            "a worker died (%s) running %r: %s",
            reply.died,
            key,
            "running it again on a fresh worker" if n <= self.retries else "giving up",
        )
        if n > self.retries:
            raise WorkerDied(
                f"{key!r}: its worker died {n} times ({reply.died}); the other units' results are kept"
            )

    # -- one unit at a time ----------------------------------------------------------------------
    def imap_unordered(
        self, units: Iterable[Any], idle: Callable[[], None] | None = None, idle_s: float = 2.0
    ) -> Iterator[tuple[Any, Any]]:
        """(unit, result) as each finishes. `idle()` is called every `idle_s` seconds while waiting
        (e.g. a progress bar that counts files the workers write)."""
        units = list(units)
        self.start(len(units))
        todo = deque(range(len(units)))
        running: dict[int, int] = {}  # worker -> unit index
        try:
            while todo or running:
                for worker in range(max(len(self._handles), 1)):
                    if worker not in running and todo:
                        running[worker] = todo.popleft()
                        self.submit(worker, units[running[worker]])
                replies = self.replies(idle_s if idle else None)
                if not replies and idle is not None:
                    idle()
                for reply in replies:
                    index = running.pop(reply.worker)
                    if reply.died is not None:
                        self.note_death(units[index], reply)
                        todo.appendleft(index)
                        continue
                    yield units[index], reply.value
        except BaseException:
            self.close(graceful=False)  # stop every worker now: nothing keeps running for nobody
            raise

    # -- transport: spawned processes ------------------------------------------------------------
    def _launch(self) -> _Process:
        if not hasattr(self, "_ctx"):
            self._ctx = mp.get_context("spawn")
        return _Process(self._ctx, self.fn, self.initializer, self.initargs, self.finalizer)

    def _send(self, worker: int, job: Any) -> None:
        self._handles[worker].conn.send((job,))

    def _wait(self, timeout: float | None) -> list[tuple[int, str, Any]]:
        """(worker, "ok" | "error" | "died", result | exception | why) for each busy worker that ended."""
        busy = {w: self._handles[w] for w in self._busy}
        ready = wait([h.conn for h in busy.values()] + [h.process.sentinel for h in busy.values()], timeout)
        out = []
        for worker, handle in busy.items():
            if handle.conn in ready and handle.conn.poll():
                try:
                    ok, payload = handle.conn.recv()
                except (EOFError, OSError):  # the pipe closed: the worker died (handled below)
                    handle.process.join(timeout=5)
                else:
                    out.append((worker, "ok", payload) if ok else (worker, "error", payload))
                    continue
            if not handle.process.is_alive():
                handle.conn.close()
                out.append((worker, "died", f"exit code {handle.process.exitcode}"))
        return out

    def _stop(self, handle: _Process, graceful: bool) -> None:
        """Graceful: finish and run the finalizer (up to 10 s); else terminate now (an error, Ctrl-C)."""
        if graceful:
            try:
                handle.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            handle.process.join(timeout=10)
        if handle.process.is_alive():
            handle.process.terminate()
            handle.process.join()
        handle.conn.close()

    @staticmethod
    def _reraise(job: Any, payload: Any) -> BaseException:
        if isinstance(payload, BaseException):  # Ray hands over the exception itself
            return payload
        name, message, trace, err = payload
        logger.debug("worker traceback for %r:\n%s", job, trace)
        if isinstance(err, BaseException):
            return err
        return RuntimeError(f"{name}: {message}")
