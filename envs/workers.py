"""Simulator worker processes that survive the death of one of them: `WorkerPool`.

Why not `multiprocessing.Pool` / `ProcessPoolExecutor`: a worker killed mid-task (SIGKILL, the
OOM killer, a segfault inside MuJoCo or Mesa) makes `Pool.imap` wait forever for a result that
never comes, and breaks a `ProcessPoolExecutor` whole, failing the units of every healthy worker
with it. Here each worker is a spawned process with its own pipe; the driver hands out one unit
at a time, and when a worker dies before answering, only that worker's unit runs again, on a
fresh worker (at most `retries` times per unit; then one error names the unit). Every result is
returned exactly once, as soon as it is ready.

    with WorkerPool(run_episode, workers=2, initializer=init, initargs=(cfg,)) as pool:
        for unit, result in pool.imap_unordered(units):
            ...

`workers=1` runs everything in the calling process (no spawn, exceptions as raised). An exception
raised by the task function in a worker ends the run: it is re-raised in the driver (its class
and message kept; a `LaraUserError` stays one), and the other workers are stopped. Workers are
spawned (MuJoCo and GL contexts do not survive a fork) and exit with their parent
(`lara.utils.process_guard`); `finalizer` runs in each worker before it exits normally, e.g. to
close its simulator before robosuite's atexit hook tears down EGL.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import pickle
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection, wait
from typing import Any

from lara.utils.errors import LaraUserError
from lara.utils.process_guard import exit_with_parent

logger = logging.getLogger(__name__)


class WorkerDied(RuntimeError):
    """A unit whose worker died `retries + 1` times (each time on a fresh worker)."""


def _worker_main(conn: Connection, fn, initializer, initargs, finalizer) -> None:
    exit_with_parent()
    if initializer is not None:
        initializer(*initargs)
    try:
        while True:
            message = conn.recv()
            if message is None:  # the driver is done
                return
            index, unit = message
            try:
                conn.send((index, True, fn(unit)))
            except BaseException as err:  # noqa: BLE001 - every failure goes to the driver, which decides
                described = (type(err).__name__, str(err), traceback.format_exc())
                try:
                    pickle.dumps(err)
                except Exception:  # noqa: BLE001 - an exception that cannot cross the pipe: its text does
                    err = None
                conn.send((index, False, (*described, err)))
    finally:
        if finalizer is not None:
            finalizer()


class _Worker:
    def __init__(self, ctx, fn, initializer, initargs, finalizer) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(
            target=_worker_main, args=(child, fn, initializer, initargs, finalizer), daemon=True
        )
        self.process.start()
        child.close()
        self.job: tuple[int, Any] | None = None  # (index, unit) in flight

    def stop(self, graceful: bool) -> None:
        """Graceful: finish and run the finalizer (up to 10 s); else terminate now (an error, Ctrl-C)."""
        if graceful:
            try:
                self.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()
        self.conn.close()


class WorkerPool:
    """`imap_unordered(units) -> (unit, result)` over `workers` spawned processes (see module doc)."""

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
        self._ctx = mp.get_context("spawn")
        self._pool: list[_Worker] = []
        self._inline_ready = False
        self.restarts = 0  # workers replaced after dying, over the pool's life

    # -- lifetime --------------------------------------------------------------------------------
    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close(graceful=exc[0] is None)

    def close(self, graceful: bool = True) -> None:
        for worker in self._pool:
            worker.stop(graceful)
        self._pool.clear()
        if self._inline_ready and self.finalizer is not None:
            self.finalizer()
        self._inline_ready = False

    def _spawn(self) -> _Worker:
        return _Worker(self._ctx, self.fn, self.initializer, self.initargs, self.finalizer)

    # -- work ------------------------------------------------------------------------------------
    def imap_unordered(
        self, units: Iterable[Any], idle: Callable[[], None] | None = None, idle_s: float = 2.0
    ) -> Iterator[tuple[Any, Any]]:
        """(unit, result) as each finishes. `idle()` is called every `idle_s` seconds while waiting
        (e.g. a progress bar that counts files the workers write)."""
        units = list(units)
        if self.workers == 1:
            yield from self._inline(units)
            return
        while len(self._pool) < min(self.workers, len(units)):
            self._pool.append(self._spawn())
        todo = deque(enumerate(units))
        deaths = [0] * len(units)
        pending = len(units)
        try:
            while pending:
                for worker in self._pool:
                    if worker.job is None and todo:
                        worker.job = todo.popleft()
                        worker.conn.send(worker.job)
                busy = [w for w in self._pool if w.job is not None]
                ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy], idle and idle_s)
                if not ready and idle is not None:
                    idle()
                for worker in busy:
                    if worker.conn in ready and worker.conn.poll():
                        try:
                            index, ok, payload = worker.conn.recv()
                        except (EOFError, OSError):  # the pipe closed: the worker died (handled below)
                            worker.process.join(timeout=5)
                        else:
                            worker.job = None
                            if not ok:
                                raise self._reraise(units[index], payload)
                            pending -= 1
                            yield units[index], payload
                            continue
                    if worker.job is not None and not worker.process.is_alive():
                        index, unit = worker.job
                        deaths[index] += 1
                        logger.warning(
                            "a worker died (exit code %s) running %r: %s",
                            worker.process.exitcode,
                            unit,
                            "running it again on a fresh worker"
                            if deaths[index] <= self.retries
                            else "giving up",
                        )
                        if deaths[index] > self.retries:
                            raise WorkerDied(
                                f"{unit!r}: its worker died {deaths[index]} times (exit code "
                                f"{worker.process.exitcode}); the other units' results are kept"
                            )
                        worker.conn.close()
                        self._pool[self._pool.index(worker)] = self._spawn()
                        self.restarts += 1
                        todo.appendleft((index, unit))
        except BaseException:
            self.close(graceful=False)  # stop every worker now: nothing keeps running for nobody
            raise

    def _inline(self, units: list[Any]) -> Iterator[tuple[Any, Any]]:
        if not self._inline_ready and self.initializer is not None:
            self.initializer(*self.initargs)
        self._inline_ready = True
        for unit in units:
            yield unit, self.fn(unit)

    @staticmethod
    def _reraise(unit: Any, payload: tuple) -> BaseException:
        name, message, trace, err = payload
        logger.debug("worker traceback for %r:\n%s", unit, trace)
        if isinstance(err, BaseException):
            return err
        return RuntimeError(f"{name}: {message}")
