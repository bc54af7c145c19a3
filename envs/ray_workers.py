"""The same worker pool on Ray actors, for when one machine is not enough: `RayWorkerPool`.

`WorkerPool`'s contract (envs.workers) with each worker a Ray actor: the task function and its
initializer run inside the actor; an actor that dies mid-job (its node lost, the process killed)
is replaced and costs a re-run of that job only; an exception raised by the task reaches the driver
as itself. Only the transport differs (`_launch`, `_send`, `_wait`, `_stop`); the retry bookkeeping
and both ways of use (`imap_unordered`, `submit` / `replies`: the simulator servers of
envs.driver) are the base class's. With `address=None` a local Ray instance is started (or the one
this process already joined is used); `address="auto"` or `"ray://host:10001"` joins a running
cluster, whose nodes must have this package installed (the actors import the task function by
module).

Why actors and not Ray tasks: a worker keeps its simulator between jobs, as the local processes
do, so consecutive episodes of a task reuse the environment.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from envs.workers import WorkerPool
from lara.utils.errors import LaraUserError


class _Actor:
    """The Ray actor's body: runs the initializer once, then one job per `run` call."""

    def __init__(self, fn, initializer, initargs, finalizer) -> None:
        self.fn, self.finalizer = fn, finalizer
        if initializer is not None:
            initializer(*initargs)

    def run(self, job):
        return self.fn(job)

    def close(self) -> None:
        if self.finalizer is not None:
            self.finalizer()


def _ray():
    try:
        import ray
    except ImportError as err:  # pragma: no cover - ray is in requirements/stack.txt
        raise LaraUserError("--backend ray needs the ray package (pip install ray==2.60.0)") from err
    return ray


class RayWorkerPool(WorkerPool):
    """`WorkerPool` over `workers` Ray actors (see module doc)."""

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
        super().__init__(fn, workers, initializer, initargs, finalizer, retries)
        self.address, self.cpus_per_worker = address, cpus_per_worker
        self._refs: dict[Any, int] = {}  # object ref -> worker
        self._started_ray = False

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

    def close(self, graceful: bool = True) -> None:
        super().close(graceful)
        self._refs.clear()
        if self._started_ray:
            _ray().shutdown()
            self._started_ray = False

    # -- transport: Ray actors -------------------------------------------------------------------
    def _launch(self):
        return self._remote.remote(self.fn, self.initializer, self.initargs, self.finalizer)

    def _send(self, worker: int, job: Any) -> None:
        self._refs[self._handles[worker].run.remote(job)] = worker

    def _wait(self, timeout: float | None) -> list[tuple[int, str, Any]]:
        ray = _ray()
        from ray.exceptions import RayActorError, RayTaskError

        ready, _ = ray.wait(list(self._refs), num_returns=1, timeout=timeout)
        out = []
        for ref in ready:
            worker = self._refs.pop(ref)
            try:
                out.append((worker, "ok", ray.get(ref)))
            except RayTaskError as err:  # the task raised: its own exception, re-raised by the caller
                cause = getattr(err, "cause", None)
                out.append(
                    (
                        worker,
                        "error",
                        cause if isinstance(cause, BaseException) else err.as_instanceof_cause(),
                    )
                )
            except RayActorError as err:
                out.append((worker, "died", f"Ray actor lost: {type(err).__name__}"))
        return out

    def _stop(self, handle, graceful: bool) -> None:
        ray = _ray()
        if graceful:
            try:
                ray.get(handle.close.remote(), timeout=30)
            except Exception:  # noqa: BLE001 - a dead actor has nothing left to close
                pass
        ray.kill(handle)
