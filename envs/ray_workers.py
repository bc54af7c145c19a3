"""The same worker pool on Ray actors, for when one machine is not enough: `RayWorkerPool`.

`WorkerPool`'s contract (envs.workers) with each worker a Ray actor: the task function and its
initializer run inside the actor, `imap_unordered(units)` yields `(unit, result)` as each finishes,
an actor that dies mid-unit (its node lost, the process killed) costs a re-run of that unit on a
fresh actor, and an exception raised by the task reaches the driver as itself. With
`address=None` a local Ray instance is started (or the one this process already joined is used);
`address="auto"` or `"ray://host:10001"` joins a running cluster, whose nodes must have this
package installed (the actors import the task function by module).

Why actors and not Ray tasks: a worker keeps its simulator (and its policy) between units, as the
local processes do, so consecutive episodes of a task reuse the environment.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from envs.workers import WorkerDied
from lara.utils.errors import LaraUserError

logger = logging.getLogger(__name__)


class _Actor:
    """The Ray actor's body: runs the initializer once, then one unit per `run` call."""

    def __init__(self, fn, initializer, initargs, finalizer) -> None:
        self.fn, self.finalizer = fn, finalizer
        if initializer is not None:
            initializer(*initargs)

    def run(self, unit):
        return self.fn(unit)

    def close(self) -> None:
        if self.finalizer is not None:
            self.finalizer()


def _ray():
    try:
        import ray
    except ImportError as err:  # pragma: no cover - ray is in requirements/stack.txt
        raise LaraUserError("--backend ray needs the ray package (pip install ray==2.60.0)") from err
    return ray


class RayWorkerPool:
    """`imap_unordered(units) -> (unit, result)` over `workers` Ray actors (see module doc)."""

    def __init__(
        self,
        fn: Callable[[Any], Any],
        workers: int,
        initializer: Callable[..., None] | None = None,
        initargs: tuple = (),
        finalizer: Callable[[], None] | None = None,
        retries: int = 2,
        address: str | None = None,
        cpus_per_worker: float = 1.0,
    ) -> None:
        if workers < 1:
            raise LaraUserError(f"workers must be >= 1, got {workers}")
        self.fn, self.workers, self.retries = fn, workers, retries
        self.initializer, self.initargs, self.finalizer = initializer, initargs, finalizer
        self.address, self.cpus_per_worker = address, cpus_per_worker
        self._actors: list[Any] = []
        self._started_ray = False
        self.restarts = 0

    def __enter__(self) -> RayWorkerPool:
        ray = _ray()
        if not ray.is_initialized():
            try:
                local = {} if self.address else {"num_cpus": max(os.cpu_count() or 1, self.workers)}
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False, **local)
            except ConnectionError as err:
                raise LaraUserError(
                    f"cannot join the Ray cluster at {self.address!r} ({err}); start one with `ray start "
                    "--head` or drop --ray_address to run a local Ray instance"
                ) from err
            self._started_ray = True
        self._remote = ray.remote(num_cpus=self.cpus_per_worker, max_restarts=0)(_Actor)
        return self

    def __exit__(self, *exc) -> None:
        self.close(graceful=exc[0] is None)

    def close(self, graceful: bool = True) -> None:
        ray = _ray()
        for actor in self._actors:
            if graceful:
                try:
                    ray.get(actor.close.remote(), timeout=30)
                except Exception:  # noqa: BLE001 - a dead actor has nothing left to close
                    pass
            ray.kill(actor)
        self._actors.clear()
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False

    def _spawn(self):
        return self._remote.remote(self.fn, self.initializer, self.initargs, self.finalizer)

    def imap_unordered(
        self, units: Iterable[Any], idle: Callable[[], None] | None = None, idle_s: float = 2.0
    ) -> Iterator[tuple[Any, Any]]:
        ray = _ray()
        from ray.exceptions import RayActorError, RayTaskError

        units = list(units)
        while len(self._actors) < min(self.workers, len(units)):
            self._actors.append(self._spawn())
        todo = deque(enumerate(units))
        deaths = [0] * len(units)
        running: dict[Any, tuple[int, int]] = {}  # object ref -> (actor slot, unit index)
        try:
            while todo or running:
                busy = {slot for slot, _ in running.values()}
                for slot in range(len(self._actors)):
                    if slot not in busy and todo:
                        index, unit = todo.popleft()
                        running[self._actors[slot].run.remote(unit)] = (slot, index)
                ready, _ = ray.wait(list(running), num_returns=1, timeout=idle_s if idle else None)
                if not ready:
                    if idle is not None:
                        idle()
                    continue
                ref = ready[0]
                slot, index = running.pop(ref)
                try:
                    result = ray.get(ref)
                except RayTaskError as err:  # the task raised: re-raise its own exception here
                    cause = getattr(err, "cause", None)
                    raise (cause if isinstance(cause, BaseException) else err.as_instanceof_cause()) from None
                except RayActorError as err:
                    deaths[index] += 1
                    logger.warning("Ray worker died running %r (%s)", units[index], type(err).__name__)
                    if deaths[index] > self.retries:
                        raise WorkerDied(
                            f"{units[index]!r}: its Ray worker died {deaths[index]} times; the other "
                            "units' results are kept"
                        ) from err
                    self._actors[slot] = self._spawn()
                    self.restarts += 1
                    todo.appendleft((index, units[index]))
                    continue
                yield units[index], result
        except BaseException:
            self.close(graceful=False)
            raise
